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

Most of XNNPACK's 17 preprocess passes edit the graph directly and then re-trace all of it under fake tensors
(``ExportPass.call``) to refresh the metadata, whether or not they changed anything; for this decoder 12 of
them never do. ``LazyRetrace`` skips that re-trace when a pass left the graph's structure as it found it.
A pass that works through the re-trace itself (one that overrides ``call_operator`` and the like, such as
constant propagation) always runs it.

Two of those passes look for op patterns (bilinear upsampling, attention) with torch.fx's ``SubgraphMatcher``,
which tries every node of a subgraph as the start of every pattern. ``ScreenedMatches`` answers "no match"
at once when a pattern calls an op the subgraph never calls: a match maps each of the pattern's calls onto a
call of the same target, so there can be none.

Cutting each delegated subgraph out of a method (~200 per decoder method), ExecuTorch re-sorts the whole
graph with torch.fx's ``legalize_graph``, which copies every node into a new graph and regenerates the
module's Python code: a whole-graph copy and code generation per subgraph, 55 of the 108 s a 24-layer
decoder's ``forward`` spent partitioning and preprocessing. ``SortedInPlace`` moves the nodes into the very
order that copy would have (with the same users order, names and node index, so every later step sees the
same graph) and generates the code once, after the last cut; the program is the same byte for byte.

Before any cut, XNNPACK's partitioner merges its candidate partitions pair by pair (thousands of pairs
per decoder method), refusing a merge that would make a cycle: whether any node outside the
pair that uses it reaches back into it. ExecuTorch answers that by walking each such user's whole downstream
set (thousands of nodes) in Python. ``DisjointMerges`` asks the same question as one set operation
(``isdisjoint``, which walks the smaller set in C); the partitions are the same.

ExecuTorch's conversion re-traces a whole method twice before its edge passes: once to functionalize it
(``run_decompositions({})``), once to apply its default decompositions less the ops the partitioner keeps.
``decomposed_once`` does both in one re-trace (``run_decompositions`` of that table functionalizes too), and
``Functionalized`` answers ExecuTorch's first call with that program; the second then finds nothing left to
decompose and is skipped by ExecuTorch itself.
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import inspect
import operator
import re
from typing import Any

import torch
from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
from executorch.backends.xnnpack.xnnpack_preprocess import XnnpackBackend
from executorch.exir import (EdgeCompileConfig, EdgeProgramManager, ExecutorchBackendConfig,
                             to_edge_transform_and_lower)
from executorch.exir.backend.canonical_partitioners.group_partitioner import GroupBasedPartitioner
from executorch.exir.pass_base import ExportPass, PassResult, _ExportPassBase
from executorch.exir.passes import MemoryPlanningPass
from executorch.exir.tracer import _default_decomposition_table
from torch.export import ExportedProgram
from torch.fx.graph import _FindNodesLookupTable, _Namespace
from torch.fx.passes.utils.fuser_utils import validate_partition
from torch.fx.passes.utils.matcher_utils import SubgraphMatcher

from edgekit.export.phases import Phases

COMPILE_CONFIG = EdgeCompileConfig(_check_ir_validity=False)
_last_program: list = []
SYMBOL = re.compile(r"(?<![A-Za-z0-9_])[su]\d+(?![A-Za-z0-9_])")  # a shape symbol: s27, u0


class _TimedPartitioner(XnnpackPartitioner):
    """XNNPACK's partitioner, marking on ``phases`` where edge conversion ends, partitioning and preprocess begin.

    With ``checked=False`` it keeps its ops (``aten.linear``, torchao's quantize ops, ...) from decomposition
    without asking, node by node, whether XNNPACK takes each one. ExecuTorch then converts to the edge dialect
    with two full re-traces of the graph instead of four; ExecuTorch refuses a kept op that XNNPACK then did not
    take, and ``lower`` converts that method again with the checks.
    """

    def __init__(self, phases: Phases, method: str, checked: bool = True) -> None:
        super().__init__()
        self._phases, self._method, self._checked = phases, method, checked

    def ops_to_not_decompose(self, exported_program: ExportedProgram):
        ops, check = super().ops_to_not_decompose(exported_program)
        return ops, check if self._checked else None

    def partition(self, exported_program: ExportedProgram):
        self._phases.start(f"XNNPACK partition: {self._method}")
        result = super().partition(exported_program)
        self._phases.start(f"XNNPACK preprocess: {self._method}")
        return result


