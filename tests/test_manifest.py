"""The typed manifest reader: a real export round-trips; wrong types and missing fields are one-line errors."""

from __future__ import annotations

import copy
import json

import pytest

from edgekit.bundle import Bundle
from edgekit.errors import EdgekitError
from edgekit.manifest import Manifest, write_manifest


@pytest.fixture(scope="module")
def real(int4_bundle) -> dict:
    return json.loads((int4_bundle / "manifest.json").read_text())


def test_a_real_export_reads_back_typed(int4_bundle, real):
    m = Bundle.open(int4_bundle).manifest
    assert (m.backend, m.model, m.decoder.file, m.decoder.kv_update) == ("onnx", "edgekit/tiny-random", "decoder.onnx",
                                                                         "in_place")
    assert m.tokenizer.eos_ids == (248046, 248044) and m.runtime.max_context == real["runtime"]["max_context"]
    assert {name: (e.bytes, e.sha256) for name, e in m.files.items()} == {
        name: (e["bytes"], e["sha256"]) for name, e in real["files"].items()}
    assert m.vision.inputs == tuple(real["graphs"]["vision"]["inputs"]) and m.vision.to_json() == real["graphs"]["vision"]
    assert m.data == real and m.text_config.deltanet_layers == real["state"]["deltanet_layers"]


def _with(manifest: dict, path: tuple[str, ...], value) -> dict:
    """A copy of ``manifest`` with the field at ``path`` (() : the whole manifest) set to ``value``."""
    if not path:
        return value
    out = copy.deepcopy(manifest)
    node = out
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return out


BAD = [  # (path, value, words the one-line error must hold)
    ((), [1, 2], "not an edgekit manifest"),
    (("format_version",), 2, "format version 2 is not supported"),
    (("backend",), "tflite", "unknown bundle backend"),
    (("graphs",), None, "graphs is missing"),
    (("runtime", "max_context"), "lots", "runtime.max_context must be an integer, not a string"),
    (("runtime", "max_context"), 0, "runtime.max_context must be at least 1"),
    (("runtime", "chunk_size"), True, "runtime.chunk_size must be an integer, not a boolean"),
    (("tokenizer", "eos_ids"), None, "tokenizer.eos_ids is missing"),
    (("tokenizer", "eos_ids"), ["<|im_end|>"], "tokenizer.eos_ids must be a list of integers"),
    (("files",), {}, "files does not list decoder.onnx"),
    (("files",), ["decoder.onnx"], "files must be an object, not a list"),
    (("files", "decoder.onnx"), {"bytes": -1, "sha256": "x"}, "must be at least 0"),
    (("state",), 5, "state must be an object, not int"),
    (("graphs", "decoder", "file"), 7, "graphs.decoder.file must be a string"),
    (("graphs", "decoder", "deltanet"), None, "graphs.decoder.deltanet is missing"),
    (("tokenizer", "chat_template"), "llama3", "chat template 'llama3' is not supported"),
]


@pytest.mark.parametrize("path,value,words", BAD, ids=[f"{'.'.join(p) or 'root'}={v!r}" for p, v, _ in BAD])
def test_wrong_types_and_missing_fields_are_one_line_errors(real, path, value, words):
    with pytest.raises(EdgekitError) as err:
        Manifest.parse(_with(real, path, value))
    message = str(err.value)
    assert words in message and "\n" not in message


def test_a_bad_vision_entry_fails_only_when_the_tower_is_used(real):
    m = Manifest.parse(_with(real, ("graphs", "vision", "image"), "big"))
    assert m.decoder.file == "decoder.onnx"  # text generation can go on
    with pytest.raises(EdgekitError, match="graphs.vision.image must be an object, not a string"):
        m.vision


@pytest.mark.parametrize("section", ["text_config", "rope_parameters"])
def test_a_null_config_section_is_a_one_line_error(real, section):
    """Found by the fuzz suite: a null section of the source config raised AttributeError from deep inside."""
    config = copy.deepcopy(real["source"]["config"])
    (config.get("text_config", config) if section == "rope_parameters" else config)[section] = [None]
    m = Manifest.parse(_with(real, ("source", "config"), config))
    with pytest.raises(EdgekitError, match="source.config .*is not a Qwen3.5 config"):
        m.text_config


def test_the_writer_refuses_what_the_reader_would(tmp_path, real):
    (tmp_path / "decoder.onnx").write_bytes(b"x")
    fields = {k: v for k, v in real.items() if k not in ("format", "format_version", "files")}
    fields["runtime"] = {"max_context": -5, "chunk_size": 128}
    with pytest.raises(EdgekitError, match="runtime.max_context must be at least 1"):
        write_manifest(tmp_path, fields)
    assert not (tmp_path / "manifest.json").exists()
