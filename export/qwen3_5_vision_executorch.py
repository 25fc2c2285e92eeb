"""The Qwen3.5 vision tower as a torch module for ExecuTorch, for one frame size fixed at export.

  vision_encoder(pixels [2, 3, S, S]) -> embeds [N, H]      N = (S / 32)^2, H = the text hidden size

``pixels`` is one frame pair (a still image: the same frame twice), RGB 0..255, already resized to
S x S by the caller. Everything else happens in the graph: rescale and normalize (the processors'
mean/std), the (2, 16, 16) patch embedding (as a 16x16-stride Conv2d over the 6 channels of the pair,
the same linear map as the checkpoint's Conv3d), the position embedding and the 2D rotary angles
(computed here for the fixed grid with ``runtimes/vision.py``'s helpers and baked in), the blocks and
the 2x2 merger. Linear layers are nn.Linear so torchao can quantize them.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from edgekit.export.qwen3_5_executorch import WeightSource, linear, rotate
from edgekit.export.qwen3_5_vision_onnx import VisionConfig
from edgekit.vision_preprocess import FACTOR, MEAN, STD, position_taps, rotary_tables


def affine(w: WeightSource, name: str) -> nn.Linear:
    """The checkpoint's linear layer ``name`` (weight and bias)."""
    return linear(w(f"{name}.weight"), w(f"{name}.bias"))


def layer_norm(w: WeightSource, name: str) -> nn.LayerNorm:
    weight = w(f"{name}.weight")
    norm = nn.LayerNorm(weight.shape[0], eps=1e-6)
    norm.weight = nn.Parameter(weight.contiguous(), requires_grad=False)
    norm.bias = nn.Parameter(w(f"{name}.bias").contiguous(), requires_grad=False)
    return norm


class Block(nn.Module):
    """Pre-norm block: bidirectional attention with 2D rotary (rotate-half, whole head), then a GELU MLP."""

    def __init__(self, cfg: VisionConfig, w: WeightSource, p: str) -> None:
        super().__init__()
        self.heads, self.head_dim = cfg.num_heads, cfg.head_dim
        self.gelu = "tanh" if cfg.hidden_act == "gelu_pytorch_tanh" else "none"
        self.norm1, self.norm2 = layer_norm(w, f"{p}.norm1"), layer_norm(w, f"{p}.norm2")
        self.qkv, self.proj = affine(w, f"{p}.attn.qkv"), affine(w, f"{p}.attn.proj")
        self.fc1, self.fc2 = affine(w, f"{p}.mlp.linear_fc1"), affine(w, f"{p}.mlp.linear_fc2")

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, n, 3, self.heads, self.head_dim).unbind(2)
        q, k = rotate(q, cos, sin), rotate(k, cos, sin)
        # Written out rather than F.scaled_dot_product_attention, whose decomposition adds a guard for
        # fully masked rows (any/eq/where over [heads, L, L]) that XNNPACK does not take; no mask here.
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        out = torch.softmax((q @ k.transpose(2, 3)) * self.head_dim ** -0.5, dim=-1) @ v
        x = x + self.proj(out.transpose(1, 2).reshape(b, n, d))
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x)), approximate=self.gelu))


class VisionTower(nn.Module):
    """``forward(pixels [2, 3, S, S])`` -> embeds [N, H]; see the module docstring."""

    def __init__(self, cfg: VisionConfig, w: WeightSource, size: int,
                 finish: Callable[[nn.Module], None] | None = None) -> None:
        """``finish`` (e.g. quantization in place) runs on each block and on the merger as soon as it is built."""
        super().__init__()
        finish = finish or (lambda module: None)
        if size % FACTOR:
            raise ValueError(f"vision size {size} is not a multiple of {FACTOR}")
        self.cfg, self.size = cfg, size
        side, merge = size // cfg.patch_size, cfg.spatial_merge_size
        kernel = w("patch_embed.proj.weight")  # Conv3d [D, C, T, P, P]: channel c of frame t is channel c*T + t
        self.patch_embed = nn.Conv2d(cfg.in_channels * cfg.temporal_patch_size, cfg.hidden_size, cfg.patch_size,
                                     stride=cfg.patch_size)
        self.patch_embed.weight = nn.Parameter(kernel.reshape(cfg.hidden_size, -1, cfg.patch_size, cfg.patch_size)
                                               .contiguous(), requires_grad=False)
        self.patch_embed.bias = nn.Parameter(w("patch_embed.proj.bias"), requires_grad=False)
        # The learned 48x48 position table resampled (bilinear) to this grid, in the processors' patch order.
        indices, weights = position_taps(side, side, cfg.grid_side, merge)
        table = w("pos_embed.weight")
        self.register_buffer("position", (table[torch.from_numpy(indices)]
                                          * torch.from_numpy(weights)[..., None]).sum(1))  # [L, D]
        cos, sin = rotary_tables(side, side, cfg.head_dim, cfg.rope_theta, merge)
        self.register_buffer("cos", torch.from_numpy(np.ascontiguousarray(cos))[None])  # [1, L, head_dim/2]
        self.register_buffer("sin", torch.from_numpy(np.ascontiguousarray(sin))[None])
        self.blocks = nn.ModuleList()
        for i in range(cfg.depth):
            self.blocks.append(Block(cfg, w, f"blocks.{i}"))
            finish(self.blocks[i])
        self.merger_norm = layer_norm(w, "merger.norm")
        self.merger_fc1, self.merger_fc2 = affine(w, "merger.linear_fc1"), affine(w, "merger.linear_fc2")
        finish(self.merger_fc1)
        finish(self.merger_fc2)

    @property
    def tokens(self) -> int:
        return (self.size // (self.cfg.patch_size * self.cfg.spatial_merge_size)) ** 2

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        cfg, size = self.cfg, self.size
        side, merge, d = size // cfg.patch_size, cfg.spatial_merge_size, cfg.hidden_size
        x = (pixels * (1 / 255) - MEAN) / STD
        x = self.patch_embed(x.transpose(0, 1).reshape(1, -1, size, size))  # [1, D, side, side]
        # -> the processors' order: merge x merge blocks in raster order, raster order inside each block
        x = x.reshape(d, side // merge, merge, side // merge, merge).permute(1, 3, 2, 4, 0).reshape(1, -1, d)
        x = x + self.position
        for block in self.blocks:
            x = block(x, self.cos, self.sin)
        h = self.merger_norm(x).reshape(-1, d * merge * merge)  # merge x merge consecutive patches -> one row
        return self.merger_fc2(F.gelu(self.merger_fc1(h)))
