"""Options and helpers shared by several verbs: sampling, threads, context, loading a bundle, durations."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from edgekit.errors import EdgekitError

TEMPERATURE = typer.Option(0.0, "--temperature", help="0 = greedy.")
TOP_K = typer.Option(0, "--top-k", help="0 = off.")
TOP_P = typer.Option(1.0, "--top-p")
REPETITION_PENALTY = typer.Option(1.0, "--repetition-penalty")
SEED = typer.Option(None, "--seed")
THREADS = typer.Option(None, "--threads", help="onnxruntime intra-op threads (default: cores, at most 4).")
MAX_CONTEXT = typer.Option(None, "--max-context", help="Override the bundle's context budget.")
THINK = typer.Option(False, "--think/--no-think", help="Let the model think first (off by default).")


def load_model(bundle: Path, threads: Optional[int], max_context: Optional[int]):
    """The bundle's runtime ``Model`` (imported late: ``edgekit --help`` loads no runtime)."""
    import edgekit

    return edgekit.load(bundle, threads=threads, max_context=max_context)


def sampling_params(temperature: float, top_k: int, top_p: float, repetition_penalty: float, seed: Optional[int]):
    from edgekit.sampling import SamplingParams

    return SamplingParams(temperature=temperature, top_k=top_k, top_p=top_p,
                          repetition_penalty=repetition_penalty, seed=seed)


def open_cache(model, cache_file: Optional[Path]):
    """The prompt cache: loaded from ``cache_file`` when it exists, else a new in-memory one."""
    from edgekit.runtimes import PromptCache

    if cache_file is not None and cache_file.exists():
        return PromptCache.load(model, cache_file)
    return PromptCache(model)


def parse_duration(text: str) -> float:
    """Seconds in ``90``, ``90s``, ``10m`` or ``1h``."""
    units = {"s": 1, "m": 60, "h": 3600}
    number, unit = (text[:-1], units[text[-1]]) if text and text[-1] in units else (text, 1)
    try:
        seconds = float(number) * unit
    except ValueError:
        seconds = -1.0
    if seconds <= 0:
        raise EdgekitError(f"cannot read the duration {text!r}", "write it like 90s, 10m or 1h")
    return seconds
