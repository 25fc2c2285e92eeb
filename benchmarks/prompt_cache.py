"""Prompt cache: time to first token with and without a cached prefix, on a Qwen3.5-0.8B-shaped int4 bundle.

Two scenarios, each run cold and cached, interleaved:
- a 2,000-token shared prefix (a document, a long system prompt) followed by 20 new tokens;
- a 10-turn chat (40-token user turns, 20-token replies): the total prefill time when every turn
  re-processes the whole conversation (what llama.cpp does for Qwen3.5, for lack of state
  checkpoints) against resuming each turn from the checkpoint taken after the previous reply.

    python benchmarks/prompt_cache.py --model random-0.8b --runs 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from rich.console import Console

import edgekit
from edgekit.files import atomic_write_text
from edgekit.runtimes import PromptCache

from machine import exporter_fingerprint, machine_info, versions

HERE = Path(__file__).resolve().parent
PREFIX_TOKENS, NEW_TOKENS = 2000, 20
TURNS, USER_TOKENS, REPLY_TOKENS = 10, 40, 20
THREADS = 2
console = Console(stderr=True)


def bundle_for(model_name: str) -> Path:
    """The int4 bundle of the built-in random model, exported under benchmarks/.cache/ and reused
    while the exporter is unchanged."""
    folder = HERE / ".cache" / model_name / "edgekit-builtin"
    stamp = folder.with_name("edgekit-builtin.exporter")
    fingerprint = exporter_fingerprint("edgekit")
    if not (folder / "manifest.json").is_file() or not stamp.is_file() or stamp.read_text() != fingerprint:
        from edgekit.export.onnx_export import export_onnx

        export_onnx(model_name, folder, overwrite=True)
        atomic_write_text(stamp, fingerprint)
    return folder


def ids(n: int, seed: int) -> list[int]:
    return np.random.default_rng(seed).integers(0, 248_000, n).tolist()


def ttft(model, cache: PromptCache | None, prompt: list[int]) -> float:
    """Seconds from the prompt to the first sampled token, through ``cache`` or cold."""
    start = time.perf_counter()
    if cache is not None:
        _, logits = cache.prefill(prompt)
    else:
        logits = model.prefill(model.new_state(), prompt)
    int(np.argmax(logits))
    return time.perf_counter() - start


def shared_prefix(model, runs: int) -> dict:
    prefix = ids(PREFIX_TOKENS, 1)
    cache = PromptCache(model)
    start = time.perf_counter()
    cache.prefill(prefix, marks=[(PREFIX_TOKENS, "system")])
    build_s = time.perf_counter() - start
    cold, warm = [], []
    for run in range(runs):
        prompt = prefix + ids(NEW_TOKENS, 100 + run)
        cold.append(ttft(model, None, prompt))
        warm.append(ttft(model, cache, prompt))
    path = HERE / ".cache" / "prompt-cache.npz"
    start = time.perf_counter()
    cache.save(path)
    save_s = time.perf_counter() - start
    start = time.perf_counter()
    PromptCache.load(model, path)
    load_s = time.perf_counter() - start
    return {"cold_ttft_s": cold, "cached_ttft_s": warm, "checkpoint_build_s": build_s,
            "checkpoint_bytes": cache.nbytes, "file_bytes": path.stat().st_size, "save_s": save_s, "load_s": load_s}


def chat(model, use_cache: bool) -> float:
    """Total prefill seconds over the turns of one conversation."""
    cache = PromptCache(model) if use_cache else None
    conversation: list[int] = []
    total = 0.0
    for turn in range(TURNS):
        conversation += ids(USER_TOKENS, 200 + turn)
        start = time.perf_counter()
        if cache is not None:
            state, logits = cache.prefill(conversation)
        else:
            state = model.new_state()
            logits = model.prefill(state, conversation)
        total += time.perf_counter() - start
        reply = list(model.decode(state, logits, max_new_tokens=REPLY_TOKENS, stop_ids=[]))
        if cache is not None:
            cache.add(state, "turn")
        conversation += reply
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="random-0.8b", help="built-in random model (tiny-random for a smoke run)")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    machine = machine_info()
    bundle = bundle_for(args.model)
    model = edgekit.load(bundle, threads=THREADS, max_context=PREFIX_TOKENS + TURNS * (USER_TOKENS + REPLY_TOKENS))
    console.print(f"shared prefix: {PREFIX_TOKENS} + {NEW_TOKENS} tokens, {args.runs} runs")
    prefix = shared_prefix(model, args.runs)
    console.print(f"{TURNS}-turn chat, {args.runs} runs each way")
    chats = {"cold_s": [], "cached_s": []}
    for _ in range(args.runs):
        chats["cold_s"].append(chat(model, use_cache=False))
        chats["cached_s"].append(chat(model, use_cache=True))
    cold, warm = statistics.median(prefix["cold_ttft_s"]), statistics.median(prefix["cached_ttft_s"])
    chat_cold, chat_warm = statistics.median(chats["cold_s"]), statistics.median(chats["cached_s"])
    result = {"benchmark": "prompt_cache", "model": args.model, "date": datetime.now(timezone.utc).isoformat(),
              "machine": machine, "versions": versions(), "threads": THREADS, "runs": args.runs,
              "shared_prefix": {**prefix, "prefix_tokens": PREFIX_TOKENS, "new_tokens": NEW_TOKENS,
                                "median_cold_s": cold, "median_cached_s": warm, "cached_over_cold": warm / cold},
              "chat": {**chats, "turns": TURNS, "user_tokens": USER_TOKENS, "reply_tokens": REPLY_TOKENS,
                       "median_cold_s": chat_cold, "median_cached_s": chat_warm,
                       "cached_over_cold": chat_warm / chat_cold}}
    table = "\n".join([
        f"# Prompt cache — `{args.model}` int4, {THREADS} threads, {args.runs} runs (medians)", "",
        f"- Machine: {machine['cpu']}, {machine['usable_cores']} cores, load average {machine['load_average_start']}",
        "- Versions: " + ", ".join(f"{k} {v}" for k, v in result["versions"].items() if v), "",
        "| scenario | cold | cached | cached / cold |", "|---|---|---|---|",
        f"| TTFT, {PREFIX_TOKENS}-token shared prefix + {NEW_TOKENS} new | {cold * 1000:.0f} ms | {warm * 1000:.0f} ms "
        f"| {warm / cold:.3f} (1/{cold / warm:.0f}) |",
        f"| total prefill, {TURNS}-turn chat | {chat_cold:.2f} s | {chat_warm:.2f} s | {chat_warm / chat_cold:.3f} |", "",
        f"- The {PREFIX_TOKENS}-token checkpoint: {prefix['checkpoint_bytes'] / 2**20:.1f} MiB in memory, "
        f"{prefix['file_bytes'] / 2**20:.1f} MiB on disk; save {prefix['save_s']:.2f} s, load {prefix['load_s']:.2f} s.",
    ]) + "\n"
    stem = HERE / "results" / f"prompt-cache-{args.model}"  # not with_suffix: "0.8b" is no extension
    atomic_write_text(Path(f"{stem}.json"), json.dumps(result, indent=2) + "\n")
    atomic_write_text(Path(f"{stem}.md"), table)
    print(table)


if __name__ == "__main__":
    main()
