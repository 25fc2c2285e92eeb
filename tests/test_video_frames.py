"""Frame sources and frame selection on synthetic videos: rate cap, duplicates, scene cuts, timestamps,
truncated files and a camera that drops out."""

from __future__ import annotations

import itertools
import time

import cv2
import numpy as np
import pytest
from synthetic_video import BLUE, GREEN, RED, DroppingCapture, cut_times, frame, write_video

from edgekit.errors import EdgekitError
from edgekit.video.frame_select import FrameSelector
from edgekit.video.sources import (
    Backoff,
    CaptureSource,
    ImageFolderSource,
    Prefetch,
    SourceLost,
    model_size,
    open_source,
    resize_for_model,
)


def select(path, **kw):
    selector = FrameSelector(**kw)
    return [s for f in open_source(str(path)).frames() if (s := selector.push(f)) is not None], selector


def test_file_timestamps_follow_the_frame_rate(tmp_path):
    path = write_video(tmp_path / "v.avi", [(RED, 2.0)], fps=10)
    frames = list(open_source(str(path)).frames())
    assert len(frames) == 20
    assert [f.t for f in frames] == pytest.approx([i / 10 for i in range(20)])
    assert frames[0].image.shape == (48, 64, 3) and frames[0].image.dtype == np.uint8


@pytest.mark.parametrize("fps", [2.0, 1.0, 0.5])
def test_rate_cap_with_motion_takes_one_frame_per_period(tmp_path, fps):
    path = write_video(tmp_path / "v.avi", [(RED, 4.0)], fps=10)
    kept, _ = select(path, fps=fps)
    times = [s.frame.t for s in kept]
    assert times == pytest.approx([i / fps for i in range(round(4 * fps))])  # the disc moves: every period


def test_near_duplicates_are_skipped(tmp_path):
    static = write_video(tmp_path / "static.avi", [(RED, 4.0)], moving=False)
    kept, selector = select(static, fps=2.0)
    assert [s.frame.t for s in kept] == [0.0]
    assert selector.skipped_duplicates > 0
    # still, then the disc starts moving at 2 s (same colour: no cut): frames come back at 2 s
    path = tmp_path / "wake.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    for i in range(40):
        writer.write(frame(RED, 32 if i < 20 else 8 + 3 * (i - 20)))
    writer.release()
    kept, _ = select(path, fps=2.0)
    times = [s.frame.t for s in kept]
    assert times[0] == 0.0 and times[1] == pytest.approx(2.0) and len(times) >= 4
    assert not any(s.cut for s in kept)


def test_scene_cuts_are_taken_within_one_sample_period(tmp_path):
    scenes = [(RED, 1.3), (BLUE, 1.4), (GREEN, 1.3)]  # cuts at 1.3 and 2.7 s, off the 0.5 s sampling grid
    for moving in (False, True):
        path = write_video(tmp_path / f"cuts-{moving}.avi", scenes, moving=moving)
        kept, _ = select(path, fps=2.0)
        cuts = [s.frame.t for s in kept if s.cut]
        assert len(cuts) == 2
        for cut, taken in zip(cut_times(scenes), cuts):
            assert cut <= taken < cut + 0.5 + 1e-6
        gaps = np.diff([s.frame.t for s in kept])
        assert (gaps >= 0.5 - 1e-6).all()  # the cap holds at cuts too


def test_a_cut_is_forced_even_when_the_frame_looks_like_the_last_one(tmp_path):
    # a blue flash between two identical red stretches: when the next sample is due (2 s period) the frame
    # equals the last taken one, but a cut happened in between, so it is taken
    path = write_video(tmp_path / "flash.avi", [(RED, 1.0), (BLUE, 0.3), (RED, 2.7)], moving=False)
    kept, _ = select(path, fps=0.5)
    assert [(s.frame.t, s.cut) for s in kept] == [(0.0, False), (pytest.approx(2.0), True)]


def test_model_size_keeps_aspect_in_multiples_of_32():
    assert model_size(480, 640, 224) == (192, 256)
    assert model_size(1080, 1920, 448) == (320, 608)
    assert model_size(48, 64, 448) == (384, 512)
    h, w = model_size(48, 64, 224)
    assert h % 32 == 0 and w % 32 == 0 and abs(h * w - 224 * 224) / (224 * 224) < 0.1
    assert resize_for_model(frame(RED, 10), 224).shape == (h, w, 3)


