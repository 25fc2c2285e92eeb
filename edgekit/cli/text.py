"""``edgekit generate`` and ``edgekit chat``: text in, streamed text out."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from edgekit.cli.app import app, fail
from edgekit.cli.options import (MAX_CONTEXT, REPETITION_PENALTY, SEED, TEMPERATURE, THINK, THREADS, TOP_K, TOP_P,
                                 load_model, open_cache, sampling_params)
from edgekit.cli.streaming import stream_reply
from edgekit.errors import EdgekitError


@app.command()
def generate(
    bundle: Path = typer.Argument(..., help="Bundle folder."),
    prompt: str = typer.Option(..., "-p", "--prompt"),
    max_new_tokens: int = typer.Option(128, "-n", "--max-new-tokens"),
    raw: bool = typer.Option(False, "--raw", help="Feed the prompt as is, without the chat template."),
    think: bool = THINK, temperature: float = TEMPERATURE, top_k: int = TOP_K, top_p: float = TOP_P,
    repetition_penalty: float = REPETITION_PENALTY, seed: Optional[int] = SEED,
    threads: Optional[int] = THREADS, max_context: Optional[int] = MAX_CONTEXT,
    cache_file: Optional[Path] = typer.Option(None, "--cache", help="Prompt cache file (from `edgekit cache "
                                              "save`): a prompt that starts with a cached prefix skips it."),
) -> None:
    """Generate a reply to one prompt, streaming tokens to stdout and speed to stderr."""
    from edgekit.tokenizer import render_chat

    try:
        sampling = sampling_params(temperature, top_k, top_p, repetition_penalty, seed)
        model = load_model(bundle, threads, max_context)
        cache = open_cache(model, cache_file)
        text = prompt if raw else render_chat([{"role": "user", "content": prompt}], enable_thinking=think)
        stream_reply(model, cache, model.tokenizer.encode(text), sampling, max_new_tokens)
    except EdgekitError as err:
        fail(err)


@app.command()
def chat(
    bundle: Path = typer.Argument(..., help="Bundle folder."),
    system: Optional[str] = typer.Option(None, "--system", help="System prompt."),
    max_new_tokens: int = typer.Option(256, "-n", "--max-new-tokens"),
    think: bool = THINK, temperature: float = TEMPERATURE, top_k: int = TOP_K, top_p: float = TOP_P,
    repetition_penalty: float = REPETITION_PENALTY, seed: Optional[int] = SEED,
    threads: Optional[int] = THREADS, max_context: Optional[int] = MAX_CONTEXT,
    cache_file: Optional[Path] = typer.Option(None, "--cache", help="Keep the prompt cache in this file "
                                              "(loaded at start, saved after every turn)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the latest conversation in --cache."),
) -> None:
    """Chat in the terminal. Each turn resumes from a checkpoint taken after the previous reply, so
    earlier turns are never recomputed; with --cache that survives a restart."""
    from edgekit.tokenizer import render_chat

    try:
        sampling = sampling_params(temperature, top_k, top_p, repetition_penalty, seed)
        model = load_model(bundle, threads, max_context)
        cache = open_cache(model, cache_file)
        if resume and cache_file is None:
            raise EdgekitError("--resume needs --cache FILE", "pass the cache file of the conversation to resume")
        latest = cache.latest("turn") if resume else None
        if resume and latest is None:
            raise EdgekitError(f"{cache_file} holds no conversation to resume", "start one without --resume")
        history = list(latest.tokens) if latest else []
        # A resumed conversation ends with a reply whose <|im_end|> was sampled but not folded in.
        pending = "<|im_end|>\n" if latest else ""
        if system and not latest:
            pending = render_chat([{"role": "system", "content": system}], add_generation_prompt=False)
        typer.echo("edgekit chat: empty line or Ctrl-D to quit", err=True)
        while True:
            try:
                line = input("> ")
            except EOFError:
                break
            if not line.strip():
                break
            opening = history + model.tokenizer.encode(pending)  # a system prompt marks a checkpoint of its own
            marks = [(len(opening), "system")] if system and not history else []
            turn = model.tokenizer.encode(render_chat([{"role": "user", "content": line}], enable_thinking=think))
            state = stream_reply(model, cache, opening + turn, sampling, max_new_tokens, marks)
            cache.add(state, "turn")  # the next turn starts here: nothing of this one is recomputed
            if cache_file is not None:
                cache.save(cache_file)
            history = list(state.tokens)
            pending = "<|im_end|>\n"  # close the reply: its stop token was sampled, not folded in
    except EdgekitError as err:
        fail(err)
