"""End-to-end speed of ``edgekit summarize`` on a 60 s clip: real-time factor and peak RSS.

    python benchmarks/summarize_speed.py --model random-0.8b --size 224     # the real measurement
    python benchmarks/summarize_speed.py --model tiny-random --seconds 10   # smoke

Exports (once, cached in ``benchmarks/.cache/<model>/summarize-bundle``) an int4 ONNX bundle with its int8
vision tower, writes a synthetic 640x480 clip (a large moving disc over noisy coloured scenes whose brightness
swings, a cut every 15 s, so the change gate keeps every sampled frame: the worst case), runs ``edgekit summarize`` on it in a child process and records its wall
time, the real-time factor (wall time / clip length; below 1 keeps up with a live camera at these settings),
segments captioned and the child's peak RSS. Results: ``benchmarks/results/summarize-<model>.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import cv2
import numpy as np

from edgekit.files import atomic_write_text

from anchor_exports import log_tail, run_measured  # beside this script
from machine import exporter_fingerprint, machine_info, versions

HERE = Path(__file__).resolve().parent
MIB = 2**20
SCENES = [(40, 40, 160), (40, 160, 40), (160, 40, 40), (120, 120, 120)]  # BGR, one per 15 s


def write_clip(path: Path, seconds: float, fps: float = 10.0, size: tuple[int, int] = (640, 480)) -> Path:
    """A busy clip, so the change gate keeps every sampled frame (the worst case for the model): a large
    moving disc over noisy scenes whose brightness swings, a cut every 15 s (MJPG .avi)."""
    w, h = size
    rng = np.random.default_rng(0)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    for i in range(round(seconds * fps)):
        swing = 1.0 + 0.5 * np.sin(2 * np.pi * i / fps / 3)
        image = np.empty((h, w, 3), np.uint8)
        image[:] = np.clip(np.array(SCENES[int(i / fps // 15) % len(SCENES)]) * swing, 0, 255)
        image = cv2.add(image, rng.integers(0, 24, image.shape, dtype=np.uint8))
        cv2.circle(image, (120 + (40 * i) % (w - 240), h // 2), 120, (255, 255, 255), -1)
        writer.write(image)
    writer.release()
    return path


def cached_bundle(model: str) -> Path:
    """The int4 ONNX bundle with vision, re-exported when edgekit's exporter changed."""
    folder = HERE / ".cache" / model / "summarize-bundle"
    record = folder.parent / "summarize-bundle.export.json"
    if folder.is_dir() and record.is_file() and json.loads(record.read_text()).get("exporter") == \
            exporter_fingerprint("edgekit"):
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    log = folder.parent / "summarize-bundle.export.log"
    cmd = [sys.executable, "-m", "edgekit", "export", model, "-o", str(folder), "--overwrite"]
    if run_measured(cmd, log).returncode:
        raise SystemExit(f"export failed:\n{log_tail(log)}")
    atomic_write_text(record, json.dumps({"exporter": exporter_fingerprint("edgekit")}))
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny-random")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--fps", type=float, default=2.0)
    parser.add_argument("--segment", default="10s")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--bundle", type=Path, help="an exported int4 ONNX bundle with vision (default: export one)")
    parser.add_argument("--name", help="results file stem (default summarize-<model>)")
    parser.add_argument("--low-memory", action="store_true", help="run summarize with --low-memory")
    parser.add_argument("--max-context", type=int, help="run summarize with this --max-context (default: the bundle's)")
    args = parser.parse_args()
    machine = machine_info()
    bundle = args.bundle or cached_bundle(args.model)
    with tempfile.TemporaryDirectory() as tmp:
        clip = write_clip(Path(tmp) / "clip.avi", args.seconds)
        cmd = [sys.executable, "-m", "edgekit", "summarize", str(bundle), str(clip), "-o", str(Path(tmp) / "out"),
               "--size", str(args.size), "--fps", str(args.fps), "--segment", args.segment,
               "--threads", str(args.threads), *(["--low-memory"] if args.low_memory else []),
               *(["--max-context", str(args.max_context)] if args.max_context else [])]
        log = Path(tmp) / "summarize.log"
        measured = run_measured(cmd, log)
        if measured.returncode:
            raise SystemExit(f"summarize failed:\n{log_tail(log)}")
        subprocess.run([sys.executable, "-m", "edgekit", "timeline", "export", str(Path(tmp) / "out")], check=True,
                       capture_output=True)  # the store is the record; timeline.json is an export
        timeline = json.loads((Path(tmp) / "out" / "timeline.json").read_text())
        (HERE / ".cache" / args.model).mkdir(parents=True, exist_ok=True)  # not there when --bundle is given
        shutil.copy(log, HERE / ".cache" / args.model / "summarize.log")
    run = timeline["runs"][0]
    result = {
        "benchmark": "summarize_speed", "model": args.model,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": machine,
        "versions": versions(), "settings": {**vars(args), "bundle": str(bundle), "clip": "640x480 10 fps MJPG, busy: every sampled frame changes"},
        "captioner": run["captioner"], "segments": len(run["segments"]),
        "frames_captioned": sum(len(segment["timestamps"]) for segment in run["segments"]), "wall_s": measured.wall_s,
        "real_time_factor": measured.wall_s / args.seconds, "peak_rss_bytes": measured.peak_rss_bytes,
    }
    stem = HERE / "results" / (args.name or f"summarize-{args.model}")  # not with_suffix: "0.8b" is no extension
    atomic_write_text(stem.parent / f"{stem.name}.json", json.dumps(result, indent=2) + "\n")
    md = (f"# edgekit summarize speed — `{args.model}`\n\n- Date: {result['date']}\n"
          f"- Versions: {', '.join(f'{k} {v}' for k, v in result['versions'].items())}\n"
          f"- Settings: {args.seconds:g} s clip ({result['settings']['clip']}), --size {args.size}, --fps {args.fps:g}, "
          f"--segment {args.segment}{' --low-memory' if args.low_memory else ''}"
          f"{f' --max-context {args.max_context}' if args.max_context else ''}, {args.threads} threads; captioner: {result['captioner']}\n\n"
          "| segments | frames seen by the model | wall time (s) | real-time factor | peak RSS (MiB) |\n"
          "|---|---|---|---|---|\n"
          f"| {result['segments']} | {result['frames_captioned']} | {measured.wall_s:.1f} | {result['real_time_factor']:.2f} | "
          f"{measured.peak_rss_bytes / MIB:.0f} |\n")
    atomic_write_text(stem.parent / f"{stem.name}.md", md)
    print(md)


if __name__ == "__main__":
    main()
