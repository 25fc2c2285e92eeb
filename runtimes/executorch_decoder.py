"""The ExecuTorch backend: runs the bundle's ``model.pte`` (XNNPACK) on a ``HybridState``.

The program keeps one state in its own buffers (shared by its ``forward``, ``forward_rows``,
``get_state`` and ``set_state`` methods). Text goes through ``forward``; vision rows, and tokens whose
rotary positions are not their cache slots (all that follows an image), through ``forward_rows``.
This backend makes it look like every other: the state a caller passes is moved in with ``set_state``
when it is not the one resident, and moved out with ``get_state`` as soon as anyone reads its arrays
(a copy, a checkpoint, a save). A generate loop on one state copies nothing.

ExecuTorch's Python runtime links libtorch (the pip wheel's design), so this backend needs torch
installed; the onnxruntime backend does not. On Android the same .pte runs through the ExecuTorch AAR.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from collections.abc import Callable
from pathlib import Path

import numpy as np

from edgekit.bundle import Bundle
from edgekit.errors import EdgekitError
from edgekit.runtimes.state import HybridState


def _import_runtime():
    try:
        import torch
        from executorch.extension.pybindings import portable_lib
        from executorch.runtime import Runtime

        # The kernels the program calls outside XNNPACK: without them, loading fails with "Missing operator".
        for kernels in ("executorch.extension.llm.custom_ops.custom_ops", "executorch.kernels.quantized"):
            importlib.import_module(kernels)
    except ImportError as err:
        raise EdgekitError(f"this bundle needs the ExecuTorch runtime ({err.name} is not installed)",
                           "pip install 'edgekit[executorch]', or export the model with --format onnx") from None
    except OSError as err:  # a kernel library built against another libtorch, or a torch missing its own libraries
        loader = str(err.__cause__ or err).splitlines()[0]  # torch.ops.load_library wraps the dynamic loader's line
        raise EdgekitError(f"ExecuTorch does not load with torch {importlib.metadata.version('torch')} ({loader[-160:]})",
                           "install the CPU build of the torch your executorch was built against "
                           "(torch==2.13.0 for executorch 1.5.1), or export the model with --format onnx") from None
    return torch, portable_lib, Runtime


class ExecuTorchDecoder:
    """One ``forward`` call folds T <= ``max_tokens`` tokens into a state and returns the last logits."""

    backend = "executorch"

    def __init__(self, bundle: Bundle, threads: int | None = None, max_context: int | None = None,
                 etdump: bool = False) -> None:
        """``etdump``: record per-op times (ExecuTorch's ETDump), written out with ``write_etdump``."""
        torch, portable_lib, runtime = _import_runtime()
        self._torch = torch
        self.bundle = bundle
        self.cfg = bundle.text_config
        graph = bundle.manifest.decoder
        self.max_context = bundle.manifest.runtime.max_context
        if max_context and max_context > self.max_context:  # a smaller budget is met by the fixed buffers
            raise EdgekitError(f"this .pte's KV cache is fixed at {self.max_context} tokens at export",
                               f"re-export with --max-context {max_context}, or load without max_context")
        self.max_tokens = graph.max_tokens_per_call
        if threads and threads != portable_lib._threadpool_get_thread_count():
            # ExecuTorch's thread pool is one per process: resizing it under a program that is already
            # loaded in this process makes that program abort on its next run.
            portable_lib._unsafe_reset_threadpool(threads)
        path = bundle.file(graph.file)
        try:
            program = runtime.get().load_program(path, enable_etdump=etdump)
            # forward_rows (vision rows, positions after an image) is loaded on first use: each method holds its
            # own XNNPACK copy of the packed weights, so a text-only run keeps one copy instead of two.
            self._methods = {name: program.load_method(name) for name in ("forward", "get_state", "set_state")}
        except Exception as err:  # ExecuTorch raises RuntimeError with its internal error code
            raise EdgekitError(f"ExecuTorch could not load {path} ({str(err).strip().splitlines()[0][:200]})",
                               "run `edgekit verify` on the bundle and re-export it if it is corrupt") from None
        self._shapes = HybridState.shapes(self.cfg, self.max_context)  # get_state/set_state order
        self._program = program
        self._check_state()
        self.resident: HybridState | None = None

    def _check_state(self) -> None:
        """The program's state buffers must be exactly what the config says (a mismatched bundle fails here)."""
        meta = self._methods["get_state"].metadata
        found = [tuple(meta.output_tensor_meta(k).sizes()) for k in range(meta.num_outputs())]
        if found != list(self._shapes.values()):
            raise EdgekitError("the .pte's state buffers do not match the bundle's config",
                               "the bundle is mismatched: re-export it")

    def new_state(self) -> HybridState:
        return HybridState.zeros(self.cfg, self.max_context)

    def forward(self, state: HybridState, ids: np.ndarray, positions: np.ndarray,
                embeds: np.ndarray | None = None) -> np.ndarray:
        """Fold ``ids`` ([T] int64; rows < 0 come from ``embeds`` [T, H]) at mRoPE ``positions`` [3, T] into
        ``state``; return logits [V]."""
        t = len(ids)
        if t > self.max_tokens:
            raise EdgekitError(f"{t} tokens in one call; this .pte takes at most {self.max_tokens}",
                               f"use a chunk size <= {self.max_tokens}")
        if state.length + t > state.max_context:
            raise EdgekitError(f"{state.length + t} tokens exceed the context budget of {state.max_context}",
                               "shorten the prompt")
        positions = positions.reshape(3, t)
        text = embeds is None and (positions == np.arange(state.length, state.length + t)).all()
        if not text and "forward_rows" not in self._methods:
            if "forward_rows" not in self._program.method_names:
                raise EdgekitError("this .pte is text-only (no forward_rows method), so it takes no images",
                                   "re-export it with this edgekit from a checkpoint with a vision tower")
            self._methods["forward_rows"] = self._program.load_method("forward_rows")
        self._make_resident(state)
        torch = self._torch
        tokens = torch.from_numpy(np.ascontiguousarray(ids.reshape(1, t), dtype=np.int64))
        input_pos = torch.tensor([state.length], dtype=torch.long)
        if text:
            logits = self._methods["forward"].execute([tokens, input_pos])[0]
        else:
            rows = np.zeros((1, t, self.cfg.hidden_size), np.float32) if embeds is None else embeds.reshape(1, t, -1)
            logits = self._methods["forward_rows"].execute([
                tokens, torch.from_numpy(np.ascontiguousarray(rows, dtype=np.float32)),
                torch.from_numpy(np.ascontiguousarray(positions, dtype=np.int64)), input_pos])[0]
        state.length += t
        return logits[0].numpy()

    def method(self, name: str) -> Callable[..., list[np.ndarray]]:
        """Another method of the same program (e.g. ``vision_encoder``) as a function of numpy arrays;
        a one-line error if the program has none of that name."""
        if name not in self._program.method_names:
            raise EdgekitError(f"{self.bundle.file(self.bundle.manifest.decoder.file)} has no "
                               f"{name} method", "the bundle is mismatched: re-export it")
        method, torch = self._program.load_method(name), self._torch
        return lambda *arrays: [out.numpy() for out in method.execute([torch.from_numpy(a) for a in arrays])]

    def release_method(self, name: str) -> None:
        """Free a method loaded by ``method`` once nothing else holds it; ``method`` loads it again. ExecuTorch's
        ``Program`` keeps every method it has loaded for as long as it lives (``Program._methods`` in 1.5.1),
        so its cached entry is cleared as well."""
        cached = getattr(self._program, "_methods", None)
        if isinstance(cached, dict) and cached.get(name) is not None:
            cached[name] = None

    def write_etdump(self, path: str | Path) -> None:
        """Write the per-op times recorded so far (load with ``etdump=True``)."""
        self._program.write_etdump_result_to_file(str(path), str(Path(path).with_suffix(".debug")))

    def _make_resident(self, state: HybridState) -> None:
        """Load ``state`` into the program's buffers unless it is already there."""
        if self.resident is state:
            return
        if self.resident is not None:
            self.release(self.resident)
        arrays = state.arrays_by_name()
        self._methods["set_state"].execute([self._torch.from_numpy(arrays[name]) for name in self._shapes])
        self.resident, state.holder = state, self

    def release(self, state: HybridState) -> None:
        """Copy the program's buffers back into ``state``'s arrays; the arrays are current again."""
        outputs = self._methods["get_state"].execute([])
        state.holder, self.resident = None, None
        arrays = state.arrays_by_name()
        for name, value in zip(self._shapes, outputs):
            arrays[name][...] = value.numpy()
