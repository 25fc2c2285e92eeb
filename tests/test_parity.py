"""Exported graphs against transformers on the same random weights: logits, states, tokens."""

from __future__ import annotations

import numpy as np
import pytest

import edgekit
from edgekit.bundle import Bundle
from hf_reference import HFRunner

PREFILL_LENGTHS = [1, 7, 64, 200]
DECODE_STEPS = 10


def _prompt(n: int, seed: int = 0) -> list[int]:
    return np.random.default_rng(seed).integers(0, 248_000, n).tolist()


def _greedy_run(feed, prompt: list[int], steps: int) -> tuple[list[np.ndarray], list[int]]:
    """Prefill ``prompt`` then ``steps`` greedy decode steps through ``feed``; logits and tokens."""
    logits = [feed(prompt)]
    tokens = []
    for _ in range(steps):
        tokens.append(int(np.argmax(logits[-1])))
        logits.append(feed([tokens[-1]]))
    return logits, tokens


@pytest.mark.parametrize("bundle_fixture", ["fp32_bundle", "fp32_scan_bundle"])
@pytest.mark.parametrize("length", PREFILL_LENGTHS)
def test_fp32_prefill_then_decode_matches_transformers(request, tiny_hf, bundle_fixture, length):
    model = edgekit.load(request.getfixturevalue(bundle_fixture))
    state = model.new_state()
    ours, our_tokens = _greedy_run(lambda ids: model.prefill(state, ids), _prompt(length), DECODE_STEPS)
    hf = HFRunner(tiny_hf)
    ref, ref_tokens = _greedy_run(hf.feed, _prompt(length), DECODE_STEPS)
    for step, (a, b) in enumerate(zip(ours, ref)):
        assert np.abs(a - b).max() < 1e-4, f"step {step}: max |diff| {np.abs(a - b).max()}"
    assert our_tokens == ref_tokens
    # The final state equals transformers' cache.
    cfg = model.config
    ref_states = hf.states(cfg.deltanet_layers, cfg.attention_layers)
    for name, arr in state.state.items():
        assert arr.shape == ref_states[name].shape, name
        np.testing.assert_allclose(arr, ref_states[name], atol=1e-4, rtol=1e-4, err_msg=name)


def test_uneven_chunks_equal_one_prefill(fp32_bundle, tiny_hf):
    prompt = _prompt(200, seed=1)
    model = edgekit.load(fp32_bundle, chunk_size=64)  # 64 + 64 + 64 + 8 inside, plus uneven calls below
    state = model.new_state()
    for a, b in [(0, 3), (3, 53), (53, 64), (64, 200)]:
        logits = model.prefill(state, prompt[a:b])
    ref = HFRunner(tiny_hf).feed(prompt)
    assert np.abs(logits - ref).max() < 1e-4
    assert state.length == 200 and state.tokens == prompt


def test_greedy_generation_identical_token_for_token(fp32_bundle, tiny_hf):
    model = edgekit.load(fp32_bundle)
    prompt = model.tokenizer.encode("<|im_start|>user\nWrite a haiku about the sea.<|im_end|>\n<|im_start|>assistant\n")
    ours = list(model.generate(prompt, max_new_tokens=30, stop_ids=[]))
    hf = HFRunner(tiny_hf)
    vocab = model.tokenizer.vocab_size

    def feed_masked(ids):  # generate() never samples the embedding's padding rows; mask them alike
        logits = hf.feed(ids)
        logits[vocab:] = -np.inf
        return logits

    _, ref = _greedy_run(feed_masked, prompt, 30)
    assert ours == ref


@pytest.mark.parametrize("bundle_fixture", ["int4_bundle", "int4_block64_bundle"])
def test_int4_top1_agreement(request, bundle_fixture, tiny_hf):
    """int4 vs the fp32 reference, teacher-forced over 128 positions: top-1 agreement >= 95%."""
    seq = _prompt(128, seed=2)
    ref = HFRunner(tiny_hf).all_logits(seq)
    bundle = request.getfixturevalue(bundle_fixture)
    block = Bundle.open(bundle).manifest.quantization["block_size"]
    model = edgekit.load(bundle)
    state = model.new_state()
    ours = np.stack([model.step(state, t) for t in seq])
    agree = float(np.mean(ours.argmax(-1) == ref.argmax(-1)))
    rel_err = float(np.linalg.norm(ours - ref) / np.linalg.norm(ref))
    print(f"int4 (block {block}) vs fp32 transformers: top-1 agreement {agree:.3f}, relative logit error {rel_err:.4f}")
    assert agree >= 0.95, f"top-1 agreement {agree:.3f}, relative logit error {rel_err:.4f}"