NOT_DELEGATED = "was not decomposed or delegated"  # ExecuTorch's error for a kept op left outside the delegate


def _lower_method(name: str, program: ExportedProgram, timer: Phases) -> ExportedProgram:
    """One method in the edge dialect, XNNPACK-lowered: the unchecked conversion, or the checked one where
    that left an op outside XNNPACK (which ExecuTorch refuses)."""
    def convert(checked: bool) -> ExportedProgram:
        timer.start(f"edge dialect: {name}" + (" (checked)" if checked else ""))
        partitioner = _TimedPartitioner(timer, name, checked)
        given = program if checked else decomposed_once(program, partitioner)
        with contextlib.nullcontext() if checked else Functionalized(given):
            return to_edge_transform_and_lower({name: given}, compile_config=COMPILE_CONFIG,
                                               partitioner=[partitioner]).exported_program(name)

    try:
        return convert(checked=False)
    except RuntimeError as err:
        if NOT_DELEGATED not in str(err):
            raise
        return convert(checked=True)


def decomposed_once(program: ExportedProgram, partitioner: XnnpackPartitioner) -> ExportedProgram:
    """``program`` functionalized and decomposed by ExecuTorch's default table, less the ops the (unchecked)
    ``partitioner`` keeps whole, in one re-trace: what ExecuTorch's conversion does in two (see the module
    docstring)."""
    table = _default_decomposition_table()
    for op in partitioner.ops_to_not_decompose(program)[0]:
        table.pop(op, None)
    return program.run_decompositions(table)


class Functionalized:
    """While active, ``run_decompositions({})`` (functionalization, nothing decomposed) of ``program`` returns
    ``program`` itself: for a program ``decomposed_once`` made, which is functional already."""

    def __init__(self, program: ExportedProgram) -> None:
        self._program = program

    def __enter__(self) -> Functionalized:
        self._run = run = ExportedProgram.run_decompositions
        program = self._program

        def run_decompositions(self: ExportedProgram, decomp_table: dict | None = None, *args: Any, **kwargs: Any):
            if self is program and decomp_table == {} and not args and not kwargs:
                return self
            return run(self, decomp_table, *args, **kwargs)

        ExportedProgram.run_decompositions = run_decompositions
        return self

    def __exit__(self, *exc: object) -> None:
        ExportedProgram.run_decompositions = self._run


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


# What a pass may override to act inside the re-trace; one that overrides none of them only edits the graph.
_RETRACE_HOOKS = frozenset(name for cls in (_ExportPassBase, ExportPass) for name, value in vars(cls).items()
                           if callable(value) and not name.startswith("__") and name not in ("call", "inputs"))


def _structure(graph_module: torch.fx.GraphModule) -> list[tuple]:
    """The graph's nodes as names, ops, targets and arguments: what a pass changes when it changes the graph."""
    return [(node.name, node.op, str(node.target), repr(node.args), repr(node.kwargs))
            for node in graph_module.graph.nodes]


def _edits_only(export_pass: object) -> bool:
    return isinstance(export_pass, ExportPass) and all(
        getattr(type(export_pass), name) is getattr(ExportPass, name) for name in _RETRACE_HOOKS)


