"""The shared test vectors (tests/vectors/*.json) that the Android app's Kotlin core is tested against.

They are regenerated from the Python implementation here and must equal the committed files, so
they cannot go stale; the manifest cases are also run through the Python bundle checks.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from edgekit.bundle import Bundle
from edgekit.errors import EdgekitError

VECTORS = Path(__file__).parent / "vectors"
_spec = importlib.util.spec_from_file_location("vectors_generate", VECTORS / "generate.py")
generate = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(generate)


@pytest.mark.parametrize("name", sorted(generate.VECTORS))
def test_vectors_are_up_to_date(name):
    assert (VECTORS / name).read_text(encoding="utf-8") == generate.render(name), \
        "run `python tests/vectors/generate.py` and commit the vectors"


def test_splitmix64_reference_values():
    # Published first output of SplitMix64 seeded with 0 (e.g. the reference in Vigna's xoshiro seeding code).
    assert generate.splitmix64(0, 1) == [0xE220A8397B1DCDAF]


# Verdicts the Python bundle reader reaches itself; the others are app-level (the backend the app runs, the
# ops its runtime has) and open fine here.
PYTHON_CHECKS = {"format": "is not an edgekit manifest", "format_version": "format version",
                 "backend": "unknown bundle backend", "malformed": "is malformed", "chat_template": "chat template",
                 "missing_file": "is missing", "checksum": "sha256 does not match", "size": "is damaged"}
CAMERA_CHECKS = {"no_vision": "has no vision graph", "malformed": "is malformed"}


@pytest.mark.parametrize("case", json.loads((VECTORS / "manifest.json").read_text())["cases"], ids=lambda c: c["name"])
def test_manifest_cases_agree_with_the_python_reader(case, tmp_path):
    for name, text in case["files"].items():
        (tmp_path / name).write_text(text)
    (tmp_path / "manifest.json").write_text(json.dumps(case["manifest"]))
    expect = case["expect"]
    if expect in ("format", "format_version", "backend", "malformed", "chat_template", "missing_file", "size"):
        with pytest.raises(EdgekitError, match=PYTHON_CHECKS[expect]):
            Bundle.open(tmp_path)
        return
    bundle = Bundle.open(tmp_path)
    problems = bundle.verify_files()
    if expect == "checksum":
        assert len(problems) == 1 and PYTHON_CHECKS[expect] in problems[0]
    else:
        assert problems == []
    camera = case.get("camera")
    if camera in CAMERA_CHECKS:  # the vision entry is checked when the tower is used, as in the app
        with pytest.raises(EdgekitError, match=CAMERA_CHECKS[camera]):
            bundle.manifest.vision
    elif camera == "ok":
        assert bundle.manifest.vision.tokens_per_pair == case["manifest"]["graphs"]["vision"]["tokens_per_pair"]


def _keys(node, prefix=""):
    if not isinstance(node, dict):
        return set()
    out = set()
    for key, value in node.items():
        if key in ("config", "files"):  # contents vary with the model / files
            out.add(prefix + key)
            continue
        out.add(prefix + key)
        out |= _keys(value, f"{prefix}{key}.")
    return out


def test_the_onnx_example_has_the_fields_a_real_export_writes(int4_bundle):
    """The app parses the real manifest layout: every field of a real export is in the example (and no others)."""
    example = next(c["manifest"] for c in json.loads((VECTORS / "manifest.json").read_text())["cases"]
                   if c["manifest"]["backend"] == "onnx")
    real = Bundle.open(int4_bundle).manifest.data
    ignore = {"state.names", "quantization.symmetric", "quantization.accuracy_level", "quantization.embedding",
              "quantization.kept_fp32"}  # not read by the app
    real_keys = {k for k in _keys(real) - ignore if not k.startswith("graphs.vision")}  # the app runs no ONNX vision
    assert real_keys == _keys(example)


def test_the_executorch_example_has_the_fields_a_real_export_writes(et_8da4w_bundle):
    """The same for the bundle the app runs: a real 8da4w .pte export."""
    example = next(c["manifest"] for c in json.loads((VECTORS / "manifest.json").read_text())["cases"]
                   if c["manifest"]["backend"] == "executorch")
    real = Bundle.open(et_8da4w_bundle).manifest.data
    ignore = {"state.names", "quantization.symmetric", "quantization.kept_fp32"}  # not read by the app
    ignore |= {k for k in _keys(real) if k == "export" or k.startswith("export.")}  # the exporter's phase record
    vision = {k for k in _keys(real) if k.startswith("graphs.vision")}  # the example with vision checks these
    assert _keys(real) - ignore - vision == _keys(example)
    assert real["required_ops"] == example["required_ops"]
    if vision:  # an export with the vision encoder writes every field the app reads (tests/vectors camera cases)
        with_vision = next(c["manifest"] for c in json.loads((VECTORS / "manifest.json").read_text())["cases"]
                           if c.get("camera") == "ok")
        assert {k for k in _keys(with_vision) if k.startswith("graphs.vision")} <= vision
