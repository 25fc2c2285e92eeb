"""Shared test vectors for the Android app's plain-Kotlin core, computed by the Python implementation.

    python tests/vectors/generate.py          # rewrite tests/vectors/*.json
    python tests/vectors/generate.py --check  # exit 1 if they differ from what the code gives now

``tests/test_vectors.py`` runs the check, so the vectors cannot go stale; ``android_demo/check.sh``
runs the Kotlin tests against the same files.

- ``chat.json``: ``edgekit.tokenizer.render_chat`` on message lists (and the messages it refuses).
- ``sampling.json``: ``edgekit.sampling.pick`` (the portable sampling spec: the token a uniform
  number selects) on logits rows, plus the app's seeded PRNG (SplitMix64, defined here) so both
  sides agree on the uniforms a seed gives. Masked logits (-inf) are written as null.
- ``manifest.json``: bundle manifests written by ``edgekit.manifest.write_manifest`` over small files,
  valid and broken, with the verdict an app must reach (``ok`` or an error kind) and, for the camera
  screen, whether ``graphs.vision`` is usable (``camera``).
- ``vision.json``: camera prompts (prefix + video pads + suffix) expanded by
  ``edgekit.multimodal.build_prompt`` with a ``FramePair``: ids, vision rows, mRoPE positions.
- ``detokenize.json``: ids -> text by the Qwen3.5 ``tokenizer.json`` (``Tokenizer.decode``, with and
  without special tokens, and ``StreamDecoder``'s pieces); ``detokenize-tokenizer.json`` is that
  tokenizer.json cut down to the ids the cases use (same ids, same strings), so the app's reader is
  tested on a small file.
"""

from __future__ import annotations

import copy
import functools
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from edgekit.manifest import FORMAT_VERSION, write_manifest
from edgekit.errors import EdgekitError
from edgekit.export.executorch_export import EMBEDDING_4BIT_OP, REQUIRED_OPS
from edgekit.export.tokenizer_files import build_tokenizer_json
from edgekit.manifest import VisionTokens
from edgekit.multimodal import FramePair, VisionEmbeds, build_prompt
from edgekit.sampling import SamplingParams, pick
from edgekit.tokenizer import Tokenizer, render_chat

HERE = Path(__file__).parent
MASK64 = (1 << 64) - 1


def splitmix64(seed: int, n: int) -> list[int]:
    """SplitMix64 (Steele, Lea, Flood 2014): the app's PRNG. Uniform in [0, 1) is ``(x >> 11) * 2**-53``."""
    out, state = [], seed & MASK64
    for _ in range(n):
        state = (state + 0x9E3779B97F4A7C15) & MASK64
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
        out.append(z ^ (z >> 31))
    return out


