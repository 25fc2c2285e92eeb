"""Anchors: edgekit's bundles side by side with llama.cpp, onnxruntime-genai and ExecuTorch's own export, all made
from the same random checkpoint of a real Qwen3.5 shape.

    python benchmarks/anchors.py --model random-0.8b --runs 5
    python benchmarks/anchors.py --model random-2b --runs 5
    python benchmarks/anchors.py --model tiny-random --runs 2        # CI smoke

Builds (once, cached in ``benchmarks/.cache/<model>/``, see ``anchor_exports.py``) a random-weight Hugging Face
checkpoint folder of the built-in shape and every runtime's model from it, then measures them in their own worker
processes (``anchor_worker.py``), interleaved (A B C A B C ...) after one warm-up each, and writes
``benchmarks/results/anchors-<model>.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
from collections.abc import Callable
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import IO, Any

import numpy as np
from rich.console import Console
from rich.markdown import Markdown
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from edgekit.export.checkpoint import BUILTIN
from edgekit.files import atomic_write_text

# Beside this script, which puts its folder on sys.path. None imports torch: see random_checkpoint.py.
from anchor_exports import (GENAI_EXTRA_OPTIONS, THREADS, Cache, cached_export, ensure_checkpoint, log_tail,
                            model_size)
from anchor_worker import MARKER, genai_session_options
from machine import ANCHOR_EXPORTERS, machine_info, versions

HERE = Path(__file__).resolve().parent
WORKER = HERE / "anchor_worker.py"
RUNTIMES = ("edgekit", "edgekit-et", "llama-q4_0", "llama-q4_k_m", "genai", "et-upstream")
LABELS = {"edgekit": "edgekit ONNX int4", "edgekit-et": "edgekit ExecuTorch 8da4w",
          "llama-q4_0": "llama.cpp Q4_0", "llama-q4_k_m": "llama.cpp Q4_K_M",
          "genai": "onnxruntime-genai int4", "et-upstream": "ExecuTorch qwen3_5 example 8da4w"}
BASELINE = "edgekit"
PROMPT_TOKENS = 128
NEW_TOKENS = 64
PREFIX_TOKENS = 2000  # the second turn: a shared prefix processed before ...
TURN_TOKENS = 20      # ... then this many new tokens to the first generated one
MAX_LENGTH = 2112     # every runtime's context (KV) budget: the second turn fits
PROMPT_SEED = 1234
VOCAB_LIMIT = 248_000  # prompt ids stay below the special tokens
MIB = 2**20
TOKENIZER_NOTE = ("the edgekit and genai workers hold the same tokenizer.json in edgekit's reader (edgekit/bpe.py) "
                  "(edgekit.load loads it; the genai worker loads it itself because og.Tokenizer 0.18 rejects the "
                  "builder's Qwen3_5Tokenizer class); llama.cpp holds its own vocabulary from the GGUF; the upstream "
                  "ExecuTorch worker holds none")

console = Console(stderr=True)


# --- measuring --------------------------------------------------------------------------------------------


class Worker:
    """An ``anchor_worker.py`` process serving one runtime; constructing it waits until the model is loaded."""

    def __init__(self, runtime: str, model_path: Path, log: Path) -> None:
        self.log = log
        self._log_file: IO[bytes] = open(log, "wb")
        cmd = [sys.executable, str(WORKER), runtime, str(model_path), "--threads", str(THREADS),
               "--max-length", str(MAX_LENGTH)]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log_file,
                                     text=True)
        self.loaded = self._reply()

    def _reply(self) -> dict[str, Any]:
        """The next protocol line, skipping anything else a library printed to stdout."""
        for line in self.proc.stdout:
            if line.startswith(MARKER):
                return json.loads(line[len(MARKER):])
        return {"error": f"worker exited with code {self.proc.wait()}: {log_tail(self.log)}"}

    def ask(self, request: dict[str, Any]) -> dict[str, Any]:
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        return self._reply()

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait()
        self._log_file.close()


def random_ids(n: int, seed: int) -> list[int]:
    """Fixed-seed random ids below the special tokens."""
    return np.random.default_rng(seed).integers(0, VOCAB_LIMIT, n).tolist()


def requests() -> dict[str, dict[str, Any]]:
    """The two measured requests, the same for every runtime."""
    return {"decode": {"task": "decode", "prompt": random_ids(PROMPT_TOKENS, PROMPT_SEED), "new_tokens": NEW_TOKENS},
            "second_turn": {"task": "second_turn", "prefix": random_ids(PREFIX_TOKENS, PROMPT_SEED + 1),
                            "turn": random_ids(TURN_TOKENS, PROMPT_SEED + 2)}}


Outcomes = dict[str, dict[str, Any]]  # runtime -> its error, load reply, warm-up and raw runs of each task


def export_error(record: dict[str, Any] | None) -> str | None:
    return None if record is None else record.get("error")


def start_workers(cache: Cache, exports: dict[str, dict[str, Any] | None]) -> tuple[dict[str, Worker], Outcomes]:
    """Start (one after the other) a worker for each runtime that exported; the others get their error."""
    workers: dict[str, Worker] = {}
    outcomes: Outcomes = {}
    for runtime, record in exports.items():
        outcome: dict[str, Any] = {"error": export_error(record), "load": None,
                                   **{task: {"warmup": None, "runs": [], "error": None} for task in requests()}}
        if record is not None and not outcome["error"]:
            worker = Worker(runtime, cache.model_path(runtime), cache.log(f"{runtime}.worker"))
            outcome["load"], outcome["error"] = worker.loaded, worker.loaded.get("error")
            if outcome["error"]:
                worker.close()
            else:
                workers[runtime] = worker
        outcomes[runtime] = outcome
    return workers, outcomes


def measure(workers: dict[str, Worker], outcomes: Outcomes, task: str, runs: int,
            advance: Callable[[], None]) -> None:
    """One warm-up each, then ``runs`` rounds, alternating runtimes; a runtime that errors on a task stops
    that task there (a decode error fails the runtime; a second-turn error or "unsupported" only that task)."""
    request = requests()[task]
    for round_index in range(runs + 1):
        for runtime, worker in workers.items():
            outcome = outcomes[runtime]
            record = outcome[task]
            if not (outcome["error"] or record["error"] or record.get("unsupported")):
                result = worker.ask(request)
                if "error" in result:
                    record["error"] = result["error"]
                    if task == "decode":
                        outcome["error"] = result["error"]
                elif "unsupported" in result:
                    record["unsupported"] = result["unsupported"]
                elif round_index == 0:
                    record["warmup"] = result
                else:
                    record["runs"].append(result)
            advance()


# --- summarizing ------------------------------------------------------------------------------------------

METRICS = {  # key: (label, unit, higher is better)
    "pp128_tok_s": ("pp128", "tok/s", True),
    "tg64_tok_s": ("tg64", "tok/s", True),
    "ttft_ms": ("TTFT", "ms", False),
    "second_turn_ttft_ms": (f"2nd-turn TTFT ({PREFIX_TOKENS}-token prefix kept, {TURN_TOKENS} new)", "ms", False),
    "peak_rss_mib": ("peak RSS", "MiB", False),
}


def stats(values: list[float]) -> dict[str, float] | None:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)} if values else None


def summarize(outcome: dict[str, Any]) -> dict[str, Any] | None:
    """Median, min and max of each metric over the runs (peak RSS: over all requests, both tasks)."""
    decode, turn = outcome["decode"]["runs"], outcome["second_turn"]["runs"]
    if not decode:
        return None
    return {
        "pp128_tok_s": stats([PROMPT_TOKENS / r["prefill_s"] for r in decode]),
        "tg64_tok_s": stats([NEW_TOKENS / r["decode_s"] for r in decode]),
        "ttft_ms": stats([r["ttft_s"] * 1000 for r in decode]),
        "second_turn_ttft_ms": stats([r["ttft_s"] * 1000 for r in turn]),
        "peak_rss_mib": stats([max(r["peak_rss_bytes"] for r in decode + turn) / MIB]),
    }


def second_turn_facts(record: dict[str, Any]) -> dict[str, Any] | None:
    """How the runtime keeps the prefix, what that costs, and whether resuming gives the cold path's token."""
    first = record["warmup"]
    if not first:
        return None
    tokens = [r["token"] for r in [first, *record["runs"]]]
    return {"mechanism": first["mechanism"], "cold_ttft_ms": first["cold_ttft_s"] * 1000,
            "prefix_s": [r["prefix_s"] for r in [first, *record["runs"]] if "prefix_s" in r],
            "state_bytes": first.get("state_bytes"),
            "resumed_token_equals_cold": all(t == first["cold_token"] for t in tokens)}


