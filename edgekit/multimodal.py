"""Prompts with images and video frame pairs: token rows, vision rows and mRoPE positions for the decoder.

A prompt is a list of parts: text (``str``, or token ids), an image (``VisionEmbeds``) or a video
frame pair with its time (``FramePair``). They expand like Qwen3.5's processor does:

  image       <|vision_start|> <|image_pad|> x N <|vision_end|>
  frame pair  <{t:.1f} seconds> <|vision_start|> <|video_pad|> x N <|vision_end|>

with one pad per merged 2x2 patch, whose row in the decoder's input is the vision tower's output.
Positions are the three mRoPE rows (t, h, w), computed as transformers' ``get_rope_index`` does for
Qwen3.5: text advances all three by one per token; a vision block of h x w merged patches starting at
position p gets t = p, h = p + row, w = p + col, and the next part starts at p + max(h, w). The scan
is left to right, so a prompt can be fed in pieces (a live video, pair after pair) onto one state and
get the same positions as one long prompt.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Union

import numpy as np

from edgekit.errors import EdgekitError
from edgekit.manifest import VisionSpec, VisionTokens
from edgekit.tokenizer import Tokenizer, render_chat
from edgekit.vision_preprocess import FACTOR, paired, smart_resize

# The Android camera screen's prompt for one frame pair (see ``camera_prompt``).
CAMERA_SYSTEM = "You look through a live camera. Reply with one short sentence saying what you see."
CAMERA_ASK = "Describe what you see in one short sentence."


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


@dataclass(frozen=True)
class FramePair:
    """A video frame pair (``VisionEmbeds`` of one pair) and its time in seconds (the mean of its two frames)."""

    embeds: VisionEmbeds
    seconds: float


Part = Union[str, Sequence[int], VisionEmbeds, FramePair]


@dataclass
class MultimodalPrompt:
    """``ids [T]`` (pad ids at vision rows), ``vision_rows [T]`` bool, ``embeds [T, H]`` (zero on text rows;
    None without vision), ``positions [3, T]`` and ``next_position`` (where text after the prompt goes)."""

    ids: np.ndarray
    vision_rows: np.ndarray
    embeds: np.ndarray | None
    positions: np.ndarray
    next_position: int

    def __len__(self) -> int:
        return len(self.ids)


def frame_pairs(video: VisionEmbeds, frame_seconds: Sequence[float]) -> list[FramePair]:
    """Split an encoded video into its pairs, each timed by the mean of its two frames' times (an odd
    last frame was repeated, so its pair gets that frame's time), as Qwen3.5's processor does."""
    times = paired(list(frame_seconds))
    if len(times) != video.grid[0]:
        raise ValueError(f"{len(frame_seconds)} frame times for {video.grid[0]} frame pairs")
    return [FramePair(pair, (a + b) / 2) for pair, (a, b) in zip(video.pairs(), times)]


def vision_positions(start: int, merged_h: int, merged_w: int) -> np.ndarray:
    """[3, merged_h * merged_w] positions of one image / frame pair block starting at ``start``."""
    rows, cols = np.meshgrid(np.arange(merged_h), np.arange(merged_w), indexing="ij")
    return np.stack([np.full(rows.size, start), start + rows.reshape(-1), start + cols.reshape(-1)]).astype(np.int64)


def build_prompt(tokenizer: Tokenizer, parts: Sequence[Part], tokens: VisionTokens, start_position: int = 0,
                 hidden_size: int | None = None) -> MultimodalPrompt:
    """Expand ``parts`` into decoder rows and positions, starting at ``start_position``."""
    ids: list[np.ndarray] = []
    rows: list[np.ndarray] = []
    positions: list[np.ndarray] = []
    vision: list[tuple[int, np.ndarray]] = []  # (row offset, embeds)
    pos = start_position
    count = 0

    def text(token_ids: Sequence[int]) -> None:
        nonlocal pos, count
        n = len(token_ids)
        ids.append(np.asarray(token_ids, np.int64).reshape(n))
        rows.append(np.zeros(n, bool))
        positions.append(np.broadcast_to(np.arange(pos, pos + n, dtype=np.int64), (3, n)))
        pos += n
        count += n

    for part in parts:
        if isinstance(part, str):
            text(tokenizer.encode(part))
            continue
        if not isinstance(part, (VisionEmbeds, FramePair)):
            text(list(part))
            continue
        block = part.embeds if isinstance(part, FramePair) else part
        if block.grid[0] != 1 or (block.kind == "video") != isinstance(part, FramePair):
            raise ValueError("pass an image as VisionEmbeds and a video as FramePair parts (see frame_pairs)")
        if isinstance(part, FramePair):
            text(tokenizer.encode(f"<{part.seconds:.1f} seconds>"))
        text([tokens.vision_start])
        _, h, w = block.grid
        n = block.tokens_per_pair
        ids.append(np.full(n, tokens.video if block.kind == "video" else tokens.image, np.int64))
        rows.append(np.ones(n, bool))
        positions.append(vision_positions(pos, h // 2, w // 2))
        vision.append((count, block.embeds))
        pos += max(h, w) // 2
        count += n
        text([tokens.vision_end])

    embeds = None
    if vision:
        width = hidden_size or vision[0][1].shape[1]
        embeds = np.zeros((count, width), np.float32)
        for offset, block in vision:
            embeds[offset:offset + len(block)] = block
    return MultimodalPrompt(np.concatenate(ids) if ids else np.zeros(0, np.int64),
                            np.concatenate(rows) if rows else np.zeros(0, bool), embeds,
                            np.concatenate(positions, axis=1) if positions else np.zeros((3, 0), np.int64), pos)


def camera_prompt(tokenizer: Tokenizer, tokens: VisionTokens) -> dict:
    """The pre-tokenized chat prompt for one camera frame pair, so an app needs no tokenizer:
    ``prefix + [pad_id] * N + suffix``. ``prefix`` holds the system turn and the user turn up to and
    including ``<|vision_start|>``; ``suffix`` runs from ``<|vision_end|>`` through the instruction and
    the assistant opening (thinking off). No ``<t seconds>`` timestamp: each pair is captioned on its own.
    ``text`` is the rendered prompt with one ``<|video_pad|>`` standing for the N pads."""
    pad = tokenizer.decode([tokens.video])
    text = render_chat([{"role": "system", "content": CAMERA_SYSTEM},
                        {"role": "user", "content": f"{tokenizer.decode([tokens.vision_start])}{pad}"
                                                    f"{tokenizer.decode([tokens.vision_end])}\n{CAMERA_ASK}"}])
    ids = tokenizer.encode(text)
    at = ids.index(tokens.video)
    return {"prefix": ids[:at], "suffix": ids[at + 1:], "pad_id": tokens.video, "text": text}


def image_budget(spec: VisionSpec, max_pixels: int | None = None) -> dict[str, int]:
    """The pixel budget images are resized to: the bundle's, or capped at ``max_pixels`` (ONNX towers only;
    a .pte's tower takes the one frame size fixed at export)."""
    budget = dict(spec.image)
    if max_pixels is None:
        return budget
    if spec.tokens_per_pair:
        raise EdgekitError(f"--max-pixels does not apply: this .pte encodes images at "
                           f"{spec.frame_size[0]}x{spec.frame_size[1]}, fixed at export",
                           "leave out --max-pixels, or re-export with another --vision-size")
    if max_pixels < FACTOR * FACTOR:
        raise EdgekitError(f"--max-pixels {max_pixels} is below one {FACTOR}x{FACTOR} patch",
                           f"pass at least {FACTOR * FACTOR}")
    return {"min_pixels": min(budget["min_pixels"], max_pixels), "max_pixels": max_pixels}


def image_prompt_rows(spec: VisionSpec, budget: dict[str, int], sizes: Sequence[tuple[int, int]]) -> int:
    """Prompt rows that images of these (height, width) take: their vision tokens plus start/end tokens each."""
    fixed = spec.tokens_per_pair
    return sum((fixed or h * w // (FACTOR * FACTOR)) + 2
               for h, w in (smart_resize(height, width, **budget) for height, width in sizes))
