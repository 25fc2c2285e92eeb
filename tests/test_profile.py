"""`edgekit profile`: the protocol on a tiny bundle, energy plumbing, the reports and the comparison."""

from __future__ import annotations

import json
import time
from html.parser import HTMLParser

import pytest
from typer.testing import CliRunner

from edgekit.cli import app
from edgekit.device.energy import Reading
from edgekit.device.profile_report import compare, metrics, to_html
from edgekit.device.profiling import ProfileSettings, module_of, run_profile

SETTINGS = ProfileSettings(pp=16, tg=8, depth=32, reps=2, breakdown_steps=4, idle_s=0.3)


class ConstantPower:
    """A fake energy source drawing the same 4 W whether idle or busy."""

    name = "fake-4W"

    def available(self) -> bool:
        return True

    def read(self) -> Reading:
        return Reading(time.monotonic(), power_w=4.0)


@pytest.fixture(scope="module")
def profiled(int4_bundle):
    return run_profile(int4_bundle, SETTINGS, energy=ConstantPower())


def test_protocol_measures_every_part(profiled):
    r = profiled
    assert r["load_s"] > 0 and r["ttft_ms"]["n"] == 2 and r["ttft_ms"]["mean"] > 0
    for key in ("prefill_tok_s", "decode_tok_s", "decode_at_depth_tok_s"):
        assert r[key]["n"] == 2 and r[key]["mean"] > 0
    assert len(r["inter_token_series_ms"]) == SETTINGS.tg * SETTINGS.reps
    p = r["inter_token_ms"]
    assert 0 < p["p50"] <= p["p90"] <= p["p99"]
    assert r["memory"]["peak_rss_bytes"] > 0 and r["memory"]["kv_bytes_per_token"] == 4 * 2 * 2 * 2 * 64
    parts = r["breakdown"]["ms_per_step_by_module"]
    assert {"DeltaNet", "attention", "MLP", "lm_head"} <= set(parts) and all(ms > 0 for ms in parts.values())
    assert "MatMulNBits" in r["breakdown"]["ms_per_step_top_ops"]
    assert r["breakdown"]["source"] == "onnxruntime profile"


def test_idle_baseline_cancels_constant_power(profiled):
    energy = profiled["energy"]
    assert energy["source"] == "fake-4W" and energy["idle_w"] == pytest.approx(4.0)
    # The same 4 W busy as idle: net energy per token is zero, up to the sampling edges.
    assert abs(energy["prefill_j_per_token"]["mean"]) < 0.05
    assert abs(energy["decode_j_per_token"]["mean"]) < 0.05


class CpuTimeCounter:
    """A fake energy counter charging 10 J per CPU-second of this process: idle reads ~0 W, decoding more."""

    name = "fake-cpu-counter"

    def available(self) -> bool:
        return True

    def read(self) -> Reading:
        return Reading(time.monotonic(), energy_j=10.0 * time.process_time())


def test_battery_drain_from_decode_power(int4_bundle):
    settings = ProfileSettings(pp=16, tg=32, depth=8, reps=2, breakdown_steps=2, idle_s=0.3,
                               battery_wh=15.0, duty_cycle=0.25)
    energy = run_profile(int4_bundle, settings, energy=CpuTimeCounter())["energy"]
    assert energy["idle_w"] < 1.0 and energy["decode_w_above_idle"] > 1.0
    battery = energy["battery"]
    assert battery["percent_per_hour"] == pytest.approx(100 * energy["decode_w_above_idle"] * 0.25 / 15.0)


def test_without_an_energy_source_no_number_is_made_up(int4_bundle):
    r = run_profile(int4_bundle, ProfileSettings(pp=8, tg=4, depth=8, reps=1, breakdown_steps=2), energy=None)
    assert r["energy"] == {"source": None, "note": "no energy source found on this device: energy was not measured"}
    assert "J/token" not in to_html(r) and "energy was not measured" in to_html(r)


