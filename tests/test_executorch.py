"""The ExecuTorch backend against transformers, and its state API (the same as the ONNX backend's)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from hf_reference import HFRunner

import edgekit
from edgekit.bundle import Bundle
from edgekit.errors import EdgekitError
from edgekit.runtimes import PromptCache

pytest.importorskip("executorch")
pytestmark = pytest.mark.slow


def _prompt(n: int, seed: int = 0) -> list[int]:
    return np.random.default_rng(seed).integers(0, 240_000, n).tolist()


@pytest.mark.parametrize("length", [1, 7, 64, 200])
def test_fp32_prefill_then_decode_matches_transformers(et_fp32_bundle, tiny_hf, length):
    model = edgekit.load(et_fp32_bundle)
    state, hf = model.new_state(), HFRunner(tiny_hf)
    prompt = _prompt(length)
    ours, ref = model.prefill(state, prompt), hf.feed(prompt)  # 200 tokens: two calls of <= 128
    assert np.abs(ours - ref).max() < 1e-4
    token = int(ref.argmax())
    for _ in range(10):
        ours, ref = model.step(state, token), hf.feed([token])
        assert np.abs(ours - ref).max() < 1e-4
        assert int(ours.argmax()) == int(ref.argmax())
        token = int(ref.argmax())
    # The state read back from the program equals transformers' cache.
    for name, ref_state in hf.states(model.config.deltanet_layers, model.config.attention_layers).items():
        kind, layer = name.split(".")
        ours_state = {"conv": state.conv, "recurrent": state.recurrent, "key": state.keys,
                      "value": state.values}[kind][int(layer)]
        if kind in ("key", "value"):
            ours_state = ours_state[:, :, : state.length]
        assert np.abs(ours_state - ref_state).max() < 1e-4, name


def test_snapshot_restore_and_fork(et_fp32_bundle, tiny_hf):
    """Two states used in turns (the program swaps them in and out) each continue exactly."""
    model = edgekit.load(et_fp32_bundle)
    prompt = _prompt(30, seed=1)
    a = model.new_state()
    model.prefill(a, prompt)
    b = a.copy()  # read out of the program
    la, lb = model.step(a, 11), model.step(b, 22)  # b goes in, a is saved out
    la2 = model.step(a, 12)  # a comes back
    full = HFRunner(tiny_hf).all_logits
    assert np.abs(la - full(prompt + [11])[-1]).max() < 1e-4
    assert np.abs(lb - full(prompt + [22])[-1]).max() < 1e-4
    assert np.abs(la2 - full(prompt + [11, 12])[-1]).max() < 1e-4
    # A state from a fresh new_state() after others were resident starts from zero, not their memory.
    fresh = model.new_state()
    assert np.abs(model.prefill(fresh, prompt[:5]) - full(prompt[:5])[-1]).max() < 1e-4


def test_prompt_cache_on_executorch(et_fp32_bundle):
    model = edgekit.load(et_fp32_bundle)
    system, q1, q2 = _prompt(40, 2), _prompt(9, 3), _prompt(12, 4)
    cache = PromptCache(model, every=0)
    cache.prefill(system + q1, marks=[(len(system), "system")])
    state, cached = cache.prefill(system + q2)
    cold = model.prefill(model.new_state(), system + q2)
    assert np.abs(cached - cold).max() < 1e-5
    assert state.length == len(system + q2)


def test_8da4w_agrees_with_transformers(et_8da4w_bundle, tiny_hf):
    model = edgekit.load(et_8da4w_bundle)
    prompt = _prompt(64, seed=5)
    state = model.new_state()
    ref = HFRunner(tiny_hf).all_logits(prompt)
    agree, rel = [], []
    model.prefill(state, prompt[:8])
    for i in range(8, len(prompt)):  # teacher-forced: every position from a decode step
        logits = model.step(state, prompt[i]) if i > 8 else model.prefill(model.new_state(), prompt[:9])
        agree.append(int(logits.argmax()) == int(ref[i].argmax()))
        rel.append(np.linalg.norm(logits - ref[i]) / np.linalg.norm(ref[i]))
    print(f"8da4w vs fp32 transformers: top-1 {np.mean(agree):.1%}, relative error {np.median(rel):.3f}")
    assert np.mean(agree) >= 0.85
    assert np.median(rel) < 0.25


def test_generate_cli_and_manifest(et_8da4w_bundle):
    manifest = json.loads((et_8da4w_bundle / "manifest.json").read_text())
    assert manifest["backend"] == "executorch" and "llama::gated_delta_rule" in manifest["required_ops"]
    assert not Bundle.open(et_8da4w_bundle).verify_files()
    run = subprocess.run([sys.executable, "-m", "edgekit", "generate", str(et_8da4w_bundle), "-p", "Hi", "-n", "4"],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-500:]
    assert "tok/s" in run.stderr


def test_limits_are_one_line_errors(et_fp32_bundle):
    with pytest.raises(EdgekitError, match="fixed at 512"):
        edgekit.load(et_fp32_bundle, max_context=1024)
    model = edgekit.load(et_fp32_bundle, chunk_size=256)
    with pytest.raises(EdgekitError, match="at most 128"):
        model.prefill(model.new_state(), _prompt(200))
    with pytest.raises(EdgekitError, match="budget is 512"):
        model.prefill(model.new_state(), _prompt(600))


def test_corrupt_pte_is_refused(et_fp32_bundle, tmp_path):
    import shutil

    copy = tmp_path / "b"
    shutil.copytree(et_fp32_bundle, copy)
    with open(copy / "model.pte", "r+b") as f:
        f.seek(100)
        f.write(b"\xff" * 64)
    with pytest.raises(EdgekitError, match="model.pte does not match its sha256"):  # refused before ExecuTorch reads it
        edgekit.load(copy)


def test_kernels_built_for_another_torch_are_one_line(et_fp32_bundle, monkeypatch):
    """executorch 1.5.1's aarch64 wheel over torch 2.10.0 (PyPI's last aarch64 CPU torch): its custom-ops library
    needs a libtorch symbol 2.10.0 lacks, so torch.ops.load_library raises the OSError the aarch64 lane saw; the user
    gets one line with the loader's reason and the torch to install."""
    from edgekit.runtimes import executorch_decoder

    def import_module(name: str):  # torch.ops.load_library's OSError, from ctypes' (the loader's line)
        lib = "/et/lib/python3.11/site-packages/executorch/extension/llm/custom_ops/libcustom_ops_aot_lib.so"
        try:
            raise OSError(f"{lib}: undefined symbol: _ZN5torch7Library4_defEON3c1014FunctionSchemaEPNS1_12OperatorNameE")
        except OSError as loader:
            raise OSError(f"Could not load this library: {lib}") from loader

    monkeypatch.setattr(executorch_decoder.importlib, "import_module", import_module)
    with pytest.raises(EdgekitError, match=r"does not load with torch \d.*undefined symbol: _ZN5torch7Library4_def.*"
                                           r"torch==2\.13\.0 for executorch 1\.5\.1") as err:
        edgekit.load(et_fp32_bundle)
    assert "\n" not in str(err.value)


