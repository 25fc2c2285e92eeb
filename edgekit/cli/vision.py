"""``edgekit describe``: answer a prompt about images."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer

from edgekit.cli.app import app, fail
from edgekit.cli.options import (MAX_CONTEXT, REPETITION_PENALTY, SEED, TEMPERATURE, THINK, THREADS, TOP_K, TOP_P,
                                 load_model, sampling_params)
from edgekit.cli.streaming import stream
from edgekit.errors import EdgekitError


@app.command()
def describe(
    bundle: Path = typer.Argument(..., help="Bundle folder (exported with its vision tower)."),
    images: list[Path] = typer.Argument(..., help="One or more image files (JPEG, PNG, WebP, BMP)."),
    prompt: str = typer.Option("Describe this image.", "-p", "--prompt"),
    max_new_tokens: int = typer.Option(128, "-n", "--max-new-tokens"),
    max_pixels: Optional[int] = typer.Option(None, "--max-pixels", help="Resize each image to at most this many "
                                             "pixels (e.g. 200704 = 448x448: 196 tokens); default: the bundle's."),
    think: bool = THINK, temperature: float = TEMPERATURE, top_k: int = TOP_K, top_p: float = TOP_P,
    repetition_penalty: float = REPETITION_PENALTY, seed: Optional[int] = SEED,
    threads: Optional[int] = THREADS, max_context: Optional[int] = MAX_CONTEXT,
) -> None:
    """Answer a prompt about images, streaming tokens to stdout and timings to stderr."""
    from edgekit.bundle import Bundle
    from edgekit.multimodal import image_budget, image_prompt_rows
    from edgekit.runtimes.vision import load_image
    from edgekit.tokenizer import render_chat

    try:
        sampling = sampling_params(temperature, top_k, top_p, repetition_penalty, seed)
        manifest = Bundle.open(bundle).manifest  # cheap checks first: the models load only for valid input
        spec = manifest.vision
        budget = image_budget(spec, max_pixels)
        pixels = [load_image(path) for path in images]
        needed = image_prompt_rows(spec, budget, [p.shape[:2] for p in pixels])
        context = max_context or manifest.runtime.max_context
        if needed > context:
            raise EdgekitError(f"the image{'s' if len(images) > 1 else ''} need {needed} tokens but the context "
                               f"budget is {context}",
                               "pass --max-pixels (e.g. 200704 for 448x448) or a larger --max-context")
        model = load_model(bundle, threads, max_context)
        encoder = model.vision
        start = time.perf_counter()
        parts: list = ["<|im_start|>user\n"]
        for image in pixels:
            parts.append(encoder.encode_image(image, **budget))
        encoded = time.perf_counter()
        parts.append(render_chat([{"role": "user", "content": prompt}], enable_thinking=think)
                     .removeprefix("<|im_start|>user\n"))
        state = model.new_state()
        logits = model.prefill_multimodal(state, parts)
        vision_tokens = sum(p.embeds.shape[0] for p in parts[1:-1])
        stream(model, state, logits, sampling, max_new_tokens, start,
                f"{len(images)} image{'s' if len(images) > 1 else ''} ({vision_tokens} vision tokens, encoded in "
                f"{(encoded - start) * 1000:.0f} ms), {state.length - vision_tokens} text tokens")
    except EdgekitError as err:
        fail(err)
