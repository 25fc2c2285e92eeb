"""The hybrid state of one sequence, owned by the caller.

Qwen3.5 carries two kinds of memory: each Gated DeltaNet layer a fixed-size conv + recurrent state
(the past folded in, it cannot be rewound), each full-attention layer a KV cache that grows by one row
per token (it can be cut back to any length). The KV buffers are preallocated to the context budget.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from edgekit.config import TextConfig

ALIGNMENT = 64  # bytes: onnxruntime's own buffers are 64-byte aligned, its AVX-512 kernels run faster so


def aligned_empty(shape: tuple[int, ...], dtype=np.float32) -> np.ndarray:
    """An uninitialised array whose data starts on a 64-byte boundary (numpy's large ones start at 16)."""
    nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
    raw = np.empty(nbytes + ALIGNMENT, np.uint8)
    start = (-raw.ctypes.data) % ALIGNMENT
    return raw[start:start + nbytes].view(dtype).reshape(shape)


def aligned_zeros(shape: tuple[int, ...], dtype=np.float32) -> np.ndarray:
    array = aligned_empty(shape, dtype)
    array.fill(0)
    return array


def aligned_copy(array: np.ndarray) -> np.ndarray:
    out = aligned_empty(array.shape, array.dtype)
    out[...] = array
    return out


class StateHolder(Protocol):
    """A backend that keeps a state in its own buffers (ExecuTorch) and can write it back."""

    def release(self, state: "HybridState") -> None: ...


class HybridState:
    """The state of one sequence: numpy arrays per layer plus counters.

    ``conv``/``recurrent`` (DeltaNet layer -> [1, K-1, C] / [1, Hv, dk, dv]) and ``keys``/``values``
    (attention layer -> [1, Hkv, max_context, D], rows < ``length`` valid). ``length``: tokens folded
    in; ``next_position``: the next rotary position (runs ahead of length after images); ``tokens``:
    ids folded in so far (a vision row holds its pad id). While a backend holds newer values (``holder``),
    reading the arrays first copies them back, so callers always see the current state.
    """

    def __init__(self, conv: dict[int, np.ndarray], recurrent: dict[int, np.ndarray],
                 keys: dict[int, np.ndarray], values: dict[int, np.ndarray], length: int = 0,
                 next_position: int = 0, tokens: list[int] | None = None) -> None:
        self._arrays = {"conv": conv, "recurrent": recurrent, "key": keys, "value": values}
        self.length = length
        self.next_position = next_position
        self.tokens: list[int] = list(tokens or [])
        self.holder: StateHolder | None = None

    def _current(self, kind: str) -> dict[int, np.ndarray]:
        if self.holder is not None:
            self.holder.release(self)
        return self._arrays[kind]

    conv = property(lambda self: self._current("conv"))
    recurrent = property(lambda self: self._current("recurrent"))
    keys = property(lambda self: self._current("key"))
    values = property(lambda self: self._current("value"))

    @property
    def max_context(self) -> int:
        return next(iter(self._arrays["key"].values())).shape[2]

    def arrays_by_name(self) -> dict[str, np.ndarray]:
        """Every full array by name (``conv.0``, ``key.3``...) as stored, without asking a holder (for backends)."""
        return {f"{kind}.{i}": a for kind, layers in self._arrays.items() for i, a in layers.items()}

    @property
    def state(self) -> dict[str, np.ndarray]:
        """The arrays that define this state (KV trimmed to ``length``), by name: ``conv.0``, ``key.3``..."""
        arrays = {}
        for kind, layers in (("conv", self.conv), ("recurrent", self.recurrent)):
            arrays.update({f"{kind}.{i}": a for i, a in layers.items()})
        for kind, layers in (("key", self.keys), ("value", self.values)):
            arrays.update({f"{kind}.{i}": a[:, :, : self.length] for i, a in layers.items()})
        return arrays

    @property
    def meta_state(self) -> dict[str, int]:
        return {"length": self.length, "next_position": self.next_position}

    @property
    def nbytes(self) -> int:
        """Bytes in use: the DeltaNet states plus the filled part of the KV cache."""
        return sum(a.nbytes for a in self.state.values())

    def copy(self) -> "HybridState":
        """An independent copy (a fork): later steps on either leave the other untouched."""
        def clone_kv(buffers: dict[int, np.ndarray]) -> dict[int, np.ndarray]:
            out = {}
            for i, buf in buffers.items():
                new = aligned_empty(buf.shape, buf.dtype)
                new[:, :, : self.length] = buf[:, :, : self.length]
                out[i] = new
            return out

        return HybridState(
            conv={i: aligned_copy(a) for i, a in self.conv.items()},
            recurrent={i: aligned_copy(a) for i, a in self.recurrent.items()},
            keys=clone_kv(self.keys), values=clone_kv(self.values),
            length=self.length, next_position=self.next_position, tokens=list(self.tokens))

    fork = copy

    @staticmethod
    def shapes(cfg: TextConfig, max_context: int) -> dict[str, tuple[int, ...]]:
        """Every array's shape by name, in ``TextConfig.state_tensors`` order (also ``arrays_by_name``'s)."""
        shapes = cfg.state_shapes()
        kv_heads, head_dim = shapes["kv_row"]
        kv = (1, kv_heads, max_context, head_dim)
        per_kind = {"conv": shapes["conv"], "recurrent": shapes["recurrent"], "key": kv, "value": kv}
        return {f"{kind}.{i}": per_kind[kind] for kind, i in cfg.state_tensors()}

    @classmethod
    def zeros(cls, cfg: TextConfig, max_context: int) -> "HybridState":
        """A fresh state: every DeltaNet state zero, the KV cache preallocated to ``max_context`` rows."""
        arrays: dict[str, dict[int, np.ndarray]] = {"conv": {}, "recurrent": {}, "key": {}, "value": {}}
        for name, shape in cls.shapes(cfg, max_context).items():
            kind, layer = name.split(".")
            arrays[kind][int(layer)] = aligned_zeros(shape)
        return cls(arrays["conv"], arrays["recurrent"], arrays["key"], arrays["value"])