def test_profile_runs_on_executorch(et_8da4w_bundle):
    from edgekit.device.profiling import ProfileSettings, run_profile

    result = run_profile(et_8da4w_bundle, ProfileSettings(pp=16, tg=8, depth=16, reps=1, breakdown_steps=2),
                         energy=None)
    assert result["bundle"]["backend"] == "executorch" and result["bundle"]["quantization"] == "8da4w"
    assert result["decode_tok_s"]["mean"] > 0 and result["prefill_tok_s"]["mean"] > 0
    parts = result["breakdown"]["ms_per_step_by_module"]
    assert "ETDump" in result["breakdown"]["source"] and parts["linear layers (XNNPACK)"] > 0
    assert {"DeltaNet recurrence", "attention (SDPA)"} <= set(parts)


def test_position_zero_starts_over_like_the_llm_runner(et_fp32_bundle, tiny_hf):
    """ExecuTorch's LLM runner (Android LlmModule) only calls forward(tokens, input_pos), never set_state:
    a new conversation from position 0 must not see the previous one left in the buffers."""
    import torch

    from edgekit.runtimes.executorch_decoder import _import_runtime

    runtime = _import_runtime()[2]
    forward = runtime.get().load_program(et_fp32_bundle / "model.pte").load_method("forward")

    def run(ids: list[int], pos: int) -> np.ndarray:
        return forward.execute([torch.tensor([ids]), torch.tensor([pos])])[0][0].numpy()

    first = _prompt(20, seed=6)
    run(first, 0)
    assert np.abs(run([5], 20) - HFRunner(tiny_hf).all_logits(first + [5])[-1]).max() < 1e-4
    second = _prompt(9, seed=7)
    assert np.abs(run(second, 0) - HFRunner(tiny_hf).all_logits(second)[-1]).max() < 1e-4
