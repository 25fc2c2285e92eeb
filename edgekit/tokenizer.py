"""Device-side tokenizer: a bundle's Qwen3.5 ``tokenizer.json`` (read by ``edgekit.bpe``), chat template, streaming
decode."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from edgekit.bpe import ByteLevelBPE, UnsupportedTokenizer, token_bytes
from edgekit.errors import EdgekitError
from edgekit.memory import release_freed_heap

CHAT_TEMPLATE_ID = "qwen3_5"
CHAT_ROLES = ("system", "user", "assistant")
_THINKING_PROMPT = "<|im_start|>assistant\n<think>\n"
_NO_THINKING_PROMPT = "<|im_start|>assistant\n<think>\n\n</think>\n\n"
_REPLACEMENT_CHAR = "\ufffd"


class Tokenizer:
    """Text <-> ids for a bundle's ``tokenizer.json``. Adds no BOS.

    ``encode`` parses special tokens written in the text (for template text and ``--raw`` prompts);
    ``encode_chat`` encodes what users wrote as plain text, so only the template emits control tokens.
    """

    def __init__(self, bpe: ByteLevelBPE) -> None:
        self._bpe = bpe
        self._specials = bpe.special_pattern

    @classmethod
    def from_file(cls, path: Path) -> Tokenizer:
        """Load a ``tokenizer.json``."""
        path = Path(path)
        if not path.is_file():
            raise EdgekitError(f"no tokenizer file at {path}", "Pass the tokenizer.json of an exported bundle")
        try:
            data = json.loads(path.read_bytes())
            tokenizer = cls(ByteLevelBPE(data))
        except UnsupportedTokenizer as err:
            raise EdgekitError(f"tokenizer file {path} is not one edgekit can read: {err}",
                               "export the bundle with edgekit's Qwen3.5 tokenizer (drop tokenizer.json from the "
                               "checkpoint folder)") from None
        except (ValueError, KeyError, TypeError, IndexError, AttributeError) as err:  # not JSON, or not this shape
            first = (str(err).strip().splitlines() or [type(err).__name__])[0]
            raise EdgekitError(f"tokenizer file {path} is corrupt ({type(err).__name__}: {first[:160]})",
                               "re-export or re-copy the bundle (`edgekit verify` checks every file)") from None
        del data
        release_freed_heap()  # the parsed JSON leaves ~150 MiB of freed heap resident otherwise
        return tokenizer

    @property
    def vocab_size(self) -> int:
        """Ids the tokenizer knows, special tokens included (Qwen3.5: 248,077; its logits are padded to 248,320)."""
        return self._bpe.count

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``; written special tokens such as ``<|im_start|>`` become their single ids."""
        return self._bpe.encode(_text(text))

    def encode_plain(self, text: str) -> list[int]:
        """Token ids of ``text`` with special tokens written in it encoded as the characters they are."""
        return self._bpe.encode(_text(text), special=False)

    def encode_parts(self, parts: Sequence[tuple[str, bool]]) -> list[int]:
        """Token ids of ``(text, is_template)`` parts: special tokens count only where the template wrote them.

        The text between two template special tokens is encoded in one piece (content included), which
        is what ``encode`` of the joined string gives when the content holds no special token.
        """
        ids: list[int] = []
        plain: list[str] = []
        for text, is_template in parts:
            text = _text(text)
            if not is_template or self._specials is None:
                plain.append(text)
                continue
            at = 0
            for match in self._specials.finditer(text):
                plain.append(text[at:match.start()])
                if "".join(plain):
                    ids += self.encode_plain("".join(plain))
                plain = []
                ids.append(self._bpe.added[match.group()])
                at = match.end()
            plain.append(text[at:])
        if "".join(plain):
            ids += self.encode_plain("".join(plain))
        return ids

    def encode_chat(self, messages: list[dict[str, str]], add_generation_prompt: bool = True,
                    enable_thinking: bool = False) -> list[int]:
        """``render_chat``'s prompt as ids, each message's content encoded as plain text."""
        return self.encode_parts(chat_parts(messages, add_generation_prompt, enable_thinking))

    def decode(self, ids: Sequence[int], skip_special: bool = False) -> str:
        """Text of ``ids``; with ``skip_special`` the special tokens are left out."""
        return self._bpe.decode(ids, skip_special)

    def token_id(self, text: str) -> int:
        """The id of a single token, e.g. ``token_id("<|im_end|>") == 248046``."""
        token_id = self._bpe.added.get(text)
        if token_id is None and text:
            token_id = self._bpe.lookup(token_bytes(text))
        if token_id is None:
            raise EdgekitError(f"{text!r} is not a single token of this tokenizer", "Pass one token, e.g. '<|im_end|>'")
        return token_id

    def stream(self, skip_special: bool = False) -> StreamDecoder:
        """A decoder that turns ids into text as they are generated."""
        return StreamDecoder(self, skip_special)


