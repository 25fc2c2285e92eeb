"""The summarizer loop with a real model (the tiny random bundle) and the text-only frame-statistics
captioner: segments, timeline files, decoder state kept between segments, rolling context, summaries,
and recovery from a truncated file or a lost camera."""

from __future__ import annotations

import itertools
import json

import cv2
import numpy as np
import pytest
from synthetic_video import BLUE, GREEN, RED, DroppingCapture, write_video

import edgekit
from edgekit.errors import EdgekitError
from edgekit.sampling import SamplingParams
from edgekit.tokenizer import render_chat
from edgekit.video.captioner import FrameStatsCaptioner, frame_pairs
from edgekit.video.sources import Backoff, CaptureSource, SourceLost, open_source
from edgekit.video.summarizer import Summarizer, SummarizerSettings
from edgekit.video.timeline import RECORDS, Timeline, read_records

SAMPLING = SamplingParams(temperature=1.0, top_k=20, seed=0)  # greedy on random weights only repeats "\n"


@pytest.fixture(scope="module")
def model(int4_bundle):
    return edgekit.load(int4_bundle, threads=1)


def captioner(model, **kw):
    return FrameStatsCaptioner(model, caption_tokens=kw.pop("caption_tokens", 12),
                               summary_tokens=kw.pop("summary_tokens", 24), sampling=SAMPLING, **kw)


def run(model, source, out, mode="new", **settings):
    timeline = Timeline(out, mode=mode)
    summarizer = Summarizer(captioner(model), timeline, SummarizerSettings(**settings))
    return summarizer.run(source), summarizer


def test_segments_timeline_and_summary(model, tmp_path):
    path = write_video(tmp_path / "v.avi", [(RED, 2.5), (BLUE, 2.5), (GREEN, 1.0)])
    result, _ = run(model, open_source(str(path)), tmp_path / "out", segment_s=2.0)
    assert result.reason == "end" and result.segments == 3 and result.t == pytest.approx(5.9)

    records = read_records(tmp_path / "out" / RECORDS)
    assert [r["type"] for r in records] == ["run", "segment", "segment", "segment", "summary", "stop"]
    segments = [r for r in records if r["type"] == "segment"]
    assert [(s["index"], s["start"], s["end"]) for s in segments] == [(0, 0, 2), (1, 2, 4), (2, 4, 5.9)]
    for s in segments:
        assert s["frames"] == 4 and all(s["start"] <= t < max(s["end"], s["start"] + 2) for t in s["timestamps"])
        assert s["caption"].strip()  # the model wrote something
        for name in s["thumbnails"]:
            assert cv2.imread(str(tmp_path / "out" / name)) is not None
    assert [s["cuts"] for s in segments] == [[], [2.5], [5.0]]
    assert len(segments[1]["thumbnails"]) == 2  # the segment's first frame and its cut

    document = json.loads((tmp_path / "out" / "timeline.json").read_text())
    (run1,) = document["runs"]
    assert run1["source"] == str(path) and run1["stop"]["reason"] == "end"
    assert run1["summary"] == result.summary and result.summary
    assert run1["stop"]["frames_seen"] == 60 and run1["settings"]["segment_s"] == 2.0
    markdown = (tmp_path / "out" / "timeline.md").read_text()
    assert "| 00:00:02.0 | 00:00:04.0 | 4 |" in markdown and "![](frames/run1-seg00001-1.jpg)" in markdown
    assert "### Summary" in markdown and "not vision" in markdown


def test_a_segment_where_nothing_changes_costs_nothing(model, tmp_path):
    path = write_video(tmp_path / "v.avi", [(RED, 4.0), (BLUE, 2.0)], moving=False)
    result, _ = run(model, open_source(str(path)), tmp_path / "out", segment_s=2.0)
    segments = [r for r in read_records(tmp_path / "out" / RECORDS) if r["type"] == "segment"]
    assert [(s["index"], s["frames"]) for s in segments] == [(0, 1), (2, 1)]
    assert result.segments == 2


