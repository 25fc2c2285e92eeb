"""Where a bundle's memory goes: resident memory after each stage of loading and running it, in a fresh process.

Stages: ``python`` (the interpreter), ``imports`` (numpy and the backend's runtime), ``tokenizer``,
``decoder`` (the session or program), ``prefill`` (``pp`` tokens on a fresh state), ``decode`` (``tg``
greedy steps), then, when the bundle has one, ``vision`` (the tower loaded and one frame pair encoded)
and ``vision released``. Each stage records RSS, its anonymous and file-backed parts, the peak so far and
its seconds. The text peak (``peak_text``) is read before the vision tower is loaded.

Run as ``python -m edgekit.device.memory_profile BUNDLE [--threads N] [--pp N] [--tg N] [--lever K=V]``; it
prints one JSON object. ``Levers`` turns the memory savings off one by one, so each can be measured alone.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edgekit.memory import BUILD_EVERY_S, BUILD_STEP, MIB, resident, set_heap_release


@dataclass(frozen=True)
class Levers:
    """The memory savings, each on by default (off: as before, to measure what each one saves)."""

    release_heap: bool = True      # give freed heap back to the OS after the tokenizer and each session
    page_out: bool = True          # drop the mapped weight pages onnxruntime read once to pre-pack them
    build_release: bool = True     # ... also while the session is built (each 8 MiB of file-backed growth)
    build_every_ms: float = BUILD_EVERY_S * 1000  # ... checked this often
    build_step_mib: float = BUILD_STEP / MIB
    tokenizer_first: bool = True   # load the tokenizer before the weights (its load peaks on temporaries)
    reserved_kv: bool = True       # KV pages resident only as rows are written (off: the whole budget at once)
    arena: bool = True             # onnxruntime's CPU memory arena
    session_config: dict[str, str] = field(default_factory=dict)  # extra onnxruntime session config entries

    @classmethod
    def parse(cls, pairs: list[str]) -> "Levers":
        """``release_heap=0``, ``build_every_ms=20``, ``session.disable_prepacking=1``...: booleans and the
        build's pacing by name, the rest session config."""
        flags: dict[str, Any] = {}
        config = {}
        for pair in pairs:
            key, _, value = pair.partition("=")
            if key in ("release_heap", "page_out", "build_release", "tokenizer_first", "reserved_kv", "arena"):
                flags[key] = value not in ("0", "false", "off")
            elif key in ("build_every_ms", "build_step_mib"):
                flags[key] = float(value)
            else:
                config[key] = value
        return cls(**flags, session_config=config)


class _Stages:
    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self._t = time.perf_counter()

    def mark(self, name: str) -> None:
        now = time.perf_counter()
        reading = resident()
        self.records.append({"stage": name, "seconds": now - self._t, **(reading.as_mib() if reading else {})})
        self._t = time.perf_counter()


