"""Prefix reuse for the hybrid state: checkpoints taken while prefilling, found again by token prefix.

A DeltaNet state cannot be rewound: once a token is folded in, the state before it is gone. So the
cache keeps *checkpoints*: copies of the whole state (DeltaNet states + the KV rows so far) taken at
chosen positions (end of a system prompt, end of a turn, every N tokens). A new prompt resumes from
the checkpoint with the longest matching token prefix and only the rest is prefilled.

Checkpoints live in a trie over token ids, under a memory budget: the least recently used go first,
turn boundaries last. ``save``/``load`` keep a cache in one ``.npz`` file that names its bundle and
carries a sha256 of its contents.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgekit.errors import EdgekitError
from edgekit.files import atomic_write_bytes
from edgekit.runtimes.model import Model
from edgekit.runtimes.state import HybridState

CACHE_FORMAT = "edgekit-prompt-cache"
CACHE_VERSION = 1
# Eviction order: lower goes first among equally old checkpoints; turn boundaries are kept longest.
KIND_PRIORITY = {"periodic": 0, "segment": 1, "system": 2, "turn": 2}


@dataclass
class Checkpoint:
    tokens: tuple[int, ...]
    state: HybridState  # a copy taken right after ``tokens`` were folded in
    kind: str
    last_used: int

    @property
    def nbytes(self) -> int:
        return self.state.nbytes


@dataclass
class _Node:
    children: dict[int, "_Node"] = field(default_factory=dict)
    checkpoint: Checkpoint | None = None


class PromptCache:
    """Checkpoints of one bundle's states, found by longest token prefix.

    ``budget_bytes`` caps the memory the checkpoints hold; ``every`` also checkpoints each N tokens
    of a prefill (0: only at the positions the caller marks).
    """

    def __init__(self, model: Model, budget_bytes: int = 512 * 2**20, every: int = 0) -> None:
        if budget_bytes <= 0:
            raise EdgekitError(f"prompt cache budget {budget_bytes} bytes is too small",
                               "give a budget above 0 (a checkpoint of the 0.8B model is ~20 MiB plus its KV)")
        self.model = model
        self.budget_bytes = budget_bytes
        self.every = every
        self._root = _Node()
        self._checkpoints: list[Checkpoint] = []
        self._clock = itertools.count()
        self.hits = 0  # tokens not recomputed thanks to the cache, over the cache's lifetime

    # -- lookup and prefill ------------------------------------------------------------------------
    def longest_prefix(self, ids: Sequence[int]) -> Checkpoint | None:
        """The checkpoint with the longest token prefix of ``ids`` that leaves at least one token to feed."""
        node, best = self._root, None
        for depth, token in enumerate(ids[:-1], start=1):
            node = node.children.get(int(token))
            if node is None:
                break
            if node.checkpoint is not None and depth < len(ids):
                best = node.checkpoint
        return best

    def prefill(self, ids: Sequence[int], marks: Sequence[tuple[int, str]] = ()) -> tuple[HybridState, np.ndarray]:
        """A state holding ``ids`` and the last logits, resuming from the best checkpoint.

        ``marks`` are (position, kind) pairs: after ``ids[:position]`` a checkpoint of that kind is saved
        ("system", "turn", "segment"); ``every`` adds "periodic" ones.
        """
        ids = [int(t) for t in ids]
        if not ids:
            raise EdgekitError("the prompt is empty", "pass at least one token")
        start = self.longest_prefix(ids)
        if start is not None:
            start.last_used = next(self._clock)
            state = self._restore(start)
            self.hits += len(start.tokens)
        else:
            state = self.model.new_state()
        cuts = {pos: kind for pos, kind in marks if state.length < pos <= len(ids)}
        if self.every:
            first = (state.length // self.every + 1) * self.every
            cuts.update({pos: cuts.get(pos, "periodic") for pos in range(first, len(ids) + 1, self.every)})
        logits = None
        for pos in sorted(cuts) + ([len(ids)] if len(ids) not in cuts else []):
            if pos > state.length:
                logits = self.model.prefill(state, ids[state.length:pos])
            if pos in cuts:
                self.add(state, cuts[pos])
        return state, logits

    def add(self, state: HybridState, kind: str = "turn") -> None:
        """Save a checkpoint of ``state`` as it is now (a copy: the caller may go on using ``state``)."""
        if kind not in KIND_PRIORITY:
            raise EdgekitError(f"unknown checkpoint kind {kind!r}", f"use one of: {', '.join(KIND_PRIORITY)}")
        self._insert(_trimmed_copy(state), kind)

    def _insert(self, trimmed: HybridState, kind: str) -> None:
        """File a checkpoint state (KV trimmed to its length) under its tokens in the trie."""
        tokens = tuple(trimmed.tokens)
        node = self._root
        for token in tokens:
            node = node.children.setdefault(token, _Node())
        if node.checkpoint is not None:
            node.checkpoint.last_used = next(self._clock)
            return
        node.checkpoint = Checkpoint(tokens, trimmed, kind, next(self._clock))
        self._checkpoints.append(node.checkpoint)
        self._evict()

    @property
    def checkpoints(self) -> list[Checkpoint]:
        return list(self._checkpoints)

    def latest(self, kind: str | None = None) -> Checkpoint | None:
        """The most recently used checkpoint (of ``kind``, if given)."""
        matching = [c for c in self._checkpoints if kind is None or c.kind == kind]
        return max(matching, key=lambda c: c.last_used, default=None)

    # -- memory ------------------------------------------------------------------------------------
    @property
    def nbytes(self) -> int:
        return sum(c.nbytes for c in self._checkpoints)

    def __len__(self) -> int:
        return len(self._checkpoints)

    def _evict(self) -> None:
        while self._checkpoints and self.nbytes > self.budget_bytes:
            victim = min(self._checkpoints, key=lambda c: (KIND_PRIORITY[c.kind], c.last_used))
            self._remove(victim)

    def _remove(self, checkpoint: Checkpoint) -> None:
        self._checkpoints.remove(checkpoint)
        node = self._root
        for token in checkpoint.tokens:
            node = node.children[token]
        node.checkpoint = None

    def _restore(self, checkpoint: Checkpoint) -> HybridState:
        """A fresh full-size state equal to the checkpoint (its KV rows copied into new buffers)."""
        state = self.model.new_state()
        if checkpoint.state.length > state.max_context:
            raise EdgekitError(f"a cached prefix of {checkpoint.state.length} tokens exceeds the context budget "
                               f"of {state.max_context}", "load the bundle with a larger max_context")
        for kind in ("conv", "recurrent"):
            for i, array in getattr(checkpoint.state, kind).items():
                getattr(state, kind)[i][...] = array
        n = checkpoint.state.length
        for kind in ("keys", "values"):
            for i, array in getattr(checkpoint.state, kind).items():
                getattr(state, kind)[i][:, :, :n] = array[:, :, :n]
        state.length, state.next_position = n, checkpoint.state.next_position
        state.tokens = list(checkpoint.tokens)
        return state

    # -- persistence -------------------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        """Write every checkpoint to one ``.npz`` file (atomically), with the bundle id and a sha256."""
        arrays: dict[str, np.ndarray] = {}
        entries = []
        for n, cp in enumerate(self._checkpoints):
            arrays[f"{n}/tokens"] = np.asarray(cp.tokens, dtype=np.int64)
            arrays.update({f"{n}/{name}": np.ascontiguousarray(a) for name, a in cp.state.state.items()})
            entries.append({"kind": cp.kind, "length": cp.state.length, "next_position": cp.state.next_position})
        header = {"format": CACHE_FORMAT, "version": CACHE_VERSION, "bundle": self.model.bundle.digest,
                  "checkpoints": entries, "sha256": _digest(arrays)}
        arrays["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        atomic_write_bytes(Path(path), buffer.getvalue())

    @classmethod
    def load(cls, model: Model, path: str | Path, budget_bytes: int = 512 * 2**20, every: int = 0) -> "PromptCache":
        """Read a cache written by ``save``; refuses another bundle's cache or a damaged file."""
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as npz:
                arrays = {name: npz[name] for name in npz.files}
        except FileNotFoundError:
            raise EdgekitError(f"no prompt cache at {path}", "save one first") from None
        except (zipfile.BadZipFile, EOFError, ValueError, OSError) as err:
            raise EdgekitError(f"prompt cache {path} is unreadable ({type(err).__name__})",
                               "delete it; the cache is rebuilt as prompts are run") from None
        try:
            header = json.loads(arrays.pop("header").tobytes())
        except (KeyError, ValueError):
            raise EdgekitError(f"{path} is not an edgekit prompt cache", "delete it") from None
        if (not isinstance(header, dict) or header.get("format") != CACHE_FORMAT
                or header.get("version") != CACHE_VERSION):
            raise EdgekitError(f"{path} is not an edgekit prompt cache of version {CACHE_VERSION}", "delete it")
        if header.get("bundle") != model.bundle.digest:
            raise EdgekitError(f"prompt cache {path} belongs to another bundle ({header.get('bundle')}, "
                               f"not {model.bundle.digest})", "use the cache saved with this bundle, or delete it")
        if _digest(arrays) != header.get("sha256"):
            raise EdgekitError(f"prompt cache {path} is corrupt (checksum mismatch)", "delete it")
        cache = cls(model, budget_bytes=budget_bytes, every=every)
        for state, kind in _checkpoint_states(header.get("checkpoints"), arrays, model, path):
            cache._insert(state, kind)
        return cache


