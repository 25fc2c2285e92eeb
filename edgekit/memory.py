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
import errno
import mmap
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path

MIB = 2**20
MADV_PAGEOUT = 21  # Linux >= 5.4: reclaim these pages now (clean file pages are dropped, re-read on next use)
# While a session builds, its file-backed RSS is checked every BUILD_EVERY_S and the mapped weights are paged out at
# each BUILD_STEP of growth. onnxruntime reads the last weights (the 121 MiB int4 embedding, for the tied lm_head)
# in a burst of ~50 ms; checked every 20 ms at 32 MiB steps, that burst was resident on top of the finished
# packed copy, 55-80 MiB over the steady state (docs/memory.md).
BUILD_EVERY_S, BUILD_STEP = 0.002, 8 * MIB
_release = {"enabled": True, "page_out": True, "while_building": True, "every_s": BUILD_EVERY_S, "step": BUILD_STEP}


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


def set_heap_release(enabled: bool, page_out: bool = True, while_building: bool = True,
                     build_every_s: float = BUILD_EVERY_S, build_step: int = BUILD_STEP) -> None:
    """Turn ``release_freed_heap``, ``page_out_mapped`` and ``released_while_building`` on or off for this
    process (off: measure what each saves), and set the latter's pacing."""
    _release.update(enabled=enabled, page_out=page_out, while_building=while_building, every_s=build_every_s,
                    step=build_step)


def page_out_mapped(folder: Path) -> int:
    """Drop this process's resident pages of files mapped from ``folder``; return the bytes of mappings advised.

    onnxruntime maps each external-data weight and keeps the mapping after it has pre-packed the weight into
    its own buffer, so the pages it read while packing stay resident though only the ops that read weights as
    stored (the embedding gather: the rows of the ids seen) touch them again. Paged out, those come back one
    page at a time as they are used. ``MADV_PAGEOUT`` never discards data (a private page the process wrote
    would go to swap, not away); a no-op before Linux 5.4 and off Linux.
    """
    if not _release["page_out"]:
        return 0
    try:
        maps = Path("/proc/self/maps").read_text().splitlines()
        madvise = ctypes.CDLL(None, use_errno=True).madvise
    except (OSError, AttributeError):
        return 0
    madvise.argtypes, madvise.restype = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int], ctypes.c_int
    prefix, advised = str(Path(folder).resolve()) + "/", 0
    for line in maps:
        fields = line.split(maxsplit=5)
        if len(fields) == 6 and fields[5].startswith(prefix):
            start, end = (int(x, 16) for x in fields[0].split("-"))
            if madvise(start, end - start, MADV_PAGEOUT) == 0:
                advised += end - start
            elif ctypes.get_errno() == errno.EINVAL:
                return advised  # a kernel without MADV_PAGEOUT
            # else ENOMEM: unmapped since /proc/self/maps was read (a session being built unmaps as it packs)
    return advised


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


def _file_resident() -> int | None:
    """File-backed (and shared) resident bytes, from ``/proc/self/statm``: kernel counters, no walk of the
    mappings (reading ``maps`` or advising them takes the lock a session build needs to map and unmap)."""
    try:
        return int(Path("/proc/self/statm").read_text().split()[2]) * mmap.PAGESIZE
    except (OSError, IndexError, ValueError):
        return None


@contextmanager
def released_while_building(folder: Path, every_s: float | None = None, step: int | None = None) -> Iterator[None]:
    """While the block builds an onnxruntime session on weights in ``folder``, page out their mapped pages
    each time the file-backed RSS has grown by ``step`` (checked every ``every_s`` s; default: the process's
    pacing, ``set_heap_release``); at the end, page them out and give freed heap back.

    The build maps every external-data weight and reads it to pre-pack it into its own buffer. It unmaps
    part of them once packed but keeps the rest mapped, among them the embedding table that the gather
    reads as stored and the tied lm_head packs last: without this those pages stay resident beside the
    packed copies until the end, which made the build the process's peak. A page paged out before it is
    packed is read again from the file (the same bytes), so passes are paced by growth, not by the clock.
    onnxruntime builds the session with the GIL released, so a thread can do this. The end's release
    happens whether or not the thread ran (each part has its switch).
    """
    done = threading.Event()
    every_s = _release["every_s"] if every_s is None else every_s
    step = _release["step"] if step is None else step

    def release() -> None:
        base = _file_resident()
        while base is not None and not done.wait(every_s):
            now = _file_resident()
            if now is None:
                return
            if now - base >= step:
                page_out_mapped(folder)
                base = _file_resident() or now  # what is resident beside the weights (libraries) is the new base
            else:
                base = min(base, now)  # the build unmapped some: count growth from there

    thread = threading.Thread(target=release, name="edgekit-release", daemon=True)
    if _release["while_building"]:
        thread.start()
    try:
        yield
    finally:
        done.set()
        if thread.is_alive():
            thread.join()
        release_freed_heap()  # the build frees its graph copies and the weights as stored once packed
        page_out_mapped(folder)  # the mapped weights stay mapped, read once: let them go
