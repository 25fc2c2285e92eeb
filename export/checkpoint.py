"""Load a Qwen3.5 checkpoint (hub id, local folder, or a built-in random one) for export."""

from __future__ import annotations

import copy
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.config import TextConfig
from edgekit.errors import EdgekitError
from edgekit.export.tokenizer_files import load_checkpoint_tokenizer

CONFIG_DIR = Path(__file__).parent / "configs"

# Built-in random checkpoints: the published configs' structure with random weights (there is no hub
# here). ``tiny-random`` keeps the layer pattern, gating, mRoPE and the real vocabulary at small widths.
BUILTIN = {
    "tiny-random": ("qwen3.5-0.8b.json", dict(
        hidden_size=64, intermediate_size=128, num_attention_heads=4, num_key_value_heads=2, head_dim=64,
        linear_num_key_heads=4, linear_num_value_heads=4, linear_key_head_dim=32, linear_value_head_dim=32,
        num_hidden_layers=8, mrope_section=[3, 3, 2])),
    "random-0.8b": ("qwen3.5-0.8b.json", {}),
    "random-2b": ("qwen3.5-2b.json", {}),
}
TINY_VISION = dict(depth=2, hidden_size=64, intermediate_size=128, num_heads=4, out_hidden_size=64)
GENERATION_DEFAULTS = {"eos_token_id": [248046, 248044], "pad_token_id": 248044,
                       "temperature": 1.0, "top_k": 20, "top_p": 0.95}


@dataclass
class Checkpoint:
    """A loaded model: its id, HF config dict, text tensors by name, and optional files it ships."""

    model_id: str
    config: dict[str, Any]
    text: TextConfig
    tensors: dict[str, Any]  # torch tensors, keyed like "layers.0.mlp.up_proj.weight"
    tokenizer_json: Path | None
    generation: dict[str, Any]
    vision: dict[str, Any] = field(default_factory=dict)  # vision tower tensors, keyed like "blocks.0.attn.qkv.weight"

    def weight(self, name: str) -> np.ndarray:
        """One text-decoder tensor as float32 numpy (converted on demand, so bf16 checkpoints stay small)."""
        return self.tensors[name].detach().float().numpy()

    def vision_weight(self, name: str) -> np.ndarray:
        """One vision-tower tensor as float32 numpy."""
        return self.vision[name].detach().float().numpy()


def builtin_config(name: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The HF config dict of a built-in random model."""
    file, text_overrides = BUILTIN[name]
    config = json.loads((CONFIG_DIR / file).read_text())
    text = config["text_config"]
    text_overrides = {**text_overrides, **(overrides or {})}
    section = text_overrides.pop("mrope_section", None)
    text.update(text_overrides)
    if section:
        text["rope_parameters"]["mrope_section"] = section
    text["layer_types"] = text["layer_types"][: text["num_hidden_layers"]]
    if name == "tiny-random":
        config["vision_config"].update(TINY_VISION, out_hidden_size=text["hidden_size"])
    return config


def import_transformers():
    """transformers, with its modeling code loaded without torchao. transformers imports torchao at start-up
    whenever it is installed (for its torchao quantizer, which edgekit never uses): a second of imports, and
    torchao's and torch's warnings on an ONNX export. The ExecuTorch exporter imports torchao itself, later."""
    if "transformers.modeling_utils" not in sys.modules and "torchao" not in sys.modules:
        sys.modules["torchao"] = None  # find_spec answers None: transformers takes torchao as not installed
        try:
            import transformers.modeling_utils  # noqa: F401
        finally:
            del sys.modules["torchao"]
    import transformers

    return transformers


def random_model(config: dict[str, Any], seed: int = 0):
    """A ``Qwen3_5ForConditionalGeneration`` with random weights (transformers' own initialisation)."""
    import torch

    transformers = import_transformers()
    Qwen3_5Config, Qwen3_5ForConditionalGeneration = (transformers.Qwen3_5Config,
                                                      transformers.Qwen3_5ForConditionalGeneration)
    torch.manual_seed(seed)
    return Qwen3_5ForConditionalGeneration(Qwen3_5Config(**copy.deepcopy(config))).eval()


def read_config(model: str) -> dict[str, Any]:
    """The HF config dict of ``model``, refusing anything that is not Qwen3.5 (reads no weights)."""
    if model in BUILTIN:
        return builtin_config(model)
    config = _read_hf_config(model)
    TextConfig.from_hf(config)
    return config


def _read_hf_config(model: str) -> dict[str, Any]:
    folder = Path(model)
    if folder.is_dir():
        path = folder / "config.json"
        if not path.is_file():
            raise EdgekitError(f"{folder} has no config.json", "point at a Hugging Face checkpoint folder")
        return json.loads(path.read_text())
    try:
        return import_transformers().AutoConfig.from_pretrained(model).to_dict()
    except (OSError, ValueError) as err:
        raise EdgekitError(f"could not load a config for {model!r} ({type(err).__name__})",
                           "pass a local checkpoint folder, a reachable hub id, or a built-in name: "
                           + ", ".join(BUILTIN)) from None


def text_tensors(model) -> dict[str, Any]:
    """The text decoder's tensors with the wrapper prefixes removed (``model.language_model.`` etc.)."""
    tensors = {}
    for key, value in model.state_dict().items():
        for prefix in ("model.language_model.", "model."):
            if key.startswith(prefix) and not key.startswith("model.visual."):
                tensors[key[len(prefix):]] = value
                break
        else:
            if key == "lm_head.weight":
                tensors[key] = value
    return tensors


def vision_tensors(model) -> dict[str, Any]:
    """The vision tower's tensors (``model.visual.`` removed); empty for a text-only checkpoint."""
    prefix = "model.visual."
    return {key[len(prefix):]: value for key, value in model.state_dict().items() if key.startswith(prefix)}


def load_checkpoint(model: str, seed: int = 0) -> Checkpoint:
    """Load ``model``: a built-in random name, a local checkpoint folder, or a hub id."""
    if model in BUILTIN:
        config = builtin_config(model)
        hf_model = random_model(config, seed)
        text = TextConfig.from_hf(config)
        return Checkpoint(f"edgekit/{model}", config, text, text_tensors(hf_model), None, dict(GENERATION_DEFAULTS),
                          vision_tensors(hf_model))

    config = read_config(model)  # refuses other model types before any weights are read
    text = TextConfig.from_hf(config)
    transformers = import_transformers()
    cls = (transformers.Qwen3_5ForConditionalGeneration if "text_config" in config
           else transformers.Qwen3_5ForCausalLM)
    hf_model = cls.from_pretrained(model, dtype="auto")
    folder = Path(model) if Path(model).is_dir() else None
    tokenizer = load_checkpoint_tokenizer(folder) if folder else None
    generation = dict(GENERATION_DEFAULTS)
    if folder and (folder / "generation_config.json").is_file():
        generation.update(json.loads((folder / "generation_config.json").read_text()))
    return Checkpoint(model, config, text, text_tensors(hf_model), tokenizer, generation, vision_tensors(hf_model))
