"""The .pte bundle's vision methods against transformers: ``vision_encoder`` (fixed frame size) and
``forward_rows`` (vision rows, mRoPE positions), the camera prompt in the manifest, and text-only .pte errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hf_reference import HFRunner, greedy_both, hf_prompt
from typer.testing import CliRunner

import edgekit
from edgekit.cli import app
from edgekit.errors import EdgekitError
from edgekit.multimodal import VisionEmbeds, vision_positions
from edgekit.runtimes import frame_pairs
from edgekit.vision_preprocess import preprocess_video

pytest.importorskip("executorch")
pytestmark = pytest.mark.slow

SIZE = 96  # the fixture's --vision-size: 6 x 6 patches, 3 x 3 = 9 tokens per frame pair


def _pixels(h: int, w: int, seed: int) -> np.ndarray:
    return (np.random.default_rng(seed).random((h, w, 3)) * 255).astype(np.uint8)


@pytest.fixture(scope="module")
def model(et_fp32_bundle):
    return edgekit.load(et_fp32_bundle)


def _reference_input(frames):
    """What transformers' processor gives for frames resized to SIZE x SIZE (the same Pillow bicubic)."""
    return preprocess_video(frames, size=(SIZE, SIZE))


@torch.no_grad()
def _hf_tower(hf, vision_input) -> np.ndarray:
    return hf.model.visual(torch.from_numpy(vision_input.pixels),
                           grid_thw=torch.tensor([vision_input.grid])).pooler_output.numpy()


