"""``edgekit summarize``: a camera, video, stream or image folder captioned into a timeline."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from edgekit.cli.app import app, fail
from edgekit.cli.options import (MAX_CONTEXT, MQTT, MQTT_CA, MQTT_CERT, MQTT_INSECURE, MQTT_KEY, MQTT_PASSWORD,
                                 MQTT_USER, SEED, TEMPERATURE, THREADS, TOP_K, broker, check_counts, load_model,
                                 parse_duration, parse_size, sampling_params)
from edgekit.errors import EdgekitError

_VISION_NOTE = ("note: this bundle has no vision tower, so captions come from frame statistics (colour, "
                "brightness, motion) read by the text model; export with vision to caption what frames show")


@app.command()
def summarize(
    bundle: Path = typer.Argument(..., help="Bundle folder."),
    source: str = typer.Argument(..., help="Camera index (0), video file, rtsp:// or http:// stream, or image folder."),
    out: Path = typer.Option(..., "-o", "--out", help="Folder for the timeline store (timeline.db) and frames/."),
    fps: float = typer.Option(2.0, "--fps", help="At most this many frames per second (lower on slow devices)."),
    size: int = typer.Option(224, "--size", help="Frames are resized to about size x size pixels: 224 or 448."),
    segment: str = typer.Option("10s", "--segment", help="Input time per caption: 10s, 1m."),
    summary_every: Optional[str] = typer.Option(None, "--summary-every", help="Also summarize every 5m of input "
                                                "(a live camera); default: at the end."),
    live: bool = typer.Option(False, "--live", help="Print captions and summaries as they come."),
    append: bool = typer.Option(False, "--append", help="Continue the timeline already in --out (a new run)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the timeline already in --out."),
    reconnect: int = typer.Option(5, "--reconnect", help="Reconnect tries (exponential back-off from 1 s) "
                                  "when a camera or stream drops."),
    caption_tokens: int = typer.Option(32, "--caption-tokens", help="At most this many tokens per caption."),
    low_memory: bool = typer.Option(False, "--low-memory", help="Free the vision tower after each segment's "
                                    "frames are encoded: a lower peak RSS (~30 MiB on the 0.8B), for a tower "
                                    "rebuild per segment (~0.4 s on a 2-core x86)."),
    camera: Optional[str] = typer.Option(None, "--camera", help="Camera id on every record and MQTT topic "
                                         "(default: the host name)."),
    keep: Optional[str] = typer.Option(None, "--keep", help="Delete segments and thumbnails older than this: 7d, 12h."),
    max_store: Optional[str] = typer.Option(None, "--max-store", help="Delete the oldest segments while the store "
                                            "and thumbnails exceed this size: 2GB, 500MB."),
    mqtt: Optional[str] = MQTT, mqtt_user: Optional[str] = MQTT_USER, mqtt_password: Optional[str] = MQTT_PASSWORD,
    mqtt_ca: Optional[Path] = MQTT_CA, mqtt_cert: Optional[Path] = MQTT_CERT, mqtt_key: Optional[Path] = MQTT_KEY,
    mqtt_insecure: bool = MQTT_INSECURE,
    temperature: float = TEMPERATURE, top_k: int = TOP_K, seed: Optional[int] = SEED,
    threads: Optional[int] = THREADS, max_context: Optional[int] = MAX_CONTEXT,
) -> None:
    """Caption a camera, video, stream or image folder segment by segment into a timeline, then summarize it.
    Exit status: 0 done (also for a truncated file), 3 the camera/stream was lost, 130 interrupted."""
    try:
        from edgekit.video.captioner import FrameStatsCaptioner, VisionCaptioner
        from edgekit.video.sources import Backoff, open_source
        from edgekit.video.summarizer import Summarizer, SummarizerSettings
        from edgekit.video.store import Retention
        from edgekit.video.timeline import Timeline, clock
    except ModuleNotFoundError as err:
        if err.name != "cv2":
            raise
        fail(EdgekitError("edgekit summarize needs OpenCV", "pip install 'edgekit[video]'"))

    def show(record):
        if "caption" in record:
            typer.echo(f"[{clock(record['start'])}-{clock(record['end'])}] {record['caption']}")
        else:
            typer.echo(f"{'summary' if record['final'] else 'summary so far'} "
                       f"[{clock(record['start'])}-{clock(record['end'])}]: {record['text']}")

    try:
        check_counts(caption_tokens=caption_tokens)
        if append and overwrite:
            raise EdgekitError("--append and --overwrite exclude each other", "pass one of them")
        settings = SummarizerSettings(fps=fps, size=size, segment_s=parse_duration(segment),
                                      summary_every_s=parse_duration(summary_every) if summary_every else None)
        settings.check()
        retention = Retention(parse_duration(keep) if keep else None, parse_size(max_store) if max_store else None)
        target = broker(mqtt, mqtt_user, mqtt_password, mqtt_ca, mqtt_cert, mqtt_key, mqtt_insecure)
        src = open_source(source, interval_s=1 / fps, backoff=Backoff(tries=reconnect))
        timeline = Timeline(out, mode="append" if append else "overwrite" if overwrite else "new", camera=camera,
                            retention=retention, outbox_prefix=target.prefix if target else None)
        model = load_model(bundle, threads, max_context)
        options = {"caption_tokens": caption_tokens, "sampling": sampling_params(temperature, top_k, 1.0, 1.0, seed)}
        if model.has_vision:
            captioner = VisionCaptioner(model, release_tower=low_memory, **options)
        else:
            captioner = FrameStatsCaptioner(model, **options)
            typer.echo(_VISION_NOTE, err=True)
        publisher = None
        if target is not None:
            from edgekit.video.mqtt import Publisher

            publisher = Publisher(timeline, target).start()
        try:
            result = Summarizer(captioner, timeline, settings, on_caption=show if live else None,
                                on_summary=show if live else None).run(src)
        finally:
            left = publisher.close() if publisher else 0
            timeline.close()
    except EdgekitError as err:
        fail(err)
    if not live and result.summary is not None:
        typer.echo(result.summary)
    typer.echo(f"wrote {out / 'timeline.db'} ({result.segments} segments, {clock(result.t)} of input); "
               f"`edgekit timeline export {out}` writes timeline.md", err=True)
    if left:
        typer.echo(f"warning: {left} records wait in the outbox for the MQTT broker (sent on the next run)", err=True)
    if result.error is not None:
        typer.echo(f"error: {result.error}", err=True)
        raise typer.Exit(3)
    if result.reason == "truncated":
        typer.echo(f"warning: {result.message}", err=True)
    if result.reason == "interrupted":
        typer.echo(f"interrupted: {result.message}", err=True)
        raise typer.Exit(130)
