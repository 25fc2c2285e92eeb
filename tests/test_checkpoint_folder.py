"""The real loading path: a saved Hugging Face checkpoint folder, in both Qwen3.5 layouts."""

from __future__ import annotations

import numpy as np
import torch

import edgekit
from edgekit.export.checkpoint import builtin_config
from edgekit.export.onnx_export import export_onnx
from hf_reference import HFRunner


def _check_folder_export(hf_model, folder, out):
    hf_model.save_pretrained(folder)
    export_onnx(str(folder), out, quant="fp32", show_progress=False)
    model = edgekit.load(out)
    prompt = np.random.default_rng(5).integers(0, 248_000, 33).tolist()
    ours = model.prefill(model.new_state(), prompt)
    ref = HFRunner(hf_model).feed(prompt)
    assert np.abs(ours - ref).max() < 1e-4
    assert model.bundle.manifest.data["source"]["model"] == str(folder)


def test_conditional_generation_folder(tiny_hf, tmp_path):
    _check_folder_export(tiny_hf, tmp_path / "ckpt", tmp_path / "bundle")


def test_causal_lm_folder(tmp_path):
    from transformers import Qwen3_5ForCausalLM, Qwen3_5TextConfig

    text = builtin_config("tiny-random")["text_config"]
    torch.manual_seed(1)
    model = Qwen3_5ForCausalLM(Qwen3_5TextConfig(**text)).eval()
    _check_folder_export(model, tmp_path / "ckpt", tmp_path / "bundle")
