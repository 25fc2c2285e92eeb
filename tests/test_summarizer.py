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
from edgekit.video.store import Store
from edgekit.video.timeline import RECORDS, Timeline, export

SAMPLING = SamplingParams(temperature=1.0, top_k=20, seed=0)  # greedy on random weights only repeats "\n"


@pytest.fixture(scope="module")
def model(int4_bundle):
    return edgekit.load(int4_bundle, threads=1)


def captioner(model, **kw):
    return FrameStatsCaptioner(model, caption_tokens=kw.pop("caption_tokens", 12),
                               summary_tokens=kw.pop("summary_tokens", 24), sampling=SAMPLING, **kw)


def run(model, source, out, mode="new", **settings):
    timeline = Timeline(out, mode=mode, camera="cam")
    summarizer = Summarizer(captioner(model), timeline, SummarizerSettings(**settings))
    try:
        return summarizer.run(source), summarizer
    finally:
        timeline.close()


def document(out):
    """The store's runs, and the export written from it."""
    store = Store(out)
    try:
        export(store)
        return store.document()
    finally:
        store.close()


def test_segments_timeline_and_summary(model, tmp_path):
    path = write_video(tmp_path / "v.avi", [(RED, 2.5), (BLUE, 2.5), (GREEN, 1.0)])
    result, _ = run(model, open_source(str(path)), tmp_path / "out", segment_s=2.0)
    assert result.reason == "end" and result.segments == 3 and result.t == pytest.approx(5.9)

    (run1,) = document(tmp_path / "out")["runs"]
    segments = run1["segments"]
    assert [(s["index"], s["start"], s["end"]) for s in segments] == [(0, 0, 2), (1, 2, 4), (2, 4, 5.9)]
    assert [s["final"] for s in run1["summaries"]] == [True]
    for s in segments:
        assert s["frames"] == 4 and all(s["start"] <= t < max(s["end"], s["start"] + 2) for t in s["timestamps"])
        assert s["caption"].strip()  # the model wrote something
        for name in s["thumbnails"]:
            assert cv2.imread(str(tmp_path / "out" / name)) is not None
    assert [s["cuts"] for s in segments] == [[], [2.5], [5.0]]
    assert len(segments[1]["thumbnails"]) == 2  # the segment's first frame and its cut

    assert json.loads((tmp_path / "out" / "timeline.json").read_text())["runs"] == [run1]
    assert run1["source"] == str(path) and run1["stop"]["reason"] == "end" and run1["camera"] == "cam"
    assert run1["summary"] == result.summary and result.summary
    assert run1["stop"]["frames_seen"] == 60 and run1["settings"]["segment_s"] == 2.0
    markdown = (tmp_path / "out" / "timeline.md").read_text()
    assert "| 00:00:02.0 | 00:00:04.0 | 4 |" in markdown and "![](frames/cam-run1-seg00001-1.jpg)" in markdown
    assert "### Summary" in markdown and "not vision" in markdown


def test_a_segment_where_nothing_changes_costs_nothing(model, tmp_path):
    path = write_video(tmp_path / "v.avi", [(RED, 4.0), (BLUE, 2.0)], moving=False)
    result, _ = run(model, open_source(str(path)), tmp_path / "out", segment_s=2.0)
    segments = document(tmp_path / "out")["runs"][0]["segments"]
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
    timeline = Timeline(tmp_path / "out", camera="cam")
    summarizer = Summarizer(cap, timeline, SummarizerSettings(segment_s=1.0, captions_per_summary=3, max_summaries=2),
                            on_caption=lambda record: lengths.append(cap.state.length))
    path = write_video(tmp_path / "v.avi", [(RED, 5.0), (BLUE, 5.0)])
    result = summarizer.run(open_source(str(path)))
    assert result.segments == 10 and cap.rolls >= 2
    assert max(lengths) <= 320 and min(lengths[3:]) < max(lengths)  # the context was rolled, not grown
    summaries = document(tmp_path / "out")["runs"][0]["summaries"]
    assert [s["final"] for s in summaries] == [False, False, False, True]
    assert [(s["start"], s["end"]) for s in summaries[:3]] == [(0, 3), (3, 6), (6, 9)]
    assert len(summarizer.summaries) <= 2  # three periodic summaries were merged
    assert summaries[-1]["start"] == 0 and summaries[-1]["end"] == pytest.approx(9.9)


def test_summary_every_follows_input_time(model, tmp_path):
    path = write_video(tmp_path / "v.avi", [(RED, 5.0), (BLUE, 5.0)])
    result, _ = run(model, open_source(str(path)), tmp_path / "out", segment_s=2.0, summary_every_s=4.0)
    summaries = document(tmp_path / "out")["runs"][0]["summaries"]
    assert [(s["start"], s["end"], s["final"]) for s in summaries] == [
        (0, 4, False), (4, 8, False), (0, pytest.approx(9.9), True)]


