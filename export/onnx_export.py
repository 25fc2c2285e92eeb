"""``edgekit export --format onnx``: checkpoint -> bundle folder (decoder.onnx, tokenizer.json, manifest.json)."""

from __future__ import annotations

from pathlib import Path

from edgekit.bundle import Bundle, write_manifest
from edgekit.errors import EdgekitError
from edgekit.export.bundle_writer import check_out, common_manifest, progress, runtime_defaults, write_tokenizer
from edgekit.export.checkpoint import load_checkpoint, read_config
from edgekit.export.graph_builder import OPSET, GraphBuilder
from edgekit.export.qwen3_5_onnx import DecoderWriter, GraphOptions
from edgekit.files import atomic_dir


def export_onnx(model: str, out: str | Path, *, quant: str = "int4", block_size: int = 32, target: str = "cpu",
                contrib_ops: bool = True, max_context: int | None = None, overwrite: bool = False,
                show_progress: bool = True) -> Bundle:
    """Export ``model`` (hub id, checkpoint folder or built-in random name) to an ONNX bundle at ``out``."""
    if quant not in ("int4", "fp32"):
        raise EdgekitError(f"unknown quantization {quant!r}", "use --quant int4 or --quant fp32")
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
            tok = bar.add_task("tokenizer", total=1, visible=show_progress)
            write_tokenizer(ck, tmp)
            bar.update(tok, completed=1)
            sums = bar.add_task("checksums + manifest", total=1, visible=show_progress)
            manifest = write_manifest(tmp, {
                **common_manifest(ck, "onnx", target, runtime),
                "graphs": {"decoder": {"file": "decoder.onnx", "data": "decoder.onnx.data", "opset": OPSET,
                                       "contrib_ops": graph.uses_contrib,
                                       "deltanet": "contrib" if contrib_ops else "scan",
                                       "kv_update": "in_place" if contrib_ops else "append",
                                       "logits": "last"}},
                "quantization": ({"weights": "fp32"} if quant == "fp32" else {
                    "weights": "int4", "block_size": block_size, "symmetric": True,
                    "accuracy_level": opts.accuracy_level, "embedding": "int4, shared with the tied lm_head",
                    "kept_fp32": ["norms", "conv1d", "in_proj_a/b (DeltaNet gates)"]}),
            })
            bar.update(sums, completed=1)
    return Bundle(out, manifest)

