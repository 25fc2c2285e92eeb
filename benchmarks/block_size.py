"""What the int4 block size trades: memory, load time and speed against logit error, per block size.

    python benchmarks/block_size.py --model random-0.8b --runs 3            # blocks 32, 64 and 128
    python benchmarks/block_size.py --model random-2b --blocks 32,128 --runs 2

Each block size is an int4 ONNX export of the built-in random model (``edgekit export --block-size``, cached
under ``benchmarks/.cache/<model>/block-<size>`` while the exporter is unchanged). onnxruntime re-lays each
block of ``MatMulNBits`` weights out for this CPU with a float scale and (on x86, for int8 activations) a
float block sum beside the packed nibbles, so larger blocks carry fewer floats a weight: the packed copy, which
a decode step reads whole, is 0.75 bytes a weight at block 32, 0.625 at 64 and 0.5625 at 128.

Memory: ``edgekit.device.memory_profile`` in a fresh interpreter per run (load, a 128-token prefill, 64 greedy
steps, 2 threads, the bundle's default context), block sizes interleaved (32 64 128 32 64 128 ...).
Error, on the same random weights: (1) the weights' own: the relative RMS error of the int4 round trip over
every matrix the exporter quantizes (Gaussian weights, without a trained checkpoint's outliers, so this
understates what a larger block costs on a real one); (2) the runtime's: the bundle's logits against
transformers in fp32 running those same rounded weights, teacher-forced one token at a time over 128 random
ids (top-1 agreement, relative logit error: onnxruntime's int8 activations and kernels, at each block size).
Logits against the unrounded fp32 weights say nothing here: a random 24-layer net is so sensitive to any
perturbation that block 32 already agrees on ~3% of top-1 tokens there (relative error ~0.96), and so does
transformers itself given the rounded weights. Neither number measures quality on a trained checkpoint.
Results: ``benchmarks/results/block-size-<model>.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.device.memory_profile import stages_in_child
from edgekit.files import atomic_write_text

from machine import exporter_fingerprint, machine_info, versions  # beside this script
from memory import cell, machine_lines, run_cells, summarize

HERE = Path(__file__).resolve().parent
PACKED_BYTES_PER_WEIGHT = {32: 0.75, 64: 0.625, 128: 0.5625}  # x86 MLAS, accuracy_level 4 (see the module doc)


def bundle(model: str, block: int) -> Path:
    """The int4 ONNX bundle of ``model`` at ``block``, exported once per exporter version."""
    folder = HERE / ".cache" / model / f"block-{block}"
    stamp = folder.with_name(f"block-{block}.exporter")
    fingerprint = exporter_fingerprint("edgekit")
    if not (folder / "manifest.json").is_file() or not stamp.is_file() or stamp.read_text() != fingerprint:
        from edgekit.export.onnx_export import export_onnx

        print(f"exporting {model} at block {block}", file=sys.stderr, flush=True)
        export_onnx(model, folder, block_size=block, overwrite=True)
        atomic_write_text(stamp, fingerprint)
    return folder


def reference_logits(model: str, ids: list[int], block: int) -> tuple[np.ndarray, float]:
    """transformers' fp32 logits at every position of ``ids`` on the built-in export's weights, each weight the
    exporter quantizes replaced by its int4 round trip at ``block``; and those weights' relative RMS error."""
    import torch

    from edgekit.export.checkpoint import builtin_config, random_model
    from edgekit.export.quantize import dequantize_int4, quantize_int4

    hf = random_model(builtin_config(model), seed=0)
    text = hf.model.language_model
    weights = [m.weight for name, m in text.named_modules()  # the exporter keeps the DeltaNet gates in fp32
               if isinstance(m, torch.nn.Linear) and not name.endswith(("in_proj_a", "in_proj_b"))]
    weights.append(text.embed_tokens.weight)  # tied with the lm_head
    error = total = 0.0
    with torch.no_grad():
        for w in weights:
            exact = w.float().numpy()
            rounded = dequantize_int4(quantize_int4(exact, block))
            error, total = error + float(np.sum((rounded - exact) ** 2)), total + float(np.sum(exact ** 2))
            w.copy_(torch.from_numpy(rounded))
        logits = hf(input_ids=torch.tensor([ids])).logits[0].float().numpy()
    return logits, (error / total) ** 0.5


def logit_error(folder: Path, ids: list[int], ref: np.ndarray) -> dict[str, float]:
    """Top-1 agreement and relative logit error of the bundle against ``ref``, one token at a time."""
    import edgekit

    model = edgekit.load(folder, threads=2)
    state = model.new_state()
    ours = np.stack([model.step(state, t) for t in ids])
    return {"top1_agreement": float(np.mean(ours.argmax(-1) == ref.argmax(-1))),
            "relative_logit_error": float(np.linalg.norm(ours - ref) / np.linalg.norm(ref))}


