"""``edgekit generate`` and ``edgekit chat``: text in, streamed text out."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from edgekit.cli.app import app, fail
from edgekit.cli.options import (MAX_CONTEXT, REPETITION_PENALTY, SEED, TEMPERATURE, THINK, THREADS, TOP_K, TOP_P,
                                 check_cache_path, check_counts, load_model, open_cache, sampling_params)
from edgekit.cli.streaming import stream_reply
from edgekit.files import lock_beside
from edgekit.errors import EdgekitError


@app.command()
def generate(
    bundle: Path = typer.Argument(..., help="Bundle folder."),
    prompt: str = typer.Option(..., "-p", "--prompt"),
    system: Optional[str] = typer.Option(None, "--system", help="System prompt (a cache saved with the same "
                                         "--system skips it)."),
    max_new_tokens: int = typer.Option(128, "-n", "--max-new-tokens"),
    raw: bool = typer.Option(False, "--raw", help="Feed the prompt as is, without the chat template (special "
                             "tokens written in it are parsed)."),
    think: bool = THINK, temperature: float = TEMPERATURE, top_k: int = TOP_K, top_p: float = TOP_P,
    repetition_penalty: float = REPETITION_PENALTY, seed: Optional[int] = SEED,
    threads: Optional[int] = THREADS, max_context: Optional[int] = MAX_CONTEXT,
    cache_file: Optional[Path] = typer.Option(None, "--cache", help="Prompt cache file (from `edgekit cache "
                                              "save`): a prompt that starts with a cached prefix skips it."),
) -> None:
    """Generate a reply to one prompt, streaming tokens to stdout and speed to stderr."""
    try:
        check_counts(max_new_tokens=max_new_tokens)
        if raw and system is not None:
            raise EdgekitError("--system needs the chat template", "leave out --raw, or write the system turn "
                               "into the --raw prompt")
        sampling = sampling_params(temperature, top_k, top_p, repetition_penalty, seed)
        model = load_model(bundle, threads, max_context)
        cache = open_cache(model, cache_file, must_exist=True)
        tok = model.tokenizer
        turns = ([{"role": "system", "content": system}] if system is not None else []) + [
            {"role": "user", "content": prompt}]
        ids = tok.encode(prompt) if raw else tok.encode_chat(turns, enable_thinking=think)
        stream_reply(model, cache, ids, sampling, max_new_tokens)
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
    try:
        check_counts(max_new_tokens=max_new_tokens)
        check_cache_path(cache_file)
        sampling = sampling_params(temperature, top_k, top_p, repetition_penalty, seed)
        # One chat per cache file: a second would overwrite the first one's conversation.
        lock = lock_beside(cache_file, "edgekit chat") if cache_file is not None else None  # noqa: F841 (held)
        model = load_model(bundle, threads, max_context)
        if cache_file is not None and not cache_file.exists():
            typer.echo(f"new prompt cache {cache_file} (saved after every turn)", err=True)
        cache = open_cache(model, cache_file)
        if resume and cache_file is None:
            raise EdgekitError("--resume needs --cache FILE", "pass the cache file of the conversation to resume")
        latest = cache.latest("turn") if resume else None
        if resume and latest is None:
            raise EdgekitError(f"{cache_file} holds no conversation to resume", "start one without --resume")
        history = list(latest.tokens) if latest else []
        # A resumed conversation ends with a reply whose <|im_end|> was sampled but not folded in.
        tok = model.tokenizer
        pending = tok.encode("<|im_end|>\n") if latest else []
        if system and not latest:
            pending = tok.encode_chat([{"role": "system", "content": system}], add_generation_prompt=False)
        typer.echo("edgekit chat: empty line or Ctrl-D to quit", err=True)
        while True:
            try:
                line = input("> ")
            except EOFError:
                break
            except UnicodeDecodeError:
                raise EdgekitError("the input is not valid UTF-8 text", "type or pipe UTF-8 text") from None
            if not line.strip():
                break
            opening = history + pending  # a system prompt marks a checkpoint of its own
            marks = [(len(opening), "system")] if system and not history else []
            turn = tok.encode_chat([{"role": "user", "content": line}], enable_thinking=think)
            state = stream_reply(model, cache, opening + turn, sampling, max_new_tokens, marks)
            cache.add(state, "turn")  # the next turn starts here: nothing of this one is recomputed
            if cache_file is not None:
                cache.save(cache_file)
            history = list(state.tokens)
            pending = tok.encode("<|im_end|>\n")  # close the reply: its stop token was sampled, not folded in
    except EdgekitError as err:
        fail(err)