def test_truncated_video_is_summarized_up_to_where_it_stops(model, tmp_path):
    path = write_video(tmp_path / "v.avi", [(RED, 3.0), (BLUE, 3.0)])
    data = path.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) * 2 // 3])
    result, _ = run(model, open_source(str(cut)), tmp_path / "out", segment_s=2.0)
    assert result.reason == "truncated" and "truncated or corrupt" in result.message and result.summary
    (run1,) = document(tmp_path / "out")["runs"]
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
    (run1,) = document(tmp_path / "out")["runs"]
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
    (run1,) = document(tmp_path / "out")["runs"]
    assert run1["stop"]["reconnects"] == 1 and "reconnected after 1 tries" in run1["events"][0]["text"]
    assert run1["events"][0]["t"] == pytest.approx(1.4)  # lost after frame 15, back at once
    assert result.reason == "disconnected" and result.t == pytest.approx(3.4)  # 35 frames over both captures


def test_runs_append_to_the_store(model, tmp_path):
    path = write_video(tmp_path / "v.avi", [(RED, 1.0), (BLUE, 1.0)])
    out = tmp_path / "out"
    run(model, open_source(str(path)), out, segment_s=1.0)
    with pytest.raises(EdgekitError, match="already holds a timeline.*--append"):
        Timeline(out)
    run(model, open_source(str(path)), out, mode="append", segment_s=1.0)
    runs = document(out)["runs"]
    assert [r["run"] for r in runs] == [1, 2] and all(len(r["segments"]) == 2 for r in runs)
    run(model, open_source(str(path)), out, mode="overwrite", segment_s=1.0)
    assert [r["run"] for r in document(out)["runs"]] == [1]
    assert len(list((out / "frames").iterdir())) == 2  # the old runs' thumbnails went with them


OLD_JSONL = [
    {"type": "run", "run": 1, "source": "v.avi", "started_at": "2026-11-30T10:00:00+00:00", "captioner": "x",
     "settings": {"fps": 2.0, "size": 224, "segment_s": 1.0}},
    {"type": "segment", "run": 1, "index": 0, "start": 0.0, "end": 1.0, "frames": 2, "timestamps": [0.0, 0.5],
     "cuts": [], "caption": "a red car parks", "thumbnails": []},
    {"type": "event", "run": 1, "t": 1.5, "text": "camera 0 reconnected"},
    {"type": "segment", "run": 1, "index": 1, "start": 1.0, "end": 2.0, "frames": 2, "timestamps": [1.0, 1.5],
     "cuts": [1.0], "caption": "a blue van\nleaves", "thumbnails": []},
    {"type": "summary", "run": 1, "start": 0.0, "end": 2.0, "text": "cars", "final": True},
    {"type": "stop", "run": 1, "reason": "end", "t": 2.0, "message": "the source ended", "segments": 2},
]


