"""Where an export's time and memory go: a stopwatch of named phases, shown live and kept for the manifest.

Each phase records its wall time, the CPU time of the process in it (all threads: above the wall time when
torch runs on several cores; far below it on a machine shared with other jobs), and its peak resident
memory. The peak is exact for the phase that raises the process's high-water mark (``VmHWM`` at its end);
for the others it is the largest RSS a sampler thread saw (every ``SAMPLE_S``), a lower bound. The high-water mark itself is never reset
(``/proc/self/clear_refs`` would also reset what a parent reads back with ``wait4``).
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

from rich.progress import Progress, TaskID

SAMPLE_S = 0.05
log = logging.getLogger(__name__)


def _status_bytes(field: str) -> int:
    """A ``kB`` field of ``/proc/self/status`` (``VmRSS``, ``VmHWM``) in bytes; 0 where there is none (not Linux)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class Phases:
    """``start(name)`` ends the running phase and starts the next; ``stop()`` ends the last.

    With a progress display, the running phase is its description and its elapsed time is shown.
    """

    def __init__(self, bar: Progress | None = None, visible: bool = True) -> None:
        self.records: list[dict[str, Any]] = []
        self.notes: dict[str, Any] = {}  # facts a phase learned, kept beside the phases in the summary
        self._bar = bar
        self._task: TaskID | None = bar.add_task("", total=None, visible=visible) if bar is not None else None
        self._name: str | None = None
        self._t0 = self._begin = time.perf_counter()
        self._cpu0 = time.process_time()
        self._hwm = _status_bytes("VmHWM")
        self._max_rss = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()

    def _sample(self) -> None:
        while not self._stop.wait(SAMPLE_S):
            rss = _status_bytes("VmRSS")
            with self._lock:
                self._max_rss = max(self._max_rss, rss)

    def start(self, name: str) -> None:
        self._end()
        self._name, self._t0, self._cpu0 = name, time.perf_counter(), time.process_time()
        with self._lock:
            self._max_rss = _status_bytes("VmRSS")
        if self._bar is not None:
            self._bar.reset(self._task, total=None, description=name)

    def stop(self) -> None:
        """End the last phase and the sampler."""
        self._end()
        self._stop.set()
        self._sampler.join()
        if self._bar is not None:
            self._bar.update(self._task, total=1, completed=1, description="done")

    def _end(self) -> None:
        if self._name is None:
            return
        hwm = _status_bytes("VmHWM")
        with self._lock:
            peak = hwm if hwm > self._hwm else max(self._max_rss, _status_bytes("VmRSS"))
        record = {"phase": self._name, "seconds": round(time.perf_counter() - self._t0, 3),
                  "cpu_seconds": round(time.process_time() - self._cpu0, 3), "peak_rss_bytes": peak}
        self.records.append(record)
        log.info("%s: %.1f s (CPU %.1f s), peak RSS %.0f MiB", self._name, record["seconds"], record["cpu_seconds"],
                 peak / 2**20)
        self._hwm, self._name = hwm, None

    def summary(self) -> dict[str, Any]:
        """The manifest's ``export`` section: the phases in order, the total wall and CPU time, the peak RSS."""
        return {"phases": self.records, "seconds": round(time.perf_counter() - self._begin, 3),
                "cpu_seconds": round(sum(r["cpu_seconds"] for r in self.records), 3),
                "peak_rss_bytes": max([_status_bytes("VmHWM")] + [r["peak_rss_bytes"] for r in self.records]),
                **self.notes}
