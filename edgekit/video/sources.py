"""Frames from a camera, a video file, a network stream or a folder of images (OpenCV + numpy, no torch).

``open_source(spec)`` picks the kind from the spec; ``source.frames()`` yields ``Frame`` objects with a
timestamp in seconds from the start of the source. A file source that stops before its announced
frame count says so in ``source.stopped_early``; a live source (camera, stream) that stops delivering
is reopened with exponential back-off and, when that fails, raises ``SourceLost``.
"""

from __future__ import annotations

import math
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from edgekit.errors import EdgekitError

cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)  # its warnings (no camera...) become our errors

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


class SourceLost(EdgekitError):
    """A live source stopped delivering frames and could not be reopened (worth retrying later)."""


@dataclass
class Frame:
    image: np.ndarray  # BGR uint8, [H, W, 3]
    t: float           # seconds from the start of the source
    index: int         # position in the source (frames read, counting from 0)


class Capture(Protocol):
    """What ``cv2.VideoCapture`` offers that we use (tests wrap a real capture to simulate failures)."""

    def isOpened(self) -> bool: ...
    def read(self) -> tuple[bool, Any]: ...
    def get(self, prop: int) -> float: ...
    def release(self) -> None: ...


@dataclass
class Backoff:
    """Reconnect policy of live sources: ``tries`` attempts, waiting ``first_s`` doubled each time up to ``max_s``."""

    tries: int = 5
    first_s: float = 1.0
    max_s: float = 30.0

    def delays(self) -> Iterator[float]:
        for n in range(self.tries):
            yield min(self.max_s, self.first_s * 2 ** n)


class CaptureSource:
    """A camera index, a video file or a network stream, read through OpenCV.

    Files are timed by frame index / the file's fps; live sources by ``clock`` since the first frame.
    ``reconnects`` counts the times a live source came back after a failure. ``opener``, ``sleep`` and
    ``clock`` are there for tests (a wrapper around a real capture that drops out).
    """

    def __init__(self, target: int | str, live: bool, backoff: Backoff | None = None,
                 opener: Callable[[int | str], Capture] = cv2.VideoCapture,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic) -> None:
        self.target = target
        self.live = live
        self.backoff = backoff or Backoff()
        self.opener = opener
        self.sleep = sleep
        self.clock = clock
        self.stopped_early: str | None = None
        self.reconnects = 0
        self.events: list[tuple[float, str]] = []  # (t, what happened), e.g. a reconnect

    @property
    def name(self) -> str:
        return f"camera {self.target}" if isinstance(self.target, int) else str(self.target)

    def _open(self) -> Capture | None:
        capture = self.opener(self.target)
        if capture.isOpened():
            return capture
        capture.release()
        return None

    def _reopen(self, why: str, t: float) -> Capture:
        """Reopen a live source with back-off; a source that does not come back raises ``SourceLost``."""
        waited = 0.0
        for attempt, delay in enumerate(self.backoff.delays(), start=1):
            self.sleep(delay)
            waited += delay
            capture = self._open()
            if capture is not None:
                self.reconnects += 1
                self.events.append((t, f"{self.name} {why}; reconnected after {attempt} tries ({waited:.0f} s)"))
                return capture
        tried = f" and did not come back after {self.backoff.tries} reconnect tries ({waited:.0f} s)" \
            if self.backoff.tries else ""
        raise SourceLost(f"{self.name} {why}{tried}",
                         "check the camera cable / stream address; the timeline so far is kept")

    def frames(self) -> Iterator[Frame]:
        capture = self._open()
        if capture is None:
            if not self.live:
                raise EdgekitError(f"cannot open the video {self.target}",
                                   "check the path and that it is a video OpenCV/FFmpeg can read")
            capture = self._reopen("could not be opened", 0.0)
        fps = capture.get(cv2.CAP_PROP_FPS)
        fps = fps if fps and math.isfinite(fps) and 0 < fps < 1000 else 25.0
        announced = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0) if not self.live else 0
        index, start, t = 0, None, 0.0
        try:
            while True:
                ok, image = capture.read()
                if not ok or image is None:
                    if not self.live:
                        break
                    capture.release()
                    capture = self._reopen("stopped delivering frames", t)
                    continue
                if self.live:
                    now = self.clock()
                    start = now if start is None else start
                    t = now - start
                else:
                    t = index / fps
                yield Frame(_as_bgr(image), t, index)
                index += 1
        finally:
            capture.release()
        if announced and index < announced - 1:  # containers may announce one frame more than they hold
            self.stopped_early = (f"{self.name} ended early at {t:.1f} s (frame {index} of {announced}): "
                                  f"the file is truncated or corrupt; summarized what could be read")
        elif index == 0:
            raise EdgekitError(f"no frame could be read from {self.target}",
                               "the file is empty or corrupt; check it plays in a video player")


