"""Shared fixtures: tiny random Qwen3.5 checkpoints (real config structure) and bundles exported from them."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from edgekit.export.checkpoint import builtin_config, random_model  # noqa: E402
from edgekit.export.onnx_export import export_onnx  # noqa: E402


@pytest.fixture(scope="session")
def tiny_hf():
    """The transformers reference: the same random weights the built-in ``tiny-random`` exports."""
    return random_model(builtin_config("tiny-random"), seed=0)


@pytest.fixture(autouse=True)
def _forget_mrope_deltas(request):
    """transformers keeps a multimodal prompt's ``rope_deltas`` on the model and adds them to later decode
    steps, even after a text-only prefill: clear them after each test that used the shared reference."""
    yield
    if "tiny_hf" in request.fixturenames:
        request.getfixturevalue("tiny_hf").model.rope_deltas = None


def _bundle(tmp_path_factory, name: str, **kw):
    out = tmp_path_factory.mktemp("bundles") / name
    export_onnx("tiny-random", out, show_progress=False, **kw)
    return out


@pytest.fixture(scope="session")
def fp32_bundle(tmp_path_factory):
    return _bundle(tmp_path_factory, "fp32", quant="fp32")


@pytest.fixture(scope="session")
def fp32_scan_bundle(tmp_path_factory):
    return _bundle(tmp_path_factory, "fp32-scan", quant="fp32", contrib_ops=False)


@pytest.fixture(scope="session")
def int4_bundle(tmp_path_factory):
    return _bundle(tmp_path_factory, "int4", quant="int4")


@pytest.fixture(scope="session")
def int4_block64_bundle(tmp_path_factory):
    """int4 in blocks of 64 (tiny-random's dims are 64 wide, so 128 does not divide them)."""
    return _bundle(tmp_path_factory, "int4-block64", quant="int4", block_size=64)


def _et_bundle(tmp_path_factory, name: str, **kw):
    pytest.importorskip("executorch")
    from edgekit.export.executorch_export import export_executorch

    out = tmp_path_factory.mktemp("bundles") / name
    export_executorch("tiny-random", out, show_progress=False, **kw)
    return out


@pytest.fixture(scope="session")
def et_fp32_bundle(tmp_path_factory):
    """ExecuTorch fp32 .pte with its vision methods (96 x 96 frames); chunk 128 so a 200-token prompt takes two calls."""
    return _et_bundle(tmp_path_factory, "et-fp32", quant="fp32", target="android", max_context=512, vision_size=96)


@pytest.fixture(scope="session")
def et_8da4w_bundle(tmp_path_factory):
    """ExecuTorch 8da4w .pte, text-only (as before the vision methods: what an old bundle looks like)."""
    return _et_bundle(tmp_path_factory, "et-8da4w", quant="8da4w", target="android", max_context=512, vision=False)
