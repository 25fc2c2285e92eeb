"""The onnxruntime backend: runs the bundle's decoder graph on a ``HybridState``."""

from __future__ import annotations

import os

import numpy as np
import onnxruntime as ort

from edgekit.bundle import Bundle
from edgekit.errors import EdgekitError
from edgekit.runtimes.state import HybridState


def default_threads() -> int:
    """Threads for one decode: the cores we may use, at most 4 (more only adds sync cost at batch 1)."""
    return max(1, min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1))


class OnnxDecoder:
    """One ``forward`` call folds T tokens into a state and returns the last position's logits."""

    backend = "onnx"

    def __init__(self, bundle: Bundle, threads: int | None = None, max_context: int | None = None) -> None:
        self.bundle = bundle
        self.cfg = bundle.text_config
        self.max_context = max_context or bundle.manifest["runtime"]["max_context"]
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or default_threads()
        opts.inter_op_num_threads = 1
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")  # spinning hurts on busy cores
        opts.log_severity_level = 3
        graph = bundle.file(bundle.manifest["graphs"]["decoder"]["file"])
        try:
            self.session = ort.InferenceSession(str(graph), opts, providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime raises its own exception types with multi-line messages
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise EdgekitError(f"onnxruntime could not load {graph} ({first[:200]})",
                               "run `edgekit verify` on the bundle and re-export it if it is corrupt") from None
        self.output_names = [o.name for o in self.session.get_outputs()]
        self._check_io()

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
        if (shapes[f"past.{cfg.deltanet_layers[0]}.recurrent"][1:] != list(want["recurrent"][1:])
                or shapes[f"past.{cfg.attention_layers[0]}.key"][2:] != list(want["kv_row"])):
            raise EdgekitError("the decoder graph's state shapes do not match the bundle's config",
                               "the bundle is mismatched: re-export it")

    def new_state(self) -> HybridState:
        cfg, shapes = self.cfg, self.cfg.state_shapes()
        kv = (1, self.max_context, *shapes["kv_row"])
        return HybridState(
            conv={i: np.zeros(shapes["conv"], np.float32) for i in cfg.deltanet_layers},
            recurrent={i: np.zeros(shapes["recurrent"], np.float32) for i in cfg.deltanet_layers},
            keys={i: np.zeros(kv, np.float32) for i in cfg.attention_layers},
            values={i: np.zeros(kv, np.float32) for i in cfg.attention_layers})

    def forward(self, state: HybridState, ids: np.ndarray, positions: np.ndarray,
                embeds: np.ndarray | None = None) -> np.ndarray:
        """Fold ``ids`` ([T] int64; -1 rows come from ``embeds`` [T, H]) into ``state``; return logits [V]."""
        t = len(ids)
        if state.length + t > state.max_context:
            raise EdgekitError(f"{state.length + t} tokens exceed the context budget of {state.max_context}",
                               "shorten the prompt or load the bundle with a larger max_context")
        feeds = {"input_ids": ids.reshape(1, t).astype(np.int64, copy=False),
                 "inputs_embeds": (np.zeros((1, 1, self.cfg.hidden_size), np.float32) if embeds is None
                                   else embeds.reshape(1, t, -1).astype(np.float32, copy=False)),
                 "position_ids": positions.reshape(3, 1, t).astype(np.int64, copy=False)}
        n = state.length
        for i in state.conv:
            feeds[f"past.{i}.conv"] = state.conv[i]
            feeds[f"past.{i}.recurrent"] = state.recurrent[i]
        for i in state.keys:
            feeds[f"past.{i}.key"] = state.keys[i][:, :n]
            feeds[f"past.{i}.value"] = state.values[i][:, :n]
        outputs = dict(zip(self.output_names, self.session.run(self.output_names, feeds)))
        for i in state.conv:
            state.conv[i] = outputs[f"present.{i}.conv"]
            state.recurrent[i] = outputs[f"present.{i}.recurrent"]
        for i in state.keys:
            state.keys[i][:, n:n + t] = outputs[f"present.{i}.key"]
            state.values[i][:, n:n + t] = outputs[f"present.{i}.value"]
        state.length += t
        return outputs["logits"][0, -1]
