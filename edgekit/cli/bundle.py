"""``edgekit info`` and ``edgekit verify``: what a bundle holds, and whether it is intact."""

from __future__ import annotations

from pathlib import Path

import typer

from edgekit.cli.app import app, fail
from edgekit.errors import EdgekitError


@app.command()
def info(bundle: Path = typer.Argument(..., help="Bundle folder.")) -> None:
    """Show what a bundle holds: model, format, quantization, sizes, state and context budget."""
    from edgekit.bundle import Bundle

    try:
        b = Bundle.open(bundle)
    except EdgekitError as err:
        fail(err)
    m, cfg = b.manifest, b.text_config
    fixed, per_token = cfg.state_bytes()
    typer.echo(f"bundle      {b.path}  (format {m.data['format_version']}, {m.created_by}, id {b.digest})")
    typer.echo(f"model       {m.model}  hidden {cfg.hidden_size}, {cfg.num_layers} layers "
               f"({len(cfg.deltanet_layers)} DeltaNet + {len(cfg.attention_layers)} attention), vocab {cfg.vocab_size}")
    how = (f"DeltaNet ops: {m.decoder.deltanet}" if m.backend == "onnx"
           else f"{m.decoder.delegate} delegate, needs ops {', '.join(m.required_ops)}")
    typer.echo(f"backend     {m.backend}, target {m.target}, {how}")
    typer.echo(f"weights     {m.quantization['weights']}"
               + (f", block {m.quantization['block_size']}" if "block_size" in m.quantization else ""))
    if m.has_vision:
        v = m.vision
        typer.echo(f"vision      {v.weights} weights, patch {v.patch_size} x {v.temporal_patch_size} frames, "
                   f"one token per {v.patch_size * v.merge_size}x{v.patch_size * v.merge_size} pixels"
                   + (f", frames fixed at {v.frame_size[0]}x{v.frame_size[1]}" if v.frame_size else ""))
    typer.echo(f"state       {fixed / 2**20:.2f} MiB fixed (DeltaNet) + {per_token / 1024:.1f} KiB per token (KV)")
    typer.echo(f"context     {m.runtime.max_context} tokens, prefill chunk {m.runtime.chunk_size}")
    typer.echo(f"eos ids     {list(m.tokenizer.eos_ids)}, chat template {m.tokenizer.chat_template}")
    for name, f in m.files.items():
        typer.echo(f"file        {name:24s} {f.bytes / 2**20:9.1f} MiB  sha256 {f.sha256[:12]}")


@app.command()
def verify(bundle: Path = typer.Argument(..., help="Bundle folder.")) -> None:
    """Check checksums, the graph's opset, and that the graph's state matches the config."""
    from edgekit.bundle import Bundle

    try:
        b = Bundle.open(bundle)
        problems = b.verify_files()
        if not problems:
            from edgekit.runtimes import open_decoder

            # Loads the graph or program and checks its state I/O against the config. No thread count: resizing
            # ExecuTorch's process-wide pool would break programs the caller may have loaded in this process.
            decoder = open_decoder(b)
            if b.manifest.has_vision:
                from edgekit.runtimes.model import open_vision_encoder

                open_vision_encoder(b, decoder)  # loads vision.onnx (inputs checked) or the .pte method
    except EdgekitError as err:
        fail(err)
    if problems:
        for p in problems:
            typer.echo(f"FAIL {p}", err=True)
        raise typer.Exit(1)
    graphs = " and ".join(b.manifest.graphs)
    typer.echo(f"ok: {len(b.manifest.files)} files match their checksums; graphs load ({graphs}); "
               "state matches the config")
