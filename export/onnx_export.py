"""``edgekit export --format onnx``: checkpoint -> bundle folder (decoder.onnx, tokenizer.json, manifest.json)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgekit.bundle import Bundle
from edgekit.manifest import write_manifest
from edgekit.errors import EdgekitError
from edgekit.export.bundle_writer import (check_out, common_manifest, progress, runtime_defaults, vision_fields,
                                         write_tokenizer)
from edgekit.export.checkpoint import load_checkpoint, read_config
from edgekit.export.graph_builder import OPSET, GraphBuilder
from edgekit.export.qwen3_5_onnx import DecoderWriter, GraphOptions
from edgekit.export.qwen3_5_vision_onnx import INPUTS, OUTPUTS, VISION_QUANTS, VisionConfig, VisionWriter
from edgekit.files import atomic_dir


def export_onnx(model: str, out: str | Path, *, quant: str = "int4", block_size: int = 32, target: str = "cpu",
                contrib_ops: bool = True, max_context: int | None = None, overwrite: bool = False,
                show_progress: bool = True, vision: bool = True, vision_quant: str | None = None) -> Bundle:
    """Export ``model`` (hub id, checkpoint folder or built-in random name) to an ONNX bundle at ``out``.

    With ``vision`` (the default) a checkpoint's vision tower becomes ``vision.onnx``; its weights are
    ``vision_quant`` (default: fp32 when ``quant`` is fp32, else int8).
    """
    if quant not in ("int4", "fp32"):
        raise EdgekitError(f"unknown quantization {quant!r}", "use --quant int4 or --quant fp32")
    vision_quant = vision_quant or ("fp32" if quant == "fp32" else "int8")
    if vision_quant not in VISION_QUANTS:
        raise EdgekitError(f"unknown vision quantization {vision_quant!r}",
                           f"use --vision-quant {', '.join(VISION_QUANTS)}")
    runtime = runtime_defaults(target, max_context)
    out = Path(out)
    check_out(out, overwrite)
    opts = GraphOptions(quant=quant, block_size=block_size, contrib_ops=contrib_ops)
    read_config(model)  # fail on a wrong model before any progress is shown

    with progress() as bar:
        task = bar.add_task(f"loading {model}", total=None, visible=show_progress)
        ck = load_checkpoint(model)
        bar.update(task, total=1, completed=1)
        with atomic_dir(out, overwrite=overwrite) as tmp:
            layers = bar.add_task(f"writing decoder ({quant})", total=ck.text.num_layers, visible=show_progress)
            graph = GraphBuilder("decoder", tmp / "decoder.onnx.data")
            DecoderWriter(ck.text, ck.weight, graph, opts).build(on_layer=lambda i: bar.advance(layers))
            graph.save(tmp / "decoder.onnx")
            graphs = {"decoder": {"file": "decoder.onnx", "data": "decoder.onnx.data", "opset": OPSET,
                                  "contrib_ops": graph.uses_contrib,
                                  "deltanet": "contrib" if contrib_ops else "scan",
                                  "kv_update": "in_place" if contrib_ops else "append",
                                  "logits": "last"}}
            if vision and ck.vision:
                vcfg = VisionConfig.from_hf(ck.config)
                blocks = bar.add_task(f"writing vision tower ({vision_quant})", total=vcfg.depth,
                                      visible=show_progress)
                vgraph = GraphBuilder("vision", tmp / "vision.onnx.data")
                VisionWriter(vcfg, ck.vision_weight, vgraph, vision_quant, block_size).build(
                    on_block=lambda i: bar.advance(blocks))
                vgraph.save(tmp / "vision.onnx")
                graphs["vision"] = vision_spec(ck.config, vision_quant, block_size)
            tok = bar.add_task("tokenizer", total=1, visible=show_progress)
            write_tokenizer(ck, tmp)
            bar.update(tok, completed=1)
            sums = bar.add_task("checksums + manifest", total=1, visible=show_progress)
            manifest = write_manifest(tmp, {
                **common_manifest(ck, "onnx", target, runtime),
                "graphs": graphs,
                "quantization": ({"weights": "fp32"} if quant == "fp32" else {
                    "weights": "int4", "block_size": block_size, "symmetric": True,
                    "accuracy_level": opts.accuracy_level, "embedding": "int4, shared with the tied lm_head",
                    "kept_fp32": ["norms", "conv1d", "in_proj_a/b (DeltaNet gates)"]}),
            })
            bar.update(sums, completed=1)
    return Bundle(out, manifest)


def vision_spec(config: dict[str, Any], quant: str, block_size: int) -> dict[str, Any]:
    """The manifest's ``graphs.vision``: the graph, its I/O, and what the runtime needs to feed and prompt it."""
    return {"file": "vision.onnx", "data": "vision.onnx.data", "opset": OPSET, "inputs": INPUTS, "outputs": OUTPUTS,
            "weights": quant, **({"block_size": block_size} if quant != "fp32" else {}), **vision_fields(config)}
