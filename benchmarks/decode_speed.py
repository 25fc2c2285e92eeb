"""Decode speed: edgekit's int4 ONNX bundle and 8da4w ExecuTorch bundle against onnxruntime-genai's int4 CPU
model, all from the same checkpoint.

    python benchmarks/decode_speed.py --model random-0.8b --runs 5
    python benchmarks/decode_speed.py --model tiny-random --runs 2     # CI smoke

Builds (once, cached in ``benchmarks/.cache/<model>/``) a random-weight Hugging Face checkpoint folder of the
built-in shape, exports it with both tools, then measures both in their own worker processes
(``decode_worker.py``), interleaved after one warm-up each, and writes ``benchmarks/results/<model>.json``
and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

import numpy as np
from rich.console import Console
from rich.markdown import Markdown
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from edgekit.export.checkpoint import BUILTIN
from edgekit.files import atomic_write_text

# Beside this script, which puts its folder on sys.path. Neither imports torch: see random_checkpoint.py.
from decode_worker import MARKER, genai_session_options
from machine import exporter_fingerprint, machine_info, versions
from random_checkpoint import CONTEXT_LENGTH

HERE = Path(__file__).resolve().parent
WORKER = HERE / "decode_worker.py"
CHECKPOINT_BUILDER = HERE / "random_checkpoint.py"
RUNTIMES = ("edgekit", "genai", "edgekit-et")
PROMPT_TOKENS = 128
NEW_TOKENS = 64
MAX_LENGTH = PROMPT_TOKENS + NEW_TOKENS + 8  # both runtimes get this KV budget
THREADS = 2
PROMPT_SEED = 1234
VOCAB_LIMIT = 248_000  # prompt ids stay below the special tokens
# The decoders only (no vision tower: the other exports have none). Match edgekit's int4 scheme (block 32, symmetric, int8 activations, one int4 copy of the tied embedding) and
# its prefill output (last-position logits only, not [128, 248320] of them).
GENAI_EXTRA_OPTIONS = ("shared_embeddings=true", "block_size=32", "is_symmetric=true", "accuracy_level=4",
                       "prune_lm_head=true")
EDGEKIT_EXPORT = ("import sys; from edgekit.export.onnx_export import export_onnx; "
                  "export_onnx(sys.argv[1], sys.argv[2], quant='int4', vision=False, show_progress=False)")
EDGEKIT_ET_EXPORT = ("import sys; from edgekit.export.executorch_export import export_executorch; "
                     "export_executorch(sys.argv[1], sys.argv[2], quant='8da4w', target='android', "
                     f"max_context={MAX_LENGTH}, show_progress=False)")
MIB = 2**20
TOKENIZER_NOTE = ("both workers hold the same tokenizer.json in the `tokenizers` library (edgekit.load loads it; "
                  "the genai worker loads it itself because og.Tokenizer 0.18 rejects the builder's "
                  "Qwen3_5Tokenizer class), so their peak RSS compare like for like")

console = Console(stderr=True)


@dataclass(frozen=True)
class Cache:
    """The cached checkpoint, exports and logs of one model under ``benchmarks/.cache/<model>/``."""

    root: Path

    @property
    def checkpoint(self) -> Path:
        return self.root / "checkpoint"

    def model_dir(self, runtime: str) -> Path:
        return self.root / runtime

    def record(self, runtime: str) -> Path:
        return self.root / f"{runtime}.export.json"

    def partial(self, runtime: str) -> Path:
        return self.root / f"{runtime}.partial"

    @property
    def build_cache(self) -> Path:
        return self.root / "genai-build-cache"

    def log(self, name: str) -> Path:
        return self.root / f"{name}.log"


@dataclass(frozen=True)
class Measured:
    """A finished subprocess: exit code, wall time, and its own peak RSS."""

    returncode: int
    wall_s: float
    peak_rss_bytes: int


# --- building and exporting -------------------------------------------------------------------------------


def run_measured(cmd: list[str], log: Path) -> Measured:
    """Run ``cmd`` with its output in ``log``; ``wait4`` gives that child's peak RSS (in KiB on Linux).

    Linux starts a child's ``ru_maxrss`` at its parent's peak: this process stays small (it never imports torch
    or holds a model) so that the number is the child's. ``harness_peak_rss_bytes`` in the results is that floor.
    """
    start = time.perf_counter()
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped by wait4: Popen must not wait again
    return Measured(proc.returncode, time.perf_counter() - start, usage.ru_maxrss * 1024)


def log_tail(log: Path, lines: int = 8) -> str:
    """The last lines of a log (progress bars' carriage returns split too), for a failure reason."""
    text = log.read_text(errors="replace").replace("\r", "\n")
    return "\n".join([line[:1000] for line in text.splitlines() if line.strip()][-lines:])


def export_record(cmd: list[str], measured: Measured, log: Path) -> dict[str, Any]:
    """What an export run leaves in the results: its command, time and peak RSS, or why it failed."""
    record: dict[str, Any] = {"command": cmd, "wall_s": measured.wall_s, "peak_rss_bytes": measured.peak_rss_bytes}
    if measured.returncode:
        record["error"] = f"exit code {measured.returncode}; end of its log:\n{log_tail(log)}"
    return record


def edgekit_export_command(cache: Cache) -> list[str]:
    """``export_onnx(checkpoint folder, int4)`` in a fresh interpreter, into a partial folder."""
    return [sys.executable, "-c", EDGEKIT_EXPORT, str(cache.checkpoint), str(cache.partial("edgekit"))]


def edgekit_et_export_command(cache: Cache) -> list[str]:
    """``export_executorch(checkpoint folder, 8da4w)``: its KV buffers are fixed at export, to the same budget."""
    return [sys.executable, "-c", EDGEKIT_ET_EXPORT, str(cache.checkpoint), str(cache.partial("edgekit-et"))]


def genai_builder_command(cache: Cache) -> list[str]:
    """onnxruntime-genai's model builder: int4, CPU execution provider, into a partial folder."""
    return [sys.executable, "-m", "onnxruntime_genai.models.builder", "-i", str(cache.checkpoint),
            "-o", str(cache.partial("genai")), "-p", "int4", "-e", "cpu", "-c", str(cache.build_cache),
            "--extra_options", *GENAI_EXTRA_OPTIONS]


EXPORT_COMMANDS: dict[str, Callable[[Cache], list[str]]] = {
    "edgekit": edgekit_export_command, "genai": genai_builder_command, "edgekit-et": edgekit_et_export_command}


def export(cache: Cache, runtime: str, cmd: list[str]) -> dict[str, Any]:
    """Run an export command; a partial output folder becomes the model folder only if the command succeeds."""
    partial, log = cache.partial(runtime), cache.log(f"{runtime}.export")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        record = export_record(cmd, run_measured(cmd, log), log)
        if "error" not in record:
            os.replace(partial, cache.model_dir(runtime))
    finally:
        shutil.rmtree(partial, ignore_errors=True)
        shutil.rmtree(cache.build_cache, ignore_errors=True)
    return record


def cached_export(cache: Cache, runtime: str, reexport: bool) -> dict[str, Any]:
    """The export record of ``runtime``, exporting first unless an export by the same command and the same
    exporter (``exporter_fingerprint``) is cached.

    A failed export is not cached: the next run tries again.
    """
    record_path, out, cmd = cache.record(runtime), cache.model_dir(runtime), EXPORT_COMMANDS[runtime](cache)
    if not reexport and out.is_dir() and record_path.is_file():
        record = json.loads(record_path.read_text())
        if record["command"] == cmd and record.get("exporter") == exporter_fingerprint(runtime):
            return {**record, "cached": True}
    record_path.unlink(missing_ok=True)
    shutil.rmtree(out, ignore_errors=True)
    record = {**export(cache, runtime, cmd), "exporter": exporter_fingerprint(runtime)}
    if "error" not in record:
        atomic_write_text(record_path, json.dumps(record, indent=2))
    return {**record, "cached": False}


def ensure_checkpoint(name: str, cache: Cache) -> dict[str, Any]:
    """Build the random checkpoint folder (in a subprocess) unless it is cached."""
    cached = cache.checkpoint.is_dir()
    if not cached:
        log = cache.log("checkpoint")
        if run_measured([sys.executable, str(CHECKPOINT_BUILDER), name, str(cache.checkpoint)], log).returncode:
            raise SystemExit(f"building the {name} checkpoint failed:\n{log_tail(log)}")
    return {"path": str(cache.checkpoint), "cached": cached, "dtype": "bfloat16",
            "max_position_embeddings": CONTEXT_LENGTH, "size_bytes": folder_bytes(cache.checkpoint)}


def folder_bytes(folder: Path, suffixes: tuple[str, ...] = ()) -> int:
    """Total size of the files in ``folder`` (only names ending in ``suffixes``, when given)."""
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and p.name.endswith(suffixes or ("",)))