class StreamDecoder:
    """Incremental decode: ``push`` returns only completed text, holding back partial UTF-8 characters."""

    def __init__(self, tokenizer: Tokenizer, skip_special: bool = False) -> None:
        self._tokenizer = tokenizer
        self._skip_special = skip_special
        self._pending: list[int] = []

    def push(self, token_id: int) -> str:
        """Add one id; return the text it completes ('' while a multi-byte character is unfinished)."""
        self._pending.append(int(token_id))
        text = self._tokenizer.decode(self._pending, self._skip_special)
        if text.endswith(_REPLACEMENT_CHAR):
            return ""
        self._pending.clear()
        return text

    def flush(self) -> str:
        """Return whatever is held back (an unfinished character decodes as U+FFFD) and reset."""
        text = self._tokenizer.decode(self._pending, self._skip_special) if self._pending else ""
        self._pending.clear()
        return text


def render_chat(
    messages: list[dict[str, str]], add_generation_prompt: bool = True, enable_thinking: bool = False
) -> str:
    """Render messages with the Qwen3.5 chat template (``CHAT_TEMPLATE_ID``).

    Each turn is ``<|im_start|>{role}\\n{content}<|im_end|>\\n``. The generation prompt opens an
    assistant turn: with thinking off (the default) it holds an empty ``<think>`` block. To feed a
    model, prefer ``Tokenizer.encode_chat``: this string parsed by ``encode`` would turn special tokens
    typed in the content into control tokens.
    """
    return "".join(text for text, _ in chat_parts(messages, add_generation_prompt, enable_thinking))


def chat_parts(messages: list[dict[str, str]], add_generation_prompt: bool = True,
               enable_thinking: bool = False) -> list[tuple[str, bool]]:
    """The chat template as ``(text, is_template)`` parts: the content of each message is not template."""
    parts: list[tuple[str, bool]] = []
    for message in messages:
        role = message.get("role") if isinstance(message, Mapping) else None
        if role not in CHAT_ROLES:
            raise EdgekitError(f"chat role {role!r} is not supported", "Use 'system', 'user' or 'assistant'")
        content = message.get("content")
        if not isinstance(content, str):
            raise EdgekitError(f"the {role} message has no text 'content'", "Give every message a 'content' string")
        parts += [(f"<|im_start|>{role}\n", True), (content, False), ("<|im_end|>\n", True)]
    if add_generation_prompt:
        parts.append((_THINKING_PROMPT if enable_thinking else _NO_THINKING_PROMPT, True))
    return parts


def _text(text: object) -> str:
    """``text`` itself, or a one-line error: tokenizers raises a TypeError for anything but str."""
    if not isinstance(text, str):
        raise EdgekitError(f"cannot tokenize a {type(text).__name__}", "pass text")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: what Python makes of invalid UTF-8 in argv or stdin
        raise EdgekitError("the text is not valid UTF-8", "pass the prompt as UTF-8 text") from None
    return text