def test_image_folder_is_a_timelapse(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i, colour in enumerate([RED, RED, BLUE]):
        cv2.imwrite(str(folder / f"{i:03d}.png"), frame(colour, None))
    (folder / "003.jpg").write_bytes(b"not an image")
    source = open_source(str(folder), interval_s=0.5)
    assert isinstance(source, ImageFolderSource)
    frames = list(source.frames())
    assert [f.t for f in frames] == [0.0, 0.5, 1.0]
    assert "003.jpg" in source.events[0][1]


def test_truncated_video_says_where_it_stopped(tmp_path):
    path = write_video(tmp_path / "v.avi", [(RED, 2.0), (BLUE, 2.0)])
    data = path.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) // 2])
    source = open_source(str(cut))
    frames = list(source.frames())
    assert 5 < len(frames) < 40
    assert source.stopped_early and f"frame {len(frames)} of 40" in source.stopped_early
    assert "\n" not in source.stopped_early
    # complete file: no complaint
    full = open_source(str(path))
    assert len(list(full.frames())) == 40 and full.stopped_early is None


def test_unreadable_video_is_a_one_line_error(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00" * 1000)
    with pytest.raises(EdgekitError, match="cannot open the video|no frame could be read"):
        list(open_source(str(bad)).frames())
    with pytest.raises(EdgekitError, match="no video, image folder or camera"):
        open_source(str(tmp_path / "missing.avi"))


def _camera(path, opens, tries=2):
    """A live source whose successive opens are ``opens`` (captures); the clock counts frames at 10 fps."""
    opened = iter(opens)
    reads = itertools.count()
    sleeps = []
    source = CaptureSource(0, live=True, backoff=Backoff(tries=tries, first_s=1.0), opener=lambda target: next(opened),
                           sleep=sleeps.append, clock=lambda: next(reads) / 10)
    return source, sleeps


def test_camera_drop_reconnects_with_backoff(tmp_path):
    path = write_video(tmp_path / "v.avi", [(RED, 2.0)])
    closed = DroppingCapture(path, 0)
    closed.capture.release()  # an open that fails
    source, sleeps = _camera(path, [DroppingCapture(path, 5), closed, DroppingCapture(path, 20)])
    frames = list(itertools.islice(source.frames(), 25))
    assert len(frames) == 25 and source.reconnects == 1
    assert sleeps == [1.0, 2.0]  # one failed try, then back
    assert "reconnected after 2 tries" in source.events[0][1]
    assert all(b.t > a.t for a, b in zip(frames, frames[1:]))  # time goes on across the gap


def test_camera_that_does_not_come_back_raises_source_lost(tmp_path):
    path = write_video(tmp_path / "v.avi", [(RED, 2.0)])
    dead = [DroppingCapture(path, 0) for _ in range(3)]
    for capture in dead:
        capture.capture.release()
    source, sleeps = _camera(path, [DroppingCapture(path, 7), *dead], tries=3)
    got = []
    with pytest.raises(SourceLost) as err:
        for f in source.frames():
            got.append(f)
    assert len(got) == 7 and sleeps == [1.0, 2.0, 4.0]
    assert "camera 0 stopped delivering frames and did not come back after 3 reconnect tries" in str(err.value)
    assert "\n" not in str(err.value)


def test_prefetch_drops_the_oldest_when_the_caller_falls_behind():
    reader = Prefetch(iter(range(30)), maxsize=4)
    items = iter(reader)
    got = [next(items)]
    time.sleep(0.6)  # a long caption: the reader keeps going and drops what it cannot hold
    got += list(items)
    assert reader.dropped > 0 and len(got) + reader.dropped == 30
    assert got == sorted(got) and got[-1] == 29  # order kept, the newest frames survive

    def failing():
        yield from range(3)
        raise SourceLost("camera 0 stopped delivering frames")

    got = []
    with pytest.raises(SourceLost):
        for item in Prefetch(failing(), maxsize=8):
            got.append(item)
    assert got == [0, 1, 2]
