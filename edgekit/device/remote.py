"""``edgekit profile --device``: the profile protocol run on a phone (adb) or a board (ssh).

The bundle is staged on the device (files already there with the same sha256 are not sent again),
the device's own edgekit runs ``python3 -m edgekit profile`` with the same settings, and its
``profile.json`` comes back to be rendered here, so the report has the same form as a local one.
Timing, memory and energy are all measured on the device, by the device.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import edgekit
from edgekit.bundle import MANIFEST, Bundle
from edgekit.device.energy import AdbBatterySource
from edgekit.device.profiling import ProfileSettings
from edgekit.errors import EdgekitError
from edgekit.files import sha256_file

_SSH_FIX = "install the OpenSSH client (`apt install openssh-client`)"
_ADB_FIX = "install Android platform-tools (`apt install adb`) and put `adb` on PATH"
_NO_OPTION = ("breakdown_steps", "idle_s", "seed", "soak_window_s")  # ProfileSettings the CLI does not expose


def _call(argv: list[str], missing_fix: str, timeout: float | None) -> subprocess.CompletedProcess[str]:
    """Run a local tool; a missing tool or a hang becomes a one-line error, any exit status is returned."""
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        raise EdgekitError(f"`{argv[0]}` is not installed", missing_fix) from None
    except subprocess.TimeoutExpired:
        raise EdgekitError(f"`{' '.join(argv[:4])} ...` did not answer within {timeout:.0f} s",
                           "check the connection to the device") from None


def last_line(text: str) -> str:
    """The last non-blank line of ``text`` (a traceback's exception, an ``error: ...`` line), or ""."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


class SshDevice:
    """A board reached with ``ssh`` and ``scp``; login must work with a key (nothing is typed)."""

    kind = "ssh"
    default_dir = ".cache/edgekit"  # relative to the login's home

    def __init__(self, host: str, port: int | None = None) -> None:
        self.host, self.port = host, port
        self.name = f"ssh:{host}" + (f":{port}" if port else "")

    def _options(self, port_flag: str) -> list[str]:
        return ["-o", "BatchMode=yes", "-o", "ConnectTimeout=10", "-o", "ServerAliveInterval=30",
                *([port_flag, str(self.port)] if self.port else [])]

    def connect(self) -> None:
        self.shell("true", timeout=60)

    def shell(self, command: str, timeout: float | None = 120) -> subprocess.CompletedProcess[str]:
        """Run ``command`` with the device's ``sh`` (whatever the login shell); exit status 255 is ssh's own
        failure (host unreachable)."""
        proc = _call(["ssh", *self._options("-p"), self.host, f"sh -c {shlex.quote(command)}"], _SSH_FIX, timeout)
        if proc.returncode == 255:
            raise EdgekitError(f"cannot reach {self.host} over ssh: {last_line(proc.stderr) or 'exit status 255'}",
                               f"check that `ssh {self.host} true` works without a password prompt (use a key)")
        return proc

    def push(self, local: Path, remote: str) -> None:
        self._copy(str(local), f"{self.host}:{remote}")

    def pull(self, remote: str, local: Path) -> None:
        self._copy(f"{self.host}:{remote}", str(local))

    def _copy(self, source: str, dest: str) -> None:
        proc = _call(["scp", "-q", *self._options("-P"), source, dest], _SSH_FIX, None)
        if proc.returncode != 0:
            raise EdgekitError(f"`scp {source} {dest}` failed: {last_line(proc.stderr) or proc.returncode}",
                               "check the connection and the free space on the device")


class AdbDevice:
    """An Android phone reached with ``adb`` (USB debugging on); the shell user runs the device's Python."""

    kind = "adb"
    default_dir = "/data/local/tmp/edgekit"  # writable and executable for adb's shell user

    def __init__(self, serial: str | None = None) -> None:
        self.serial = serial
        self.name = f"adb:{serial or ''}"

    def _adb(self, *args: str, timeout: float | None = 120) -> subprocess.CompletedProcess[str]:
        return _call(["adb", *(["-s", self.serial] if self.serial else []), *args], _ADB_FIX, timeout)

    def connect(self) -> None:
        proc = self._adb("get-state", timeout=60)
        if proc.returncode != 0 or proc.stdout.strip() != "device":
            detail = last_line(proc.stderr) or proc.stdout.strip() or f"exit status {proc.returncode}"
            who = f"phone {self.serial}" if self.serial else "the phone"
            raise EdgekitError(f"{who} is not available to adb: {detail}",
                               "plug it in with USB debugging on and allow this computer; "
                               "`adb devices` must list it as `device`")

    def shell(self, command: str, timeout: float | None = 120) -> subprocess.CompletedProcess[str]:
        """Run ``command`` in the phone's shell (adb returns the command's exit status)."""
        return self._adb("shell", command, timeout=timeout)

    def push(self, local: Path, remote: str) -> None:
        self._transfer("push", str(local), remote)

    def pull(self, remote: str, local: Path) -> None:
        self._transfer("pull", remote, str(local))

    def _transfer(self, verb: str, source: str, dest: str) -> None:
        proc = self._adb(verb, source, dest, timeout=None)
        if proc.returncode != 0:
            raise EdgekitError(f"`adb {verb} {source} {dest}` failed: {last_line(proc.stderr) or proc.returncode}",
                               "check the connection and the free space on the phone")

    def battery(self) -> dict[str, Any]:
        """The phone's battery now (level, status, temperature, voltage), read through adb."""
        return asdict(AdbBatterySource(self.serial).info())


Device = SshDevice | AdbDevice


def parse_device(spec: str) -> Device:
    """``adb:SERIAL`` (``adb:`` for the only phone), ``ssh:[USER@]HOST`` or ``ssh:[USER@]HOST:PORT``."""
    kind, _, target = spec.partition(":")
    if kind == "adb":
        return AdbDevice(target or None)
    if kind == "ssh" and target:
        host, _, port = target.rpartition(":")
        if port.isdigit() and host and ":" not in host:
            return SshDevice(host, int(port))
        return SshDevice(target)
    raise EdgekitError(f"cannot read the device {spec!r}", "write it as adb:SERIAL or ssh:HOST (ssh:user@host:port)")


def check_edgekit(device: Device, python: str) -> str:
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


def stage_bundle(device: Device, bundle: Bundle, remote_dir: str,
                 progress: Callable[[str], None] = lambda step: None) -> tuple[str, list[str]]:
    """Copy ``bundle`` to ``remote_dir/bundles/<id>`` on the device; return that path and the files sent.

    A file already there with the same sha256 is not sent again; a sent file arrives under a temporary
    name and is renamed once all have arrived, the manifest last.
    """
    files = {name: info["sha256"] for name, info in bundle.manifest["files"].items()}
    files[MANIFEST] = sha256_file(bundle.path / MANIFEST)
    target = f"{remote_dir}/bundles/{bundle.digest}"
    folders = sorted({str(Path(target, name).parent) for name in files})
    names = " ".join(shlex.quote(name) for name in files)
    proc = device.shell(f"mkdir -p {' '.join(map(shlex.quote, folders))} && cd {shlex.quote(target)} && "
                        f"{{ sha256sum -- {names} 2>/dev/null; true; }}")
    if proc.returncode != 0:
        raise EdgekitError(f"cannot create {target} on {device.name}: {last_line(proc.stderr)}",
                           "pass a writable folder with --remote-dir")
    there = {}
    for line in proc.stdout.splitlines():
        digest, _, name = line.partition(" ")
        there[name.strip().lstrip("*")] = digest
    send = sorted((name for name, digest in files.items() if there.get(name) != digest), key=lambda n: n == MANIFEST)
    for n, name in enumerate(send, 1):
        size = (bundle.path / name).stat().st_size
        progress(f"sending {name} ({size / 2**20:.1f} MiB, {n}/{len(send)})")
        device.push(bundle.path / name, f"{target}/{name}.partial")
    if send:
        renames = " && ".join(f"mv -f {shlex.quote(n + '.partial')} {shlex.quote(n)}" for n in send)
        proc = device.shell(f"cd {shlex.quote(target)} && {renames}")
        if proc.returncode != 0:
            raise EdgekitError(f"cannot finish staging the bundle on {device.name}: {last_line(proc.stderr)}",
                               "check the free space on the device")
    return target, send


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
    if not settings.memory_stages:
        args.append("--no-memory-stages")
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
    if isinstance(device, AdbDevice):
        about["battery_before"] = device.battery()

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
    if isinstance(device, AdbDevice):
        about["battery_after"] = device.battery()

    progress("fetching the report")
    with tempfile.TemporaryDirectory() as tmp:
        device.pull(f"{remote_dir}/{run}/profile.json", Path(tmp) / "profile.json")
        result = json.loads((Path(tmp) / "profile.json").read_text())
    device.shell(f"cd {shlex.quote(remote_dir)} && rm -rf {run}")
    result["device"] = about
    return result
