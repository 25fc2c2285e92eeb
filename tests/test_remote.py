"""``edgekit profile --device``: the real transport against emulated far machines (tests/fake_device.py).

The fake ``ssh``/``scp``/``adb`` run the commands they are sent in a folder standing for the device,
so staging, the device's ``python3 -m edgekit profile`` and fetching the report all really happen.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edgekit.bundle import Bundle
from edgekit.cli import app
from edgekit.device.profiling import ProfileSettings, device_model
from edgekit.device.remote import parse_device, profile_args, stage_bundle
from edgekit.device.transport import Ssh as SshDevice
from edgekit.errors import EdgekitError

TESTS = Path(__file__).parent
QUICK = ["--pp", "8", "--tg", "4", "--depth", "8", "--reps", "1", "--energy", "none"]
BLOCK_ONNXRUNTIME = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] == 'onnxruntime':
            raise ImportError('libonnxruntime.so: cannot open shared object file')
sys.meta_path.insert(0, Block())
"""


class Devices:
    """The far machines: folders under ``root``, reached through the fake tools in ``root/tools``."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _device(self, folder: Path, python: str) -> Path:
        (folder / "bin").mkdir(parents=True)
        self.script(folder, "python3", f'exec {sys.executable} {python} "$@"')
        return folder

    def script(self, device: Path, name: str, body: str) -> None:
        path = device / "bin" / name
        path.write_text(f"#!/bin/sh\n{body}\n")
        path.chmod(0o755)

    def ssh_host(self, name: str, python: str = "") -> Path:
        """A board whose home is the returned folder; ``python``: extra interpreter flags."""
        return self._device(self.root / "ssh" / name, python)

    def phone(self, serial: str) -> Path:
        phone = self._device(self.root / "adb" / serial, "")
        self.script(phone, "getprop", "printf '[ro.product.manufacturer]: [Google]\\n[ro.product.model]: [Pixel 8]\\n"
                                      "[ro.build.version.release]: [14]\\n'")
        self.script(phone, "dumpsys", f"cat {TESTS / 'data' / 'energy' / 'dumpsys_battery.txt'}")
        return phone

    def calls(self, tool: str) -> list[str]:
        log = self.root / "calls.log"
        return [line for line in log.read_text().splitlines() if line.startswith(tool + " ")] if log.exists() else []


@pytest.fixture
def devices(tmp_path, monkeypatch):
    tools = tmp_path / "tools"
    tools.mkdir()
    for tool in ("ssh", "scp", "adb"):
        path = tools / tool
        path.write_text(f"#!{sys.executable}\nimport sys\nsys.path.insert(0, {str(TESTS)!r})\n"
                        f"import fake_device\nfake_device.main({tool!r})\n")
        path.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tools}:{os.environ['PATH']}")
    monkeypatch.setenv("EDGEKIT_FAKE_DEVICES", str(tmp_path / "devices"))
    (tmp_path / "devices").mkdir()
    return Devices(tmp_path / "devices")


def profile(*args: str):
    return CliRunner().invoke(app, ["profile", *args])


def test_ssh_profile_runs_on_the_board_and_reports_here(int4_bundle, devices, tmp_path):
    home = devices.ssh_host("pi")
    out = tmp_path / "report"
    result = profile(str(int4_bundle), "-o", str(out), "--device", "ssh:pi", *QUICK)
    assert result.exit_code == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["profile.html", "profile.json", "profile.md"]
    report = json.loads((out / "profile.json").read_text())
    bundle = Bundle.open(int4_bundle)
    assert report["device"]["device"] == "ssh:pi" and report["device"]["transport"] == "ssh"
    assert report["settings"]["pp"] == 8 and report["decode_tok_s"]["mean"] > 0
    assert report["energy"]["source"] is None
    # The run read the staged copy on the device, which now equals the bundle here.
    staged = home / ".cache" / "edgekit" / "bundles" / bundle.digest
    assert report["bundle"]["path"] == f"bundles/{bundle.digest}" and report["bundle"]["id"] == bundle.digest
    assert not Bundle.open(staged).verify_files()
    assert sorted(report["device"]["files_sent"]) == sorted([*bundle.manifest.data["files"], "manifest.json"])
    assert list((home / ".cache" / "edgekit" / "runs").iterdir()) == []  # the device's run folder is cleaned up
    assert "ssh:pi" in (out / "profile.md").read_text() and "ssh:pi" in (out / "profile.html").read_text()


def test_staging_sends_only_files_that_differ(int4_bundle, devices):
    home = devices.ssh_host("pi")
    device, bundle = SshDevice("pi"), Bundle.open(int4_bundle)
    target, sent = stage_bundle(device, bundle, ".cache/edgekit")
    assert len(sent) == len(bundle.manifest.data["files"]) + 1 and sent[-1] == "manifest.json"  # the manifest last
    assert stage_bundle(device, bundle, ".cache/edgekit") == (target, [])
    name = next(iter(bundle.manifest.data["files"]))
    (home / target / name).write_bytes(b"truncated")
    before = len(devices.calls("scp"))
    assert stage_bundle(device, bundle, ".cache/edgekit")[1] == [name]
    assert len(devices.calls("scp")) == before + 1
    assert not Bundle.open(home / target).verify_files() and not list((home / target).glob("*.partial"))


def test_adb_profile_records_the_phone_and_its_battery(int4_bundle, devices, tmp_path):
    phone = devices.phone("R58M123ABC")
    out = tmp_path / "report"
    result = profile(str(int4_bundle), "-o", str(out), "--device", "adb:R58M123ABC",
                     "--remote-dir", str(phone / "data" / "local" / "tmp" / "edgekit"), *QUICK)
    assert result.exit_code == 0, result.stderr
    report = json.loads((out / "profile.json").read_text())
    assert report["machine"]["model"] == "Google Pixel 8, Android 14"  # read on the phone by its edgekit
    battery = report["device"]["battery_before"]
    assert battery == {"percent": 87.0, "status": "Discharging", "temperature_c": pytest.approx(31.2),
                       "voltage_v": pytest.approx(4.012)}
    assert report["device"]["battery_after"]["percent"] == 87.0
    assert "adb:R58M123ABC, Google Pixel 8, Android 14" in (out / "profile.md").read_text()
    assert "battery 87% → 87% (Discharging, 31.2 °C)" in (out / "profile.md").read_text()
    assert all(" -s R58M123ABC " in call for call in devices.calls("adb"))


def one_line_error(result) -> str:
    assert result.exit_code == 2, result.output
    message = result.stderr.strip()
    assert "\n" not in message and message.startswith("error: ")
    return message


def test_missing_tools(int4_bundle, devices, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    message = one_line_error(profile(str(int4_bundle), "--device", "ssh:pi", *QUICK))
    assert "`ssh` is not installed" in message and "openssh-client" in message
    message = one_line_error(profile(str(int4_bundle), "--device", "adb:X", *QUICK))
    assert "`adb` is not installed" in message and "platform-tools" in message


def test_unreachable_host_and_missing_phone(int4_bundle, devices):
    message = one_line_error(profile(str(int4_bundle), "--device", "ssh:nohost", *QUICK))
    assert "cannot reach nohost over ssh: ssh: Could not resolve hostname nohost" in message
    assert "`ssh nohost true` works" in message
    message = one_line_error(profile(str(int4_bundle), "--device", "adb:NOPE", *QUICK))
    assert "phone NOPE is not available to adb: adb: device 'NOPE' not found" in message
    assert "`adb devices`" in message
    message = one_line_error(profile(str(int4_bundle), "--device", "adb:", *QUICK))
    assert "no devices/emulators found" in message


def test_device_without_python_or_edgekit(int4_bundle, devices):
    devices.ssh_host("bare", python="-I -S")  # a Python without site-packages: no edgekit
    message = one_line_error(profile(str(int4_bundle), "--device", "ssh:bare", *QUICK))
    assert "edgekit is not installed on ssh:bare (for `python3`)" in message
    assert "`python3 -m pip install 'edgekit==" in message
    message = one_line_error(profile(str(int4_bundle), "--device", "ssh:bare", "--remote-python", "python3.99", *QUICK))
    assert "`python3.99` was not found on ssh:bare" in message and "--remote-python" in message


def test_failing_remote_run_shows_the_devices_last_error_line(int4_bundle, devices):
    home = devices.ssh_host("broken")
    (home / "site").mkdir()
    (home / "site" / "sitecustomize.py").write_text(BLOCK_ONNXRUNTIME)  # edgekit imports, onnxruntime does not
    devices.script(home, "python3", f'PYTHONPATH="{home / "site"}:$PYTHONPATH" exec {sys.executable} "$@"')
    message = one_line_error(profile(str(int4_bundle), "--device", "ssh:broken", *QUICK))
    assert ("the profile run on ssh:broken failed: ImportError: libonnxruntime.so: cannot open shared object file"
            in message)
    assert "run it there to see everything: `cd .cache/edgekit && python3 -m edgekit profile bundles/" in message


def test_device_specs_and_profile_args():
    assert parse_device("ssh:pi@raspberrypi.local:2222").__dict__ == {"host": "pi@raspberrypi.local", "port": 2222,
                                                                       "name": "ssh:pi@raspberrypi.local:2222"}
    assert parse_device("ssh:pi").port is None and parse_device("adb:").serial is None
    assert parse_device("adb:R58M").serial == "R58M"
    for bad in ("pi", "ssh:", "usb:1"):
        with pytest.raises(EdgekitError, match="adb:SERIAL or ssh:HOST"):
            parse_device(bad)
    args = profile_args(ProfileSettings(pp=8, threads=2, soak_s=90.0, battery_wh=15.0), "auto")
    assert " ".join(args) == ("--pp 8 --tg 64 --depth 512 --reps 3 --energy auto --duty-cycle 0.1 --threads 2 "
                              "--soak 90.0s --battery-wh 15.0")
    with pytest.raises(EdgekitError, match="idle_s cannot be changed for a run on a device"):
        profile_args(ProfileSettings(idle_s=0.5), "auto")


def test_device_model_from_getprop_or_device_tree(tmp_path):
    props = "[ro.product.manufacturer]: [samsung]\n[ro.product.model]: [SM-S918B]\n[ro.build.version.release]: [14]\n"
    assert device_model(tmp_path / "none", lambda argv: props) == "samsung SM-S918B, Android 14"

    def no_getprop(argv):
        raise FileNotFoundError(argv[0])

    (tmp_path / "model").write_bytes(b"Raspberry Pi 5 Model B Rev 1.0\x00")
    assert device_model(tmp_path / "model", no_getprop) == "Raspberry Pi 5 Model B Rev 1.0"
    assert device_model(tmp_path / "none", no_getprop) is None


def test_a_file_corrupted_on_the_way_is_refused_and_sent_again(int4_bundle, devices, tmp_path, monkeypatch):
    """A link that flips a byte of one file: staging checks each sent file's sha256 on the device."""
    home, bundle = devices.ssh_host("pi"), Bundle.open(int4_bundle)
    name = max(bundle.manifest.files, key=lambda n: bundle.file(n).stat().st_size)
    flaky = tmp_path / "flaky"
    flaky.mkdir()
    (flaky / "scp").write_text(f"""#!{sys.executable}
import subprocess, sys
code = subprocess.call([{str(tmp_path / "tools" / "scp")!r}, *sys.argv[1:]])
path = sys.argv[-1].partition(":")[2]
if path.endswith({name + ".partial"!r}):
    copy = bytearray(open({str(home)!r} + "/" + path, "rb").read())
    copy[len(copy) // 2] ^= 0xFF
    open({str(home)!r} + "/" + path, "wb").write(copy)
sys.exit(code)
""")
    (flaky / "scp").chmod(0o755)
    monkeypatch.setenv("PATH", f"{flaky}:{os.environ['PATH']}")
    with pytest.raises(EdgekitError) as err:
        stage_bundle(SshDevice("pi"), bundle, ".cache/edgekit")
    assert f"{name} arrived corrupt on ssh:pi (sha256 differs from the manifest)" in str(err.value)
    target = home / ".cache" / "edgekit" / "bundles" / bundle.digest
    assert not (target / name).exists() and not (target / "manifest.json").exists()  # nothing under a final name
    monkeypatch.setenv("PATH", os.environ["PATH"].removeprefix(f"{flaky}:"))
    sent = stage_bundle(SshDevice("pi"), bundle, ".cache/edgekit")[1]
    assert name in sent and not Bundle.open(target).verify_files()