class _Checker(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.counts: dict[str, int] = {}

    def handle_starttag(self, tag, attrs):
        self.counts[tag] = self.counts.get(tag, 0) + 1
        if tag not in ("meta", "rect", "line", "polyline", "br"):
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if tag in ("rect", "line", "polyline"):
            return
        assert self.stack and self.stack.pop() == tag, f"unbalanced </{tag}>"


def test_html_report_is_self_contained_with_plots(profiled):
    page = to_html(profiled)
    checker = _Checker()
    checker.feed(page)
    assert checker.stack == []
    assert checker.counts["svg"] == 3 and checker.counts["tr"] == len(metrics(profiled))
    assert "<script" not in page and "http://" not in page.replace("http://www.w3.org/2000/svg", "")
    points = page.split('<polyline points="')[1].split('"')[0].split()
    assert len(points) == SETTINGS.tg * SETTINGS.reps


def test_module_mapping():
    assert module_of("layers.4.linear_attn/LinearAttention_12") == "DeltaNet"
    assert module_of("layers.3.self_attn/GroupQueryAttention_9") == "attention"
    assert module_of("layers.0.mlp/MatMulNBits_3") == "MLP"
    assert module_of("lm_head/MatMulNBits_99") == "lm_head"
    assert module_of("MatMul_1") == "other"


def test_cli_writes_reports_and_compares(int4_bundle, tmp_path):
    runner = CliRunner()
    out = tmp_path / "prof"
    result = runner.invoke(app, ["profile", str(int4_bundle), "-o", str(out), "--pp", "8", "--tg", "4", "--depth", "8",
                                 "--reps", "1", "--energy", "none"])
    assert result.exit_code == 0, result.output
    assert {p.name for p in out.iterdir()} == {"profile.json", "profile.md", "profile.html"}
    data = json.loads((out / "profile.json").read_text())
    table = compare(data, data)
    assert table.count("| 1.00 |") == 5
    cmp = runner.invoke(app, ["profile-compare", str(out / "profile.json"), str(out / "profile.json")])
    assert cmp.exit_code == 0 and "decode" in cmp.output
    bad = runner.invoke(app, ["profile-compare", str(out / "profile.md"), str(out / "profile.json")])
    assert bad.exit_code == 2 and "cannot read profile" in bad.stderr
    assert "--pp, --tg" in runner.invoke(app, ["profile", str(int4_bundle), "--reps", "0"]).stderr


def test_html_report_renders_in_headless_chromium(profiled, tmp_path):
    import shutil
    import subprocess

    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("chromium is not installed (.ci/run installs it)")
    page = tmp_path / "profile.html"
    page.write_text(to_html(profiled))
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'chromium'}"]
    dom = subprocess.run([browser, *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True,
                         timeout=120).stdout
    assert dom.count("<svg") == 3 and 'id="metrics"' in dom and "Where decode time goes" in dom
    shot = tmp_path / "profile.png"
    subprocess.run([browser, *flags, "--window-size=900,1100", f"--screenshot={shot}", page.as_uri()],
                   capture_output=True, timeout=120)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000  # a drawn page


def test_etdump_breakdown_counts_leaf_ops_of_the_decode_steps():
    from edgekit.device.profiling import etdump_breakdown

    events = [("Fully Connected (NC, QD8, F32, QC4W) #1", [9.0, 1.0, 3.0]),  # first run: the prefill
              ("Fully Connected (NC, QD8, F32, QC4W) #2", [9.0, 2.0, 2.0]),
              ("DELEGATE_CALL", [20.0, 4.0, 6.0]),  # contains the two above: not counted again
              ("native_call_gated_delta_rule.out", [5.0, 0.5, 0.5]), ("OPERATOR_CALL", [5.0, 0.6, 0.6]),
              ("native_call_mul.out", [1.0, 0.25, 0.25])]
    result = etdump_breakdown(events, steps=2)
    assert result["ms_per_step_by_module"] == {"linear layers (XNNPACK)": 4.0, "DeltaNet recurrence": 0.5,
                                               "norms, rotary, elementwise": 0.25}
    assert list(result["ms_per_step_top_ops"]) == ["Fully Connected (NC, QD8, F32, QC4W)", "gated_delta_rule.out",
                                                   "mul.out"]
