"""What the ExecuTorch exporter records about itself: per-phase time and peak RSS, in the manifest."""

from __future__ import annotations

import collections

import numpy as np
import pytest
import torch

from edgekit.bundle import Bundle
from edgekit.export.phases import Phases

MIB = 2**20


def test_a_phase_that_allocates_has_the_larger_peak():
    phases = Phases()
    phases.start("small")
    phases.start("big")
    block = np.ones(256 * MIB, np.uint8)  # touched, so resident
    phases.stop()
    small, big = phases.records
    assert [small["phase"], big["phase"]] == ["small", "big"]
    assert big["peak_rss_bytes"] - small["peak_rss_bytes"] > 200 * MIB
    assert all(r["seconds"] >= 0 and r["cpu_seconds"] >= 0 for r in phases.records)
    summary = phases.summary()
    assert summary["phases"] == phases.records and summary["peak_rss_bytes"] >= big["peak_rss_bytes"]
    del block


def _phases(bundle_path) -> list[str]:
    return [p["phase"] for p in Bundle.open(bundle_path).manifest.data["export"]["phases"]]


def test_manifest_records_every_phase_of_a_vision_export(et_fp32_bundle):
    pytest.importorskip("executorch")
    export = Bundle.open(et_fp32_bundle).manifest.data["export"]
    names = _phases(et_fp32_bundle)
    assert names[0] == "loading tiny-random" and names[-1] == "writing the bundle"
    methods = ["forward", "forward_rows", "vision_encoder", "get_state", "set_state"]
    for method in methods:
        assert f"torch.export: {method}" in names and f"edge dialect: {method}" in names
    for method in ("forward", "forward_rows", "vision_encoder"):  # the methods with XNNPACK subgraphs
        assert names.index(f"XNNPACK partition: {method}") < names.index(f"XNNPACK preprocess: {method}")
    assert "serialize" in names
    assert sum(p["seconds"] for p in export["phases"]) <= export["seconds"] + 1e-3
    assert export["peak_rss_bytes"] >= max(p["peak_rss_bytes"] for p in export["phases"]) > 0
    # forward_rows runs forward's layers: each layer's XNNPACK subgraphs are preprocessed once, not twice
    # (the parity tests of forward_rows check the result).
    layers = Bundle.open(et_fp32_bundle).text_config.num_layers
    assert layers <= export["xnnpack_subgraphs_shared"] < export["xnnpack_subgraphs"]


def test_text_only_export_has_no_vision_phases(et_8da4w_bundle):
    pytest.importorskip("executorch")
    names = " ".join(_phases(et_8da4w_bundle))
    assert "forward_rows" not in names and "vision_encoder" not in names and "XNNPACK preprocess: forward" in names


@pytest.mark.parametrize("bits", [4, 8])
def test_a_large_head_quantized_by_rows_is_the_whole_matrix_quantization(bits, monkeypatch):
    """The vocabulary head is quantized ROWS_AT_ONCE rows at a time (its float temporaries were the
    decoder build's peak): the codes, scales and outputs equal one whole-matrix quantization."""
    import torch
    from torchao.quantization.granularity import PerAxis, PerGroup

    from edgekit.export import executorch_export

    torch.manual_seed(0)
    dtype, granularity = (torch.int4, PerGroup(32)) if bits == 4 else (torch.int8, PerAxis(0))
    whole, chunked = (torch.nn.Sequential(torch.nn.Linear(128, 200)) for _ in range(2))
    chunked.load_state_dict(whole.state_dict())
    executorch_export._quantize_linears(whole, dtype, granularity, lambda fqn: True)
    monkeypatch.setattr(executorch_export, "ROWS_AT_ONCE", 64)  # 200 rows: four blocks, the last one short
    executorch_export._quantize_linears(chunked, dtype, granularity, lambda fqn: True)
    a, b = whole[0].weight, chunked[0].weight
    assert type(a) is type(b) and a.block_size == b.block_size
    assert all(torch.equal(getattr(a, name), getattr(b, name)) for name in ("qdata", "scale", "zero_point"))
    x = torch.randn(3, 128)
    assert torch.equal(whole(x), chunked(x))


