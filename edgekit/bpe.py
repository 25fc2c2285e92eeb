"""Byte-level BPE read from a ``tokenizer.json``, held in a few numpy arrays.

The ``tokenizers`` library keeps Qwen3.5's 248k-token vocabulary and 500k merges as Rust hash maps of
strings (~88 MiB resident); here the same data is ~15 MiB: every token's bytes in one buffer with offsets,
the merges as sorted int64 keys ``left * n + right`` with their rank (the merged token is looked up when a
merge is applied), and the tokens' hashes sorted for whole-word lookups. Encoding follows ``tokenizers`` step by step (added tokens split out first,
then the normalizer, the pre-tokenizer's regex, byte-level symbols, and merges lowest rank first, leftmost
first on ties), so the ids are the same; ``tests/test_bpe.py`` checks that against ``tokenizers``.

Only the features byte-level BPE files such as Qwen's use are read; a file using others is refused with
a one-line error instead of being tokenized differently.
"""

from __future__ import annotations

import heapq
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from operator import itemgetter

import numpy as np
import regex

_WORD_CACHE_SIZE = 20_000


class UnsupportedTokenizer(ValueError):
    """The ``tokenizer.json`` uses a feature this reader does not implement."""


def _byte_chars() -> list[str]:
    """GPT-2's byte -> printable character table that byte-level BPE vocabularies are written in."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in chars:
            chars[b] = chr(256 + extra)
            extra += 1
    return [chars[b] for b in range(256)]


_CHAR_TO_BYTE = {ord(c): b for b, c in enumerate(_byte_chars())}
_BYTE_TO_CHAR = dict(enumerate(_byte_chars()))  # str.translate table of latin-1 text: byte -> vocabulary character
# Vocabulary characters -> latin-1 bytes; any other character below 256 -> one latin-1 cannot encode.
_TO_LATIN1 = {**{c: "\U0010ffff" for c in range(256)}, **_CHAR_TO_BYTE}


def token_bytes(token: str) -> bytes:
    """The bytes a vocabulary string stands for: each character through the byte table, or, when one is
    outside it (an added token such as ``<|im_end|>`` written in plain text), the string's own UTF-8."""
    if all(ord(c) in _CHAR_TO_BYTE for c in token):
        return bytes(_CHAR_TO_BYTE[ord(c)] for c in token)
    return token.encode("utf-8")


@dataclass(frozen=True)
class AddedToken:
    """A token matched in the raw text before BPE (``<|im_start|>``); ``special`` ones can be skipped."""

    id: int
    content: str
    special: bool


