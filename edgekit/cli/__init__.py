"""The ``edgekit`` command line. Each module holds one group of verbs and registers them on ``app``:
export, text (generate, chat), cache, bundle (info, verify), vision (describe), video (summarize),
device (deploy, profile, profile-compare), timeline (timeline export/serve/collect, ask). Shared options live in ``options``."""

import os

# FFmpeg (under OpenCV) prints its own errors ("moov atom not found") before edgekit's one-line error: fatal only.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "8")
os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")

from edgekit.cli import bundle, cache, device, export, text, timeline, video, vision  # noqa: E402, F401  (registers the verbs)
from edgekit.cli.app import app  # noqa: E402


def main() -> None:
    app()


__all__ = ["app", "main"]
