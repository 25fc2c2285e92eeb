"""Where this process's memory is: resident bytes split into anonymous and file-backed, and giving freed
heap back to the OS.

Linux reports the split in ``/proc/self/smaps_rollup`` (``Rss``, ``Anonymous``); file-backed pages are
memory-mapped files (weights mapped from a bundle, shared libraries), which the kernel can drop and read
again under pressure; anonymous pages (heap, arenas, copies of weights) it cannot. Elsewhere the
readings are None.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path

MIB = 2**20
_release = {"enabled": True}


@dataclass(frozen=True)
class Resident:
    """Resident memory now (bytes), its anonymous and file-backed parts, and the peak so far (``VmHWM``)."""

    rss: int
    anonymous: int
    file: int
    peak: int

    def as_mib(self) -> dict[str, float]:
        return {key: round(value / MIB, 1) for key, value in asdict(self).items()}


def _kib_fields(path: Path) -> dict[str, int]:
    fields = {}
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[-1] == "kB":
            fields[parts[0].rstrip(":")] = int(parts[-2]) * 1024
    return fields


def resident(proc: Path = Path("/proc/self")) -> Resident | None:
    """This process's resident memory, or None where ``/proc`` does not report it (macOS, Windows)."""
    try:
        rollup, status = _kib_fields(proc / "smaps_rollup"), _kib_fields(proc / "status")
    except OSError:
        return None
    rss, anonymous = rollup["Rss"], rollup["Anonymous"]
    shmem = status.get("RssShmem", 0)
    return Resident(rss=rss, anonymous=anonymous, file=max(0, rss - anonymous - shmem), peak=status["VmHWM"])


@cache
def _malloc_trim():
    name = ctypes.util.find_library("c")
    try:
        trim = ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):  # not glibc (musl, Bionic, macOS): those give memory back their own way
        return None
    if trim is not None:
        trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


def set_heap_release(enabled: bool) -> None:
    """Turn ``release_freed_heap`` on or off for this process (off: measure what it saves)."""
    _release["enabled"] = enabled


def release_freed_heap() -> bool:
    """Give the heap that was freed back to the OS (glibc ``malloc_trim``); False where there is no such call.

    Parsing ``tokenizer.json`` or building an onnxruntime session frees hundreds of MiB of temporary
    buffers that glibc keeps resident for reuse; this returns them, so they stop counting as RSS.
    """
    trim = _malloc_trim() if _release["enabled"] else None
    if trim is None:
        return False
    trim(0)
    return True
