"""The Qwen3.5 text-decoder dimensions, read from a Hugging Face ``config.json`` (no transformers needed)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from edgekit.errors import EdgekitError

SUPPORTED_MODEL_TYPES = ("qwen3_5", "qwen3_5_text")
STATE_KINDS = ("conv", "recurrent", "key", "value")


@dataclass(frozen=True)
class TextConfig:
    """What the exporter and the runtime need to know about a Qwen3.5 text decoder."""

    vocab_size: int
    hidden_size: int
    intermediate_size: int
    layer_types: tuple[str, ...]
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    linear_num_key_heads: int
    linear_num_value_heads: int
    linear_key_head_dim: int
    linear_value_head_dim: int
    linear_conv_kernel_dim: int
    rms_norm_eps: float
    rope_theta: float
    partial_rotary_factor: float
    mrope_section: tuple[int, ...]
    tie_word_embeddings: bool

    @classmethod
    def from_hf(cls, config: dict[str, Any]) -> "TextConfig":
        """Accept a full ``Qwen3_5ForConditionalGeneration`` config or its ``text_config``."""
        model_type = config.get("model_type")
        if model_type not in SUPPORTED_MODEL_TYPES:
            raise EdgekitError(
                f"unsupported model type {model_type!r}",
                f"edgekit exports Qwen3.5 checkpoints (model_type {' or '.join(SUPPORTED_MODEL_TYPES)})",
            )
        text = config.get("text_config", config)
        rope = text.get("rope_parameters") or {}
        tie = config.get("tie_word_embeddings", text.get("tie_word_embeddings", False))
        return cls(
            vocab_size=text["vocab_size"],
            hidden_size=text["hidden_size"],
            intermediate_size=text["intermediate_size"],
            layer_types=tuple(text["layer_types"]),
            num_attention_heads=text["num_attention_heads"],
            num_key_value_heads=text["num_key_value_heads"],
            head_dim=text["head_dim"],
            linear_num_key_heads=text["linear_num_key_heads"],
            linear_num_value_heads=text["linear_num_value_heads"],
            linear_key_head_dim=text["linear_key_head_dim"],
            linear_value_head_dim=text["linear_value_head_dim"],
            linear_conv_kernel_dim=text["linear_conv_kernel_dim"],
            rms_norm_eps=text["rms_norm_eps"],
            rope_theta=rope.get("rope_theta", 10000.0),
            partial_rotary_factor=rope.get("partial_rotary_factor", 1.0),
            mrope_section=tuple(rope.get("mrope_section", (11, 11, 10))),
            tie_word_embeddings=bool(tie),
        )

    @property
    def num_layers(self) -> int:
        return len(self.layer_types)

    @property
    def deltanet_layers(self) -> list[int]:
        return [i for i, t in enumerate(self.layer_types) if t == "linear_attention"]

    @property
    def attention_layers(self) -> list[int]:
        return [i for i, t in enumerate(self.layer_types) if t == "full_attention"]

    @property
    def rotary_dim(self) -> int:
        return int(self.head_dim * self.partial_rotary_factor)

    def mrope_axes(self) -> list[int]:
        """Interleaved mRoPE: the position row (0 t, 1 h, 2 w) that turns each rotary frequency. Frequency j
        takes row j mod 3 while j is within three times that row's section, else row t."""
        axes = [0] * (self.rotary_dim // 2)
        for axis in (1, 2):
            for j in range(axis, min(len(axes), self.mrope_section[axis] * 3), 3):
                axes[j] = axis
        return axes

    @property
    def conv_dim(self) -> int:
        """Channels of the causal conv: q, k (key dim each) and v (value dim)."""
        key_dim = self.linear_num_key_heads * self.linear_key_head_dim
        return 2 * key_dim + self.linear_num_value_heads * self.linear_value_head_dim

    def state_tensors(self) -> list[tuple[str, int]]:
        """(kind, layer) of every state array, in the one order every backend uses (the ONNX graph's state
        inputs, ``HybridState``, the .pte's ``get_state``/``set_state``): kind by kind (``STATE_KINDS``),
        layers ascending: ("conv", 0), ("conv", 1), ... ("value", 7)."""
        layers = {"conv": self.deltanet_layers, "recurrent": self.deltanet_layers,
                  "key": self.attention_layers, "value": self.attention_layers}
        return [(kind, i) for kind in STATE_KINDS for i in layers[kind]]

    def state_bytes(self) -> tuple[int, int]:
        """fp32 bytes of one sequence's state: the fixed DeltaNet part, and the KV cache per token."""
        shapes = self.state_shapes()
        fixed = 4 * len(self.deltanet_layers) * (math.prod(shapes["conv"]) + math.prod(shapes["recurrent"]))
        return fixed, 4 * 2 * len(self.attention_layers) * math.prod(shapes["kv_row"])

    def state_shapes(self) -> dict[str, tuple[int, ...]]:
        """Per-sequence shapes (batch 1) of each kind of state; KV is per token."""
        return {
            "conv": (1, self.linear_conv_kernel_dim - 1, self.conv_dim),
            "recurrent": (1, self.linear_num_value_heads, self.linear_key_head_dim, self.linear_value_head_dim),
            "kv_row": (self.num_key_value_heads, self.head_dim),
        }
