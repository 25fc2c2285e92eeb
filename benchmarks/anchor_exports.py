"""The cached checkpoint and the exports of every runtime the anchors benchmark measures.

Everything lives under ``benchmarks/.cache/<model>/``: the random checkpoint folder (bf16), one folder per
runtime, each export's record (command, wall time, peak RSS, the exporter's version) and logs. An export is
redone only when its command or its exporter changes; a failed one is not cached.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgekit.files import atomic_write_text

from machine import exporter_fingerprint
from random_checkpoint import CONTEXT_LENGTH

HERE = Path(__file__).resolve().parent
CHECKPOINT_BUILDER = HERE / "random_checkpoint.py"
THREADS = 2
# The decoders only (no vision tower: the other exports have none). Match edgekit's int4 scheme (block 32,
# symmetric, int8 activations, one int4 copy of the tied embedding) and its prefill output (last-position logits
# only, not [128, 248320] of them).
GENAI_EXTRA_OPTIONS = ("shared_embeddings=true", "block_size=32", "is_symmetric=true", "accuracy_level=4",
                       "prune_lm_head=true")
EDGEKIT_EXPORT = ("import sys; from edgekit.export.onnx_export import export_onnx; "
                  "export_onnx(sys.argv[1], sys.argv[2], quant='int4', vision=False, show_progress=False)")
EDGEKIT_ET_EXPORT = ("import sys; from edgekit.export.executorch_export import export_executorch; "
                     "export_executorch(sys.argv[1], sys.argv[2], quant='8da4w', target='android', "
                     "max_context=int(sys.argv[3]), show_progress=False)")
# The file a worker loads, for runtimes whose model is one file in its folder.
MODEL_FILES = {"llama-q4_0": "model.gguf", "llama-q4_k_m": "model.gguf", "et-upstream": "model.pte"}


@dataclass(frozen=True)
class Cache:
    """The cached checkpoint, exports and logs of one model under ``benchmarks/.cache/<model>/``."""

    root: Path

    @property
    def checkpoint(self) -> Path:
        return self.root / "checkpoint"

    @property
    def gguf_bf16(self) -> Path:
        """The checkpoint as a bf16 GGUF: the llama.cpp quantizations' common source."""
        return self.root / "checkpoint-bf16.gguf"

    def model_dir(self, runtime: str) -> Path:
        return self.root / runtime

    def model_path(self, runtime: str) -> Path:
        """What the worker loads: the folder, or the one model file in it."""
        return self.model_dir(runtime) / MODEL_FILES.get(runtime, "")

    def record(self, runtime: str) -> Path:
        return self.root / f"{runtime}.export.json"

    def partial(self, runtime: str) -> Path:
        return self.root / f"{runtime}.partial"

    @property
    def build_cache(self) -> Path:
        return self.root / "genai-build-cache"

    def log(self, name: str) -> Path:
        return self.root / f"{name}.log"


@dataclass(frozen=True)
class Measured:
    """A finished subprocess: exit code, wall time, and its own peak RSS."""

    returncode: int
    wall_s: float
    peak_rss_bytes: int


def run_measured(cmd: list[str], log: Path) -> Measured:
    """Run ``cmd`` with its output in ``log``; ``wait4`` gives that child's peak RSS (in KiB on Linux; the
    largest of it and its own waited-for children).

    Linux starts a child's ``ru_maxrss`` at its parent's peak: this process stays small (it never imports torch
    or holds a model) so that the number is the child's. ``harness_peak_rss_bytes`` in the results is that floor.
    """
    start = time.perf_counter()
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped by wait4: Popen must not wait again
    return Measured(proc.returncode, time.perf_counter() - start, usage.ru_maxrss * 1024)


def log_tail(log: Path, lines: int = 8) -> str:
    """The last lines of a log (progress bars' carriage returns split too), for a failure reason."""
    text = log.read_text(errors="replace").replace("\r", "\n")
    return "\n".join([line[:1000] for line in text.splitlines() if line.strip()][-lines:])


# --- the export command of each runtime --------------------------------------------------------------------


def edgekit_export_command(cache: Cache, max_context: int) -> list[str]:
    """``export_onnx(checkpoint folder, int4)`` in a fresh interpreter, into a partial folder."""
    return [sys.executable, "-c", EDGEKIT_EXPORT, str(cache.checkpoint), str(cache.partial("edgekit"))]


def edgekit_et_export_command(cache: Cache, max_context: int) -> list[str]:
    """``export_executorch(checkpoint folder, 8da4w)``: its KV buffers are fixed at export, to the same budget."""
    return [sys.executable, "-c", EDGEKIT_ET_EXPORT, str(cache.checkpoint), str(cache.partial("edgekit-et")),
            str(max_context)]


