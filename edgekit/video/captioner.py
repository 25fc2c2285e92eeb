"""Captioners: what turns a segment's frames into a caption, and captions into a summary.

``ChatCaptioner`` holds the mechanics every model-based captioner shares: one running conversation
whose decoder state is kept between segments (each segment feeds only its own turn), a context that
rolls when it fills up (a summary of the old segments replaces them), and summaries made in a fresh
state. Subclasses say what a segment's turn is. No prompt-cache checkpoints are kept: each would hold
a whole DeltaNet state (~20 MiB on the 0.8B) to save prefilling a system prompt of ~30 tokens once per
summary. The vision tower is released before a summary (it is not needed for one, and it would sit
beside the summary's state); the next segment loads it again.

``VisionCaptioner`` shows the model the frames: each frame pair goes through the bundle's vision tower
and into the turn as Qwen3.5's video block (``<t seconds><|vision_start|><|video_pad|>...<|vision_end|>``).
``FrameStatsCaptioner`` is for bundles without a vision tower (``--no-vision``, old text-only .pte): it
describes each frame pair by its statistics (dominant colour, brightness, motion) in words, in the
same pair layout, and lets the text model caption that; it does not see objects.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import cv2
import numpy as np

from edgekit.errors import EdgekitError
from edgekit.multimodal import FramePair
from edgekit.multimodal import frame_pairs as pairs_of
from edgekit.runtimes.model import Model
from edgekit.runtimes.state import HybridState
from edgekit.sampling import SamplingParams
from edgekit.tokenizer import render_chat
from edgekit.video.store import one_line
from edgekit.video.timeline import clock
from edgekit.vision_preprocess import paired

CAPTION_SYSTEM = ("You watch a video one segment at a time. For each segment, reply with one short sentence "
                  "saying what happens in it.")
SUMMARY_SYSTEM = "You summarize a video from its timeline of captions. Reply with a short paragraph."


class Captioner(Protocol):
    """What the summarizer loop needs. Frames are BGR uint8, timestamps in seconds."""

    def caption(self, frames: list[np.ndarray], timestamps: list[float]) -> str: ...

    def summarize(self, captions: list[tuple[float, float, str]]) -> str: ...


def frame_pairs(frames: Sequence[np.ndarray], timestamps: Sequence[float]) -> list[tuple[float, np.ndarray, np.ndarray]]:
    """Consecutive frames as Qwen3.5's temporal patches of 2: (mean time, first, second); an odd last
    frame is paired with itself, as a still image is."""
    return [((ta + tb) / 2, a, b) for (a, b), (ta, tb) in zip(paired(frames), paired(timestamps))]


class ChatCaptioner:
    """Captions segments in one conversation whose decoder state is kept between segments."""

    description = "a chat model"

    def __init__(self, model: Model, caption_tokens: int = 32, summary_tokens: int = 96,
                 sampling: SamplingParams | None = None) -> None:
        self.model = model
        self.caption_tokens = caption_tokens
        self.summary_tokens = summary_tokens
        self.sampling = sampling or SamplingParams()
        encode_chat = model.tokenizer.encode_chat
        self._caption_system = encode_chat([{"role": "system", "content": CAPTION_SYSTEM}], add_generation_prompt=False)
        self._summary_system = encode_chat([{"role": "system", "content": SUMMARY_SYSTEM}], add_generation_prompt=False)
        self._close = model.tokenizer.encode("<|im_end|>\n")
        self.state = model.new_state()
        model.prefill(self.state, self._caption_system)
        self.since_roll: list[tuple[float, float, str]] = []  # what the live context holds, for the next roll
        self.rolls = 0

    # -- what subclasses provide ---------------------------------------------------------------------
    def segment_turn(self, frames: list[np.ndarray], timestamps: list[float]) -> str:
        """The user turn's text for one segment."""
        raise NotImplementedError

    def turn_ids(self, frames: list[np.ndarray], timestamps: list[float]) -> list[int]:
        """The token ids a segment's chat turn feeds (what the context budget is checked on)."""
        return self.model.tokenizer.encode_chat([{"role": "user", "content": self.segment_turn(frames, timestamps)}])

    def prefill_turn(self, state: HybridState, ids: list[int], frames: list[np.ndarray],
                     timestamps: list[float]) -> np.ndarray:
        """Fold a segment's turn into ``state``; return the last logits. Text only here."""
        return self.model.prefill(state, ids)

    # -- the Captioner protocol ----------------------------------------------------------------------
    def caption(self, frames: list[np.ndarray], timestamps: list[float]) -> str:
        """Caption one segment, continuing the conversation: only this segment's turn is fed."""
        ids = self.turn_ids(frames, timestamps)
        need = len(ids) + self.caption_tokens + len(self._close)
        if self.state.length + need > self.state.max_context:
            self._roll()
        if self.state.length + need > self.state.max_context:
            raise EdgekitError(f"one segment needs {need} tokens of context but only "
                               f"{self.state.max_context - self.state.length} are left after the summary",
                               "use a shorter --segment, a lower --fps or a larger --max-context")
        logits = self.prefill_turn(self.state, ids, frames, timestamps)
        tokens = list(self.model.decode(self.state, logits, self.sampling, self.caption_tokens))
        self.model.prefill(self.state, self._close)  # the reply's end, sampled or not, closes the turn
        text = one_line(self.model.tokenizer.decode(tokens, skip_special=True))
        self.since_roll.append((timestamps[0], timestamps[-1], text))
        return text

    def summarize(self, captions: list[tuple[float, float, str]]) -> str:
        """A summary of timestamped captions, made in a fresh state (the tower is released first)."""
        if not captions:
            return ""
        self.model.release_vision()
        room = self.state.max_context - self.summary_tokens
        kept = list(captions)
        while True:
            listing = "\n".join(f"[{clock(a)}-{clock(b)}] {text}" for a, b, text in kept)
            left_out = len(captions) - len(kept)
            note = f"({left_out} earlier captions left out)\n" if left_out else ""
            ids = self._summary_system + self.model.tokenizer.encode_chat([{
                "role": "user", "content": f"Timeline:\n{note}{listing}\n\nSummarize what happens in the video."}])
            if len(ids) <= room or len(kept) == 1:
                break
            kept.pop(0)  # the context budget wins over the oldest captions
        if len(ids) > room:
            raise EdgekitError(f"a caption is too long to summarize within {self.state.max_context} tokens",
                               "load the bundle with a larger --max-context")
        state = self.model.new_state()
        logits = self.model.prefill(state, ids)
        tokens = list(self.model.decode(state, logits, self.sampling, self.summary_tokens))
        return self.model.tokenizer.decode(tokens, skip_special=True).strip()

    def _roll(self) -> None:
        """Replace the conversation by the system prompt and a summary of what it held (bounded memory)."""
        if not self.since_roll:
            return
        start, end = self.since_roll[0][0], self.since_roll[-1][1]
        summary = self.summarize(self.since_roll)
        earlier = self.model.tokenizer.encode_chat([{"role": "user", "content": f"Earlier in the video "
                                                     f"({clock(start)}-{clock(end)}): {summary}"}],
                                                   add_generation_prompt=False)
        self.state = self.model.new_state()
        self.model.prefill(self.state, self._caption_system + earlier)
        self.since_roll = [(start, end, summary)]
        self.rolls += 1


