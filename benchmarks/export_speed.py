"""Export speed: wall time and peak RSS of each exporter on one random checkpoint, edgekit's split by phase.

    flock /work/.heavy.lock python benchmarks/export_speed.py --model random-0.8b
    flock /work/.heavy.lock python benchmarks/export_speed.py --model random-2b --runtime edgekit-et
    python benchmarks/export_speed.py --model tiny-random --runs 2                  # smoke

Exports, in fresh processes and interleaved over ``--runs`` rounds, the anchors suite's checkpoint
(``anchor_exports.py``: random weights, bf16, built once) with: edgekit's ONNX int4 exporter, edgekit's
ExecuTorch exporter (``--target android``: 8da4w, the vision tower, ``forward_rows``), onnxruntime-genai's model
builder (int4) and llama.cpp's converter + Q4_0 quantizer (``gguf_export.py``; only where llama-cpp-python is
installed). The ExecuTorch bundle's manifest carries its own phase timings (``export`` section), which are
reported per phase. The exports land in the anchors' cache with their records, so ``anchors.py`` measures these
very models next. Results: ``benchmarks/results/export-speed-<model>.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from edgekit.export.checkpoint import BUILTIN
from edgekit.files import atomic_write_text

# Beside this script, which puts its folder on sys.path; none of it imports torch (see random_checkpoint.py).
from anchor_exports import Cache, cached_export, ensure_checkpoint
from anchors import MAX_LENGTH
from machine import ANCHOR_EXPORTERS, machine_info, versions

HERE = Path(__file__).resolve().parent
RUNTIMES = ("edgekit", "edgekit-et", "genai", "llama-q4_0")
LABELS = {"edgekit": "edgekit ONNX int4 (text)", "edgekit-et": "edgekit ExecuTorch 8da4w + vision (android)",
          "genai": "onnxruntime-genai builder int4 (text)", "llama-q4_0": "llama.cpp convert + Q4_0 (text)"}
MIB = 2**20


def missing_package(runtime: str) -> str | None:
    package = ANCHOR_EXPORTERS.get(runtime)
    if package:
        try:
            metadata.version(package)
        except metadata.PackageNotFoundError:
            return f"{package} is not installed (pip install -e '.[bench]'; llama-cpp-python compiles for 6-15 min)"
    return None


def one_export(cache: Cache, runtime: str) -> dict[str, Any]:
    """A fresh export (never the cached one) and, for the .pte, the phases from its manifest."""
    record = cached_export(cache, runtime, MAX_LENGTH, reexport=True)
    manifest = cache.model_dir(runtime) / "manifest.json"
    if "error" not in record and manifest.is_file():
        record["phases"] = json.loads(manifest.read_text()).get("export")
    return record


def stats(values: list[float]) -> dict[str, float] | None:
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "n": len(values)} if values else None


def benchmark(model: str, chosen: list[str], runs: int) -> dict[str, Any]:
    cache = Cache(HERE / ".cache" / model)
    cache.root.mkdir(parents=True, exist_ok=True)
    machine = machine_info()
    checkpoint = ensure_checkpoint(model, cache)
    skipped = {r: why for r in chosen if (why := missing_package(r))}
    records: dict[str, list[dict[str, Any]]] = {r: [] for r in chosen if r not in skipped}
    for _ in range(runs):  # interleaved: A B C A B C ...
        for runtime in records:
            records[runtime].append(one_export(cache, runtime))
            print(f"{runtime}: {records[runtime][-1].get('wall_s', 0):.0f} s", flush=True)
    machine["load_average_end"] = list(os.getloadavg())
    results = {}
    for runtime, done in records.items():
        good = [r for r in done if "error" not in r]
        results[runtime] = {
            "label": LABELS[runtime], "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "runs": done,
            "wall_s": stats([r["wall_s"] for r in good]),
            "peak_rss_bytes": stats([r["peak_rss_bytes"] for r in good]),
            "phases": phase_medians([r["phases"] for r in good if r.get("phases")]),
        }
    return {"benchmark": "export_speed", "model": model,
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": machine,
            "versions": versions(), "checkpoint": checkpoint, "runs": runs, "max_context": MAX_LENGTH,
            "runtimes": results, "skipped": skipped}


def phase_medians(exports: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
    """Per phase (in the exporter's order): median seconds and the largest peak RSS over the runs."""
    if not exports:
        return None
    names = [p["phase"] for p in exports[0]["phases"]]
    table = []
    for name in names:
        seen = [p for e in exports for p in e["phases"] if p["phase"] == name]
        table.append({"phase": name, "seconds": statistics.median(p["seconds"] for p in seen),
                      "cpu_seconds": statistics.median(p.get("cpu_seconds", 0.0) for p in seen),
                      "peak_rss_bytes": max(p["peak_rss_bytes"] for p in seen), "n": len(seen)})
    return table


def cell(values: dict[str, float] | None, scale: float = 1.0, digits: int = 0) -> str:
    if not values:
        return "—"
    med, lo, hi = (values[k] / scale for k in ("median", "min", "max"))
    return f"{med:.{digits}f}" if lo == hi else f"{med:.{digits}f} [{lo:.{digits}f} – {hi:.{digits}f}]"


def render_markdown(result: dict[str, Any]) -> str:
    m = result["machine"]
    flags = ", ".join(f"{f} {'yes' if on else 'no'}" for f, on in m["flags"].items())
    load = " / ".join(" ".join(f"{x:.1f}" for x in m[k]) for k in ("load_average_start", "load_average_end"))
    lines = [
        f"# Export speed — `{result['model']}`", "",
        f"- Date: {result['date']}",
        f"- Machine: {m['cpu']}; {m['cores']} cores; {m['memory_bytes'] / 2**30:.1f} GiB; {flags}; "
        f"load average start / end {load}",
        "- Versions: " + ", ".join(f"{k} {v}" for k, v in result["versions"].items() if v),
        f"- Checkpoint: random weights, bf16 safetensors ({result['checkpoint']['size_bytes'] / MIB:.0f} MiB); "
        f"{result['runs']} run(s) of each exporter, interleaved, each in a fresh process; "
        f"context budget {result['max_context']} tokens",
        "- Cells: median [min – max]; peak RSS is the export process's own (`wait4`)", "",
        "| exporter (measured) | wall time (s) | peak RSS (MiB) |", "|---|---|---|",
    ]
    for r in result["runtimes"].values():
        lines.append(f"| {r['label']} ({r['date'][:16]}) | {cell(r['wall_s'])} | {cell(r['peak_rss_bytes'], MIB)} |")
    for runtime, why in result["skipped"].items():
        lines.append(f"| {LABELS[runtime]} | not run: {why} | |")
    for runtime, r in result["runtimes"].items():
        if r["phases"]:
            lines += ["", f"## {r['label']}: phases (as the exporter records them in the manifest)", "",
                      "| phase | wall (s) | CPU (s) | peak RSS in the phase (MiB) |", "|---|---|---|---|"]
            lines += [f"| {p['phase']} | {p['seconds']:.1f} | {p['cpu_seconds']:.1f} | "
                      f"{p['peak_rss_bytes'] / MIB:.0f} |" for p in r["phases"]]
    lines += ["", "A phase's peak RSS is exact for the phase that sets the process's high-water mark and a sampled "
              "(50 ms) lower bound for the others."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=sorted(BUILTIN), default="tiny-random")
    parser.add_argument("--runtime", action="append", choices=RUNTIMES,
                        help="exporters to run (repeatable); default: all")
    parser.add_argument("--runs", type=int, default=1, help="rounds of exports (each minutes at full size)")
    parser.add_argument("--results", type=Path, default=HERE / "results")
    args = parser.parse_args()
    result = benchmark(args.model, args.runtime or list(RUNTIMES), args.runs)
    args.results.mkdir(parents=True, exist_ok=True)
    stem = args.results / f"export-speed-{args.model}"
    previous = Path(f"{stem}.json")
    if previous.is_file():  # exporters not run this time keep their last results (each says its date)
        old = json.loads(previous.read_text())
        for runtime, entry in old["runtimes"].items():
            if runtime not in result["runtimes"] and runtime not in result["skipped"]:
                result["runtimes"][runtime] = {**entry, "date": entry.get("date", old["date"])}
    atomic_write_text(Path(f"{stem}.json"), json.dumps(result, indent=2) + "\n")
    atomic_write_text(Path(f"{stem}.md"), render_markdown(result))
    print(render_markdown(result))


if __name__ == "__main__":
    main()