def genai_builder_command(cache: Cache, max_context: int) -> list[str]:
    """onnxruntime-genai's model builder: int4, CPU execution provider, into a partial folder."""
    return [sys.executable, "-m", "onnxruntime_genai.models.builder", "-i", str(cache.checkpoint),
            "-o", str(cache.partial("genai")), "-p", "int4", "-e", "cpu", "-c", str(cache.build_cache),
            "--extra_options", *GENAI_EXTRA_OPTIONS]


def gguf_command(kind: str) -> Callable[[Cache, int], list[str]]:
    """llama.cpp's converter (bf16, cached) then its quantizer to ``kind``: ``gguf_export.py``."""
    def command(cache: Cache, max_context: int) -> list[str]:
        return [sys.executable, str(HERE / "gguf_export.py"), str(cache.checkpoint),
                str(cache.partial(f"llama-{kind.lower()}")), kind, "--bf16", str(cache.gguf_bf16)]
    return command


def et_upstream_command(cache: Cache, max_context: int) -> list[str]:
    """ExecuTorch's own Qwen3.5 example export: ``et_upstream_export.py``."""
    return [sys.executable, str(HERE / "et_upstream_export.py"), str(cache.checkpoint),
            str(cache.partial("et-upstream")), "--max-context", str(max_context)]


EXPORT_COMMANDS: dict[str, Callable[[Cache, int], list[str]]] = {
    "edgekit": edgekit_export_command, "edgekit-et": edgekit_et_export_command, "genai": genai_builder_command,
    "llama-q4_0": gguf_command("Q4_0"), "llama-q4_k_m": gguf_command("Q4_K_M"), "et-upstream": et_upstream_command}


# --- running and caching them ------------------------------------------------------------------------------


def export(cache: Cache, runtime: str, cmd: list[str]) -> dict[str, Any]:
    """Run an export command; a partial output folder becomes the model folder only if the command succeeds."""
    partial, log = cache.partial(runtime), cache.log(f"{runtime}.export")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        measured = run_measured(cmd, log)
        record: dict[str, Any] = {"command": cmd, "wall_s": measured.wall_s,
                                  "peak_rss_bytes": measured.peak_rss_bytes}
        if measured.returncode:
            record["error"] = f"exit code {measured.returncode}; end of its log:\n{log_tail(log)}"
        else:
            steps = partial / "steps.json"  # gguf_export.py's own split of the time
            if steps.is_file():
                record["steps"] = json.loads(steps.read_text())
            os.replace(partial, cache.model_dir(runtime))
    finally:
        shutil.rmtree(partial, ignore_errors=True)
        shutil.rmtree(cache.build_cache, ignore_errors=True)
    return record


def cached_export(cache: Cache, runtime: str, max_context: int, reexport: bool) -> dict[str, Any]:
    """The export record of ``runtime``, exporting first unless an export by the same command and the same
    exporter (``exporter_fingerprint``) is cached. A failed export is not cached: the next run tries again."""
    record_path, out = cache.record(runtime), cache.model_dir(runtime)
    cmd = EXPORT_COMMANDS[runtime](cache, max_context)
    if not reexport and out.is_dir() and record_path.is_file():
        record = json.loads(record_path.read_text())
        if record["command"] == cmd and record.get("exporter") == exporter_fingerprint(runtime):
            return {**record, "cached": True}
    record_path.unlink(missing_ok=True)
    shutil.rmtree(out, ignore_errors=True)
    if reexport and runtime.startswith("llama-"):
        cache.gguf_bf16.unlink(missing_ok=True)
    record = {**export(cache, runtime, cmd), "exporter": exporter_fingerprint(runtime)}
    if "error" not in record:
        atomic_write_text(record_path, json.dumps(record, indent=2))
    return {**record, "cached": False}


def ensure_checkpoint(name: str, cache: Cache) -> dict[str, Any]:
    """Build the random checkpoint folder (in a subprocess) unless it is cached."""
    cached = cache.checkpoint.is_dir()
    if not cached:
        log = cache.log("checkpoint")
        if run_measured([sys.executable, str(CHECKPOINT_BUILDER), name, str(cache.checkpoint)], log).returncode:
            raise SystemExit(f"building the {name} checkpoint failed:\n{log_tail(log)}")
    return {"path": str(cache.checkpoint), "cached": cached, "dtype": "bfloat16",
            "max_position_embeddings": CONTEXT_LENGTH, "size_bytes": folder_bytes(cache.checkpoint)}


def folder_bytes(folder: Path, suffixes: tuple[str, ...] = ()) -> int:
    """Total size of the files in ``folder`` (only names ending in ``suffixes``, when given)."""
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and p.name.endswith(suffixes or ("",)))


def model_size(folder: Path) -> dict[str, int]:
    """The whole folder (tokenizer and configs included) and its model files (graph + weights, .pte or .gguf)."""
    return {"folder_bytes": folder_bytes(folder),
            "model_bytes": folder_bytes(folder, (".onnx", ".onnx.data", ".pte", ".gguf"))}
