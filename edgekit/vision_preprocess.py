"""Qwen3.5 image and video preprocessing in numpy (device side: no torch, no PIL).

Produces exactly what transformers' Qwen3.5 processors give the vision tower:

- resize to multiples of 32 pixels (patch 16 x merge 2) within a pixel budget (``smart_resize``, the
  Qwen2-VL rule; videos count the pixels of all frames, ``smart_resize_video``), bicubic;
- rescale by 1/255, normalize with mean = std = 0.5;
- cut into patches of (temporal 2, 16, 16) in the processors' order: merge blocks of 2x2 patches in
  raster order, each patch flattened as (channel, time, row, col). A still image is repeated to fill
  the 2 frames of its temporal patch; a video is cut into frame pairs.

The bicubic resize is Pillow's algorithm (antialiased: the kernel widens by the downscale factor, a = -0.5,
8-bit fixed-point weights and rounding after each pass), which transformers' PIL backend calls and its
torchvision backend imitates on uint8 images; ``resize_bicubic`` reproduces Pillow bit for bit.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

PATCH = 16
TEMPORAL_PATCH = 2
MERGE = 2
FACTOR = PATCH * MERGE  # one LLM token per 32x32 pixels per frame pair
IMAGE_MIN_PIXELS = 256 * 256      # the published preprocessor_config.json: size.shortest_edge
IMAGE_MAX_PIXELS = 4096 * 4096    # size.longest_edge
VIDEO_MIN_PIXELS = 4096             # video_preprocessor_config.json, over all frames together
VIDEO_MAX_PIXELS = 768 * 32 * 32 * 32
MEAN = STD = 0.5

T = TypeVar("T")

_PRECISION_BITS = 32 - 8 - 2  # Pillow's fixed-point weights for 8-bit images


@dataclass(frozen=True)
class VisionInput:
    """Patches ready for the vision tower: ``pixels [t * h * w, 3 * 2 * 16 * 16]`` and ``grid`` (t, h, w)
    in patches (t frame pairs of h x w patches; one LLM token per 2x2 patches of a pair)."""

    pixels: np.ndarray
    grid: tuple[int, int, int]

    @property
    def tokens_per_pair(self) -> int:
        return self.grid[1] * self.grid[2] // (MERGE * MERGE)


def paired(frames: Sequence[T]) -> list[tuple[T, T]]:
    """Consecutive frames (or their times) as Qwen3.5's temporal patches of 2; an odd last frame is paired
    with itself, as a still image is."""
    return [(frames[i], frames[min(i + 1, len(frames) - 1)]) for i in range(0, len(frames), TEMPORAL_PATCH)]


def smart_resize(height: int, width: int, min_pixels: int = IMAGE_MIN_PIXELS,
                 max_pixels: int = IMAGE_MAX_PIXELS, factor: int = FACTOR) -> tuple[int, int]:
    """(height, width) rounded to multiples of ``factor``, scaled into [min_pixels, max_pixels], aspect kept."""
    if max(height, width) / min(height, width) > 200:
        raise ValueError(f"aspect ratio {max(height, width) / min(height, width):.0f} is over 200")
    h_bar, w_bar = round(height / factor) * factor, round(width / factor) * factor
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt(height * width / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def smart_resize_video(frames: int, height: int, width: int, min_pixels: int = VIDEO_MIN_PIXELS,
                       max_pixels: int = VIDEO_MAX_PIXELS, factor: int = FACTOR) -> tuple[int, int]:
    """The video rule (Qwen3-VL's video processor): the budget covers all ``frames`` together."""
    if height < factor or width < factor:
        scale = max(factor / height, factor / width)
        height, width = int(height * scale), int(width * scale)
    if max(height, width) / min(height, width) > 200:
        raise ValueError(f"aspect ratio {max(height, width) / min(height, width):.0f} is over 200")
    h_bar, w_bar = round(height / factor) * factor, round(width / factor) * factor
    t_bar = round(frames / TEMPORAL_PATCH) * TEMPORAL_PATCH
    if t_bar * h_bar * w_bar > max_pixels:
        beta = math.sqrt(frames * height * width / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif t_bar * h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (frames * height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def _bicubic(x: np.ndarray) -> np.ndarray:
    a = -0.5
    x = np.abs(x)
    return np.where(x < 1, ((a + 2) * x - (a + 3)) * x * x + 1,
                    np.where(x < 2, (((x - 5) * x + 8) * x - 4) * a, 0.0))


def _taps(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pillow's per-output source indices [out, K] and fixed-point weights [out, K] (unused taps weigh 0)."""
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    support = 2.0 * filterscale
    ksize = int(math.ceil(support)) * 2 + 1
    center = (np.arange(out_size) + 0.5) * scale
    xmin = np.maximum((center - support + 0.5).astype(np.int64), 0)  # C casts truncate toward zero
    xmax = np.minimum((center + support + 0.5).astype(np.int64), in_size) - xmin
    k = np.arange(ksize)
    weights = _bicubic((k[None, :] + xmin[:, None] - center[:, None] + 0.5) / filterscale)
    weights = np.where(k[None, :] < xmax[:, None], weights, 0.0)
    total = weights.sum(axis=1, keepdims=True)
    weights = np.where(total != 0, weights / np.where(total == 0, 1, total), 0.0)
    fixed = np.where(weights < 0, np.trunc(-0.5 + weights * (1 << _PRECISION_BITS)),
                     np.trunc(0.5 + weights * (1 << _PRECISION_BITS)))
    index = np.minimum(xmin[:, None] + k[None, :], in_size - 1)
    return index, fixed


def _resample_axis(image: np.ndarray, out_size: int, axis: int) -> np.ndarray:
    """One separable pass over ``axis`` (0 rows, 1 columns) of a uint8 ``[H, W, 3]`` image, with
    Pillow's rounding and clipping. Integer sums in float64 are exact, so this equals Pillow's C code."""
    index, weights = _taps(image.shape[axis], out_size)
    shape = (out_size, 1, 1) if axis == 0 else (1, out_size, 1)
    acc = np.full(image.shape[:axis] + (out_size,) + image.shape[axis + 1:], 1 << (_PRECISION_BITS - 1), np.float64)
    for k in range(index.shape[1]):  # one tap at a time: no [out, taps] temporary of the whole image
        if weights[:, k].any():
            acc += np.take(image, index[:, k], axis=axis) * weights[:, k].reshape(shape)
    return np.clip(np.floor(acc / (1 << _PRECISION_BITS)), 0, 255).astype(np.uint8)


def resize_bicubic(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize an RGB uint8 ``[H, W, 3]`` image like Pillow's ``Image.resize(BICUBIC)``: width pass first."""
    if image.shape[1] != width:
        image = _resample_axis(image, width, axis=1)
    if image.shape[0] != height:
        image = _resample_axis(image, height, axis=0)
    return image


def normalize(image: np.ndarray) -> np.ndarray:
    """uint8 ``[..., H, W, 3]`` -> float32 ``[..., 3, H, W]``: x / 255 (in float64, as transformers), then (x - 0.5) / 0.5."""
    scaled = (image.astype(np.float64) * (1 / 255)).astype(np.float32)
    return np.moveaxis((scaled - np.float32(MEAN)) / np.float32(STD), -1, -3)


def patchify(frames: np.ndarray) -> tuple[np.ndarray, tuple[int, int, int]]:
    """float ``[F, 3, H, W]`` with F even -> patches ``[F/2 * H/16 * W/16, 3 * 2 * 16 * 16]`` and the grid."""
    f, c, h, w = frames.shape
    gt, gh, gw = f // TEMPORAL_PATCH, h // PATCH, w // PATCH
    x = frames.reshape(gt, TEMPORAL_PATCH, c, gh // MERGE, MERGE, PATCH, gw // MERGE, MERGE, PATCH)
    # -> (pair, block row, block col, row in block, col in block, channel, time, y, x)
    x = x.transpose(0, 3, 6, 4, 7, 2, 1, 5, 8)
    return np.ascontiguousarray(x.reshape(gt * gh * gw, c * TEMPORAL_PATCH * PATCH * PATCH)), (gt, gh, gw)


def check_rgb(image: np.ndarray) -> np.ndarray:
    """``image`` as an RGB uint8 [H, W, 3] array, or a ValueError naming what it is."""
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an RGB uint8 image [H, W, 3], got {image.dtype} {list(image.shape)}")
    return image


def preprocess_image(image: np.ndarray, min_pixels: int = IMAGE_MIN_PIXELS,
                     max_pixels: int = IMAGE_MAX_PIXELS) -> VisionInput:
    """One RGB uint8 ``[H, W, 3]`` image -> patches (the image fills both frames of its temporal patch)."""
    image = check_rgb(image)
    height, width = smart_resize(image.shape[0], image.shape[1], min_pixels, max_pixels)
    frame = normalize(resize_bicubic(image, height, width))
    pixels, grid = patchify(np.stack([frame] * TEMPORAL_PATCH))
    return VisionInput(pixels, grid)


def video_pairs(frames: Sequence[np.ndarray], min_pixels: int = VIDEO_MIN_PIXELS,
                max_pixels: int = VIDEO_MAX_PIXELS, size: tuple[int, int] | None = None) -> Iterator[VisionInput]:
    """``preprocess_video`` one frame pair at a time: each yields the patches of grid (1, h, w), so a
    segment's float pixels are never all in memory at once (the pair's own are 4 bytes a value)."""
    frames = [check_rgb(f) for f in frames]
    if not frames or len({f.shape for f in frames}) != 1:
        raise ValueError("expected one or more frames of the same size")
    height, width = size or smart_resize_video(len(frames), *frames[0].shape[:2], min_pixels, max_pixels)
    if height % FACTOR or width % FACTOR:
        raise ValueError(f"size {height}x{width} is not a multiple of {FACTOR}")
    for start in range(0, len(frames), TEMPORAL_PATCH):
        pair = frames[start:start + TEMPORAL_PATCH]
        pair = pair + [pair[-1]] * (TEMPORAL_PATCH - len(pair))  # an odd last frame is repeated
        yield VisionInput(*patchify(np.stack([normalize(resize_bicubic(f, height, width)) for f in pair])))


def preprocess_video(frames: Sequence[np.ndarray], min_pixels: int = VIDEO_MIN_PIXELS,
                     max_pixels: int = VIDEO_MAX_PIXELS, size: tuple[int, int] | None = None) -> VisionInput:
    """Sampled video frames (RGB uint8, all the same size) -> patches, one group of h x w per frame pair.

    The size follows the video rule over all frames, unless ``size`` (height, width; multiples of 32)
    fixes it, e.g. to encode a live stream pair by pair at one resolution. An odd last frame is repeated.
    """
    pairs = list(video_pairs(frames, min_pixels, max_pixels, size))
    return VisionInput(np.concatenate([p.pixels for p in pairs]), (len(pairs), *pairs[0].grid[1:]))


def block_order(h: int, w: int, merge: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """(row, col) of each patch of an h x w grid in the processors' order: merge x merge blocks in raster order."""
    rows, cols = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    shape = (h // merge, merge, w // merge, merge)
    return rows.reshape(shape).transpose(0, 2, 1, 3).reshape(-1), cols.reshape(shape).transpose(0, 2, 1, 3).reshape(-1)


def position_taps(h: int, w: int, side: int, merge: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Bilinear taps (align_corners) of a side x side table resampled to h x w: indices and weights [h*w, 4]."""
    rows, cols = block_order(h, w, merge)

    def axis(index: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
        src = index.astype(np.float32) * np.float32(side - 1) / np.float32(max(size - 1, 1))
        floor = np.floor(src)
        taps = np.clip(floor.astype(np.int64)[:, None] + np.arange(2), 0, side - 1)
        weights = np.clip(1 - np.abs(src[:, None] - floor[:, None] - np.arange(2, dtype=np.float32)), 0, None)
        return taps, weights.astype(np.float32)

    h_taps, h_weights = axis(rows, h)
    w_taps, w_weights = axis(cols, w)
    indices = (h_taps[:, :, None] * side + w_taps[:, None, :]).reshape(-1, 4)
    weights = (h_weights[:, :, None] * w_weights[:, None, :]).reshape(-1, 4)
    return indices, weights


def rotary_tables(h: int, w: int, head_dim: int, theta: float, merge: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """cos/sin [h*w, head_dim/2]: a quarter of the head's frequencies turned by the row, a quarter by the column."""
    rows, cols = block_order(h, w, merge)
    spatial = head_dim // 2
    inv_freq = (1.0 / (theta ** (np.arange(0, spatial, 2, dtype=np.float32) / spatial))).astype(np.float32)
    angles = np.concatenate([rows[:, None].astype(np.float32) * inv_freq, cols[:, None].astype(np.float32) * inv_freq],
                            axis=-1)
    return np.cos(angles).astype(np.float32), np.sin(angles).astype(np.float32)
