"""``edgekit ask``: a question about a timeline store, answered by the model from the captions it retrieves.

Retrieval is the store's full-text index (any of the question's words, best match first) within the time
window and camera asked for; when no word matches, the latest segments of the window stand in. The prompt
is a fixed instruction (a system turn, checkpointed in the prompt cache so every question resumes after
it) and one user turn: the retrieved captions with their times in time order, then the question. The
lowest-ranked captions are left out until the prompt fits the bundle's context with room for the answer.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from edgekit.errors import EdgekitError
from edgekit.runtimes.model import Model
from edgekit.runtimes.prompt_cache import PromptCache
from edgekit.sampling import SamplingParams
from edgekit.tokenizer import render_chat
from edgekit.video.store import Store, one_line, unix

ASK_SYSTEM = ("You answer questions about what cameras saw, using only the timeline of captions you are given. "
              "Say when it happened, citing the times of the captions you used in brackets. If the timeline "
              "does not tell, say so.")


def when(segment: dict[str, Any]) -> str:
    """A segment's start as local wall-clock time, ``2026-12-01 14:03:20``: how answers cite it."""
    return f"{datetime.fromtimestamp(unix(segment['wall'])):%Y-%m-%d %H:%M:%S}"


def retrieve(store: Store, question: str, since: float | None = None, until: float | None = None,
             camera: str | None = None, limit: int = 40) -> list[dict[str, Any]]:
    """The segments the answer may use, best match first."""
    found = store.search(question, since, until, camera, limit)
    return found or store.segments(since, until, camera)[-limit:][::-1]


@dataclass
class Prompt:
    ids: list[int]
    system_tokens: int               # the instruction prefix: the prompt cache's checkpoint
    used: list[dict[str, Any]]       # the segments in the prompt, in time order
    left_out: int                    # retrieved segments that did not fit


def build_prompt(model: Model, question: str, ranked: list[dict[str, Any]], answer_tokens: int) -> Prompt:
    """The instruction, the best-ranked captions that fit (in time order) and the question, within the
    bundle's context minus ``answer_tokens``."""
    encode = model.tokenizer.encode
    system = encode(render_chat([{"role": "system", "content": ASK_SYSTEM}], add_generation_prompt=False))
    budget = model.max_context - answer_tokens
    for keep in range(len(ranked), -1, -1):
        used = sorted(ranked[:keep], key=lambda s: (s["wall"], s["row"]))
        ids = system + encode(render_chat([{"role": "user", "content": user_turn(question, used)}]))
        if len(ids) <= budget:
            return Prompt(ids, len(system), used, len(ranked) - keep)
    raise EdgekitError(f"the question does not fit in {model.max_context} tokens with {answer_tokens} for the answer",
                       "ask a shorter question or load the bundle with a larger --max-context")


def user_turn(question: str, used: list[dict[str, Any]]) -> str:
    lines = [f"[{when(s)}] {s['camera']}: {s['caption']}" for s in used]
    return "Timeline:\n" + ("\n".join(lines) or "(nothing)") + f"\n\nQuestion: {one_line(question)}"


def answer(model: Model, cache: PromptCache, prompt: Prompt, sampling: SamplingParams, max_tokens: int) -> str:
    """The model's answer, one line; the instruction prefix is resumed from (and kept in) ``cache``."""
    state, logits = cache.prefill(prompt.ids, marks=[(prompt.system_tokens, "system")])
    tokens = list(model.decode(state, logits, sampling, max_tokens))
    return one_line(model.tokenizer.decode(tokens, skip_special=True))


def parse_time(text: str, now: float | None = None) -> float:
    """``2026-12-01``, ``2026-12-01T14:00`` (local time unless it has an offset) or ``2h`` / ``3d`` ago."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if text[-1:] in units and text[:-1].replace(".", "", 1).isdigit():
        base = time.time() if now is None else now
        return base - float(text[:-1]) * units[text[-1]]
    try:
        return datetime.fromisoformat(text).timestamp()  # a naive time is local time
    except ValueError:
        raise EdgekitError(f"cannot read the time {text!r}",
                           "write it like 2026-12-01, 2026-12-01T14:00, or 2h / 3d for that long ago") from None