def measure_stages(bundle_dir: str | Path, threads: int | None = 2, max_context: int | None = None,
                   pp: int = 128, tg: int = 64, vision: bool = True, levers: Levers = Levers(),
                   seed: int = 0) -> dict[str, Any]:
    """Load ``bundle_dir`` stage by stage in this process and report memory after each (see the module doc).

    Meant for a fresh process (``stages_in_child``): what earlier work left resident would count too.
    """
    stages = _Stages()
    stages.mark("python")
    set_heap_release(levers.release_heap, levers.page_out, levers.build_release, levers.build_every_ms / 1000,
                     int(levers.build_step_mib * MIB))
    import numpy as np

    from edgekit.bundle import Bundle
    from edgekit.tokenizer import Tokenizer

    bundle = Bundle.open(bundle_dir)
    backend = bundle.manifest.backend
    if backend == "onnx":
        import onnxruntime  # noqa: F401
    else:
        from edgekit.runtimes.executorch_decoder import _import_runtime

        _import_runtime()
    stages.mark("imports")

    def load_tokenizer():
        tokenizer = Tokenizer.from_file(bundle.file(bundle.manifest.tokenizer.file))
        stages.mark("tokenizer")
        return tokenizer

    def load_decoder():
        if backend == "onnx":
            from edgekit.runtimes.onnx_decoder import OnnxDecoder

            decoder = OnnxDecoder(bundle, threads=threads, max_context=max_context,
                                  session_config=levers.session_config, cpu_arena=levers.arena)
        else:
            from edgekit.runtimes import open_decoder

            decoder = open_decoder(bundle, threads=threads, max_context=max_context)
        stages.mark("decoder")
        return decoder

    if levers.tokenizer_first:
        tokenizer, decoder = load_tokenizer(), load_decoder()
    else:
        decoder, tokenizer = load_decoder(), load_tokenizer()
    load_s = sum(r["seconds"] for r in stages.records[2:])

    from edgekit.runtimes.model import Model
    from edgekit.runtimes.state import HybridState

    model = Model(bundle, decoder, tokenizer, threads=threads)
    state = (model.new_state() if levers.reserved_kv or backend != "onnx"
             else HybridState.zeros(model.config, model.max_context, commit_kv=True))
    prompt = np.random.default_rng(seed).integers(0, 248_000, pp).tolist()
    start = time.perf_counter()
    token = int(np.argmax(model.prefill(state, prompt)))
    prefill_s = time.perf_counter() - start
    stages.mark("prefill")
    start = time.perf_counter()
    for _ in range(tg):
        token = int(np.argmax(model.step(state, token)))
    decode_s = time.perf_counter() - start
    stages.mark("decode")
    peak_text = stages.records[-1].get("peak")

    cfg = model.config
    fixed, per_token = cfg.state_bytes()
    state_bytes = {"deltanet_bytes": fixed, "kv_bytes_per_token": per_token, "kv_used_bytes": per_token * state.length,
                   "kv_budget_bytes": per_token * model.max_context, "tokens": state.length,
                   "max_context": model.max_context}
    if vision and model.has_vision:
        pair = np.random.default_rng(seed).integers(0, 256, (2, 224, 224, 3), dtype=np.uint8)
        model.vision.encode_frames(list(pair))
        stages.mark("vision")
        model.release_vision()
        stages.mark("vision released")
    return {
        "bundle": {"path": str(bundle_dir), "backend": backend, "model": bundle.manifest.model,
                   "weights_bytes": _weights_bytes(bundle)},
        "settings": {"threads": threads, "pp": pp, "tg": tg, "max_context": model.max_context,
                     "levers": asdict(levers)},
        "stages": stages.records,
        "peak_text_mib": peak_text,
        "load_s": load_s,
        "prefill_tok_s": pp / prefill_s,
        "decode_tok_s": tg / decode_s,
        "state": state_bytes,
    }


def _weights_bytes(bundle) -> int:
    """Bytes of the decoder's weight files (the graph or program and its data files, not the vision tower)."""
    graph = bundle.manifest.decoder.file
    return sum(entry.bytes for name, entry in bundle.manifest.files.items() if name.startswith(graph))


def stages_in_child(bundle_dir: str | Path, threads: int | None = 2, pp: int = 128, tg: int = 64,
                    max_context: int | None = None, levers: list[str] | None = None,
                    python: str = sys.executable, timeout_s: float = 1800) -> dict[str, Any]:
    """``measure_stages`` in a fresh interpreter (so imports and peaks are this bundle's alone)."""
    cmd = [python, "-m", "edgekit.device.memory_profile", str(bundle_dir), "--pp", str(pp), "--tg", str(tg)]
    if threads:
        cmd += ["--threads", str(threads)]
    if max_context:
        cmd += ["--max-context", str(max_context)]
    for lever in levers or []:
        cmd += ["--lever", lever]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
    if done.returncode:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": f"exit code {done.returncode}: {tail[:300]}"}
    return json.loads(done.stdout)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--pp", type=int, default=128)
    parser.add_argument("--tg", type=int, default=64)
    parser.add_argument("--max-context", type=int, default=None)
    parser.add_argument("--no-vision", action="store_true")
    parser.add_argument("--lever", action="append", default=[], help="K=V: release_heap=0, page_out=0, build_release=0, "
                        "build_every_ms=N, build_step_mib=N, reserved_kv=0, "
                        "tokenizer_first=0, arena=0 or an onnxruntime session config entry")
    args = parser.parse_args(argv)
    result = measure_stages(args.bundle, args.threads, args.max_context, args.pp, args.tg, not args.no_vision,
                            Levers.parse(args.lever))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