def to_markdown(result: dict[str, Any]) -> str:
    lines = [f"# int4 block size: `{result['model']}` (ONNX)", "", *machine_lines(result),
             f"- Memory: {result['settings']['pp']}-token prefill, {result['settings']['tg']} greedy decode steps, "
             f"{result['settings']['threads']} threads, the bundle's default context; {result['runs']} runs per block "
             "size, interleaved, each a fresh process. Cells: median [min – max]",
             "- Error, on **random** weights (not a measure of quality on a trained checkpoint): weight error = "
             "relative RMS error of the int4 round trip; top-1 and logit error = the bundle against transformers fp32 "
             f"running the same rounded weights, teacher-forced over {result['settings']['error_positions']} positions",
             "",
             "| block | decoder file (MiB) | packed copy, est. (MiB) | peak, text (MiB) | RSS after decode (MiB) | "
             "anonymous | file-backed | load (s) | prefill (tok/s) | decode (tok/s) | weight error | "
             "top-1 vs transformers | relative logit error |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for block, r in result["blocks"].items():
        s, e = r["memory"], r["error"]
        if "error" in s:
            lines.append(f"| {block} | error: {s['error']} ||||||||||||")
            continue
        lines.append(f"| {block} | {r['decoder_file_mib']:.0f} | {r['packed_estimate_mib']:.0f} | "
                     f"{cell(s['peak_text_mib'])} | {run_cells(s)} | {e['weight_rms_error']:.4f} | "
                     f"{e['top1_agreement']:.3f} | {e['relative_logit_error']:.4f} |")
    lines += ["", "Packed copy, est.: the `MatMulNBits` weights times the bytes a weight onnxruntime's x86 "
              "int8-activation kernels keep (0.75 at block 32, 0.625 at 64, 0.5625 at 128).", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="random-0.8b", help="built-in random model (tiny-random: block 32 only)")
    parser.add_argument("--blocks", default="32,64,128")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--pp", type=int, default=128)
    parser.add_argument("--tg", type=int, default=64)
    parser.add_argument("--name", help="results file stem (default block-size-<model>)")
    args = parser.parse_args()
    blocks = [int(b) for b in args.blocks.split(",")]
    folders = {b: bundle(args.model, b) for b in blocks}
    ids = np.random.default_rng(2).integers(0, 248_000, 128).tolist()
    errors = {}
    for b in blocks:
        print(f"reference logits, block {b} (transformers, fp32, int4-rounded weights)", file=sys.stderr, flush=True)
        ref, weight_error = reference_logits(args.model, ids, b)
        errors[b] = {"weight_rms_error": weight_error, **logit_error(folders[b], ids, ref)}
    machine = machine_info()
    runs: dict[int, list[dict[str, Any]]] = {b: [] for b in blocks}
    for run in range(args.runs):
        for b in blocks:
            print(f"run {run + 1}/{args.runs}: block {b}", file=sys.stderr, flush=True)
            runs[b].append(stages_in_child(folders[b], threads=args.threads, pp=args.pp, tg=args.tg))
    machine["load_average_end"] = list(os.getloadavg())
    result: dict[str, Any] = {
        "benchmark": "block-size", "model": args.model, "date": datetime.now(timezone.utc).isoformat(),
        "machine": machine, "versions": versions(), "runs": args.runs,
        "settings": {"threads": args.threads, "pp": args.pp, "tg": args.tg, "error_positions": len(ids)},
        "blocks": {}, "raw": {str(b): r for b, r in runs.items()}}
    for b in blocks:
        weights = _matmul_weights(folders[b])
        result["blocks"][str(b)] = {
            "decoder_file_mib": (folders[b] / "decoder.onnx.data").stat().st_size / 2**20,
            "matmul_weights": weights, "packed_estimate_mib": weights * PACKED_BYTES_PER_WEIGHT[b] / 2**20,
            "memory": summarize(runs[b]), "error": errors[b]}
    stem = args.name or f"block-size-{args.model}"
    atomic_write_text(HERE / "results" / f"{stem}.json", json.dumps(result, indent=1) + "\n")
    atomic_write_text(HERE / "results" / f"{stem}.md", to_markdown(result))
    print(to_markdown(result))
    failed = [f"block {b}: {r['memory']['error']}" for b, r in result["blocks"].items() if "error" in r["memory"]]
    if failed:
        sys.exit("block_size: " + "; ".join(failed))


def _matmul_weights(folder: Path) -> int:
    """How many int4 weights the decoder's ``MatMulNBits`` nodes hold (K x N each)."""
    import onnx

    graph = onnx.load(folder / "decoder.onnx", load_external_data=False).graph
    total = 0
    for node in graph.node:
        if node.op_type == "MatMulNBits":
            attrs = {a.name: a.i for a in node.attribute}
            total += attrs["K"] * attrs["N"]
    return total


if __name__ == "__main__":
    main()
