"""What every exporter shares: target defaults, the progress display, and the bundle's common parts
(tokenizer file, state spec, the manifest fields that do not depend on the backend)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

import edgekit
from edgekit import vision_preprocess as vp
from edgekit.bundle import is_replaceable
from edgekit.config import TextConfig
from edgekit.errors import EdgekitError
from edgekit.export.checkpoint import Checkpoint
from edgekit.export.quantize import BLOCK_SIZES
from edgekit.export.qwen3_5_vision_onnx import VisionConfig
from edgekit.export.tokenizer_files import build_tokenizer_json
from edgekit.files import check_writable_folder
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
    if max_context is not None:
        if max_context < 1:
            raise EdgekitError(f"--max-context must be at least 1 (got {max_context})", "pass a number of tokens")
        runtime["max_context"] = max_context
    return runtime


def check_block_size(config: dict[str, Any], block_size: int, text: bool, vision: bool) -> None:
    """Refuse a block size the quantizer cannot use on this model (before the checkpoint is loaded):
    one of ``BLOCK_SIZES``, dividing the in-features of every quantized matrix (text and/or vision)."""
    if not (text or vision):
        return
    if block_size not in BLOCK_SIZES:
        raise EdgekitError(f"unknown block size {block_size}", f"use --block-size {', '.join(map(str, BLOCK_SIZES))}")
    dims = {}
    if text:
        cfg = TextConfig.from_hf(config)
        dims.update({"hidden_size": cfg.hidden_size, "intermediate_size": cfg.intermediate_size,
                     "attention heads x head_dim": cfg.num_attention_heads * cfg.head_dim,
                     "DeltaNet value heads x dim": cfg.linear_num_value_heads * cfg.linear_value_head_dim})
    if vision and isinstance(config.get("vision_config"), dict):
        v = config["vision_config"]
        dims.update({f"vision {k}": v[k] for k in ("hidden_size", "intermediate_size") if isinstance(v.get(k), int)})
    odd = [f"{name} {k}" for name, k in dims.items() if k % block_size]
    if odd:
        fits = [b for b in BLOCK_SIZES if all(k % b == 0 for k in dims.values())]
        raise EdgekitError(f"--block-size {block_size} does not divide this model's {', '.join(odd)}",
                           f"use --block-size {' or '.join(map(str, fits))}" if fits else "export with --quant fp32")


def check_out(out: Path, overwrite: bool) -> None:
    """Refuse an existing ``out`` unless ``overwrite`` and it is an edgekit bundle (never a user's folder);
    and an output place that cannot be written, before the checkpoint is loaded."""
    if out.exists() and not overwrite:
        raise EdgekitError(f"{out} already exists", "choose another -o folder or pass --overwrite")
    if out.exists() and not is_replaceable(out):
        raise EdgekitError(f"{out} is not an edgekit bundle (it holds other files), so --overwrite will not "
                           "delete it", "choose another -o folder, or remove it yourself")
    check_writable_folder(out.parent, "bundle")


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
