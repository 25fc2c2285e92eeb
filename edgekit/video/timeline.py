"""The summarizer's output folder: a timeline store (``timeline.db``, see ``store``) and key-frame
thumbnails under ``frames/``; ``timeline.json`` and ``timeline.md`` are exports made on demand
(``export``). An older folder's ``timeline.jsonl`` is imported into the store once, then renamed
``timeline.jsonl.imported``.

``Timeline`` writes one run. Nothing is created until the run's first record: a source that cannot be
opened leaves the folder as it was, so the retry on the right file is not refused.
"""

from __future__ import annotations

import json
import shutil
import socket
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.errors import EdgekitError
from edgekit.files import atomic_write_bytes, atomic_write_text, check_writable_folder, remove_stale_temps_in
from edgekit.video.store import DB, FRAMES, Retention, Store, iso, one_line

RECORDS = "timeline.jsonl"  # the format before the store: imported once


def default_camera() -> str:
    """The camera id when none is given: this machine's host name."""
    return camera_id(socket.gethostname())


def camera_id(name: str) -> str:
    """``name`` as an id usable in MQTT topics and Home Assistant object ids (a-z, 0-9, _ and -)."""
    cleaned = "".join(c if c.isalnum() or c in "_-" else "_" for c in name.lower()).strip("_")
    if not cleaned:
        raise EdgekitError(f"{name!r} is not usable as a camera id", "pass --camera with letters or digits")
    return cleaned


def holds_timeline(out: Path) -> bool:
    return (Path(out) / RECORDS).exists() or (Path(out) / DB).exists()


def open_store(out: Path, camera: str, retention: Retention | None = None,
               outbox_prefix: str | None = None) -> Store:
    """The store in ``out`` (created if absent), with an older ``timeline.jsonl`` imported into it once."""
    store = Store(out, create=True, retention=retention, outbox_prefix=outbox_prefix)
    jsonl = Path(out) / RECORDS
    if jsonl.exists():
        if store.meta("imported_jsonl") is None:
            records = read_records(jsonl)
            with store.transaction() as db:
                for record in from_jsonl(records, camera):
                    store._insert(db, record)
                db.execute("INSERT INTO meta VALUES ('imported_jsonl', ?)", (str(len(records)),))
        jsonl.rename(jsonl.with_name(RECORDS + ".imported"))
    return store


def from_jsonl(records: Sequence[dict[str, Any]], camera: str) -> list[dict[str, Any]]:
    """The records of an old ``timeline.jsonl`` as store records: a camera id, a record id, and wall-clock
    times counted from their run's start."""
    started: dict[int, float] = {}
    converted = []
    for record in records:
        r = {**record, "camera": camera}
        if r["type"] == "run":
            started[r["run"]] = datetime.fromisoformat(r["started_at"]).timestamp()
        elif r["run"] not in started:
            continue  # a record whose run record is missing: nothing to hang it on
        else:
            r["wall"] = iso(started[r["run"]] + r.get("start", r.get("t", 0.0)))
            r["id"] = record_id(r)
        converted.append(r)
    return converted


def record_id(r: dict[str, Any]) -> str:
    """Unique per camera and stable across re-sends: what MQTT receivers drop duplicates by."""
    base = f"{r['camera']}/{r['run']}"
    if r["type"] == "segment":
        return f"{base}/segment/{r['index']}"
    if r["type"] == "summary":
        return f"{base}/summary/{r['start']}-{r['end']}{'/final' if r['final'] else ''}"
    if r["type"] == "event":
        return f"{base}/event/{r['t']}/{r['text'][:40]}"
    return f"{base}/{r['type']}"


