"""Reaching a device: an Android phone over ``adb`` or a board over ``ssh``/``scp``, and staging a bundle there.

Both transports have the same face: ``connect()``, ``shell(command)`` (the command's exit status comes
back; a transport failure is a one-line ``EdgekitError``), ``run(*words)`` (a checked command),
``push``/``pull`` and ``sha256(path)``. ``stage`` copies a bundle's files with both, checking every
file it sends by its sha256 on the device against the manifest.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from collections.abc import Callable
from pathlib import Path

from edgekit.bundle import Bundle
from edgekit.device.process import Runner, call, first_line, last_line
from edgekit.errors import EdgekitError
from edgekit.files import sha256_file
from edgekit.manifest import MANIFEST

ADB_INSTALL_FIX = "install Android platform-tools (`apt install adb`) and put `adb` on PATH"
ADB_CONNECT_FIX = "connect the phone over USB with USB debugging on, and check that `adb devices` lists it"
_SSH_INSTALL_FIX = "install the OpenSSH client (`apt install openssh-client`)"
_SHA256 = re.compile(r"^([0-9a-f]{64})\s")


class _Transport:
    """What adb and ssh share: commands built from words, checksums, the device's name in messages."""

    name: str

    def shell(self, command: str, timeout: float | None = 120) -> subprocess.CompletedProcess[str]:
        raise NotImplementedError

    @property
    def where(self) -> str:
        """The device as error messages name it."""
        raise NotImplementedError

    def run(self, *words: str, timeout: float | None = 120) -> str:
        """Run the command ``words`` (each quoted) in the device's shell; a non-zero exit is a one-line error."""
        command = shlex.join(words)
        proc = self.shell(command, timeout=timeout)
        if proc.returncode != 0:
            detail = first_line(proc.stderr) or first_line(proc.stdout) or f"exit status {proc.returncode}"
            raise EdgekitError(f"`{command}` failed on {self.where}: {detail}",
                               "check the connection and the free space on the device")
        return proc.stdout

    def sha256(self, path: str) -> str:
        """The sha256 of the file ``path`` on the device, computed there."""
        proc = self.shell(shlex.join(["sha256sum", path]), timeout=None)  # hashing a large file takes a while
        match = _SHA256.match(proc.stdout.strip())
        if proc.returncode != 0 or match is None:
            out = (proc.stdout.strip() or proc.stderr.strip())[:80]
            raise EdgekitError(f"cannot read a checksum on {self.where}: {out!r}",
                               "the device needs `sha256sum` (Android 8 or newer, coreutils elsewhere)")
        return match.group(1)


class Adb(_Transport):
    """An Android phone reached with ``adb`` (USB debugging on); ``serial`` None: the only phone connected.

    ``runner`` stands in for the ``adb`` program (recorded output in tests); ``install_fix`` is the advice
    printed when adb is missing.
    """

    kind = "adb"
    default_dir = "/data/local/tmp/edgekit"  # writable and executable for adb's shell user

    def __init__(self, serial: str | None = None, runner: Runner | None = None,
                 install_fix: str = ADB_INSTALL_FIX) -> None:
        self.serial, self.runner, self.install_fix = serial, runner, install_fix
        self.name = f"adb:{serial or ''}"

    @property
    def where(self) -> str:
        return f"device {self.serial}" if self.serial else "the phone"

    def adb(self, *args: str, timeout: float | None = 120) -> subprocess.CompletedProcess[str]:
        """``adb [-s SERIAL] ARGS``, with any exit status."""
        argv = ["adb", *(["-s", self.serial] if self.serial else []), *args]
        return call(argv, self.install_fix, timeout, self.runner)

    def output(self, *args: str, timeout: float | None = 120, fix: str = ADB_CONNECT_FIX) -> str:
        """The stdout of ``adb [-s SERIAL] ARGS``; a non-zero exit is a one-line error."""
        proc = self.adb(*args, timeout=timeout)
        if proc.returncode != 0:
            detail = first_line(proc.stderr) or first_line(proc.stdout) or f"exit status {proc.returncode}"
            raise EdgekitError(f"`{shlex.join(proc.args)}` failed: {detail}", fix)
        return proc.stdout

    def connect(self) -> None:
        proc = self.adb("get-state", timeout=60)
        if proc.returncode != 0 or proc.stdout.strip() != "device":
            detail = last_line(proc.stderr) or proc.stdout.strip() or f"exit status {proc.returncode}"
            who = f"phone {self.serial}" if self.serial else "the phone"
            raise EdgekitError(f"{who} is not available to adb: {detail}",
                               "plug it in with USB debugging on and allow this computer; "
                               "`adb devices` must list it as `device`")

    def shell(self, command: str, timeout: float | None = 120) -> subprocess.CompletedProcess[str]:
        """Run ``command`` in the phone's shell (adb returns the command's exit status)."""
        return self.adb("shell", command, timeout=timeout)

    def push(self, local: Path, remote: str) -> None:
        self._transfer("push", str(local), remote)

    def pull(self, remote: str, local: Path) -> None:
        self._transfer("pull", remote, str(local))

    def _transfer(self, verb: str, source: str, dest: str) -> None:
        proc = self.adb(verb, source, dest, timeout=None)  # a 1 GB push takes minutes
        if proc.returncode != 0:
            raise EdgekitError(f"`adb {verb} {source} {dest}` failed: {last_line(proc.stderr) or proc.returncode}",
                               "check the connection and the free space on the phone")