def model_size(folder: Path) -> dict[str, int]:
    """The whole folder (tokenizer and configs included) and its model files (graph + weights, or .pte)."""
    return {"folder_bytes": folder_bytes(folder), "model_bytes": folder_bytes(folder, (".onnx", ".onnx.data", ".pte"))}


# --- measuring --------------------------------------------------------------------------------------------


class Worker:
    """A ``decode_worker.py`` process serving one runtime; constructing it waits until the model is loaded."""

    def __init__(self, runtime: str, model_dir: Path, log: Path) -> None:
        self.log = log
        self._log_file: IO[bytes] = open(log, "wb")
        cmd = [sys.executable, str(WORKER), runtime, str(model_dir), "--threads", str(THREADS),
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

    def run(self, prompt: list[int]) -> dict[str, Any]:
        """One timed greedy run."""
        self.proc.stdin.write(json.dumps({"prompt": prompt, "new_tokens": NEW_TOKENS}) + "\n")
        self.proc.stdin.flush()
        return self._reply()

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait()
        self._log_file.close()


def random_prompt() -> list[int]:
    """The prompt both runtimes get: fixed-seed random ids below the special tokens."""
    return np.random.default_rng(PROMPT_SEED).integers(0, VOCAB_LIMIT, PROMPT_TOKENS).tolist()


Outcomes = dict[str, dict[str, Any]]  # runtime -> its error, load reply, warm-up and raw runs


def start_workers(cache: Cache, exports: dict[str, dict[str, Any]]) -> tuple[dict[str, Worker], Outcomes]:
    """Start (one after the other) a worker for each runtime that exported; the others get their error."""
    workers: dict[str, Worker] = {}
    outcomes: Outcomes = {}
    for runtime in RUNTIMES:
        outcome: dict[str, Any] = {"error": exports[runtime].get("error"), "load": None, "warmup": None, "runs": []}
        if not outcome["error"]:
            worker = Worker(runtime, cache.model_dir(runtime), cache.log(f"{runtime}.worker"))
            outcome["load"], outcome["error"] = worker.loaded, worker.loaded.get("error")
            if outcome["error"]:
                worker.close()
            else:
                workers[runtime] = worker
        outcomes[runtime] = outcome
    return workers, outcomes


def measure(workers: dict[str, Worker], outcomes: Outcomes, runs: int, advance: Callable[[], None]) -> None:
    """One warm-up each, then ``runs`` rounds, alternating runtimes; a runtime that errors stops there."""
    prompt = random_prompt()
    for round_index in range(runs + 1):
        for runtime, worker in workers.items():
            outcome = outcomes[runtime]
            if not outcome["error"]:
                result = worker.run(prompt)
                if "error" in result:
                    outcome["error"] = result["error"]
                elif round_index == 0:
                    outcome["warmup"] = result
                else:
                    outcome["runs"].append(result)
            advance()


# --- summarizing ------------------------------------------------------------------------------------------

METRICS = {  # key: (label in the table, unit)
    "pp128_tok_s": ("pp128", "tok/s"),
    "tg64_tok_s": ("tg64", "tok/s"),
    "ttft_ms": ("TTFT", "ms"),
    "peak_rss_mib": ("peak RSS of the worker", "MiB"),
}
RATIO_METRICS = ("pp128_tok_s", "tg64_tok_s", "ttft_ms")


def run_metrics(run: dict[str, Any]) -> dict[str, float]:
    """Throughputs and latencies of one raw run."""
    return {"pp128_tok_s": PROMPT_TOKENS / run["prefill_s"], "tg64_tok_s": NEW_TOKENS / run["decode_s"],
            "ttft_ms": run["ttft_s"] * 1000, "peak_rss_mib": run["peak_rss_bytes"] / MIB}


def summarize(runs: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Median, min and max of each metric over the runs."""
    per_run = [run_metrics(run) for run in runs]
    return {key: {"median": statistics.median(values), "min": min(values), "max": max(values)}
            for key in METRICS for values in [[m[key] for m in per_run]]}


def ratios(summaries: dict[str, dict[str, Any] | None], ours: str, other: str) -> dict[str, float] | None:
    """``ours`` / ``other`` of the medians (above 1 is ``ours`` faster for pp/tg, slower for TTFT)."""
    if not (summaries[ours] and summaries[other]):
        return None
    return {key: summaries[ours][key]["median"] / summaries[other][key]["median"] for key in RATIO_METRICS}


def greedy_agreement(outcomes: Outcomes, pair: tuple[str, str]) -> int | None:
    """How many leading generated ids two runtimes share (same weights, both 4-bit: a sanity check)."""
    firsts = [outcomes[r]["runs"][0]["tokens"] for r in pair if outcomes[r]["runs"]]
    if len(firsts) < 2:
        return None
    return next((i for i, (a, b) in enumerate(zip(*firsts, strict=False)) if a != b), min(map(len, firsts)))


def settings(cache: Cache, runs: int) -> dict[str, Any]:
    """Everything that defines the measurement, for the JSON."""
    return {
        "prompt_tokens": PROMPT_TOKENS, "new_tokens": NEW_TOKENS, "prompt_seed": PROMPT_SEED,
        "prompt_ids_below": VOCAB_LIMIT, "prompt": random_prompt(), "runs": runs, "warmup_runs": 1,
        "order": "interleaved: " + ", ".join(RUNTIMES) + ", repeated", "threads": THREADS,
        "kv_budget_tokens": MAX_LENGTH, "decoding": "greedy; EOS does not stop a run",
        "edgekit": {"load": f"edgekit.load(dir, threads={THREADS}, max_context={MAX_LENGTH})",
                    "session": f"intra-op threads {THREADS}, inter-op 1, spinning off (edgekit's own settings)"},
        "genai": {"builder_command": genai_builder_command(cache),
                  "session_options_overlay": genai_session_options(THREADS),
                  "search_options": {"max_length": MAX_LENGTH, "min_length": MAX_LENGTH, "do_sample": False},
                  "prefill": "Generator.append_tokens"},
        "tokenizer": TOKENIZER_NOTE,
    }


def runtime_result(cache: Cache, runtime: str, exported: dict[str, Any], outcome: dict[str, Any]) -> dict[str, Any]:
    """One runtime's export, size, raw runs and summary."""
    folder = cache.model_dir(runtime)
    return {"export": exported, "size": model_size(folder) if folder.is_dir() else None, **outcome,
            "summary": summarize(outcome["runs"]) if outcome["runs"] else None}


# --- reporting --------------------------------------------------------------------------------------------

LABELS = {"edgekit": "edgekit ONNX int4", "genai": "onnxruntime-genai int4", "edgekit-et": "edgekit ExecuTorch 8da4w"}


def cell(stats: dict[str, float] | None) -> str:
    """``median [min – max]``."""
    if not stats:
        return "—"
    return f"{stats['median']:.1f} [{stats['min']:.1f} – {stats['max']:.1f}]"


def machine_line(machine: dict[str, Any]) -> str:
    flags = ", ".join(f"{f} {'yes' if on else 'no'}" for f, on in machine["flags"].items())
    load = " ".join(f"{x:.2f}" for x in machine["load_average_start"])
    return (f"{machine['cpu']}; {machine['cores']} cores ({machine['usable_cores']} usable); "
            f"{machine['memory_bytes'] / 2**30:.1f} GiB; {flags}; load average at start {load}")


def export_cells(runtimes: dict[str, Any]) -> list[str]:
    """Table rows for export time and peak RSS, model size."""
    rows = []
    for label, value in (("export time (s)", lambda r: f"{r['export']['wall_s']:.1f}"),
                         ("export peak RSS (MiB)", lambda r: f"{r['export']['peak_rss_bytes'] / MIB:.0f}"),
                         ("model folder (MiB)", lambda r: f"{r['size']['folder_bytes'] / MIB:.1f}"),
                         ("of which model files (MiB)", lambda r: f"{r['size']['model_bytes'] / MIB:.1f}")):
        cells = [value(runtimes[r]) if runtimes[r]["size"] else "—" for r in RUNTIMES]
        rows.append(f"| {label} | {' | '.join(cells)} | — | — |")
    return rows


def header_lines(result: dict[str, Any]) -> list[str]:
    """Title and the bullets that say where and how the numbers were taken."""
    settings_, checkpoint = result["settings"], result["checkpoint"]
    return [
        f"# Decode speed: edgekit (ONNX, ExecuTorch) vs onnxruntime-genai — `{result['model']}`", "",
        f"- Date: {result['date']}",
        f"- Machine: {machine_line(result['machine'])}",
        "- Versions: " + ", ".join(f"{k} {v}" for k, v in result["versions"].items()),
        f"- Checkpoint: random weights, {checkpoint['dtype']}, max_position_embeddings "
        f"{checkpoint['max_position_embeddings']}; both runtimes exported from this one folder",
        f"- onnxruntime-genai builder: `-p int4 -e cpu --extra_options {' '.join(GENAI_EXTRA_OPTIONS)}`",
        f"- Settings: {settings_['prompt_tokens']}-token random prompt (seed {settings_['prompt_seed']}), "
        f"{settings_['new_tokens']} greedy decode steps, {settings_['threads']} threads, intra-op spinning off, "
        f"KV budget {settings_['kv_budget_tokens']} tokens; {settings_['runs']} runs each, interleaved, "
        "after one warm-up each",
        "- ExecuTorch: `export_executorch(quant='8da4w', target='android')` (int4 weights per group of 32, int8 "
        "dynamic activations, XNNPACK; its KV buffers fixed at export to the same budget)",
        "- Cells: median [min – max]. Ratios of the medians (pp, tg: above 1 = the first is faster; "
        "TTFT: below 1 = the first is faster)", "",
    ]


def table_lines(result: dict[str, Any]) -> list[str]:
    """One row per metric, one column per runtime, then the ratio."""
    runtimes = result["runtimes"]
    ratio, et_ratio = result["ratios_edgekit_over_genai"] or {}, result["ratios_executorch_over_onnx"] or {}
    lines = [f"| metric | {' | '.join(LABELS[r] for r in RUNTIMES)} | ONNX / genai | ExecuTorch / ONNX |",
             "|---|---|---|---|---|---|"]
    fmt = lambda r, key: f"{r[key]:.2f}" if key in r else "—"  # noqa: E731
    for key, (label, unit) in METRICS.items():
        cells = [cell((runtimes[r]["summary"] or {}).get(key)) for r in RUNTIMES]
        lines.append(f"| {label} ({unit}) | {' | '.join(cells)} | {fmt(ratio, key)} | {fmt(et_ratio, key)} |")
    return lines + export_cells(runtimes) + [""]


def note_lines(result: dict[str, Any]) -> list[str]:
    """Greedy agreement, the tokenizer caveat, and any failure with its reason."""
    lines = []
    for pair, agree in result["greedy_tokens_agree"].items():
        if agree is not None:
            lines.append(f"- Greedy ids of {pair} equal for the first {agree} of "
                         f"{result['settings']['new_tokens'] + 1} generated tokens (same weights, both 4-bit).")
    lines.append(f"- Tokenizer: {result['settings']['tokenizer']}.")
    for runtime in RUNTIMES:
        if result["runtimes"][runtime]["error"]:
            lines += [f"- **{LABELS[runtime]} failed:**", "", "```", result["runtimes"][runtime]["error"], "```"]
    return lines


def render_markdown(result: dict[str, Any]) -> str:
    """The results page: machine, versions, settings, one table of medians [min – max] and ratios, notes."""
    return "\n".join(header_lines(result) + table_lines(result) + note_lines(result)) + "\n"


def write_results(result: dict[str, Any], results_dir: Path) -> tuple[Path, Path]:
    """``<model>.json`` and ``<model>.md``, each written to a temp file and renamed into place."""
    results_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = results_dir / f"{result['model']}.json", results_dir / f"{result['model']}.md"
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


def benchmark(model: str, runs: int, reexport: bool) -> dict[str, Any]:
    """Build, export, measure; return the whole result."""
    cache = Cache(HERE / ".cache" / model)
    cache.root.mkdir(parents=True, exist_ok=True)
    machine = machine_info()
    with progress_bar() as progress:
        checkpoint = step(progress, f"checkpoint {model} (bf16)", lambda: ensure_checkpoint(model, cache))
        exports = {r: step(progress, f"export {LABELS[r]}", lambda r=r: cached_export(cache, r, reexport))
                   for r in RUNTIMES}
        workers, outcomes = step(progress, "load workers", lambda: start_workers(cache, exports))
        task = progress.add_task(f"runs (1 warm-up + {runs}, interleaved)", total=len(workers) * (runs + 1))
        try:
            measure(workers, outcomes, runs, lambda: progress.advance(task))
        finally:
            for worker in workers.values():
                worker.close()
    machine["load_average_end"] = list(os.getloadavg())
    runtimes = {r: runtime_result(cache, r, exports[r], outcomes[r]) for r in RUNTIMES}
    summaries = {r: runtimes[r]["summary"] for r in RUNTIMES}
    return {
        "benchmark": "decode_speed", "model": model, "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine, "versions": versions(), "settings": settings(cache, runs), "checkpoint": checkpoint,
        "runtimes": runtimes,
        "ratios_edgekit_over_genai": ratios(summaries, "edgekit", "genai"),
        "ratios_executorch_over_onnx": ratios(summaries, "edgekit-et", "edgekit"),
        "greedy_tokens_agree": {f"{a} / {b}": greedy_agreement(outcomes, (a, b))
                                for a, b in (("edgekit", "genai"), ("edgekit", "edgekit-et"))},
        "harness_peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=sorted(BUILTIN), default="tiny-random",
                        help="built-in random checkpoint shape")
    parser.add_argument("--runs", type=int, default=5, help="timed runs per runtime, after one warm-up")
    parser.add_argument("--reexport", action="store_true",
                        help="export every runtime again (after an exporter change); the checkpoint stays cached")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    result = benchmark(args.model, args.runs, args.reexport)
    json_path, md_path = write_results(result, HERE / "results")
    console.print(Markdown(render_markdown(result)))
    console.print(f"wrote {json_path} and {md_path}")
    if result["runtimes"]["edgekit"]["error"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
