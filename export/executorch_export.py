"""``edgekit export --format executorch``: checkpoint -> bundle folder (model.pte, tokenizer.json, manifest.json).

The decoder (export/qwen3_5_executorch.py) is exported with ``torch.export`` for a dynamic number of new
tokens T in [1, chunk_size], its linear layers quantized by torchao (8-bit dynamic activations, int4
weights per group: "8da4w"), the embedding as a 4-bit table, and lowered to XNNPACK. Three methods
share the state buffers (``forward``, ``get_state``, ``set_state``), plus constant methods that let an
app read the limits without the manifest.

With a vision tower in the checkpoint (and ``vision``), two more methods: ``forward_rows`` (the decoder
over token or vision rows with mRoPE positions, on the same state) and ``vision_encoder`` (one frame
pair of a size fixed at export -> vision rows; see export/qwen3_5_vision_executorch.py), its linear
layers int8 ("8da8w") when the decoder is 8da4w. The manifest's ``graphs.vision`` carries the
pre-tokenized camera prompt, so an app needs no tokenizer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from edgekit.bundle import Bundle, is_replaceable
from edgekit.manifest import write_manifest
from edgekit.errors import EdgekitError
from edgekit.export.bundle_writer import (
    check_block_size,
    check_out,
    common_manifest,
    progress,
    runtime_defaults,
    vision_fields,
    write_tokenizer,
)
from edgekit.export.checkpoint import Checkpoint, load_checkpoint, read_config
from edgekit.export.phases import Phases
from edgekit.export.qwen3_5_executorch import ForwardRows, Qwen35Decoder, StateIO
from edgekit.export.qwen3_5_vision_executorch import VisionTower
from edgekit.export.qwen3_5_vision_onnx import VisionConfig
from edgekit.export.xnnpack_lowering import lower
from edgekit.files import atomic_dir
from edgekit.manifest import VisionTokens
from edgekit.multimodal import camera_prompt
from edgekit.tokenizer import Tokenizer
from edgekit.vision_preprocess import FACTOR

# The ExecuTorch kernels outside XNNPACK a runtime must have linked in (the Android app checks them before loading).
REQUIRED_OPS = ["llama::custom_sdpa", "llama::update_cache", "llama::gated_delta_rule"]
EMBEDDING_4BIT_OP = "quantized_decomposed::embedding_4bit"


def build_decoder(ck: Checkpoint, quant: str, block_size: int, max_context: int) -> Qwen35Decoder:
    """The torch decoder with its weights, quantized layer by layer when ``quant`` is ``8da4w``.

    Each checkpoint tensor leaves ``ck.tensors`` as the module takes it (converted to float32), and each
    layer is quantized as soon as it is built: neither a second float copy of the model nor the checkpoint's
    copy of the layers already built stays around.
    """
    finish = None
    if quant == "8da4w":
        from torchao.quantization.granularity import PerGroup

        # The DeltaNet beta/decay projections stay fp32, as in the ONNX bundle.
        def finish(module: torch.nn.Module) -> None:
            _quantize_linears(module, torch.int4, PerGroup(block_size), lambda fqn: not fqn.endswith("in_proj_ba"))
    return Qwen35Decoder(ck.text, lambda name: ck.tensors.pop(name).detach().float(), max_context,
                         embedding_block_size=block_size if quant == "8da4w" else None, finish=finish).eval()


def build_vision(ck: Checkpoint, quant: str, size: int) -> VisionTower:
    """The vision tower for S x S frame pairs; its linear layers int8 (per channel) when ``quant`` is 8da4w
    (int4 weights cost the tower ~12% error in the ONNX bundle), quantized block by block as they are built."""
    finish = None
    if quant == "8da4w":
        from torchao.quantization.granularity import PerAxis

        def finish(module: torch.nn.Module) -> None:
            _quantize_linears(module, torch.int8, PerAxis(0), lambda fqn: True)
    return VisionTower(VisionConfig.from_hf(ck.config), lambda name: ck.vision.pop(name).detach().float(), size,
                       finish).eval()


ROWS_AT_ONCE = 16384  # torchao's float temporaries are a few times the weight: the tied head's is 1-2 GB


def _quantize_linears(module: torch.nn.Module, weight_dtype: torch.dtype, granularity, keep) -> None:
    """torchao in place: 8-bit dynamic activations, ``weight_dtype`` weights, on the nn.Linear layers ``keep``
    takes. A layer of more than ``ROWS_AT_ONCE`` output rows (the vocabulary head) is quantized a block of
    rows at a time; the groups lie along a row, so the result is the one whole-matrix quantization gives."""
    from torchao.quantization import Int8DynamicActivationIntxWeightConfig, quantize_

    config = Int8DynamicActivationIntxWeightConfig(weight_dtype=weight_dtype, weight_granularity=granularity)
    chosen = [m for fqn, m in module.named_modules() if isinstance(m, torch.nn.Linear) and keep(fqn)]
    whole = {id(m) for m in chosen if m.out_features <= ROWS_AT_ONCE}
    quantize_(module, config, lambda m, fqn: id(m) in whole)
    for layer in (m for m in chosen if id(m) not in whole):
        parts = []
        for start in range(0, layer.out_features, ROWS_AT_ONCE):
            rows = layer.weight[start:start + ROWS_AT_ONCE]
            piece = torch.nn.Linear(rows.shape[1], rows.shape[0], bias=False)
            piece.weight = torch.nn.Parameter(rows, requires_grad=False)
            quantize_(piece, config)
            parts.append(piece.weight)
        first = parts[0]
        layer.weight = torch.nn.Parameter(type(first)(
            *(torch.cat([getattr(p, name) for p in parts]) for name in ("qdata", "scale", "zero_point")),
            first.target_dtype, first.block_size, first.dtype, first.activation_quantization), requires_grad=False)


def export_programs(decoder: Qwen35Decoder, chunk_size: int, tower: VisionTower | None = None,
                    phases: Phases | None = None) -> dict[str, torch.export.ExportedProgram]:
    """``forward`` with a dynamic token count, the two state methods, and with a ``tower`` ``forward_rows``
    and ``vision_encoder``, as exported programs (each a phase on ``phases``)."""
    seq = torch.export.Dim("tokens", min=1, max=chunk_size)
    reader, writer = StateIO(decoder, write=False), StateIO(decoder, write=True)
    calls = {"forward": (decoder, (torch.zeros(1, 2, dtype=torch.long), torch.tensor([0])), ({1: seq}, None))}
    if tower is not None:
        rows = (torch.zeros(1, 2, dtype=torch.long), torch.zeros(1, 2, decoder.cfg.hidden_size),
                torch.zeros(3, 2, dtype=torch.long), torch.tensor([0]))
        calls["forward_rows"] = (ForwardRows(decoder), rows, ({1: seq}, {1: seq}, {1: seq}, None))
        calls["vision_encoder"] = (tower, (torch.zeros(2, 3, tower.size, tower.size),), None)
    with torch.no_grad():
        calls["get_state"] = (reader, (), None)
        calls["set_state"] = (writer, tuple(reader()), None)
        programs = {}
        for name, (module, example, dynamic) in calls.items():
            if phases is not None:
                phases.start(f"torch.export: {name}")
            programs[name] = torch.export.export(module, example, dynamic_shapes=dynamic, strict=False)
    return programs


def export_executorch(model: str, out: str | Path, *, quant: str = "8da4w", block_size: int = 32,
                      target: str = "android", max_context: int | None = None, overwrite: bool = False,
                      show_progress: bool = True, vision: bool = True, vision_size: int = 224) -> Bundle:
    """Export ``model`` (hub id, checkpoint folder or built-in random name) to an ExecuTorch bundle at ``out``.

    With ``vision`` (the default) a checkpoint's vision tower becomes the ``vision_encoder`` method for
    ``vision_size`` x ``vision_size`` frame pairs (a multiple of 32), and ``forward_rows`` takes its rows.
    """
    if quant not in ("8da4w", "fp32"):
        raise EdgekitError(f"unknown quantization {quant!r} for ExecuTorch", "use --quant 8da4w or --quant fp32")
    if vision_size < FACTOR or vision_size % FACTOR:
        raise EdgekitError(f"--vision-size {vision_size} is not a positive multiple of {FACTOR}",
                           "pass e.g. --vision-size 224 (49 tokens per frame pair) or 448 (196)")
    runtime = runtime_defaults(target, max_context)
    out = Path(out)
    check_out(out, overwrite)
    config = read_config(model)  # fail on a wrong model or block size before any progress is shown
    check_block_size(config, block_size, text=quant == "8da4w", vision=False)  # the tower is per channel

    with progress() as bar:
        phases = Phases(bar, visible=show_progress)
        try:
            phases.start(f"loading {model}")
            ck = load_checkpoint(model)
            phases.start(f"building the decoder ({quant})")
            decoder = build_decoder(ck, quant, block_size, runtime["max_context"])
            tower = None
            if vision and ck.vision:
                phases.start(f"building the vision tower ({quant})")
                tower = build_vision(ck, quant, vision_size)
            ck.tensors.clear()  # the modules hold their own (quantized) weights: free the checkpoint before lowering
            ck.vision.clear()
            programs = export_programs(decoder, runtime["chunk_size"], tower, phases)
            methods = list(programs)
            common = common_manifest(ck, "executorch", target, runtime)
            pte = lower(programs, {"get_max_context_len": runtime["max_context"],
                                   "get_max_seq_len": runtime["chunk_size"], "get_vocab_size": ck.text.vocab_size,
                                   "get_eos_ids": common["tokenizer"]["eos_ids"], "use_kv_cache": True,
                                   "enable_dynamic_shape": True, "get_bos_id": -1, "get_n_layers": ck.text.num_layers},
                        phases)
            phases.start("writing the bundle")
            with atomic_dir(out, overwrite=overwrite, replaceable=is_replaceable) as tmp:
                (tmp / "model.pte").write_bytes(pte)
                write_tokenizer(ck, tmp)
                graphs = {"decoder": {"file": "model.pte", "methods": [m for m in methods if m != "vision_encoder"],
                                      "delegate": "xnnpack", "max_tokens_per_call": runtime["chunk_size"],
                                      "kv_update": "resident", "logits": "last"}}
                if tower is not None:
                    graphs["vision"] = vision_spec(ck.config, quant, tower, Tokenizer.from_file(tmp / "tokenizer.json"))
                phases.stop()
                manifest = write_manifest(tmp, {
                    **common,
                    "graphs": graphs,
                    "required_ops": REQUIRED_OPS + ([EMBEDDING_4BIT_OP] if quant == "8da4w" else []),
                    "quantization": ({"weights": "fp32"} if quant == "fp32" else {
                        "weights": "8da4w", "block_size": block_size, "symmetric": True,
                        "activations": "int8, dynamic per token",
                        "embedding": "int4 table (a second copy: the tied lm_head is quantized by torchao)",
                        "kept_fp32": ["norms", "conv1d", "in_proj_a/b (DeltaNet gates)"]}),
                    "export": phases.summary(),
                })
        finally:
            phases.stop()
    return Bundle(out, manifest)


def vision_spec(config: dict[str, Any], quant: str, tower: VisionTower, tokenizer: Tokenizer) -> dict[str, Any]:
    """The manifest's ``graphs.vision`` for the ``vision_encoder`` method, with the camera prompt."""
    size, tokens = tower.size, tower.tokens
    fields = vision_fields(config)
    return {
        "file": "model.pte", "method": "vision_encoder", "frame_size": [size, size],
        "grid": [1, size // tower.cfg.patch_size, size // tower.cfg.patch_size], "tokens_per_pair": tokens,
        "input": f"pixels float32 [2, 3, {size}, {size}]: one frame pair, RGB 0..255",
        "output": f"embeds float32 [{tokens}, {tower.cfg.out_hidden_size}]",
        "weights": "fp32" if quant == "fp32" else "8da8w",
        "quantization": {"weights": "fp32"} if quant == "fp32" else {
            "weights": "int8, per output channel, symmetric", "activations": "int8, dynamic per token",
            "kept_fp32": ["patch embedding", "layer norms", "position table"]},
        **fields,
        "camera_prompt": camera_prompt(tokenizer, VisionTokens(**fields["token_ids"])),
    }