class LazyRetrace:
    """While active, XNNPACK's preprocess passes skip their closing re-trace when they changed nothing
    (see the module docstring)."""

    def __enter__(self) -> LazyRetrace:
        import executorch.backends.xnnpack._passes as xnnpack_passes

        self._module, self._transform, self._call = xnnpack_passes, xnnpack_passes._transform, _ExportPassBase.call
        transform, retrace = self._transform, self._call
        self.skipped = 0
        before: dict[int, list[tuple]] = {}  # id of a pass that only edits the graph -> the structure it was given

        def transform_noting(program: ExportedProgram, export_pass: object) -> ExportedProgram:
            if _edits_only(export_pass):
                before[id(export_pass)] = _structure(program.graph_module)
            try:
                return transform(program, export_pass)
            finally:
                before.pop(id(export_pass), None)

        def call(export_pass: _ExportPassBase, graph_module: torch.fx.GraphModule) -> PassResult:
            given = before.get(id(export_pass))
            if given is not None and given == _structure(graph_module):
                self.skipped += 1
                return PassResult(graph_module, False)
            return retrace(export_pass, graph_module)

        xnnpack_passes._transform = transform_noting
        _ExportPassBase.call = call
        return self

    def __exit__(self, *exc: object) -> None:
        self._module._transform = self._transform
        _ExportPassBase.call = self._call


CALLS = ("call_function", "call_method", "call_module")  # the node kinds a pattern match compares by target


def _calls(graph: torch.fx.Graph) -> set:
    return {(node.op, node.target) for node in graph.nodes if node.op in CALLS}


class ScreenedMatches:
    """While active, ``SubgraphMatcher.match`` returns no matches without searching when the pattern calls an
    op the graph does not (see the module docstring)."""

    def __enter__(self) -> ScreenedMatches:
        self._match = match = SubgraphMatcher.match
        self.screened = 0

        def screened_match(matcher: SubgraphMatcher, graph: torch.fx.Graph, node_name_match: str = "") -> list:
            if not node_name_match and not _calls(matcher.pattern) <= _calls(graph):
                self.screened += 1
                return []
            return match(matcher, graph, node_name_match)

        SubgraphMatcher.match = screened_match
        return self

    def __exit__(self, *exc: object) -> None:
        SubgraphMatcher.match = self._match


# torch.fx's legalize_graph takes these first once they are ready (runtime assertions before what they guard).
_FIRST = frozenset({
    operator.add, operator.mul, operator.sub, operator.floordiv, operator.truediv, operator.mod, operator.le,
    operator.lt, operator.ge, operator.gt, operator.eq, operator.ne, torch.ops.aten.sym_constrain_range.default,
    torch.ops.aten.sym_constrain_range_for_size.default, torch.ops.aten._assert_async.msg,
    torch.ops.aten.scalar_tensor.default, torch.ops.aten._assert_scalar.default})


def legalized_order(graph: torch.fx.Graph) -> list[torch.fx.Node]:
    """The order torch.fx's ``legalize_graph`` gives ``graph``'s nodes: Kahn's algorithm, breadth first, each
    node's users in the order they were added."""
    waiting = dict.fromkeys(graph.nodes, 0)
    for node in graph.nodes:
        for user in node.users:
            waiting[user] += 1
    ready = collections.deque(node for node, count in waiting.items() if count == 0)
    order = []
    while ready:
        node = ready.popleft()
        order.append(node)
        for user in node.users:
            waiting[user] -= 1
            if not waiting[user]:
                if user.op == "call_function" and user.target in _FIRST:
                    ready.appendleft(user)
                else:
                    ready.append(user)
    return order


def legalize_in_place(graph: torch.fx.Graph) -> bool:
    """Leave ``graph`` as ``legalize_graph`` leaves its copy: the nodes in its order, each node's users listed in
    that order, the names and the node index registered afresh in that order. False (nothing changed) when
    that cannot be done in place: a cycle, or a name the copy would not keep."""
    order = legalized_order(graph)
    names = _Namespace()
    if len(order) < len(graph.nodes) or any(names.create_name(node.name, None) != node.name for node in order):
        return False
    position = {node: i for i, node in enumerate(order)}
    table = _FindNodesLookupTable()
    for node in order:
        graph._root.prepend(node)  # to the end
        node.users = dict.fromkeys(sorted(node.users, key=position.__getitem__))
        names.associate_name_with_obj(node.name, node)
        table.insert(node)
    graph._graph_namespace, graph._find_nodes_lookup_table = names, table
    return True


