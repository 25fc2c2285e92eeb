"""The Qwen3.5 vision tower written out as one ONNX graph (``vision.onnx``), for any resolution.

The graph encodes S frame pairs of the same size at once; attention stays within each pair (Qwen3.5
attends over one frame pair at a time), so the pairs are simply the batch axis and no mask is needed.
Everything that depends on the grid is computed by the runtime (numpy) and passed in.

Inputs
  pixel_values   float [S, L, 3*2*16*16]  L patches per pair, in the processors' order (2x2 merge blocks)
  pos_indices    int64 [L, 4]             rows of the learned 48x48 position table around each patch ...
  pos_weights    float [L, 4]             ... and their bilinear weights (the table resampled to the grid)
  rotary_cos/sin float [L, head_dim/2]    2D rotary angles: (row, col) frequencies, h then w
Output
  embeds         float [S, L/4, text hidden]   one row per 2x2 patches: the LLM's vision tokens
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from onnx import TensorProto

from edgekit.export.graph_builder import CONTRIB_DOMAIN, GraphBuilder
from edgekit.export.quantize import quantize_blockwise

FLOAT = TensorProto.FLOAT
INT64 = TensorProto.INT64

INPUTS = ["pixel_values", "pos_indices", "pos_weights", "rotary_cos", "rotary_sin"]
OUTPUTS = ["embeds"]
VISION_QUANTS = ("fp32", "int8", "int4")


@dataclass(frozen=True)
class VisionConfig:
    """The vision tower's dimensions, from a Qwen3.5 ``vision_config``."""

    depth: int
    hidden_size: int
    intermediate_size: int
    num_heads: int
    out_hidden_size: int
    patch_size: int
    temporal_patch_size: int
    spatial_merge_size: int
    in_channels: int
    num_position_embeddings: int
    hidden_act: str
    rope_theta: float

    @classmethod
    def from_hf(cls, config: dict[str, Any]) -> "VisionConfig":
        v = config["vision_config"]
        return cls(depth=v["depth"], hidden_size=v["hidden_size"], intermediate_size=v["intermediate_size"],
                   num_heads=v["num_heads"], out_hidden_size=v["out_hidden_size"], patch_size=v["patch_size"],
                   temporal_patch_size=v["temporal_patch_size"], spatial_merge_size=v["spatial_merge_size"],
                   in_channels=v.get("in_channels", 3), num_position_embeddings=v["num_position_embeddings"],
                   hidden_act=v.get("hidden_act", "gelu_pytorch_tanh"),
                   rope_theta=(v.get("rope_parameters") or {}).get("rope_theta", 10000.0))

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    @property
    def patch_dim(self) -> int:
        return self.in_channels * self.temporal_patch_size * self.patch_size ** 2

    @property
    def grid_side(self) -> int:
        return int(self.num_position_embeddings ** 0.5)


