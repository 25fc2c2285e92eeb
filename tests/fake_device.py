"""Stand-ins for ``ssh``, ``scp`` and ``adb``, put on PATH by tests/test_remote.py.

Only the far machine is emulated: each device is a folder under ``$EDGEKIT_FAKE_DEVICES``
(``ssh/<host>`` is the login's home, ``adb/<serial>`` the phone), and commands sent to it really run
here, with ``sh`` in that folder and its ``bin/`` first on PATH; so ``python3 -m edgekit profile``
runs the real protocol. Every call is appended to ``$EDGEKIT_FAKE_DEVICES/calls.log``.
An unknown host or serial fails the way the real tools do.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(os.environ.get("EDGEKIT_FAKE_DEVICES", "/nonexistent"))
WITH_VALUE = {"-o", "-p", "-P", "-i", "-l", "-F", "-s"}


def positional(args: list[str]) -> list[str]:
    """Arguments that are not options (nor option values)."""
    out, skip = [], False
    for arg in args:
        if skip:
            skip = False
        elif arg in WITH_VALUE:
            skip = True
        elif not arg.startswith("-") or out:
            out.append(arg)
    return out


def run_on(home: Path, command: str) -> int:
    """Run ``command`` with sh inside the device folder, as a login there would."""
    env = {**os.environ, "HOME": str(home), "PATH": f"{home / 'bin'}:{os.environ['PATH']}"}
    return subprocess.run(["sh", "-c", command], cwd=home, env=env).returncode


def on_device(home: Path, path: str) -> Path:
    return Path(path) if path.startswith("/") else home / path


def copy(source: Path, dest: Path, tool: str) -> int:
    try:
        shutil.copyfile(source, dest)
    except OSError as err:
        print(f"{tool}: {err.filename}: {err.strerror}", file=sys.stderr)
        return 1
    return 0


def ssh(args: list[str]) -> int:
    host, *command = positional(args)
    home = ROOT / "ssh" / host.rpartition("@")[2]
    if not home.is_dir():
        print(f"ssh: Could not resolve hostname {host}: Name or service not known", file=sys.stderr)
        return 255
    return run_on(home, " ".join(command))


def scp(args: list[str]) -> int:
    source, dest = positional(args)
    remote = dest if ":" in dest else source
    host, _, path = remote.partition(":")
    home = ROOT / "ssh" / host.rpartition("@")[2]
    if not home.is_dir():
        print(f"ssh: Could not resolve hostname {host}: Name or service not known", file=sys.stderr)
        return 255
    if remote is dest:
        return copy(Path(source), on_device(home, path), "scp")
    return copy(on_device(home, path), Path(dest), "scp")


def adb(args: list[str]) -> int:
    serial = args[args.index("-s") + 1] if "-s" in args else None
    phones = sorted(p.name for p in (ROOT / "adb").glob("*"))
    if serial is None and len(phones) != 1:
        print("adb: no devices/emulators found" if not phones else "adb: more than one device/emulator",
              file=sys.stderr)
        return 1
    serial = serial or phones[0]
    home = ROOT / "adb" / serial
    verb, *rest = positional(args)
    if not home.is_dir():
        print(f"adb: device '{serial}' not found", file=sys.stderr)
        return 1
    if verb == "get-state":
        print("device")
        return 0
    if verb == "shell":
        return run_on(home, " ".join(rest))
    if verb == "push":
        return copy(Path(rest[0]), on_device(home, rest[1]), "adb")
    if verb == "pull":
        return copy(on_device(home, rest[0]), Path(rest[1]), "adb")
    print(f"adb: unknown command {verb}", file=sys.stderr)
    return 1


def main(tool: str) -> None:
    with open(ROOT / "calls.log", "a") as log:
        log.write(" ".join([tool, *sys.argv[1:]]) + "\n")
    sys.exit({"ssh": ssh, "scp": scp, "adb": adb}[tool](sys.argv[1:]))
