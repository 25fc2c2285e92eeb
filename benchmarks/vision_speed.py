"""Vision tower latency per frame pair (preprocessing + vision.onnx) at 224x224 and 448x448.

    python benchmarks/vision_speed.py --model random-0.8b --runs 5    # the real measurement (0.8B-shaped tower)
    python benchmarks/vision_speed.py --model tiny-random --runs 2    # smoke (CI)

Builds only the vision tower of a built-in shape with random weights (transformers' initialisation), writes
``vision.onnx`` per weight type (fp32, int8, int4) with edgekit's exporter, and times one frame pair
(two different frames, the video path) after one warm-up: preprocessing (resize, normalize, patchify) and
the tower, median [min - max] of ``--runs``. Results: ``benchmarks/results/vision-<model>.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from edgekit.bundle import Bundle
from edgekit.export.checkpoint import BUILTIN, builtin_config
from edgekit.export.graph_builder import GraphBuilder
from edgekit.export.onnx_export import vision_spec
from edgekit.export.qwen3_5_vision_onnx import VISION_QUANTS, VisionConfig, VisionWriter
from edgekit.files import atomic_write_text
from edgekit.manifest import Fields, VisionSpec
from edgekit.runtimes.vision import VisionEncoder
from edgekit.vision_preprocess import preprocess_video

RESULTS = Path(__file__).parent / "results"


def random_tower(config: dict) -> dict[str, np.ndarray]:
    """The vision tower's weights (float32 numpy, keyed like ``blocks.0.attn.qkv.weight``), random, seed 0."""
    import torch
    from transformers import Qwen3_5Config
    from transformers.models.qwen3_5.modeling_qwen3_5 import Qwen3_5VisionModel

    torch.manual_seed(0)
    tower = Qwen3_5VisionModel(Qwen3_5Config(**config).vision_config).eval()
    return {name: value.detach().float().numpy() for name, value in tower.state_dict().items()}


def measure(encoder: VisionEncoder, size: int, runs: int) -> dict:
    rng = np.random.default_rng(size)
    frames = [(rng.random((size, size, 3)) * 255).astype(np.uint8) for _ in range(2)]
    prep, tower = [], []
    for i in range(runs + 1):  # the first run warms up
        start = time.perf_counter()
        pixels = preprocess_video(frames, size=(size, size))
        mid = time.perf_counter()
        out = encoder.encode(pixels, "video")
        end = time.perf_counter()
        if i:
            prep.append((mid - start) * 1000)
            tower.append((end - mid) * 1000)
    stat = lambda xs: {"median": statistics.median(xs), "min": min(xs), "max": max(xs)}  # noqa: E731
    return {"size": size, "tokens": out.embeds.shape[0], "preprocess_ms": stat(prep), "tower_ms": stat(tower)}


def to_markdown(result: dict) -> str:
    lines = [f"# Vision tower per frame pair: {result['model']}", "",
             f"{result['threads']} threads, {result['runs']} runs after a warm-up, median [min - max] ms.", "",
             "| weights | size | tokens | preprocess (ms) | tower (ms) | vision.onnx.data (MiB) |",
             "|---|---|---|---|---|---|"]
    for row in result["rows"]:
        p, t = row["preprocess_ms"], row["tower_ms"]
        lines.append(f"| {row['weights']} | {row['size']}x{row['size']} | {row['tokens']} | "
                     f"{p['median']:.1f} [{p['min']:.1f} - {p['max']:.1f}] | "
                     f"{t['median']:.1f} [{t['min']:.1f} - {t['max']:.1f}] | {row['data_mib']:.1f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="random-0.8b", choices=list(BUILTIN))
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--sizes", type=int, nargs="+", default=[224, 448])
    parser.add_argument("--weights", nargs="+", default=["int8", "fp32"], choices=VISION_QUANTS)
    args = parser.parse_args()

    config = builtin_config(args.model)
    weights = random_tower(config)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for quant in args.weights:
            folder = Path(tmp) / quant
            folder.mkdir()
            graph = GraphBuilder("vision", folder / "vision.onnx.data")
            VisionWriter(VisionConfig.from_hf(config), weights.__getitem__, graph, quant).build()
            graph.save(folder / "vision.onnx")
            # Only the tower: a manifest stand-in holding just its (checked) vision entry.
            spec = VisionSpec.parse(Fields(vision_spec(config, quant, 32), "graphs.vision"), "onnx")
            encoder = VisionEncoder(Bundle(folder, SimpleNamespace(vision=spec)), threads=args.threads)
            data_mib = (folder / "vision.onnx.data").stat().st_size / 2**20
            for size in args.sizes:
                row = {"weights": quant, "data_mib": data_mib, **measure(encoder, size, args.runs)}
                rows.append(row)
                print(f"{quant} {size}x{size}: {row['tokens']} tokens, preprocess {row['preprocess_ms']['median']:.1f} ms, "
                      f"tower {row['tower_ms']['median']:.1f} ms")
    result = {"model": args.model, "threads": args.threads, "runs": args.runs, "rows": rows}
    RESULTS.mkdir(exist_ok=True)
    atomic_write_text(RESULTS / f"vision-{args.model}.json", json.dumps(result, indent=2) + "\n")
    atomic_write_text(RESULTS / f"vision-{args.model}.md", to_markdown(result))


if __name__ == "__main__":
    main()