class VisionWriter:
    """Writes the tower node by node from ``weights(name)`` (names under ``model.visual.``)."""

    def __init__(self, cfg: VisionConfig, weights: Callable[[str], np.ndarray], g: GraphBuilder,
                 quant: str = "int8", block_size: int = 32, accuracy_level: int = 4) -> None:
        if quant not in VISION_QUANTS:
            raise ValueError(f"vision quantization {quant!r} is not one of {VISION_QUANTS}")
        self.cfg, self.w, self.g = cfg, weights, g
        self.quant, self.block_size, self.accuracy_level = quant, block_size, accuracy_level

    def linear(self, x: str, name: str) -> str:
        """``x @ W.T + b`` for the ``nn.Linear`` ``name``: MatMulNBits (int8/int4 weights) or MatMul (fp32)."""
        g = self.g
        weight, bias = self.w(f"{name}.weight"), self.w(f"{name}.bias")
        if self.quant == "fp32":
            y = g.op("MatMul", x, g.weight(f"visual.{name}.weight_t", np.ascontiguousarray(weight.T)))
        else:
            bits = 8 if self.quant == "int8" else 4
            q = quantize_blockwise(weight, bits, self.block_size)
            n, k = weight.shape
            y = g.op("MatMulNBits", x, g.weight(f"visual.{name}.qweight", q.packed),
                     g.weight(f"visual.{name}.scales", q.scales), domain=CONTRIB_DOMAIN, K=k, N=n, bits=bits,
                     block_size=self.block_size, accuracy_level=self.accuracy_level)
        return g.op("Add", y, g.weight(f"visual.{name}.bias", bias.astype(np.float32)))

    def layer_norm(self, x: str, name: str) -> str:
        g = self.g
        return g.op("LayerNormalization", x, g.weight(f"visual.{name}.weight", self.w(f"{name}.weight")),
                    g.weight(f"visual.{name}.bias", self.w(f"{name}.bias")), axis=-1, epsilon=1e-6)

    def build(self, on_block: Callable[[int], None] | None = None) -> None:
        cfg, g = self.cfg, self.g
        pixels = g.input("pixel_values", FLOAT, ["pairs", "patches", cfg.patch_dim])
        indices = g.input("pos_indices", INT64, ["patches", 4])
        weights = g.input("pos_weights", FLOAT, ["patches", 4])
        cos = g.input("rotary_cos", FLOAT, ["patches", cfg.head_dim // 2])
        sin = g.input("rotary_sin", FLOAT, ["patches", cfg.head_dim // 2])

        g.scope = "visual.patch_embed"
        # The Conv3d with kernel = stride = (2, 16, 16) is a linear map of each flattened patch.
        conv = self.w("patch_embed.proj.weight").reshape(cfg.hidden_size, -1)
        x = g.op("Add", g.op("MatMul", pixels, g.weight("visual.patch_embed.weight_t", np.ascontiguousarray(conv.T))),
                 g.weight("visual.patch_embed.bias", self.w("patch_embed.proj.bias")))
        g.scope = "visual.pos_embed"
        rows = g.op("Gather", g.weight("visual.pos_embed.weight", self.w("pos_embed.weight")), indices, axis=0)
        pos = g.op("ReduceSum", g.op("Mul", rows, g.op("Unsqueeze", weights, g.const([-1]))), g.const([1]),
                   keepdims=0)  # [L, D]
        x = g.op("Add", x, pos)
        # Rotary tables per pair: the same for every pair of one call.
        pairs = g.op("Slice", g.op("Shape", pixels), g.const([0]), g.const([1]))
        expand_to = g.op("Concat", pairs, g.op("Shape", cos), axis=0)
        cos = g.op("Expand", g.op("Unsqueeze", cos, g.const([0])), expand_to)
        sin = g.op("Expand", g.op("Unsqueeze", sin, g.const([0])), expand_to)

        for i in range(cfg.depth):
            p = f"blocks.{i}"
            g.scope = f"visual.{p}.attn"
            x = g.op("Add", x, self.attention(self.layer_norm(x, f"{p}.norm1"), p, cos, sin))
            g.scope = f"visual.{p}.mlp"
            h = self.linear(self.layer_norm(x, f"{p}.norm2"), f"{p}.mlp.linear_fc1")
            h = g.op("Gelu", h, approximate="tanh" if cfg.hidden_act == "gelu_pytorch_tanh" else "none")
            x = g.op("Add", x, self.linear(h, f"{p}.mlp.linear_fc2"))
            if on_block:
                on_block(i)

        g.scope = "visual.merger"
        merged = cfg.hidden_size * cfg.spatial_merge_size ** 2
        h = g.reshape(self.layer_norm(x, "merger.norm"), [0, -1, merged])  # 2x2 consecutive patches -> one row
        h = g.op("Gelu", self.linear(h, "merger.linear_fc1"))
        g.output(self.linear(h, "merger.linear_fc2"), "embeds", FLOAT, ["pairs", "tokens", cfg.out_hidden_size])

    def attention(self, x: str, p: str, cos: str, sin: str) -> str:
        """Full bidirectional attention within each pair, 2D rotary on q and k (rotate-half, whole head)."""
        g, cfg = self.g, self.cfg
        heads, d = cfg.num_heads, cfg.head_dim
        q, k, v = g.op("Split", self.linear(x, f"{p}.attn.qkv"), g.const([cfg.hidden_size] * 3), axis=-1, n_out=3)
        q = g.op("RotaryEmbedding", q, cos, sin, num_heads=heads, interleaved=0)
        k = g.op("RotaryEmbedding", k, cos, sin, num_heads=heads, interleaved=0)
        out = g.op("Attention", q, k, v, q_num_heads=heads, kv_num_heads=heads, scale=d ** -0.5)
        return self.linear(out, f"{p}.attn.proj")
