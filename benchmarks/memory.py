"""Where a bundle's memory goes, and what each saving buys: RSS by stage, peak, load time and speed per variant.

    python benchmarks/memory.py /work/cache/random-0.8b-onnx --runs 3          # every lever, one by one
    python benchmarks/memory.py BUNDLE --variants before,after --runs 5          # just the two ends

Each run is ``edgekit.device.memory_profile`` in a fresh interpreter: load the bundle stage by stage (imports,
tokenizer, decoder), a 128-token prefill and 64 greedy decode steps at the bundle's default context with 2
threads, then the vision tower (encode one 224x224 frame pair, release it). A variant switches the memory
levers (``Levers``): ``before`` has them all off (what edgekit did before), each ``+lever`` turns one on alone,
``after`` is the default. Variants alternate (A B C ... A B C) so machine drift hits all alike.
Cells: median [min – max]. Results: ``benchmarks/results/memory-<model>-<backend>.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from edgekit.device.memory_profile import stages_in_child
from edgekit.files import atomic_write_text

from machine import machine_info, versions  # beside this script

HERE = Path(__file__).resolve().parent
OFF = ["release_heap=0", "page_out=0", "build_release=0", "tokenizer_first=0", "reserved_kv=0"]
VARIANTS: dict[str, tuple[str, list[str]]] = {
    "before": ("every lever off (edgekit before this change)", OFF),
    "+heap": ("freed heap given back after the tokenizer and each session",
              ["page_out=0", "build_release=0", "tokenizer_first=0", "reserved_kv=0"]),
    "+heap+order": ("... and the tokenizer loaded before the weights", ["page_out=0", "build_release=0", "reserved_kv=0"]),
    "+page-out": ("mapped weight pages onnxruntime read once to pre-pack them dropped after loading",
                  ["release_heap=0", "build_release=0", "tokenizer_first=0", "reserved_kv=0"]),
    "+reserved-kv": ("KV pages resident only as rows are written",
                     ["release_heap=0", "page_out=0", "build_release=0", "tokenizer_first=0"]),
    "+no-prepack": ("onnxruntime session.disable_prepacking=1 (MatMulNBits keeps the file's layout)",
                    OFF + ["session.disable_prepacking=1"]),
    "+no-arena": ("onnxruntime CPU arena off", OFF + ["arena=0"]),
    "previous": ("the levers above together, mapped weights paged out only after the session is built (edgekit "
                 "before the build-time page-out)", ["build_release=0"]),
    "after-slow-build-release": ("the defaults, but the build's page-out checked every 20 ms at 32 MiB steps "
                                 "(edgekit before 2026-12-04)", ["build_every_ms=20", "build_step_mib=32"]),
    "after": ("the defaults: the levers kept (the above, and mapped weights paged out while the session is "
              "built, checked every 2 ms, at each 8 MiB of file-backed growth)", []),
    "after-no-arena": ("the defaults with onnxruntime's CPU arena off", ["arena=0"]),
}


def spread(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Median and range of every number that matters, over one variant's runs."""
    ok = [r for r in runs if "error" not in r]
    if not ok:
        return {"error": runs[0]["error"]}
    by_stage: dict[str, dict[str, dict[str, float]]] = {}
    for stage in ok[0]["stages"]:
        name = stage["stage"]
        by_stage[name] = {key: spread([next(s[key] for s in r["stages"] if s["stage"] == name) for r in ok])
                          for key in ("rss", "anonymous", "file", "peak", "seconds")}
    return {"runs": len(ok), "stages": by_stage, "peak_text_mib": spread([r["peak_text_mib"] for r in ok]),
            "peak_mib": spread([r["stages"][-1]["peak"] for r in ok]),
            "load_s": spread([r["load_s"] for r in ok]), "prefill_tok_s": spread([r["prefill_tok_s"] for r in ok]),
            "decode_tok_s": spread([r["decode_tok_s"] for r in ok]), "state": ok[0]["state"],
            "bundle": ok[0]["bundle"], "settings": ok[0]["settings"]}


