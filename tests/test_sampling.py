"""Sampler behaviour on explicit logits: greedy, top-k, top-p, repetition penalty, seeds, validation."""

import math

import numpy as np
import pytest

from edgekit.errors import EdgekitError
from edgekit.sampling import Sampler, SamplingParams, pick

VOCAB = 248_320


def _random_logits(seed: int, size: int = VOCAB) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 3, size).astype(np.float32)


def _draws(params: SamplingParams, logits: np.ndarray, n: int) -> list[int]:
    sampler = Sampler(params)
    return [sampler.sample(logits, []) for _ in range(n)]


def test_greedy_picks_first_argmax() -> None:
    sampler = Sampler(SamplingParams())
    for seed in range(3):
        logits = _random_logits(seed)
        assert sampler.sample(logits, []) == int(np.argmax(logits))
    assert sampler.sample(np.array([1.0, 3.0, 3.0], dtype=np.float32), []) == 1


def test_top_k_1_equals_greedy() -> None:
    sampler = Sampler(SamplingParams(temperature=1.5, top_k=1, seed=0))
    for seed in range(5):
        logits = _random_logits(seed)
        assert sampler.sample(logits, []) == int(np.argmax(logits))


def test_top_k_keeps_only_the_k_best() -> None:
    logits = _random_logits(7)
    best = set(np.argsort(logits)[-5:].tolist())
    draws = _draws(SamplingParams(temperature=5.0, top_k=5, seed=1), logits, 300)
    assert set(draws) == best


def test_same_seed_same_tokens() -> None:
    params = SamplingParams(temperature=1.0, top_k=50, top_p=0.9, seed=123)
    rows = [_random_logits(seed) for seed in range(20)]
    first, second = Sampler(params), Sampler(params)
    tokens = [first.sample(row, []) for row in rows]
    assert tokens == [second.sample(row, []) for row in rows]
    other = Sampler(SamplingParams(temperature=1.0, top_k=50, top_p=0.9, seed=124))
    assert tokens != [other.sample(row, []) for row in rows]


def test_top_p_keeps_the_nucleus() -> None:
    logits = np.log(np.array([0.04, 0.5, 0.06, 0.3, 0.1])).astype(np.float32)
    draws = _draws(SamplingParams(temperature=1.0, top_p=0.75, seed=0), logits, 4000)
    assert set(draws) == {1, 3}  # 0.5 + 0.3 >= 0.75
    assert 0.58 < draws.count(1) / len(draws) < 0.67  # renormalised: 0.5 / 0.8 = 0.625
    assert set(_draws(SamplingParams(temperature=1.0, top_p=0.85, seed=0), logits, 4000)) == {1, 3, 4}
    assert _draws(SamplingParams(temperature=1.0, top_p=0.3, seed=0), logits, 50) == [1] * 50


def test_top_p_on_full_vocab_never_leaves_the_nucleus() -> None:
    logits = np.full(VOCAB, -10.0, dtype=np.float32)
    logits[[11, 222, 3333]] = [5.0, 4.5, 4.0]
    draws = _draws(SamplingParams(temperature=1.0, top_p=0.9, seed=3), logits, 200)
    assert set(draws) <= {11, 222, 3333} and len(set(draws)) > 1


def test_top_p_on_a_flat_distribution() -> None:
    logits = np.full(5000, -50.0, dtype=np.float32)
    logits[:2000] = -0.001 * np.arange(2000)  # decreasing with the index, nearly flat
    probs = np.exp(logits.astype(np.float64) - logits.max())
    probs /= probs.sum()
    nucleus_size = int(np.searchsorted(np.cumsum(np.sort(probs)[::-1]), 0.5)) + 1
    draws = _draws(SamplingParams(temperature=1.0, top_p=0.5, seed=5), logits, 3000)
    assert 0.9 * nucleus_size < max(draws) < nucleus_size


def test_top_k_with_spread_and_masked_logits() -> None:
    spread = np.full(5000, -1000.0, dtype=np.float32)
    spread[[7, 70, 700]] = [100.0, 50.0, 0.0]  # far apart: the k best are not near the max
    assert set(_draws(SamplingParams(temperature=100.0, top_k=3, seed=0), spread, 300)) == {7, 70, 700}
    masked = np.full(5000, -np.inf, dtype=np.float32)
    masked[[5, 9]] = [1.0, 0.5]  # fewer allowed tokens than k
    assert set(_draws(SamplingParams(temperature=1.0, top_k=20, seed=0), masked, 300)) == {5, 9}


def test_repetition_penalty_changes_argmax() -> None:
    positive = np.array([2.0, 1.9, -1.0], dtype=np.float32)
    sampler = Sampler(SamplingParams(repetition_penalty=1.2))
    assert sampler.sample(positive, []) == 0
    assert sampler.sample(positive, [0, 0]) == 1  # 2.0 / 1.2 < 1.9
    assert positive.tolist() == pytest.approx([2.0, 1.9, -1.0])  # input not modified
    negative = np.array([-1.0, -1.1], dtype=np.float32)
    assert sampler.sample(negative, [0]) == 1  # -1.0 * 1.2 < -1.1
    assert Sampler(SamplingParams()).sample(positive, [0]) == 0  # penalty 1.0 is off


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("temperature", -0.1),
        ("temperature", math.nan),
        ("top_k", -1),
        ("top_k", 2.5),
        ("top_p", 0.0),
        ("top_p", 1.01),
        ("repetition_penalty", 0.0),
        ("repetition_penalty", -1.0),
        ("seed", -1),
    ],
)
def test_invalid_params_raise_one_line(field: str, value: float) -> None:
    with pytest.raises(EdgekitError) as err:
        SamplingParams(**{field: value})
    message = str(err.value)
    assert "\n" not in message
    assert f"{field}={value!r}" in message


def test_logits_must_be_one_row() -> None:
    with pytest.raises(EdgekitError):
        Sampler(SamplingParams()).sample(np.zeros((2, 4), dtype=np.float32), [])


def test_pick_uses_the_canonical_candidate_order() -> None:
    """The portable spec: top-k ties keep the lowest ids; candidates run logit-descending, then id-ascending."""
    logits = np.array([1.0, 3.0, 3.0, 3.0, 0.0, 5.0], dtype=np.float32)
    params = SamplingParams(temperature=1.0, top_k=3)
    assert [pick(params, logits, [], u) for u in (0.0, 0.85, 0.95)] == [5, 1, 2]  # 3 (a tie) is left out
    flat = SamplingParams(temperature=1.0)  # no top-k: id order
    assert pick(flat, np.zeros(4, dtype=np.float32), [], 0.3) == 1
