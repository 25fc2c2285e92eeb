"""One runtime under measurement, in its own process so that its peak RSS is its own.

Started by ``decode_speed.py`` as ``python decode_worker.py {edgekit,edgekit-et,genai} MODEL_DIR --threads N
--max-length L``. It loads the model, then answers one JSON request per stdin line
(``{"prompt": [...], "new_tokens": 64}``) with one stdout line ``@bench {...}`` holding the timings of a
greedy run: prefill from a fresh state, the first token from the prefill's logits, then ``new_tokens``
decode steps. Imports no torch, transformers or rich, so the RSS is the runtime's.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

MARKER = "@bench "
# A run: (prompt ids, decode steps) -> timings and generated ids.
Runner = Callable[[list[int], int], dict[str, Any]]


def peak_rss_bytes() -> int:
    """This process's peak resident set size so far: ``VmHWM``, which starts afresh at exec.

    (``ru_maxrss`` would not do: Linux starts it at the parent's peak.)
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status: peak RSS is measured on Linux only")


def timings(t_start: float, t_prefilled: float, t_first: float, t_end: float, tokens: list[int]) -> dict[str, Any]:
    """The reply for one run, from ``perf_counter`` stamps."""
    return {"prefill_s": t_prefilled - t_start, "ttft_s": t_first - t_start, "decode_s": t_end - t_first,
            "tokens": tokens}


class EdgekitRunner:
    """An edgekit bundle, loaded with a KV budget of ``max_length`` tokens (the same budget genai gets)."""

    def __init__(self, model_dir: str, threads: int, max_length: int) -> None:
        import edgekit

        self.model = edgekit.load(model_dir, threads=threads, max_context=max_length)

    def __call__(self, prompt: list[int], new_tokens: int) -> dict[str, Any]:
        model = self.model
        state = model.new_state()
        t_start = time.perf_counter()
        logits = model.prefill(state, prompt)
        t_prefilled = time.perf_counter()
        token = int(np.argmax(logits))
        t_first = time.perf_counter()
        tokens = [token]
        for _ in range(new_tokens):
            token = int(np.argmax(model.step(state, token)))
            tokens.append(token)
        return timings(t_start, t_prefilled, t_first, time.perf_counter(), tokens)


def genai_session_options(threads: int) -> dict[str, Any]:
    """The decoder session options overlaid on genai_config.json: the same threading as edgekit's session."""
    return {"intra_op_num_threads": threads, "inter_op_num_threads": 1, "session.intra_op.allow_spinning": "0"}


class GenaiRunner:
    """An onnxruntime-genai model folder, plus its tokenizer.json held the way edgekit.load holds one.

    An app needs a tokenizer, and og.Tokenizer (0.18) rejects the builder's ``Qwen3_5Tokenizer`` class, so the
    worker loads the folder's tokenizer.json with the ``tokenizers`` library, as edgekit does: both workers'
    RSS then include the same tokenizer.
    """

    def __init__(self, model_dir: str, threads: int, max_length: int) -> None:
        import onnxruntime_genai as og
        from tokenizers import Tokenizer

        self.og = og
        self.max_length = max_length
        config = og.Config(model_dir)
        config.overlay(json.dumps({"model": {"decoder": {"session_options": genai_session_options(threads)}}}))
        self.model = og.Model(config)
        self.tokenizer = Tokenizer.from_file(str(Path(model_dir) / "tokenizer.json"))

    def __call__(self, prompt: list[int], new_tokens: int) -> dict[str, Any]:
        params = self.og.GeneratorParams(self.model)
        # min_length = max_length: EOS never ends a run early (edgekit's loop ignores EOS too).
        params.set_search_options(max_length=self.max_length, min_length=self.max_length, do_sample=False)
        generator = self.og.Generator(self.model, params)
        t_start = time.perf_counter()
        generator.append_tokens(np.asarray(prompt, dtype=np.int32))
        t_prefilled = time.perf_counter()
        generator.generate_next_token()
        tokens = [int(generator.get_next_tokens()[0])]
        t_first = time.perf_counter()
        for _ in range(new_tokens):
            generator.generate_next_token()
            tokens.append(int(generator.get_next_tokens()[0]))
        return timings(t_start, t_prefilled, t_first, time.perf_counter(), tokens)


RUNTIMES: dict[str, Callable[[str, int, int], Runner]] = {
    "edgekit": EdgekitRunner, "edgekit-et": EdgekitRunner, "genai": GenaiRunner}


def reply(message: dict[str, Any]) -> None:
    """One protocol line on stdout (libraries may print other lines; the parent skips them)."""
    print(MARKER + json.dumps(message), flush=True)


def serve(run: Runner) -> None:
    """Answer requests until stdin closes."""
    for line in sys.stdin:
        request = json.loads(line)
        try:
            result = run(request["prompt"], request["new_tokens"])
        except Exception as err:  # report it to the parent, which records it instead of a number
            result = {"error": f"{type(err).__name__}: {err}"}
        reply({**result, "peak_rss_bytes": peak_rss_bytes()})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runtime", choices=sorted(RUNTIMES))
    parser.add_argument("model_dir")
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--max-length", type=int, required=True)
    args = parser.parse_args()
    t_start = time.perf_counter()
    try:
        run = RUNTIMES[args.runtime](args.model_dir, args.threads, args.max_length)
    except Exception as err:  # a model that does not load is a result to record, not a crash
        reply({"error": f"load failed: {type(err).__name__}: {err}"})
        return
    reply({"load_s": time.perf_counter() - t_start, "peak_rss_bytes": peak_rss_bytes()})
    serve(run)


if __name__ == "__main__":
    main()