def ratios(summaries: dict[str, dict[str, Any] | None], runtime: str) -> dict[str, float] | None:
    """``runtime`` / edgekit ONNX of the medians (pp/tg above 1: the runtime is faster; TTFT, RSS below 1)."""
    ours, theirs = summaries.get(BASELINE), summaries.get(runtime)
    if not (ours and theirs):
        return None
    return {key: theirs[key]["median"] / ours[key]["median"] for key in METRICS if ours[key] and theirs[key]}


def greedy_agreement(outcomes: Outcomes, runtime: str) -> int | None:
    """How many leading generated ids ``runtime`` shares with edgekit ONNX (same weights, all 4-bit: a sanity
    check; different 4-bit recipes drift apart after a while on random weights)."""
    firsts = [outcomes[r]["decode"]["runs"][0]["tokens"] for r in (BASELINE, runtime)
              if r in outcomes and outcomes[r]["decode"]["runs"]]
    if len(firsts) < 2:
        return None
    return next((i for i, (a, b) in enumerate(zip(*firsts, strict=False)) if a != b), min(map(len, firsts)))


def settings(cache: Cache, runs: int, chosen: list[str]) -> dict[str, Any]:
    """Everything that defines the measurement, for the JSON."""
    asked = requests()
    return {
        "prompt_tokens": PROMPT_TOKENS, "new_tokens": NEW_TOKENS, "prompt_seed": PROMPT_SEED,
        "prompt_ids_below": VOCAB_LIMIT, "prompt": asked["decode"]["prompt"],
        "second_turn": {"prefix_tokens": PREFIX_TOKENS, "turn_tokens": TURN_TOKENS,
                        "seeds": [PROMPT_SEED + 1, PROMPT_SEED + 2]},
        "runs": runs, "warmup_runs": 1, "order": "interleaved: " + ", ".join(chosen) + ", repeated",
        "threads": THREADS, "kv_budget_tokens": MAX_LENGTH, "decoding": "greedy; EOS does not stop a run",
        "edgekit": {"load": f"edgekit.load(path, threads={THREADS}, max_context={MAX_LENGTH})",
                    "session": f"intra-op threads {THREADS}, inter-op 1, spinning off (edgekit's own settings)"},
        "genai": {"builder_options": list(GENAI_EXTRA_OPTIONS),
                  "session_options_overlay": genai_session_options(THREADS),
                  "search_options": {"max_length": MAX_LENGTH, "min_length": MAX_LENGTH, "do_sample": False},
                  "prefill": "Generator.append_tokens"},
        "llama.cpp": {"convert": "convert_hf_to_gguf.py --outtype bf16 --no-mtp (the llama-cpp-python sdist's)",
                      "quantize": "llama_model_quantize, default recipe (as llama-quantize)",
                      "context": f"Llama(n_ctx={MAX_LENGTH}, n_batch=512, n_threads={THREADS}, "
                                 f"n_threads_batch={THREADS}), flash attention off (llama-cpp-python's default)",
                      "prefill": "Llama.eval (one batch), last logits from llama_get_logits_ith"},
        "et-upstream": {"export": "executorch examples/models/qwen3_5 via extension.llm.export.export_llm, "
                                  "qwen3_5_xnnpack_fp32.yaml + 8da4w group 32, 4-bit embedding, HQQ off",
                        "prefill": "static shape: one token per forward call"},
        "tokenizer": TOKENIZER_NOTE,
        "cache": str(cache.root),
    }


