"""`edgekit describe`: images in, a streamed reply out; one-line errors for bad images and bundles."""

from __future__ import annotations

import json
import shutil

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from edgekit.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    cv2.imwrite(str(folder / "a.png"), (rng.random((120, 200, 3)) * 255).astype(np.uint8))
    cv2.imwrite(str(folder / "b.jpg"), (rng.random((300, 300)) * 255).astype(np.uint8))  # grey JPEG
    (folder / "notes.txt").write_text("not an image")
    return folder


def _one_line_error(result) -> str:
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def test_describe_streams_a_reply(int4_bundle, images):
    result = runner.invoke(app, ["describe", str(int4_bundle), str(images / "a.png"), "-p", "What is it?", "-n", "4",
                                 "--max-pixels", "50176"])
    assert result.exit_code == 0, result.output
    assert "1 image (" in result.stderr and "vision tokens" in result.stderr and "TTFT" in result.stderr
    two = runner.invoke(app, ["describe", str(int4_bundle), str(images / "a.png"), str(images / "b.jpg"), "-n", "2",
                              "--max-pixels", "50176"])
    assert two.exit_code == 0, two.output
    assert "2 images (" in two.stderr


def test_describe_errors(int4_bundle, images, tmp_path):
    bundle = str(int4_bundle)
    assert "does not exist" in _one_line_error(runner.invoke(app, ["describe", bundle, str(images / "nope.png")]))
    assert "cannot read" in _one_line_error(runner.invoke(app, ["describe", bundle, str(images / "notes.txt")]))
    err = _one_line_error(runner.invoke(app, ["describe", bundle, str(images / "b.jpg"), "--max-context", "32"]))
    assert "context budget is 32" in err and "--max-pixels" in err

    text_only = tmp_path / "text-only"
    shutil.copytree(int4_bundle, text_only)
    manifest = json.loads((text_only / "manifest.json").read_text())
    del manifest["graphs"]["vision"]
    (text_only / "manifest.json").write_text(json.dumps(manifest))
    assert "has no vision graph" in _one_line_error(runner.invoke(app, ["describe", str(text_only),
                                                                         str(images / "a.png")]))
