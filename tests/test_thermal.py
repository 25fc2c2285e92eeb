"""Thermal readings and the soak: fake sysfs trees and a recorded vcgencmd, the soak on a tiny bundle."""

from __future__ import annotations

from pathlib import Path

import pytest

import edgekit
from edgekit.cli.options import parse_duration
from edgekit.device.profile_report import to_html, to_markdown
from edgekit.device.profiling import ProfileSettings, run_profile, run_soak
from edgekit.device.thermal import ThermalReader, parse_throttled
from edgekit.errors import EdgekitError


def fake_sysfs(root: Path, temp_mc: int = 61_250) -> tuple[Path, Path]:
    thermal, cpu = root / "thermal", root / "cpu"
    for n, (kind, t) in enumerate((("cpu-thermal", temp_mc), ("rp1_adc", 45_000))):
        zone = thermal / f"thermal_zone{n}"
        zone.mkdir(parents=True)
        (zone / "type").write_text(kind + "\n")
        (zone / "temp").write_text(f"{t}\n")
    for n, khz in enumerate((2_400_000, 1_500_000)):
        (cpu / f"cpu{n}" / "cpufreq").mkdir(parents=True)
        (cpu / f"cpu{n}" / "cpufreq" / "scaling_cur_freq").write_text(f"{khz}\n")
    (cpu / "cpufreq").mkdir()  # not a cpuN folder: ignored
    return thermal, cpu


def pi_runner(argv):
    assert argv == ["vcgencmd", "get_throttled"]
    return "throttled=0x50005\n"


def no_vcgencmd(argv):
    raise FileNotFoundError(argv[0])


def test_throttle_bits():
    assert parse_throttled("throttled=0x50005") == (("under-voltage", "throttled"), ("under-voltage", "throttled"))
    assert parse_throttled("throttled=0x0") == ((), ())
    with pytest.raises(EdgekitError):
        parse_throttled("error=1")


def test_reader_on_a_pi_and_elsewhere(tmp_path):
    thermal, cpu = fake_sysfs(tmp_path)
    sample = ThermalReader(thermal, cpu, pi_runner).read()
    assert sample.temperatures_c == {"cpu-thermal": 61.25, "rp1_adc": 45.0}
    assert sample.cpu_mhz == {"cpu0": 2400.0, "cpu1": 1500.0}
    assert sample.throttled_now == ("under-voltage", "throttled")
    plain = ThermalReader(thermal, cpu, no_vcgencmd)
    assert plain.read().throttled_now == () and plain.read().temperatures_c["cpu-thermal"] == 61.25
    empty = ThermalReader(tmp_path / "none", tmp_path / "none", no_vcgencmd).read()
    assert empty.temperatures_c == {} and empty.cpu_mhz == {}


def test_soak_records_speed_and_temperature(int4_bundle, tmp_path):
    thermal, cpu = fake_sysfs(tmp_path)
    model = edgekit.load(int4_bundle, max_context=32)  # small budget: the soak must restart states
    settings = ProfileSettings(soak_s=1.0, soak_window_s=0.2)
    soak = run_soak(model, settings, ThermalReader(thermal, cpu, pi_runner))
    assert len(soak["windows"]) >= 4 and all(w["tok_s"] > 0 for w in soak["windows"])
    assert soak["max_temperature_c"] == 61.25 and soak["throttling_seen"] == ["throttled", "under-voltage"]
    assert soak["windows"][-1]["t_s"] >= 1.0


def test_soak_in_the_profile_reports(int4_bundle, tmp_path):
    thermal, cpu = fake_sysfs(tmp_path, temp_mc=70_000)
    settings = ProfileSettings(pp=8, tg=4, depth=8, reps=1, breakdown_steps=2, soak_s=0.6, soak_window_s=0.2)
    result = run_profile(int4_bundle, settings, energy=None, thermal=ThermalReader(thermal, cpu, no_vcgencmd))
    assert "max temperature 70.0 °C" in to_markdown(result)
    page = to_html(result)
    assert "Soak: decode speed over time" in page and "Soak: temperature over time" in page
    assert page.count("<svg") == 4  # latency, breakdown, soak speed, soak temperature (no energy plot)


def test_durations():
    assert parse_duration("90") == 90 and parse_duration("90s") == 90
    assert parse_duration("10m") == 600 and parse_duration("1.5h") == 5400
    for bad in ("", "ten minutes", "-5m", "0"):
        with pytest.raises(EdgekitError, match="cannot read the duration"):
            parse_duration(bad)

