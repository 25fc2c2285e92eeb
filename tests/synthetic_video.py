"""Small synthetic videos for the summarizer tests, written with OpenCV: coloured scenes with known cuts."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

W, H = 64, 48
RED, GREEN, BLUE = (0, 0, 200), (0, 200, 0), (200, 0, 0)


def frame(colour: tuple[int, int, int], shape_x: int | None) -> np.ndarray:
    image = np.zeros((H, W, 3), np.uint8)
    image[:] = colour
    if shape_x is not None:
        cv2.circle(image, (shape_x, H // 2), 8, (255, 255, 255), -1)
    return image


def write_video(path: Path, scenes: list[tuple[tuple[int, int, int], float]], fps: float = 10.0,
                moving: bool = True) -> Path:
    """An MJPG .avi at ``fps``: each scene is (colour, seconds); a white disc moves 3 px per frame
    across the whole video (``moving``) or stands still in the middle."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (W, H))
    assert writer.isOpened()
    index = 0
    for colour, seconds in scenes:
        for _ in range(round(seconds * fps)):
            writer.write(frame(colour, 8 + (3 * index) % (W - 16) if moving else W // 2))
            index += 1
    writer.release()
    return path


def cut_times(scenes: list[tuple[tuple[int, int, int], float]], fps: float = 10.0) -> list[float]:
    """The times of the first frames of every scene but the first."""
    times, frames = [], 0
    for _, seconds in scenes[:-1]:
        frames += round(seconds * fps)
        times.append(frames / fps)
    return times


class DroppingCapture:
    """A real ``cv2.VideoCapture`` that stops returning frames after ``frames`` reads: a camera unplugged."""

    def __init__(self, path: Path, frames: int) -> None:
        self.capture = cv2.VideoCapture(str(path))
        self.left = frames

    def isOpened(self) -> bool:
        return self.capture.isOpened()

    def read(self):
        if self.left <= 0:
            return False, None
        self.left -= 1
        return self.capture.read()

    def get(self, prop: int) -> float:
        return self.capture.get(prop)

    def release(self) -> None:
        self.capture.release()
