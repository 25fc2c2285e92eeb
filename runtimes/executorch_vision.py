"""The vision tower of a .pte bundle: its ``vision_encoder`` method, one frame pair of a size fixed at export.

The method takes RGB 0..255 frames already at S x S and does the rest (normalize, patches, tower,
merger) itself, so this side only resizes: Pillow's bicubic (``resize_bicubic``, what transformers'
processors use), straight to S x S without keeping the aspect ratio. Like the decoder, it needs
ExecuTorch's runtime (and so torch); it runs on the decoder's loaded program.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from edgekit.bundle import Bundle
from edgekit.multimodal import VisionEmbeds
from edgekit.runtimes.executorch_decoder import ExecuTorchDecoder
from edgekit.vision_preprocess import check_rgb, paired, resize_bicubic


class ExecuTorchVisionEncoder:
    """``encode_image(rgb)`` and ``encode_frames(frames)`` -> ``VisionEmbeds``, as ``VisionEncoder``; the pixel
    budget and size options of the ONNX encoder do not apply (the size is the export's ``--vision-size``)."""

    def __init__(self, bundle: Bundle, decoder: ExecuTorchDecoder) -> None:
        self.spec = bundle.manifest.vision
        self.size = self.spec.frame_size
        self._decoder = decoder
        self._encode = decoder.method(self.spec.method)

    def release(self) -> None:
        """Free the ``vision_encoder`` method (its XNNPACK weights and buffers); this encoder is unusable after."""
        self._encode = None
        self._decoder.release_method(self.spec.method)

    @property
    def hidden_size(self) -> int:
        return self.spec.out_hidden_size

    def encode_pair(self, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        """Two RGB uint8 [H, W, 3] frames -> embeds [tokens_per_pair, H] (one call of ``vision_encoder``)."""
        pair = np.stack([resize_bicubic(check_rgb(f), *self.size) for f in (first, second)])
        pixels = np.ascontiguousarray(pair.transpose(0, 3, 1, 2), dtype=np.float32)
        return self._encode(pixels)[0]

    def encode_image(self, image: np.ndarray, **_options: Any) -> VisionEmbeds:
        """An RGB uint8 [H, W, 3] image (both frames of its pair)."""
        return VisionEmbeds(self.encode_pair(image, image), self.spec.grid, "image")

    def encode_frames(self, frames: Sequence[np.ndarray], **_options: Any) -> VisionEmbeds:
        """Video frames (RGB uint8, an even count or the last one is repeated): one block per pair."""
        if not frames:
            raise ValueError("expected one or more frames")
        embeds = [self.encode_pair(a, b) for a, b in paired(list(frames))]
        _, h, w = self.spec.grid
        return VisionEmbeds(np.concatenate(embeds), (len(embeds), h, w), "video")
