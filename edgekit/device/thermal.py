"""Temperature, CPU frequency and throttling, for the soak test of ``edgekit profile --soak``.

Reads Linux sysfs (``/sys/class/thermal``, ``/sys/devices/system/cpu``) and, on a Raspberry Pi,
``vcgencmd get_throttled``. What a device does not expose is simply absent from a sample.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from edgekit.device.process import Runner, run_command, run_tool
from edgekit.errors import EdgekitError

# vcgencmd get_throttled bits: the low ones are "now", the same +16 "has occurred since boot".
THROTTLE_BITS = {0: "under-voltage", 1: "frequency capped", 2: "throttled", 3: "soft temperature limit"}


@dataclass(frozen=True)
class ThermalSample:
    temperatures_c: dict[str, float] = field(default_factory=dict)  # thermal zone type -> °C
    cpu_mhz: dict[str, float] = field(default_factory=dict)         # cpuN -> current MHz
    throttled_now: tuple[str, ...] = ()                              # Pi: active throttle reasons
    throttled_since_boot: tuple[str, ...] = ()


def _number(path: Path) -> float | None:
    try:
        return float(path.read_text().strip())
    except (OSError, ValueError):
        return None


def parse_throttled(output: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(active reasons, reasons seen since boot) from ``throttled=0x50005``."""
    match = re.search(r"throttled=(0x[0-9a-fA-F]+)", output)
    if not match:
        raise EdgekitError(f"unexpected vcgencmd get_throttled output {output.strip()!r}", "check vcgencmd")
    value = int(match.group(1), 16)
    now = tuple(name for bit, name in THROTTLE_BITS.items() if value & (1 << bit))
    since = tuple(name for bit, name in THROTTLE_BITS.items() if value & (1 << (bit + 16)))
    return now, since


class ThermalReader:
    """Samples temperatures, CPU frequencies and (where vcgencmd exists) throttle flags."""

    def __init__(self, thermal_root: Path = Path("/sys/class/thermal"),
                 cpu_root: Path = Path("/sys/devices/system/cpu"), runner: Runner = run_command) -> None:
        self.thermal_root, self.cpu_root, self.runner = thermal_root, cpu_root, runner
        self._vcgencmd = True

    def read(self) -> ThermalSample:
        temps = {}
        for zone in sorted(self.thermal_root.glob("thermal_zone*")):
            millideg = _number(zone / "temp")
            if millideg is not None:
                name = (zone / "type").read_text().strip() if (zone / "type").is_file() else zone.name
                temps[name] = millideg / 1000
        freqs = {}
        for cpu in sorted(self.cpu_root.glob("cpu[0-9]*")):
            khz = _number(cpu / "cpufreq" / "scaling_cur_freq")
            if khz is not None:
                freqs[cpu.name] = khz / 1000
        now, since = (), ()
        if self._vcgencmd:
            try:
                now, since = parse_throttled(run_tool(self.runner, ["vcgencmd", "get_throttled"], "not a Raspberry Pi"))
            except EdgekitError:
                self._vcgencmd = False  # not a Pi (or no vcgencmd): stop asking
        return ThermalSample(temps, freqs, now, since)
