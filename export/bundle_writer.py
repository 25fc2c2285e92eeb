"""What every exporter shares: target defaults, the progress display, and the bundle's common parts
(tokenizer file, state spec, the manifest fields that do not depend on the backend)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

import edgekit
from edgekit import vision_preprocess as vp
from edgekit.errors import EdgekitError
from edgekit.export.checkpoint import Checkpoint
from edgekit.export.qwen3_5_vision_onnx import VisionConfig
from edgekit.export.tokenizer_files import build_tokenizer_json
from edgekit.tokenizer import CHAT_TEMPLATE_ID

# Runtime defaults per target: the KV cache is preallocated to max_context, so phones and Pis get less.
TARGETS: dict[str, dict[str, int]] = {
    "cpu": {"max_context": 4096, "chunk_size": 256},
    "rpi": {"max_context": 2048, "chunk_size": 128},
    "android": {"max_context": 2048, "chunk_size": 128},
}


def runtime_defaults(target: str, max_context: int | None) -> dict[str, int]:
    if target not in TARGETS:
        raise EdgekitError(f"unknown target {target!r}", f"use one of: {', '.join(TARGETS)}")
    runtime = dict(TARGETS[target])
    if max_context:
        runtime["max_context"] = max_context
    return runtime


def check_out(out: Path, overwrite: bool) -> None:
    if out.exists() and not overwrite:
        raise EdgekitError(f"{out} already exists", "choose another -o folder or pass --overwrite")


def progress() -> Progress:
    return Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                    TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(), console=Console(stderr=True))


def write_tokenizer(ck: Checkpoint, folder: Path) -> None:
    """The checkpoint's own tokenizer.json, or the real Qwen3.5 one built offline."""
    if ck.tokenizer_json:
        (folder / "tokenizer.json").write_bytes(ck.tokenizer_json.read_bytes())
    else:
        build_tokenizer_json(folder / "tokenizer.json")


def state_spec(ck: Checkpoint) -> dict[str, Any]:
    cfg = ck.text
    shapes = cfg.state_shapes()
    return {
        "deltanet_layers": cfg.deltanet_layers,
        "attention_layers": cfg.attention_layers,
        "conv": {"shape": list(shapes["conv"]), "dtype": "float32", "layout": "batch,kernel-1,channels"},
        "recurrent": {"shape": list(shapes["recurrent"]), "dtype": "float32", "layout": "batch,heads,dk,dv"},
        "kv": {"row_shape": list(shapes["kv_row"]), "dtype": "float32", "layout": "batch,kv_heads,seq,head_dim"},
        "names": [f"{kind}.{i}" for kind, i in cfg.state_tensors()],
    }


def common_manifest(ck: Checkpoint, backend: str, target: str, runtime: dict[str, int]) -> dict[str, Any]:
    """The manifest fields every backend writes; the exporter adds ``graphs`` and ``quantization``."""
    return {
        "created_by": f"edgekit {edgekit.__version__}",
        "backend": backend,
        "target": target,
        "source": {"model": ck.model_id, "model_type": ck.config.get("model_type"), "config": ck.config},
        "state": state_spec(ck),
        "tokenizer": {"file": "tokenizer.json", "chat_template": CHAT_TEMPLATE_ID,
                      "eos_ids": _as_list(ck.generation.get("eos_token_id")),
                      "pad_id": ck.generation.get("pad_token_id")},
        "generation": {k: ck.generation[k] for k in ("temperature", "top_k", "top_p") if k in ck.generation},
        "runtime": runtime,
    }


def vision_fields(config: dict[str, Any]) -> dict[str, Any]:
    """The fields of ``graphs.vision`` every backend writes: what the runtime needs to feed and prompt the tower."""
    cfg = VisionConfig.from_hf(config)
    return {
        "patch_size": cfg.patch_size, "temporal_patch_size": cfg.temporal_patch_size,
        "merge_size": cfg.spatial_merge_size, "head_dim": cfg.head_dim, "rope_theta": cfg.rope_theta,
        "position_grid": cfg.grid_side, "out_hidden_size": cfg.out_hidden_size,
        "image": {"min_pixels": vp.IMAGE_MIN_PIXELS, "max_pixels": vp.IMAGE_MAX_PIXELS},
        "video": {"min_pixels": vp.VIDEO_MIN_PIXELS, "max_pixels": vp.VIDEO_MAX_PIXELS, "fps": 2},
        "token_ids": {name: config[f"{name}_token_id"] for name in ("image", "video", "vision_start", "vision_end")},
    }


def _as_list(value) -> list[int]:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]
