"""The ``edgekit`` command line. Each module holds one group of verbs and registers them on ``app``:
export, text (generate, chat), cache, bundle (info, verify), vision (describe), video (summarize),
device (deploy, profile, profile-compare). Shared options live in ``options``."""

from edgekit.cli import bundle, cache, device, export, text, video, vision  # noqa: F401  (registers the verbs)
from edgekit.cli.app import app


def main() -> None:
    app()


__all__ = ["app", "main"]
