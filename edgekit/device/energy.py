"""Energy sources for ``edgekit profile``: RAPL, a battery, the Pi 5 PMIC, an Android phone over adb, or a command.

Every source reads real hardware or says it cannot (``available()`` is False, ``read()`` raises
``EdgekitError``); nothing here estimates a number it did not measure.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Protocol

from edgekit.device.process import Runner, run_command, run_tool
from edgekit.device.transport import Adb
from edgekit.errors import EdgekitError

_PACKAGE_ZONE = re.compile(r"intel-rapl:\d+")
_PMIC_LINE = re.compile(r"^\s*(\S+)_[AV]\s+(?:current|volt)\(\d+\)=([-+0-9.eE]+)([AV])\s*$", re.MULTILINE)
_ANDROID_SUPPLY = "/sys/class/power_supply/battery"
_ANDROID_STATUS = {"1": "Unknown", "2": "Charging", "3": "Discharging", "4": "Not charging", "5": "Full"}
_UWH_TO_J = 3600 / 1e6
_RAPL_FIX = "run as root, or `sudo chmod a+r /sys/class/powercap/intel-rapl:*/*_uj`"


@dataclass(frozen=True)
class Reading:
    """One sample: monotonic seconds, cumulative joules if the source counts, instantaneous watts if it gauges."""

    t: float
    energy_j: float | None = None
    power_w: float | None = None


@dataclass(frozen=True)
class BatteryInfo:
    """Battery state from ``dumpsys battery``; a field is None when the phone does not report it."""

    percent: float | None
    status: str | None
    temperature_c: float | None
    voltage_v: float | None


class EnergySource(Protocol):
    """Anything the profiler can sample."""

    name: str

    def available(self) -> bool: ...

    def read(self) -> Reading: ...


def _text(path: Path) -> str:
    """A sysfs attribute, stripped; "" when it is missing or unreadable."""
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def _int_or_none(path: Path) -> int | None:
    """An integer sysfs attribute, or None when it is missing, unreadable or not a number."""
    try:
        return int(_text(path))
    except ValueError:
        return None


class _Source:
    """``available()`` means one real ``read()`` succeeds."""

    def read(self) -> Reading:
        raise NotImplementedError

    def available(self) -> bool:
        try:
            self.read()
        except EdgekitError:
            return False
        return True


class RaplSource(_Source):
    """Intel/AMD RAPL through powercap: the package zones' energy counters, summed and unwrapped.

    Only ``intel-rapl:N`` zones named ``package-*`` count: subzones (core, dram) are inside a package or
    separate from it, and the laptop ``psys`` zone already includes the packages.
    """

    name = "rapl"

    def __init__(self, root: Path = Path("/sys/class/powercap")) -> None:
        self.root = Path(root)
        self._last_uj: dict[str, int] = {}
        self._total_uj: dict[str, int] = {}

    def zones(self) -> list[Path]:
        """The package-level zones, sorted by name."""
        return [z for z in sorted(self.root.glob("intel-rapl:*"))
                if _PACKAGE_ZONE.fullmatch(z.name) and _text(z / "name").startswith("package")]

    def read(self) -> Reading:
        zones = self.zones()
        if not zones:
            raise EdgekitError(f"no RAPL package zones under {self.root}", "this CPU or kernel does not expose RAPL")
        raw = {}
        for zone in zones:
            try:
                raw[zone] = int((zone / "energy_uj").read_text())
            except (OSError, ValueError) as err:
                raise EdgekitError(f"cannot read {zone / 'energy_uj'} ({err.__class__.__name__})", _RAPL_FIX) from None
        t = time.monotonic()
        for zone, uj in raw.items():
            last = self._last_uj.get(zone.name)
            if last is None:
                delta = uj
            elif uj >= last:
                delta = uj - last
            else:  # the counter wrapped at max_energy_range_uj
                wrap = _int_or_none(zone / "max_energy_range_uj")
                if wrap is None:
                    raise EdgekitError(f"{zone.name} wrapped but {zone / 'max_energy_range_uj'} is unreadable",
                                       _RAPL_FIX)
                delta = wrap - last + uj
            self._total_uj[zone.name] = self._total_uj.get(zone.name, 0) + delta
            self._last_uj[zone.name] = uj
        return Reading(t, energy_j=sum(self._total_uj.values()) / 1e6)


class BatterySource(_Source):
    """The machine's own battery through ``/sys/class/power_supply``.

    ``power_w`` is ``power_now``, else ``|current_now * voltage_now|`` (drivers disagree on the sign of
    discharge). ``energy_j`` counts the fall of ``energy_now`` since the first read; fuel gauges update it
    coarsely (often every several seconds), so it only suits long runs.
    """

    name = "battery"

    def __init__(self, root: Path = Path("/sys/class/power_supply")) -> None:
        self.root = Path(root)
        self._start_uwh: int | None = None

    def supply(self) -> Path | None:
        """The first system battery (peripherals such as a mouse have ``scope`` Device and are skipped)."""
        supplies = sorted(self.root.iterdir()) if self.root.is_dir() else []
        return next((s for s in supplies if _text(s / "type") == "Battery" and _text(s / "scope") != "Device"), None)

    def read(self) -> Reading:
        supply = self.supply()
        if supply is None:
            raise EdgekitError(f"no battery under {self.root}", "use another energy source")
        power_uw = _int_or_none(supply / "power_now")
        current_ua, voltage_uv = _int_or_none(supply / "current_now"), _int_or_none(supply / "voltage_now")
        if power_uw is not None:
            power_w: float | None = abs(power_uw) / 1e6
        elif current_ua is not None and voltage_uv is not None:
            power_w = abs(current_ua * voltage_uv) / 1e12
        else:
            power_w = None
        # Fuel gauges update energy_now only every few seconds: a short run would read 0 J. The counter
        # is used only where the battery reports no power at all.
        energy_uwh = None if power_w is not None else _int_or_none(supply / "energy_now")
        if energy_uwh is not None and self._start_uwh is None:
            self._start_uwh = energy_uwh
        energy_j = None if energy_uwh is None else (self._start_uwh - energy_uwh) * _UWH_TO_J
        if power_w is None and energy_j is None:
            raise EdgekitError(f"{supply} reports neither power nor energy", "use another energy source")
        return Reading(time.monotonic(), energy_j=energy_j, power_w=power_w)

    def percent(self) -> float | None:
        """The charge level in percent (``capacity``), or None when not reported."""
        supply = self.supply()
        level = None if supply is None else _int_or_none(supply / "capacity")
        return None if level is None else float(level)

    def status(self) -> str | None:
        """``Charging``, ``Discharging``, ``Full``, ``Not charging`` or ``Unknown``; None when not reported."""
        supply = self.supply()
        return (_text(supply / "status") or None) if supply is not None else None


class PiPmicSource(_Source):
    """Raspberry Pi 5: the sum of V x I over the PMIC rails from ``vcgencmd pmic_read_adc``.

    This covers the board's regulated rails, not the 5 V input's conversion losses or USB devices.
    """

    name = "pi-pmic"

    def __init__(self, runner: Runner = run_command) -> None:
        self.runner = runner

    def read(self) -> Reading:
        out = run_tool(self.runner, ["vcgencmd", "pmic_read_adc"], "this needs a Raspberry Pi 5 with `vcgencmd`")
        t = time.monotonic()
        amps: dict[str, float] = {}
        volts: dict[str, float] = {}
        for rail, value, unit in _PMIC_LINE.findall(out):
            (amps if unit == "A" else volts)[rail] = float(value)
        rails = amps.keys() & volts.keys()
        if not rails:
            raise EdgekitError("`vcgencmd pmic_read_adc` printed no rail readings",
                               "this needs a Raspberry Pi 5 with current firmware")
        return Reading(t, power_w=sum(amps[r] * volts[r] for r in rails))


class AdbBatterySource(_Source):
    """An Android phone's battery over adb: ``|current_now * voltage_now|`` from sysfs (µA, µV)."""

    name = "adb-battery"

    def __init__(self, serial: str | None = None, runner: Runner | None = None) -> None:
        self.adb = Adb(serial, runner)  # runner: a stand-in for the adb program

    def read(self) -> Reading:
        out = self.adb.output("shell", "cat", f"{_ANDROID_SUPPLY}/current_now", f"{_ANDROID_SUPPLY}/voltage_now",
                              timeout=10)
        t = time.monotonic()
        try:
            current_ua, voltage_uv = (int(v) for v in out.split())
        except ValueError:
            raise EdgekitError(f"unexpected battery readings from the phone: {out.strip()[:60]!r}",
                               "this phone does not expose current_now and voltage_now") from None
        return Reading(t, power_w=abs(current_ua * voltage_uv) / 1e12)

    def info(self) -> BatteryInfo:
        """Level, status, temperature and voltage from ``dumpsys battery``."""
        out = self.adb.output("shell", "dumpsys", "battery", timeout=10)
        fields = dict(re.findall(r"^[ \t]*([\w ]+?):[ \t]*(.*?)[ \t]*$", out, re.MULTILINE))

        def number(key: str, scale: float) -> float | None:
            try:
                return float(fields[key]) * scale
            except (KeyError, ValueError):
                return None

        level, full = number("level", 1), number("scale", 1) or 100
        return BatteryInfo(percent=None if level is None else 100 * level / full,
                           status=_ANDROID_STATUS.get(fields.get("status", "")),
                           temperature_c=number("temperature", 0.1),
                           voltage_v=number("voltage", 1e-3))

    def percent(self) -> float | None:
        """The charge level in percent, or None when not reported."""
        return self.info().percent

    def status(self) -> str | None:
        """``Charging``, ``Discharging``, ``Full``, ``Not charging`` or ``Unknown``; None when not reported."""
        return self.info().status