def runtime_result(cache: Cache, runtime: str, exported: dict[str, Any] | None, outcome: dict[str, Any],
                   skipped: str | None) -> dict[str, Any]:
    """One runtime's export, size, raw runs and summary."""
    folder = cache.model_dir(runtime)
    return {"export": exported, "skipped": skipped,
            "size": model_size(folder) if exported and folder.is_dir() else None, **outcome,
            "summary": summarize(outcome), "second_turn_facts": second_turn_facts(outcome["second_turn"])}


# --- reporting --------------------------------------------------------------------------------------------


def cell(values: dict[str, float] | None, digits: int = 1) -> str:
    """``median [min – max]``."""
    if not values:
        return "—"
    if values["min"] == values["max"]:
        return f"{values['median']:.{digits}f}"
    return f"{values['median']:.{digits}f} [{values['min']:.{digits}f} – {values['max']:.{digits}f}]"


def machine_line(machine: dict[str, Any]) -> str:
    flags = ", ".join(f"{f} {'yes' if on else 'no'}" for f, on in machine["flags"].items())
    load = " ".join(f"{x:.2f}" for x in machine["load_average_start"])
    return (f"{machine['cpu']}; {machine['cores']} cores ({machine['usable_cores']} usable); "
            f"{machine['memory_bytes'] / 2**30:.1f} GiB; {flags}; load average at start {load}")