class Ssh(_Transport):
    """A board reached with ``ssh`` and ``scp``; login must work with a key (nothing is typed)."""

    kind = "ssh"
    default_dir = ".cache/edgekit"  # relative to the login's home

    def __init__(self, host: str, port: int | None = None) -> None:
        self.host, self.port = host, port
        self.name = f"ssh:{host}" + (f":{port}" if port else "")

    @property
    def where(self) -> str:
        return self.name

    def _options(self, port_flag: str) -> list[str]:
        return ["-o", "BatchMode=yes", "-o", "ConnectTimeout=10", "-o", "ServerAliveInterval=30",
                *([port_flag, str(self.port)] if self.port else [])]

    def connect(self) -> None:
        self.shell("true", timeout=60)

    def shell(self, command: str, timeout: float | None = 120) -> subprocess.CompletedProcess[str]:
        """Run ``command`` with the device's ``sh`` (whatever the login shell); exit status 255 is ssh's own
        failure (host unreachable)."""
        argv = ["ssh", *self._options("-p"), self.host, f"sh -c {shlex.quote(command)}"]
        proc = call(argv, _SSH_INSTALL_FIX, timeout)
        if proc.returncode == 255:
            raise EdgekitError(f"cannot reach {self.host} over ssh: {last_line(proc.stderr) or 'exit status 255'}",
                               f"check that `ssh {self.host} true` works without a password prompt (use a key)")
        return proc

    def push(self, local: Path, remote: str) -> None:
        self._copy(str(local), f"{self.host}:{remote}")

    def pull(self, remote: str, local: Path) -> None:
        self._copy(f"{self.host}:{remote}", str(local))

    def _copy(self, source: str, dest: str) -> None:
        proc = call(["scp", "-q", *self._options("-P"), source, dest], _SSH_INSTALL_FIX, None)
        if proc.returncode != 0:
            raise EdgekitError(f"`scp {source} {dest}` failed: {last_line(proc.stderr) or proc.returncode}",
                               "check the connection and the free space on the device")


Transport = Adb | Ssh


def bundle_checksums(bundle: Bundle) -> dict[str, str]:
    """Every file of ``bundle`` and its sha256, the manifest (which the manifest cannot list) last."""
    files = {name: entry.sha256 for name, entry in bundle.manifest.files.items()}
    files[MANIFEST] = sha256_file(bundle.file(MANIFEST))
    return files


def stage(device: Transport, bundle: Bundle, folder: str, fresh: bool = False,
          sending: Callable[[str, int, int], None] | None = None,
          sent: Callable[[str, int], None] | None = None) -> list[str]:
    """Copy ``bundle`` into ``folder`` on ``device``; return the names sent, the manifest last.

    ``fresh``: the folder is emptied and every file sent under its own name (the caller renames the
    whole folder into place). Otherwise a file already there with the same sha256 is kept, and a sent
    file arrives as ``NAME.partial``, renamed once all have arrived and been checked. Either way each
    sent file's sha256 is computed on the device and must equal the manifest's; if not, the error is
    one line (and a fresh folder is removed). ``sending(name, n, total)`` is called before each file
    is sent, ``sent(name, bytes)`` after.
    """
    files = bundle_checksums(bundle)
    folders = sorted({str(Path(folder, name).parent) for name in files})
    if fresh:
        device.run("rm", "-rf", folder)
        for path in folders:
            device.run("mkdir", "-p", path)
        there: dict[str, str] = {}
    else:
        there = _checksums_there(device, folder, folders, files)
    send = sorted((name for name, digest in files.items() if there.get(name) != digest), key=lambda n: n == MANIFEST)
    suffix = "" if fresh else ".partial"
    for n, name in enumerate(send, 1):
        if sending:
            sending(name, n, len(send))
        device.push(bundle.file(name), f"{folder}/{name}{suffix}")
        if sent:
            sent(name, bundle.file(name).stat().st_size)
    for name in send:
        if device.sha256(f"{folder}/{name}{suffix}") != files[name]:
            if fresh:
                device.run("rm", "-rf", folder)
            raise EdgekitError(f"{name} arrived corrupt on {device.where} (sha256 differs from the manifest)",
                               "check the cable and free space on the device, then send it again")
    if send and not fresh:
        renames = " && ".join(f"mv -f {shlex.quote(n + suffix)} {shlex.quote(n)}" for n in send)
        proc = device.shell(f"cd {shlex.quote(folder)} && {renames}")
        if proc.returncode != 0:
            raise EdgekitError(f"cannot finish staging the bundle on {device.name}: {last_line(proc.stderr)}",
                               "check the free space on the device")
    return send


def _checksums_there(device: Transport, folder: str, folders: list[str], files: dict[str, str]) -> dict[str, str]:
    """The sha256 of each of ``files`` already in ``folder`` on the device (one round trip; creates the folders)."""
    names = " ".join(shlex.quote(name) for name in files)
    proc = device.shell(f"mkdir -p {' '.join(map(shlex.quote, folders))} && cd {shlex.quote(folder)} && "
                        f"{{ sha256sum -- {names} 2>/dev/null; true; }}")
    if proc.returncode != 0:
        raise EdgekitError(f"cannot create {folder} on {device.name}: {last_line(proc.stderr)}",
                           "pass a writable folder with --remote-dir")
    there = {}
    for line in proc.stdout.splitlines():
        digest, _, name = line.partition(" ")
        there[name.strip().lstrip("*")] = digest
    return there
