"""A bundle's resident memory on aarch64, as a Raspberry Pi 4 (Cortex-A72) and 5 (Cortex-A76) would hold it:
memory_profile's stages run in the aarch64 lane's arm64 root under qemu-user (needs root, like the lane).

    python benchmarks/arm64_memory.py BUNDLE [BUNDLE ...] --name arm64-memory-random-0.8b

onnxruntime packs int4 weights differently on Arm (its NEON kernels keep the scales in the file's tensor), so
the x86 figures do not carry over. Under qemu-user a process's ``/proc/self/smaps`` is the host's, qemu's own
memory (its translated code, its tables) included; ``/proc/self/maps`` is the guest's. So the stages here count
only the host mappings that overlap a guest mapping: the emulated program's own pages. What this cannot show:
the peak (``VmHWM`` is qemu's), and the pages edgekit pages out (qemu-user ignores ``MADV_PAGEOUT``), so the
file-backed figure is what a Pi holds before that, an upper bound; speed under emulation means nothing.
Uses the lane's cached root and Pi venv (``.ci/arm64``; built on first use, ~7 min).
Results: ``benchmarks/results/<name>.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
LANE = HERE.parent / ".ci" / "arm64"


def guest_resident(proc: Path = Path("/proc/self")):
    """This emulated process's resident memory: the host's smaps entries that overlap the guest's maps."""
    from edgekit.memory import Resident

    ranges = []
    for line in (proc / "maps").read_text().splitlines():
        start, end = line.split()[0].split("-")
        ranges.append((int(start, 16), int(end, 16)))
    rss = anonymous = 0
    counted = False
    for line in (proc / "smaps").read_text().splitlines():
        fields = line.split()
        head = fields[0] if fields else ""
        if "-" in head and not head.endswith(":"):  # a mapping's first line: START-END PERMS ...
            start, end = (int(x, 16) for x in head.split("-"))
            counted = any(start < e and s < end for s, e in ranges)
        elif counted and head == "Rss:":
            rss += int(fields[1]) * 1024
        elif counted and head == "Anonymous:":
            anonymous += int(fields[1]) * 1024
    return Resident(rss=rss, anonymous=anonymous, file=rss - anonymous, peak=0)


def in_guest(bundle: str, pp: int, tg: int) -> None:
    """Run inside the arm64 root: memory_profile's stages, counted with ``guest_resident``; one JSON line."""
    import onnxruntime

    from edgekit.device import memory_profile

    memory_profile.resident = guest_resident
    result = memory_profile.measure_stages(bundle, threads=2, pp=pp, tg=tg, vision=False)
    print(json.dumps({"stages": [{k: s[k] for k in ("stage", "rss", "anonymous", "file")} for s in result["stages"]],
                      "state": result["state"], "bundle": result["bundle"], "onnxruntime": onnxruntime.__version__}))


def lane_root_and_venv() -> tuple[str, str]:
    """The lane's arm64 root and a Pi venv with this checkout's edgekit (both cached by the lane's scripts)."""
    root = subprocess.run([str(LANE / "build-root.sh")], check=True, capture_output=True, text=True).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="edgekit-wheel-") as dist:  # the venv installs it; then not needed
        subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", str(HERE.parent), "--no-deps", "-w", dist],
                       check=True)
        wheel = next(Path(dist).glob("edgekit-*.whl"))
        venv = subprocess.run([str(LANE / "build-venv.sh"), root, str(wheel), "pi"], check=True,
                              capture_output=True, text=True).stdout.strip()
    return root, venv


def run_in_root(root: str, venv: str, cpu: str, bundle: Path, pp: int, tg: int) -> dict[str, Any]:
    cmd = [str(LANE / "chroot.sh"), "--root", root, "--cpu", cpu, "--bind", f"{HERE}:/bench",
           "--bind", f"{bundle.resolve()}:/bundle", "--bind", f"{venv}:/venv", "--env", "PATH=/venv/bin:/usr/bin:/bin",
           "--", "python", "/bench/arm64_memory.py", "--guest", "/bundle", "--pp", str(pp), "--tg", str(tg)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    if done.returncode:
        return {"error": (done.stderr.strip().splitlines() or ["no output"])[-1][:300]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def to_markdown(result: dict[str, Any]) -> str:
    lines = ["# Resident memory on aarch64 (qemu-user, the emulated process's own pages)", "",
             f"- Date: {result['date']}; host: {result['machine']['cpu']}; in the root: "
             + ", ".join(sorted({f"onnxruntime {r['result']['onnxruntime']}" for r in result["runs"]
                                 if "onnxruntime" in r["result"]})),
             f"- Settings: {result['settings']['pp']}-token prefill, {result['settings']['tg']} greedy steps, "
             "2 threads; one run per bundle and CPU (memory does not vary with the emulation's speed)",
             "- File-backed: before edgekit's page-out (qemu-user ignores `MADV_PAGEOUT`), so an upper bound", "",
             "| bundle | CPU | stage | RSS (MiB) | anonymous | file-backed |", "|---|---|---|---|---|---|"]
    for run in result["runs"]:
        if "error" in run["result"]:
            lines.append(f"| {run['bundle']} | {run['cpu']} | error: {run['result']['error']} |||")
            continue
        for s in run["result"]["stages"]:
            lines.append(f"| {run['bundle']} | {run['cpu']} | {s['stage']} | {s['rss']:.0f} | {s['anonymous']:.0f} | "
                         f"{s['file']:.0f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundles", nargs="+")
    parser.add_argument("--guest", action="store_true", help=argparse.SUPPRESS)  # inside the root
    parser.add_argument("--cpus", default="cortex-a76,cortex-a72")
    parser.add_argument("--pp", type=int, default=32)
    parser.add_argument("--tg", type=int, default=8)
    parser.add_argument("--name", default="arm64-memory")
    args = parser.parse_args()
    if args.guest:
        return in_guest(args.bundles[0], args.pp, args.tg)

    from datetime import datetime, timezone

    from edgekit.files import atomic_write_text

    from machine import machine_info  # beside this script

    root, venv = lane_root_and_venv()
    runs = []
    for bundle in map(Path, args.bundles):
        for cpu in args.cpus.split(","):
            print(f"{bundle} as {cpu}", file=sys.stderr, flush=True)
            runs.append({"bundle": str(bundle), "cpu": cpu, "result": run_in_root(root, venv, cpu, bundle, args.pp,
                                                                                   args.tg)})
    result = {"benchmark": "arm64-memory", "date": datetime.now(timezone.utc).isoformat(), "machine": machine_info(),
              "settings": {"pp": args.pp, "tg": args.tg}, "runs": runs}
    atomic_write_text(HERE / "results" / f"{args.name}.json", json.dumps(result, indent=1) + "\n")
    atomic_write_text(HERE / "results" / f"{args.name}.md", to_markdown(result))
    print(to_markdown(result))
    failed = [f"{r['bundle']} as {r['cpu']}: {r['result']['error']}" for r in runs if "error" in r["result"]]
    if failed:
        sys.exit("arm64_memory: " + "; ".join(failed))


if __name__ == "__main__":
    main()