def test_vision_encoder_matches_transformers(model, tiny_hf):
    frames = [_pixels(120, 80, seed=1), _pixels(120, 80, seed=2)]  # not square: squashed to SIZE x SIZE
    ours = model.vision.encode_frames(frames)
    assert ours.grid == (1, SIZE // 16, SIZE // 16) and ours.embeds.shape == (9, model.config.hidden_size)
    assert np.abs(ours.embeds - _hf_tower(tiny_hf, _reference_input(frames))).max() < 1e-4


def test_release_vision_frees_the_method_and_it_loads_again(et_fp32_bundle):
    model = edgekit.load(et_fp32_bundle)  # its own program: the module's model keeps its methods
    frames = [_pixels(SIZE, SIZE, seed=3), _pixels(SIZE, SIZE, seed=4)]
    first = model.vision.encode_frames(frames).embeds
    program, method = model.decoder._program, model.bundle.manifest.vision.method
    assert program._methods[method] is not None  # ExecuTorch's Program caches each method it loads
    model.release_vision()
    assert program._methods[method] is None  # so releasing the encoder must clear that entry too
    assert np.array_equal(model.vision.encode_frames(frames).embeds, first)


def test_8da8w_vision_encoder_is_close(tiny_hf):
    """The quantized tower alone (the same build and lowering as the 8da4w bundle's ``vision_encoder``)."""
    from executorch.runtime import Runtime

    from edgekit.export.checkpoint import load_checkpoint
    from edgekit.export.executorch_export import build_vision, lower

    tower = build_vision(load_checkpoint("tiny-random"), "8da4w", SIZE)
    frames = [_pixels(SIZE, SIZE, seed=3), _pixels(SIZE, SIZE, seed=4)]
    pixels = torch.from_numpy(np.stack(frames).transpose(0, 3, 1, 2).astype(np.float32))
    with torch.no_grad():
        program = torch.export.export(tower, (pixels,), strict=False)
    method = Runtime.get().load_program(lower({"vision_encoder": program}, {})).load_method("vision_encoder")
    ours, ref = method.execute([pixels])[0].numpy(), _hf_tower(tiny_hf, _reference_input(frames))
    rel = float(np.linalg.norm(ours - ref) / np.linalg.norm(ref))
    print(f"8da8w vision_encoder vs fp32 transformers: relative error {rel:.4f}")
    assert rel < 0.05


def test_image_prompt_matches_transformers(model, tiny_hf):
    pixels = _pixels(80, 120, seed=5)
    parts = ["<|im_start|>user\n", model.vision.encode_image(pixels), "Describe it.<|im_end|>\n<|im_start|>assistant\n"]
    state = model.new_state()
    prompt = model.build_prompt(state, parts)
    logits = model.prefill_multimodal(state, parts)
    still = _reference_input([pixels, pixels])
    ref, cache, positions = hf_prompt(tiny_hf, prompt.ids, image=still)
    np.testing.assert_array_equal(prompt.positions, positions)
    assert state.next_position < state.length  # rotary positions run behind the cache slots from here on
    assert np.abs(logits - ref).max() < 1e-4
    greedy_both(model, state, logits, tiny_hf, cache, ref)  # decode steps go through forward_rows


def test_video_prompt_matches_transformers(model, tiny_hf):
    frames = [_pixels(SIZE, SIZE, seed=10 + i) for i in range(3)]  # odd: the last frame is repeated
    pairs = frame_pairs(model.vision.encode_frames(frames), [0.0, 0.5, 1.0])
    parts = ["<|im_start|>user\n", *pairs, "What happens?<|im_end|>\n<|im_start|>assistant\n"]
    state = model.new_state()
    prompt = model.build_prompt(state, parts)
    logits = model.prefill_multimodal(state, parts)
    ref, cache, positions = hf_prompt(tiny_hf, prompt.ids, video=_reference_input(frames))
    np.testing.assert_array_equal(prompt.positions, positions)
    assert np.abs(logits - ref).max() < 1e-4
    greedy_both(model, state, logits, tiny_hf, cache, ref, steps=3)


def test_text_through_forward_rows_equals_forward(model, tiny_hf):
    ids = np.random.default_rng(6).integers(0, 240_000, 20)
    positions = np.broadcast_to(np.arange(20), (3, 20))
    by_forward = model.decoder.forward(model.new_state(), ids, positions)
    rows_state = model.new_state()
    by_rows = model.decoder.forward(rows_state, ids, positions, np.zeros((20, model.config.hidden_size), np.float32))
    np.testing.assert_allclose(by_rows, by_forward, atol=1e-5)
    assert np.abs(by_rows - HFRunner(tiny_hf).all_logits(ids.tolist())[-1]).max() < 1e-4
    # Slot 0 restarts the DeltaNet state left in the program (as forward does for the LLM runner): the
    # resident state is rewound without set_state, so the buffers still hold the first pass.
    rows_state.length = 0
    again = model.decoder.forward(rows_state, ids, positions, np.zeros((20, model.config.hidden_size), np.float32))
    np.testing.assert_allclose(again, by_forward, atol=1e-5)


def test_camera_prompt_is_what_the_app_feeds(model, tiny_hf):
    """The manifest's pre-tokenized prompt, fed the way the Android app does (prefix + pads + suffix with
    positions from the grid), matches transformers on the same frame pair as a video."""
    spec = model.bundle.manifest.data["graphs"]["vision"]
    camera, n, grid = spec["camera_prompt"], spec["tokens_per_pair"], spec["grid"]
    assert (n, grid, spec["frame_size"]) == (9, [1, 6, 6], [SIZE, SIZE])
    ids = camera["prefix"] + [camera["pad_id"]] * n + camera["suffix"]
    text = model.tokenizer.decode(ids)
    assert text == camera["text"].replace("<|video_pad|>", "<|video_pad|>" * n)
    assert text.endswith("<|vision_end|>\nDescribe what you see in one short sentence.<|im_end|>\n"
                         "<|im_start|>assistant\n<think>\n\n</think>\n\n")

    frames = [_pixels(SIZE, SIZE, seed=20), _pixels(SIZE, SIZE, seed=21)]
    embeds = model.vision.encode_frames(frames).embeds
    p, side = len(camera["prefix"]), grid[1] // 2
    after = np.arange(len(camera["suffix"])) + p + side  # text after a block: its start + max(h, w) / 2
    positions = np.concatenate([np.broadcast_to(np.arange(p), (3, p)), vision_positions(p, side, side),
                                np.broadcast_to(after, (3, len(after)))], axis=1)
    rows = np.zeros((len(ids), model.config.hidden_size), np.float32)
    rows[p:p + n] = embeds
    tokens = np.array(ids)
    tokens[p:p + n] = -1
    state = model.new_state()
    logits = model.decoder.forward(state, tokens, positions, rows)
    ref, _, hf_positions = hf_prompt(tiny_hf, np.array(ids), video=_reference_input(frames))
    np.testing.assert_array_equal(positions, hf_positions)
    assert np.abs(logits - ref).max() < 1e-4
    # The runtime's own prompt builder puts the same rows at the same positions.
    still = VisionEmbeds(embeds, tuple(grid), "image")
    built = model.build_prompt(model.new_state(), [camera["prefix"][:-1], still, camera["suffix"][1:]])
    np.testing.assert_array_equal(built.positions, positions)


def test_manifest_cli_and_captioner(model, et_fp32_bundle):
    from edgekit.video.captioner import VisionCaptioner

    manifest = model.bundle.manifest.data
    assert manifest["graphs"]["decoder"]["methods"] == ["forward", "forward_rows", "get_state", "set_state"]
    spec = manifest["graphs"]["vision"]
    assert spec["file"] == "model.pte" and spec["method"] == "vision_encoder" and spec["weights"] == "fp32"
    assert spec["token_ids"]["video"] == spec["camera_prompt"]["pad_id"]
    assert spec["merge_size"] == 2 and spec["out_hidden_size"] == model.config.hidden_size
    # In this process, on purpose: verify must leave ExecuTorch's process-wide thread pool alone, or the
    # program `model` holds aborts on its next run (the captioner below runs it).
    verify = CliRunner().invoke(app, ["verify", str(et_fp32_bundle)])
    assert verify.exit_code == 0 and "graphs load (decoder and vision)" in verify.output, verify.output[-500:]
    assert f"frames fixed at {SIZE}x{SIZE}" in CliRunner().invoke(app, ["info", str(et_fp32_bundle)]).output
    frames = [np.full((SIZE, SIZE, 3), 200, np.uint8)] * 2  # BGR, as the summarizer reads them
    assert VisionCaptioner(model, caption_tokens=2).caption(frames, [0.0, 0.5]) is not None


def test_text_only_pte_refuses_images(et_8da4w_bundle, model):
    text_only = edgekit.load(et_8da4w_bundle)
    assert "forward_rows" not in text_only.bundle.manifest.data["graphs"]["decoder"]["methods"]
    with pytest.raises(EdgekitError, match="has no vision graph"):
        text_only.vision
    image = model.vision.encode_image(_pixels(SIZE, SIZE, seed=0))
    with pytest.raises(EdgekitError, match="has no vision graph"):
        text_only.prefill_multimodal(text_only.new_state(), ["Look:", image])
    with pytest.raises(EdgekitError, match="text-only"):
        text_only.decoder.forward(text_only.new_state(), np.array([-1]), np.zeros((3, 1), np.int64), image.embeds[:1])
    result = CliRunner().invoke(app, ["describe", str(model.bundle.path), "a.png", "--max-pixels", "50176"])
    assert result.exit_code == 2 and "--max-pixels does not apply" in result.stderr


@pytest.mark.parametrize("args, message", [
    (["--format", "onnx", "--vision-size", "96"], "--vision-size is for --format executorch"),
    (["--format", "executorch", "--vision-quant", "int8"], "--vision-quant is for --format onnx"),
    (["--format", "executorch", "--vision-size", "100"], "--vision-size 100 is not a positive multiple of 32"),
])
def test_vision_export_options_are_checked(args, message, tmp_path):
    result = CliRunner().invoke(app, ["export", "tiny-random", "-o", str(tmp_path / "b"), *args])
    assert result.exit_code == 2 and message in result.stderr and not (tmp_path / "b").exists()
