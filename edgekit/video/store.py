"""The timeline store: one SQLite file (``timeline.db``, WAL) that is the record of every run.

Tables: ``runs``, ``segments``, ``summaries``, ``events`` (a camera id on every row, so one store can hold a
fleet), ``outbox`` (records not yet acknowledged by the MQTT broker, oldest first) and ``meta``. Full-text
search (FTS5) indexes captions and summaries, kept in step by triggers. Every record is one transaction
committed with ``synchronous=FULL``: a SIGKILL or a power cut loses at most the record being written, and
the file opens clean. Retention deletes the oldest segments (rows and thumbnails) by age and by size, by an
index on wall-clock time, so writing a segment costs the same in week 1 as in hour 1.

Records are plain dicts, the same ones the MQTT messages and the old ``timeline.jsonl`` carry: ``type``
(run, segment, summary, event, stop), ``camera``, ``run``, ``id`` (unique per camera: receivers drop
duplicates by it) and the type's fields.
"""

from __future__ import annotations

import errno
import json
import os
import re
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from edgekit.errors import EdgekitError
from edgekit.files import write_error

DB = "timeline.db"
FRAMES = "frames"
DATED_WITH_SEGMENTS = ("summaries", "events", "outbox")  # what retention deletes by wall time with the segments

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs(
    id INTEGER PRIMARY KEY, camera TEXT NOT NULL, run INTEGER NOT NULL, source TEXT, started_at TEXT,
    started REAL NOT NULL, captioner TEXT, settings TEXT, stop TEXT, UNIQUE(camera, run));