class _Block(torch.nn.Module):
    """A causal conv (which XNNPACK's passes do rewrite) between two linear layers (which they do not), with a
    cumulative sum XNNPACK does not take in between: two delegated subgraphs, the first one's output also used
    at the end."""

    def __init__(self, dtype=None) -> None:
        super().__init__()
        self.up, self.down = torch.nn.Linear(64, 64, dtype=dtype), torch.nn.Linear(64, 64, dtype=dtype)
        self.conv = torch.nn.Conv1d(64, 64, 4, groups=64, padding=3, dtype=dtype)

    def forward(self, x):
        h = self.up(x)
        y = self.conv(torch.cumsum(h, dim=1).transpose(1, 2))[..., :x.shape[1]].transpose(1, 2)
        return self.down(torch.nn.functional.silu(y)) + torch.sigmoid(h)


def _export(module, x):
    return torch.export.export(module.eval(), (x,), strict=False)


def test_the_quick_lowering_gives_executorchs_own_program_byte_for_byte(monkeypatch):
    """Lowered without per-node support checks, with XNNPACK's idle re-traces and hopeless pattern searches
    skipped and the method decomposed in one re-trace instead of two, a program with 8da4w linear layers and a
    conv is the very program ExecuTorch's stock lowering writes."""
    pytest.importorskip("executorch")
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower
    from torch.export import ExportedProgram
    from torchao.quantization.granularity import PerGroup

    from edgekit.export.executorch_export import _quantize_linears
    from edgekit.export.xnnpack_lowering import COMPILE_CONFIG, backend_config, lower

    torch.manual_seed(0)
    block = _Block()
    _quantize_linears(block, torch.int4, PerGroup(32), lambda fqn: True)
    x = torch.randn(1, 5, 64)
    retraces = []  # re-traces of the whole method (XNNPACK's pattern graphs have their own)
    run = ExportedProgram.run_decompositions

    def counted(program: ExportedProgram, *args, **kwargs):
        retraces.append(any(node.name.startswith("p_up_") for node in program.graph.nodes if node.op == "placeholder"))
        return run(program, *args, **kwargs)

    monkeypatch.setattr(ExportedProgram, "run_decompositions", counted)
    with torch.no_grad():
        stock = to_edge_transform_and_lower(_export(block, x), compile_config=COMPILE_CONFIG,
                                            partitioner=[XnnpackPartitioner()]).to_executorch(backend_config()).buffer
        stock_retraces, retraces[:] = retraces.count(True), []
        phases = Phases()
        ours = lower({"forward": _export(block, x)}, {}, phases)
    assert ours == stock
    assert (stock_retraces, retraces.count(True)) == (3, 1)  # the stock lowering is the checked one
    assert phases.notes["xnnpack_retraces_skipped"] > 0
    assert phases.notes["pattern_searches_screened"] > 0  # no upsampling, no attention: nothing to search for
    assert phases.notes["graph_sorts_in_place"] >= 2  # a sort after each delegated subgraph is cut out
    assert "edge dialect: forward (checked)" not in [p["phase"] for p in phases.records]


def test_the_in_place_sort_is_legalize_graphs_order():
    """On a program with a dynamic size (symbolic arithmetic, which ``legalize_graph`` takes first), the sort
    in place leaves the nodes, each node's users and the names as torch.fx's copying sort leaves its copy."""
    import copy

    from torch.fx.passes.tools_common import legalize_graph

    from edgekit.export.xnnpack_lowering import legalize_in_place, legalized_order

    class Reshaped(torch.nn.Module):
        def forward(self, x, y):
            a = torch.sigmoid(y)
            return (x.reshape(x.shape[0] * 2, -1) + 1).sum() + a * x.shape[0], torch.relu(a)

    tokens = torch.export.Dim("tokens", min=2, max=64)
    exported = torch.export.export(Reshaped(), (torch.randn(4, 6), torch.randn(3)),
                                   dynamic_shapes=({0: tokens}, None), strict=False).graph_module
    copied, in_place = copy.deepcopy(exported), copy.deepcopy(exported)

    def described(graph: torch.fx.Graph) -> list:
        return [(node.name, [user.name for user in node.users]) for node in graph.nodes]

    assert [n.name for n in legalized_order(in_place.graph)] != [n.name for n in in_place.graph.nodes]
    legalize_graph(copied)
    assert legalize_in_place(in_place.graph)
    assert described(in_place.graph) == described(copied.graph)
    new_names = [module.graph.call_function(torch.ops.aten.relu.default, ()).name for module in (copied, in_place)]
    assert new_names[0] == new_names[1]


