"""Streaming a reply to the terminal: text to stdout as it decodes, prompt note, TTFT and speed to stderr."""

from __future__ import annotations

import sys
import time

import typer


def stream_reply(model, cache, prompt_ids, sampling, max_new_tokens, marks=()):
    """Prefill through the cache, stream the reply to stdout and the speed to stderr; return the state."""
    start = time.perf_counter()
    reused = cache.hits
    state, logits = cache.prefill(prompt_ids, marks)
    reused = cache.hits - reused
    stream(model, state, logits, sampling, max_new_tokens, start,
           f"{len(prompt_ids)} prompt tokens, {reused} reused from the prompt cache")
    return state


def stream(model, state, logits, sampling, max_new_tokens, start: float, prompt_note: str) -> None:
    """Decode from ``logits``, streaming text to stdout; then the prompt note, TTFT and speed to stderr."""
    text = model.tokenizer.stream(skip_special=True)
    first = None
    count = 0
    for token in model.decode(state, logits, sampling, max_new_tokens):
        if first is None:
            first = time.perf_counter()
        count += 1
        sys.stdout.write(text.push(token))
        sys.stdout.flush()
    sys.stdout.write(text.flush() + "\n")
    end = time.perf_counter()
    ttft = (first or end) - start
    decode = f", decode {(count - 1) / (end - first):.1f} tok/s" if first and count > 1 else ""
    typer.echo(f"[{prompt_note}, TTFT {ttft * 1000:.0f} ms{decode}, context {state.length}/{state.max_context}]",
               err=True)
