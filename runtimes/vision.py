"""The vision tower on the device: ``VisionEncoder`` runs the bundle's ``vision.onnx`` on preprocessed frames.

The graph takes one frame-pair size per call; what depends on the grid (the learned 48x48 position
table resampled to it, the 2D rotary angles) is computed here in numpy, exactly as transformers does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from edgekit.bundle import Bundle
from edgekit.errors import EdgekitError
from edgekit.runtimes.vision_preprocess import VisionInput, preprocess_image, preprocess_video


@dataclass(frozen=True)
class VisionEmbeds:
    """Encoded pixels: ``embeds [t * h/2 * w/2, H]`` (one LLM token each), the patch ``grid`` (t, h, w)
    and ``kind`` "image" or "video" (t frame pairs; each pair is its own block in the prompt)."""

    embeds: np.ndarray
    grid: tuple[int, int, int]
    kind: str

    @property
    def tokens_per_pair(self) -> int:
        return self.grid[1] * self.grid[2] // 4

    def pairs(self) -> list["VisionEmbeds"]:
        """One ``VisionEmbeds`` per frame pair (a video is prompted pair by pair, each with its timestamp)."""
        n = self.tokens_per_pair
        return [VisionEmbeds(self.embeds[i * n:(i + 1) * n], (1, *self.grid[1:]), self.kind)
                for i in range(self.grid[0])]


def block_order(h: int, w: int, merge: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """(row, col) of each patch of an h x w grid in the processors' order: merge x merge blocks in raster order."""
    rows, cols = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    shape = (h // merge, merge, w // merge, merge)
    return rows.reshape(shape).transpose(0, 2, 1, 3).reshape(-1), cols.reshape(shape).transpose(0, 2, 1, 3).reshape(-1)


def position_taps(h: int, w: int, side: int, merge: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Bilinear taps (align_corners) of a side x side table resampled to h x w: indices and weights [h*w, 4]."""
    rows, cols = block_order(h, w, merge)

    def axis(index: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
        src = index.astype(np.float32) * np.float32(side - 1) / np.float32(max(size - 1, 1))
        floor = np.floor(src)
        taps = np.clip(floor.astype(np.int64)[:, None] + np.arange(2), 0, side - 1)
        weights = np.clip(1 - np.abs(src[:, None] - floor[:, None] - np.arange(2, dtype=np.float32)), 0, None)
        return taps, weights.astype(np.float32)

    h_taps, h_weights = axis(rows, h)
    w_taps, w_weights = axis(cols, w)
    indices = (h_taps[:, :, None] * side + w_taps[:, None, :]).reshape(-1, 4)
    weights = (h_weights[:, :, None] * w_weights[:, None, :]).reshape(-1, 4)
    return indices, weights


def rotary_tables(h: int, w: int, head_dim: int, theta: float, merge: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """cos/sin [h*w, head_dim/2]: a quarter of the head's frequencies turned by the row, a quarter by the column."""
    rows, cols = block_order(h, w, merge)
    spatial = head_dim // 2
    inv_freq = (1.0 / (theta ** (np.arange(0, spatial, 2, dtype=np.float32) / spatial))).astype(np.float32)
    angles = np.concatenate([rows[:, None].astype(np.float32) * inv_freq, cols[:, None].astype(np.float32) * inv_freq],
                            axis=-1)
    return np.cos(angles).astype(np.float32), np.sin(angles).astype(np.float32)


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


def vision_graph(bundle: Bundle) -> dict[str, Any]:
    """The manifest's ``graphs.vision``, or a one-line error for a bundle without a vision tower."""
    spec = bundle.manifest.get("graphs", {}).get("vision")
    if spec is None:
        raise EdgekitError(f"bundle {bundle.path} has no vision graph",
                           "re-export it from a checkpoint with a vision tower (without --no-vision)")
    return spec


class VisionEncoder:
    """``encode(VisionInput)`` -> ``VisionEmbeds``; ``encode_image(rgb)`` and ``encode_frames(frames)`` preprocess first."""

    def __init__(self, bundle: Bundle, threads: int | None = None) -> None:
        spec = vision_graph(bundle)
        self.bundle, self.spec = bundle, spec
        from edgekit.runtimes.onnx_decoder import default_threads

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or default_threads()
        opts.inter_op_num_threads = 1
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.log_severity_level = 3
        path = bundle.file(spec["file"])
        try:
            self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime's own exception types, multi-line messages
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise EdgekitError(f"onnxruntime could not load {path} ({first[:200]})",
                               "run `edgekit verify` on the bundle and re-export it if it is corrupt") from None
        found = [i.name for i in self.session.get_inputs()]
        if found != spec["inputs"]:
            raise EdgekitError("the vision graph's inputs do not match the bundle's manifest",
                               "the bundle is mismatched: re-export it")
        self._tables: dict[tuple[int, int], dict[str, np.ndarray]] = {}

    @property
    def hidden_size(self) -> int:
        return self.spec["out_hidden_size"]

    def grid_inputs(self, h: int, w: int) -> dict[str, np.ndarray]:
        """The grid-dependent inputs for h x w patches (cached per size: a video reuses them every pair)."""
        if (h, w) not in self._tables:
            s = self.spec
            indices, weights = position_taps(h, w, s["position_grid"], s["merge_size"])
            cos, sin = rotary_tables(h, w, s["head_dim"], s["rope_theta"], s["merge_size"])
            self._tables[h, w] = {"pos_indices": indices, "pos_weights": weights, "rotary_cos": cos,
                                  "rotary_sin": sin}
        return self._tables[h, w]

    def encode(self, vision_input: VisionInput, kind: str = "image") -> VisionEmbeds:
        """Run the tower on preprocessed patches: all frame pairs in one call."""
        t, h, w = vision_input.grid
        pixels = np.ascontiguousarray(vision_input.pixels, dtype=np.float32).reshape(t, h * w, -1)
        out = self.session.run(None, {"pixel_values": pixels, **self.grid_inputs(h, w)})[0]
        return VisionEmbeds(out.reshape(-1, out.shape[-1]), (t, h, w), kind)

    def encode_image(self, image: np.ndarray, **budget: Any) -> VisionEmbeds:
        """An RGB uint8 [H, W, 3] image; ``min_pixels``/``max_pixels`` bound its resized area."""
        return self.encode(preprocess_image(image, **budget), "image")

    def encode_frames(self, frames: Sequence[np.ndarray], **options: Any) -> VisionEmbeds:
        """Video frames (RGB uint8, same size, an even count or the last one is repeated): one block per pair.
        ``size=(height, width)`` fixes the resolution (multiples of 32), e.g. for a live stream."""
        return self.encode(preprocess_video(frames, **options), "video")