def cell(s: dict[str, float], digits: int = 0) -> str:
    return f"{s['median']:.{digits}f} [{s['min']:.{digits}f} – {s['max']:.{digits}f}]"


def machine_lines(result: dict[str, Any]) -> list[str]:
    """The results header's date, machine (CPU, cores, memory, SIMD flags, load average) and versions lines."""
    m, v = result["machine"], result["versions"]
    flags = ", ".join(f"{k} {'yes' if on else 'no'}" for k, on in m["flags"].items())
    return [f"- Date: {result['date']}",
            f"- Machine: {m['cpu']}; {m['cores']} cores ({m['usable_cores']} usable); "
            f"{m['memory_bytes'] / 2**30:.1f} GiB; {flags}; load average {m['load_average_start']} → "
            f"{m['load_average_end']}",
            "- Versions: " + ", ".join(f"{k} {val}" for k, val in v.items() if val)]


def run_cells(s: dict[str, Any]) -> str:
    """One summarized variant's table cells after its peak: RSS after decode, its anonymous and file-backed parts,
    load time, prefill and decode speed."""
    d = s["stages"]["decode"]
    return (f"{cell(d['rss'])} | {d['anonymous']['median']:.0f} | {d['file']['median']:.0f} | "
            f"{cell(s['load_s'], 2)} | {cell(s['prefill_tok_s'])} | {cell(s['decode_tok_s'], 1)}")