class ImageFolderSource:
    """The images of a folder in name order, one every ``interval_s`` seconds (a time-lapse)."""

    live = False

    def __init__(self, folder: Path, interval_s: float) -> None:
        self.folder = Path(folder)
        self.interval_s = interval_s
        self.stopped_early: str | None = None
        self.reconnects = 0
        self.events: list[tuple[float, str]] = []
        self.paths = sorted(p for p in self.folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self.paths:
            raise EdgekitError(f"{folder} holds no images ({', '.join(IMAGE_SUFFIXES)})",
                               "pass a folder of images, a video file, a stream URL or a camera index")

    @property
    def name(self) -> str:
        return str(self.folder)

    def frames(self) -> Iterator[Frame]:
        for index, path in enumerate(self.paths):
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            t = index * self.interval_s
            if image is None:
                self.events.append((t, f"skipped unreadable image {path.name}"))
                continue
            yield Frame(image, t, index)


Source = CaptureSource | ImageFolderSource


def open_source(spec: str, interval_s: float = 0.5, backoff: Backoff | None = None) -> Source:
    """The source named by ``spec``: a camera index (``0``), a stream URL (``rtsp://``, ``http://``...),
    a folder of images (one every ``interval_s`` seconds) or a video file."""
    if spec.isdigit():
        return CaptureSource(int(spec), live=True, backoff=backoff)
    if "://" in spec:
        return CaptureSource(spec, live=True, backoff=backoff)
    path = Path(spec)
    if path.is_dir():
        return ImageFolderSource(path, interval_s)
    if path.is_file():
        return CaptureSource(str(path), live=False)
    raise EdgekitError(f"no video, image folder or camera at {spec!r}",
                       "pass a camera index (0), a video file, an rtsp:// or http:// URL, or a folder of images")


def model_size(height: int, width: int, size: int, multiple: int = 32) -> tuple[int, int]:
    """(h, w) for the model: about ``size`` x ``size`` pixels in area, the aspect ratio kept, both sides
    multiples of ``multiple`` (Qwen3.5's vision merges 32x32 pixels into one token)."""
    scale = math.sqrt(size * size / (height * width))
    return (max(multiple, round(height * scale / multiple) * multiple),
            max(multiple, round(width * scale / multiple) * multiple))


def resize_for_model(image: np.ndarray, size: int) -> np.ndarray:
    """``image`` resized to ``model_size`` (area interpolation when shrinking, cubic when enlarging)."""
    h, w = model_size(image.shape[0], image.shape[1], size)
    interpolation = cv2.INTER_AREA if h * w < image.shape[0] * image.shape[1] else cv2.INTER_CUBIC
    return cv2.resize(image, (w, h), interpolation=interpolation)


def encode_jpeg(image: np.ndarray, max_width: int = 320, quality: int = 85) -> bytes:
    """A JPEG thumbnail of a BGR image, at most ``max_width`` pixels wide."""
    if image.shape[1] > max_width:
        h = max(1, round(image.shape[0] * max_width / image.shape[1]))
        image = cv2.resize(image, (max_width, h), interpolation=cv2.INTER_AREA)
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise EdgekitError("could not encode a JPEG thumbnail", "check that OpenCV was built with JPEG support")
    return data.tobytes()


class Prefetch:
    """Iterate ``items`` in a background thread, up to ``maxsize`` ahead (a live camera keeps being read
    while the caller is busy). When the caller falls behind, the oldest waiting items are dropped and
    counted in ``dropped``; an exception raised by ``items`` is re-raised in the caller."""

    _DONE = object()

    def __init__(self, items: Iterable[Any], maxsize: int) -> None:
        self.items = items
        self.box: queue.Queue = queue.Queue(maxsize)
        self.stop = threading.Event()
        self.dropped = 0

    def _put(self, item: Any) -> None:
        while not self.stop.is_set():
            try:
                self.box.put(item, timeout=0.1)
                return
            except queue.Full:
                try:
                    self.box.get_nowait()  # a live source cannot wait for us: drop the oldest
                    self.dropped += 1
                except queue.Empty:
                    pass

    def _run(self) -> None:
        try:
            for item in self.items:
                if self.stop.is_set():
                    return
                self._put(item)
            self._put(self._DONE)
        except BaseException as err:  # handed to the consumer
            self._put(err)

    def __iter__(self) -> Iterator[Any]:
        threading.Thread(target=self._run, name="edgekit-frame-reader", daemon=True).start()
        try:
            while True:
                item = self.box.get()
                if item is self._DONE:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            self.stop.set()


def _as_bgr(image: np.ndarray) -> np.ndarray:
    """Cameras may deliver grey or BGRA frames; the pipeline works on 3-channel BGR."""
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return image
