"""int4 packing: numpy quantizer agrees with onnxruntime's MatMulNBits/GatherBlockQuantized kernels."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgekit.export.quantize import dequantize_int4, dequantize_int8, quantize_int4, quantize_int8


@pytest.mark.parametrize("block", [32, 64, 128])
def test_roundtrip_error_is_bounded(block):
    w = np.random.default_rng(0).standard_normal((48, 256)).astype(np.float32)
    q = quantize_int4(w, block)
    deq = dequantize_int4(q)
    scale = q.scales[..., None].repeat(block, -1).reshape(w.shape)
    step = np.abs(scale)
    err = np.abs(deq - w)
    # Rounding costs at most half a step; only a value that clips at code +7 may be off by one step.
    clipped = np.rint(w / scale) > 7
    assert np.all(err[~clipped] <= step[~clipped] / 2 + 1e-6)
    assert np.all(err[clipped] <= step[clipped] + 1e-6)
    # The largest element of each block is represented exactly (it maps to code -8).
    blocks = w.reshape(48, -1, block)
    idx = np.abs(blocks).argmax(-1)[..., None]
    np.testing.assert_allclose(np.take_along_axis(deq.reshape(blocks.shape), idx, -1),
                               np.take_along_axis(blocks, idx, -1), rtol=1e-6)


@pytest.mark.parametrize("block", [32, 64, 128])
def test_onnxruntime_kernels_read_our_layout(block):
    n, k = 96, 256
    w = np.random.default_rng(1).standard_normal((n, k)).astype(np.float32)
    q = quantize_int4(w, block)
    nodes = [
        helper.make_node("MatMulNBits", ["x", "B", "S"], ["y"], domain="com.microsoft", K=k, N=n, bits=4,
                         block_size=block),
        helper.make_node("Reshape", ["S", "shape"], ["S3"]),
        helper.make_node("GatherBlockQuantized", ["B", "ids", "S3"], ["e"], domain="com.microsoft", bits=4,
                         block_size=block, gather_axis=0, quantize_axis=2),
    ]
    graph = helper.make_graph(
        nodes, "t", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, k]),
                     helper.make_tensor_value_info("ids", TensorProto.INT64, [3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None), helper.make_tensor_value_info("e", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(q.packed, "B"), numpy_helper.from_array(q.scales, "S"),
         numpy_helper.from_array(np.array([n, k // block, 1]), "shape")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 23), helper.make_opsetid("com.microsoft", 1)],
                              ir_version=10)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(2).standard_normal((2, k)).astype(np.float32)
    ids = np.array([0, 7, n - 1])
    y, e = sess.run(None, {"x": x, "ids": ids})
    deq = dequantize_int4(q)
    np.testing.assert_allclose(y, x @ deq.T, atol=1e-4)
    np.testing.assert_array_equal(e.reshape(3, k), deq[ids])


def test_bad_block_size():
    with pytest.raises(ValueError, match="block size"):
        quantize_int4(np.zeros((4, 64), np.float32), 48)


def test_int8_layout_matches_onnxruntime():
    n, k = 40, 96
    w = np.random.default_rng(3).standard_normal((n, k)).astype(np.float32)
    q = quantize_int8(w, 32)
    deq = dequantize_int8(q)
    assert np.abs(deq - w).max() <= np.abs(w).max() / 127 / 2 + 1e-6
    node = helper.make_node("MatMulNBits", ["x", "B", "S"], ["y"], domain="com.microsoft", K=k, N=n, bits=8,
                            block_size=32)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, k])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, n])],
                              [numpy_helper.from_array(q.packed, "B"), numpy_helper.from_array(q.scales, "S")])
    model = helper.make_model(graph, ir_version=10, opset_imports=[helper.make_opsetid("", 21),
                                                                  helper.make_opsetid("com.microsoft", 1)])
    x = np.random.default_rng(4).standard_normal((3, k)).astype(np.float32)
    y = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    np.testing.assert_allclose(y, x @ deq.T, rtol=1e-4, atol=1e-4)