def test_an_old_jsonl_timeline_is_imported_once(model, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    lines = "".join(json.dumps(r) + "\n" for r in OLD_JSONL)
    (out / RECORDS).write_text(lines + '{"type": "segment", "run": 1, "ind')  # torn by a power cut
    path = write_video(tmp_path / "v.avi", [(RED, 1.0)])
    run(model, open_source(str(path)), out, mode="append", segment_s=1.0)
    assert not (out / RECORDS).exists() and (out / (RECORDS + ".imported")).read_text().startswith(lines)
    old, new = document(out)["runs"]
    assert (old["run"], new["run"]) == (1, 2) and old["camera"] == new["camera"] == "cam"
    assert [(s["start"], s["caption"]) for s in old["segments"]] == [(0.0, "a red car parks"), (1.0, "a blue van leaves")]
    assert old["segments"][1]["wall"] == "2026-11-30T10:00:01.000+00:00"
    assert old["events"][0]["text"] == "camera 0 reconnected" and old["summary"] == "cars"
    assert old["stop"]["reason"] == "end"
    (out / RECORDS).write_text(lines)  # the same file again, e.g. restored from a backup: not imported twice
    run(model, open_source(str(path)), out, mode="append", segment_s=1.0)
    assert [len(r["segments"]) for r in document(out)["runs"]] == [2, 1, 1]
    (out / RECORDS).write_text("garbage\n" + lines)
    (out / "timeline.db").unlink()
    with pytest.raises(EdgekitError, match="corrupt at byte 0"):
        run(model, open_source(str(path)), out, mode="append", segment_s=1.0)


def test_video_pipeline_imports_without_torch():
    from test_runtime_without_torch import _run

    proc = _run("""
        import edgekit.video.summarizer, edgekit.video.captioner, edgekit.cli
        assert 'torch' not in sys.modules and 'transformers' not in sys.modules
        print('OK')
    """)
    assert proc.returncode == 0 and proc.stdout.startswith("OK"), proc.stderr[-2000:]


@pytest.mark.parametrize("content", [b"", b"not a video\n", b"RIFF" + b"\x00" * 500])
def test_an_unreadable_file_leaves_nothing_and_the_retry_works(model, tmp_path, content):
    """Issue 18.6: a file that cannot be opened writes no timeline (as a missing one), so the rerun on the
    right file needs no --append."""
    bad = tmp_path / "bad.avi"
    bad.write_bytes(content)
    with pytest.raises(EdgekitError, match="cannot open the video|no frame could be read"):
        run(model, open_source(str(bad)), tmp_path / "out")
    assert not (tmp_path / "out").exists()
    result, _ = run(model, open_source(str(write_video(tmp_path / "v.avi", [(RED, 1.0)]))), tmp_path / "out")
    assert result.segments == 1 and len(document(tmp_path / "out")["runs"]) == 1


def test_an_overwrite_that_fails_keeps_the_old_timeline(model, tmp_path):
    good = write_video(tmp_path / "v.avi", [(RED, 1.0)])
    run(model, open_source(str(good)), tmp_path / "out")
    (tmp_path / "bad.avi").write_bytes(b"")
    with pytest.raises(EdgekitError):
        run(model, open_source(str(tmp_path / "bad.avi")), tmp_path / "out", mode="overwrite")
    assert len(document(tmp_path / "out")["runs"][0]["segments"]) == 1


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
        ids = vision.turn_ids(segment, times)
        before = state.length
        logits[colour] = vision.prefill_turn(state, ids, segment, times)
        assert state.length - before == len(ids)
        assert state.tokens[before:] == ids  # vision rows keep their pad id
    again = vision.prefill_turn(vision.state.copy(), ids, frames[BLUE], times)
    assert np.array_equal(again, logits[BLUE])
    assert np.abs(logits[RED] - logits[BLUE]).max() > 1e-3
    assert vision.caption(frames[RED], times) is not None


def test_vision_turn_budget_counts_one_token_per_vision_row(int4_bundle):
    """A segment that fits the context is captioned: the budget counts the rows fed, not the pads'
    characters (each ``<|video_pad|>`` written in message content encodes as ~4 text tokens)."""
    from edgekit.video.captioner import VisionCaptioner

    frames, times = [np.full((64, 96, 3), RED, np.uint8)] * 8, [i / 2 for i in range(8)]
    probe = VisionCaptioner(edgekit.load(int4_bundle, threads=1), caption_tokens=4, sampling=SAMPLING)
    ids = probe.turn_ids(frames, times)
    pad = probe.model.bundle.manifest.vision.token_ids.video
    assert ids.count(pad) == sum(p.embeds.tokens_per_pair for p in probe._pairs) > 0
    as_text = probe.model.tokenizer.encode_chat([{"role": "user", "content": "<|video_pad|>" * ids.count(pad)}])
    room = probe.state.length + len(ids) + probe.caption_tokens + len(probe._close)
    assert room < probe.state.length + len(as_text)  # the old count would not have fitted
    tight = VisionCaptioner(edgekit.load(int4_bundle, threads=1, max_context=room), caption_tokens=4,
                            sampling=SAMPLING)
    tight.caption(frames, times)
    assert tight.rolls == 0 and tight.state.length <= room


def test_a_summary_releases_the_tower_and_the_next_segment_loads_it(int4_bundle):
    from edgekit.video.captioner import VisionCaptioner

    cap = VisionCaptioner(edgekit.load(int4_bundle, threads=1), caption_tokens=2, summary_tokens=2, sampling=SAMPLING)
    frames, times = [np.full((64, 96, 3), RED, np.uint8)] * 2, [0.0, 0.5]
    cap.caption(frames, times)
    assert cap.model._vision is not None
    before = list(cap.state.tokens)
    cap.summarize([(0.0, 1.0, "a red frame")])
    assert cap.model._vision is None and cap.state.tokens == before  # the conversation is untouched
    cap.caption(frames, times)
    assert cap.model._vision is not None and cap.state.tokens[:len(before)] == before


def test_a_tower_released_after_each_encode_changes_no_caption(int4_bundle):
    """``release_tower`` (``--low-memory``) frees the tower once a segment is encoded and the next segment
    builds it again: the conversation (every token and caption) is the same as with the tower kept."""
    from edgekit.video.captioner import VisionCaptioner

    kept = VisionCaptioner(edgekit.load(int4_bundle, threads=1), caption_tokens=3, sampling=SAMPLING)
    low = VisionCaptioner(edgekit.load(int4_bundle, threads=1), release_tower=True, caption_tokens=3,
                          sampling=SAMPLING)
    times = [0.0, 0.5, 1.0]
    for colour in (RED, BLUE):
        frames = [np.full((64, 96, 3), colour, np.uint8)] * 3
        assert low.caption(frames, times) == kept.caption(frames, times)
        assert low.model._vision is None and kept.model._vision is not None
        assert low.state.tokens == kept.state.tokens