class ByteLevelBPE:
    """Encode text to ids and decode ids to text, as ``tokenizers`` does for a byte-level BPE file."""

    def __init__(self, data: object) -> None:
        """Build from a parsed ``tokenizer.json``; raise ``ValueError`` if it is not one and
        ``UnsupportedTokenizer`` for features not read."""
        if not isinstance(data, dict):  # not a tokenizer.json at all: the caller reports it as corrupt
            raise ValueError(f"it holds a JSON {type(data).__name__}, not an object")
        model = data.get("model")
        if not isinstance(model, dict):
            raise ValueError("it has no 'model' section")
        _check_supported(data, model)
        vocab: dict[str, int] = model["vocab"]
        added = [AddedToken(int(t["id"]), t["content"], bool(t.get("special"))) for t in data.get("added_tokens") or []]
        self.size = max([*vocab.values(), *(t.id for t in added)], default=-1) + 1
        strings = [""] * self.size
        for text, token_id in vocab.items():
            strings[token_id] = text
        index = _StringIndex(vocab, strings)
        self._merge_keys, self._merge_ranks = _merge_table(model["merges"], index, self.size)
        self._hashes, self._hash_ids = index.hashes, index.order_ids
        for token in added:  # added tokens decode as their content
            strings[token.id] = token.content
        self._bytes, self._offsets = _pieces(strings)
        del strings, index
        self._known = np.zeros(self.size, bool)
        self._known[[*vocab.values(), *(t.id for t in added)]] = True
        self.count = int(self._known.sum())
        self._special = np.zeros(self.size, bool)
        self._special[[t.id for t in added if t.special]] = True
        self.added = {t.content: t.id for t in added}
        self._byte_ids = [self.lookup(bytes([b])) for b in range(256)]
        if None in self._byte_ids:
            raise UnsupportedTokenizer("its vocabulary lacks single-byte tokens (it is not a byte-level BPE)")
        self._ignore_merges = bool(model.get("ignore_merges"))
        self._nfc = (data.get("normalizer") or {}).get("type") == "NFC"
        self._split = regex.compile(data["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"])
        self._added_all = _alternation([t.content for t in added])
        self._added_plain = _alternation([t.content for t in added if not t.special])
        self.special_pattern = _alternation([t.content for t in added if t.special])  # to find them in text
        self._cache: dict[bytes, tuple[int, ...]] = {}

    def piece(self, token_id: int) -> bytes:
        """The bytes of one id (b"" for an id the file does not know)."""
        if not 0 <= token_id < self.size or not self._known[token_id]:
            return b""
        return self._bytes[self._offsets[token_id]:self._offsets[token_id + 1]]

    def lookup(self, piece: bytes) -> int | None:
        """The vocabulary id whose bytes are ``piece`` (added tokens not included), or None."""
        h = hash(piece.decode("latin-1").translate(_BYTE_TO_CHAR))  # the hash of its vocabulary string
        at = int(np.searchsorted(self._hashes, h))
        while at < len(self._hashes) and self._hashes[at] == h:
            token_id = int(self._hash_ids[at])
            if self.piece(token_id) == piece:
                return token_id
            at += 1
        return None

    def is_special(self, token_id: int) -> bool:
        """Whether ``token_id`` is a special added token (``<|im_end|>``), which decoding may skip."""
        return 0 <= token_id < self.size and bool(self._special[token_id])

    def encode(self, text: str, special: bool = True) -> list[int]:
        """Ids of ``text``; added tokens written in it become their ids (``special=False``: only non-special ones)."""
        added = self._added_all if special else self._added_plain
        ids: list[int] = []
        at = 0
        for match in added.finditer(text) if added is not None else ():
            ids += self._encode_segment(text[at:match.start()])
            ids.append(self.added[match.group()])
            at = match.end()
        ids += self._encode_segment(text[at:])
        return ids

    def decode(self, ids: Sequence[int], skip_special: bool = False) -> str:
        """Text of ``ids``: their bytes joined and read as UTF-8 (invalid bytes become U+FFFD)."""
        pieces = (self.piece(int(i)) for i in ids if not (skip_special and self.is_special(int(i))))
        return b"".join(pieces).decode("utf-8", "replace")

    def _encode_segment(self, text: str) -> list[int]:
        """Ids of text without added tokens: normalized, split by the pre-tokenizer's regex, each word BPE'd."""
        if not text:
            return []
        if self._nfc:
            text = unicodedata.normalize("NFC", text)
        ids: list[int] = []
        at = 0
        for match in self._split.finditer(text):  # "Isolated": the matches and the text between them are words
            if match.start() > at:
                ids += self._encode_word(text[at:match.start()].encode("utf-8"))
            ids += self._encode_word(match.group().encode("utf-8"))
            at = match.end()
        if at < len(text):
            ids += self._encode_word(text[at:].encode("utf-8"))
        return ids

    def _encode_word(self, word: bytes) -> tuple[int, ...]:
        cached = self._cache.get(word)
        if cached is None:
            whole = self.lookup(word) if self._ignore_merges else None  # a word in the vocabulary is one token
            cached = (whole,) if whole is not None else self._merge(word)
            if len(self._cache) >= _WORD_CACHE_SIZE:
                self._cache.clear()
            self._cache[word] = cached
        return cached

    def _merge(self, word: bytes) -> tuple[int, ...]:
        """Merge the word's byte tokens: the lowest-ranked adjacent pair first, the leftmost of equal ones.

        A heap of (rank, position, left, right) over a linked list of symbols, as in ``tokenizers``;
        an entry whose pair has changed since it was pushed is skipped.
        """
        symbols = [self._byte_ids[b] for b in word]
        n = len(symbols)
        after, before = [*range(1, n), -1], list(range(-1, n - 1))
        keys = np.array(symbols[:-1], np.int64) * self.size + np.array(symbols[1:], np.int64)
        at = np.minimum(np.searchsorted(self._merge_keys, keys), len(self._merge_keys) - 1)
        hit = np.flatnonzero(self._merge_keys[at] == keys).tolist()
        heap = [(rank, i, symbols[i], symbols[i + 1]) for i, rank in zip(hit, self._merge_ranks[at[hit]].tolist())]
        heapq.heapify(heap)
        while heap:
            _, i, left, right = heapq.heappop(heap)
            j = after[i]
            if j < 0 or symbols[i] != left or symbols[j] != right:
                continue
            merged = self.lookup(self.piece(left) + self.piece(right))
            if merged is None:
                made = self.piece(left) + self.piece(right)
                raise UnsupportedTokenizer(f"a merge makes {made!r}, which is not in the vocabulary")
            symbols[i], symbols[j] = merged, -1
            after[i] = after[j]
            if after[i] >= 0:
                before[after[i]] = i
                self._push(heap, i, merged, symbols[after[i]])
            if before[i] >= 0:
                self._push(heap, before[i], symbols[before[i]], merged)
        return tuple(s for s in symbols if s >= 0)

    def _push(self, heap: list, position: int, left: int, right: int) -> None:
        rank = self._rank(left, right)
        if rank != _NO_MERGE:
            heapq.heappush(heap, (rank, position, left, right))

    def _rank(self, left: int, right: int) -> int:
        """The rank of the merge of two adjacent ids (lower merges first), or ``_NO_MERGE``."""
        key = left * self.size + right
        at = int(np.searchsorted(self._merge_keys, key))
        if at < len(self._merge_keys) and self._merge_keys[at] == key:
            return int(self._merge_ranks[at])
        return _NO_MERGE


