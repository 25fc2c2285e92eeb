"""The video summarizer loop: frames -> selected frames -> segments -> captions -> summaries.

Input time is cut into segments of ``segment_s`` seconds ([k*S, (k+1)*S)). The frames the selector
keeps in a segment go to the captioner in one call when the segment is over; a segment in which no
frame was kept (nothing changed) costs nothing and writes nothing. Each caption is appended to the
timeline at once. Captions are folded into a summary every ``summary_every_s`` of input (for a live
camera) or every ``captions_per_summary`` captions, and summaries into one summary when there are
more than ``max_summaries``: what is held in memory stays bounded for hours of input. At the end
(the video is over, the source is lost, or Ctrl-C / SIGTERM) the last segment is captioned when the
source ended by itself, a final summary is written, and the run's stop record says why it stopped.
"""

from __future__ import annotations

import math
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from edgekit.errors import EdgekitError
from edgekit.video.captioner import Captioner
from edgekit.video.frame_select import FrameSelector, Selected
from edgekit.video.sources import Prefetch, Source, SourceLost, resize_for_model
from edgekit.video.timeline import Timeline


@dataclass
class SummarizerSettings:
    fps: float = 2.0                 # at most this many frames per second are looked at
    size: int = 224                  # frames are resized to about size x size pixels (multiples of 32)
    segment_s: float = 10.0          # seconds of input per caption
    summary_every_s: float | None = None  # a summary every this many seconds of input (live cameras)
    captions_per_summary: int = 30   # ... and at the latest every this many captions
    max_summaries: int = 12          # more summaries than this are merged into one
    change_threshold: float = 0.02   # see FrameSelector
    cut_threshold: float = 0.4
    max_keyframes: int = 3           # thumbnails per segment: its first frame and its scene cuts

    def check(self) -> None:
        if not self.fps > 0 or self.size < 32 or not self.segment_s > 0:
            raise EdgekitError(f"fps {self.fps}, size {self.size}, segment {self.segment_s} s are not usable",
                               "pass --fps above 0, --size of at least 32 (224 or 448) and a --segment above 0")
        if self.segment_s * self.fps < 1:
            raise EdgekitError(f"a {self.segment_s:g} s segment holds no frame at {self.fps:g} fps",
                               "make --segment at least 1 / --fps seconds")
        if self.summary_every_s is not None and self.summary_every_s < self.segment_s:
            raise EdgekitError(f"--summary-every {self.summary_every_s:g} s is shorter than a segment "
                               f"({self.segment_s:g} s)", "make it at least one segment long")


@dataclass
class Segment:
    index: int
    start: float
    end: float
    frames: list[np.ndarray] = field(default_factory=list)
    timestamps: list[float] = field(default_factory=list)
    cuts: list[float] = field(default_factory=list)
    keyframes: list[np.ndarray] = field(default_factory=list)


@dataclass
class RunResult:
    reason: str            # end, truncated, disconnected or interrupted
    message: str
    t: float               # input time reached (seconds)
    segments: int          # segments captioned
    summary: str | None    # the final summary (None when there was nothing to summarize or it was skipped)
    error: SourceLost | None = None


class _Stop(KeyboardInterrupt):
    """SIGTERM (systemd stopping the service) handled like Ctrl-C."""