class SortedInPlace:
    """While active, ExecuTorch's partitioning re-sorts its graph in place after each cut, and regenerates the
    graph's Python code once, after the last cut (see the module docstring)."""

    def __enter__(self) -> SortedInPlace:
        import executorch.exir.backend.backend_api as backend_api
        import executorch.exir.lowered_backend_module as lowered_backend_module

        self._modules = backend_api, lowered_backend_module
        self._create, self._legalize = create, legalize = (backend_api._create_partitions_in_graph_module,
                                                           lowered_backend_module.legalize_graph)
        self.sorts = 0

        def legalize_without_copy(graph_module: torch.fx.GraphModule) -> torch.fx.GraphModule:
            if not legalize_in_place(graph_module.graph):
                return legalize(graph_module)
            self.sorts += 1
            return graph_module

        def create_then_recompile(graph_module: torch.fx.GraphModule, *args: Any, **kwargs: Any) -> Any:
            try:
                return create(graph_module, *args, **kwargs)
            finally:
                graph_module.recompile()

        backend_api._create_partitions_in_graph_module = create_then_recompile
        lowered_backend_module.legalize_graph = legalize_without_copy
        return self

    def __exit__(self, *exc: object) -> None:
        backend_api, lowered_backend_module = self._modules
        backend_api._create_partitions_in_graph_module = self._create
        lowered_backend_module.legalize_graph = self._legalize


def can_merge_without_cycle(partitioner: GroupBasedPartitioner, p1: int, p2: int, partitions_by_id: dict) -> bool:
    """``GroupBasedPartitioner._can_merge_partitions``, answered with ``isdisjoint`` (see the module docstring)."""
    combined = set(partitions_by_id[p1].nodes) | set(partitions_by_id[p2].nodes)
    downstreams = partitioner.dependency_viewer.downstreams_of
    for node in combined:
        for user in node.users:
            if user not in combined and not combined.isdisjoint(downstreams(user)):
                return False
    return validate_partition(list(combined))


class DisjointMerges:
    """While active, XNNPACK's partitioner checks a merge for cycles with ``can_merge_without_cycle``."""

    def __enter__(self) -> DisjointMerges:
        self._check = GroupBasedPartitioner._can_merge_partitions
        GroupBasedPartitioner._can_merge_partitions = can_merge_without_cycle
        return self

    def __exit__(self, *exc: object) -> None:
        GroupBasedPartitioner._can_merge_partitions = self._check


def backend_config() -> ExecutorchBackendConfig:
    """Memory planning with the state buffers shared by name across methods (``get_state``/``set_state``)."""
    return ExecutorchBackendConfig(
        memory_planning_pass=MemoryPlanningPass(share_mutable_buffers=True, alloc_graph_input=False),
        emit_mutable_buffer_names=True)


def lower(programs: dict[str, ExportedProgram], constants: dict[str, object], phases: Phases | None = None) -> bytes:
    """XNNPACK-lower ``programs`` (emptied as they are lowered) into one program's bytes, with the
    ``constants`` as constant methods; each step a phase on ``phases``."""
    timer = phases or Phases()
    lowered = {}
    with (SharedPreprocess() as shared, LazyRetrace() as lazy, ScreenedMatches() as screened,
          SortedInPlace() as sorted_, DisjointMerges()):
        for name in list(programs):
            lowered[name] = _lower_method(name, programs.pop(name), timer)
    timer.notes.update(xnnpack_subgraphs=shared.seen, xnnpack_subgraphs_shared=shared.reused,
                       xnnpack_retraces_skipped=lazy.skipped,
                       pattern_searches_screened=screened.screened, graph_sorts_in_place=sorted_.sorts)
    timer.start("to_executorch (memory planning, emit)")
    edge = EdgeProgramManager(lowered, constants, COMPILE_CONFIG)
    program = edge.to_executorch(backend_config())
    timer.start("serialize")
    buffer = program.buffer
    _last_program[:] = [program]  # ExecuTorch's pybindings load from a buffer without owning it: keep it alive
    if phases is None:
        timer.stop()
    return buffer