class Timeline:
    """Writes the records of one run of camera ``camera`` into ``out`` (``mode``: new, append or overwrite).
    The store is opened (and, for overwrite, the old timeline removed) at the first record."""

    def __init__(self, out: Path, mode: str = "new", camera: str | None = None,
                 retention: Retention | None = None, outbox_prefix: str | None = None) -> None:
        self.out = Path(out)
        if mode not in ("new", "append", "overwrite"):
            raise EdgekitError(f"unknown timeline mode {mode!r}", "use new, append or overwrite")
        if mode == "new" and holds_timeline(self.out):
            raise EdgekitError(f"{self.out} already holds a timeline",
                               "pass --append to continue it, --overwrite to start over, or another -o folder")
        if self.out.exists() and not self.out.is_dir():
            raise EdgekitError(f"{self.out} is a file", "pass a folder for -o")
        check_writable_folder(self.out, "timeline")
        self.mode = mode
        self.camera = camera_id(camera) if camera else default_camera()
        self.retention = retention
        self.outbox_prefix = outbox_prefix
        self.store: Store | None = None
        self.run = 0
        self.started = 0.0

    def open(self) -> Store:
        if self.store is None:
            if self.mode == "overwrite":
                for name in (RECORDS, DB, DB + "-wal", DB + "-shm", "timeline.json", "timeline.md"):
                    (self.out / name).unlink(missing_ok=True)
                shutil.rmtree(self.out / FRAMES, ignore_errors=True)
            self.store = open_store(self.out, self.camera, self.retention, self.outbox_prefix)
            self.run = self.store.next_run(self.camera)
            remove_stale_temps_in(self.out / FRAMES)  # once: per thumbnail it would cost more each week
        return self.store

    def close(self) -> None:
        if self.store is not None:
            self.store.close()

    def _write(self, record: dict[str, Any]) -> dict[str, Any]:
        store = self.open()
        record = {"type": record.pop("type"), "camera": self.camera, "run": self.run, **record}
        record["id"] = record_id(record)
        store.add(record)
        return record

    def _wall(self, t: float) -> str:
        return iso(self.started + t)

    def start_run(self, source: str, settings: dict[str, Any], captioner: str) -> dict[str, Any]:
        now = datetime.now(timezone.utc)
        self.started = now.timestamp()
        return self._write({"type": "run", "source": source, "started_at": now.isoformat(timespec="milliseconds"),
                            "captioner": captioner, "settings": settings})

    def add_segment(self, index: int, start: float, end: float, timestamps: Sequence[float],
                    cuts: Sequence[float], caption: str, keyframes: Sequence[np.ndarray]) -> dict[str, Any]:
        """Save the key frames as JPEGs, then write the segment. Captions, summaries and events are stored as
        one line (a sampled newline would split a --live line or a Markdown row)."""
        from edgekit.video.sources import encode_jpeg  # here: what only reads a store (export) needs no OpenCV

        store = self.open()
        thumbnails = []
        for k, image in enumerate(keyframes):
            name = f"{FRAMES}/{self.camera}-run{self.run}-seg{index:05d}-{k}.jpg"
            atomic_write_bytes(store.out / name, encode_jpeg(image), clean_stale=False)
            thumbnails.append(name)
        return self._write({"type": "segment", "index": index, "start": round(start, 3), "end": round(end, 3),
                            "wall": self._wall(start), "frames": len(timestamps),
                            "timestamps": [round(t, 3) for t in timestamps], "cuts": [round(t, 3) for t in cuts],
                            "caption": one_line(caption), "thumbnails": thumbnails})

    def add_summary(self, start: float, end: float, text: str, final: bool) -> dict[str, Any]:
        return self._write({"type": "summary", "start": round(start, 3), "end": round(end, 3),
                            "wall": self._wall(start), "text": one_line(text), "final": final})

    def add_event(self, t: float, text: str) -> dict[str, Any]:
        return self._write({"type": "event", "t": round(t, 3), "wall": self._wall(t), "text": one_line(text)})

    def stop(self, reason: str, t: float, message: str, stats: dict[str, Any]) -> dict[str, Any]:
        return self._write({"type": "stop", "reason": reason, "t": round(t, 3), "message": message,
                            "stopped_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), **stats})


def export(store: Store, camera: str | None = None) -> list[Path]:
    """Write ``timeline.json`` and ``timeline.md`` (atomically) beside the store: one camera or all."""
    document = store.document(camera)
    paths = [store.out / "timeline.json", store.out / "timeline.md"]
    atomic_write_text(paths[0], json.dumps(document, indent=1, ensure_ascii=False) + "\n")
    atomic_write_text(paths[1], to_markdown(document))
    return paths


def read_records(path: Path) -> list[dict[str, Any]]:
    """The records of an old ``timeline.jsonl``; a line torn by a power cut (the last one) is ignored."""
    data = Path(path).read_bytes()
    records, good = [], 0
    for line in data.splitlines(keepends=True):
        try:
            if not line.endswith(b"\n"):
                raise ValueError("unterminated line")
            record = json.loads(line)
            if not isinstance(record, dict) or not isinstance(record.get("type"), str):
                raise ValueError("not a record")
            records.append(record)
        except (ValueError, RecursionError):  # RecursionError: a line of thousands of nested brackets
            if good + len(line) < len(data):  # damage before the last line is not a torn write
                raise EdgekitError(f"{path} is corrupt at byte {good}",
                                   "move it away (or pass --overwrite) to start a new timeline") from None
            break
        good += len(line)
    return records


def to_markdown(document: dict[str, Any]) -> str:
    lines = ["# Video timeline", ""]
    for run in document["runs"]:
        s = run["settings"]
        lines += [f"## {run['camera']}, run {run['run']}: {run['source']}", "",
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
            lines.append(f"- {clock(event['t'])}: {_line(event['text'])}")
        periodic = [x for x in run["summaries"] if not x["final"]]
        if periodic:
            lines += ["", "### Summaries so far", ""]
            lines += [f"- {clock(x['start'])}-{clock(x['end'])}: {_line(x['text'])}" for x in periodic]
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
    return one_line(text).replace("|", "\\|") or "(empty)"


def _line(text: str) -> str:
    return one_line(text) or "(empty)"
