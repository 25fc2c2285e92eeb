"""The vision tower on the device: ``VisionEncoder`` runs the bundle's ``vision.onnx`` on preprocessed frames.

The graph takes one frame-pair size per call; what depends on the grid (the learned 48x48 position
table resampled to it, the 2D rotary angles) is computed in numpy (``edgekit.vision_preprocess``), exactly as
transformers does.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from edgekit.bundle import Bundle
from edgekit.errors import EdgekitError
from edgekit.memory import release_freed_heap, released_while_building
from edgekit.multimodal import VisionEmbeds
from edgekit.vision_preprocess import VisionInput, position_taps, preprocess_image, rotary_tables, video_pairs


def load_image(path: str | Path) -> np.ndarray:
    """An image file (JPEG, PNG, WebP, BMP...) as RGB uint8 [H, W, 3], decoded with OpenCV."""
    path = Path(path)
    if not path.is_file():
        raise EdgekitError(f"image {path} does not exist", "check the path")
    try:
        import cv2
    except ImportError:
        raise EdgekitError("reading image files needs OpenCV", "pip install opencv-python-headless") from None
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)  # grey and alpha images come back as 3-channel BGR
    if image is None:
        raise EdgekitError(f"cannot read {path} as an image", "pass a JPEG, PNG, WebP or BMP file")
    return np.ascontiguousarray(image[:, :, ::-1])


class VisionEncoder:
    """``encode(VisionInput)`` -> ``VisionEmbeds``; ``encode_image(rgb)`` and ``encode_frames(frames)`` preprocess first."""

    def __init__(self, bundle: Bundle, threads: int | None = None) -> None:
        spec = bundle.manifest.vision
        self.bundle, self.spec = bundle, spec
        from edgekit.runtimes.onnx_decoder import default_threads

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or default_threads()
        opts.inter_op_num_threads = 1
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.log_severity_level = 4  # fatal only: a load error is raised as one line below, not also logged
        # No arena: the tower runs now and then (a photo, a segment's frames), and an arena would keep its
        # largest activations resident between runs (~130 MiB for 10 frame pairs at 224, 0.8B shape).
        opts.enable_cpu_mem_arena = False
        path = bundle.file(spec.file)
        try:
            with released_while_building(bundle.path):
                self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime's own exception types, multi-line messages
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise EdgekitError(f"onnxruntime could not load {path} ({first[:200]})",
                               "run `edgekit verify` on the bundle and re-export it if it is corrupt") from None
        found = [i.name for i in self.session.get_inputs()]
        if found != list(spec.inputs):
            raise EdgekitError("the vision graph's inputs do not match the bundle's manifest",
                               "the bundle is mismatched: re-export it")
        self._tables: dict[tuple[int, int], dict[str, np.ndarray]] = {}

    def release(self) -> None:
        """Drop the session (the tower's packed weights and buffers); this encoder is unusable after."""
        self.session = None

    @property
    def hidden_size(self) -> int:
        return self.spec.out_hidden_size

    def grid_inputs(self, h: int, w: int) -> dict[str, np.ndarray]:
        """The grid-dependent inputs for h x w patches (cached per size: a video reuses them every pair)."""
        if (h, w) not in self._tables:
            s = self.spec
            indices, weights = position_taps(h, w, s.position_grid, s.merge_size)
            cos, sin = rotary_tables(h, w, s.head_dim, s.rope_theta, s.merge_size)
            self._tables[h, w] = {"pos_indices": indices, "pos_weights": weights, "rotary_cos": cos,
                                  "rotary_sin": sin}
        return self._tables[h, w]

    def encode(self, vision_input: VisionInput, kind: str = "image") -> VisionEmbeds:
        """Run the tower on preprocessed patches, a frame pair per call (attention never crosses pairs, so
        the rows are those of one call over all pairs, and the activations only one pair's)."""
        t, h, w = vision_input.grid
        pixels = np.ascontiguousarray(vision_input.pixels, dtype=np.float32).reshape(t, h * w, -1)
        out = np.concatenate([self._run_pair(pixels[i:i + 1], h, w) for i in range(t)])
        return VisionEmbeds(out.reshape(-1, out.shape[-1]), (t, h, w), kind)

    def _run_pair(self, pixels: np.ndarray, h: int, w: int) -> np.ndarray:
        """The rows of one frame pair's patches ``pixels`` [1, h * w, C]."""
        rows = self.session.run(None, {"pixel_values": pixels, **self.grid_inputs(h, w)})[0]
        release_freed_heap()  # the run's activations were freed to the C heap, which would keep them resident
        return rows

    def encode_image(self, image: np.ndarray, **budget: Any) -> VisionEmbeds:
        """An RGB uint8 [H, W, 3] image; ``min_pixels``/``max_pixels`` bound its resized area."""
        return self.encode(preprocess_image(image, **budget), "image")

    def encode_frames(self, frames: Sequence[np.ndarray], **options: Any) -> VisionEmbeds:
        """Video frames (RGB uint8, same size, an even count or the last one is repeated): one block per pair.
        ``size=(height, width)`` fixes the resolution (multiples of 32), e.g. for a live stream. Each pair is
        preprocessed and encoded before the next, so only one pair's pixels are in memory."""
        pairs = [self.encode(pair, "video") for pair in video_pairs(frames, **options)]
        return VisionEmbeds(np.concatenate([p.embeds for p in pairs]), (len(pairs), *pairs[0].grid[1:]), "video")