class CommandSource(_Source):
    """An external meter: a command printing ``<watts>`` or ``energy_j=<joules>`` each time it runs."""

    name = "command"

    def __init__(self, argv: Sequence[str], runner: Runner = run_command) -> None:
        self.argv = list(argv)
        self.runner = runner

    def read(self) -> Reading:
        out = run_tool(self.runner, self.argv, "check the energy command").strip()
        t = time.monotonic()
        is_energy = out.startswith("energy_j=")
        try:
            value = float(out.removeprefix("energy_j="))
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            raise EdgekitError(f"`{' '.join(self.argv)}` printed {out[:60]!r}",
                               "it must print one number of watts, or `energy_j=<joules>`")
        return Reading(t, energy_j=value) if is_energy else Reading(t, power_w=value)


def detect(powercap_root: Path = Path("/sys/class/powercap"),
           power_supply_root: Path = Path("/sys/class/power_supply"),
           runner: Runner = run_command) -> EnergySource | None:
    """The first available local source: RAPL, then the battery, then the Pi 5 PMIC; None when there is none."""
    for source in (RaplSource(powercap_root), BatterySource(power_supply_root), PiPmicSource(runner)):
        if source.available():
            return source
    return None


def energy_between(samples: Sequence[Reading]) -> float:
    """Joules from the first sample to the last: the counter difference when every sample has a counter,
    else the trapezoidal integral of power over time."""
    if len(samples) < 2:
        raise EdgekitError("need at least two energy samples", "sample for longer")
    first, last = samples[0], samples[-1]
    if first.energy_j is not None and all(s.energy_j is not None for s in samples):
        return last.energy_j - first.energy_j  # type: ignore[operator]
    if all(s.power_w is not None for s in samples):
        return sum((b.t - a.t) * (a.power_w + b.power_w) / 2 for a, b in pairwise(samples))  # type: ignore[operator]
    raise EdgekitError("the energy samples have neither a counter nor a power reading throughout",
                       "sample one source only")


def average_power(samples: Sequence[Reading]) -> float:
    """Mean watts from the first sample to the last."""
    joules = energy_between(samples)
    seconds = samples[-1].t - samples[0].t
    if seconds <= 0:
        raise EdgekitError("the energy samples span no time", "sample for longer")
    return joules / seconds


def baseline_subtracted(active_j: float, active_s: float, idle_w: float) -> float:
    """Joules above idle: ``active_j - idle_w * active_s``.

    Not clamped: a negative result means the work was lost in idle noise, and the caller should say so.
    """
    return active_j - idle_w * active_s


def battery_percent_per_hour(avg_w: float, capacity_wh: float, duty_cycle: float) -> float:
    """Battery percent drained per hour when the model draws ``avg_w`` for ``duty_cycle`` of the hour (0..1)."""
    if capacity_wh <= 0:
        raise EdgekitError(f"battery capacity must be positive, not {capacity_wh} Wh", "pass the battery's Wh rating")
    if not 0 <= duty_cycle <= 1:
        raise EdgekitError(f"duty cycle must be between 0 and 1, not {duty_cycle}", "pass a fraction of the hour")
    return 100 * avg_w * duty_cycle / capacity_wh
