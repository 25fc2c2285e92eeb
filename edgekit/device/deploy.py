"""``edgekit deploy DIR --adb [SERIAL]``: copy a bundle onto an Android phone and check it there.

The bundle is checked here first (manifest, checksums), pushed into a temp folder beside its final
place, checked again on the phone (``sha256sum`` over ``adb shell``, against the manifest), and only
then renamed into place: a broken transfer never leaves a half-copied bundle under the final name.
The default place is the demo app's own storage (``getExternalFilesDir(null)/bundles/<name>``), which
the app reads without any storage permission.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edgekit.bundle import Bundle
from edgekit.manifest import MANIFEST
from edgekit.device.energy import Runner, run_tool
from edgekit.errors import EdgekitError
from edgekit.files import sha256_file

APP_ID = "org.edgekit.demo"
DEVICE_ROOT = f"/sdcard/Android/data/{APP_ID}/files/bundles"
_ADB_FIX = "connect the phone over USB with USB debugging on, and check that `adb devices` lists it"
_INSTALL_FIX = "install Android SDK Platform-Tools and put adb on PATH, then connect the phone with USB debugging on"
_SHA256 = re.compile(r"^([0-9a-f]{64})\s")


def run_adb(argv: list[str]) -> str:
    """Run an adb command without a time limit (a push of a 1 GB bundle takes minutes)."""
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout


@dataclass(frozen=True)
class Deployed:
    serial: str
    path: str  # the bundle's folder on the device
    files: int
    bytes: int


def pick_device(devices_output: str, serial: str | None) -> str:
    """The serial to use, from ``adb devices`` output; a one-line error when none or several fit."""
    states = {}
    for line in devices_output.splitlines():
        fields = line.split()
        if len(fields) >= 2 and not line.startswith(("List of devices", "*")):
            states[fields[0]] = fields[1]
    if serial is not None:
        if serial not in states:
            listed = ", ".join(states) or "none"
            raise EdgekitError(f"device {serial} is not connected (adb lists: {listed})", _ADB_FIX)
    elif not states:
        raise EdgekitError("no Android device is connected", _ADB_FIX)
    elif len(states) > 1:
        raise EdgekitError(f"{len(states)} devices are connected ({', '.join(sorted(states))})",
                           "name one: `edgekit deploy DIR --adb SERIAL`")
    else:
        serial = next(iter(states))
    if states[serial] == "unauthorized":
        raise EdgekitError(f"device {serial} has not authorized this computer",
                           "accept the 'Allow USB debugging?' prompt on the phone")
    if states[serial] != "device":
        raise EdgekitError(f"device {serial} is {states[serial]}", "reconnect it and check `adb devices`")
    return serial


def deploy_adb(bundle_dir: str | Path, serial: str | None = None, dest: str | None = None,
               runner: Runner = run_adb, on_file: Callable[[str, int], None] | None = None) -> Deployed:
    """Push the bundle at ``bundle_dir`` to ``dest`` (default ``DEVICE_ROOT/<folder name>``) and verify it there.

    ``on_file(name, bytes)`` is called after each file is pushed (for a progress bar).
    """
    bundle = Bundle.open(bundle_dir)
    problems = bundle.verify_files()
    if problems:
        raise EdgekitError(f"bundle {bundle.path} is corrupt here already ({problems[0]})",
                           "re-export it before deploying")
    serial = pick_device(run_tool(runner, ["adb", "devices"], _INSTALL_FIX), serial)
    dest = (dest or f"{DEVICE_ROOT}/{bundle.path.resolve().name}").rstrip("/")
    if not dest.startswith("/"):
        raise EdgekitError(f"device path {dest!r} is not absolute", "pass a path like /data/local/tmp/mybundle")
    tmp = f"{dest}.partial"

    def adb(*args: str) -> str:
        return run_tool(runner, ["adb", "-s", serial, *args], _ADB_FIX)

    def shell(*words: str) -> str:
        return adb("shell", " ".join(shlex.quote(w) for w in words))

    shell("rm", "-rf", tmp)
    shell("mkdir", "-p", tmp)
    names = [*bundle.manifest.files, MANIFEST]
    for name in names:
        adb("push", str(bundle.file(name)), f"{tmp}/{name}")
        if on_file:
            on_file(name, bundle.file(name).stat().st_size)
    expected = {name: entry.sha256 for name, entry in bundle.manifest.files.items()}
    expected[MANIFEST] = sha256_file(bundle.file(MANIFEST))
    for name, sha256 in expected.items():
        out = shell("sha256sum", f"{tmp}/{name}")
        match = _SHA256.match(out.strip())
        if match is None:
            raise EdgekitError(f"cannot read a checksum on device {serial}: {out.strip()[:80]!r}",
                               "the device needs `sha256sum` (Android 8 or newer)")
        if match.group(1) != sha256:
            shell("rm", "-rf", tmp)
            raise EdgekitError(f"{name} arrived corrupt on device {serial} (sha256 differs from the manifest)",
                               "check the cable and free space on the phone, then deploy again")
    shell("rm", "-rf", dest)
    shell("mv", tmp, dest)
    return Deployed(serial, dest, len(names), sum(bundle.file(name).stat().st_size for name in names))
