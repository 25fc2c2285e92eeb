"""`edgekit deploy --adb`: the real deploy logic against an emulated phone.

The phone is emulated: ``tests/fake_adb/adb`` is put first on PATH and answers ``adb devices``,
``push`` and ``shell`` (mkdir, rm, mv, sha256sum) on a temp folder standing for the device's
filesystem. Everything on this side (device choice, temp folder, checksums, rename) is the real code.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edgekit.manifest import MANIFEST, write_manifest
from edgekit.cli import app
from edgekit.device.deploy import DEVICE_ROOT

FAKE_ADB = Path(__file__).parent / "fake_adb"
runner = CliRunner()


@pytest.fixture
def phone(tmp_path, monkeypatch):
    """The device's filesystem root; one authorized device, R58M1, is connected."""
    root = tmp_path / "phone"
    root.mkdir()
    monkeypatch.setenv("PATH", f"{FAKE_ADB}:{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_ADB_ROOT", str(root))
    monkeypatch.setenv("FAKE_ADB_DEVICES", "R58M1:device")
    monkeypatch.setenv("FAKE_ADB_LOG", str(tmp_path / "adb.log"))
    return root


@pytest.fixture
def small_bundle(tmp_path) -> Path:
    """A bundle folder with small files (deploy copies files; it never runs the model)."""
    folder = tmp_path / "small"
    folder.mkdir()
    (folder / "model.pte").write_bytes(bytes(range(256)) * 40)
    (folder / "tokenizer.json").write_text('{"model": {}}')
    example = json.loads((Path(__file__).parent / "vectors" / "manifest.json").read_text())["cases"][0]["manifest"]
    write_manifest(folder, {k: v for k, v in example.items() if k not in ("format", "format_version", "files")})
    return folder


def _deploy(*args: str):
    return runner.invoke(app, ["deploy", *args])


def _on_phone(root: Path, device_path: str) -> Path:
    return root / device_path.lstrip("/")


def test_deploy_pushes_and_verifies_a_real_bundle(int4_bundle, phone, tmp_path):
    result = _deploy(str(int4_bundle), "--adb")
    assert result.exit_code == 0, result.output
    assert "sha256 verified on the device" in result.stdout
    target = _on_phone(phone, f"{DEVICE_ROOT}/{int4_bundle.name}")
    for local in int4_bundle.iterdir():
        assert hashlib.sha256((target / local.name).read_bytes()).digest() == hashlib.sha256(local.read_bytes()).digest()
    assert not target.with_name(target.name + ".partial").exists()
    log = (tmp_path / "adb.log").read_text()
    assert "-s R58M1 shell 'sha256sum " in log and "-s R58M1 shell 'mv " in log


def test_deploy_replaces_an_old_copy_and_honours_dest(small_bundle, phone):
    old = _on_phone(phone, "/data/local/tmp/b")
    old.mkdir(parents=True)
    (old / "stale.bin").write_text("old")
    result = _deploy(str(small_bundle), "--adb", "R58M1", "--dest", "/data/local/tmp/b")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in old.iterdir()) == [MANIFEST, "model.pte", "tokenizer.json"]


def test_a_corrupt_transfer_is_refused_and_leaves_nothing(small_bundle, phone, monkeypatch):
    monkeypatch.setenv("FAKE_ADB_CORRUPT", "model.pte")
    result = _deploy(str(small_bundle), "--adb")
    assert result.exit_code == 2
    assert "model.pte arrived corrupt on device R58M1" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    bundles = _on_phone(phone, DEVICE_ROOT)
    assert list(bundles.iterdir()) == []  # the temp folder was removed, nothing under the final name


@pytest.mark.parametrize("devices, args, message", [
    ("", ["--adb"], "no Android device is connected"),
    ("A1:device,B2:device", ["--adb"], "2 devices are connected (A1, B2). name one: `edgekit deploy DIR --adb SERIAL`"),
    ("A1:device", ["--adb", "Z9"], "device Z9 is not connected (adb lists: A1)"),
    ("A1:unauthorized", ["--adb"], "device A1 has not authorized this computer"),
    ("A1:offline", ["--adb"], "device A1 is offline"),
    ("A1:device", [], "no target device given"),
])
def test_device_errors_are_one_line(small_bundle, phone, monkeypatch, devices, args, message):
    monkeypatch.setenv("FAKE_ADB_DEVICES", devices)
    result = _deploy(str(small_bundle), *args)
    assert result.exit_code == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_missing_adb_is_one_line(small_bundle, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # no adb anywhere
    result = _deploy(str(small_bundle), "--adb")
    assert result.exit_code == 2
    assert result.stderr.strip() == ("error: `adb` is not installed. install Android SDK Platform-Tools and put adb "
                                     "on PATH, then connect the phone with USB debugging on")


def test_a_locally_corrupt_bundle_is_not_pushed(small_bundle, phone, tmp_path):
    (small_bundle / "model.pte").write_bytes(b"x" * 10240)
    result = _deploy(str(small_bundle), "--adb")
    assert result.exit_code == 2 and "corrupt here already" in result.stderr
    assert not (tmp_path / "adb.log").exists()  # adb was never called