_NO_MERGE = 2**62


def _pieces(strings: list[str]) -> tuple[bytes, np.ndarray]:
    """Every id's bytes in one buffer, and the offsets of each id's bytes (id i: ``offsets[i]:offsets[i+1]``)."""
    try:  # the usual case, every character in the byte table: one pass over all the text
        data = "".join(strings).translate(_TO_LATIN1).encode("latin-1")
        lengths = np.fromiter(map(len, strings), np.int64, len(strings))
    except UnicodeEncodeError:
        pieces = [token_bytes(s) for s in strings]
        data = b"".join(pieces)
        lengths = np.fromiter(map(len, pieces), np.int64, len(pieces))
    return data, np.concatenate([[0], np.cumsum(lengths)])


def _merge_table(merges: list, index: _StringIndex, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Merges as sorted keys ``left * size + right`` with their rank (position in the file).

    A pair listed twice keeps its last rank, as ``tokenizers`` does (a later entry overwrites the map's).
    """
    if merges and isinstance(merges[0], str):
        merges = [merge.split(" ", 1) for merge in merges]
    if merges and set(map(len, merges)) != {2}:
        raise UnsupportedTokenizer("a merge is not a pair of tokens")
    keys = index.ids(list(map(itemgetter(0), merges))).astype(np.int64) * size
    keys += index.ids(list(map(itemgetter(1), merges)))
    ranks = np.arange(len(merges), dtype=np.int32)
    order = np.lexsort((-ranks, keys))  # by key, the last rank of a repeated pair first
    keys, ranks = keys[order], ranks[order]
    first = np.ones(len(keys), bool)
    first[1:] = keys[1:] != keys[:-1]
    return keys[first], ranks[first]


class _StringIndex:
    """Vocabulary strings -> ids without a dict: the strings' hashes sorted, with their ids."""

    def __init__(self, vocab: dict[str, int], strings: list[str]) -> None:
        hashes = np.fromiter(map(hash, vocab), np.int64, len(vocab))
        ids = np.fromiter(vocab.values(), np.int32, len(vocab))
        order = np.argsort(hashes, kind="stable")
        self.hashes, self.order_ids = hashes[order], ids[order]
        self.unique = bool((self.hashes[1:] != self.hashes[:-1]).all())
        self._strings = strings

    def ids(self, texts: list[str]) -> np.ndarray:
        """The ids of ``texts``, all of which must be vocabulary strings (checked).

        When no two vocabulary strings share a hash, a text whose hash is a vocabulary string's is that
        string, unless the file is broken and its 64-bit hash collides (odds ~1e-8 for Qwen's 500k merges;
        bundles are checksummed besides), so the strings themselves are compared only on the slow path.
        """
        hashes = np.fromiter(map(hash, texts), np.int64, len(texts))
        order = np.argsort(hashes)  # sorted queries search ~2x faster (the cache stays warm)
        at = np.empty(len(texts), np.int64)
        at[order] = np.searchsorted(self.hashes, hashes[order])
        at = np.minimum(at, len(self.hashes) - 1)
        ids = self.order_ids[at]
        if self.unique and (self.hashes[at] == hashes).all():
            return ids
        found = [self.find(t) for t in texts]  # a hash two strings share (rare), or a string not in the vocabulary
        if None in found:
            raise UnsupportedTokenizer(f"a merge names {texts[found.index(None)]!r}, which is not in the vocabulary")
        return np.array(found, np.int32)

    def find(self, text: str) -> int | None:
        """The id of one vocabulary string, or None."""
        h = hash(text)
        at = int(np.searchsorted(self.hashes, h))
        while at < len(self.hashes) and self.hashes[at] == h:
            if self._strings[int(self.order_ids[at])] == text:
                return int(self.order_ids[at])
            at += 1
        return None


def _alternation(contents: list[str]) -> regex.Pattern | None:
    """A pattern matching any of ``contents``, leftmost and then longest (as ``tokenizers`` splits added tokens)."""
    if not contents:
        return None
    return regex.compile("|".join(regex.escape(c) for c in sorted(contents, key=len, reverse=True)))


def _check_supported(data: dict, model: dict) -> None:
    """Refuse what this reader would tokenize differently from ``tokenizers``, naming the feature."""
    def need(ok: bool, what: str) -> None:
        if not ok:
            raise UnsupportedTokenizer(what)

    need(model.get("type") == "BPE", f"its model is {model.get('type')!r}, not a byte-level 'BPE'")
    need(isinstance(model.get("vocab"), dict) and isinstance(model.get("merges"), list), "its BPE has no vocab/merges")
    need(not model.get("dropout"), "it sets BPE dropout")
    need(not model.get("byte_fallback"), "it sets byte_fallback")
    need(not model.get("continuing_subword_prefix") and not model.get("end_of_word_suffix"),
         "it sets a subword prefix or suffix")
    normalizer = data.get("normalizer")
    kind = normalizer.get("type") if isinstance(normalizer, dict) else normalizer
    need(kind in (None, "NFC"), f"its normalizer is {kind!r}")
    pre = data.get("pre_tokenizer") or {}
    steps = pre.get("pretokenizers") if pre.get("type") == "Sequence" else None
    split, level = (steps + [{}, {}])[:2] if isinstance(steps, list) and len(steps) == 2 else ({}, {})
    need(split.get("type") == "Split" and "Regex" in (split.get("pattern") or {})
         and split.get("behavior") == "Isolated" and not split.get("invert")
         and level.get("type") == "ByteLevel" and not level.get("add_prefix_space") and not level.get("use_regex"),
         "its pre-tokenizer is not a regex Split (Isolated) followed by ByteLevel")
    need((data.get("decoder") or {}).get("type") == "ByteLevel", "its decoder is not ByteLevel")
    expected = len(model["vocab"])  # tokenizers numbers added tokens the vocabulary lacks from its size on
    for token in sorted(data.get("added_tokens") or [], key=lambda t: t.get("id", -1)):
        need(not (token.get("lstrip") or token.get("rstrip") or token.get("single_word")),
             f"added token {token.get('content')!r} sets lstrip/rstrip/single_word")
        if model["vocab"].get(token.get("content")) != token.get("id"):
            need(token.get("id") == expected, f"added token {token.get('content')!r} has id {token.get('id')}, "
                                              f"not {expected} (the next after the vocabulary)")
            expected += 1
