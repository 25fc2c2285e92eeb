"""The device side: runs a bundle with onnxruntime and numpy (no torch, no transformers), or a .pte bundle
with ExecuTorch's runtime (whose Python wheel links libtorch)."""

from __future__ import annotations

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
    """Open a bundle folder and return a ``Model`` on the backend its manifest names."""
    bundle = Bundle.open(bundle_dir)
    decoder = open_decoder(bundle, threads=threads, max_context=max_context)
    tokenizer = Tokenizer.from_file(bundle.file(bundle.manifest.tokenizer.file))
    return Model(bundle, decoder, tokenizer, chunk_size=chunk_size, threads=threads)


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
