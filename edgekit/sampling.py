"""Next-token sampling on a logits row (numpy only): repetition penalty, temperature, top-k, top-p."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from numbers import Integral, Real

import numpy as np

from edgekit.errors import EdgekitError


@dataclass(frozen=True)
class SamplingParams:
    """How to pick the next token. ``temperature == 0`` is greedy; ``top_k == 0`` turns top-k off."""

    temperature: float = 0.0
    top_k: int = 0
    top_p: float = 1.0
    repetition_penalty: float = 1.0
    seed: int | None = None

    def __post_init__(self) -> None:
        t, k, p, r, s = self.temperature, self.top_k, self.top_p, self.repetition_penalty, self.seed
        _require("temperature", t, _is_real(t) and t >= 0, ">= 0 (0 = greedy)")
        _require("top_k", k, isinstance(k, Integral) and k >= 0, "an integer >= 0 (0 = off)")
        _require("top_p", p, _is_real(p) and 0 < p <= 1, "in (0, 1] (1 = off)")
        _require("repetition_penalty", r, _is_real(r) and r > 0, "> 0 (1 = off)")
        _require("seed", s, s is None or (isinstance(s, Integral) and s >= 0), "None or an integer >= 0")


def _is_real(value: object) -> bool:
    return isinstance(value, Real) and math.isfinite(value)


def _require(name: str, value: object, ok: bool, allowed: str) -> None:
    """Raise a one-line EdgekitError naming the bad value and the allowed range."""
    if not ok:
        raise EdgekitError(f"{name}={value!r} is out of range", f"Use {name} {allowed}")


class Sampler:
    """Picks token ids from logits rows; owns its random generator, so a fixed seed repeats the same tokens."""

    def __init__(self, params: SamplingParams) -> None:
        self.params = params
        self._rng = np.random.Generator(np.random.PCG64(params.seed))

    def sample(self, logits: np.ndarray, history: Sequence[int]) -> int:
        """Return the next token id for a 1-D logits row, given the ids seen so far."""
        return pick(self.params, logits, history, self._rng.random())


def pick(params: SamplingParams, logits: np.ndarray, history: Sequence[int], u: float) -> int:
    """The token a uniform number ``u`` in [0, 1) selects: the deterministic part of sampling.

    The portable sampling spec (the Android app's Kotlin sampler follows it, checked by the shared
    vectors in ``tests/vectors``): repetition penalty on float32 logits; greedy (first argmax) when
    ``temperature == 0`` or ``top_k == 1``; otherwise the candidates in canonical order (logit
    descending, then token id ascending; all ids in id order without top-k), softmax in float64 of
    ``logit / temperature``, the top-p nucleus (shortest prefix of the probability-descending order
    reaching ``top_p``), and the first candidate whose cumulative probability exceeds ``u * total``.
    """
    p = params
    logits = np.asarray(logits)
    if logits.ndim != 1:
        raise EdgekitError(f"logits have shape {logits.shape}", "Pass one row of logits (a 1-D array)")
    if p.repetition_penalty != 1.0 and len(history):
        logits = _penalize(logits, history, p.repetition_penalty)
    if p.temperature == 0 or p.top_k == 1:
        return int(np.argmax(logits))

    candidates = _top_k(logits, p.top_k) if 0 < p.top_k < logits.size else np.arange(logits.size)
    scaled = logits[candidates].astype(np.float64) / p.temperature
    probs = np.exp(scaled - scaled.max())
    probs /= probs.sum()

    if p.top_p < 1.0:
        nucleus = _nucleus(probs, p.top_p)
        candidates, probs = candidates[nucleus], probs[nucleus]

    cumulative = np.cumsum(probs)
    index = int(np.searchsorted(cumulative, u * cumulative[-1], side="right"))
    return int(candidates[min(index, candidates.size - 1)])


def _top_k(logits: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest logits in canonical order (logit descending, then id ascending).

    Ties at the k-th value keep the lowest ids. Only the tokens within a margin of the max are
    searched: on a whole row with many equal values (masked tokens, padding rows) ``partition`` is
    ~20x slower than on distinct values.
    """
    for margin in (8.0, 32.0):
        near = np.flatnonzero(logits >= logits.max() - margin)
        if near.size >= k:
            return _best(logits, near, k)
    near = np.flatnonzero(logits > -np.inf)  # leave out masked tokens
    return _best(logits, near, min(k, near.size))


def _best(logits: np.ndarray, ids: np.ndarray, k: int) -> np.ndarray:
    """The k best of ``ids`` (ascending) in canonical order."""
    values = logits[ids]
    kth = np.partition(values, -k)[-k]
    above = ids[values > kth]
    chosen = np.concatenate([above, ids[values == kth][: k - above.size]])
    return chosen[np.lexsort((chosen, -logits[chosen]))]


def _nucleus(probs: np.ndarray, top_p: float) -> np.ndarray:
    """Indices of the smallest most-probable set with cumulative probability >= top_p (at least one).

    Sorts only the tokens above a falling probability threshold, not the whole vocabulary
    (``argpartition`` is slow on the many equal tail values).
    """
    threshold = 1e-3
    while True:
        top = np.flatnonzero(probs >= threshold)
        if threshold == 0.0 or probs[top].sum() >= top_p:
            break
        threshold = threshold / 8 if threshold > 1e-8 else 0.0
    top = top[np.argsort(-probs[top], kind="stable")]
    cumulative = np.cumsum(probs[top])
    return top[: min(int(np.searchsorted(cumulative, top_p)) + 1, top.size)]


def _penalize(logits: np.ndarray, history: Sequence[int], penalty: float) -> np.ndarray:
    """CTRL/transformers repetition penalty on a copy: seen tokens' positive logits / penalty, negative * penalty."""
    seen = np.unique(np.asarray(history, dtype=np.int64))
    out = logits.copy()
    values = out[seen]
    out[seen] = np.where(values > 0, values / penalty, values * penalty)
    return out
