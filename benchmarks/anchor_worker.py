"""One runtime under measurement, in its own process so that its peak RSS is its own.

Started by ``anchors.py`` as ``python anchor_worker.py RUNTIME MODEL_PATH --threads N --max-length L``. It loads
the model, then answers one JSON request per stdin line with one stdout line ``@bench {...}``:

- ``{"task": "decode", "prompt": [...], "new_tokens": 64}``: a greedy run: prefill from a fresh state, the first
  token from the prefill's logits, then ``new_tokens`` decode steps;
- ``{"task": "second_turn", "prefix": [...], "turn": [...]}``: the first token after ``prefix + turn`` when the
  prefix was processed before (a long system prompt or document, or an earlier turn), through the runtime's
  own way of keeping it. The first such request also processes ``prefix + turn`` cold once (``cold_ttft_s``)
  and builds what the runtime keeps (``prefix_s``), so the parent can check the reused path gives the cold
  path's token.

Imports no torch, transformers or rich (the upstream ExecuTorch runner aside: its Python runtime links
libtorch), so the RSS is the runtime's.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

MARKER = "@bench "


def peak_rss_bytes() -> int:
    """This process's peak resident set size so far: ``VmHWM``, which starts afresh at exec.

    (``ru_maxrss`` would not do: Linux starts it at the parent's peak.)
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status: peak RSS is measured on Linux only")


def timings(t_start: float, t_prefilled: float, t_first: float, t_end: float, tokens: list[int]) -> dict[str, Any]:
    """The reply for one decode run, from ``perf_counter`` stamps."""
    return {"prefill_s": t_prefilled - t_start, "ttft_s": t_first - t_start, "decode_s": t_end - t_first,
            "tokens": tokens}


class Runner:
    """A loaded model. Subclasses give ``prefill``/``step`` (logits of the last position) and ``fresh``, or
    override ``decode``; and ``prepare_prefix``/``resume`` for the second turn."""

    mechanism = ""  # how the second turn reuses the prefix, for the results

    def fresh(self) -> None:
        """Start a new sequence (from an empty state)."""
        raise NotImplementedError

    def prefill(self, ids: list[int]) -> np.ndarray:
        raise NotImplementedError

    def step(self, token: int) -> np.ndarray:
        raise NotImplementedError

    def decode(self, prompt: list[int], new_tokens: int) -> dict[str, Any]:
        self.fresh()
        t_start = time.perf_counter()
        logits = self.prefill(prompt)
        t_prefilled = time.perf_counter()
        token = int(np.argmax(logits))
        t_first = time.perf_counter()
        tokens = [token]
        for _ in range(new_tokens):
            token = int(np.argmax(self.step(token)))
            tokens.append(token)
        return timings(t_start, t_prefilled, t_first, time.perf_counter(), tokens)

    def cold_first_token(self, ids: list[int]) -> tuple[float, int]:
        """Seconds to the first token of ``ids`` from an empty state, and that token."""
        self.fresh()
        start = time.perf_counter()
        token = int(np.argmax(self.prefill(ids)))
        return time.perf_counter() - start, token

    def prepare_prefix(self, prefix: list[int]) -> dict[str, Any]:
        """Process ``prefix`` once and keep what the runtime keeps of it; returns facts for the results."""
        raise NotImplementedError

    def resume(self, prefix: list[int], turn: list[int]) -> np.ndarray:
        """The logits after ``prefix + turn``, reusing what ``prepare_prefix`` kept (timed by the caller)."""
        raise NotImplementedError

    def second_turn(self, prefix: list[int], turn: list[int]) -> dict[str, Any]:
        first: dict[str, Any] = {}
        if not getattr(self, "_prefix_ready", False):
            cold_s, cold_token = self.cold_first_token(prefix + turn)
            start = time.perf_counter()
            facts = self.prepare_prefix(prefix)
            first = {"cold_ttft_s": cold_s, "cold_token": cold_token, "prefix_s": time.perf_counter() - start,
                     "mechanism": self.mechanism, **facts}
            self._prefix_ready = True
        start = time.perf_counter()
        token = int(np.argmax(self.resume(prefix, turn)))
        return {"ttft_s": time.perf_counter() - start, "token": token, **first}


class EdgekitRunner(Runner):
    """An edgekit bundle (ONNX or ExecuTorch), loaded with a KV budget of ``max_length`` tokens."""

    mechanism = "edgekit PromptCache: a copy of the state at the end of the prefix, resumed"

    def __init__(self, model_dir: str, threads: int, max_length: int) -> None:
        import edgekit

        self.model = edgekit.load(model_dir, threads=threads, max_context=max_length)
        self.state = None
        self.cache = None

    def fresh(self) -> None:
        self.state = self.model.new_state()

    def prefill(self, ids: list[int]) -> np.ndarray:
        return self.model.prefill(self.state, ids)

    def step(self, token: int) -> np.ndarray:
        return self.model.step(self.state, token)

    def prepare_prefix(self, prefix: list[int]) -> dict[str, Any]:
        from edgekit.runtimes import PromptCache

        self.cache = PromptCache(self.model, every=0)
        self.cache.prefill(prefix, marks=[(len(prefix), "system")])
        return {"state_bytes": self.cache.nbytes}

    def resume(self, prefix: list[int], turn: list[int]) -> np.ndarray:
        _, logits = self.cache.prefill(prefix + turn)
        return logits


def genai_session_options(threads: int) -> dict[str, Any]:
    """The decoder session options overlaid on genai_config.json: the same threading as edgekit's session."""
    return {"intra_op_num_threads": threads, "inter_op_num_threads": 1, "session.intra_op.allow_spinning": "0"}


class GenaiRunner(Runner):
    """An onnxruntime-genai model folder, plus its tokenizer.json held the way edgekit.load holds one.

    An app needs a tokenizer, and og.Tokenizer (0.18) rejects the builder's ``Qwen3_5Tokenizer`` class, so the
    worker loads the folder's tokenizer.json with edgekit's reader: both workers' RSS then include the same
    tokenizer.
    """

    mechanism = "onnxruntime-genai Generator.snapshot_state after the prefix, rewind_to(prefix length) to resume"

    def __init__(self, model_dir: str, threads: int, max_length: int) -> None:
        import onnxruntime_genai as og

        from edgekit.tokenizer import Tokenizer

        self.og = og
        self.max_length = max_length
        config = og.Config(model_dir)
        config.overlay(json.dumps({"model": {"decoder": {"session_options": genai_session_options(threads)}}}))
        self.model = og.Model(config)
        self.tokenizer = Tokenizer.from_file(Path(model_dir) / "tokenizer.json")
        self.generator = None

    def fresh(self) -> None:
        params = self.og.GeneratorParams(self.model)
        # min_length = max_length: EOS never ends a run early (edgekit's loop ignores EOS too).
        params.set_search_options(max_length=self.max_length, min_length=self.max_length, do_sample=False)
        self.generator = self.og.Generator(self.model, params)

    def decode(self, prompt: list[int], new_tokens: int) -> dict[str, Any]:
        # genai samples inside generate_next_token; the run is timed around its own calls.
        self.fresh()
        generator = self.generator
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

    def prefill(self, ids: list[int]) -> np.ndarray:
        self.generator.append_tokens(np.asarray(ids, dtype=np.int32))
        logits = np.asarray(self.generator.get_logits())
        return logits.reshape(-1, logits.shape[-1])[-1]

    def prepare_prefix(self, prefix: list[int]) -> dict[str, Any]:
        self.fresh()
        self.prefill(prefix)
        self.generator.snapshot_state()
        return {}

    def resume(self, prefix: list[int], turn: list[int]) -> np.ndarray:
        self.generator.rewind_to(len(prefix))
        return self.prefill(turn)


class LlamaCppRunner(Runner):
    """A GGUF file in llama.cpp through llama-cpp-python: ``Llama.eval`` for prefill and steps (one batch of up
    to 512 tokens), the last position's logits read from the context, and sequence 0's state saved and
    restored with ``llama_state_seq_get_data`` / ``llama_state_seq_set_data`` (what llama-server's slot
    save/restore uses) for the second turn."""

    mechanism = "llama.cpp llama_state_seq_get_data after the prefix, llama_state_seq_set_data to resume"

    def __init__(self, model_path: str, threads: int, max_length: int) -> None:
        import llama_cpp

        self.lib = llama_cpp
        self.llm = llama_cpp.Llama(model_path, n_ctx=max_length, n_batch=512, n_threads=threads,
                                   n_threads_batch=threads, verbose=False)
        self.n_vocab = self.llm.n_vocab()
        self.saved: ctypes.Array | None = None
        self.saved_tokens = 0

    def logits(self) -> np.ndarray:
        pointer = self.lib.llama_get_logits_ith(self.llm.ctx, -1)
        return np.ctypeslib.as_array(pointer, shape=(self.n_vocab,))

    def fresh(self) -> None:
        self.llm.reset()  # n_tokens = 0 and, for recurrent/hybrid models, the memory cleared

    def prefill(self, ids: list[int]) -> np.ndarray:
        self.llm.eval(ids)
        return self.logits()

    def step(self, token: int) -> np.ndarray:
        self.llm.eval([token])
        return self.logits()

    def prepare_prefix(self, prefix: list[int]) -> dict[str, Any]:
        self.fresh()
        self.llm.eval(prefix)
        ctx = self.llm.ctx
        size = self.lib.llama_state_seq_get_size(ctx, 0)
        self.saved = (ctypes.c_uint8 * size)()
        if self.lib.llama_state_seq_get_data(ctx, self.saved, size, 0) == 0:
            raise RuntimeError("llama_state_seq_get_data copied nothing")
        self.saved_tokens = self.llm.n_tokens
        return {"state_bytes": size}

    def resume(self, prefix: list[int], turn: list[int]) -> np.ndarray:
        self.fresh()
        if self.lib.llama_state_seq_set_data(self.llm.ctx, self.saved, len(self.saved), 0) == 0:
            raise RuntimeError("llama_state_seq_set_data failed to restore the prefix")
        self.llm.n_tokens = self.saved_tokens
        return self.prefill(turn)


class ExecutorchUpstreamRunner(Runner):
    """A .pte from ExecuTorch's own Qwen3.5 export (``export_llm``, static shape): ``forward(tokens [1, 1],
    input_pos [1])``, so the prompt is fed one token at a time, as ExecuTorch's runner does for static shapes.
    It keeps no state outside the program and has no way to save or restore one."""

    def __init__(self, pte_path: str, threads: int, max_length: int) -> None:
        import importlib

        for kernels in ("executorch.extension.llm.custom_ops.custom_ops", "executorch.kernels.quantized"):
            importlib.import_module(kernels)  # registers the llama:: and quantized kernels the program calls
        from executorch.extension.pybindings import portable_lib
        from executorch.runtime import Runtime

        portable_lib._unsafe_reset_threadpool(threads)
        self.program = Runtime.get().load_program(Path(pte_path))
        self.method = None
        self.position = 0

    def fresh(self) -> None:
        # A freshly loaded method: its KV and DeltaNet buffers start over (the program has no reset).
        self.method = self.program.load_method("forward")
        self.position = 0

    def step(self, token: int) -> np.ndarray:
        import torch

        tokens = torch.tensor([[token]], dtype=torch.long)
        position = torch.tensor([self.position], dtype=torch.long)
        self.position += 1
        return self.method.execute([tokens, position])[0].reshape(-1).numpy()

    def prefill(self, ids: list[int]) -> np.ndarray:
        for token in ids:
            logits = self.step(token)
        return logits

    def second_turn(self, prefix: list[int], turn: list[int]) -> dict[str, Any]:
        return {"unsupported": "ExecuTorch's upstream Qwen3.5 program has no state save/restore: a second turn "
                               "re-processes the whole prompt, one token at a time"}


RUNTIMES: dict[str, Callable[[str, int, int], Runner]] = {
    "edgekit": EdgekitRunner, "edgekit-et": EdgekitRunner, "genai": GenaiRunner,
    "llama-q4_0": LlamaCppRunner, "llama-q4_k_m": LlamaCppRunner, "et-upstream": ExecutorchUpstreamRunner}


def reply(message: dict[str, Any]) -> None:
    """One protocol line on stdout (libraries may print other lines; the parent skips them)."""
    print(MARKER + json.dumps(message), flush=True)


def serve(runner: Runner) -> None:
    """Answer requests until stdin closes."""
    for line in sys.stdin:
        request = json.loads(line)
        try:
            if request["task"] == "decode":
                result = runner.decode(request["prompt"], request["new_tokens"])
            else:
                result = runner.second_turn(request["prefix"], request["turn"])
        except Exception as err:  # report it to the parent, which records it instead of a number
            result = {"error": f"{type(err).__name__}: {err}"}
        reply({**result, "peak_rss_bytes": peak_rss_bytes()})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runtime", choices=sorted(RUNTIMES))
    parser.add_argument("model_path")
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--max-length", type=int, required=True)
    args = parser.parse_args()
    t_start = time.perf_counter()
    try:
        runner = RUNTIMES[args.runtime](args.model_path, args.threads, args.max_length)
    except Exception as err:  # a model that does not load is a result to record, not a crash
        reply({"error": f"load failed: {type(err).__name__}: {err}"})
        return
    reply({"load_s": time.perf_counter() - t_start, "peak_rss_bytes": peak_rss_bytes()})
    serve(runner)


if __name__ == "__main__":
    main()