def to_markdown(result: dict[str, Any]) -> str:
    first = next(s for s in result["variants"].values() if "error" not in s)
    weights = first["bundle"]["weights_bytes"] / 2**20
    lines = [f"# Memory: `{result['bundle']}` ({first['bundle']['backend']}, decoder weights {weights:.0f} MiB)", "",
             *machine_lines(result),
             f"- Settings: {result['settings']['pp']}-token prefill, {result['settings']['tg']} greedy decode steps, "
             f"{result['settings']['threads']} threads, context {first['settings']['max_context']} (the bundle's "
             f"default); {result['runs']} runs per variant, interleaved; each run a fresh process",
             "- Peak (text): VmHWM after load + prefill + decode, before the vision tower. "
             "Cells: median [min – max]", "",
             "| variant | peak, text (MiB) | ÷ weights | RSS after decode (MiB) | anonymous | file-backed | "
             "load (s) | prefill (tok/s) | decode (tok/s) | peak with vision (MiB) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name, s in result["variants"].items():
        if "error" in s:
            lines.append(f"| {name} | error: {s['error']} |||||||||")
            continue
        lines.append(f"| {name} | {cell(s['peak_text_mib'])} | {s['peak_text_mib']['median'] / weights:.2f} | "
                     f"{run_cells(s)} | {cell(s['peak_mib'])} |")
    lines += ["", "Variants: " + "; ".join(f"`{n}`: {VARIANTS[n][0]}" for n in result["variants"]), ""]
    for name in ("before", "previous", "after"):
        s = result["variants"].get(name)
        if not s or "error" in s:
            continue
        lines += [f"RSS by stage, `{name}` (MiB, medians; Δ: growth over the stage before):", "",
                  "| stage | RSS | Δ | anonymous | file-backed | peak so far | seconds |",
                  "|---|---|---|---|---|---|---|"]
        previous = 0.0
        for stage, r in s["stages"].items():
            lines.append(f"| {stage} | {r['rss']['median']:.0f} | {r['rss']['median'] - previous:+.0f} | "
                         f"{r['anonymous']['median']:.0f} | {r['file']['median']:.0f} | {r['peak']['median']:.0f} | "
                         f"{r['seconds']['median']:.2f} |")
            previous = r["rss"]["median"]
        lines.append("")
    if result.get("whole"):
        lines += [f"A plain `edgekit.load` run (`memory_whole.py`), before = `{result['whole_before_python']}`:", "",
                  "| code | peak (MiB) | RSS at the end (MiB) | load (s) | prefill (tok/s) | decode (tok/s) |",
                  "|---|---|---|---|---|---|"]
        for name, w in result["whole"].items():
            lines.append(f"| {name} | {cell(w['peak_mib'])} | {cell(w['rss_mib'])} | {cell(w['load_s'], 2)} | "
                         f"{cell(w['prefill_tok_s'])} | {cell(w['decode_tok_s'], 1)} |")
        lines.append("")
    st = first["state"]
    lines += [f"State: DeltaNet {st['deltanet_bytes'] / 2**20:.1f} MiB fixed; "
              f"KV {st['kv_bytes_per_token'] / 1024:.0f} KiB "
              f"a token: {st['kv_used_bytes'] / 2**20:.1f} MiB for the {st['tokens']} tokens used, "
              f"{st['kv_budget_bytes'] / 2**20:.1f} MiB for the whole budget of {st['max_context']}.", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", type=Path)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--pp", type=int, default=128)
    parser.add_argument("--tg", type=int, default=64)
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated, from: " + ", ".join(VARIANTS))
    parser.add_argument("--name", help="results file stem (default memory-<model>-<backend>)")
    parser.add_argument("--whole-before", metavar="PYTHON", help="also run memory_whole.py (a plain edgekit.load "
                        "run) with this interpreter (another checkout's venv: the code before) and with this one")
    args = parser.parse_args()
    names = args.variants.split(",")
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        sys.exit(f"error: unknown variant(s) {', '.join(unknown)} (choose from {', '.join(VARIANTS)})")
    manifest = json.loads((args.bundle / "manifest.json").read_text())
    if manifest["backend"] != "onnx":  # the onnxruntime levers do not apply to a .pte
        names = [n for n in names if not VARIANTS[n][1] or "session." not in " ".join(VARIANTS[n][1])
                 and "arena=0" not in VARIANTS[n][1]]
    machine = machine_info()
    runs: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    pythons = {"before (whole)": args.whole_before, "after (whole)": sys.executable} if args.whole_before else {}
    whole: dict[str, list[dict[str, Any]]] = {n: [] for n in pythons}
    for run in range(args.runs):
        for name in names:
            print(f"run {run + 1}/{args.runs}: {name}", file=sys.stderr, flush=True)
            runs[name].append(stages_in_child(args.bundle, threads=args.threads, pp=args.pp, tg=args.tg,
                                              levers=VARIANTS[name][1]))
        for name, python in pythons.items():
            print(f"run {run + 1}/{args.runs}: {name}", file=sys.stderr, flush=True)
            done = subprocess.run([python, str(HERE / "memory_whole.py"), str(args.bundle), "--threads",
                                   str(args.threads), "--pp", str(args.pp), "--tg", str(args.tg)],
                                  capture_output=True, text=True)
            whole[name].append(json.loads(done.stdout) if done.returncode == 0 else {"error": done.stderr[-300:]})
    machine["load_average_end"] = list(__import__("os").getloadavg())
    model = manifest["source"]["model"].split("/")[-1]
    result = {"benchmark": "memory", "bundle": str(args.bundle), "date": datetime.now(timezone.utc).isoformat(),
              "machine": machine, "versions": versions(), "runs": args.runs,
              "settings": {"threads": args.threads, "pp": args.pp, "tg": args.tg},
              "variants": {n: summarize(r) for n, r in runs.items()}, "whole": {
                  n: {key: spread([r[key] for r in rs if "error" not in r]) for key in
                      ("peak_mib", "rss_mib", "load_s", "prefill_tok_s", "decode_tok_s")} for n, rs in whole.items()
                  if any("error" not in r for r in rs)},
              "whole_before_python": args.whole_before, "raw": runs, "raw_whole": whole}
    stem = args.name or f"memory-{model}-{manifest['backend']}"
    out = HERE / "results"
    atomic_write_text(out / f"{stem}.json", json.dumps(result, indent=1) + "\n")
    atomic_write_text(out / f"{stem}.md", to_markdown(result))
    print(to_markdown(result))


if __name__ == "__main__":
    main()
