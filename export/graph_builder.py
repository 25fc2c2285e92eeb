"""A small helper to write ONNX graphs by hand, with weights streamed to one external-data file.

Weights never sit in the protobuf: each initializer is appended to ``<model>.data`` as it is added,
so building the graph of a multi-GB model holds only one weight matrix in memory at a time.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import BinaryIO

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 23
CONTRIB_DOMAIN = "com.microsoft"
_ALIGN = 64


class GraphBuilder:
    """Collects nodes, inputs, outputs and initializers; ``op()`` returns the output name(s)."""

    def __init__(self, name: str, data_file: Path | None = None, parent: "GraphBuilder | None" = None) -> None:
        """``data_file`` None: a subgraph (e.g. a Scan body) whose few constants stay inline."""
        self.name = name
        self.data_path = data_file
        self._data: BinaryIO | None = open(data_file, "wb") if data_file else None
        self.nodes: list[onnx.NodeProto] = []
        self.inputs: list[onnx.ValueInfoProto] = []
        self.outputs: list[onnx.ValueInfoProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._ids = parent._ids if parent else itertools.count()  # node names stay unique across subgraphs
        self._consts: dict[tuple, str] = {}
        self.uses_contrib = False
        self.scope = ""  # prefixes node names ("layers.3.mlp/MatMulNBits_12"): profiles map time to modules

    # -- values ---------------------------------------------------------------------------------
    def input(self, name: str, elem_type: int, shape: list) -> str:
        self.inputs.append(helper.make_tensor_value_info(name, elem_type, shape))
        return name

    def output(self, value: str, name: str, elem_type: int, shape: list | None) -> str:
        if value != name:
            self.op("Identity", value, out=name)
        self.outputs.append(helper.make_tensor_value_info(name, elem_type, shape))
        return name

    def weight(self, name: str, array: np.ndarray) -> str:
        """Add an initializer, written to the external data file right away."""
        array = np.ascontiguousarray(array)
        if self._data is None:
            self.initializers.append(numpy_helper.from_array(array, name))
            return name
        offset = self._data.tell()
        pad = (-offset) % _ALIGN
        if pad:
            self._data.write(b"\0" * pad)
            offset += pad
        self._data.write(array.tobytes())
        tensor = TensorProto()
        tensor.name = name
        tensor.data_type = helper.np_dtype_to_tensor_dtype(array.dtype)
        tensor.dims.extend(array.shape)
        tensor.data_location = TensorProto.EXTERNAL
        for key, val in (("location", self.data_path.name), ("offset", str(offset)), ("length", str(array.nbytes))):
            entry = tensor.external_data.add()
            entry.key, entry.value = key, val
        self.initializers.append(tensor)
        return name

    def const(self, value, dtype=np.int64) -> str:
        """A small constant kept inside the graph (shapes, axes, scalars); deduplicated."""
        array = np.asarray(value, dtype=dtype)
        key = (array.dtype.str, array.shape, array.tobytes())
        if key not in self._consts:
            name = f"{self.name}_const_{len(self._consts)}"
            self.initializers.append(numpy_helper.from_array(array, name))
            self._consts[key] = name
        return self._consts[key]

    # -- nodes ----------------------------------------------------------------------------------
    def op(self, op_type: str, *inputs: str | None, out: str | list[str | None] | None = None, n_out: int = 1,
           omit: tuple[int, ...] = (), domain: str = "", **attrs) -> str | list[str]:
        """Append a node. ``None`` inputs become ONNX's empty (omitted optional) input; ``out`` names
        outputs (a list for several; None entries get generated names); the optional outputs at the
        indexes in ``omit`` are left unnamed, so they are never computed."""
        stem = f"{self.scope}/{op_type}_{next(self._ids)}" if self.scope else f"{op_type}_{next(self._ids)}"
        names = out if isinstance(out, list) else [out] * n_out
        outs = [name or (f"{stem}_out{i}" if n_out > 1 else f"{stem}_out") for i, name in enumerate(names)]
        outs = ["" if i in omit else name for i, name in enumerate(outs)]
        if domain == CONTRIB_DOMAIN:
            self.uses_contrib = True
        self.nodes.append(helper.make_node(op_type, [i or "" for i in inputs], outs, name=stem, domain=domain, **attrs))
        return outs[0] if n_out == 1 else outs

    def reshape(self, x: str, shape: list[int]) -> str:
        return self.op("Reshape", x, self.const(shape))

    def matmul_t(self, x: str, weight_t: str) -> str:
        return self.op("MatMul", x, weight_t)

    # -- finish ---------------------------------------------------------------------------------
    def graph(self) -> onnx.GraphProto:
        return helper.make_graph(self.nodes, self.name, self.inputs, self.outputs, self.initializers)

    def save(self, path: Path) -> onnx.ModelProto:
        """Write ``path`` (graph only; weights are already in the data file) and return the model."""
        if self._data is not None:
            self._data.close()
        graph = self.graph()
        opsets = [helper.make_opsetid("", OPSET)]
        if self.uses_contrib:
            opsets.append(helper.make_opsetid(CONTRIB_DOMAIN, 1))
        model = helper.make_model(graph, opset_imports=opsets, ir_version=10, producer_name="edgekit")
        onnx.save_model(model, path)
        return model
