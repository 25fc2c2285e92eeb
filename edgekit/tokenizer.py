"""Device-side tokenizer: Qwen3.5 ``tokenizer.json`` via ``tokenizers``, chat template, streaming decode."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from tokenizers import Tokenizer as _RustTokenizer

from edgekit.errors import EdgekitError
from edgekit.memory import release_freed_heap

CHAT_TEMPLATE_ID = "qwen3_5"
CHAT_ROLES = ("system", "user", "assistant")
_THINKING_PROMPT = "<|im_start|>assistant\n<think>\n"
_NO_THINKING_PROMPT = "<|im_start|>assistant\n<think>\n\n</think>\n\n"
_REPLACEMENT_CHAR = "\ufffd"


class Tokenizer:
    """Text <-> ids for a bundle's ``tokenizer.json``. Adds no BOS; special tokens in text are parsed."""

    def __init__(self, tokenizer: _RustTokenizer) -> None:
        self._tok = tokenizer

    @classmethod
    def from_file(cls, path: Path) -> Tokenizer:
        """Load a ``tokenizer.json``."""
        path = Path(path)
        if not path.is_file():
            raise EdgekitError(f"no tokenizer file at {path}", "Pass the tokenizer.json of an exported bundle")
        tokenizer = cls(_RustTokenizer.from_file(str(path)))
        release_freed_heap()  # parsing the 15 MB JSON leaves ~180 MiB of freed heap resident otherwise
        return tokenizer

    @property
    def vocab_size(self) -> int:
        """Ids the tokenizer knows, special tokens included (Qwen3.5: 248,077; its logits are padded to 248,320)."""
        return self._tok.get_vocab_size(with_added_tokens=True)

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``; written special tokens such as ``<|im_start|>`` become their single ids."""
        return self._tok.encode(text, add_special_tokens=False).ids

    def decode(self, ids: Sequence[int], skip_special: bool = False) -> str:
        """Text of ``ids``; with ``skip_special`` the special tokens are left out."""
        return self._tok.decode([int(i) for i in ids], skip_special_tokens=skip_special)

    def token_id(self, text: str) -> int:
        """The id of a single token, e.g. ``token_id("<|im_end|>") == 248046``."""
        token_id = self._tok.token_to_id(text)
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
    assistant turn: with thinking off (the default) it holds an empty ``<think>`` block.
    """
    parts = []
    for message in messages:
        role = message.get("role") if isinstance(message, Mapping) else None
        if role not in CHAT_ROLES:
            raise EdgekitError(f"chat role {role!r} is not supported", "Use 'system', 'user' or 'assistant'")
        content = message.get("content")
        if not isinstance(content, str):
            raise EdgekitError(f"the {role} message has no text 'content'", "Give every message a 'content' string")
        parts.append(f"<|im_start|>{role}\n{content}<|im_end|>\n")
    if add_generation_prompt:
        parts.append(_THINKING_PROMPT if enable_thinking else _NO_THINKING_PROMPT)
    return "".join(parts)
