"""``edgekit timeline export|serve|collect`` and ``edgekit ask``: what a timeline store is used for."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Optional

import typer

from edgekit.cli.app import app, fail
from edgekit.cli.options import (MAX_CONTEXT, MQTT_CA, MQTT_CERT, MQTT_INSECURE, MQTT_KEY, MQTT_PASSWORD, MQTT_USER,
                                 SEED, TEMPERATURE, THREADS, TOP_K, broker, load_model, open_cache, sampling_params)
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


@timeline_app.command()
def collect(
    mqtt: str = typer.Option(..., "--mqtt", help="Broker: mqtt://HOST:1883/PREFIX or mqtts://HOST:8883/PREFIX."),
    out: Path = typer.Option(..., "-o", "--out", help="Folder of the fleet's store (one for every camera)."),
    client_id: str = typer.Option("edgekit-collector", "--client-id", help="MQTT client id; the broker keeps "
                                  "this session's messages while the collector is down."),
    mqtt_user: Optional[str] = MQTT_USER, mqtt_password: Optional[str] = MQTT_PASSWORD,
    mqtt_ca: Optional[Path] = MQTT_CA, mqtt_cert: Optional[Path] = MQTT_CERT, mqtt_key: Optional[Path] = MQTT_KEY,
    mqtt_insecure: bool = MQTT_INSECURE,
) -> None:
    """Keep the records every camera publishes under PREFIX in one store, until Ctrl-C / SIGTERM."""
    import signal

    try:
        target = broker(mqtt, mqtt_user, mqtt_password, mqtt_ca, mqtt_cert, mqtt_key, mqtt_insecure)
        from edgekit.video.mqtt import Collector

        ready = f"collecting {target.prefix}/+/... from {target.host}:{target.port} into {out / 'timeline.db'}"
        collector = Collector(out, target, client_id, on_subscribed=lambda: typer.echo(ready, err=True))
        collector.connect()
        stop = threading.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
        collector.run(stop)
    except EdgekitError as err:
        fail(err)
    typer.echo(f"stopped: {collector.received} records kept, {collector.rejected} rejected", err=True)


@timeline_app.command()
def serve(out: Path = typer.Argument(..., help="Timeline folder (holds timeline.db)."),
          host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on; 0.0.0.0 for phones on the LAN."),
          port: int = typer.Option(8080, "--port", help="Port to listen on.")) -> None:
    """A web page over the store: a day of segments with thumbnails, summaries, search; until Ctrl-C."""
    from edgekit.video.web import server

    try:
        httpd = server(out, host, port)
    except EdgekitError as err:
        fail(err)
    except OSError as err:
        fail(EdgekitError(f"cannot listen on {host}:{port} ({err.strerror})", "pass another --port"))
    typer.echo(f"serving {out} on http://{host}:{httpd.server_port}/", err=True)
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        httpd.server_close()


@app.command()
def ask(
    out: Path = typer.Argument(..., help="Timeline folder (holds timeline.db)."),
    question: str = typer.Argument(..., help='What to ask, e.g. "when did the red car arrive?"'),
    bundle: Path = typer.Option(..., "--bundle", help="Bundle folder of the model that answers."),
    since: Optional[str] = typer.Option(None, "--since", help="Only segments from then on: 2026-12-01T08:00, 2h, 3d."),
    until: Optional[str] = typer.Option(None, "--until", help="Only segments before then."),
    camera: Optional[str] = CAMERA,
    answer_tokens: int = typer.Option(96, "--answer-tokens", help="At most this many tokens in the answer."),
    cache_file: Optional[Path] = typer.Option(None, "--cache", help="Keep the prompt cache in this file: the "
                                              "instruction prefix is computed once for every question."),
    threads: Optional[int] = THREADS, max_context: Optional[int] = MAX_CONTEXT,
    temperature: float = TEMPERATURE, top_k: int = TOP_K, seed: Optional[int] = SEED,
) -> None:
    """Answer a question from the timeline's captions, citing the segment times it used."""
    from edgekit.video.ask import answer, build_prompt, parse_time, retrieve, when
    from edgekit.video.store import Store

    try:
        if answer_tokens < 1:
            raise EdgekitError(f"--answer-tokens {answer_tokens} leaves no room for an answer", "pass 1 or more")
        store = Store(out)
        window = (parse_time(since) if since else None, parse_time(until) if until else None)
        ranked = retrieve(store, question, *window, camera=camera)
        if not ranked:
            raise EdgekitError("the timeline holds no segment in that window",
                               "widen --since/--until or check --camera")
        model = load_model(bundle, threads, max_context)
        prompt = build_prompt(model, question, ranked, answer_tokens)
        cache = open_cache(model, cache_file)
        text = answer(model, cache, prompt, sampling_params(temperature, top_k, 1.0, 1.0, seed), answer_tokens)
        if cache_file is not None:
            cache.save(cache_file)
    except EdgekitError as err:
        fail(err)
    typer.echo(text or "(no answer)")
    typer.echo(f"sources ({len(prompt.used)} segments" + (f", {prompt.left_out} more left out to fit the context"
                                                           if prompt.left_out else "") + "):")
    for s in prompt.used:
        typer.echo(f"  [{when(s)}] {s['camera']}: {s['caption']}")
