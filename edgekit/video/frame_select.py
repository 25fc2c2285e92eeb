"""Which frames a video summarizer looks at: a capped rate, near-duplicates skipped, scene cuts forced.

Every incoming frame is reduced to a cheap signature (a 32x24 grey thumbnail and an 8x8x8 colour
histogram), so the gate costs far less than decoding the frame did. A frame is taken when

- at least one sample period (1 / fps) has passed since the last taken frame (the rate cap), and
- it differs from the last taken frame (mean grey difference or histogram distance at least
  ``change_threshold``), or a scene cut happened since the last taken frame.

A scene cut is a jump in the colour histogram between two consecutive incoming frames (distance at
least ``cut_threshold``). The first frame allowed by the rate cap after a cut is taken whatever its
difference, so a cut is always seen within one sample period.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from edgekit.errors import EdgekitError
from edgekit.video.sources import Frame

GATE_SIZE = (32, 24)  # (w, h) of the grey thumbnail the change gate compares
HIST_BINS = 8


@dataclass
class Selected:
    frame: Frame
    cut: bool       # taken because of a scene cut
    change: float   # difference to the previous taken frame (1.0 for the first)


@dataclass
class _Signature:
    grey: np.ndarray  # float32 [h, w] in 0..1
    hist: np.ndarray  # float32, sums to 1


def signature(image: np.ndarray) -> _Signature:
    small = cv2.resize(image, GATE_SIZE, interpolation=cv2.INTER_AREA)
    grey = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY).astype(np.float32) / 255.0
    hist = cv2.calcHist([small], [0, 1, 2], None, [HIST_BINS] * 3, [0, 256] * 3).ravel()
    return _Signature(grey, hist / max(hist.sum(), 1.0))


def grey_difference(a: _Signature, b: _Signature) -> float:
    """Mean absolute grey difference, 0..1."""
    return float(np.abs(a.grey - b.grey).mean())


def histogram_distance(a: _Signature, b: _Signature) -> float:
    """Total variation distance of the colour histograms, 0 (same colours) .. 1 (no colour in common)."""
    return float(0.5 * np.abs(a.hist - b.hist).sum())


class FrameSelector:
    """Feed every frame to ``push``; it returns a ``Selected`` for the frames to keep, else None."""

    def __init__(self, fps: float = 2.0, change_threshold: float = 0.02, cut_threshold: float = 0.4) -> None:
        if not fps > 0:
            raise EdgekitError(f"sampling rate {fps} fps is not positive", "pass --fps above 0, e.g. 2 or 0.5")
        self.period = 1.0 / fps
        self.change_threshold = change_threshold
        self.cut_threshold = cut_threshold
        self._previous: _Signature | None = None  # the last incoming frame
        self._kept: _Signature | None = None      # the last taken frame
        self._kept_t = -float("inf")
        self._cut_pending = False
        self.seen = 0
        self.skipped_duplicates = 0

    def push(self, frame: Frame) -> Selected | None:
        self.seen += 1
        sig = signature(frame.image)
        if self._previous is not None and histogram_distance(self._previous, sig) >= self.cut_threshold:
            self._cut_pending = True
        self._previous = sig
        if frame.t - self._kept_t < self.period - 1e-6:
            return None
        if self._kept is None:
            change = 1.0
        else:
            change = max(grey_difference(self._kept, sig), histogram_distance(self._kept, sig))
            if not self._cut_pending and change < self.change_threshold:
                self.skipped_duplicates += 1
                return None
        selected = Selected(frame, self._cut_pending, change)
        self._kept, self._kept_t, self._cut_pending = sig, frame.t, False
        return selected
