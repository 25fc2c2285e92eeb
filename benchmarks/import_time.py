"""How long the device side takes to import: fresh interpreters, ``python -X importtime``, interleaved runs.

Each case runs in a new process per run (the cases alternate, so machine drift hits all alike); each run
records the wall time of the whole process and the import time Python itself reports (the sum of the
top-level cumulative times of ``-X importtime``), plus the third-party packages that cost most in the last run (each
package's own cumulative time where it was first imported; one may be inside another).
Results: ``benchmarks/results/import-time.json`` and ``.md``.

    python benchmarks/import_time.py --runs 7
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

from machine import machine_info, versions

CASES = {
    "python -c pass": ["-c", "pass"],
    "import edgekit.runtimes": ["-c", "import edgekit.runtimes"],
    "import edgekit.device.profiling": ["-c", "import edgekit.device.profiling"],
    "edgekit --help": ["-m", "edgekit", "--help"],
}
RESULTS = Path(__file__).parent / "results"
_LINE = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \| ( *)(\S+)$")


def run_once(args: list[str]) -> tuple[float, float, dict[str, float]]:
    """(wall ms, import ms, package -> cumulative ms) of one fresh interpreter."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-X", "importtime", *args], capture_output=True, text=True, check=True)
    wall = (time.perf_counter() - start) * 1000
    total, packages = 0.0, {}
    for line in proc.stderr.splitlines():
        match = _LINE.match(line)
        if match:
            cumulative, indent, name = int(match.group(2)) / 1000, match.group(3), match.group(4)
            total += 0 if indent else cumulative
            if "." not in name and not name.startswith("_") and name not in sys.stdlib_module_names:
                packages.setdefault(name, cumulative)
    return wall, total, packages


def spread(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    runs = parser.parse_args().runs
    machine = machine_info()
    raw: dict[str, list[tuple[float, float]]] = {name: [] for name in CASES}
    heaviest: dict[str, list[tuple[str, float]]] = {}
    for name, args in CASES.items():  # one warm-up each: the page cache holds the files afterwards
        run_once(args)
    for _ in range(runs):
        for name, args in CASES.items():
            wall, imports, top = run_once(args)
            raw[name].append((wall, imports))
            heaviest[name] = sorted(((m, ms) for m, ms in top.items() if ms >= 1), key=lambda kv: -kv[1])[:6]
    machine["load_average_end"] = list(os.getloadavg())
    summary = {name: {"wall_ms": spread([w for w, _ in r]), "import_ms": spread([i for _, i in r]),
                      "heaviest_packages_ms": dict(heaviest[name])} for name, r in raw.items()}
    result = {"date": time.strftime("%Y-%m-%d"), "runs": runs, "machine": machine, "versions": versions(),
              "summary": summary, "raw": raw}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "import-time.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / "import-time.md").write_text(to_markdown(result))
    print(to_markdown(result))


def to_markdown(result: dict) -> str:
    m = result["machine"]
    flags = ", ".join(f for f, on in m["flags"].items() if on) or "none"
    lines = [f"# Import time ({result['date']})", "",
             f"{m['cpu']}, {m['cores']} cores ({flags}), load {m['load_average_start'][0]:.1f} → "
             f"{m['load_average_end'][0]:.1f}; Python {result['versions']['python']}, onnxruntime "
             f"{result['versions']['onnxruntime']}; {result['runs']} interleaved runs after a warm-up, "
             "median [min – max].", "",
             "| case | process wall (ms) | imports, -X importtime (ms) | costliest packages, last run (ms; may nest) |",
             "|---|---|---|---|"]
    for name, s in result["summary"].items():
        w, i = s["wall_ms"], s["import_ms"]
        heavy = ", ".join(f"{mod} {ms:.0f}" for mod, ms in s["heaviest_packages_ms"].items())
        lines.append(f"| `{name}` | {w['median']:.0f} [{w['min']:.0f} – {w['max']:.0f}] | "
                     f"{i['median']:.0f} [{i['min']:.0f} – {i['max']:.0f}] | {heavy} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