@contextmanager
def stop_on_sigterm() -> Iterator[None]:
    """Within this block SIGTERM raises ``KeyboardInterrupt``, so a stopped service writes what it has."""
    def handler(signum, frame):
        raise _Stop()

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def selected_frames(source: Source, selector: FrameSelector, settings: SummarizerSettings
                    ) -> Iterator[tuple[float, Selected | None]]:
    """(t, selected frame resized for the model) for kept frames, and (t, None) once per segment boundary
    crossed without one, so segments close on time even when nothing changes; the last frame's time
    always comes last, also before a ``SourceLost``."""
    last_segment, last_t, yielded = 0, None, None
    try:
        for frame in source.frames():
            kept = selector.push(frame)
            segment = int(frame.t // settings.segment_s)
            last_t = frame.t
            if kept is not None:
                kept.frame.image = resize_for_model(kept.frame.image, settings.size)
                yield frame.t, kept
                yielded = frame.t
            elif segment != last_segment:
                yield frame.t, None
                yielded = frame.t
            last_segment = segment
    except SourceLost:
        if last_t is not None and last_t != yielded:
            yield last_t, None
        raise
    if last_t is not None and last_t != yielded:
        yield last_t, None


class Summarizer:
    """Runs ``source`` through ``captioner`` into ``timeline``; ``on_caption(record)`` and
    ``on_summary(record)`` see each record as it is written (``--live``)."""

    def __init__(self, captioner: Captioner, timeline: Timeline, settings: SummarizerSettings,
                 on_caption: Callable[[dict[str, Any]], None] | None = None,
                 on_summary: Callable[[dict[str, Any]], None] | None = None) -> None:
        settings.check()
        self.captioner = captioner
        self.timeline = timeline
        self.settings = settings
        self.on_caption = on_caption or (lambda record: None)
        self.on_summary = on_summary or (lambda record: None)
        self.recent: list[tuple[float, float, str]] = []     # captions not yet folded into a summary
        self.summaries: list[tuple[float, float, str]] = []  # periodic summaries not yet merged
        self.segments = 0
        self._events_written = 0

    def run(self, source: Source) -> RunResult:
        s = self.settings
        self.timeline.start_run(source.name, asdict(s), getattr(self.captioner, "description",
                                                                type(self.captioner).__name__))
        selector = FrameSelector(s.fps, s.change_threshold, s.cut_threshold)
        items: Iterator = selected_frames(source, selector, s)
        reader = None
        if source.live:  # keep reading the camera while a caption is being made
            reader = Prefetch(items, maxsize=max(8, math.ceil(4 * s.fps * s.segment_s)))
            items = iter(reader)
        segment = Segment(0, 0.0, s.segment_s)
        next_summary = s.summary_every_s
        reason, message, error, t = "end", "", None, 0.0
        try:
            with stop_on_sigterm():
                for t, kept in items:
                    if t >= segment.end:
                        self._close(segment, source)
                        index = int(t // s.segment_s)
                        segment = Segment(index, index * s.segment_s, (index + 1) * s.segment_s)
                        if next_summary is not None and segment.start >= next_summary:
                            self._fold_captions()
                            next_summary = (segment.start // s.summary_every_s + 1) * s.summary_every_s
                    if kept is not None:
                        self._add(segment, kept)
                segment.end = max(segment.start, t)
                self._close(segment, source)
        except KeyboardInterrupt as err:
            reason = "interrupted"
            message = f"stopped by {'SIGTERM' if isinstance(err, _Stop) else 'Ctrl-C'}"
            if segment.frames:
                message += f"; {len(segment.frames)} frames from {segment.start:.1f} s on were not captioned"
        except SourceLost as err:
            reason, message, error = "disconnected", str(err), err
            segment.end = max(segment.start, t)
            self._close(segment, source)  # what was seen before the loss is captioned
        except EdgekitError as err:  # e.g. an unreadable file: the run's record says so, then the caller does
            self._write_events(source)
            self.timeline.stop("error", t, str(err), self._stats(selector, source, reader))
            raise
        if source.stopped_early:
            reason, message = "truncated", source.stopped_early
        self._write_events(source)
        summary = self._final_summary()
        if summary is None and (self.recent or self.summaries) and reason == "interrupted":
            message += "; final summary skipped"
        self.timeline.stop(reason, t, message or "the source ended", self._stats(selector, source, reader))
        return RunResult(reason, message, t, self.segments, summary, error)

    def _stats(self, selector: FrameSelector, source: Source, reader: Prefetch | None) -> dict[str, int]:
        return {"segments": self.segments, "frames_seen": selector.seen,
                "skipped_duplicates": selector.skipped_duplicates, "reconnects": source.reconnects,
                "dropped_behind": reader.dropped if reader else 0}

    def _add(self, segment: Segment, kept: Selected) -> None:
        segment.frames.append(kept.frame.image)
        segment.timestamps.append(kept.frame.t)
        if kept.cut:
            segment.cuts.append(kept.frame.t)
        if (not segment.keyframes or kept.cut) and len(segment.keyframes) < self.settings.max_keyframes:
            segment.keyframes.append(kept.frame.image)

    def _close(self, segment: Segment, source: Source) -> None:
        self._write_events(source)
        if not segment.frames:
            return
        caption = self.captioner.caption(segment.frames, segment.timestamps)
        record = self.timeline.add_segment(segment.index, segment.start, segment.end, segment.timestamps,
                                           segment.cuts, caption, segment.keyframes)
        self.segments += 1
        self.recent.append((segment.start, segment.end, caption))
        self.on_caption(record)
        if len(self.recent) >= self.settings.captions_per_summary:
            self._fold_captions()

    def _fold_captions(self) -> None:
        """Replace the recent captions by one summary (and too many summaries by one)."""
        if not self.recent:
            return
        start, end = self.recent[0][0], self.recent[-1][1]
        text = self.captioner.summarize(self.recent)
        self.on_summary(self.timeline.add_summary(start, end, text, final=False))
        self.summaries.append((start, end, text))
        self.recent = []
        if len(self.summaries) > self.settings.max_summaries:
            start, end = self.summaries[0][0], self.summaries[-1][1]
            self.summaries = [(start, end, self.captioner.summarize(self.summaries))]

    def _final_summary(self) -> str | None:
        items = self.summaries + self.recent
        if not items:
            return None
        try:
            text = self.captioner.summarize(items)
        except KeyboardInterrupt:  # a second Ctrl-C: skip the summary, keep the timeline
            return None
        self.on_summary(self.timeline.add_summary(items[0][0], items[-1][1], text, final=True))
        return text

    def _write_events(self, source: Source) -> None:
        for t, text in source.events[self._events_written:]:
            self.timeline.add_event(t, text)
        self._events_written = len(source.events)

