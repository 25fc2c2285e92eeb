"""The vision tower and multimodal prompts against transformers' Qwen3_5ForConditionalGeneration (same random weights)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from hf_reference import greedy_both, hf_prompt
from typer.testing import CliRunner

import edgekit
from edgekit.bundle import Bundle
from edgekit.cli import app
from edgekit.errors import EdgekitError
from edgekit.runtimes import frame_pairs
from edgekit.vision_preprocess import preprocess_image, preprocess_video


def _pixels(h: int, w: int, seed: int) -> np.ndarray:
    return (np.random.default_rng(seed).random((h, w, 3)) * 255).astype(np.uint8)


@pytest.fixture(scope="module")
def fp32_model(fp32_bundle):
    return edgekit.load(fp32_bundle)


@torch.no_grad()
def _hf_tower(hf, vision_input) -> np.ndarray:
    out = hf.model.visual(torch.from_numpy(vision_input.pixels), grid_thw=torch.tensor([vision_input.grid]))
    return out.pooler_output.numpy()


@pytest.mark.parametrize("hw", [(64, 64), (96, 160), (256, 320)])
def test_tower_matches_transformers(fp32_model, tiny_hf, hw):
    image = preprocess_image(_pixels(*hw, seed=hw[1]), min_pixels=32 * 32)
    ours = fp32_model.vision.encode(image)
    ref = _hf_tower(tiny_hf, image)
    assert ours.embeds.shape == ref.shape == (image.tokens_per_pair, fp32_model.config.hidden_size)
    assert np.abs(ours.embeds - ref).max() < 1e-4


def test_tower_video_pairs_attend_within_the_pair(fp32_model, tiny_hf):
    video = preprocess_video([_pixels(64, 96, seed=i) for i in range(6)], size=(64, 96))
    ours = fp32_model.vision.encode(video, "video")
    assert ours.grid == (3, 4, 6)
    assert np.abs(ours.embeds - _hf_tower(tiny_hf, video)).max() < 1e-4
    # Each pair alone gives the same rows: attention never crosses pairs.
    first = fp32_model.vision.encode(preprocess_video([_pixels(64, 96, seed=i) for i in range(2)], size=(64, 96)))
    np.testing.assert_allclose(first.embeds, ours.pairs()[0].embeds, atol=1e-6)


@pytest.mark.parametrize("bundle", ["fp32_bundle", "int4_bundle"])
def test_a_pair_per_call_gives_the_rows_of_one_call_over_all_pairs(bundle, request):
    """The tower runs a frame pair per call (so its activations are one pair's): the rows equal those of
    one call over all pairs, for the fp32 and the int8 (MatMulNBits) tower."""
    model = edgekit.load(request.getfixturevalue(bundle))
    video = preprocess_video([_pixels(64, 96, seed=i) for i in range(6)], size=(64, 96))
    t, h, w = video.grid
    vision = model.vision
    together = vision.session.run(None, {"pixel_values": video.pixels.reshape(t, h * w, -1).astype(np.float32),
                                         **vision.grid_inputs(h, w)})[0]
    np.testing.assert_array_equal(vision.encode(video, "video").embeds, together.reshape(-1, together.shape[-1]))



@pytest.mark.parametrize("bundle", ["fp32_bundle", "int4_bundle"])
def test_frames_preprocessed_pair_by_pair_give_the_rows_of_the_whole_video(bundle, request):
    """``encode_frames`` preprocesses and encodes one pair before the next (only a pair's pixels in memory):
    the rows equal those of the whole video preprocessed at once, an odd last frame included."""
    vision = edgekit.load(request.getfixturevalue(bundle)).vision
    frames = [_pixels(96, 128, seed=30 + i) for i in range(5)]
    for options in ({"size": (64, 96)}, {}):
        whole = vision.encode(preprocess_video(frames, **options), "video")
        pairwise = vision.encode_frames(frames, **options)
        assert pairwise.grid == whole.grid and pairwise.grid[0] == 3 and pairwise.kind == "video"
        np.testing.assert_array_equal(pairwise.embeds, whole.embeds)

def test_int8_tower_is_close_to_fp32(int4_bundle, tiny_hf):
    model = edgekit.load(int4_bundle)
    assert model.bundle.manifest.data["graphs"]["vision"]["weights"] == "int8"
    image = preprocess_image(_pixels(256, 320, seed=5), min_pixels=32 * 32)
    ours, ref = model.vision.encode(image).embeds, _hf_tower(tiny_hf, image)
    rel = float(np.linalg.norm(ours - ref) / np.linalg.norm(ref))
    print(f"int8 vision tower vs fp32 transformers: relative error {rel:.4f}")
    assert rel < 0.05


def test_image_prompt_matches_transformers(fp32_model, tiny_hf):
    model = fp32_model
    image = preprocess_image(_pixels(96, 160, seed=1), min_pixels=32 * 32)  # 3 x 5 merged patches: h != w
    parts = ["<|im_start|>user\n", model.vision.encode(image), "Describe it.<|im_end|>\n<|im_start|>assistant\n"]
    state = model.new_state()
    prompt = model.build_prompt(state, parts)
    logits = model.prefill_multimodal(state, parts)
    ref, cache, positions = hf_prompt(tiny_hf, prompt.ids, image=image)
    np.testing.assert_array_equal(prompt.positions, positions)
    assert state.next_position == positions.max() + 1 and state.length == len(prompt)
    assert np.abs(logits - ref).max() < 1e-4
    greedy_both(model, state, logits, tiny_hf, cache, ref)


def test_video_prompt_matches_transformers(fp32_model, tiny_hf):
    model = fp32_model
    video = preprocess_video([_pixels(64, 128, seed=10 + i) for i in range(5)], size=(64, 128))  # odd: last repeated
    pairs = frame_pairs(model.vision.encode(video, "video"), [0.0, 0.5, 1.0, 1.5, 2.0])
    assert [p.seconds for p in pairs] == [0.25, 1.25, 2.0]
    parts = ["<|im_start|>user\n", *pairs, "What happens?<|im_end|>\n<|im_start|>assistant\n"]
    state = model.new_state()
    prompt = model.build_prompt(state, parts)
    assert "<1.2 seconds><|vision_start|><|video_pad|>" in model.tokenizer.decode(prompt.ids)
    logits = model.prefill_multimodal(state, parts)
    ref, cache, positions = hf_prompt(tiny_hf, prompt.ids, video=video)
    np.testing.assert_array_equal(prompt.positions, positions)
    assert np.abs(logits - ref).max() < 1e-4
    greedy_both(model, state, logits, tiny_hf, cache, ref)


def test_live_pairs_fed_one_by_one_equal_one_prompt(fp32_bundle):
    """The video summarizer's way: append each pair (with its time) to a live state, small chunks included."""
    model = edgekit.load(fp32_bundle, chunk_size=5)
    video = model.vision.encode_frames([_pixels(64, 64, seed=20 + i) for i in range(6)], size=(64, 64))
    pairs = frame_pairs(video, [0.0, 0.5, 1.0, 1.5, 2.0, 2.5])
    whole = model.new_state()
    expected = model.prefill_multimodal(whole, ["<|im_start|>user\n", *pairs, "Summarize."])
    live = model.new_state()
    model.prefill_multimodal(live, ["<|im_start|>user\n"])
    for pair in pairs:
        model.prefill_multimodal(live, [pair])
    logits = model.prefill_multimodal(live, ["Summarize."])
    assert live.next_position == whole.next_position and live.tokens == whole.tokens
    np.testing.assert_allclose(logits, expected, atol=1e-5)


def test_manifest_and_errors(fp32_model, int4_bundle, tmp_path):
    spec = fp32_model.bundle.manifest.data["graphs"]["vision"]
    assert spec["token_ids"] == {"image": 248056, "video": 248057, "vision_start": 248053, "vision_end": 248054}
    assert spec["merge_size"] == 2 and spec["patch_size"] == 16 and spec["position_grid"] == 48
    assert {"vision.onnx", "vision.onnx.data"} <= set(fp32_model.bundle.manifest.data["files"])
    assert Bundle.open(int4_bundle).verify_files() == []
    verify = CliRunner().invoke(app, ["verify", str(int4_bundle)])
    assert verify.exit_code == 0 and "graphs load (decoder and vision)" in verify.output
    assert "vision      int8 weights" in CliRunner().invoke(app, ["info", str(int4_bundle)]).output
    broken = tmp_path / "broken"
    shutil.copytree(int4_bundle, broken)
    raw = bytearray((broken / "vision.onnx.data").read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    (broken / "vision.onnx.data").write_bytes(bytes(raw))
    verify = CliRunner().invoke(app, ["verify", str(broken)])
    assert verify.exit_code == 1 and "vision.onnx.data: sha256" in verify.output

    small = edgekit.load(fp32_model.bundle.path, max_context=32)
    image = small.vision.encode_image(_pixels(256, 256, seed=0))  # 64 tokens
    with pytest.raises(EdgekitError, match="budget is 32"):
        small.prefill_multimodal(small.new_state(), ["Look:", image])

    text_only = tmp_path / "text-only"
    shutil.copytree(int4_bundle, text_only)
    manifest = json.loads((text_only / "manifest.json").read_text())
    del manifest["graphs"]["vision"]
    (text_only / "manifest.json").write_text(json.dumps(manifest))
    model = edgekit.load(text_only)
    with pytest.raises(EdgekitError, match="has no vision graph"):
        model.vision
    with pytest.raises(EdgekitError, match="has no vision graph"):
        model.prefill_multimodal(model.new_state(), ["Look:", image])
