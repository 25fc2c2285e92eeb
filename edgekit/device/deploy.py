"""``edgekit deploy DIR --adb [SERIAL]``: copy a bundle onto an Android phone and check it there.

The bundle is checked here first (manifest, checksums), pushed into a temp folder beside its final
place, checked again on the phone (``sha256sum`` over ``adb shell``, against the manifest), and only
then renamed into place: a broken transfer never leaves a half-copied bundle under the final name.
The default place is the demo app's own storage (``getExternalFilesDir(null)/bundles/<name>``), which
the app reads without any storage permission.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edgekit.bundle import Bundle
from edgekit.device.transport import ADB_CONNECT_FIX, Adb, stage
from edgekit.errors import EdgekitError

APP_ID = "org.edgekit.demo"
DEVICE_ROOT = f"/sdcard/Android/data/{APP_ID}/files/bundles"
_INSTALL_FIX = "install Android SDK Platform-Tools and put adb on PATH, then connect the phone with USB debugging on"


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
            raise EdgekitError(f"device {serial} is not connected (adb lists: {listed})", ADB_CONNECT_FIX)
    elif not states:
        raise EdgekitError("no Android device is connected", ADB_CONNECT_FIX)
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
               on_file: Callable[[str, int], None] | None = None) -> Deployed:
    """Push the bundle at ``bundle_dir`` to ``dest`` (default ``DEVICE_ROOT/<folder name>``) and verify it there.

    ``on_file(name, bytes)`` is called after each file is pushed (for a progress bar).
    """
    bundle = Bundle.open(bundle_dir)
    problems = bundle.verify_files()
    if problems:
        raise EdgekitError(f"bundle {bundle.path} is corrupt here already ({problems[0]})",
                           "re-export it before deploying")
    serial = pick_device(Adb(install_fix=_INSTALL_FIX).output("devices"), serial)
    dest = (dest or f"{DEVICE_ROOT}/{bundle.path.resolve().name}").rstrip("/")
    if not dest.startswith("/"):
        raise EdgekitError(f"device path {dest!r} is not absolute", "pass a path like /data/local/tmp/mybundle")
    phone, tmp = Adb(serial), f"{dest}.partial"
    names = stage(phone, bundle, tmp, fresh=True, sent=on_file)
    phone.run("rm", "-rf", dest)
    phone.run("mv", tmp, dest)
    return Deployed(serial, dest, len(names), sum(bundle.file(name).stat().st_size for name in names))
