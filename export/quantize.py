"""Blockwise symmetric int4 (and int8) weight quantization in the layout of onnxruntime's MatMulNBits.

A weight ``W`` of shape ``[N, K]`` (out features, in features) is cut into blocks of ``block_size``
along K. Each block gets one fp32 scale chosen so that the element of largest magnitude maps exactly
to -8 (the full signed 4-bit range, as in llama.cpp's Q4_0). Codes are stored unsigned (q + 8, the
default zero point of MatMulNBits and GatherBlockQuantized), two per byte, low nibble first.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BLOCK_SIZES = (32, 64, 128)


@dataclass(frozen=True)
class Int4Weight:
    """Packed codes ``[N, K // block_size, block_size // 2]`` (uint8) and scales ``[N, K // block_size]``."""

    packed: np.ndarray
    scales: np.ndarray
    block_size: int

    @property
    def shape(self) -> tuple[int, int]:
        n, blocks, _ = self.packed.shape
        return n, blocks * self.block_size


def _blocks(weight: np.ndarray, block_size: int) -> np.ndarray:
    """``[N, K]`` as float32 ``[N, K // block_size, block_size]``; K must be a multiple of ``block_size``."""
    if block_size not in BLOCK_SIZES:
        raise ValueError(f"block size {block_size} is not one of {BLOCK_SIZES}")
    n, k = weight.shape
    if k % block_size:
        raise ValueError(f"in-features {k} is not a multiple of the block size {block_size}")
    return weight.astype(np.float32, copy=False).reshape(n, k // block_size, block_size)


def quantize_int4(weight: np.ndarray, block_size: int = 32) -> Int4Weight:
    """Quantize an ``[N, K]`` float matrix; K must be a multiple of ``block_size``."""
    blocks = _blocks(weight, block_size)
    extreme_idx = np.abs(blocks).argmax(axis=-1)[..., None]
    extreme = np.take_along_axis(blocks, extreme_idx, axis=-1)  # signed value of largest magnitude
    scales = extreme / -8.0
    safe = np.where(scales == 0, 1.0, scales)
    codes = np.clip(np.rint(blocks / safe), -8, 7).astype(np.int8) + 8
    codes = codes.astype(np.uint8)
    packed = codes[..., 0::2] | (codes[..., 1::2] << 4)
    return Int4Weight(packed=np.ascontiguousarray(packed), scales=scales[..., 0].astype(np.float32), block_size=block_size)


def dequantize_int4(q: Int4Weight) -> np.ndarray:
    """The ``[N, K]`` float32 matrix that ``q`` stands for (for tests and error reports)."""
    low = (q.packed & 0x0F).astype(np.int8) - 8
    high = (q.packed >> 4).astype(np.int8) - 8
    codes = np.stack([low, high], axis=-1).reshape(*q.packed.shape[:2], q.block_size)
    return (codes.astype(np.float32) * q.scales[..., None]).reshape(q.shape)


@dataclass(frozen=True)
class Int8Weight:
    """Codes ``[N, K // block_size, block_size]`` (uint8, q + 128) and scales ``[N, K // block_size]``."""

    packed: np.ndarray
    scales: np.ndarray
    block_size: int


def quantize_int8(weight: np.ndarray, block_size: int = 32) -> Int8Weight:
    """Symmetric 8-bit blocks: scale = max |w| / 127, codes stored unsigned (MatMulNBits' 8-bit zero point 128)."""
    blocks = _blocks(weight, block_size)
    scales = np.abs(blocks).max(axis=-1, keepdims=True) / 127.0
    safe = np.where(scales == 0, 1.0, scales)
    codes = (np.clip(np.rint(blocks / safe), -127, 127) + 128).astype(np.uint8)
    return Int8Weight(packed=np.ascontiguousarray(codes), scales=scales[..., 0].astype(np.float32),
                      block_size=block_size)


def dequantize_int8(q: Int8Weight) -> np.ndarray:
    n, blocks, block = q.packed.shape
    return ((q.packed.astype(np.float32) - 128) * q.scales[..., None]).reshape(n, blocks * block)


def quantize_blockwise(weight: np.ndarray, bits: int, block_size: int = 32) -> Int4Weight | Int8Weight:
    """``quantize_int4`` or ``quantize_int8`` by ``bits``; both give MatMulNBits' ``packed`` and ``scales``."""
    if bits not in (4, 8):
        raise ValueError(f"{bits}-bit weights are not supported (4 or 8)")
    return quantize_int4(weight, block_size) if bits == 4 else quantize_int8(weight, block_size)
