"""The onnxruntime backend: runs the bundle's decoder graph on a ``HybridState``."""

from __future__ import annotations

import os
import weakref
from collections.abc import Mapping

import numpy as np
import onnxruntime as ort

ort.set_default_logger_severity(3)  # the process-wide logger: no warnings (e.g. unused initializers) on stderr

from edgekit.bundle import Bundle
from edgekit.errors import EdgekitError
from edgekit.memory import release_freed_heap, released_while_building
from edgekit.runtimes.state import HybridState, aligned_empty


def default_threads() -> int:
    """Threads for one decode: the cores we may use, at most 4 (more only adds sync cost at batch 1)."""
    return max(1, min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1))


class OnnxDecoder:
    """One ``forward`` call folds T tokens into a state and returns the last position's logits."""

    backend = "onnx"

    def __init__(self, bundle: Bundle, threads: int | None = None, max_context: int | None = None,
                 profile_prefix: str | None = None, session_config: Mapping[str, str] | None = None,
                 cpu_arena: bool = True) -> None:
        """``profile_prefix``: record an onnxruntime profile (per-node times) to files with this prefix;
        ``session_config``: extra onnxruntime session config entries (``session.disable_prepacking``...);
        ``cpu_arena``: onnxruntime's CPU memory arena."""
        self.bundle = bundle
        self.cfg = bundle.text_config
        self.max_context = max_context or bundle.manifest.runtime.max_context
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or default_threads()
        opts.inter_op_num_threads = 1
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")  # spinning hurts on busy cores
        opts.log_severity_level = 4  # fatal only: a load error is raised as one line below, not also logged
        opts.enable_cpu_mem_arena = cpu_arena
        if profile_prefix:
            opts.enable_profiling = True
            opts.profile_file_prefix = profile_prefix
        for key, value in (session_config or {}).items():
            opts.add_session_config_entry(key, value)
        graph = bundle.file(bundle.manifest.decoder.file)
        try:
            with released_while_building(bundle.path):
                self.session = ort.InferenceSession(str(graph), opts, providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime raises its own exception types with multi-line messages
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise EdgekitError(f"onnxruntime could not load {graph} ({first[:200]})",
                               "run `edgekit verify` on the bundle and re-export it if it is corrupt") from None
        self._check_io()
        self.kv_in_place = bundle.manifest.decoder.kv_update == "in_place"
        self._no_embeds = np.zeros((1, 1, self.cfg.hidden_size), np.float32)
        # A prefill chunk grows the arena to its activations (~40 MiB at 256 tokens, 0.8B shape), which a
        # decode step never needs again: shrink it after each multi-token run (its regions go back to the
        # heap, which is then trimmed). Decode steps keep theirs, so they allocate nothing.
        self._shrink = None
        if cpu_arena:
            self._shrink = ort.RunOptions()
            self._shrink.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
        self._bound: tuple[weakref.ref, list[weakref.ref], ort.IOBinding] | None = None

    def _check_io(self) -> None:
        """The graph's state inputs must be exactly what the config says (a mismatched bundle fails here)."""
        cfg = self.cfg
        expected = {f"past.{i}.{k}" for i in cfg.deltanet_layers for k in ("conv", "recurrent")}
        expected |= {f"past.{i}.{k}" for i in cfg.attention_layers for k in ("key", "value")}
        found = {i.name for i in self.session.get_inputs() if i.name.startswith("past.")}
        if found != expected:
            raise EdgekitError("the decoder graph's state inputs do not match the bundle's config",
                               "the bundle is mismatched: re-export it")
        shapes = {i.name: i.shape for i in self.session.get_inputs()}
        want = cfg.state_shapes()
        key_shape = shapes[f"past.{cfg.attention_layers[0]}.key"]  # [batch, Hkv, seq, D]
        if (shapes[f"past.{cfg.deltanet_layers[0]}.recurrent"][1:] != list(want["recurrent"][1:])
                or [key_shape[1], key_shape[3]] != list(want["kv_row"])):
            raise EdgekitError("the decoder graph's state shapes do not match the bundle's config",
                               "the bundle is mismatched: re-export it")

    def new_state(self) -> HybridState:
        return HybridState.zeros(self.cfg, self.max_context)

    def forward(self, state: HybridState, ids: np.ndarray, positions: np.ndarray,
                embeds: np.ndarray | None = None) -> np.ndarray:
        """Fold ``ids`` ([T] int64; -1 rows come from ``embeds`` [T, H]) into ``state``; return logits [V].

        Outputs are written by onnxruntime straight into their final arrays (IOBinding). With an
        ``in_place`` graph every state array is bound as both past and present: the KV rows land in the
        preallocated buffer, and the DeltaNet states are updated where they are (the contrib kernels
        read a state before they overwrite it: LinearAttention copies past into present first,
        CausalConvWithState shifts forwards), so nothing is copied or allocated per step, and the
        binding itself is kept for the next call on the same state. An ``append`` graph reads the
        valid KV rows and returns the new ones, which are written into the buffer here.
        """
        t = len(ids)
        if state.length + t > state.max_context:
            raise EdgekitError(f"{state.length + t} tokens exceed the context budget of {state.max_context}",
                               "shorten the prompt or load the bundle with a larger max_context")
        n = state.length
        if self.kv_in_place:
            bind, new_states = self._state_binding(state), {}
            bind.bind_cpu_input("past_length", np.array(n, dtype=np.int64))
        else:
            bind, new_states = self._append_binding(state)
        bind.bind_cpu_input("input_ids", np.ascontiguousarray(ids.reshape(1, t), dtype=np.int64))
        bind.bind_cpu_input("inputs_embeds", self._no_embeds if embeds is None
                            else np.ascontiguousarray(embeds.reshape(1, t, -1), dtype=np.float32))
        bind.bind_cpu_input("position_ids", np.ascontiguousarray(positions.reshape(3, 1, t), dtype=np.int64))
        logits = _bind_new(bind, "logits", (1, 1, self.cfg.vocab_size))
        new_rows = [] if self.kv_in_place else [
            (cache, _bind_new(bind, f"present.{i}.{kind}", (1, cache.shape[1], t, cache.shape[3])))
            for kind, layers in (("key", state.keys), ("value", state.values)) for i, cache in layers.items()]
        prefill = t > 1
        self.session.run_with_iobinding(bind, self._shrink if prefill else None)
        if prefill:
            release_freed_heap()
        for (kind, i), array in new_states.items():
            getattr(state, kind)[i] = array
        for cache, rows in new_rows:
            cache[:, :, n:n + t] = rows
        state.length += t
        return logits[0, -1]

    def _state_binding(self, state: HybridState) -> ort.IOBinding:
        """The binding with every state array as both past and present, reused while they are the same arrays.

        Only weak references are kept: a state the caller drops is freed, and its binding is never run again.
        """
        arrays = state.arrays_by_name()
        if self._bound is not None:
            bound_state, bound_arrays, bind = self._bound
            if bound_state() is state and all(ref() is a for ref, a in zip(bound_arrays, arrays.values(), strict=True)):
                return bind
        bind = self.session.io_binding()
        for name, array in arrays.items():
            kind, i = name.split(".")
            bind.bind_cpu_input(f"past.{i}.{kind}", array)
            _bind_out(bind, f"present.{i}.{kind}", array)
        self._bound = (weakref.ref(state), [weakref.ref(a) for a in arrays.values()], bind)
        return bind

    def _append_binding(self, state: HybridState) -> tuple[ort.IOBinding, dict[tuple[str, int], np.ndarray]]:
        """A new binding: the valid KV rows as past, the DeltaNet states out into fresh arrays (returned)."""
        bind = self.session.io_binding()
        new_states = {}
        for kind, layers in (("conv", state.conv), ("recurrent", state.recurrent)):
            for i, array in layers.items():
                bind.bind_cpu_input(f"past.{i}.{kind}", array)
                new_states[kind, i] = _bind_new(bind, f"present.{i}.{kind}", array.shape)
        for kind, layers in (("key", state.keys), ("value", state.values)):
            for i, cache in layers.items():
                bind.bind_cpu_input(f"past.{i}.{kind}", np.ascontiguousarray(cache[:, :, :state.length]))
        return bind, new_states


def _bind_out(bind: ort.IOBinding, name: str, array: np.ndarray) -> None:
    """Let onnxruntime write output ``name`` into ``array`` (which must be C-contiguous)."""
    bind.bind_output(name, "cpu", 0, np.float32, list(array.shape), array.ctypes.data)


def _bind_new(bind: ort.IOBinding, name: str, shape: tuple[int, ...]) -> np.ndarray:
    """A new (64-byte aligned) array that output ``name`` will be written into."""
    array = aligned_empty(shape)
    _bind_out(bind, name, array)
    return array