SEGMENT_INTRO = "Video segment:\n"
SEGMENT_ASK = "\nDescribe this segment in one short sentence."


class VisionCaptioner(ChatCaptioner):
    """Frame pairs through the bundle's vision tower, as Qwen3.5 video blocks with their times."""

    description = "the bundle's vision tower (Qwen3.5 video frame pairs)"

    def __init__(self, model: Model, release_tower: bool = False, **options) -> None:
        """``release_tower``: free the tower once a segment's frames are encoded (and build it again for the
        next), so it is not resident beside the prefill and decode: a lower peak for a rebuild per segment."""
        super().__init__(model, **options)
        self.release_tower = release_tower
        self._pairs: list[FramePair] = []

    def turn_ids(self, frames: list[np.ndarray], timestamps: list[float]) -> list[int]:
        """Encodes the pairs (kept for ``prefill_turn``); the ids of the turn's rows, one pad per vision row.

        Counted from the rows themselves: the pads written into the turn's text would be encoded as the
        characters they are (message content cannot write special tokens), ~4x as many tokens.
        """
        rgb = [np.ascontiguousarray(f[..., ::-1]) for f in frames]  # OpenCV frames are BGR
        self._pairs = pairs_of(self.model.vision.encode_frames(rgb, size=frames[0].shape[:2]), timestamps)
        if self.release_tower:
            self.model.release_vision()
        return self.model.build_prompt(self.state, self._turn_parts()).ids.tolist()

    def prefill_turn(self, state: HybridState, ids: list[int], frames: list[np.ndarray],
                     timestamps: list[float]) -> np.ndarray:
        """The same turn, with the vision rows taken from the tower and their mRoPE positions (built again
        here, not kept from ``turn_ids``: a roll in between moves the positions the rows start at)."""
        return self.model.prefill_multimodal(state, self._turn_parts())

    def _turn_parts(self) -> list[str | FramePair]:
        """The user turn in Qwen3.5's chat template, each frame pair a video block with its time."""
        before, after = render_chat([{"role": "user", "content": "{turn}"}]).split("{turn}")
        return [before + SEGMENT_INTRO, *self._pairs, SEGMENT_ASK + after]


class FrameStatsCaptioner(ChatCaptioner):
    """For bundles without vision: frame pairs described by colour, brightness and motion."""

    description = "frame statistics (colour, brightness, motion) read by the text model; not vision"

    def segment_turn(self, frames: list[np.ndarray], timestamps: list[float]) -> str:
        lines = [f"<{t:.1f} seconds> {describe_pair(a, b)}" for t, a, b in frame_pairs(frames, timestamps)]
        return "Video segment, one line per frame pair:\n" + "\n".join(lines) + \
            "\nDescribe this segment in one short sentence."


def describe_pair(a: np.ndarray, b: np.ndarray) -> str:
    """``mostly red, brightness 0.42, motion 0.03`` for a pair of BGR frames."""
    mean = (a.reshape(-1, 3).mean(0) + b.reshape(-1, 3).mean(0)) / 2
    hue, saturation, value = cv2.cvtColor(mean.astype(np.uint8).reshape(1, 1, 3), cv2.COLOR_BGR2HSV)[0, 0]
    grey_a, grey_b = (cv2.cvtColor(x, cv2.COLOR_BGR2GRAY).astype(np.float32) / 255 for x in (a, b))
    motion = float(np.abs(grey_a - grey_b).mean())
    return f"mostly {colour_name(int(hue), int(saturation), int(value))}, brightness {value / 255:.2f}, " \
           f"motion {motion:.2f}"


def colour_name(hue: int, saturation: int, value: int) -> str:
    """A plain name for an OpenCV HSV colour (hue 0..179, saturation and value 0..255)."""
    if value < 40:
        return "black"
    if saturation < 40:
        return "white" if value > 200 else "grey"
    for limit, name in ((8, "red"), (20, "orange"), (33, "yellow"), (80, "green"), (100, "cyan"),
                        (130, "blue"), (150, "purple"), (170, "magenta")):
        if hue < limit:
            return name
    return "red"