def header_lines(result: dict[str, Any]) -> list[str]:
    """Title and the bullets that say where and how the numbers were taken."""
    s = result["settings"]
    return [
        f"# Anchors: edgekit vs llama.cpp, onnxruntime-genai, ExecuTorch — `{result['model']}`", "",
        f"- Date: {result['date']}",
        f"- Machine: {machine_line(result['machine'])}",
        "- Versions: " + ", ".join(f"{k} {v}" for k, v in result["versions"].items() if v),
        f"- Checkpoint: random weights, {result['checkpoint']['dtype']}; every runtime's model made from this one "
        "folder by its own tool",
        f"- Settings: {s['prompt_tokens']}-token random prompt, {s['new_tokens']} greedy decode steps, "
        f"{s['threads']} threads, context budget {s['kv_budget_tokens']} tokens; {s['runs']} runs each, interleaved, "
        "after one warm-up each",
        f"- 2nd-turn TTFT: {PREFIX_TOKENS} tokens processed before and kept by the runtime's own means, then "
        f"{TURN_TOKENS} new tokens to the first generated one (mechanisms below)",
        "- Cells: median [min – max]. Ratios: the runtime's median / edgekit ONNX's (pp, tg: above 1 = the "
        "runtime is faster; TTFT, RSS, size: below 1 = the runtime is faster/smaller)", "",
    ]


def table_lines(result: dict[str, Any]) -> list[str]:
    """One row per runtime, one column per metric, then one row of ratios per runtime."""
    runtimes = result["runtimes"]
    names = [r for r in RUNTIMES if r in runtimes]
    head = [f"{label} ({unit})" for label, unit, _ in METRICS.values()] + ["model (MiB)"]
    lines = ["| runtime | " + " | ".join(head) + " |", "|---" * (len(head) + 1) + "|"]
    for r in names:
        summary = runtimes[r]["summary"] or {}
        size = runtimes[r]["size"]
        cells = [cell(summary.get(key), 0 if key != "tg64_tok_s" else 1) for key in METRICS]
        cells.append(f"{size['model_bytes'] / MIB:.0f}" if size else "—")
        lines.append(f"| {LABELS[r]} | " + " | ".join(cells) + " |")
    lines += ["", "Ratio to edgekit ONNX (the runtime / edgekit):", "",
              "| runtime | " + " | ".join(label for label, _, _ in METRICS.values()) + " | model size |",
              "|---" * (len(METRICS) + 2) + "|"]
    base_size = runtimes.get(BASELINE, {}).get("size")
    for r in names:
        ratio = result["ratios_to_edgekit"].get(r)
        if r == BASELINE or not ratio:
            continue
        size = runtimes[r]["size"]
        size_ratio = f"{size['model_bytes'] / base_size['model_bytes']:.2f}" if size and base_size else "—"
        lines.append(f"| {LABELS[r]} | " + " | ".join(f"{ratio[k]:.2f}" if k in ratio else "—" for k in METRICS)
                     + f" | {size_ratio} |")
    return lines + [""]


