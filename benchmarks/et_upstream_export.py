"""A Hugging Face Qwen3.5 checkpoint folder to a .pte by ExecuTorch's own example, ``examples/models/qwen3_5``.

    python benchmarks/et_upstream_export.py CHECKPOINT OUT_FOLDER --max-context 2100

Follows the example's README: its weight converter (``examples.models.qwen3_5.convert_weights``), a params file
in the Llama example's format written from the checkpoint's ``config.json`` (the example ships one per published
size; this one matches the checkpoint at hand), and ``extension.llm.export.export_llm`` with the example's
``qwen3_5_xnnpack_fp32.yaml`` (static shape: one token per call), quantized 8da4w with group 32 and a 4-bit
embedding like edgekit's .pte; HQQ off (on by default, it doubles the export time and does not change the speed).
Writes ``OUT_FOLDER/model.pte``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path


def llama_params(text: dict) -> dict:
    """The Llama example's ``ModelArgs`` fields for a Qwen3.5 text config (as in the example's 0_8b_config.json)."""
    return {
        "dim": text["hidden_size"], "hidden_dim": text["intermediate_size"], "n_heads": text["num_attention_heads"],
        "head_dim": text["head_dim"], "n_kv_heads": text["num_key_value_heads"], "n_layers": text["num_hidden_layers"],
        "norm_eps": text["rms_norm_eps"], "rope_theta": text["rope_parameters"]["rope_theta"],
        "use_scaled_rope": False, "vocab_size": text["vocab_size"], "use_hf_rope": True,
        "partial_rotary_factor": text["rope_parameters"]["partial_rotary_factor"], "attention_qkv_bias": False,
        "use_qk_norm": True, "qk_norm_before_rope": True, "attention_type": "mha", "use_q_gate": True,
        "rms_norm_add_unit_offset": True, "linear_conv_kernel_dim": text["linear_conv_kernel_dim"],
        "linear_key_head_dim": text["linear_key_head_dim"], "linear_value_head_dim": text["linear_value_head_dim"],
        "linear_num_key_heads": text["linear_num_key_heads"], "linear_num_value_heads": text["linear_num_value_heads"],
        "layer_types": text["layer_types"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--max-context", type=int, required=True)
    args = parser.parse_args()

    import executorch
    from executorch.examples.models.qwen3_5.convert_weights import convert_weights

    example = Path(executorch.__path__[0]) / "examples" / "models" / "qwen3_5" / "config"
    config = json.loads((args.checkpoint / "config.json").read_text())
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=args.out) as work:
        params, weights = Path(work) / "params.json", Path(work) / "model.pth"
        params.write_text(json.dumps(llama_params(config.get("text_config", config))))
        convert_weights(str(args.checkpoint), str(weights))
        subprocess.run([
            sys.executable, "-m", "executorch.extension.llm.export.export_llm",
            "--config", str(example / "qwen3_5_xnnpack_fp32.yaml"),
            # "++" sets a key whether or not the example's yaml has it (hydra refuses new keys without "+")
            *[f"++{key}={value}" for key, value in {
                "base.model_class": "qwen3_5_0_8b", "base.params": params, "base.checkpoint": weights,
                "quantization.qmode": "8da4w", "quantization.group_size": 32,
                "quantization.embedding_quantize": "'4,32'", "quantization.use_hqq": "false",
                "export.max_seq_length": args.max_context, "export.max_context_length": args.max_context,
                # a name ending in .pte would be taken as a path (relative to the working directory)
                "export.output_dir": args.out, "export.output_name": "model"}.items()],
        ], check=True)
    if not (args.out / "model.pte").is_file():
        raise SystemExit(f"export_llm finished without writing {args.out / 'model.pte'}")


if __name__ == "__main__":
    main()
