"""Profile results as people read them: a Markdown table, an offline HTML page with plots, a comparison."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from edgekit.files import atomic_write_text

ROWS = (("load_s", "load", "s", None), ("ttft_ms", "TTFT", "ms", "mean"), ("prefill_tok_s", "prefill", "tok/s", "mean"),
        ("decode_tok_s", "decode", "tok/s", "mean"), ("decode_at_depth_tok_s", "decode @ depth", "tok/s", "mean"))


def _cell(value: Any) -> str:
    if isinstance(value, dict):
        return f"{value['mean']:.1f} ± {value['sd']:.1f}"
    return f"{value:.2f}"


def metrics(result: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(label, value, unit) rows shared by the Markdown and HTML views."""
    s = result["settings"]
    rows = []
    for key, label, unit, _ in ROWS:
        suffix = {"prefill_tok_s": f" (pp{s['pp']})", "decode_tok_s": f" (tg{s['tg']})",
                  "decode_at_depth_tok_s": f" (tg{s['tg']} @ d{s['depth']})"}.get(key, "")
        rows.append((label + suffix, _cell(result[key]), unit))
    for q, ms in result["inter_token_ms"].items():
        rows.append((f"inter-token latency {q}", f"{ms:.1f}", "ms"))
    mem = result["memory"]
    if mem["peak_rss_bytes"]:
        rows.append(("peak RSS", f"{mem['peak_rss_bytes'] / 2**20:.0f}", "MiB"))
    rows.append(("state", f"{mem['state_fixed_bytes'] / 2**20:.1f} MiB + {mem['kv_bytes_per_token'] / 1024:.0f} KiB/token", ""))
    energy = result["energy"]
    if energy["source"]:
        rows.append(("prefill energy", _cell(energy["prefill_j_per_token"]), "J/token"))
        rows.append(("decode energy", _cell(energy["decode_j_per_token"]), "J/token"))
        rows.append(("decode power above idle", f"{energy['decode_w_above_idle']:.2f}", "W"))
        if "battery" in energy:
            b = energy["battery"]
            rows.append((f"battery drain at {b['duty_cycle']:.0%} decoding ({b['capacity_wh']:g} Wh)",
                         f"{b['percent_per_hour']:.2f}", "%/hour"))
    return rows


def machine_line(result: dict[str, Any]) -> str:
    """Where the profile ran: the device (when remote), its model and platform, the versions."""
    m, device = result["machine"], result.get("device")
    where = [device["device"] if device else "", m.get("model") or "", m["platform"]]
    return (", ".join(w for w in where if w) + f" · onnxruntime {m['onnxruntime']} · edgekit {m['edgekit']}"
            + _battery_change(device))


def _battery_change(device: dict[str, Any] | None) -> str:
    """`` · battery 87% → 85% (Discharging, 31.2 °C)`` for a phone profiled over adb."""
    if not device or not device.get("battery_before"):
        return ""
    before, after = device["battery_before"], device["battery_after"]
    level = lambda b: "?" if b["percent"] is None else f"{b['percent']:.0f}%"  # noqa: E731
    temp = "" if after["temperature_c"] is None else f", {after['temperature_c']:.1f} °C"
    return f" · battery {level(before)} → {level(after)} ({after['status'] or 'status unknown'}{temp})"


def to_markdown(result: dict[str, Any]) -> str:
    b = result["bundle"]
    lines = [f"# edgekit profile: {b['model']} ({b['quantization']}, {b['backend']})", "",
             f"- Machine: {machine_line(result)}; bundle {b['id']}",
             f"- Settings: {json.dumps(result['settings'])}",
             f"- Energy: {result['energy']['source'] or result['energy']['note']}", "",
             "| metric | value | unit |", "|---|---|---|"]
    lines += [f"| {label} | {value} | {unit} |" for label, value, unit in metrics(result)]
    lines += ["", f"Decode time by model part (ms per step, {result['breakdown']['source']}):", "",
              "| part | ms/step |", "|---|---|"]
    lines += [f"| {part} | {ms:.2f} |" for part, ms in result["breakdown"]["ms_per_step_by_module"].items()]
    soak = result.get("soak")
    if soak:
        temp = soak["max_temperature_c"]
        lines += ["", f"Soak: {len(soak['windows'])} windows, tok/s first/last {soak['tok_s_first_over_last']:.2f}, "
                      f"max temperature {f'{temp:.1f} °C' if temp is not None else 'not reported by this device'}, "
                      f"throttling seen: {', '.join(soak['throttling_seen']) or 'none'}"]
    return "\n".join(lines) + "\n"


