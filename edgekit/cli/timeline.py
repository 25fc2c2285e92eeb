"""``edgekit timeline export|serve|collect`` and ``edgekit ask``: what a timeline store is used for."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Optional

import typer

from edgekit.cli.app import app, fail
from edgekit.cli.options import (MAX_CONTEXT, MQTT_CA, MQTT_CERT, MQTT_INSECURE, MQTT_KEY, MQTT_PASSWORD, MQTT_USER,
                                 THREADS, broker, load_model)
from edgekit.errors import EdgekitError

timeline_app = typer.Typer(no_args_is_help=True, help="Export, serve and collect timeline stores.")
app.add_typer(timeline_app, name="timeline")

CAMERA = typer.Option(None, "--camera", help="One camera (default: all).")


@timeline_app.command("export")
def export_(out: Path = typer.Argument(..., help="Timeline folder (holds timeline.db)."),
            camera: Optional[str] = CAMERA) -> None:
    """Write timeline.json and timeline.md from the store (atomically)."""
    from edgekit.video.timeline import default_camera, export, open_store

    try:
        if not (out / "timeline.db").exists() and not (out / "timeline.jsonl").exists():
            raise EdgekitError(f"{out} holds no timeline", "pass the -o folder of `edgekit summarize`")
        store = open_store(out, camera or default_camera())
        paths = export(store, camera)
        store.close()
    except EdgekitError as err:
        fail(err)
    typer.echo(" ".join(str(p) for p in paths))
