"""Prefix reuse: a prompt resumed from a checkpoint gives what a cold prefill gives, and skips the prefix."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

import edgekit
from edgekit.errors import EdgekitError
from edgekit.runtimes import PromptCache


def _ids(n: int, seed: int) -> list[int]:
    return np.random.default_rng(seed).integers(0, 248_000, n).tolist()


def _cold(model, ids):
    return model.prefill(model.new_state(), ids)


@pytest.fixture(scope="module")
def model(fp32_bundle):
    return edgekit.load(fp32_bundle, chunk_size=16)


def test_shared_system_prompt(model):
    system, q1, q2 = _ids(40, 1), _ids(9, 2), _ids(13, 3)
    cache = PromptCache(model)
    cache.prefill(system + q1, marks=[(len(system), "system")])
    state, logits = cache.prefill(system + q2)
    assert cache.hits == len(system)
    np.testing.assert_allclose(logits, _cold(model, system + q2), atol=1e-5)
    assert state.length == len(system + q2) and state.tokens == system + q2


def test_multi_turn_chat_resumes_at_each_turn(model):
    cache = PromptCache(model)
    conversation = []
    for turn in range(3):
        conversation += _ids(12, 10 + turn)
        state, logits = cache.prefill(conversation, marks=[(len(conversation), "turn")])
        np.testing.assert_allclose(logits, _cold(model, conversation), atol=1e-5)
        reply = list(model.generate([int(np.argmax(logits))], state=state, max_new_tokens=5, stop_ids=[]))
        conversation += [int(np.argmax(logits))] + reply
    # Turn 2 resumed after turn 1's prompt (12 tokens), turn 3 after turn 2's (12 + 6 replied + 12 = 30).
    assert cache.hits == 12 + 30


def test_fork_into_three_branches(model):
    prefix = _ids(50, 4)
    cache = PromptCache(model)
    cache.prefill(prefix + [7], marks=[(len(prefix), "segment")])
    for seed in (5, 6, 7):
        question = _ids(6, seed)
        _, logits = cache.prefill(prefix + question)
        np.testing.assert_allclose(logits, _cold(model, prefix + question), atol=1e-5)
    assert cache.hits == 3 * len(prefix)


def test_divergence_inside_a_turn_falls_back_to_the_earlier_checkpoint(model):
    ids = _ids(60, 8)
    cache = PromptCache(model)
    cache.prefill(ids, marks=[(20, "turn"), (40, "turn")])
    edited = ids[:30] + _ids(10, 9)  # shares 30 tokens: the checkpoint at 40 does not apply
    _, logits = cache.prefill(edited)
    assert cache.hits == 20
    np.testing.assert_allclose(logits, _cold(model, edited), atol=1e-5)


def test_periodic_checkpoints_and_budget_eviction(model):
    ids = _ids(64, 11)
    one = PromptCache(model)
    one.prefill(ids[:17], marks=[(17, "turn")])
    per_checkpoint = one.nbytes
    cache = PromptCache(model, budget_bytes=int(per_checkpoint * 3.5), every=16)
    cache.prefill(ids, marks=[(17, "turn")])  # turn at 17, periodic at 16, 32, 48, 64
    assert len(cache) < 5 and cache.nbytes <= cache.budget_bytes  # 5 were taken; the budget forced evictions
    assert cache.longest_prefix(ids[:18]).kind == "turn"  # the turn boundary outlived older periodic ones


def test_int4_cached_generation_equals_cold(int4_bundle):
    model = edgekit.load(int4_bundle, chunk_size=16)
    cache = PromptCache(model)
    prefix, suffix = _ids(48, 12), _ids(8, 13)
    cache.prefill(prefix + [1], marks=[(len(prefix), "turn")])
    state, logits = cache.prefill(prefix + suffix)
    warm = list(model.generate([int(np.argmax(logits))], state=state, max_new_tokens=8, stop_ids=[]))
    cold_state = model.new_state()
    cold_logits = model.prefill(cold_state, prefix + suffix)
    cold = list(model.generate([int(np.argmax(cold_logits))], state=cold_state, max_new_tokens=8, stop_ids=[]))
    assert cache.hits == len(prefix) and warm == cold


def test_restore_from_disk_in_a_new_process(model, fp32_bundle, tmp_path):
    prefix, suffix = _ids(45, 14), _ids(7, 15)
    cache = PromptCache(model)
    cache.prefill(prefix + [3], marks=[(len(prefix), "turn")])
    cache.save(tmp_path / "cache.npz")
    np.save(tmp_path / "cold.npy", _cold(model, prefix + suffix))
    code = textwrap.dedent(f"""
        import numpy as np, edgekit
        from edgekit.runtimes import PromptCache
        model = edgekit.load({str(fp32_bundle)!r}, chunk_size=16)
        cache = PromptCache.load(model, {str(tmp_path / 'cache.npz')!r})
        _, logits = cache.prefill({prefix + suffix!r})
        assert cache.hits == {len(prefix)}, cache.hits
        np.testing.assert_allclose(logits, np.load({str(tmp_path / 'cold.npy')!r}), atol=1e-5)
        print("OK")
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "OK" in proc.stdout, proc.stderr[-2000:]


def test_bad_caches_are_refused(model, int4_bundle, tmp_path):
    cache = PromptCache(model)
    cache.prefill(_ids(20, 16), marks=[(10, "turn")])
    path = tmp_path / "cache.npz"
    cache.save(path)
    with pytest.raises(EdgekitError, match="belongs to another bundle"):
        PromptCache.load(edgekit.load(int4_bundle), path)
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(EdgekitError, match="unreadable"):
        PromptCache.load(model, truncated)
    with pytest.raises(EdgekitError, match="no prompt cache"):
        PromptCache.load(model, tmp_path / "missing.npz")
    with pytest.raises(EdgekitError, match="budget"):
        PromptCache(model, budget_bytes=0)
    assert "\n" not in str(EdgekitError("x", "y"))