def export_lines(result: dict[str, Any]) -> list[str]:
    lines = ["| runtime | export (s) | export peak RSS (MiB) | cached this run |", "|---|---|---|---|"]
    for r, data in result["runtimes"].items():
        record = data["export"]
        if record and "wall_s" in record:
            lines.append(f"| {LABELS[r]} | {record['wall_s']:.0f} | {record['peak_rss_bytes'] / MIB:.0f} | "
                         f"{'yes' if record.get('cached') else 'no'} |")
    return lines + [""]


def note_lines(result: dict[str, Any]) -> list[str]:
    """Second-turn mechanisms, greedy agreement, tokenizer caveat, anything not measured and why."""
    lines = ["Second turn, per runtime:", ""]
    for r, data in result["runtimes"].items():
        facts, record = data["second_turn_facts"], data["second_turn"]
        if facts:
            state = f"; kept state {facts['state_bytes'] / MIB:.1f} MiB" if facts.get("state_bytes") else ""
            prefix = statistics.median(facts["prefix_s"]) if facts["prefix_s"] else float("nan")
            lines.append(f"- {LABELS[r]}: {facts['mechanism']}; cold (whole prompt) TTFT "
                         f"{facts['cold_ttft_ms']:.0f} ms; prefix processing {prefix:.1f} s{state}; resumed first "
                         f"token {'equals' if facts['resumed_token_equals_cold'] else 'DIFFERS from'} the cold one")
        elif record.get("unsupported"):
            lines.append(f"- {LABELS[r]}: not measured: {record['unsupported']}")
        elif record.get("error"):
            lines.append(f"- {LABELS[r]}: failed: {record['error']}")
    lines.append("")
    for r, agree in result["greedy_tokens_agree_with_edgekit"].items():
        if agree is not None:
            lines.append(f"- Greedy ids of {LABELS[r]} equal edgekit ONNX's for the first {agree} of "
                         f"{NEW_TOKENS + 1} generated tokens.")
    lines.append(f"- Tokenizer: {result['settings']['tokenizer']}.")
    for r, data in result["runtimes"].items():
        if data["skipped"]:
            lines.append(f"- **{LABELS[r]} not run:** {data['skipped']}")
        elif data["error"]:
            lines += [f"- **{LABELS[r]} failed:**", "", "```", data["error"], "```"]
    return lines


def render_markdown(result: dict[str, Any]) -> str:
    """The results page: machine, versions, settings, the tables, notes."""
    return "\n".join(header_lines(result) + table_lines(result) + export_lines(result) + note_lines(result)) + "\n"


def write_results(result: dict[str, Any], results_dir: Path) -> tuple[Path, Path]:
    """``anchors-<model>.json`` and ``.md``, each written to a temp file and renamed into place."""
    results_dir.mkdir(parents=True, exist_ok=True)
    stem = results_dir / f"anchors-{result['model']}"  # not with_suffix: "0.8b" is no extension
    json_path, md_path = Path(f"{stem}.json"), Path(f"{stem}.md")
    atomic_write_text(json_path, json.dumps(result, indent=2) + "\n")
    atomic_write_text(md_path, render_markdown(result))
    return json_path, md_path