def _checkpoint_states(entries: object, arrays: dict[str, np.ndarray], model: Model,
                       path: Path) -> list[tuple[HybridState, str]]:
    """The checkpoints of a loaded file, each checked against the bundle: the arrays its config names, of
    its shapes and dtype, tokens that fit the vocabulary, a length the tokens match. A file that matches
    its checksum can still be crafted; what does not fit is refused here, before any array reaches a graph."""
    def bad(why: str) -> EdgekitError:
        return EdgekitError(f"prompt cache {path} does not fit this bundle ({why})", "delete it")

    if not isinstance(entries, list):
        raise bad("no checkpoint list")
    cfg = model.config
    vocab = model.tokenizer.vocab_size
    names = {f"{n}/{name}" for n in range(len(entries)) for name in HybridState.shapes(cfg, 1)}
    names |= {f"{n}/tokens" for n in range(len(entries))}
    if set(arrays) != names:
        raise bad("its arrays are not the state this bundle's config names")
    out = []
    for n, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("kind"), str) or entry["kind"] not in KIND_PRIORITY:
            raise bad(f"checkpoint {n} has no known kind")
        length, position = entry.get("length"), entry.get("next_position")
        if not all(type(v) is int for v in (length, position)) or length < 1 or position < 0:
            raise bad(f"checkpoint {n}: length {length!r}, position {position!r}")
        tokens = arrays[f"{n}/tokens"]
        if tokens.dtype != np.int64 or tokens.shape != (length,) or tokens.min() < 0 or tokens.max() >= vocab:
            raise bad(f"checkpoint {n}: tokens are not {length} ids below {vocab}")
        layers: dict[str, dict[int, np.ndarray]] = {"conv": {}, "recurrent": {}, "key": {}, "value": {}}
        for name, shape in HybridState.shapes(cfg, length).items():
            array = arrays[f"{n}/{name}"]
            if array.dtype != np.float32 or array.shape != shape:
                raise bad(f"checkpoint {n}: {name} is {array.dtype} {array.shape}, not float32 {shape}")
            kind, layer = name.split(".")
            layers[kind][int(layer)] = array
        out.append((HybridState(conv=layers["conv"], recurrent=layers["recurrent"], keys=layers["key"],
                                values=layers["value"], length=length, next_position=position,
                                tokens=tokens.tolist()), entry["kind"]))
    return out


def _trimmed_copy(state: HybridState) -> HybridState:
    """A copy whose KV buffers hold only the filled rows (a checkpoint needs no room to grow)."""
    return HybridState(
        conv={i: a.copy() for i, a in state.conv.items()},
        recurrent={i: a.copy() for i, a in state.recurrent.items()},
        keys={i: a[:, :, : state.length].copy() for i, a in state.keys.items()},
        values={i: a[:, :, : state.length].copy() for i, a in state.values.items()},
        length=state.length, next_position=state.next_position, tokens=list(state.tokens[: state.length]))


def _digest(arrays: dict[str, np.ndarray]) -> str:
    digest = hashlib.sha256()
    for name in sorted(arrays):
        digest.update(name.encode())
        digest.update(str(arrays[name].dtype).encode() + str(arrays[name].shape).encode())
        digest.update(np.ascontiguousarray(arrays[name]).tobytes())
    return digest.hexdigest()
