"""The timeline store on a real SQLite file: records, one-line captions, full-text search, retention by age
and by size (thumbnails included), the outbox written in the same transaction, and the exports."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from edgekit.errors import EdgekitError
from edgekit.video.store import Retention, Store, fts_words, one_line
from edgekit.video.timeline import Timeline, export

FRAME = np.full((48, 64, 3), (0, 0, 200), np.uint8)
SETTINGS = {"fps": 2.0, "size": 224, "segment_s": 10.0}


def write(out, captions, camera="porch", retention=None, outbox_prefix=None, started=None, frame=FRAME):
    """One run of ``captions`` (one segment each, 10 s apart), as the summarizer writes it."""
    timeline = Timeline(out, mode="append", camera=camera, retention=retention, outbox_prefix=outbox_prefix)
    timeline.start_run("test", SETTINGS, "test")
    if started is not None:
        timeline.started = started
    records = [timeline.add_segment(i, 10.0 * i, 10.0 * i + 10, [10.0 * i], [], caption, [frame])
               for i, caption in enumerate(captions)]
    timeline.add_summary(0, 10.0 * len(captions), "a summary\nover two lines", final=True)
    timeline.stop("end", 10.0 * len(captions), "the source ended", {"segments": len(captions)})
    timeline.close()
    return records


def test_captions_are_one_line_in_records_live_output_and_markdown(tmp_path):
    """Issue 18.9, at the source of truth: a caption the model sampled with newlines is stored, sent and
    exported as one line."""
    (record,) = write(tmp_path / "out", ["a red car\n\nparks |  here\n"])
    assert record["caption"] == "a red car parks | here"
    store = Store(tmp_path / "out")
    (run,) = store.document()["runs"]
    assert run["segments"][0]["caption"] == "a red car parks | here" and run["summary"] == "a summary over two lines"
    _, md = export(store)
    rows = [line for line in md.read_text().splitlines() if line.startswith("| 00:")]
    assert rows == ["| 00:00:00.0 | 00:00:10.0 | 1 | a red car parks \\| here | "
                    "![](frames/porch-run1-seg00000-0.jpg) |"]
    assert one_line(" a\tb\r\nc ") == "a b c"


def test_records_carry_camera_run_and_a_stable_id(tmp_path):
    first = write(tmp_path / "out", ["one", "two"], started=time.time() - 60)
    second = write(tmp_path / "out", ["three"])
    assert [r["id"] for r in first + second] == ["porch/1/segment/0", "porch/1/segment/1", "porch/2/segment/0"]
    store = Store(tmp_path / "out")
    assert store.add(first[0]) is False  # a duplicate (an MQTT re-send) is dropped by its id
    assert [s["caption"] for s in store.segments()] == ["one", "two", "three"]
    assert [r["stop"]["reason"] for r in store.document()["runs"]] == ["end", "end"]


def test_search_is_full_text_and_filtered(tmp_path):
    now = time.time()
    write(tmp_path / "out", ["a red car arrives", "nothing happens", "the red car leaves"], started=now - 3600)
    write(tmp_path / "out", ["a red bicycle"], camera="garden", started=now)
    store = Store(tmp_path / "out")
    assert [s["caption"] for s in store.search("RED car?")][:2] in (
        ["a red car arrives", "the red car leaves"], ["the red car leaves", "a red car arrives"])
    assert {s["caption"] for s in store.search("red")} == {"a red car arrives", "the red car leaves", "a red bicycle"}
    assert [s["caption"] for s in store.search("red", camera="garden")] == ["a red bicycle"]
    assert [s["caption"] for s in store.search("red", since=now - 1800)] == ["a red bicycle"]
    assert [s["caption"] for s in store.search("cars arriving")][0] == "a red car arrives"  # porter stemming
    assert store.search('" OR * NEAR(') == [] and fts_words('a "b" c*') == ['"a"', '"b"', '"c"']
    assert [s["text"] for s in store.search_summaries("summary", camera="garden")] == ["a summary over two lines"]
    assert store.cameras() == ["garden", "porch"]


def test_retention_deletes_old_segments_and_their_thumbnails(tmp_path):
    out = tmp_path / "out"
    now = time.time()
    old = write(out, ["old one", "old two"], started=now - 8 * 86400)
    new = write(out, ["new"], retention=Retention(keep_s=7 * 86400), started=now)  # retention runs per segment
    store = Store(out)
    assert [s["caption"] for s in store.segments()] == ["new"] and store.search("old") == []
    assert not any((out / name).exists() for r in old for name in r["thumbnails"])
    assert all((out / name).is_file() for r in new for name in r["thumbnails"])
    assert [s["text"] for s in store.summaries()] == ["a summary over two lines"]  # the old run's went too


def test_a_size_cap_deletes_the_oldest_first(tmp_path):
    out = tmp_path / "out"
    noise = np.random.default_rng(0).integers(0, 255, (240, 320, 3), np.uint8)  # thumbnails of ~60 kB
    write(out, [f"segment {i}" for i in range(40)], frame=noise)
    thumbnail = (out / "frames" / "porch-run1-seg00000-0.jpg").stat().st_size
    store = Store(out, retention=Retention(max_bytes=Store(out).size_bytes() - 10 * thumbnail))
    deleted = store.apply_retention()
    kept = store.segments()
    assert 10 <= deleted < 40 and len(kept) == 40 - deleted and store.size_bytes() <= store.retention.max_bytes
    assert [s["caption"] for s in kept] == [f"segment {i}" for i in range(deleted, 40)]
    assert len(list((out / "frames").iterdir())) == len(kept)


def test_the_outbox_holds_every_record_in_order(tmp_path):
    records = write(tmp_path / "out", ["one", "two"], outbox_prefix="home/edgekit")
    store = Store(tmp_path / "out")
    rows = store.outbox_head(100)
    assert [r["topic"] for r in rows] == ["home/edgekit/porch/run", "home/edgekit/porch/segment",
                                          "home/edgekit/porch/segment", "home/edgekit/porch/summary",
                                          "home/edgekit/porch/stop"]
    assert json.loads(rows[1]["payload"]) == records[0]
    store.outbox_done(rows[0]["id"])
    assert [r["id"] for r in store.outbox_head(100)] == [r["id"] for r in rows[1:]]


def test_retention_trims_the_outbox_a_missing_broker_left(tmp_path):
    """A broker away for longer than ``--keep``: the messages of deleted segments are not kept (or sent) either,
    so the outbox cannot grow the store past its limits."""
    out, now = tmp_path / "out", time.time()
    old = write(out, ["old one", "old two"], outbox_prefix="home/edgekit", started=now - 8 * 86400)
    new = write(out, ["new"], outbox_prefix="home/edgekit", retention=Retention(keep_s=7 * 86400), started=now)
    sent = [json.loads(r["payload"])["id"] for r in Store(out).outbox_head(100)]
    assert not {r["id"] for r in old} & set(sent) and new[0]["id"] in sent

    noise = np.random.default_rng(0).integers(0, 255, (240, 320, 3), np.uint8)  # thumbnails of ~60 kB
    write(out, [f"segment {i}" for i in range(20)], outbox_prefix="home/edgekit", started=now + 60, frame=noise)
    store = Store(out, retention=Retention(max_bytes=Store(out).size_bytes() // 2))
    deleted = store.apply_retention()
    oldest = min(s["wall"] for s in store.segments())
    left = [json.loads(r["payload"]) for r in store.outbox_head(1000)]
    assert deleted >= 10 and all(r["wall"] >= oldest for r in left if "wall" in r)
    assert [r["id"] for r in left if r["type"] == "segment"] == [s["id"] for s in store.segments()]


def test_a_store_from_before_the_outbox_had_times_opens_and_keeps_its_backlog(tmp_path):
    import sqlite3

    out = tmp_path / "out"
    write(out, ["one"], outbox_prefix="home/edgekit")
    db = sqlite3.connect(out / "timeline.db")
    db.execute("DROP INDEX outbox_wall")  # the store as it was before: neither the column nor its index
    db.execute("ALTER TABLE outbox DROP COLUMN wall")
    db.commit()
    db.close()
    store = Store(out, retention=Retention(keep_s=1.0))
    backlog = store.outbox_head(100)
    store.apply_retention(now=time.time() + 10 * 86400)
    assert len(store.outbox_head(100)) == len(backlog) == 4  # no time known: kept until the broker takes them


def test_a_folder_that_is_not_a_store_is_one_clear_error(tmp_path):
    with pytest.raises(EdgekitError, match="holds no timeline"):
        Store(tmp_path)
    (tmp_path / "timeline.db").write_bytes(b"not sqlite" * 100)
    with pytest.raises(EdgekitError, match="not a usable timeline store"):
        Store(tmp_path)


def test_a_record_cannot_point_thumbnails_outside_frames(tmp_path):
    """What the collector receives comes from the network: retention deletes thumbnails, so their names are
    checked."""
    (record,) = write(tmp_path / "out", ["one"])
    store = Store(tmp_path / "out")
    for names in (["../timeline.db"], ["/etc/passwd"], ["frames/../../x"], "frames/a.jpg", [3]):
        with pytest.raises(EdgekitError, match="not files under frames/"):
            store.add({**record, "id": "x/1/segment/9", "thumbnails": names})
    assert len(store.segments()) == 1