def chat_vectors() -> dict:
    cases = [
        ([{"role": "user", "content": "Hello, how are you?"}], True, False),
        ([{"role": "user", "content": "Hello, how are you?"}], True, True),
        ([{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Hi!"}], True, False),
        ([{"role": "system", "content": "Be brief."}], False, False),
        ([{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"},
          {"role": "user", "content": "Und auf Deutsch? Ünïcödé 日本語 🙂\nzweite Zeile"}], True, False),
        ([{"role": "user", "content": ""}], True, False),
        ([], True, False),
        ([{"role": "tool", "content": "x"}], True, False),
        ([{"role": "user"}], True, False),
    ]
    out = []
    for messages, add_generation_prompt, enable_thinking in cases:
        case = {"messages": messages, "add_generation_prompt": add_generation_prompt,
                "enable_thinking": enable_thinking}
        try:
            case["expected"] = render_chat(messages, add_generation_prompt, enable_thinking)
        except EdgekitError as err:
            case["error"] = str(err)
        out.append(case)
    return {"template": "qwen3_5", "cases": out}


def _margin_ok(params: SamplingParams, logits: np.ndarray, history: list[int], u: float) -> bool:
    """False when ``u`` (or ``top_p``) lies within 1e-9 of a decision boundary, where float rounding
    differences between implementations could flip the choice."""
    eps = 1e-9
    return all(pick(params, logits, history, min(max(v, 0.0), 1 - 2**-53)) == pick(params, logits, history, u)
               for v in (u - eps, u + eps)) and (
        params.top_p == 1.0 or all(pick(SamplingParams(**{**params.__dict__, "top_p": tp}), logits, history, u)
                                   == pick(params, logits, history, u)
                                   for tp in (max(params.top_p - eps, 1e-12), min(params.top_p + eps, 1.0))))


def sampling_vectors() -> dict:
    rng = np.random.default_rng(20261122)
    settings = [
        dict(temperature=0.0), dict(temperature=0.7), dict(temperature=1.0, top_k=20),
        dict(temperature=1.3, top_k=5, top_p=0.9), dict(temperature=1.0, top_p=0.5),
        dict(temperature=0.8, top_k=40, top_p=0.95, repetition_penalty=1.3),
        dict(temperature=1.0, repetition_penalty=0.8), dict(temperature=2.0, top_k=1),
        dict(temperature=1.0, top_k=3),
    ]
    cases = []
    for i, kw in enumerate(settings * 3):
        params = SamplingParams(**kw)
        size = int(rng.integers(8, 120))
        logits = (rng.normal(0, 3, size)).astype(np.float32)
        if i % 3 == 1:
            logits[rng.integers(0, size, size // 4)] = -np.inf   # masked tokens
        if i % 3 == 2:
            logits = np.round(logits).astype(np.float32)           # many ties
        history = rng.integers(0, size, int(rng.integers(0, 12))).tolist()
        draws = []
        while len(draws) < 4:
            u = float(rng.random())
            if _margin_ok(params, logits, history, u):
                draws.append({"u": u, "token": pick(params, logits, history, u)})
        cases.append({"params": {k: v for k, v in params.__dict__.items() if k != "seed"},
                      "logits": [None if np.isneginf(x) else float(x) for x in logits],
                      "history": history, "draws": draws})
    seeds = [0, 1, 42, 2**63 + 12345]
    prng = [{"seed": f"{s:016x}", "next": [f"{x:016x}" for x in splitmix64(s, 5)],
             "uniform": [(x >> 11) * 2.0**-53 for x in splitmix64(s, 5)]} for s in seeds]
    return {"spec": "edgekit.sampling.pick", "splitmix64": prng, "cases": cases}


EXECUTORCH_OPS = REQUIRED_OPS + [EMBEDDING_4BIT_OP]  # what an 8da4w export lists


def _common_body(backend: str) -> dict:
    """The backend-independent manifest fields (as ``export/bundle_writer.common_manifest`` writes them),
    for a small made-up model; the graph files are small stand-ins (an app never runs them in the vectors)."""
    return {
        "created_by": "edgekit test vectors",
        "backend": backend,
        "target": "android",
        "source": {"model": "edgekit/tiny-random", "model_type": "qwen3_5", "config": {"model_type": "qwen3_5"}},
        "state": {"deltanet_layers": [0, 1, 2, 4, 5, 6], "attention_layers": [3, 7],
                  "conv": {"shape": [1, 3, 384], "dtype": "float32", "layout": "batch,kernel-1,channels"},
                  "recurrent": {"shape": [1, 4, 32, 32], "dtype": "float32", "layout": "batch,heads,dk,dv"},
                  "kv": {"row_shape": [2, 64], "dtype": "float32", "layout": "batch,kv_heads,seq,head_dim"}},
        "tokenizer": {"file": "tokenizer.json", "chat_template": "qwen3_5", "eos_ids": [248046, 248044],
                      "pad_id": 248044},
        "generation": {"temperature": 1.0, "top_k": 20, "top_p": 0.95},
        "runtime": {"max_context": 2048, "chunk_size": 128},
    }


def _bundle(files: dict[str, str], body: dict) -> dict:
    """The manifest ``write_manifest`` writes for these files (sizes + sha256 computed by the real code)."""
    with tempfile.TemporaryDirectory() as tmp:
        for name, text in files.items():
            (Path(tmp) / name).write_text(text)
        return write_manifest(Path(tmp), body).data


def manifest_vectors() -> dict:
    pte = {"model.pte": "stand-in for the ExecuTorch program\n", "tokenizer.json": '{"model": {"type": "BPE"}}\n'}
    onnx = {"decoder.onnx": "stand-in graph\n", "decoder.onnx.data": "stand-in weights\n",
            "tokenizer.json": '{"model": {"type": "BPE"}}\n'}
    et = _bundle(pte, {**_common_body("executorch"),
                       "graphs": {"decoder": {"file": "model.pte", "methods": ["forward", "get_state", "set_state"],
                                              "delegate": "xnnpack", "max_tokens_per_call": 128,
                                              "kv_update": "resident", "logits": "last"}},
                       "required_ops": EXECUTORCH_OPS,
                       "quantization": {"weights": "8da4w", "block_size": 32, "activations": "int8, dynamic per token",
                                        "embedding": "int4"}})
    ox = _bundle(onnx, {**_common_body("onnx"),
                        "graphs": {"decoder": {"file": "decoder.onnx", "data": "decoder.onnx.data", "opset": 23,
                                               "contrib_ops": True, "deltanet": "contrib", "kv_update": "in_place",
                                               "logits": "last"}},
                        "quantization": {"weights": "int4", "block_size": 32}})

    def changed(manifest: dict, path: str, value) -> dict:
        out = copy.deepcopy(manifest)
        *parents, last = path.split(".")
        node = out
        for key in parents:
            node = node[key]
        if value is _DELETE:
            del node[last]
        else:
            node[last] = value
        return out

    ops = EXECUTORCH_OPS
    vision = changed(et, "graphs.vision", _vision_graph())
    cases = [
        ("executorch bundle", et, pte, ops, "ok", "no_vision"),
        ("executorch bundle with the vision encoder", vision, pte, ops, "ok", "ok"),
        ("vision: tokens_per_pair disagrees with the grid", changed(vision, "graphs.vision.tokens_per_pair", 50), pte,
         ops, "ok", "malformed"),
        ("vision: no camera prompt", changed(vision, "graphs.vision.camera_prompt", _DELETE), pte, ops, "ok",
         "malformed"),
        ("vision: frame size not a multiple of 32", changed(vision, "graphs.vision.frame_size", [200, 200]), pte, ops,
         "ok", "malformed"),
        ("executorch bundle, runtime with extra ops", et, pte, ops + ["aten::add.out"], "ok"),
        ("onnx bundle: this app runs ExecuTorch", ox, onnx, ops, "other_backend"),
        ("future format version", changed(et, "format_version", FORMAT_VERSION + 1), pte, ops, "format_version"),
        ("not an edgekit manifest", changed(et, "format", "something-else"), pte, ops, "format"),
        ("unknown backend", changed(et, "backend", "tflite"), pte, ops, "backend"),
        ("op missing from the runtime", et, pte, ops[:-1], "required_ops"),
        ("executorch without required_ops", changed(et, "required_ops", _DELETE), pte, ops, "malformed"),
        ("decoder file not listed", changed(et, "graphs.decoder.file", "other.pte"), pte, ops, "malformed"),
        ("wrong chat template", changed(et, "tokenizer.chat_template", "llama3"), pte, ops, "chat_template"),
        ("missing file", et, {"tokenizer.json": pte["tokenizer.json"]}, ops, "missing_file"),
        ("corrupt file", et, {**pte, "model.pte": "stand-in for the ExecuTorch Program\n"}, ops, "checksum"),
        ("truncated file", et, {**pte, "model.pte": "stand-in"}, ops, "size"),
    ]
    return {"format_version": FORMAT_VERSION, "chat_template": "qwen3_5",
            "cases": [{"name": n, "manifest": m, "files": f, "runtime_ops": o, "expect": e,
                       **({"camera": c[0]} if c else {})} for n, m, f, o, e, *c in cases]}


_DELETE = object()


@functools.cache
def _tokenizer_json() -> str:
    """The Qwen3.5 tokenizer.json a bundle ships (built offline, cached by edgekit)."""
    with tempfile.TemporaryDirectory() as tmp:
        return build_tokenizer_json(Path(tmp)).read_text(encoding="utf-8")


@functools.cache
def _tokenizer() -> Tokenizer:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "tokenizer.json"
        path.write_text(_tokenizer_json(), encoding="utf-8")
        return Tokenizer.from_file(path)


CAMERA_TEXT = "Describe what you see in one short sentence."


def _vision_tokens(tokenizer: Tokenizer) -> VisionTokens:
    return VisionTokens(*(tokenizer.token_id(f"<|{name}|>") for name in ("image_pad", "video_pad", "vision_start",
                                                                          "vision_end")))


def camera_prompt(grid: tuple[int, int, int], seconds: float = 0.0, system: str | None = None):
    """``build_prompt`` of a camera turn: [a system turn], a user turn with one frame pair and the question,
    and the generation prompt (thinking off). Returns the prompt and its prefix / suffix ids around the pads."""
    tokenizer = _tokenizer()
    tokens = _vision_tokens(tokenizer)
    n = grid[1] * grid[2] // 4
    pair = FramePair(VisionEmbeds(np.zeros((n, 4), np.float32), grid, "video"), seconds)
    head = render_chat([{"role": "system", "content": system}], add_generation_prompt=False) if system else ""
    tail = CAMERA_TEXT + "<|im_end|>\n" + render_chat([])
    prompt = build_prompt(tokenizer, [head + "<|im_start|>user\n", pair, tail], tokens)
    first = int(np.argmax(prompt.vision_rows))
    ids = prompt.ids.tolist()
    return prompt, ids[:first], ids[first + n:]


def _vision_graph(size: int = 224, hidden: int = 64) -> dict:
    """``graphs.vision`` of an ExecuTorch bundle with the vision encoder (the layout the app reads)."""
    grid = (1, size // 16, size // 16)
    tokens = _vision_tokens(_tokenizer())
    _, prefix, suffix = camera_prompt(grid)
    return {"file": "model.pte", "method": "vision_encoder", "frame_size": [size, size], "grid": list(grid),
            "tokens_per_pair": grid[1] * grid[2] // 4, "weights": "8da8w", "patch_size": 16, "temporal_patch_size": 2,
            "merge_size": 2, "head_dim": 16, "rope_theta": 10000.0, "position_grid": 48, "out_hidden_size": hidden,
            "image": {"min_pixels": 65536, "max_pixels": 16777216},
            "video": {"min_pixels": 4096, "max_pixels": 25165824, "fps": 2},
            "token_ids": tokens.__dict__,
            "camera_prompt": {"prefix": prefix, "suffix": suffix, "pad_id": tokens.video, "text": CAMERA_TEXT}}


def vision_vectors() -> dict:
    cases = []
    for grid, seconds, system in (((1, 14, 14), 0.0, None), ((1, 8, 12), 3.5, "Be brief."),
                                  ((1, 12, 8), 12.25, None), ((1, 2, 2), 0.0, None)):
        prompt, prefix, suffix = camera_prompt(grid, seconds, system)
        cases.append({"grid": list(grid), "merge_size": 2, "tokens_per_pair": grid[1] * grid[2] // 4,
                      "prefix": prefix, "suffix": suffix, "pad_id": _vision_tokens(_tokenizer()).video,
                      "ids": prompt.ids.tolist(), "vision_rows": np.flatnonzero(prompt.vision_rows).tolist(),
                      "positions": prompt.positions.tolist(), "next_position": prompt.next_position})
    return {"spec": "edgekit.multimodal.build_prompt", "cases": cases}


DETOKENIZE_TEXTS = [
    "A red car drives past a tree.",
    "  two spaces, a tab\tand\nnew lines\r\n",
    'quotes "x", a backslash \\ and {json: [1]}',
    "Ünïcödé café, naïve façade",
    "日本語のテキストと中文字符",
    "emoji 🙂👍🏽 family 👨‍👩‍👧 flag 🇩🇪",
    "<|im_start|>assistant\n<think>\n\n</think>\n\nA cat 🐈 sleeps.<|im_end|>",
    "<|vision_start|><|video_pad|><|video_pad|><|vision_end|>Hi",
]


def _detokenize_cases() -> list[dict]:
    tokenizer = _tokenizer()
    id_lists = [tokenizer.encode(text) for text in DETOKENIZE_TEXTS]
    emoji = tokenizer.encode("👍")  # three byte-level tokens: cut, the character is incomplete
    assert len(emoji) == 3
    id_lists += [emoji[:1], emoji[:2], emoji[::-1], tokenizer.encode("日本") + emoji[:2] + tokenizer.encode("end")]
    cases = []
    for ids in id_lists:
        stream = tokenizer.stream(skip_special=True)
        cases.append({"ids": ids, "text": tokenizer.decode(ids), "text_skip_special": tokenizer.decode(ids, True),
                      "stream_skip_special": [stream.push(i) for i in ids] + [stream.flush()]})
    return cases


def detokenize_vectors() -> dict:
    return {"tokenizer": "detokenize-tokenizer.json", "cases": _detokenize_cases()}


def detokenize_tokenizer() -> dict:
    """The Qwen3.5 tokenizer.json with only the vocabulary the cases use (and its first merges, which a
    reader must skip); ids and token strings unchanged."""
    full = json.loads(_tokenizer_json())
    used = {i for case in _detokenize_cases() for i in case["ids"]}
    vocab = {token: i for token, i in full["model"]["vocab"].items() if i in used}
    model = {**full["model"], "vocab": dict(sorted(vocab.items(), key=lambda kv: kv[1])),
             "merges": full["model"]["merges"][:4]}
    return {"version": full["version"], "added_tokens": full["added_tokens"], "normalizer": full["normalizer"],
            "decoder": full["decoder"], "model": model}


VECTORS = {"chat.json": chat_vectors, "sampling.json": sampling_vectors, "manifest.json": manifest_vectors,
           "vision.json": vision_vectors, "detokenize.json": detokenize_vectors,
           "detokenize-tokenizer.json": detokenize_tokenizer}


def render(name: str) -> str:
    return json.dumps(VECTORS[name](), indent=1, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    stale = []
    for name in VECTORS:
        text = render(name)
        path = HERE / name
        if "--check" in argv:
            if not path.is_file() or path.read_text(encoding="utf-8") != text:
                stale.append(name)
        else:
            path.write_text(text, encoding="utf-8")
    if stale:
        print(f"stale vectors: {', '.join(stale)}; run python tests/vectors/generate.py", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