def test_decoder_state_is_kept_between_segments(fp32_bundle, tmp_path):
    """The second caption feeds only its own turn onto the first's state, and equals a cold recompute."""
    model = edgekit.load(fp32_bundle, threads=1)
    cap = captioner(model)
    frames = [f.image for f in open_source(str(write_video(tmp_path / "v.avi", [(RED, 1.0), (BLUE, 1.0)]))).frames()]
    times = [i / 10 for i in range(len(frames))]
    cap.caption(frames[0:10:5], times[0:10:5])
    before = list(cap.state.tokens)
    turn = model.tokenizer.encode(render_chat([{"role": "user",
                                                "content": cap.segment_turn(frames[10:20:5], times[10:20:5])}]))
    cap.caption(frames[10:20:5], times[10:20:5])
    after = cap.state.tokens
    assert after[:len(before)] == before and after[len(before):len(before) + len(turn)] == turn
    generated = after[len(before) + len(turn):-len(cap._close)]
    assert cap.state.length == len(before) + len(turn) + len(generated) + len(cap._close)
    cold = list(model.generate(before + turn, sampling=SAMPLING, max_new_tokens=cap.caption_tokens))
    assert generated == cold


def test_frame_pairs_follow_qwen_timestamps():
    pairs = frame_pairs(["a", "b", "c"], [0.0, 0.5, 1.0])
    assert [(t, a, b) for t, a, b in pairs] == [(0.25, "a", "b"), (1.0, "c", "c")]


def test_context_rolls_and_summaries_stay_bounded(int4_bundle, tmp_path):
    model = edgekit.load(int4_bundle, threads=1, max_context=320)
    cap = captioner(model)
    lengths = []
    timeline = Timeline(tmp_path / "out")
    summarizer = Summarizer(cap, timeline, SummarizerSettings(segment_s=1.0, captions_per_summary=3, max_summaries=2),
                            on_caption=lambda record: lengths.append(cap.state.length))
    path = write_video(tmp_path / "v.avi", [(RED, 5.0), (BLUE, 5.0)])
    result = summarizer.run(open_source(str(path)))
    assert result.segments == 10 and cap.rolls >= 2
    assert max(lengths) <= 320 and min(lengths[3:]) < max(lengths)  # the context was rolled, not grown
    summaries = [r for r in read_records(tmp_path / "out" / RECORDS) if r["type"] == "summary"]
    assert [s["final"] for s in summaries] == [False, False, False, True]
    assert [(s["start"], s["end"]) for s in summaries[:3]] == [(0, 3), (3, 6), (6, 9)]
    assert len(summarizer.summaries) <= 2  # three periodic summaries were merged
    assert summaries[-1]["start"] == 0 and summaries[-1]["end"] == pytest.approx(9.9)


def test_summary_every_follows_input_time(model, tmp_path):
    path = write_video(tmp_path / "v.avi", [(RED, 5.0), (BLUE, 5.0)])
    result, _ = run(model, open_source(str(path)), tmp_path / "out", segment_s=2.0, summary_every_s=4.0)
    summaries = [r for r in read_records(tmp_path / "out" / RECORDS) if r["type"] == "summary"]
    assert [(s["start"], s["end"], s["final"]) for s in summaries] == [
        (0, 4, False), (4, 8, False), (0, pytest.approx(9.9), True)]


def test_truncated_video_is_summarized_up_to_where_it_stops(model, tmp_path):
    path = write_video(tmp_path / "v.avi", [(RED, 3.0), (BLUE, 3.0)])
    data = path.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) * 2 // 3])
    result, _ = run(model, open_source(str(cut)), tmp_path / "out", segment_s=2.0)
    assert result.reason == "truncated" and "truncated or corrupt" in result.message and result.summary
    document = json.loads((tmp_path / "out" / "timeline.json").read_text())
    (run1,) = document["runs"]
    assert run1["stop"]["reason"] == "truncated" and "of 60" in run1["stop"]["message"]
    assert run1["segments"][-1]["end"] == pytest.approx(result.t) and 2.0 < result.t < 5.9


def _camera(path, captures, tries=1):
    opened = iter(captures)
    reads = itertools.count()
    return CaptureSource(0, live=True, backoff=Backoff(tries=tries, first_s=0.0), opener=lambda target: next(opened),
                         sleep=lambda s: None, clock=lambda: next(reads) / 10)


def test_lost_camera_keeps_everything_seen(model, tmp_path):
    path = write_video(tmp_path / "v.avi", [(RED, 2.0), (BLUE, 2.0)])
    dead = DroppingCapture(path, 0)
    dead.capture.release()
    result, _ = run(model, _camera(path, [DroppingCapture(path, 25), dead]), tmp_path / "out", segment_s=2.0)
    assert result.reason == "disconnected" and isinstance(result.error, SourceLost)
    (run1,) = json.loads((tmp_path / "out" / "timeline.json").read_text())["runs"]
    assert [(s["start"], s["end"]) for s in run1["segments"]] == [(0, 2), (2, 2.4)]  # the partial one too
    assert run1["summary"] and run1["stop"]["reason"] == "disconnected"
    assert "did not come back after 1 reconnect tries" in run1["stop"]["message"]


