"""A random-weight Hugging Face checkpoint folder of one of edgekit's built-in Qwen3.5 shapes, for benchmarks.

    python benchmarks/random_checkpoint.py random-0.8b OUT_FOLDER

``anchors.py`` runs this in its own process, so that the benchmark's parent process never holds torch or a
model: on Linux a child's ``ru_maxrss`` starts at its parent's peak, which would inflate the export peaks.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from edgekit.export.checkpoint import BUILTIN, GENERATION_DEFAULTS, builtin_config, random_model
from edgekit.files import atomic_dir

# Written as max_position_embeddings (published: 262144). onnxruntime-genai's builder sizes its rotary tables
# and default max_length by it and has no option to override that; 4096 is edgekit's default cpu context.
CONTEXT_LENGTH = 4096


def build_checkpoint(name: str, folder: Path) -> None:
    """Save random weights of the built-in shape in bfloat16, with a tokenizer.json and a generation config."""
    import torch
    from transformers.utils import logging

    from edgekit.export.tokenizer_files import build_tokenizer_json

    logging.disable_progress_bar()
    config = builtin_config(name)
    config["text_config"]["max_position_embeddings"] = CONTEXT_LENGTH
    with atomic_dir(folder) as tmp:
        random_model(config).to(torch.bfloat16).save_pretrained(tmp)
        (tmp / "generation_config.json").write_text(json.dumps(GENERATION_DEFAULTS, indent=2))
        build_tokenizer_json(tmp / "tokenizer.json")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", choices=sorted(BUILTIN))
    parser.add_argument("folder", type=Path)
    args = parser.parse_args()
    build_checkpoint(args.model, args.folder)


if __name__ == "__main__":
    main()
