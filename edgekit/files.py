"""Atomic writes and checksums: nothing half-written is ever left under a final name.

Temp files and folders are named ``.NAME.PID.XXXX.tmp`` / ``.partial`` beside their destination; a
write killed with SIGKILL leaves its temp behind, and the next write to the same destination removes
every temp whose process is gone. A failed write (full disk, read-only folder) is one ``EdgekitError``.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from edgekit.errors import EdgekitError

_FIXES = {
    errno.ENOSPC: "free some space on that disk (or write somewhere else)",
    errno.EDQUOT: "free some space within your quota (or write somewhere else)",
    errno.EROFS: "the file system is read-only: write somewhere else",
    errno.EACCES: "you may not write there: choose another place or fix its permissions",
    errno.EPERM: "you may not write there: choose another place or fix its permissions",
    errno.ENOENT: "create the folder first",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EISDIR: "the path is a folder: give a file name",
}


def write_error(path: Path, err: OSError) -> EdgekitError:
    """The one-line error for a failed write of ``path``."""
    reason = err.strerror or type(err).__name__
    return EdgekitError(f"cannot write {path} ({reason})", _FIXES.get(err.errno, "check the disk and the path"))


def check_writable_folder(folder: Path, what: str = "output") -> None:
    """Fail now, before a long run, when files cannot be created in ``folder`` (or its nearest existing parent)."""
    folder = Path(folder)
    probe = folder
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        raise EdgekitError(f"the {what} path {folder} is under a file ({probe})", "choose a folder path")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise EdgekitError(f"cannot write the {what} in {probe} (permission denied or read-only)",
                           "choose a writable place")
    try:  # os.access says yes on a read-only mount for root: try for real
        fd, tmp = tempfile.mkstemp(dir=probe, prefix=f".edgekit.{os.getpid()}.", suffix=".tmp")
        os.close(fd)
        os.unlink(tmp)
    except OSError as err:
        raise write_error(probe, err) from None


def lock_beside(path: Path, holder: str) -> BinaryIO:
    """Lock ``.NAME.lock`` beside ``path`` for this process (``path`` itself is replaced by atomic writes,
    so it cannot carry the lock); a second holder gets a one-line error. Keep the returned file open."""
    path = Path(path)
    lock_path = path.with_name(f".{path.name}.lock")
    try:
        handle = open(lock_path, "ab")
    except OSError as err:
        raise write_error(lock_path, err) from None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise EdgekitError(f"{path} is in use by another {holder}",
                           "close that one first, or use another file") from None
    return handle


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def remove_stale_temps(dest: Path) -> list[Path]:
    """Remove the temp files/folders of writes to ``dest`` whose process is gone; return what was removed."""
    dest = Path(dest)
    try:
        entries = list(dest.parent.glob(f".{dest.name}.*"))
    except OSError:
        return []
    return [entry for entry in entries if _remove_if_stale(entry, entry.name[len(dest.name) + 2:])]


def remove_stale_temps_in(folder: Path) -> list[Path]:
    """``remove_stale_temps`` for every file in ``folder`` at once: one pass over the folder, for a folder of
    many files written one by one without it (a scan per write would cost more as the folder grows)."""
    try:
        entries = [Path(e.path) for e in os.scandir(folder) if e.name.startswith(".")]
    except OSError:
        return []
    # ".NAME.PID.RANDOM.tmp": NAME may hold dots, mkstemp's RANDOM never does
    return [entry for entry in entries
            if entry.name.count(".") >= 4 and _remove_if_stale(entry, ".".join(entry.name.rsplit(".", 3)[1:]))]


def _remove_if_stale(entry: Path, tail: str) -> bool:
    """Remove ``entry`` if ``tail`` (its name after ``.NAME.``) is ``PID.RANDOM.tmp|partial`` of a dead process."""
    pid, _, tail = tail.partition(".")
    random, _, suffix = tail.partition(".")  # mkstemp's random part has no dot: not another file's temp
    if suffix not in ("tmp", "partial") or not pid.isdigit() or _alive(int(pid)):
        return False
    if entry.is_dir() and not entry.is_symlink():
        shutil.rmtree(entry, ignore_errors=True)
    else:
        entry.unlink(missing_ok=True)
    return True


def atomic_write_bytes(path: Path, data: bytes, *, clean_stale: bool = True) -> None:
    """Write to a temp file beside ``path``, fsync, then rename over it. ``clean_stale``: first remove what a
    killed writer of ``path`` left (a caller writing many files to one folder does it once for the folder,
    ``remove_stale_temps_in``)."""
    path = Path(path)
    if clean_stale:
        remove_stale_temps(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp")
    except OSError as err:
        raise write_error(path, err) from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes files private; a bundle or report is meant to be shared
        os.replace(tmp, path)
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(err, OSError):
            raise write_error(path, err) from None
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


@contextmanager
def atomic_dir(dest: Path, overwrite: bool = False,
               replaceable: Callable[[Path], bool] | None = None) -> Iterator[Path]:
    """Yield a temp folder beside ``dest``; on success it becomes ``dest``, on failure it is removed.

    An existing ``dest`` is replaced only with ``overwrite`` and, if given, when ``replaceable(dest)``
    says so (checked again at the end, right before the swap). A kill between the two renames of the
    swap leaves the old folder as ``.NAME.old``: the next call puts it back (or removes it once ``dest``
    exists again).
    """
    dest = Path(dest)
    old = dest.with_name(f".{dest.name}.old")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(dest)
        if old.exists():
            if dest.exists():
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(old, dest)
        tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.{os.getpid()}.", suffix=".partial"))
    except OSError as err:
        raise write_error(dest, err) from None
    try:
        yield tmp
        os.chmod(tmp, 0o755)
        if dest.exists():
            if not overwrite:
                raise FileExistsError(dest)
            if replaceable is not None and not replaceable(dest):
                raise EdgekitError(f"{dest} is not what --overwrite may replace", "choose another folder")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(dest, old)
            os.replace(tmp, dest)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, dest)
    except BaseException as err:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS):
            raise write_error(dest, err) from None
        raise
