"""Decode, edgekit ONNX against onnxruntime-genai, in ONE process: the two alternate run by run.

    python benchmarks/decode_pair.py --model random-0.8b --rounds 12

``anchors.py`` measures each runtime in its own worker process; on a shared 2-core machine two processes
can differ by more than the effect in question (the ONNX decode vs genai's, same kernels, same graph
cost). Here both run in one process on the same cached exports (make them with ``anchors.py`` first),
alternating A B A B..., and each round gives a ratio. Writes ``benchmarks/results/decode-pair-<model>.json``
and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import statistics
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from edgekit.files import atomic_write_text

# Beside this script, which puts its folder on sys.path.
from anchor_exports import THREADS, Cache
from anchor_worker import EdgekitRunner, GenaiRunner
from machine import machine_info, versions

HERE = Path(__file__).resolve().parent
PROMPT_TOKENS, NEW_TOKENS, KV_BUDGET = 128, 64, 2112


def measure(model: str, rounds: int) -> dict:
    cache = Cache(HERE / ".cache" / model)
    for runtime in ("edgekit", "genai"):
        if not cache.model_dir(runtime).is_dir():
            raise SystemExit(f"no cached {runtime} export of {model}: run benchmarks/anchors.py --model {model} first")
    machine = machine_info()
    runners = {"edgekit ONNX int4": EdgekitRunner(str(cache.model_dir("edgekit")), THREADS, KV_BUDGET),
               "onnxruntime-genai int4": GenaiRunner(str(cache.model_dir("genai")), THREADS, KV_BUDGET)}
    prompt = [int(t) for t in np.random.default_rng(0).integers(1000, 100_000, PROMPT_TOKENS)]
    for runner in runners.values():  # warm-up
        runner.decode(prompt, 8)
    tg: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(rounds):
        for name, runner in runners.items():
            tg[name].append(NEW_TOKENS / runner.decode(prompt, NEW_TOKENS)["decode_s"])
    ratios = [a / b for a, b in zip(*tg.values())]
    return {"model": model, "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": machine,
            "versions": versions(), "settings": {"prompt_tokens": PROMPT_TOKENS, "new_tokens": NEW_TOKENS,
                                                 "threads": THREADS, "kv_budget_tokens": KV_BUDGET, "rounds": rounds},
            "tg_tok_s": tg, "ratio_edgekit_to_genai": ratios}


def markdown(result: dict) -> str:
    s, tg, ratios = result["settings"], result["tg_tok_s"], result["ratio_edgekit_to_genai"]
    load = " ".join(f"{x:.2f}" for x in result["machine"]["load_average_start"])
    lines = [f"# Decode in one process: edgekit ONNX vs onnxruntime-genai — `{result['model']}`", "",
             f"- Date: {result['date']}; machine: {result['machine']['cpu']}, {result['machine']['usable_cores']} "
             f"usable cores, load average at start {load}",
             "- Versions: " + ", ".join(f"{k} {v}" for k, v in result["versions"].items() if v),
             f"- {s['rounds']} rounds, the two alternating in one process after a warm-up; each round: "
             f"{s['prompt_tokens']}-token prompt, then {s['new_tokens']} greedy steps timed; {s['threads']} threads, "
             f"context budget {s['kv_budget_tokens']}", "",
             "| runtime | tg (tok/s) median [min – max] | per round |", "|---|---|---|"]
    for name, values in tg.items():
        lines.append(f"| {name} | {statistics.median(values):.1f} [{min(values):.1f} – {max(values):.1f}] | "
                     + " ".join(f"{v:.1f}" for v in values) + " |")
    lines += ["", f"edgekit / genai per round: median **{statistics.median(ratios):.2f}** "
              f"[{min(ratios):.2f} – {max(ratios):.2f}] (" + " ".join(f"{r:.2f}" for r in ratios) + ")", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="random-0.8b", choices=["random-0.8b", "random-2b", "tiny-random"])
    parser.add_argument("--rounds", type=int, default=12)
    args = parser.parse_args()
    result = measure(args.model, args.rounds)
    stem = HERE / "results" / f"decode-pair-{args.model}"  # not with_suffix: "0.8b" is no extension
    atomic_write_text(stem.parent / f"{stem.name}.json", json.dumps(result, indent=2) + "\n")
    atomic_write_text(stem.parent / f"{stem.name}.md", markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