def test_camera_that_comes_back_is_an_event(model, tmp_path):
    path = write_video(tmp_path / "v.avi", [(RED, 2.0), (BLUE, 2.0)])
    dead = [DroppingCapture(path, 0) for _ in range(2)]
    for capture in dead:
        capture.capture.release()
    result, _ = run(model, _camera(path, [DroppingCapture(path, 15), DroppingCapture(path, 20), *dead], tries=2),
                    tmp_path / "out", segment_s=2.0)
    (run1,) = json.loads((tmp_path / "out" / "timeline.json").read_text())["runs"]
    assert run1["stop"]["reconnects"] == 1 and "reconnected after 1 tries" in run1["events"][0]["text"]
    assert run1["events"][0]["t"] == pytest.approx(1.4)  # lost after frame 15, back at once
    assert result.reason == "disconnected" and result.t == pytest.approx(3.4)  # 35 frames over both captures


def test_runs_append_and_a_torn_line_is_dropped(model, tmp_path):
    path = write_video(tmp_path / "v.avi", [(RED, 1.0), (BLUE, 1.0)])
    out = tmp_path / "out"
    run(model, open_source(str(path)), out, segment_s=1.0)
    with pytest.raises(EdgekitError, match="already holds a timeline.*--append"):
        Timeline(out)
    before = (out / RECORDS).read_bytes()
    with open(out / RECORDS, "ab") as f:
        f.write(b'{"type": "segment", "run": 1, "ind')  # power cut in the middle of a write
    run(model, open_source(str(path)), out, mode="append", segment_s=1.0)
    data = (out / RECORDS).read_bytes()
    assert data.startswith(before) and b'"ind\n' not in data
    document = json.loads((out / "timeline.json").read_text())
    assert [r["run"] for r in document["runs"]] == [1, 2] and all(len(r["segments"]) == 2 for r in document["runs"])
    (out / RECORDS).write_bytes(b"garbage\n" + data)
    with pytest.raises(EdgekitError, match="corrupt at byte 0"):
        Timeline(out, mode="append")
    Timeline(out, mode="overwrite")
    assert read_records(out / RECORDS) == [] and not list((out / "frames").iterdir())


def test_video_pipeline_imports_without_torch():
    from test_runtime_without_torch import _run

    proc = _run("""
        import edgekit.video.summarizer, edgekit.video.captioner, edgekit.cli
        assert 'torch' not in sys.modules and 'transformers' not in sys.modules
        print('OK')
    """)
    assert proc.returncode == 0 and proc.stdout.startswith("OK"), proc.stderr[-2000:]


def test_unreadable_file_leaves_a_stop_record(model, tmp_path):
    bad = tmp_path / "bad.avi"
    bad.write_bytes(b"RIFF" + b"\x00" * 500)
    with pytest.raises(EdgekitError, match="cannot open the video|no frame could be read"):
        run(model, open_source(str(bad)), tmp_path / "out")
    (run1,) = json.loads((tmp_path / "out" / "timeline.json").read_text())["runs"]
    assert run1["stop"]["reason"] == "error" and run1["segments"] == []


def test_vision_captioner_feeds_the_frames(model):
    """The turn's vision rows come from the tower (different frames, different logits), and the text
    the context budget is checked on has exactly as many tokens as the rows fed."""
    from edgekit.video.captioner import VisionCaptioner

    vision = VisionCaptioner(model, caption_tokens=4, sampling=SAMPLING)
    frames = {colour: [np.full((64, 96, 3), colour, np.uint8)] * 4 for colour in (RED, BLUE)}
    times = [0.0, 0.5, 1.0, 1.5]
    logits = {}
    for colour, segment in frames.items():
        state = vision.state.copy()
        ids = model.tokenizer.encode(render_chat([{"role": "user", "content": vision.segment_turn(segment, times)}]))
        before = state.length
        logits[colour] = vision.prefill_turn(state, ids, segment, times)
        assert state.length - before == len(ids)
        assert state.tokens[before:] == ids  # vision rows keep their pad id
    again = vision.prefill_turn(vision.state.copy(), ids, frames[BLUE], times)
    assert np.array_equal(again, logits[BLUE])
    assert np.abs(logits[RED] - logits[BLUE]).max() > 1e-3
    assert vision.caption(frames[RED], times) is not None
