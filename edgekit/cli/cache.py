"""``edgekit cache save|info``: prompt caches, precomputed prefixes saved to a file."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer

from edgekit.cli.app import app, fail
from edgekit.cli.options import MAX_CONTEXT, THREADS, load_model, open_cache
from edgekit.errors import EdgekitError

cache_app = typer.Typer(help="Prompt caches: precomputed prefixes saved to a file.", no_args_is_help=True)
app.add_typer(cache_app, name="cache")


@cache_app.command("save")
def cache_save(
    bundle: Path = typer.Argument(..., help="Bundle folder."),
    out: Path = typer.Option(..., "-o", "--out", help="Cache file to write (.npz)."),
    system: Optional[str] = typer.Option(None, "--system", help="System prompt to precompute."),
    text_file: Optional[Path] = typer.Option(None, "--file", help="A document to precompute as the first "
                                             "user turn's opening; it is closed with a blank line, after "
                                             "which the question follows at run time."),
    threads: Optional[int] = THREADS, max_context: Optional[int] = MAX_CONTEXT,
) -> None:
    """Precompute a prefix (system prompt, a document) once and save it, e.g. to ship with an app."""
    from edgekit.tokenizer import render_chat

    try:
        if not system and not text_file:
            raise EdgekitError("nothing to precompute", "pass --system TEXT and/or --file DOC")
        model = load_model(bundle, threads, max_context)
        text = render_chat([{"role": "system", "content": system}], add_generation_prompt=False) if system else ""
        if text_file:
            # The blank line is a token boundary: the question that follows cannot merge into the
            # document's last token, so the prompt's tokens start with exactly the cached ones.
            text += "<|im_start|>user\n" + text_file.read_text() + "\n\n"
        cache = open_cache(model, out)
        ids = model.tokenizer.encode(text)
        start = time.perf_counter()
        cache.prefill(ids, marks=[(len(ids), "system")])
        cache.save(out)
    except EdgekitError as err:
        fail(err)
    typer.echo(f"saved {out}: {len(ids)} tokens precomputed in {time.perf_counter() - start:.1f} s, "
               f"{len(cache)} checkpoints, {cache.nbytes / 2**20:.1f} MiB")


@cache_app.command("info")
def cache_info(
    bundle: Path = typer.Argument(..., help="Bundle folder the cache belongs to."),
    cache_file: Path = typer.Argument(..., help="Cache file."),
) -> None:
    """Load a cache (checksum, bundle match) and list its checkpoints."""
    try:
        model = load_model(bundle, 1, None)
        cache = open_cache(model, cache_file) if cache_file.exists() else None
        if cache is None:
            raise EdgekitError(f"no prompt cache at {cache_file}", "create one with `edgekit cache save`")
    except EdgekitError as err:
        fail(err)
    typer.echo(f"{cache_file}: bundle {model.bundle.digest}, {len(cache)} checkpoints, {cache.nbytes / 2**20:.1f} MiB")
    for cp in cache.checkpoints:
        typer.echo(f"  {cp.kind:8s} {len(cp.tokens):6d} tokens  {cp.nbytes / 2**20:7.1f} MiB")
