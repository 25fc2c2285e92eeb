"""`edgekit ask` on the tiny random bundle: retrieval (FTS + time window + camera) and prompt assembly are
checked exactly; the answer's words are gibberish on random weights, so only its format is."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime

import numpy as np
import pytest

import edgekit
from edgekit.errors import EdgekitError
from edgekit.runtimes import PromptCache
from edgekit.sampling import SamplingParams
from edgekit.tokenizer import render_chat
from edgekit.video.ask import ASK_SYSTEM, answer, build_prompt, parse_time, retrieve
from edgekit.video.store import Store
from edgekit.video.timeline import Timeline

MORNING = datetime(2026, 11, 30, 9, 0, 0).timestamp()  # local time
CAPTIONS = {"porch": ["an empty street", "a red car arrives", "a man walks a dog", "the red car leaves"],
            "garden": ["a red ball on the grass"]}
SAMPLING = SamplingParams(temperature=1.0, top_k=20, seed=0)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    out = tmp_path_factory.mktemp("ask") / "out"
    for camera, captions in CAPTIONS.items():
        timeline = Timeline(out, mode="append", camera=camera)
        timeline.start_run("test", {"fps": 2.0, "size": 224, "segment_s": 60.0}, "test")
        timeline.started = MORNING + (30 if camera == "garden" else 0)
        for i, caption in enumerate(captions):  # one a minute from 09:00
            timeline.add_segment(i, 60.0 * i, 60.0 * i + 60, [60.0 * i], [], caption, [np.zeros((8, 8, 3), np.uint8)])
        timeline.close()
    return Store(out)


@pytest.fixture(scope="module")
def model(int4_bundle):
    return edgekit.load(int4_bundle, threads=1)


def captions(segments):
    return [(s["camera"], s["caption"]) for s in segments]


def test_retrieval_is_full_text_within_the_window(store):
    ranked = retrieve(store, "When did the red car arrive?")
    assert set(captions(ranked[:2])) == {("porch", "a red car arrives"), ("porch", "the red car leaves")}
    assert captions(ranked)[2:] == [("garden", "a red ball on the grass")]  # "red" only
    assert captions(retrieve(store, "red car", camera="garden")) == [("garden", "a red ball on the grass")]
    assert captions(retrieve(store, "red car", since=MORNING + 120)) == [("porch", "the red car leaves")]
    assert captions(retrieve(store, "red car", until=MORNING + 60)) == [("garden", "a red ball on the grass")]
    # no word matches: the latest segments of the window stand in, latest first
    assert captions(retrieve(store, "zebra?", camera="porch", limit=2)) == [("porch", "the red car leaves"),
                                                                             ("porch", "a man walks a dog")]
    assert retrieve(store, "red", since=MORNING + 3600) == []


def test_the_prompt_holds_the_instruction_then_the_captions_in_time_order(store, model):
    ranked = retrieve(store, "when did the red car arrive?")
    prompt = build_prompt(model, "when did the red car arrive?", ranked, answer_tokens=32)
    user = ("Timeline:\n"
            "[2026-11-30 09:00:30] garden: a red ball on the grass\n"
            "[2026-11-30 09:01:00] porch: a red car arrives\n"
            "[2026-11-30 09:03:00] porch: the red car leaves\n"
            "\nQuestion: when did the red car arrive?")
    system = model.tokenizer.encode(render_chat([{"role": "system", "content": ASK_SYSTEM}], add_generation_prompt=False))
    assert prompt.ids == system + model.tokenizer.encode(render_chat([{"role": "user", "content": user}]))
    assert prompt.system_tokens == len(system) and prompt.left_out == 0
    # 5 tokens short: the lowest-ranked caption (the ball: "red" only) is left out, the rest stays in time order
    tight = build_prompt(model, "when did the red car arrive?", ranked,
                         answer_tokens=model.max_context - len(prompt.ids) + 5)
    assert tight.left_out == 1 and captions(tight.used) == [("porch", "a red car arrives"), ("porch", "the red car leaves")]
    with pytest.raises(EdgekitError, match="does not fit"):
        build_prompt(model, "when? " * 10, ranked, answer_tokens=model.max_context)


def test_the_instruction_prefix_is_kept_in_the_prompt_cache(store, model):
    cache = PromptCache(model)
    first = build_prompt(model, "when did the red car arrive?", retrieve(store, "red car"), 8)
    answer(model, cache, first, SAMPLING, 8)
    assert cache.hits == 0
    second = build_prompt(model, "who walked a dog?", retrieve(store, "dog"), 8)
    text = answer(model, cache, second, SAMPLING, 8)
    assert cache.hits >= second.system_tokens and "\n" not in text


def test_ask_answers_and_cites_the_segments_it_used(int4_bundle, store):
    proc = subprocess.run([sys.executable, "-m", "edgekit", "ask", str(store.out), "when did the red car arrive?",
                           "--bundle", str(int4_bundle), "--camera", "porch", "--answer-tokens", "16",
                           "--temperature", "1", "--top-k", "20", "--seed", "0"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 4 and lines[0].strip()  # one answer line, whatever the random model says
    assert lines[1:] == ["sources (2 segments):", "  [2026-11-30 09:01:00] porch: a red car arrives",
                         "  [2026-11-30 09:03:00] porch: the red car leaves"]
    bad = subprocess.run([sys.executable, "-m", "edgekit", "ask", str(store.out), "red", "--bundle", str(int4_bundle),
                          "--since", "yesterday-ish"], capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and bad.stderr.startswith("error: cannot read the time 'yesterday-ish'")


def test_times_are_dates_or_how_long_ago():
    assert parse_time("2h", now=10_000.0) == 10_000.0 - 7200 and parse_time("3d", now=0.0) == -3 * 86400
    assert parse_time("2026-11-30T09:01") == MORNING + 60
    assert parse_time("2026-11-30T09:00:00+00:00") == datetime.fromisoformat("2026-11-30T09:00:00+00:00").timestamp()
