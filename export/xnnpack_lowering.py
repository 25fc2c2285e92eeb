"""Exported programs -> one XNNPACK-lowered ExecuTorch program, a method at a time, each step timed.

ExecuTorch's ``to_edge_transform_and_lower`` over all methods at once holds every method's edge program
and, while XNNPACK preprocesses, a deep copy of every delegated subgraph with its weights. Lowered one
method at a time (the same passes, the same partitioner), a method's copies are gone before the next
starts; the lowered methods then become one program whose methods share the state buffers by name, and
whose equal weights XNNPACK stores once (its data is keyed by content).

``forward_rows`` runs the very layers ``forward`` runs: most of its delegated subgraphs are equal to
``forward``'s, op for op and weight for weight. XNNPACK's preprocess (its own passes over the subgraph,
then serialization) is a function of the subgraph alone, so ``SharedPreprocess`` runs it once per
distinct subgraph and hands an equal one the same result (the one difference: the blob keeps the first
method's debug handles, which only map profiling events back to graph nodes).
"""

from __future__ import annotations

import hashlib
import inspect
import re
from typing import Any

import torch
from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
from executorch.backends.xnnpack.xnnpack_preprocess import XnnpackBackend
from executorch.exir import (EdgeCompileConfig, EdgeProgramManager, ExecutorchBackendConfig,
                             to_edge_transform_and_lower)
from executorch.exir.passes import MemoryPlanningPass
from torch.export import ExportedProgram

from edgekit.export.phases import Phases

COMPILE_CONFIG = EdgeCompileConfig(_check_ir_validity=False)
_last_program: list = []
SYMBOL = re.compile(r"(?<![A-Za-z0-9_])[su]\d+(?![A-Za-z0-9_])")  # a shape symbol: s27, u0


class _TimedPartitioner(XnnpackPartitioner):
    """XNNPACK's partitioner, marking on ``phases`` where edge conversion ends, partitioning and preprocess begin."""

    def __init__(self, phases: Phases, method: str) -> None:
        super().__init__()
        self._phases, self._method = phases, method

    def partition(self, exported_program: ExportedProgram):
        self._phases.start(f"XNNPACK partition: {self._method}")
        result = super().partition(exported_program)
        self._phases.start(f"XNNPACK preprocess: {self._method}")
        return result


def _fingerprint(program: ExportedProgram, compile_specs: list) -> bytes:
    """A digest of everything XNNPACK's preprocess reads: the graph (ops, arguments by position, value
    shapes and dtypes, input kinds and names), the contents of its weights and the compile specs. Shape
    symbols count by order of appearance, with their value ranges."""
    digest = hashlib.blake2b(digest_size=20)
    index: dict[torch.fx.Node, int] = {}
    symbols: dict[str, str] = {}  # torch.export names the token count s27 in one method, s18 in the next

    def update(text: str) -> None:
        digest.update(SYMBOL.sub(lambda m: symbols.setdefault(m[0], f"#{len(symbols)}"), text).encode())

    def plain(value: Any) -> Any:
        return torch.fx.node.map_aggregate(value, lambda v: ("node", index[v]) if isinstance(v, torch.fx.Node) else v)

    def contents(tensor: object) -> None:
        if isinstance(tensor, torch.Tensor):
            tensor = tensor.detach().contiguous()
            digest.update(repr((tensor.dtype, tuple(tensor.shape))).encode())
            digest.update(tensor.view(-1).view(torch.uint8).numpy().data if tensor.numel() else b"")

    for i, node in enumerate(program.graph.nodes):
        index[node] = i
        val = node.meta.get("val")
        described = (tuple(val.shape), val.dtype, val.stride()) if isinstance(val, torch.Tensor) else repr(val)
        update(repr((node.op, str(node.target), plain(node.args), plain(node.kwargs), described,
                     node.meta.get("custom"))))
        if node.op == "get_attr":
            contents(getattr(program.graph_module, node.target, None))
    for spec in program.graph_signature.input_specs:
        digest.update(repr((spec.kind, spec.target)).encode())
        if spec.target:
            contents(program.state_dict.get(spec.target, program.constants.get(spec.target)))
    for spec in compile_specs:
        digest.update(spec.key.encode() + bytes(spec.value))
    ranges = {str(symbol): value for symbol, value in program.range_constraints.items()}
    update(repr([(canonical, str(ranges.get(name))) for name, canonical in symbols.items()]))
    return digest.digest()


class SharedPreprocess:
    """While active, XNNPACK preprocesses each distinct delegated subgraph once (see the module docstring);
    an equal subgraph is neither copied nor preprocessed again."""

    def __enter__(self) -> SharedPreprocess:
        self._saved = {name: inspect.getattr_static(XnnpackBackend, name)
                       for name in ("copy_exported_program_for_preprocess", "preprocess")}
        copy, preprocess = XnnpackBackend.copy_exported_program_for_preprocess, XnnpackBackend.preprocess
        results: dict[bytes, Any] = {}
        keys: dict[int, bytes] = {}  # id of the program preprocess will get -> its fingerprint
        self.seen = self.reused = 0

        def shared_copy(cls, program: ExportedProgram, compile_specs: list) -> ExportedProgram:
            key = _fingerprint(program, compile_specs)
            self.seen += 1
            if key in results:
                self.reused += 1
            else:
                program = copy(program, compile_specs)
            keys[id(program)] = key
            return program

        def shared_preprocess(program: ExportedProgram, compile_specs: list):
            key = keys.pop(id(program))
            if key not in results:
                results[key] = preprocess(program, compile_specs)
            return results[key]

        XnnpackBackend.copy_exported_program_for_preprocess = classmethod(shared_copy)
        XnnpackBackend.preprocess = staticmethod(shared_preprocess)
        return self

    def __exit__(self, *exc: object) -> None:
        for name, attribute in self._saved.items():
            setattr(XnnpackBackend, name, attribute)


def lower(programs: dict[str, ExportedProgram], constants: dict[str, object], phases: Phases | None = None) -> bytes:
    """XNNPACK-lower ``programs`` (emptied as they are lowered) into one program's bytes, with the
    ``constants`` as constant methods; each step a phase on ``phases``."""
    timer = phases or Phases()
    lowered = {}
    with SharedPreprocess() as shared:
        for name in list(programs):
            timer.start(f"edge dialect: {name}")
            manager = to_edge_transform_and_lower({name: programs.pop(name)}, compile_config=COMPILE_CONFIG,
                                                  partitioner=[_TimedPartitioner(timer, name)])
            lowered[name] = manager.exported_program(name)
    timer.notes.update(xnnpack_subgraphs=shared.seen, xnnpack_subgraphs_shared=shared.reused)
    timer.start("to_executorch (memory planning, emit)")
    edge = EdgeProgramManager(lowered, constants, COMPILE_CONFIG)
    program = edge.to_executorch(ExecutorchBackendConfig(
        memory_planning_pass=MemoryPlanningPass(share_mutable_buffers=True, alloc_graph_input=False),
        emit_mutable_buffer_names=True))
    timer.start("serialize")
    buffer = program.buffer
    _last_program[:] = [program]  # ExecuTorch's pybindings load from a buffer without owning it: keep it alive
    if phases is None:
        timer.stop()
    return buffer
