"""numpy preprocessing against transformers' Qwen3.5 image and video processors on the same frames."""

from __future__ import annotations

import ast
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import transformers

from edgekit import vision_preprocess as vp

PIL = pytest.importorskip("PIL.Image")
from transformers.image_utils import PILImageResampling, SizeDict  # noqa: E402
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil  # noqa: E402

# The published Qwen3.5 preprocessor_config.json (patch 16, merge 2, temporal 2, mean = std = 0.5).
IMAGE_DEFAULTS = dict(patch_size=16, merge_size=2, temporal_patch_size=2, image_mean=[0.5] * 3, image_std=[0.5] * 3,
                      size={"shortest_edge": vp.IMAGE_MIN_PIXELS, "longest_edge": vp.IMAGE_MAX_PIXELS})


def _photo(h: int, w: int, seed: int) -> np.ndarray:
    """Smooth gradients plus noise and a sharp edge: exercises every tap of the bicubic kernel."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([x / w * 255, y / h * 255, (x + y) % 64 * 4], axis=-1)
    base[h // 3: h // 2] = 255 - base[h // 3: h // 2]
    return np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def image_processor():
    return Qwen2VLImageProcessorPil(**IMAGE_DEFAULTS)


@pytest.mark.parametrize("hw", [(300, 500), (224, 224), (37, 701), (480, 854)])
def test_image_equals_transformers(image_processor, hw):
    image = _photo(*hw, seed=hw[0])
    ref = image_processor(images=[image], return_tensors="np")
    ours = vp.preprocess_image(image)
    assert list(ours.grid) == ref["image_grid_thw"][0].tolist()
    assert ours.pixels.dtype == np.float32 and ours.pixels.shape == ref["pixel_values"].shape
    np.testing.assert_array_equal(ours.pixels, ref["pixel_values"])  # bit-exact, resize included


def test_image_budget_is_applied(image_processor):
    image = _photo(1200, 1600, seed=1)
    small = dict(min_pixels=64 * 64, max_pixels=448 * 448)
    ours = vp.preprocess_image(image, **small)
    ref = Qwen2VLImageProcessorPil(**{**IMAGE_DEFAULTS, "size": {"shortest_edge": small["min_pixels"],
                                                                  "longest_edge": small["max_pixels"]}})
    ref = ref(images=[image], return_tensors="np")
    assert list(ours.grid) == ref["image_grid_thw"][0].tolist() and ours.grid[1] * ours.grid[2] * 256 <= 448 * 448
    np.testing.assert_array_equal(ours.pixels, ref["pixel_values"])
    assert vp.preprocess_image(_photo(224, 224, 2)).tokens_per_pair == 64  # raised to the 256x256 minimum
    assert vp.preprocess_image(_photo(224, 224, 2), min_pixels=224 * 224).tokens_per_pair == 49
    assert vp.preprocess_image(_photo(448, 448, 2)).tokens_per_pair == 196


def _from_hf_video_processor(name: str, cls: str | None = None):
    """A function of transformers' Qwen3-VL video processor module (the one Qwen3.5 uses), compiled from
    transformers' own source: without torchvision transformers exposes only a placeholder for it, though
    its size rule and ``patchify`` need nothing but math and torch."""
    path = Path(transformers.__file__).parent / "models/qwen3_vl/video_processing_qwen3_vl.py"
    body = ast.parse(path.read_text()).body
    if cls:
        body = next(n for n in body if isinstance(n, ast.ClassDef) and n.name == cls).body
    fn = next(n for n in body if isinstance(n, ast.FunctionDef) and n.name == name)
    namespace = {"torch": torch, "math": math}
    exec(compile(ast.Module([fn], type_ignores=[]), str(path), "exec"), namespace)
    return namespace[name]


def _reference_video(frames: list[np.ndarray], processor: Qwen2VLImageProcessorPil) -> tuple[np.ndarray, list[int]]:
    """transformers' Qwen3-VL video processor (used by Qwen3.5) step by step: its size rule and its patchify;
    each frame resized, rescaled and normalized by transformers' PIL image pipeline (its torchvision-backed
    video resize needs torchvision, which is not installed here; it imitates Pillow on uint8)."""
    size_rule = _from_hf_video_processor("smart_resize")
    h, w = size_rule(len(frames), *frames[0].shape[:2], temporal_factor=2, factor=32,
                     min_pixels=vp.VIDEO_MIN_PIXELS, max_pixels=vp.VIDEO_MAX_PIXELS)
    out = []
    for frame in frames:
        chw = frame.transpose(2, 0, 1)
        chw = super(Qwen2VLImageProcessorPil, processor).resize(chw, SizeDict(height=h, width=w),
                                                                 resample=PILImageResampling.BICUBIC)
        assert chw.shape[1:] == (h, w)
        out.append(processor.normalize(processor.rescale(chw, 1 / 255), [0.5] * 3, [0.5] * 3))
    video = torch.from_numpy(np.stack(out))[None]
    patchify = _from_hf_video_processor("patchify", "Qwen3VLVideoProcessor")
    patches, t, gh, gw = patchify(None, video, patch_size=16, merge_size=2, temporal_patch_size=2)
    return patches[0].numpy(), [t, gh, gw]


@pytest.mark.parametrize("count,hw", [(4, (360, 640)), (3, (240, 320)), (2, (100, 90))])
def test_video_equals_transformers(image_processor, count, hw):
    frames = [_photo(*hw, seed=10 + i) for i in range(count)]
    ref_pixels, ref_grid = _reference_video(frames, image_processor)
    ours = vp.preprocess_video(frames)
    assert list(ours.grid) == ref_grid
    np.testing.assert_array_equal(ours.pixels, ref_pixels)


def test_image_is_a_video_of_two_equal_frames():
    image = _photo(256, 320, seed=3)
    still = vp.preprocess_image(image)
    pair = vp.preprocess_video([image, image], size=(256, 320))
    assert still.grid == pair.grid == (1, 16, 20)
    np.testing.assert_array_equal(still.pixels, pair.pixels)


def test_bad_inputs():
    with pytest.raises(ValueError, match="RGB uint8"):
        vp.preprocess_image(np.zeros((10, 10), np.uint8))
    with pytest.raises(ValueError, match="same size"):
        vp.preprocess_video([_photo(64, 64, 0), _photo(64, 96, 0)])
    with pytest.raises(ValueError, match="multiple of 32"):
        vp.preprocess_video([_photo(64, 64, 0)], size=(60, 64))


def test_video_pairs_are_the_video_pair_by_pair():
    frames = [_photo(240, 320, seed=40 + i) for i in range(5)]
    whole = vp.preprocess_video(frames)
    pairs = list(vp.video_pairs(frames))
    assert [p.grid for p in pairs] == [(1, *whole.grid[1:])] * 3
    np.testing.assert_array_equal(np.concatenate([p.pixels for p in pairs]), whole.pixels)
    with pytest.raises(ValueError, match="same size"):
        next(vp.video_pairs([_photo(64, 64, 0), _photo(64, 96, 0)]))
