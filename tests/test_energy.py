"""Energy sources against fake sysfs trees and recorded command output; every number checked by hand."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from edgekit.device.energy import (
    AdbBatterySource,
    BatterySource,
    CommandSource,
    PiPmicSource,
    RaplSource,
    Reading,
    average_power,
    baseline_subtracted,
    battery_percent_per_hour,
    detect,
    energy_between,
)
from edgekit.errors import EdgekitError

DATA = Path(__file__).parent / "data" / "energy"
RAPL_MAX_UJ = 262143328850  # a real max_energy_range_uj


def write_tree(root: Path, tree: dict[str, dict[str, object]]) -> Path:
    """Fake sysfs: ``{"dir": {"attribute": value}}`` under ``root``."""
    for folder, attributes in tree.items():
        (root / folder).mkdir(parents=True, exist_ok=True)
        for name, value in attributes.items():
            (root / folder / name).write_text(f"{value}\n")
    return root


def rapl_tree(root: Path, pkg0_uj: int, pkg1_uj: int, dram_uj: int = 5_000_000) -> Path:
    """Two packages with core/dram subzones, a laptop psys zone, and the bare control-type folder."""
    zone = lambda name, uj: {"name": name, "energy_uj": uj, "max_energy_range_uj": RAPL_MAX_UJ}  # noqa: E731
    return write_tree(root, {
        "intel-rapl": {"enabled": 1},
        "intel-rapl:0": zone("package-0", pkg0_uj),
        "intel-rapl:0:0": zone("core", 700_000),
        "intel-rapl:0:1": zone("dram", dram_uj),
        "intel-rapl:1": zone("package-1", pkg1_uj),
        "intel-rapl:1:0": zone("dram", dram_uj),
        "intel-rapl:2": zone("psys", 9_000_000_000),
    })


def recorded(name: str) -> str:
    return (DATA / name).read_text()


def fails(err: BaseException):
    """A runner that always raises ``err``."""
    def runner(argv: list[str]) -> str:
        raise err
    return runner


def one_line(err: pytest.ExceptionInfo[EdgekitError]) -> str:
    message = str(err.value)
    assert "\n" not in message
    return message


def test_rapl_sums_package_zones_only(tmp_path):
    source = RaplSource(rapl_tree(tmp_path, pkg0_uj=1_000_000, pkg1_uj=2_000_000))
    assert [z.name for z in source.zones()] == ["intel-rapl:0", "intel-rapl:1"]
    assert source.read().energy_j == pytest.approx(3.0)
    rapl_tree(tmp_path, pkg0_uj=1_250_000, pkg1_uj=2_500_000, dram_uj=99_000_000)
    second = source.read()
    assert second.energy_j == pytest.approx(3.75) and second.power_w is None


def test_rapl_unwraps_each_zone_at_its_max_range(tmp_path):
    source = RaplSource(rapl_tree(tmp_path, pkg0_uj=RAPL_MAX_UJ - 1_000_000, pkg1_uj=10_000_000))
    start = source.read().energy_j
    rapl_tree(tmp_path, pkg0_uj=500_000, pkg1_uj=10_100_000)  # package-0 wrapped: 1.0 J to the top + 0.5 J
    assert source.read().energy_j - start == pytest.approx(1.6)
    rapl_tree(tmp_path, pkg0_uj=700_000, pkg1_uj=10_100_000)
    assert source.read().energy_j - start == pytest.approx(1.8)


def test_rapl_unreadable_counter_is_unavailable(tmp_path, monkeypatch):
    source = RaplSource(rapl_tree(tmp_path, pkg0_uj=1, pkg1_uj=2))
    assert source.available()
    real_read_text = Path.read_text

    def denied(path: Path, *args, **kwargs) -> str:
        if path.name == "energy_uj":
            raise PermissionError(13, "Permission denied", str(path))
        return real_read_text(path, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", denied)
    assert not source.available()
    with pytest.raises(EdgekitError) as err:
        source.read()
    assert "PermissionError" in one_line(err) and "chmod a+r" in one_line(err)
    assert not RaplSource(tmp_path / "missing").available()


def laptop_supplies(root: Path, energy_now: int) -> Path:
    return write_tree(root, {
        "AC": {"type": "Mains", "online": 0},
        "BAT0": {"type": "Battery", "status": "Discharging", "capacity": 73,
                 "power_now": 8_450_000, "energy_now": energy_now, "voltage_now": 11_820_000},
    })


def test_battery_prefers_power_over_the_coarse_energy_counter(tmp_path):
    source = BatterySource(laptop_supplies(tmp_path, energy_now=41_000_000))
    first = source.read()
    # The gauge's energy_now moves only every few seconds: with power_now present it is not used.
    assert first.power_w == pytest.approx(8.45) and first.energy_j is None
    assert source.percent() == 73.0 and source.status() == "Discharging"


def test_battery_energy_now_decrease_when_no_power_is_reported(tmp_path):
    def supplies(energy_now: int) -> Path:
        return write_tree(tmp_path, {"BAT0": {"type": "Battery", "status": "Discharging", "energy_now": energy_now}})

    source = BatterySource(supplies(41_000_000))
    first = source.read()
    assert first.power_w is None and first.energy_j == 0
    supplies(40_990_000)  # 10 000 µWh used = 36 J
    assert source.read().energy_j == pytest.approx(36.0)


@pytest.mark.parametrize("current_ua", [-412_000, 412_000])
def test_battery_current_times_voltage_either_sign(tmp_path, current_ua):
    write_tree(tmp_path, {
        "usb": {"type": "USB", "online": 1},
        "battery": {"type": "Battery", "status": "Charging", "current_now": current_ua, "voltage_now": 3_871_000},
    })
    reading = BatterySource(tmp_path).read()
    assert reading.power_w == pytest.approx(0.412 * 3.871) and reading.energy_j is None
    assert BatterySource(tmp_path).status() == "Charging" and BatterySource(tmp_path).percent() is None


def test_peripheral_battery_or_none_is_unavailable(tmp_path):
    write_tree(tmp_path, {"hidpp_battery_0": {"type": "Battery", "scope": "Device", "capacity": 55,
                                              "power_now": 1_000}})
    source = BatterySource(tmp_path)
    assert source.supply() is None and not source.available() and source.percent() is None
    with pytest.raises(EdgekitError) as err:
        source.read()
    assert one_line(err).startswith("no battery under")


def test_pi_pmic_sums_volts_times_amps_per_rail():
    calls = []
    source = PiPmicSource(lambda argv: calls.append(argv) or recorded("pmic_read_adc.txt"))
    by_hand = (0.00390372 * 3.74566700 + 0.05660034 * 3.31223100 + 0.18299880 * 1.79890800
               + 0.01756674 * 1.11187900 + 0.0 * 0.60451000 + 0.17956980 * 1.10659800
               + 0.35817560 * 0.80183660 + 0.73174400 * 0.72020000 + 0.00030525 * 3.30952200
               + 0.0 * 3.30402800 + 0.0 * 0.80254960 + 0.01647990 * 5.14656000)  # EXT5V_V, BATT_V: no current
    reading = source.read()
    assert reading.power_w == pytest.approx(by_hand) and reading.power_w == pytest.approx(1.64956247)
    assert reading.energy_j is None and calls == [["vcgencmd", "pmic_read_adc"]]


def test_pi_pmic_unavailable_without_vcgencmd_or_rails():
    assert not PiPmicSource(fails(FileNotFoundError("vcgencmd"))).available()
    assert not PiPmicSource(lambda argv: 'error=1 error_msg="Command not registered"\n').available()


def adb_phone(current_ua: str):
    """A fake adb answering the two commands AdbBatterySource sends, recording every argv."""
    calls: list[list[str]] = []

    def runner(argv: list[str]) -> str:
        calls.append(argv)
        return recorded("dumpsys_battery.txt") if argv[-1] == "battery" else f"{current_ua}\n3871000\n"
    return runner, calls


def test_adb_battery_power_and_dumpsys():
    runner, calls = adb_phone("-412000")
    source = AdbBatterySource("R58M123ABC", runner)
    assert source.read().power_w == pytest.approx(0.412 * 3.871)
    assert calls[0] == ["adb", "-s", "R58M123ABC", "shell", "cat", "/sys/class/power_supply/battery/current_now",
                        "/sys/class/power_supply/battery/voltage_now"]
    info = source.info()
    assert (info.percent, info.status) == (87.0, "Discharging")
    assert info.temperature_c == pytest.approx(31.2) and info.voltage_v == pytest.approx(4.012)
    assert calls[-1] == ["adb", "-s", "R58M123ABC", "shell", "dumpsys", "battery"]
    assert source.percent() == 87.0 and source.status() == "Discharging"


def test_adb_without_device_or_adb_is_unavailable():
    no_device = subprocess.CalledProcessError(1, ["adb"], stderr="adb: no devices/emulators found\n")
    assert not AdbBatterySource(runner=fails(no_device)).available()
    assert not AdbBatterySource(runner=fails(FileNotFoundError("adb"))).available()
    runner, calls = adb_phone("-412000")
    assert AdbBatterySource(runner=runner).available() and calls[0][:2] == ["adb", "shell"]


def test_adb_failing_mid_run_is_one_line_error():
    runner, _ = adb_phone("-412000")
    answers = iter([runner, fails(subprocess.CalledProcessError(1, ["adb"], stderr="error: device offline\nx\n"))])
    source = AdbBatterySource(runner=lambda argv: next(answers)(argv))
    assert source.read().power_w == pytest.approx(1.594852)
    with pytest.raises(EdgekitError) as err:
        source.read()
    assert "failed: error: device offline" in one_line(err) and "adb devices" in one_line(err)
    with pytest.raises(EdgekitError) as err:
        AdbBatterySource(runner=adb_phone("/system/bin/sh: cat: Permission denied")[0]).read()
    assert one_line(err).startswith("unexpected battery readings")


def test_command_source_parses_watts_and_joules_and_rejects_garbage():
    assert CommandSource(["meter"], lambda argv: " 3.25\n").read().power_w == 3.25
    reading = CommandSource(["meter", "--joules"], lambda argv: "energy_j=12.5\n").read()
    assert reading.energy_j == 12.5 and reading.power_w is None
    for garbage in ["W: n/a", "nan", "energy_j=", "1.0\n2.0"]:
        with pytest.raises(EdgekitError) as err:
            CommandSource(["meter"], lambda argv, out=garbage: out).read()
        assert one_line(err).startswith("`meter` printed")


def test_energy_between_counter_and_trapezoid():
    counter = [Reading(0.0, 100.0, 9.0), Reading(1.0, 101.5, 9.0), Reading(2.5, 103.25, 9.0)]
    assert energy_between(counter) == pytest.approx(3.25)  # counter wins over the gauge
    gauge = [Reading(0.0, power_w=2.0), Reading(1.0, power_w=4.0), Reading(3.0, power_w=3.0)]
    assert energy_between(gauge) == pytest.approx(3.0 + 7.0)  # (2+4)/2*1 + (4+3)/2*2
    assert average_power(gauge) == pytest.approx(10.0 / 3.0)
    assert energy_between(gauge[:1] + [Reading(1.0, 5.0, 4.0)]) == pytest.approx(3.0)  # one counter missing
    for bad in ([gauge[0]], [Reading(0.0), Reading(1.0, power_w=1.0)], [Reading(1.0, 1.0), Reading(1.0, 2.0)]):
        with pytest.raises(EdgekitError):
            average_power(bad)


def test_baseline_and_battery_drain():
    assert baseline_subtracted(10.0, 2.0, 3.0) == pytest.approx(4.0)
    assert baseline_subtracted(5.0, 2.0, 3.0) == pytest.approx(-1.0)  # sign kept: below idle noise
    assert battery_percent_per_hour(2.0, 20.0, 0.5) == pytest.approx(5.0)
    with pytest.raises(EdgekitError):
        battery_percent_per_hour(2.0, 20.0, 1.5)
    with pytest.raises(EdgekitError):
        battery_percent_per_hour(2.0, 0.0, 0.5)


def test_detect_prefers_rapl_then_battery_then_pmic(tmp_path):
    powercap, supplies = tmp_path / "powercap", tmp_path / "power_supply"
    no_pi = fails(FileNotFoundError("vcgencmd"))
    assert detect(powercap, supplies, no_pi) is None
    assert isinstance(detect(powercap, supplies, lambda argv: recorded("pmic_read_adc.txt")), PiPmicSource)
    laptop_supplies(supplies, energy_now=41_000_000)
    assert isinstance(detect(powercap, supplies, no_pi), BatterySource)
    rapl_tree(powercap, pkg0_uj=1, pkg1_uj=2)
    found = detect(powercap, supplies, no_pi)
    assert isinstance(found, RaplSource) and found.read().energy_j == pytest.approx(3e-6)