# --- main -------------------------------------------------------------------------------------------------


def progress_bar() -> Progress:
    return Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                    TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(), console=console)


def step(progress: Progress, description: str, work: Callable[[], Any]) -> Any:
    """Run ``work`` as one progress line."""
    task = progress.add_task(description, total=1)
    result = work()
    progress.update(task, completed=1)
    return result


def export_or_error(cache: Cache, runtime: str, reexport: bool) -> dict[str, Any]:
    """The runtime's export record; an anchor whose package is missing is an error to record, not a crash."""
    package = ANCHOR_EXPORTERS.get(runtime)
    if package:
        try:
            metadata.version(package)
        except metadata.PackageNotFoundError:
            return {"error": f"{package} is not installed: pip install -e '.[bench]'"}
    return cached_export(cache, runtime, MAX_LENGTH, reexport)


def benchmark(model: str, runs: int, reexport: bool, skip: dict[str, str]) -> dict[str, Any]:
    """Build, export, measure; return the whole result."""
    cache = Cache(HERE / ".cache" / model)
    cache.root.mkdir(parents=True, exist_ok=True)
    machine = machine_info()
    chosen = [r for r in RUNTIMES if r not in skip]
    with progress_bar() as progress:
        checkpoint = step(progress, f"checkpoint {model} (bf16)", lambda: ensure_checkpoint(model, cache))
        exports: dict[str, dict[str, Any] | None] = {
            r: step(progress, f"export {LABELS[r]}", lambda r=r: export_or_error(cache, r, reexport))
            if r in chosen else None for r in RUNTIMES}
        workers, outcomes = step(progress, "load workers", lambda: start_workers(cache, exports))
        try:
            for task, label in (("decode", f"pp{PROMPT_TOKENS} + tg{NEW_TOKENS}"),
                                ("second_turn", "2nd-turn TTFT")):
                bar = progress.add_task(f"{label} (1 warm-up + {runs}, interleaved)",
                                        total=len(workers) * (runs + 1))
                measure(workers, outcomes, task, runs, lambda bar=bar: progress.advance(bar))
        finally:
            for worker in workers.values():
                worker.close()
    machine["load_average_end"] = list(os.getloadavg())
    runtimes = {r: runtime_result(cache, r, exports[r], outcomes[r], skip.get(r)) for r in RUNTIMES}
    summaries = {r: runtimes[r]["summary"] for r in RUNTIMES}
    return {
        "benchmark": "anchors", "model": model, "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine, "versions": versions(), "settings": settings(cache, runs, chosen),
        "checkpoint": checkpoint, "runtimes": runtimes,
        "ratios_to_edgekit": {r: ratios(summaries, r) for r in RUNTIMES if r != BASELINE},
        "greedy_tokens_agree_with_edgekit": {r: greedy_agreement(outcomes, r) for r in RUNTIMES if r != BASELINE},
        "harness_peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=sorted(BUILTIN), default="tiny-random",
                        help="built-in random checkpoint shape")
    parser.add_argument("--runs", type=int, default=5, help="timed runs per runtime, after one warm-up")
    parser.add_argument("--reexport", action="store_true",
                        help="export every runtime again (after an exporter change); the checkpoint stays cached")
    parser.add_argument("--skip", action="append", default=[], choices=RUNTIMES, metavar="RUNTIME",
                        help=f"leave a runtime out (recorded as not run); one of {', '.join(RUNTIMES)}")
    parser.add_argument("--skip-reason", default="left out with --skip",
                        help="why, for the results (e.g. the export's cost)")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    if BASELINE in args.skip:
        parser.error(f"{BASELINE} is the baseline of every ratio: it cannot be skipped")
    result = benchmark(args.model, args.runs, args.reexport, {r: args.skip_reason for r in args.skip})
    json_path, md_path = write_results(result, HERE / "results")
    console.print(Markdown(render_markdown(result)))
    console.print(f"wrote {json_path} and {md_path}")
    if result["runtimes"][BASELINE]["error"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
