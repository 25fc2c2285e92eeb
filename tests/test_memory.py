"""Memory: KV pages committed as rows are written (logits bit-identical to a committed buffer), freed heap given
back after loads without changing a single token id, the vision tower releasable, the stage breakdown."""

from __future__ import annotations

import ctypes
import json
import mmap
import sys
import time

import numpy as np
import pytest

import edgekit
from edgekit.device.memory_profile import Levers, stages_in_child
from edgekit.memory import page_out_mapped, release_freed_heap, released_while_building, resident, set_heap_release
from edgekit.runtimes.state import HybridState, reserved_zeros
from edgekit.tokenizer import Tokenizer, render_chat


def _resident_pages(array: np.ndarray) -> int:
    """Pages of ``array``'s memory the kernel holds resident now (``mincore``)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
    pages = -(-array.nbytes // mmap.PAGESIZE)
    vec = (ctypes.c_ubyte * pages)()
    assert libc.mincore(array.ctypes.data, array.nbytes, vec) == 0, ctypes.get_errno()
    return sum(v & 1 for v in vec)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mincore residency is read on Linux")
def test_reserved_kv_pages_become_resident_only_when_written():
    kv = reserved_zeros((1, 2, 4096, 256))  # 8 MiB, as one attention layer's keys at the 0.8B shape
    assert kv.ctypes.data % 64 == 0 and kv.flags.writeable
    assert _resident_pages(kv) == 0
    kv[:, :, :3] = 1.0  # three rows of each head: one page per head
    assert _resident_pages(kv) == 2
    assert not kv[:, :, 3:].any()  # (reading maps the kernel's one zero page: mincore would count it)


def _mapped_rss(array: np.ndarray) -> int:
    """Resident bytes (``Rss`` in /proc/self/smaps) of the mapping that holds ``array``."""
    lines = open("/proc/self/smaps").read().splitlines()
    for n, line in enumerate(lines):
        span = line.split()[0]
        if "-" in span and not line.split()[0].endswith(":"):
            try:
                start, end = (int(x, 16) for x in span.split("-"))
            except ValueError:
                continue
            if start <= array.ctypes.data < end:
                return next(int(x.split()[1]) * 1024 for x in lines[n + 1:] if x.startswith("Rss:"))
    raise AssertionError("no mapping holds the array")


def _run(model, state, prompt, steps):
    logits = [model.prefill(state, prompt)]
    for _ in range(steps):
        logits.append(model.step(state, int(np.argmax(logits[-1]))))
    return logits


@pytest.mark.parametrize("bundle", ["int4_bundle", "fp32_bundle"])
def test_reserved_kv_logits_bit_identical_to_committed_buffers(bundle, request):
    model = edgekit.load(request.getfixturevalue(bundle), max_context=300)
    prompt = np.random.default_rng(3).integers(0, 1000, 200).tolist()  # two chunks, then decode past a page
    reserved = _run(model, model.new_state(), prompt, 40)
    committed = _run(model, HybridState.zeros(model.config, model.max_context, commit_kv=True), prompt, 40)
    assert all(np.array_equal(a, b) for a, b in zip(reserved, committed, strict=True))


def test_forked_reserved_state_decodes_like_its_parent(int4_bundle):
    model = edgekit.load(int4_bundle, max_context=128)
    state = model.new_state()
    model.prefill(state, list(range(30, 60)))
    fork = state.fork()
    assert all(not np.shares_memory(fork.keys[i], state.keys[i]) for i in state.keys)
    assert np.array_equal(model.step(fork, 7), model.step(state, 7))


# Scripts, special tokens typed in text and the chat template: the ids must not change with the load.
CORPUS = [
    "Grüße aus Köln, naïve café — ½ € ™",
    "日本語のテキストと中文混合，한국어도 있어요。",
    "Привет, мир! مرحبا بالعالم हिन्दी ไทย",
    "emoji 🙂👍🏽🇫🇷🦩 and math 𝔘𝔫𝔦 ∑∫ 𓀀 龘",
    "def f(x):\n\treturn x ** 2  # 12345\r\n\n   trailing   ",
    "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>Describe<|im_end|>\n<think>\n\n</think>",
    render_chat([{"role": "system", "content": "Réponds en français."}, {"role": "user", "content": "你好 👋"},
                 {"role": "assistant", "content": "Bonjour !"}, {"role": "user", "content": "<tool_call>x"}]),
]


def test_tokenizer_ids_unchanged_by_giving_heap_back(int4_bundle):
    from tokenizers import Tokenizer as RustTokenizer

    path = int4_bundle / "tokenizer.json"
    plain = RustTokenizer.from_file(str(path))  # as loaded before: no heap given back
    tok = Tokenizer.from_file(path)
    for text in CORPUS:
        ids = tok.encode(text)
        assert ids == plain.encode(text, add_special_tokens=False).ids
        assert tok.decode(ids) == plain.decode(ids, skip_special_tokens=False)
    assert release_freed_heap() == sys.platform.startswith("linux")


def test_vision_tower_released_and_loaded_again(int4_bundle):
    model = edgekit.load(int4_bundle)
    frames = list(np.random.default_rng(0).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8))
    first = model.vision.encode_frames(frames).embeds
    model.release_vision()
    assert model._vision is None
    assert np.array_equal(model.vision.encode_frames(frames).embeds, first)


def test_levers_parse_flags_and_session_config():
    levers = Levers.parse(["release_heap=0", "session.disable_prepacking=1", "reserved_kv=off"])
    assert (levers.release_heap, levers.reserved_kv, levers.tokenizer_first) == (False, False, True)
    assert levers.session_config == {"session.disable_prepacking": "1"}
    paced = Levers.parse(["build_every_ms=20", "build_step_mib=32"])
    assert (paced.build_every_ms, paced.build_step_mib, paced.session_config) == (20.0, 32.0, {})


@pytest.mark.skipif(resident() is None, reason="needs /proc/self/smaps_rollup")
def test_stage_breakdown_in_a_fresh_process(int4_bundle):
    result = stages_in_child(int4_bundle, threads=1, pp=16, tg=4)
    names = [s["stage"] for s in result["stages"]]
    assert names == ["python", "imports", "tokenizer", "decoder", "prefill", "decode", "vision", "vision released"]
    for stage in result["stages"]:
        assert 0 < stage["anonymous"] + stage["file"] <= stage["rss"] + 0.2 <= stage["peak"] + 0.2
    state = result["state"]
    assert state["tokens"] == 20 and state["kv_used_bytes"] == 20 * state["kv_bytes_per_token"]
    assert result["bundle"]["weights_bytes"] == sum(
        f["bytes"] for n, f in json.loads((int4_bundle / "manifest.json").read_text())["files"].items()
        if n.startswith("decoder.onnx"))
    assert result["peak_text_mib"] == result["stages"][5]["peak"]




@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="MADV_PAGEOUT is Linux's")
def test_paged_out_mapping_reads_back_the_same_bytes(tmp_path):
    data = np.random.default_rng(1).integers(0, 255, 64 * mmap.PAGESIZE, dtype=np.uint8)
    data.tofile(tmp_path / "weights.bin")
    mapped = np.memmap(tmp_path / "weights.bin", dtype=np.uint8, mode="r")
    assert np.array_equal(mapped, data) and _mapped_rss(mapped) == mapped.nbytes
    advised = page_out_mapped(tmp_path)
    if advised == 0:
        pytest.skip("this kernel has no MADV_PAGEOUT (Linux < 5.4)")
    assert advised >= mapped.nbytes and _mapped_rss(mapped) == 0  # no longer counted in this process's RSS
    assert np.array_equal(mapped, data)  # read back from the file


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="MADV_PAGEOUT is Linux's")
def test_mapped_pages_released_while_the_block_runs(tmp_path):
    data = np.random.default_rng(2).integers(0, 255, 64 * mmap.PAGESIZE, dtype=np.uint8)
    data.tofile(tmp_path / "weights.bin")
    set_heap_release(True, build_every_s=0.01, build_step=0)  # the process's pacing: a pass at every tick
    try:
        with released_while_building(tmp_path):
            mapped = np.memmap(tmp_path / "weights.bin", dtype=np.uint8, mode="r")
            assert np.array_equal(mapped, data)  # every page read: resident
            for _ in range(500):  # the release thread pages them out while the block still runs
                if _mapped_rss(mapped) == 0:
                    break
                time.sleep(0.01)
            else:
                pytest.skip("this kernel has no MADV_PAGEOUT (Linux < 5.4)")
            assert np.array_equal(mapped, data)  # read back from the file
    finally:
        set_heap_release(True)
    assert _mapped_rss(mapped) == 0  # and once more at the end


def test_logits_identical_with_mapped_weights_paged_out(int4_bundle):
    prompt = np.random.default_rng(4).integers(0, 1000, 40).tolist()
    try:
        set_heap_release(True, page_out=False, while_building=False)
        kept = edgekit.load(int4_bundle, max_context=128)
        expected = _run(kept, kept.new_state(), prompt, 10)
    finally:
        set_heap_release(True, page_out=True)
    paged = edgekit.load(int4_bundle, max_context=128)
    assert all(np.array_equal(a, b) for a, b in zip(expected, _run(paged, paged.new_state(), prompt, 10), strict=True))


@pytest.mark.parametrize("bundle", ["int4_bundle", "fp32_bundle"])
def test_logits_identical_with_the_arena_shrunk_after_each_prefill(bundle, request):
    """Each multi-token run shrinks onnxruntime's arena (a decode step's does not): prefill chunks and the
    decode steps between them give the logits of a decoder with no arena at all, bit for bit."""
    from edgekit.bundle import Bundle
    from edgekit.runtimes.model import Model
    from edgekit.runtimes.onnx_decoder import OnnxDecoder

    path = request.getfixturevalue(bundle)
    prompt = np.random.default_rng(5).integers(0, 1000, 90).tolist()
    shrunk = edgekit.load(path, max_context=200, chunk_size=32)
    assert shrunk.decoder._shrink is not None
    expected = _run(shrunk, shrunk.new_state(), prompt, 8) + _run(shrunk, shrunk.new_state(), prompt[:40], 4)
    plain_bundle = Bundle.open(path)
    plain = Model(plain_bundle, OnnxDecoder(plain_bundle, max_context=200, cpu_arena=False), shrunk.tokenizer,
                  chunk_size=32)
    assert plain.decoder._shrink is None
    got = _run(plain, plain.new_state(), prompt, 8) + _run(plain, plain.new_state(), prompt[:40], 4)
    assert len(got) == len(expected) == 9 + 5
    assert all(np.array_equal(a, b) for a, b in zip(expected, got, strict=True))
