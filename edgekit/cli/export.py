"""``edgekit export``: a checkpoint to an ONNX or ExecuTorch bundle (build host: needs the export extra)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from edgekit.cli.app import app, fail
from edgekit.errors import EdgekitError


@app.command()
def export(
    model: str = typer.Argument(..., help="Hub id (Qwen/Qwen3.5-0.8B), checkpoint folder, or built-in: "
                                          "tiny-random, random-0.8b, random-2b (random weights)."),
    out: Path = typer.Option(..., "-o", "--out", help="Bundle folder to write."),
    format: Optional[str] = typer.Option(None, "--format",
                                         help="onnx or executorch (.pte, XNNPACK). Default: executorch for "
                                              "--target android, else onnx."),
    quant: Optional[str] = typer.Option(None, "--quant", help="onnx: int4 (default) or fp32; executorch: 8da4w "
                                                             "(default) or fp32. fp32 is for parity checks."),
    block_size: int = typer.Option(32, "--block-size", help="int4 block (group) size: 32, 64 or 128. 128 gives "
                                                             "a 22-25% lower peak and faster decoding on onnxruntime, "
                                                             "with coarser rounding (docs/memory.md)."),
    target: str = typer.Option("cpu", "--target", help="cpu, rpi or android: sets context/chunk defaults."),
    max_context: Optional[int] = typer.Option(None, "--max-context", help="Context budget (tokens)."),
    contrib_ops: bool = typer.Option(True, "--contrib-ops/--standard-ops",
                                     help="DeltaNet via onnxruntime contrib ops, or standard ONNX only (slower)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing bundle folder."),
    vision: bool = typer.Option(True, "--vision/--no-vision", help="Include the vision tower (vision.onnx, or "
                                "the .pte's vision_encoder method) when the checkpoint has one."),
    vision_quant: Optional[str] = typer.Option(None, "--vision-quant", help="onnx: vision tower weights int8 "
                                               "(default), int4 or fp32 (default with --quant fp32)."),
    vision_size: Optional[int] = typer.Option(None, "--vision-size", help="executorch: the vision_encoder's frame "
                                              "size S (S x S, a multiple of 32: (S/32)^2 tokens per frame pair; "
                                              "default 224)."),
) -> None:
    """Export a Qwen3.5 checkpoint to a bundle folder."""
    format = format or ("executorch" if target == "android" else "onnx")
    try:
        if format == "onnx":
            from edgekit.export.onnx_export import export_onnx

            if vision_size is not None:
                raise EdgekitError("--vision-size is for --format executorch (an ONNX tower takes any frame size)",
                                   "leave it out, or pass --format executorch")

            quant = quant or "int4"
            bundle = export_onnx(model, out, quant=quant, block_size=block_size, target=target,
                                 contrib_ops=contrib_ops, max_context=max_context, overwrite=overwrite,
                                 vision=vision, vision_quant=vision_quant)
        elif format == "executorch":
            if vision_quant is not None:
                raise EdgekitError("--vision-quant is for --format onnx (a .pte tower is 8da8w, or fp32 with "
                                   "--quant fp32)", "leave it out, or pass --format onnx")
            quant = quant or "8da4w"
            bundle = _export_executorch()(model, out, quant=quant, block_size=block_size, target=target,
                                          max_context=max_context, overwrite=overwrite, vision=vision,
                                          vision_size=vision_size or 224)
        else:
            raise EdgekitError(f"unknown format {format!r}", "use --format onnx or --format executorch")
    except EdgekitError as err:
        fail(err)
    total = sum(f.bytes for f in bundle.manifest.files.values())
    typer.echo(f"wrote {out} ({total / 2**20:.1f} MiB, {format}, {quant}, target {target})")


def _export_executorch():
    try:
        from edgekit.export.executorch_export import export_executorch
    except ImportError as err:
        raise EdgekitError(f"--format executorch needs {err.name}, which is not installed",
                           "pip install 'edgekit[export,executorch]'") from None
    return export_executorch