def test_a_graph_with_a_cycle_is_left_to_legalize_graph():
    """A cycle cannot be sorted: the sort in place leaves the graph as it was (``legalize_graph`` then raises)."""
    from edgekit.export.xnnpack_lowering import legalize_in_place

    graph = torch.fx.Graph()
    x = graph.placeholder("x")
    a = graph.call_function(torch.relu, (x,))
    b = graph.call_function(torch.sigmoid, (a,))
    graph.output(b)
    a.args = (b,)  # a <- b <- a
    before = [node.name for node in graph.nodes]
    assert not legalize_in_place(graph)
    assert [node.name for node in graph.nodes] == before


def test_an_op_xnnpack_refuses_sends_the_method_through_the_checked_lowering():
    """XNNPACK takes no float64 linear layer: kept whole by the quick conversion, it would need a kernel the
    runtime lacks (ExecuTorch refuses it), so ``lower`` converts that method again with the checks, and the
    program runs."""
    pytest.importorskip("executorch")
    from executorch.runtime import Runtime

    from edgekit.export.xnnpack_lowering import lower

    torch.manual_seed(0)
    block = _Block(torch.float64)
    x = torch.randn(1, 5, 64, dtype=torch.float64)
    phases = Phases()
    with torch.no_grad():
        expected = block(x)
        pte = lower({"forward": _export(block, x)}, {}, phases)
    names = [p["phase"] for p in phases.records]
    assert names.index("edge dialect: forward") < names.index("edge dialect: forward (checked)")
    method = Runtime.get().load_program(pte).load_method("forward")
    assert torch.allclose(method.execute([x])[0], expected)


@pytest.mark.parametrize("with_final_check", [True, False])
def test_the_set_cycle_check_answers_as_executorchs_for_every_pair(with_final_check, monkeypatch):
    """On a graph with a skip connection around a chain, every pair of node sets gets the answer ExecuTorch's
    own cycle check gives, merges that would close a cycle refused and others allowed; also with the final
    breadth-first ``validate_partition`` taken out, so that the downstream-set check is compared by itself."""
    pytest.importorskip("executorch")
    import itertools

    import torch.fx.passes.utils.fuser_utils as fuser_utils
    from executorch.exir.backend.canonical_partitioners.group_partitioner import GroupBasedPartitioner
    from torch.fx.passes.infra.partitioner import Partition
    from torch.fx.passes.operator_support import OperatorSupportBase

    import edgekit.export.xnnpack_lowering as lowering
    from edgekit.export.xnnpack_lowering import can_merge_without_cycle

    if not with_final_check:
        monkeypatch.setattr(fuser_utils, "validate_partition", lambda nodes: True)
        monkeypatch.setattr(lowering, "validate_partition", lambda nodes: True)

    class Chain(torch.nn.Module):
        def forward(self, x):
            a = torch.relu(x)
            b = torch.neg(a)
            c = torch.sigmoid(b)
            d = a + c
            e = torch.tanh(d)
            return e * b, torch.exp(a)

    class Everything(OperatorSupportBase):
        def is_node_supported(self, submodules, node) -> bool:
            return True

    module = torch.fx.symbolic_trace(Chain())
    partitioner = GroupBasedPartitioner(module, Everything())
    calls = [node for node in module.graph.nodes if node.op == "call_function"]
    groups = [set(g) for size in (1, 2) for g in itertools.combinations(calls, size)]
    answers = collections.Counter()
    for first, second in itertools.combinations(groups, 2):
        if first & second:
            continue
        partitions = {0: Partition(0, list(first)), 1: Partition(1, list(second))}
        stock = GroupBasedPartitioner._can_merge_partitions(partitioner, 0, 1, partitions)
        assert can_merge_without_cycle(partitioner, 0, 1, partitions) == stock, (first, second)
        answers[stock] += 1
    assert answers[True] > 0 and answers[False] > 0
