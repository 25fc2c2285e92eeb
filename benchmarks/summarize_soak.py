"""Soak of the summarizer and its timeline store: RSS, store size and per-segment write time over hours of input.

    python benchmarks/summarize_soak.py --hours 1                  # the measurement (tiny bundle, ~10 min here)
    python benchmarks/summarize_soak.py --hours 0.05 --week-rows 2000   # smoke (not run in CI)

Two phases on the same synthetic clip (small frames, a moving disc so every sampled frame is kept, read as
fast as the model captions it: a file source): ``hour 1``, a fresh store; ``week 1``, a store pre-filled with
a week of segments at one per 10 s (``--week-rows``, thumbnails included) and ``--keep 7d`` retention, so each
new segment also deletes the oldest: the steady state of a camera that has run for a week. Per segment:
the time ``Timeline.add_segment`` takes (JPEG thumbnails + one SQLite transaction with fsync + retention),
the process RSS and the store's size (database + WAL + thumbnails). Results:
``benchmarks/results/summarize-soak.json``, ``.md`` and ``.png`` (matplotlib).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import cv2
import numpy as np
import psutil

import edgekit
from edgekit.files import atomic_write_text
from edgekit.sampling import SamplingParams
from edgekit.video.captioner import FrameStatsCaptioner, VisionCaptioner
from edgekit.video.sources import open_source
from edgekit.video.store import Retention
from edgekit.video.summarizer import Summarizer, SummarizerSettings
from edgekit.video.timeline import Timeline

from machine import machine_info, versions  # beside this script
from summarize_speed import cached_bundle

HERE = Path(__file__).resolve().parent
MIB = 2**20
WEEK = 7 * 86400


def write_clip(path: Path, seconds: float, fps: float = 2.0, size: tuple[int, int] = (96, 64)) -> Path:
    """Small frames, a moving disc (every sampled frame changes) over a colour that changes every minute."""
    w, h = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    for i in range(round(seconds * fps)):
        image = np.full((h, w, 3), ((i // 120) * 53 % 256, 80, 160), np.uint8)
        cv2.circle(image, (8 + (5 * i) % (w - 16), h // 2), 8, (255, 255, 255), -1)
        writer.write(image)
    writer.release()
    return path


class MeasuredTimeline(Timeline):
    """A timeline that records, per segment, its write time, the process RSS and the store's size."""

    def __init__(self, *args, **kw) -> None:
        super().__init__(*args, **kw)
        self.samples: list[dict[str, float]] = []
        self.process = psutil.Process()
        self.t0 = time.monotonic()

    def add_segment(self, *args, **kw):
        start = time.perf_counter()
        record = super().add_segment(*args, **kw)
        write_ms = (time.perf_counter() - start) * 1000
        self.samples.append({"segment": len(self.samples), "wall_s": round(time.monotonic() - self.t0, 2),
                             "write_ms": round(write_ms, 3), "rss_mib": round(self.process.memory_info().rss / MIB, 1),
                             "store_mib": round(folder_bytes(self.out) / MIB, 3)})
        return record


def folder_bytes(folder: Path) -> int:
    return sum(entry.stat().st_size for entry in folder.rglob("*") if entry.is_file())


def prefill_week(out: Path, rows: int, camera: str) -> None:
    """A week of segments ending now (one every WEEK / rows seconds), with a small thumbnail each."""
    timeline = Timeline(out, camera=camera)
    store = timeline.open()
    thumbnail = cv2.imencode(".jpg", np.full((64, 96, 3), 90, np.uint8))[1].tobytes()
    now = time.time()
    step = WEEK / rows
    with store.transaction() as db:
        store._insert(db, {"type": "run", "camera": camera, "run": 1, "source": "prefill",
                           "started_at": datetime.fromtimestamp(now - WEEK, timezone.utc).isoformat(),
                           "captioner": "prefill", "settings": {}})
        for i in range(rows):
            name = f"frames/prefill-{i:06d}.jpg"
            (out / name).write_bytes(thumbnail)
            store._insert(db, {"type": "segment", "camera": camera, "run": 1, "id": f"{camera}/1/segment/{i}",
                               "index": i, "start": i * step, "end": (i + 1) * step,
                               "wall": datetime.fromtimestamp(now - WEEK + i * step, timezone.utc).isoformat(),
                               "frames": 2, "timestamps": [i * step], "cuts": [],
                               "caption": f"a person walks past the door, segment {i}", "thumbnails": [name]})
    timeline.close()


def run_phase(model, clip: Path, out: Path, retention: Retention | None, segment_s: float) -> list[dict]:
    timeline = MeasuredTimeline(out, mode="append", camera="soak", retention=retention)
    kind = VisionCaptioner if model.has_vision else FrameStatsCaptioner
    captioner = kind(model, caption_tokens=16, summary_tokens=16, sampling=SamplingParams(temperature=1.0, top_k=20, seed=0))
    settings = SummarizerSettings(fps=1.0, size=64, segment_s=segment_s, captions_per_summary=30)
    Summarizer(captioner, timeline, settings).run(open_source(str(clip)))
    timeline.close()
    return timeline.samples


