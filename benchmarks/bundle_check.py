"""What checking a bundle at load costs: the full sha256 of every file (the first load after a file changed)
against the stamp check (every later load: one stat per file), next to the whole ``edgekit.load``, on a
Qwen3.5-0.8B-shaped int4 bundle. Interleaved and repeated; the files are in the page cache after the first
round, so the hash rounds measure hashing, not the disk.

    python benchmarks/bundle_check.py --model random-0.8b --runs 5
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path

from rich.console import Console

import edgekit
from edgekit.bundle import STAMP, Bundle
from edgekit.files import atomic_write_text

from machine import machine_info, versions
from prompt_cache import bundle_for

HERE = Path(__file__).resolve().parent
console = Console(stderr=True)


def timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="random-0.8b", help="built-in random model (tiny-random for a smoke run)")
    parser.add_argument("--bundle", type=Path, help="an existing bundle instead of the cached export")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    machine = machine_info()
    bundle = args.bundle or bundle_for(args.model)
    size = sum(e.bytes for e in Bundle.open(bundle).manifest.files.values())
    runs: dict[str, list[float]] = {"full_sha256_s": [], "stamp_check_s": [], "load_with_stamp_s": []}
    for rep in range(args.runs):
        console.print(f"round {rep + 1}/{args.runs}")
        (bundle / STAMP).unlink(missing_ok=True)
        seconds, hashed = timed(lambda: Bundle.open(bundle).check_files())
        assert hashed == size
        runs["full_sha256_s"].append(seconds)
        seconds, hashed = timed(lambda: Bundle.open(bundle).check_files())
        assert hashed == 0
        runs["stamp_check_s"].append(seconds)
        runs["load_with_stamp_s"].append(timed(lambda: edgekit.load(bundle))[0])
    med = {k: statistics.median(v) for k, v in runs.items()}
    result = {"benchmark": "bundle_check", "model": args.model, "date": datetime.now(timezone.utc).isoformat(),
              "machine": machine, "versions": versions(), "runs": args.runs, "bundle_bytes": size, **runs,
              "medians_s": med, "sha256_mib_s": size / 2**20 / med["full_sha256_s"]}

    def cell(key: str) -> str:
        v = runs[key]
        return f"{med[key] * 1000:.1f} ms [{min(v) * 1000:.1f}-{max(v) * 1000:.1f}]"

    table = "\n".join([
        f"# Bundle check at load — `{args.model}` int4, {size / 2**20:.0f} MiB, {args.runs} interleaved runs "
        "(median [min-max])", "",
        f"- Machine: {machine['cpu']}, {machine['usable_cores']} cores, load average {machine['load_average_start']}",
        "- Versions: " + ", ".join(f"{k} {v}" for k, v in result["versions"].items() if v), "",
        "| check | time |", "|---|---|",
        f"| full sha256 of every file (first load after a change) | {cell('full_sha256_s')} "
        f"({result['sha256_mib_s']:.0f} MiB/s) |",
        f"| stamp check, files unchanged (every other load) | {cell('stamp_check_s')} |",
        f"| whole `edgekit.load` with the stamp | {cell('load_with_stamp_s')} |", "",
    ]) + "\n"
    stem = HERE / "results" / f"bundle-check-{args.model}"
    atomic_write_text(Path(f"{stem}.json"), json.dumps(result, indent=2) + "\n")
    atomic_write_text(Path(f"{stem}.md"), table)
    print(table)


if __name__ == "__main__":
    main()