def _soak_html(soak: dict[str, Any] | None) -> str:
    if not soak:
        return ""
    temps = [max(w["temperatures_c"].values()) for w in soak["windows"] if w["temperatures_c"]]
    part = f"<h2>Soak: decode speed over time</h2>{_line_svg([w['tok_s'] for w in soak['windows']], 'tok/s', 'window')}"
    if temps:
        part += f"<h2>Soak: temperature over time</h2>{_line_svg(temps, '°C', 'window')}"
    return part + f"<p>Throttling seen: {html.escape(', '.join(soak['throttling_seen']) or 'none')}</p>"


def _bars_svg(values: dict[str, float], unit: str, width: int = 560) -> str:
    """A horizontal bar chart as inline SVG."""
    top = max(values.values(), default=1.0) or 1.0
    rows = []
    for n, (label, value) in enumerate(values.items()):
        y, w = 8 + n * 26, (width - 220) * value / top
        rows.append(f'<text x="0" y="{y + 14}">{html.escape(label)}</text>'
                    f'<rect x="120" y="{y}" width="{w:.1f}" height="18" fill="#4c78a8"/>'
                    f'<text x="{126 + w:.1f}" y="{y + 14}">{value:.2f} {unit}</text>')
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{16 + 26 * len(values)}" '
            f'font-family="sans-serif" font-size="12">{"".join(rows)}</svg>')


def _line_svg(series: list[float], unit: str, x_label: str = "decode step", width: int = 560,
              height: int = 180) -> str:
    """A line chart of ``series`` over its index as inline SVG (y from 0 to the maximum)."""
    top = max(series, default=1.0) or 1.0
    step = (width - 60) / max(len(series) - 1, 1)
    points = " ".join(f"{50 + i * step:.1f},{height - 20 - (height - 40) * v / top:.1f}" for i, v in enumerate(series))
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" '
            f'font-size="12"><polyline points="{points}" fill="none" stroke="#e45756" stroke-width="1.5"/>'
            f'<line x1="50" y1="{height - 20}" x2="{width - 10}" y2="{height - 20}" stroke="#888"/>'
            f'<text x="0" y="24">{top:.1f} {unit}</text><text x="0" y="{height - 20}">0</text>'
            f'<text x="{width / 2:.0f}" y="{height - 4}">{x_label}</text></svg>')


def to_html(result: dict[str, Any]) -> str:
    """One self-contained page (no scripts, no network): the table and the plots."""
    rows = "".join(f"<tr><td>{html.escape(label)}</td><td>{html.escape(value)}</td><td>{unit}</td></tr>"
                   for label, value, unit in metrics(result))
    energy = result["energy"]
    energy_part = (_bars_svg({"prefill": energy["prefill_j_per_token"]["mean"],
                              "decode": energy["decode_j_per_token"]["mean"]}, "J/token")
                   if energy["source"] else f"<p>{html.escape(energy['note'])}</p>")
    title = html.escape(f"edgekit profile: {result['bundle']['model']}")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif;max-width:820px;margin:2em auto}}td{{padding:2px 12px}}
tr:nth-child(even){{background:#f3f3f3}}</style></head><body>
<h1>{title}</h1>
<p>{html.escape(machine_line(result))} ·
bundle {result['bundle']['id']} ({html.escape(result['bundle']['quantization'])})</p>
<table id="metrics">{rows}</table>
<h2>Latency over time</h2>{_line_svg(result['inter_token_series_ms'], 'ms')}
<h2>Where decode time goes</h2><p>ms per decode step, from the {html.escape(result['breakdown']['source'])}</p>
{_bars_svg(result['breakdown']['ms_per_step_by_module'], 'ms')}
<h2>Energy per token</h2>{energy_part}
{_soak_html(result.get("soak"))}
</body></html>
"""


def write_reports(result: dict[str, Any], out_dir: Path) -> list[Path]:
    """``profile.json``, ``profile.md`` and ``profile.html`` in ``out_dir``, each written atomically."""
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {"profile.json": json.dumps(result, indent=2) + "\n", "profile.md": to_markdown(result),
             "profile.html": to_html(result)}
    for name, text in files.items():
        atomic_write_text(out_dir / name, text)
    return [out_dir / name for name in files]


def compare(a: dict[str, Any], b: dict[str, Any], names: tuple[str, str] = ("a", "b")) -> str:
    """A Markdown table of two profiles' means with the ratio b / a."""
    lines = [f"| metric | {names[0]} | {names[1]} | {names[1]} / {names[0]} |", "|---|---|---|---|"]
    for key, label, unit, field in ROWS:
        va = a[key][field] if field else a[key]
        vb = b[key][field] if field else b[key]
        lines.append(f"| {label} ({unit}) | {va:.2f} | {vb:.2f} | {vb / va:.2f} |")
    return "\n".join(lines) + "\n"
