"""Bundle integrity: manifest, checksums, atomic export, and one-line errors for bad input."""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

import edgekit
from edgekit.bundle import Bundle
from edgekit.cli import app
from edgekit.errors import EdgekitError
from edgekit.export import bundle_writer
from edgekit.export.onnx_export import export_onnx

runner = CliRunner()


def _one_line_error(result) -> str:
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip() and "━" not in line]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def test_manifest_describes_the_bundle(int4_bundle):
    m = Bundle.open(int4_bundle).manifest.data
    assert m["source"]["model"] == "edgekit/tiny-random"
    assert m["source"]["config"]["model_type"] == "qwen3_5"
    assert m["quantization"] == {**m["quantization"], "weights": "int4", "block_size": 32}
    assert m["tokenizer"]["eos_ids"] == [248046, 248044]
    assert set(m["files"]) == {"decoder.onnx", "decoder.onnx.data", "tokenizer.json", "vision.onnx", "vision.onnx.data"}
    assert m["state"]["deltanet_layers"] == [0, 1, 2, 4, 5, 6] and m["state"]["attention_layers"] == [3, 7]
    assert Bundle.open(int4_bundle).verify_files() == []


def test_int4_bundle_is_smaller_than_fp32(int4_bundle, fp32_bundle):
    size = lambda b: Bundle.open(b).manifest.data["files"]["decoder.onnx.data"]["bytes"]  # noqa: E731
    assert size(int4_bundle) < 0.2 * size(fp32_bundle)


def test_verify_and_info_cli(int4_bundle):
    result = runner.invoke(app, ["verify", str(int4_bundle)])
    assert result.exit_code == 0 and "ok:" in result.output
    result = runner.invoke(app, ["info", str(int4_bundle)])
    assert result.exit_code == 0 and "int4, block 32" in result.output


def test_corrupt_file_is_caught_by_verify(int4_bundle, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(int4_bundle, broken)
    data = broken / "decoder.onnx.data"
    raw = bytearray(data.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    data.write_bytes(bytes(raw))
    result = runner.invoke(app, ["verify", str(broken)])
    assert result.exit_code == 1 and "decoder.onnx.data: sha256" in result.output


def test_bad_bundles_give_one_line_errors(int4_bundle, tmp_path):
    assert "does not exist" in _one_line_error(runner.invoke(app, ["generate", str(tmp_path / "nope"), "-p", "x"]))
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "not an edgekit bundle" in _one_line_error(runner.invoke(app, ["info", str(empty)]))

    corrupt = tmp_path / "corrupt"
    shutil.copytree(int4_bundle, corrupt)
    (corrupt / "manifest.json").write_text("{not json")
    assert "is corrupt" in _one_line_error(runner.invoke(app, ["info", str(corrupt)]))

    truncated = tmp_path / "truncated"
    shutil.copytree(int4_bundle, truncated)
    (truncated / "decoder.onnx").write_bytes((truncated / "decoder.onnx").read_bytes()[:1000])
    assert "could not load" in _one_line_error(runner.invoke(app, ["generate", str(truncated), "-p", "x"]))

    missing = tmp_path / "missing"
    shutil.copytree(int4_bundle, missing)
    (missing / "tokenizer.json").unlink()
    assert "missing tokenizer.json" in _one_line_error(runner.invoke(app, ["generate", str(missing), "-p", "x"]))


def test_mismatched_bundle_is_refused(int4_bundle, tmp_path):
    """A manifest whose config disagrees with the graph (e.g. copied from another model) is refused."""
    other = tmp_path / "mismatched"
    shutil.copytree(int4_bundle, other)
    manifest = json.loads((other / "manifest.json").read_text())
    manifest["source"]["config"]["text_config"]["linear_num_value_heads"] = 8
    (other / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(EdgekitError, match="do not match the bundle's config"):
        edgekit.load(other)


def test_newer_format_version_is_refused(int4_bundle, tmp_path):
    other = tmp_path / "future"
    shutil.copytree(int4_bundle, other)
    manifest = json.loads((other / "manifest.json").read_text())
    manifest["format_version"] = 99
    (other / "manifest.json").write_text(json.dumps(manifest))
    assert "format version 99" in _one_line_error(runner.invoke(app, ["info", str(other)]))


def test_unknown_model_type_is_refused(tmp_path):
    ckpt = tmp_path / "llama"
    ckpt.mkdir()
    (ckpt / "config.json").write_text(json.dumps({"model_type": "llama", "hidden_size": 64}))
    err = _one_line_error(runner.invoke(app, ["export", str(ckpt), "-o", str(tmp_path / "out")]))
    assert "unsupported model type 'llama'" in err
    assert not (tmp_path / "out").exists()


def test_failed_export_leaves_nothing_behind(tmp_path, monkeypatch):
    def boom(dest):
        raise RuntimeError("disk full")

    monkeypatch.setattr(bundle_writer, "build_tokenizer_json", boom)
    with pytest.raises(RuntimeError):
        export_onnx("tiny-random", tmp_path / "out", show_progress=False)
    assert list(tmp_path.iterdir()) == []


def test_existing_output_needs_overwrite(int4_bundle):
    err = _one_line_error(runner.invoke(app, ["export", "tiny-random", "-o", str(int4_bundle)]))
    assert "already exists" in err


def test_bad_options_are_one_line_errors(tmp_path):
    out = str(tmp_path / "x")
    assert "unknown quantization" in _one_line_error(runner.invoke(app, ["export", "tiny-random", "-o", out, "--quant", "int3"]))
    assert "unknown target" in _one_line_error(runner.invoke(app, ["export", "tiny-random", "-o", out, "--target", "tv"]))
    assert "unknown format" in _one_line_error(
        runner.invoke(app, ["export", "tiny-random", "-o", out, "--format", "tflite"]))
