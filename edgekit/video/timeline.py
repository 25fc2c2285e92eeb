"""The summarizer's output folder: an append-only timeline that survives a crash at any moment.

``timeline.jsonl`` is the record: one JSON object per line (a run starting, a captioned segment, a
summary, an event such as a reconnect, the run stopping), each flushed and fsynced as it is written.
``timeline.json`` and ``timeline.md`` are regenerated from it atomically after every record, and the
key-frame thumbnails are JPEGs under ``frames/``. A line torn by a power cut is dropped on the next
``--append`` run; nothing before it is lost.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.errors import EdgekitError
from edgekit.files import atomic_write_bytes, atomic_write_text
from edgekit.video.sources import encode_jpeg

FORMAT = "edgekit-timeline"
VERSION = 1
RECORDS = "timeline.jsonl"
FRAMES = "frames"
_GROUPS = {"segment": "segments", "summary": "summaries", "event": "events"}


class Timeline:
    """Writes the records of one run into ``out`` (``mode``: new, append or overwrite)."""

    def __init__(self, out: Path, mode: str = "new") -> None:
        self.out = Path(out)
        self.path = self.out / RECORDS
        if mode not in ("new", "append", "overwrite"):
            raise EdgekitError(f"unknown timeline mode {mode!r}", "use new, append or overwrite")
        if self.path.exists() and mode == "new":
            raise EdgekitError(f"{self.out} already holds a timeline",
                               "pass --append to continue it, --overwrite to start over, or another -o folder")
        if mode == "overwrite":
            for name in (RECORDS, "timeline.json", "timeline.md"):
                (self.out / name).unlink(missing_ok=True)
            shutil.rmtree(self.out / FRAMES, ignore_errors=True)
        (self.out / FRAMES).mkdir(parents=True, exist_ok=True)
        self.records = read_records(self.path, repair=True)
        self.run = 1 + max((r.get("run", 0) for r in self.records), default=0)

    def _write(self, record: dict[str, Any]) -> dict[str, Any]:
        record = {"type": record.pop("type"), "run": self.run, **record}
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self.records.append(record)
        self.render()
        return record

    def start_run(self, source: str, settings: dict[str, Any], captioner: str) -> dict[str, Any]:
        return self._write({"type": "run", "source": source, "started_at": _now(), "captioner": captioner,
                            "settings": settings})

    def add_segment(self, index: int, start: float, end: float, timestamps: Sequence[float],
                    cuts: Sequence[float], caption: str, keyframes: Sequence[np.ndarray]) -> dict[str, Any]:
        """Save the key frames as JPEGs, then append the segment record."""
        thumbnails = []
        for k, image in enumerate(keyframes):
            name = f"{FRAMES}/run{self.run}-seg{index:05d}-{k}.jpg"
            atomic_write_bytes(self.out / name, encode_jpeg(image))
            thumbnails.append(name)
        return self._write({"type": "segment", "index": index, "start": round(start, 3), "end": round(end, 3),
                            "frames": len(timestamps), "timestamps": [round(t, 3) for t in timestamps],
                            "cuts": [round(t, 3) for t in cuts], "caption": caption, "thumbnails": thumbnails})

    def add_summary(self, start: float, end: float, text: str, final: bool) -> dict[str, Any]:
        return self._write({"type": "summary", "start": round(start, 3), "end": round(end, 3), "text": text,
                            "final": final})

    def add_event(self, t: float, text: str) -> dict[str, Any]:
        return self._write({"type": "event", "t": round(t, 3), "text": text})

    def stop(self, reason: str, t: float, message: str, stats: dict[str, Any]) -> dict[str, Any]:
        return self._write({"type": "stop", "reason": reason, "t": round(t, 3), "message": message,
                            "stopped_at": _now(), **stats})

    def render(self) -> None:
        """Regenerate ``timeline.json`` and ``timeline.md`` from the records (atomically)."""
        document = to_document(self.records)
        atomic_write_text(self.out / "timeline.json", json.dumps(document, indent=1, ensure_ascii=False) + "\n")
        atomic_write_text(self.out / "timeline.md", to_markdown(document))


def read_records(path: Path, repair: bool = False) -> list[dict[str, Any]]:
    """The records of a ``timeline.jsonl``; a torn last line is ignored (and cut off with ``repair``)."""
    if not Path(path).exists():
        return []
    data = Path(path).read_bytes()
    records, good = [], 0
    for line in data.splitlines(keepends=True):
        try:
            if not line.endswith(b"\n"):
                raise ValueError("unterminated line")
            records.append(json.loads(line))
        except ValueError:
            if good + len(line) < len(data):  # damage before the last line is not a torn write
                raise EdgekitError(f"{path} is corrupt at byte {good}",
                                   "move it away (or pass --overwrite) to start a new timeline") from None
            if repair:
                with open(path, "r+b") as f:
                    f.truncate(good)
            break
        good += len(line)
    return records


def to_document(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The records grouped per run: segments, summaries, events, how it stopped and its final summary."""
    runs: dict[int, dict[str, Any]] = {}
    for record in records:
        fields = {k: v for k, v in record.items() if k not in ("type", "run")}
        if record["type"] == "run":
            runs[record["run"]] = {"run": record["run"], **fields, "segments": [], "summaries": [], "events": [],
                                   "stop": None, "summary": None}
            continue
        run = runs.get(record["run"])
        if run is None:
            continue
        if record["type"] == "stop":
            run["stop"] = fields
        else:
            run[_GROUPS[record["type"]]].append(fields)
            if record["type"] == "summary" and record["final"]:
                run["summary"] = record["text"]
    return {"format": FORMAT, "version": VERSION, "runs": list(runs.values())}


def to_markdown(document: dict[str, Any]) -> str:
    lines = ["# Video timeline", ""]
    for run in document["runs"]:
        s = run["settings"]
        lines += [f"## Run {run['run']}: {run['source']}", "",
                  f"Started {run['started_at']}; {s['fps']:g} fps at most, {s['size']} px, segments of "
                  f"{s['segment_s']:g} s. Captions: {run['captioner']}.", ""]
        if run["segments"]:
            lines += ["| start | end | frames | caption | key frames |", "|---|---|---|---|---|"]
            for seg in run["segments"]:
                images = " ".join(f"![]({name})" for name in seg["thumbnails"])
                lines.append(f"| {clock(seg['start'])} | {clock(seg['end'])} | {seg['frames']} | "
                             f"{_cell(seg['caption'])} | {images} |")
            lines.append("")
        for event in run["events"]:
            lines.append(f"- {clock(event['t'])}: {event['text']}")
        periodic = [x for x in run["summaries"] if not x["final"]]
        if periodic:
            lines += ["", "### Summaries so far", ""]
            lines += [f"- {clock(x['start'])}-{clock(x['end'])}: {x['text']}" for x in periodic]
        if run["summary"] is not None:
            lines += ["", "### Summary", "", run["summary"] or "(empty)"]
        stop = run["stop"]
        lines += ["", f"**Stopped ({stop['reason']}) at {clock(stop['t'])}**: {stop['message']}" if stop
                  else "*Running (or stopped without a trace: the records above are complete).*", ""]
    return "\n".join(lines)


def clock(seconds: float) -> str:
    """``01:02:03.4``."""
    tenths = round(seconds * 10)
    return f"{tenths // 36000:02d}:{tenths // 600 % 60:02d}:{tenths // 10 % 60:02d}.{tenths % 10}"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|") or "(empty)"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