CREATE TABLE IF NOT EXISTS segments(
    id INTEGER PRIMARY KEY, uid TEXT NOT NULL UNIQUE, camera TEXT NOT NULL, run INTEGER NOT NULL,
    idx INTEGER NOT NULL, start REAL NOT NULL, "end" REAL NOT NULL, wall REAL NOT NULL, frames INTEGER,
    timestamps TEXT, cuts TEXT, caption TEXT NOT NULL, thumbnails TEXT NOT NULL, bytes INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS segments_wall ON segments(wall);
CREATE INDEX IF NOT EXISTS segments_run ON segments(camera, run, idx);
CREATE TABLE IF NOT EXISTS summaries(
    id INTEGER PRIMARY KEY, uid TEXT NOT NULL UNIQUE, camera TEXT NOT NULL, run INTEGER NOT NULL,
    start REAL NOT NULL, "end" REAL NOT NULL, wall REAL NOT NULL, text TEXT NOT NULL, final INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS summaries_wall ON summaries(wall);
CREATE TABLE IF NOT EXISTS events(
    id INTEGER PRIMARY KEY, uid TEXT NOT NULL UNIQUE, camera TEXT NOT NULL, run INTEGER NOT NULL,
    t REAL NOT NULL, wall REAL NOT NULL, text TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS events_wall ON events(wall);
CREATE TABLE IF NOT EXISTS outbox(
    id INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL, payload TEXT NOT NULL, wall REAL);
CREATE VIRTUAL TABLE IF NOT EXISTS captions_fts USING fts5(text, tokenize='porter unicode61');
CREATE VIRTUAL TABLE IF NOT EXISTS summaries_fts USING fts5(text, tokenize='porter unicode61');
CREATE TRIGGER IF NOT EXISTS segments_in AFTER INSERT ON segments BEGIN
    INSERT INTO captions_fts(rowid, text) VALUES (new.id, new.caption);
    INSERT INTO meta VALUES ('thumbnail_bytes', new.bytes)
        ON CONFLICT(key) DO UPDATE SET value = value + new.bytes; END;
CREATE TRIGGER IF NOT EXISTS segments_out AFTER DELETE ON segments BEGIN
    DELETE FROM captions_fts WHERE rowid = old.id;
    UPDATE meta SET value = value - old.bytes WHERE key = 'thumbnail_bytes'; END;
CREATE TRIGGER IF NOT EXISTS summaries_in AFTER INSERT ON summaries BEGIN
    INSERT INTO summaries_fts(rowid, text) VALUES (new.id, new.text); END;
CREATE TRIGGER IF NOT EXISTS summaries_out AFTER DELETE ON summaries BEGIN
    DELETE FROM summaries_fts WHERE rowid = old.id; END;
"""


def one_line(text: str) -> str:
    """``text`` with every run of whitespace (newlines included) as one space: captions are one line."""
    return " ".join(str(text).split())


def iso(wall: float) -> str:
    """Wall-clock time as ISO 8601 UTC, to the millisecond."""
    return datetime.fromtimestamp(wall, timezone.utc).isoformat(timespec="milliseconds")


def unix(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


@dataclass
class Retention:
    """Keep segments for ``keep_s`` seconds of wall time and the store + thumbnails under ``max_bytes``."""

    keep_s: float | None = None
    max_bytes: int | None = None


def _store_error(path: Path, err: sqlite3.Error) -> EdgekitError:
    """SQLite's error as one line: a full disk reads as every other failed write (``files.write_error``)."""
    if "full" in str(err):
        return write_error(path, OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))
    return EdgekitError(f"{path} is not a usable timeline store ({err})", "move it away to start a new timeline")


def _delete_before(db: sqlite3.Connection, wall: float, tables: Sequence[str]) -> None:
    for table in tables:  # every one has an index on wall
        db.execute(f"DELETE FROM {table} WHERE wall < ?", (wall,))


class Store:
    """The timeline store in folder ``out`` (created when ``create``). ``outbox_prefix``: when set, every
    record written is also queued in the outbox, in the same transaction, for the MQTT publisher."""

    def __init__(self, out: Path, create: bool = False, retention: Retention | None = None,
                 outbox_prefix: str | None = None) -> None:
        self.out = Path(out)
        self.path = self.out / DB
        if not create and not self.path.exists():
            raise EdgekitError(f"{self.out} holds no timeline ({DB})",
                               "pass the -o folder of `edgekit summarize` or `edgekit timeline collect`")
        if create:
            (self.out / FRAMES).mkdir(parents=True, exist_ok=True)
        self.retention = retention or Retention()
        self.outbox_prefix = outbox_prefix
        try:
            self.db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            self.db.row_factory = sqlite3.Row
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.executescript(_SCHEMA)
            if "wall" not in {row["name"] for row in self.db.execute("PRAGMA table_info(outbox)")}:
                self.db.execute("ALTER TABLE outbox ADD COLUMN wall REAL")  # a store from before retention trimmed it
            self.db.execute("CREATE INDEX IF NOT EXISTS outbox_wall ON outbox(wall)")  # retention runs per segment
        except sqlite3.DatabaseError as err:
            raise _store_error(self.path, err) from None

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic write; a full disk is the one-line error every other full-disk write gives."""
        try:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                yield self.db
            except BaseException:
                if self.db.in_transaction:  # SQLite may have rolled back itself (a full disk)
                    self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")
        except sqlite3.OperationalError as err:
            raise _store_error(self.path, err) from None

    # -- writing ---------------------------------------------------------------------------------------
    def next_run(self, camera: str) -> int:
        row = self.db.execute("SELECT max(run) FROM runs WHERE camera = ?", (camera,)).fetchone()
        return (row[0] or 0) + 1

    def add(self, record: dict[str, Any]) -> bool:
        """Write one record (and queue it in the outbox); False when its id was already there (a duplicate)."""
        with self.transaction() as db:
            added = self._insert(db, record)
            if added and self.outbox_prefix is not None:
                wall = unix(record["wall"]) if "wall" in record else time.time()
                db.execute("INSERT INTO outbox(topic, payload, wall) VALUES (?, ?, ?)",
                           (f"{self.outbox_prefix}/{record['camera']}/{record['type']}",
                            json.dumps(record, ensure_ascii=False), wall))
        if added and record["type"] == "segment":
            self.apply_retention()
        return added

    def _insert(self, db: sqlite3.Connection, r: dict[str, Any]) -> bool:
        kind, camera, run = r["type"], r["camera"], r["run"]
        if kind == "run":
            cur = db.execute("INSERT OR IGNORE INTO runs(camera, run, source, started_at, started, captioner, "
                             "settings) VALUES (?, ?, ?, ?, ?, ?, ?)",
                             (camera, run, r["source"], r["started_at"], unix(r["started_at"]), r["captioner"],
                              json.dumps(r["settings"])))
        elif kind == "stop":
            stop = {k: v for k, v in r.items() if k not in ("type", "camera", "run", "id")}
            cur = db.execute("UPDATE runs SET stop = ? WHERE camera = ? AND run = ? AND stop IS NULL",
                             (json.dumps(stop), camera, run))
        elif kind == "segment":
            _check_thumbnails(r["thumbnails"])
            cur = db.execute(
                'INSERT OR IGNORE INTO segments(uid, camera, run, idx, start, "end", wall, frames, timestamps, cuts, '
                "caption, thumbnails, bytes) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (r["id"], camera, run, r["index"], r["start"], r["end"], unix(r["wall"]), r["frames"],
                 json.dumps(r["timestamps"]), json.dumps(r["cuts"]), one_line(r["caption"]),
                 json.dumps(r["thumbnails"]), sum(_size(self.out / name) for name in r["thumbnails"])))
        elif kind == "summary":
            cur = db.execute('INSERT OR IGNORE INTO summaries(uid, camera, run, start, "end", wall, text, final) '
                             "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", (r["id"], camera, run, r["start"], r["end"],
                                                                unix(r["wall"]), r["text"], int(r["final"])))
        elif kind == "event":
            cur = db.execute("INSERT OR IGNORE INTO events(uid, camera, run, t, wall, text) VALUES (?, ?, ?, ?, ?, ?)",
                             (r["id"], camera, run, r["t"], unix(r["wall"]), r["text"]))
        else:
            raise EdgekitError(f"unknown timeline record type {kind!r}", "expected run, segment, summary, event or stop")
        return cur.rowcount > 0

    def apply_retention(self, now: float | None = None) -> int:
        """Delete segments older than ``keep_s`` (summaries, events and unsent outbox messages too), then the
        oldest segments while the store and its thumbnails are over ``max_bytes``; their thumbnails go after the
        commit. A broker that stays away cannot grow the store past its limits: what retention deletes is not
        sent later either. Returns the number of segments deleted."""
        keep, cap = self.retention.keep_s, self.retention.max_bytes
        doomed: list[sqlite3.Row] = []
        if keep is not None:
            cutoff = (time.time() if now is None else now) - keep
            with self.transaction() as db:
                doomed += db.execute("SELECT id, thumbnails FROM segments WHERE wall < ?", (cutoff,)).fetchall()
                _delete_before(db, cutoff, ("segments", *DATED_WITH_SEGMENTS))
        while cap is not None and (excess := self.size_bytes() - cap) > 0:
            with self.transaction() as db:
                batch, freed = [], 0  # the oldest segments whose thumbnails cover the excess (at least one)
                for row in db.execute("SELECT id, thumbnails, bytes FROM segments ORDER BY wall LIMIT 256"):
                    batch.append(row)
                    freed += row["bytes"] + 512  # a row's own share of the pages, roughly
                    if freed >= excess:
                        break
                if not batch:
                    break
                db.executemany("DELETE FROM segments WHERE id = ?", [(row["id"],) for row in batch])
                oldest = db.execute("SELECT min(wall) FROM segments").fetchone()[0]
                if oldest is not None:
                    _delete_before(db, oldest, DATED_WITH_SEGMENTS)
            doomed += batch
            self._unlink(batch)
        self._unlink(doomed)
        return len(doomed)

    def _unlink(self, rows: Sequence[sqlite3.Row]) -> None:
        for row in rows:
            for name in json.loads(row["thumbnails"]):
                (self.out / name).unlink(missing_ok=True)

    def size_bytes(self) -> int:
        """Pages in use (free pages are reused) plus the thumbnails' bytes; no scan of the tables."""
        pages = self.db.execute("PRAGMA page_count").fetchone()[0] - self.db.execute("PRAGMA freelist_count").fetchone()[0]
        page = self.db.execute("PRAGMA page_size").fetchone()[0]
        row = self.db.execute("SELECT value FROM meta WHERE key = 'thumbnail_bytes'").fetchone()
        return pages * page + int(row[0] if row else 0)

    # -- the outbox -------------------------------------------------------------------------------------
    def outbox_head(self, limit: int = 1) -> list[sqlite3.Row]:
        return self.db.execute("SELECT id, topic, payload FROM outbox ORDER BY id LIMIT ?", (limit,)).fetchall()

    def outbox_done(self, message_id: int) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM outbox WHERE id = ?", (message_id,))

    # -- meta -------------------------------------------------------------------------------------------
    def meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def has_runs(self) -> bool:
        return self.db.execute("SELECT 1 FROM runs LIMIT 1").fetchone() is not None

    # -- reading ----------------------------------------------------------------------------------------
    def cameras(self) -> list[str]:
        return [row[0] for row in self.db.execute("SELECT DISTINCT camera FROM runs ORDER BY camera")]

    def segments(self, since: float | None = None, until: float | None = None, camera: str | None = None,
                 ids: Sequence[int] | None = None) -> list[dict[str, Any]]:
        """Segments in wall-clock order, filtered by time ([since, until)), camera and row ids."""
        where, args = _filters(since, until, camera)
        if ids is not None:
            where.append(f"id IN ({','.join('?' * len(ids))})")
            args += list(ids)
        rows = self.db.execute(f"SELECT * FROM segments {_where(where)} ORDER BY wall, id", args).fetchall()
        return [_segment(row) for row in rows]

    def summaries(self, since: float | None = None, until: float | None = None,
                  camera: str | None = None) -> list[dict[str, Any]]:
        where, args = _filters(since, until, camera)
        rows = self.db.execute(f"SELECT * FROM summaries {_where(where)} ORDER BY id", args).fetchall()
        return [{"id": r["uid"], "camera": r["camera"], "run": r["run"], "start": r["start"], "end": r["end"],
                 "wall": iso(r["wall"]), "text": r["text"], "final": bool(r["final"])} for r in rows]

    def search(self, query: str, since: float | None = None, until: float | None = None,
               camera: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        """Segments whose caption matches ``query`` (words, any of them), best match first."""
        return [_segment(row) for row in self._match("captions_fts", "segments", query, since, until, camera, limit,
                                                     then="s.wall")]

    def search_summaries(self, query: str, camera: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
        rows = self._match("summaries_fts", "summaries", query, None, None, camera, limit)
        return [{"camera": r["camera"], "run": r["run"], "wall": iso(r["wall"]), "text": r["text"],
                 "final": bool(r["final"])} for r in rows]

    def _match(self, fts: str, table: str, query: str, since: float | None, until: float | None,
               camera: str | None, limit: int, then: str | None = None) -> list[sqlite3.Row]:
        """Rows of ``table`` whose full-text index ``fts`` matches any word of ``query``, best match first."""
        words = fts_words(query)
        if not words:
            return []
        where, args = _filters(since, until, camera, table="s")
        order = f"bm25({fts})" + (f", {then}" if then else "")
        return self.db.execute(
            f"SELECT s.* FROM {fts} f JOIN {table} s ON s.id = f.rowid WHERE {fts} MATCH ? "
            f"{''.join(' AND ' + w for w in where)} ORDER BY {order} LIMIT ?",
            [" OR ".join(words), *args, limit]).fetchall()

    def document(self, camera: str | None = None) -> dict[str, Any]:
        """Everything, grouped per run (the ``timeline.json`` export)."""
        where, args = ([" WHERE camera = ?"], [camera]) if camera else ([""], [])
        runs = {}
        for row in self.db.execute(f"SELECT * FROM runs{where[0]} ORDER BY started, camera, run", args):
            runs[row["camera"], row["run"]] = {
                "camera": row["camera"], "run": row["run"], "source": row["source"], "started_at": row["started_at"],
                "captioner": row["captioner"], "settings": json.loads(row["settings"]), "segments": [],
                "summaries": [], "events": [], "stop": json.loads(row["stop"]) if row["stop"] else None,
                "summary": None}
        for seg in self.segments(camera=camera):
            if (seg["camera"], seg["run"]) in runs:
                runs[seg["camera"], seg["run"]]["segments"].append(seg)
        for summary in self.summaries(camera=camera):
            run = runs.get((summary["camera"], summary["run"]))
            if run is not None:
                run["summaries"].append(summary)
                if summary["final"]:
                    run["summary"] = summary["text"]
        for row in self.db.execute(f"SELECT * FROM events{where[0]} ORDER BY id", args):
            run = runs.get((row["camera"], row["run"]))
            if run is not None:
                run["events"].append({"id": row["uid"], "t": row["t"], "wall": iso(row["wall"]), "text": row["text"]})
        return {"format": "edgekit-timeline", "version": 2, "runs": list(runs.values())}


def _check_thumbnails(names: Any) -> None:
    """Thumbnails are ``frames/NAME``: a record from the network must not point retention (which deletes
    them) or the web page anywhere else."""
    if not isinstance(names, list) or not all(
            isinstance(n, str) and n.startswith(FRAMES + "/") and re.fullmatch(r"[\w.-]+", n[len(FRAMES) + 1:])
            and ".." not in n for n in names):
        raise EdgekitError(f"a segment's thumbnails {str(names)[:80]!r} are not files under {FRAMES}/",
                           "records must come from edgekit summarize")


def fts_words(query: str) -> list[str]:
    """The words of a free-text query as quoted FTS5 terms (no FTS syntax from the user gets through)."""
    return [f'"{w}"' for w in re.findall(r"\w+", query.lower())]


def _filters(since: float | None, until: float | None, camera: str | None,
             table: str = "") -> tuple[list[str], list[Any]]:
    col = f"{table}." if table else ""
    where, args = [], []
    if since is not None:
        where.append(f"{col}wall >= ?")
        args.append(since)
    if until is not None:
        where.append(f"{col}wall < ?")
        args.append(until)
    if camera:
        where.append(f"{col}camera = ?")
        args.append(camera)
    return where, args


def _where(conditions: list[str]) -> str:
    return f"WHERE {' AND '.join(conditions)}" if conditions else ""


def _segment(row: sqlite3.Row) -> dict[str, Any]:
    return {"id": row["uid"], "row": row["id"], "camera": row["camera"], "run": row["run"], "index": row["idx"],
            "start": row["start"], "end": row["end"], "wall": iso(row["wall"]), "frames": row["frames"],
            "timestamps": json.loads(row["timestamps"]), "cuts": json.loads(row["cuts"]), "caption": row["caption"],
            "thumbnails": json.loads(row["thumbnails"])}


def _size(path: Path) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0
