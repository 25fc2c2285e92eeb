"""``edgekit profile --device``: the profile protocol run on a phone (adb) or a board (ssh).

The bundle is staged on the device (files already there with the same sha256 are not sent again),
the device's own edgekit runs ``python3 -m edgekit profile`` with the same settings, and its
``profile.json`` comes back to be rendered here, so the report has the same form as a local one.
Timing, memory and energy are all measured on the device, by the device.
"""

from __future__ import annotations

import json
import shlex
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import edgekit
from edgekit.bundle import Bundle
from edgekit.device.energy import AdbBatterySource
from edgekit.device.process import last_line
from edgekit.device.profiling import ProfileSettings
from edgekit.device.transport import Adb, Ssh, Transport, stage
from edgekit.errors import EdgekitError

_NO_OPTION = ("breakdown_steps", "idle_s", "seed", "soak_window_s")  # ProfileSettings the CLI does not expose


def parse_device(spec: str) -> Transport:
    """``adb:SERIAL`` (``adb:`` for the only phone), ``ssh:[USER@]HOST`` or ``ssh:[USER@]HOST:PORT``."""
    kind, _, target = spec.partition(":")
    if kind == "adb":
        return Adb(target or None)
    if kind == "ssh" and target:
        host, _, port = target.rpartition(":")
        if port.isdigit() and host and ":" not in host:
            return Ssh(host, int(port))
        return Ssh(target)
    raise EdgekitError(f"cannot read the device {spec!r}", "write it as adb:SERIAL or ssh:HOST (ssh:user@host:port)")


def check_edgekit(device: Transport, python: str) -> str:
    """The device's edgekit version; a clear error when its Python or edgekit is missing."""
    proc = device.shell(f"{python} -c 'import edgekit; print(edgekit.__version__)'")
    install = f"`{python} -m pip install 'edgekit=={edgekit.__version__}'`"
    if proc.returncode == 127:
        raise EdgekitError(f"`{python}` was not found on {device.name}",
                           f"install Python 3.10+ there and run {install}, or pass --remote-python COMMAND")
    if proc.returncode != 0:
        if "No module named 'edgekit'" in proc.stderr:
            raise EdgekitError(f"edgekit is not installed on {device.name} (for `{python}`)",
                               f"install it there: {install}")
        raise EdgekitError(f"`{python}` failed on {device.name}: {last_line(proc.stderr)}",
                           f"check that Python works there, then run {install}")
    return proc.stdout.strip()


def stage_bundle(device: Transport, bundle: Bundle, remote_dir: str,
                 progress: Callable[[str], None] = lambda step: None) -> tuple[str, list[str]]:
    """Copy ``bundle`` to ``remote_dir/bundles/<id>`` on the device; return that path and the files sent.

    A file already there with the same sha256 is not sent again (see ``transport.stage``).
    """
    def sending(name: str, n: int, total: int) -> None:
        progress(f"sending {name} ({bundle.file(name).stat().st_size / 2**20:.1f} MiB, {n}/{total})")

    target = f"{remote_dir}/bundles/{bundle.digest}"
    return target, stage(device, bundle, target, sending=sending)


def battery(phone: Adb) -> dict[str, Any]:
    """The phone's battery now (level, status, temperature, voltage), read through adb."""
    return asdict(AdbBatterySource(phone.serial).info())


def profile_args(settings: ProfileSettings, energy: str) -> list[str]:
    """The ``edgekit profile`` options that reproduce ``settings`` on the device."""
    defaults = ProfileSettings()
    fixed = [name for name in _NO_OPTION if getattr(settings, name) != getattr(defaults, name)]
    if fixed:
        raise EdgekitError(f"{', '.join(fixed)} cannot be changed for a run on a device (no CLI option)",
                           "leave them at their defaults")
    args = ["--pp", settings.pp, "--tg", settings.tg, "--depth", settings.depth, "--reps", settings.reps,
            "--energy", energy, "--duty-cycle", settings.duty_cycle]
    if settings.threads is not None:
        args += ["--threads", settings.threads]
    if settings.soak_s > 0:
        args += ["--soak", f"{settings.soak_s!r}s"]
    if settings.battery_wh is not None:
        args += ["--battery-wh", settings.battery_wh]
    return [str(a) for a in args]


def profile_remote(spec: str, bundle_dir: str | Path, settings: ProfileSettings, energy: str = "auto",
                   python: str = "python3", remote_dir: str | None = None,
                   progress: Callable[[str], None] = lambda step: None) -> dict[str, Any]:
    """Run ``edgekit profile`` on the device ``spec`` (see ``parse_device``) and return its result.

    ``python`` is the command that starts the device's Python (it needs edgekit installed);
    ``remote_dir`` the device folder for bundles and runs (default: the transport's own). The result is
    the device's profile.json plus a ``device`` entry: transport, and for a phone its battery before
    and after the run, read through adb.
    """
    bundle = Bundle.open(bundle_dir)
    device, args = parse_device(spec), profile_args(settings, energy)
    remote_dir = remote_dir or device.default_dir
    progress(f"connecting to {device.name}")
    device.connect()
    version = check_edgekit(device, python)
    target, sent = stage_bundle(device, bundle, remote_dir, progress)
    about = {"device": device.name, "transport": device.kind, "edgekit": version, "bundle_path": target,
             "files_sent": sent}
    if isinstance(device, Adb):
        about["battery_before"] = battery(device)

    # Paths below are relative to remote_dir; TMPDIR there too, as Android has no /tmp.
    run = f"runs/{time.strftime('%Y%m%d-%H%M%S')}-{bundle.digest[:8]}"
    profile = (f"{python} -m edgekit profile bundles/{bundle.digest} -o {run} "
               f"{shlex.join(args)}")
    progress(f"profiling on {device.name}")
    proc = device.shell(f"cd {shlex.quote(remote_dir)} && mkdir -p tmp && TMPDIR=\"$PWD/tmp\" {profile}",
                        timeout=None)
    if proc.returncode != 0:
        detail = last_line(proc.stderr) or last_line(proc.stdout) or f"exit status {proc.returncode}"
        raise EdgekitError(f"the profile run on {device.name} failed: {detail}",
                           f"run it there to see everything: `cd {remote_dir} && {profile}`")
    if isinstance(device, Adb):
        about["battery_after"] = battery(device)

    progress("fetching the report")
    with tempfile.TemporaryDirectory() as tmp:
        device.pull(f"{remote_dir}/{run}/profile.json", Path(tmp) / "profile.json")
        result = json.loads((Path(tmp) / "profile.json").read_text())
    device.shell(f"cd {shlex.quote(remote_dir)} && rm -rf {run}")
    result["device"] = about
    return result
