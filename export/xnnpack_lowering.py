"""Exported programs -> one XNNPACK-lowered ExecuTorch program, a method at a time, each step timed.

ExecuTorch's ``to_edge_transform_and_lower`` over all methods at once holds every method's edge program
and, while XNNPACK preprocesses, a deep copy of every delegated subgraph with its weights. Lowered one
method at a time (the same passes, the same partitioner, so the same delegate blobs), a method's copies
are gone before the next starts; the lowered methods then become one program whose methods share the
state buffers by name, and whose equal weights XNNPACK stores once (its data is keyed by content).
"""

from __future__ import annotations

from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
from executorch.exir import (EdgeCompileConfig, EdgeProgramManager, ExecutorchBackendConfig,
                             to_edge_transform_and_lower)
from executorch.exir.passes import MemoryPlanningPass
from torch.export import ExportedProgram

from edgekit.export.phases import Phases

COMPILE_CONFIG = EdgeCompileConfig(_check_ir_validity=False)


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


def lower(programs: dict[str, ExportedProgram], constants: dict[str, object], phases: Phases | None = None) -> bytes:
    """XNNPACK-lower ``programs`` (emptied as they are lowered) into one program's bytes, with the
    ``constants`` as constant methods; each step a phase on ``phases``."""
    timer = phases or Phases()
    lowered = {}
    for name in list(programs):
        timer.start(f"edge dialect: {name}")
        manager = to_edge_transform_and_lower({name: programs.pop(name)}, compile_config=COMPILE_CONFIG,
                                              partitioner=[_TimedPartitioner(timer, name)])
        lowered[name] = manager.exported_program(name)
    timer.start("to_executorch (memory planning, emit)")
    program = EdgeProgramManager(lowered, constants, COMPILE_CONFIG).to_executorch(ExecutorchBackendConfig(
        memory_planning_pass=MemoryPlanningPass(share_mutable_buffers=True, alloc_graph_input=False),
        emit_mutable_buffer_names=True))
    del lowered
    timer.start("serialize")
    buffer = program.buffer
    if phases is None:
        timer.stop()
    return buffer
