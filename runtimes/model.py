"""``Model``: a loaded bundle with the caller-owned state API, the same for every backend."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol

import numpy as np

from edgekit.bundle import Bundle
from edgekit.config import TextConfig
from edgekit.errors import EdgekitError
from edgekit.memory import release_freed_heap
from edgekit.multimodal import FramePair, MultimodalPrompt, Part, VisionEmbeds, build_prompt
from edgekit.runtimes.state import HybridState
from edgekit.sampling import Sampler, SamplingParams
from edgekit.tokenizer import Tokenizer


class Decoder(Protocol):
    """What a backend provides: fresh states and one forward over T tokens."""

    backend: str
    max_context: int

    def new_state(self) -> HybridState: ...

    def forward(self, state: HybridState, ids: np.ndarray, positions: np.ndarray,
                embeds: np.ndarray | None = None) -> np.ndarray: ...


def text_positions(start: int, count: int) -> np.ndarray:
    """mRoPE positions for text: the three rows (t, h, w) are all the running index."""
    return np.broadcast_to(np.arange(start, start + count, dtype=np.int64), (3, count))


def open_vision_encoder(bundle: Bundle, decoder: Decoder, threads: int | None = None):
    """The bundle's vision encoder: ``VisionEncoder`` (vision.onnx), or for a .pte bundle
    ``ExecuTorchVisionEncoder`` on the decoder's program; both give ``encode_image``/``encode_frames``."""
    if decoder.backend == "executorch":
        from edgekit.runtimes.executorch_vision import ExecuTorchVisionEncoder

        return ExecuTorchVisionEncoder(bundle, decoder)
    from edgekit.runtimes.vision import VisionEncoder

    return VisionEncoder(bundle, threads=threads)


class Model:
    """``state = model.new_state(); logits = model.prefill(state, ids); logits = model.step(state, tok)``."""

    def __init__(self, bundle: Bundle, decoder: Decoder, tokenizer: Tokenizer, chunk_size: int | None = None,
                 threads: int | None = None) -> None:
        self.bundle = bundle
        self.decoder = decoder
        self.tokenizer = tokenizer
        self.chunk_size = chunk_size or bundle.manifest.runtime.chunk_size
        self.eos_ids: list[int] = list(bundle.manifest.tokenizer.eos_ids)
        self.threads = threads
        self._vision = None

    @property
    def config(self) -> TextConfig:
        return self.bundle.text_config

    @property
    def max_context(self) -> int:
        return self.decoder.max_context

    def new_state(self) -> HybridState:
        return self.decoder.new_state()

    @property
    def has_vision(self) -> bool:
        return self.bundle.manifest.has_vision

    @property
    def vision(self):
        """The bundle's vision encoder (loaded on first use; a one-line error if the bundle has none)."""
        if self._vision is None:
            self._vision = open_vision_encoder(self.bundle, self.decoder, self.threads)
        return self._vision

    def release_vision(self) -> None:
        """Free the vision encoder (``model.vision`` loads it again when next used): text-only turns after
        an image need not keep the tower resident."""
        if self._vision is not None:
            self._vision.release()
        self._vision = None
        release_freed_heap()

    def prefill(self, state: HybridState, ids: Sequence[int]) -> np.ndarray:
        """Fold prompt tokens into ``state`` in chunks of ``chunk_size``; return the last logits [V]."""
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        self._check_room(state, len(ids))
        logits = None
        for start in range(0, len(ids), self.chunk_size):
            chunk = ids[start:start + self.chunk_size]
            logits = self.decoder.forward(state, chunk, text_positions(state.next_position, len(chunk)))
            state.next_position += len(chunk)
            state.tokens.extend(int(t) for t in chunk)
        return logits

    def build_prompt(self, state: HybridState, parts: Sequence[Part]) -> MultimodalPrompt:
        """Expand text, images and frame pairs into decoder rows positioned after ``state`` (not fed)."""
        tokens = None
        if self.has_vision or any(isinstance(p, (VisionEmbeds, FramePair)) for p in parts):
            tokens = self.bundle.manifest.vision.token_ids
        return build_prompt(self.tokenizer, parts, tokens, state.next_position, self.config.hidden_size)

    def prefill_multimodal(self, state: HybridState, parts: Sequence[Part]) -> np.ndarray:
        """Fold a prompt of text, images (``VisionEmbeds``) and video frame pairs (``FramePair``) into
        ``state``; return the last logits [V]. Vision rows enter the decoder as embeddings, with
        transformers' mRoPE positions; ``state.next_position`` ends where the following text goes.
        Images and frames are encoded first with ``model.vision`` (``encode_image``/``encode_frames``).
        """
        prompt = self.build_prompt(state, parts)
        self._check_room(state, len(prompt))
        logits = None
        for start in range(0, len(prompt), self.chunk_size):
            end = start + self.chunk_size
            vision = prompt.vision_rows[start:end]
            ids = np.where(vision, -1, prompt.ids[start:end])  # the graph takes rows for ids < 0 from embeds
            embeds = prompt.embeds[start:end] if vision.any() else None
            logits = self.decoder.forward(state, ids, prompt.positions[:, start:end], embeds)
            state.tokens.extend(int(t) for t in prompt.ids[start:end])
        state.next_position = prompt.next_position
        return logits

    def _check_room(self, state: HybridState, count: int) -> None:
        if count == 0:
            raise EdgekitError("the prompt is empty", "pass at least one token")
        if state.length + count > state.max_context:
            raise EdgekitError(
                f"the prompt needs {state.length + count} tokens of context but the budget is "
                f"{state.max_context}", "shorten the prompt (or use fewer or smaller images) or load the "
                "bundle with a larger max_context")

    def step(self, state: HybridState, token: int) -> np.ndarray:
        """Fold one token into ``state``; return the next logits [V]."""
        return self.prefill(state, [token])

    def generate(self, prompt_ids: Sequence[int], state: HybridState | None = None,
                 sampling: SamplingParams | None = None, max_new_tokens: int = 256,
                 stop_ids: Sequence[int] | None = None) -> Iterator[int]:
        """Yield new token ids: prefill ``prompt_ids`` (onto ``state`` if given), then ``decode``."""
        state = state if state is not None else self.new_state()
        history = list(state.tokens) + list(prompt_ids)
        logits = self.prefill(state, prompt_ids)
        return self.decode(state, logits, sampling, max_new_tokens, stop_ids, history)

    def decode(self, state: HybridState, logits: np.ndarray, sampling: SamplingParams | None = None,
               max_new_tokens: int = 256, stop_ids: Sequence[int] | None = None,
               history: Sequence[int] | None = None) -> Iterator[int]:
        """Yield tokens sampled from ``logits`` onwards, folding each into ``state``, until a stop id.

        The stop token is not yielded, and it is not folded into the state either; the next turn starts
        with it (the chat template closes a turn with ``<|im_end|>``). ``history`` (default: the
        state's tokens) feeds the repetition penalty.
        """
        sampler = Sampler(sampling or SamplingParams())
        stops = set(self.eos_ids if stop_ids is None else stop_ids)
        history = list(state.tokens if history is None else history)
        vocab = self.tokenizer.vocab_size  # embedding rows past the tokenizer are padding: never sample them
        for _ in range(max_new_tokens):
            logits[vocab:] = -np.inf
            token = sampler.sample(logits, history)
            if token in stops:
                return
            yield token
            history.append(token)
            if state.length >= state.max_context:
                return
            logits = self.step(state, token)
