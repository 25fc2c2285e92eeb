"""The device side: runs a bundle with onnxruntime and numpy (no torch, no transformers), or a .pte bundle
with ExecuTorch's runtime (whose Python wheel links libtorch)."""

from __future__ import annotations

import os
from pathlib import Path

from edgekit.bundle import Bundle
from edgekit.errors import EdgekitError
from edgekit.multimodal import FramePair, frame_pairs
from edgekit.runtimes.model import Decoder, Model
from edgekit.runtimes.prompt_cache import PromptCache
from edgekit.runtimes.state import HybridState
from edgekit.runtimes.vision import VisionEmbeds, VisionEncoder
from edgekit.tokenizer import Tokenizer


def load(bundle_dir: str | Path, threads: int | None = None, max_context: int | None = None,
         chunk_size: int | None = None) -> Model:
    """Open a bundle folder and return a ``Model`` on the backend its manifest names.

    Sizes are checked at every open; each file's sha256 once per change of the file (``Bundle.check_files``).
    """
    bundle = Bundle.open(bundle_dir)
    check_context(bundle, max_context)
    bundle.check_files()
    # The tokenizer first: its load peaks on temporary buffers, given back before the weights arrive.
    tokenizer = Tokenizer.from_file(bundle.file(bundle.manifest.tokenizer.file))
    decoder = open_decoder(bundle, threads=threads, max_context=max_context)
    return Model(bundle, decoder, tokenizer, chunk_size=chunk_size, threads=threads)


def check_context(bundle: Bundle, max_context: int | None) -> None:
    """Refuse a context budget below 1, past the model's positions, or whose state cannot fit in this machine."""
    if max_context is None:
        return
    if isinstance(max_context, bool) or not isinstance(max_context, int) or max_context < 1:
        raise EdgekitError(f"max_context {max_context!r} is not a number of tokens", "pass at least 1")
    config = bundle.manifest.config
    positions = config.get("text_config", config).get("max_position_embeddings")
    if isinstance(positions, int) and max_context > positions:
        raise EdgekitError(f"max_context {max_context} is past the model's {positions} positions",
                           f"pass at most {positions}")
    fixed, per_token = bundle.text_config.state_bytes()
    need = fixed + per_token * max_context
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return
    if need > memory:
        raise EdgekitError(f"max_context {max_context} needs {need / 2**30:.1f} GiB for one sequence's state, "
                           f"more than this machine's {memory / 2**30:.1f} GiB of memory",
                           f"pass a smaller max_context (at most about {(memory - fixed) // per_token})")


def open_decoder(bundle: Bundle, threads: int | None = None, max_context: int | None = None) -> Decoder:
    """The decoder of the backend the manifest names (loading it checks the graph/program against the config)."""
    backend = bundle.manifest.backend
    if backend == "onnx":
        from edgekit.runtimes.onnx_decoder import OnnxDecoder

        decoder = OnnxDecoder(bundle, threads=threads, max_context=max_context)
    elif backend == "executorch":
        from edgekit.runtimes.executorch_decoder import ExecuTorchDecoder

        decoder = ExecuTorchDecoder(bundle, threads=threads, max_context=max_context)
    else:
        raise EdgekitError(f"bundle backend {backend!r} is not supported by this runtime",
                           "re-export with --format onnx or --format executorch")
    return decoder


__all__ = ["FramePair", "HybridState", "Model", "PromptCache", "VisionEmbeds", "VisionEncoder", "frame_pairs", "load"]