def summary(samples: list[dict]) -> dict:
    """Medians and spread of the first and last tenth: flat means the last tenth is like the first."""
    tenth = max(1, len(samples) // 10)
    first, last = samples[:tenth], samples[-tenth:]

    def stats(rows, key):
        values = sorted(r[key] for r in rows)
        return {"median": statistics.median(values), "p10": values[len(values) // 10],
                "p90": values[min(len(values) - 1, len(values) * 9 // 10)]}
    return {"segments": len(samples), "write_ms_first_tenth": stats(first, "write_ms"),
            "write_ms_last_tenth": stats(last, "write_ms"),
            "rss_mib_first_tenth": stats(first, "rss_mib"), "rss_mib_last_tenth": stats(last, "rss_mib"),
            "store_mib_first": samples[0]["store_mib"], "store_mib_last": samples[-1]["store_mib"]}


def plot(phases: dict[str, list[dict]], path: Path) -> bool:
    try:
        import matplotlib
    except ModuleNotFoundError:
        print("matplotlib is not installed (the bench extra): no plot", file=sys.stderr)
        return False
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(3, 1, figsize=(8, 9), sharex=True)
    for name, samples in phases.items():
        x = [s["segment"] for s in samples]
        axes[0].plot(x, [s["write_ms"] for s in samples], ".", markersize=2, label=name)
        axes[1].plot(x, [s["rss_mib"] for s in samples], label=name)
        axes[2].plot(x, [s["store_mib"] for s in samples], label=name)
    for ax, label in zip(axes, ["segment write (ms)", "process RSS (MiB)", "store + thumbnails (MiB)"]):
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend()
    axes[0].set_yscale("log")
    axes[2].set_xlabel("segment")
    fig.suptitle("edgekit summarize soak: a fresh store (hour 1) and a week-old one with --keep 7d (week 1)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="tiny-random")
    parser.add_argument("--hours", type=float, default=1.0, help="input per phase")
    parser.add_argument("--segment", type=float, default=10.0, help="seconds per segment")
    parser.add_argument("--week-rows", type=int, default=60480, help="segments in the week-old store (10 s each)")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()
    model = edgekit.load(cached_bundle(args.model), threads=min(4, os.cpu_count() or 1))
    with tempfile.TemporaryDirectory() as tmp:
        clip = write_clip(Path(tmp) / "soak.avi", args.hours * 3600)
        phases = {"hour 1": run_phase(model, clip, Path(tmp) / "fresh", None, args.segment)}
        prefill_week(Path(tmp) / "week", args.week_rows, "soak")
        phases["week 1"] = run_phase(model, clip, Path(tmp) / "week", Retention(keep_s=WEEK), args.segment)
    result = {"benchmark": "summarize-soak", "model": args.model, "hours_per_phase": args.hours,
              "segment_s": args.segment, "week_rows": args.week_rows, "machine": machine_info(),
              "versions": versions(), "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "summary": {name: summary(samples) for name, samples in phases.items()}, "samples": phases}
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "summarize-soak.json", json.dumps(result, indent=1) + "\n")
    plotted = plot(phases, args.out / "summarize-soak.png")
    atomic_write_text(args.out / "summarize-soak.md", markdown(result, plotted))
    print((args.out / "summarize-soak.md").read_text())


def markdown(result: dict, plotted: bool) -> str:
    m = result["machine"]
    lines = [f"# summarize soak ({result['model']}, {result['hours_per_phase']:g} h of input per phase, "
             f"{result['segment_s']:g} s segments)", "",
             f"{m.get('cpu', '?')}, {m.get('cores', '?')} cores, "
             + ", ".join(f"{f} {'yes' if on else 'no'}" for f, on in m.get("flags", {}).items())
             + f"; load average at start {' '.join(f'{x:.1f}' for x in m.get('load_average_start', []))}; "
             f"{result['date']}; " + ", ".join(f"{k} {v}" for k, v in result["versions"].items() if v) + ".",
             "", "Per segment write = JPEG thumbnail + one SQLite transaction (WAL, synchronous=FULL) + retention. "
             "Input is read as fast as the model captions it, so an hour of video takes minutes.", "",
             "| phase | segments | write ms first tenth (median, p10-p90) | last tenth | RSS MiB first / last tenth "
             "| store MiB first / last |", "|---|---|---|---|---|---|"]
    for name, s in result["summary"].items():
        a, b = s["write_ms_first_tenth"], s["write_ms_last_tenth"]
        lines.append(f"| {name} | {s['segments']} | {a['median']:.2f} ({a['p10']:.2f}-{a['p90']:.2f}) | "
                     f"{b['median']:.2f} ({b['p10']:.2f}-{b['p90']:.2f}) | {s['rss_mib_first_tenth']['median']:.0f} / "
                     f"{s['rss_mib_last_tenth']['median']:.0f} | {s['store_mib_first']:.2f} / {s['store_mib_last']:.2f} |")
    if plotted:
        lines += ["", "![soak](summarize-soak.png)"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
