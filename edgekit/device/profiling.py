"""``edgekit profile``: one fixed protocol that measures a bundle on the device it runs on.

Load time, time to first token, prefill and decode speed (mean and sd over repetitions, like
llama-bench), decode speed at a depth, inter-token latency percentiles, peak memory, state size, where
decode time goes (onnxruntime's per-node profile mapped to DeltaNet / attention / MLP / lm_head), and
energy per token when the device has an energy source. With none, the result says so.
"""

from __future__ import annotations

import json
import platform
import re
import statistics
import subprocess
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

import edgekit
from edgekit.device.energy import (
    EnergySource,
    Reading,
    average_power,
    baseline_subtracted,
    battery_percent_per_hour,
    detect,
    energy_between,
)
from edgekit.device.process import Runner, run_command
from edgekit.device.thermal import ThermalReader
from edgekit.runtimes.model import Model

MODULES = (("linear_attn", "DeltaNet"), ("self_attn", "attention"), ("mlp", "MLP"), ("lm_head", "lm_head"),
           ("embed", "embedding"), ("norm", "norms"), ("positions", "positions"))


@dataclass(frozen=True)
class ProfileSettings:
    pp: int = 128            # prompt tokens per prefill measurement
    tg: int = 64             # decode steps per measurement
    depth: int = 512         # context already present for the "@ depth" decode measurement
    reps: int = 3            # repetitions after one warm-up
    threads: int | None = None
    breakdown_steps: int = 16  # decode steps recorded with onnxruntime's profiler
    idle_s: float = 2.0      # idle baseline for energy
    seed: int = 0
    soak_s: float = 0.0      # thermal soak: keep decoding this long, sampling speed and temperature
    soak_window_s: float = 5.0
    battery_wh: float | None = None  # with an energy source: battery %/hour the model costs...
    duty_cycle: float = 0.1          # ...when it decodes this fraction of the hour


class EnergySampler:
    """Reads ``source`` every ``period`` seconds in a thread while a phase runs."""

    def __init__(self, source: EnergySource, period: float = 0.1) -> None:
        self.source, self.period = source, period
        self.samples: list[Reading] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append(self.source.read())
            self._stop.wait(self.period)

    def __enter__(self) -> "EnergySampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.samples.append(self.source.read())


def _phase(source: EnergySource | None, work: Callable[[], Any]) -> tuple[Any, float, list[Reading]]:
    """Run ``work``; return its result, its seconds and the energy samples taken meanwhile."""
    start = time.perf_counter()
    if source is None:
        return work(), time.perf_counter() - start, []
    with EnergySampler(source) as sampler:
        result = work()
    return result, time.perf_counter() - start, sampler.samples


def _mean_sd(values: list[float]) -> dict[str, float]:
    return {"mean": statistics.fmean(values), "sd": statistics.stdev(values) if len(values) > 1 else 0.0,
            "n": len(values)}


def peak_rss_bytes() -> int | None:
    """This process's peak resident memory (Linux ``VmHWM``), or None where it cannot be read."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def device_model(device_tree: Path = Path("/proc/device-tree/model"), runner: Runner = run_command) -> str | None:
    """The phone or board this runs on: Android's ``getprop`` (maker, model, Android version), else the
    device tree's model (Raspberry Pi and most ARM boards); None where neither exists."""
    try:
        props = dict(re.findall(r"^\[([\w.]+)\]: \[(.*)\]$", runner(["getprop"]), re.MULTILINE))
    except (OSError, subprocess.SubprocessError):
        props = {}
    if props.get("ro.product.model"):
        maker = props.get("ro.product.manufacturer", "")
        return f"{maker} {props['ro.product.model']}, Android {props.get('ro.build.version.release', '?')}".strip()
    try:
        return device_tree.read_text().rstrip("\x00\n").strip() or None
    except OSError:
        return None


def module_of(node_name: str) -> str:
    """The model part a graph node belongs to, from its scope (``layers.3.mlp/MatMulNBits_12``)."""
    scope = node_name.split("/")[0]
    for key, label in MODULES:
        if key in scope:
            return label
    return "other"


def op_breakdown(profile_file: Path, steps: int, top_k: int = 8) -> dict[str, Any]:
    """ms per decode step by model part and the top op types, from an onnxruntime profile file."""
    by_module: dict[str, float] = defaultdict(float)
    by_op: dict[str, float] = defaultdict(float)
    for event in json.loads(profile_file.read_text()):
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            ms = event["dur"] / 1000 / steps
            by_module[module_of(event["name"])] += ms
            by_op[event["args"]["op_name"]] += ms
    ordered = lambda d: dict(sorted(d.items(), key=lambda kv: -kv[1]))  # noqa: E731
    return {"source": "onnxruntime profile", "ms_per_step_by_module": ordered(by_module),
            "ms_per_step_top_ops": dict(list(ordered(by_op).items())[:top_k])}


def _onnx_breakdown(model: Model, settings: ProfileSettings, prompt: list[int]) -> dict[str, Any]:
    """The op breakdown of the onnx backend: a few decode steps under onnxruntime's profiler (the prompt is
    prefilled by ``model``'s own, unprofiled session, so the profile holds the decode steps only)."""
    from edgekit.runtimes.onnx_decoder import OnnxDecoder

    with tempfile.TemporaryDirectory() as tmp:
        decoder = OnnxDecoder(model.bundle, threads=settings.threads,
                              max_context=settings.pp + settings.breakdown_steps + 8,
                              profile_prefix=str(Path(tmp) / "ort"))
        profiled = Model(model.bundle, decoder, model.tokenizer, chunk_size=model.chunk_size)
        state = profiled.new_state()
        token = int(np.argmax(model.prefill(state, prompt)))
        for _ in range(settings.breakdown_steps):
            token = int(np.argmax(profiled.step(state, token)))
        return op_breakdown(Path(decoder.session.end_profiling()), settings.breakdown_steps)


# ExecuTorch ops by what they do (an ETDump without an ETRecord names ops, not the modules they came from).
OP_PARTS = (("gated_delta_rule", "DeltaNet recurrence"), ("Convolution", "DeltaNet conv"),
            ("convolution", "DeltaNet conv"), ("custom_sdpa", "attention (SDPA)"), ("update_cache", "attention (KV write)"),
            ("Fully Connected", "linear layers (XNNPACK)"), ("embedding", "embedding"),
            ("copy_", "state copies and resets"), ("where", "state copies and resets"))
ETDUMP_WRAPPERS = {"DELEGATE_CALL", "OPERATOR_CALL", "Method::execute", "Method::init", "Program::load_method"}


def etdump_breakdown(events: list[tuple[str, list[float]]], steps: int, top_k: int = 8) -> dict[str, Any]:
    """ms per decode step by op kind and top ops, from the forward method's ETDump events: (name, ms per run),
    of which the last ``steps`` runs are decode steps. Wrapper events (which contain other events) are skipped."""
    by_part: dict[str, float] = defaultdict(float)
    by_op: dict[str, float] = defaultdict(float)
    for name, runs in events:
        if name in ETDUMP_WRAPPERS or not runs:
            continue
        op = re.sub(r" #\d+$", "", name).removeprefix("native_call_")
        ms = sum(runs[-steps:]) / min(steps, len(runs))
        by_op[op] += ms
        by_part[next((part for key, part in OP_PARTS if key in op), "norms, rotary, elementwise")] += ms
    ordered = lambda d: dict(sorted(d.items(), key=lambda kv: -kv[1]))  # noqa: E731
    return {"source": "ExecuTorch ETDump, by op kind", "ms_per_step_by_module": ordered(by_part),
            "ms_per_step_top_ops": dict(list(ordered(by_op).items())[:top_k])}


def _executorch_breakdown(model: Model, settings: ProfileSettings, prompt: list[int]) -> dict[str, Any]:
    """The op breakdown of the executorch backend: a few decode steps with ETDump recording."""
    from executorch.devtools import Inspector

    from edgekit.runtimes.executorch_decoder import ExecuTorchDecoder

    decoder = ExecuTorchDecoder(model.bundle, threads=settings.threads, etdump=True)
    profiled = Model(model.bundle, decoder, model.tokenizer, chunk_size=model.chunk_size)
    state = profiled.new_state()
    token = int(np.argmax(profiled.prefill(state, prompt)))
    for _ in range(settings.breakdown_steps):
        token = int(np.argmax(profiled.step(state, token)))
    with tempfile.TemporaryDirectory() as tmp:
        decoder.write_etdump(Path(tmp) / "run.etdp")
        blocks = Inspector(etdump_path=str(Path(tmp) / "run.etdp")).event_blocks
    forward = max(blocks, key=lambda block: len(block.events))  # runs with the same events share a block
    return etdump_breakdown([(e.name, list(e.perf_data.raw) if e.perf_data else []) for e in forward.events],
                            settings.breakdown_steps)


def run_soak(model, settings: ProfileSettings, reader: ThermalReader,
             progress: Callable[[str], None] = lambda step: None) -> dict[str, Any]:
    """Decode for ``soak_s`` seconds in windows; after each, record tok/s, temperatures, CPU MHz, throttling."""
    series: list[dict[str, Any]] = []
    state, token = model.new_state(), 1
    start = time.perf_counter()
    while time.perf_counter() - start < settings.soak_s:
        window_start, steps = time.perf_counter(), 0
        while time.perf_counter() - window_start < settings.soak_window_s:
            if state.length >= state.max_context:
                state = model.new_state()  # keep decoding within the context budget
            token = int(np.argmax(model.step(state, token)))
            steps += 1
        sample = reader.read()
        series.append({"t_s": time.perf_counter() - start, "tok_s": steps / (time.perf_counter() - window_start),
                       "temperatures_c": sample.temperatures_c, "cpu_mhz": sample.cpu_mhz,
                       "throttled_now": list(sample.throttled_now)})
        progress(f"soak {series[-1]['t_s']:.0f}/{settings.soak_s:.0f} s")
    temps = [max(w["temperatures_c"].values()) for w in series if w["temperatures_c"]]
    return {"windows": series,
            "tok_s_first_over_last": series[0]["tok_s"] / series[-1]["tok_s"],
            "max_temperature_c": max(temps) if temps else None,
            "throttled_since_boot": list(reader.read().throttled_since_boot),
            "throttling_seen": sorted({r for w in series for r in w["throttled_now"]})}


def run_profile(bundle_dir: str | Path, settings: ProfileSettings = ProfileSettings(),
                energy: EnergySource | None | str = "auto",
                progress: Callable[[str], None] = lambda step: None,
                thermal: ThermalReader | None = None) -> dict[str, Any]:
    """Measure ``bundle_dir`` with the fixed protocol; ``energy``: a source, None, or "auto" (``detect``).
    ``thermal`` reads temperatures for the soak (default: this machine's sysfs)."""
    bundle_dir = Path(bundle_dir)
    source = detect() if energy == "auto" else energy
    rng = np.random.default_rng(settings.seed)
    prompt = rng.integers(0, 248_000, settings.pp).tolist()
    context = settings.depth + settings.pp + settings.tg + 8

    progress("loading")
    start = time.perf_counter()
    model = edgekit.load(bundle_dir, threads=settings.threads, max_context=context)
    load_s = time.perf_counter() - start

    progress("warm-up")
    warm = model.new_state()
    model.prefill(warm, prompt[:16])
    for _ in range(4):
        model.step(warm, 1)

    idle = None
    if source is not None:
        progress("idle baseline")
        _, idle_s, idle_samples = _phase(source, lambda: time.sleep(settings.idle_s))
        idle = average_power(idle_samples)

    pp_rates, tg_rates, ttfts, itl_ms, pp_joules, tg_joules = [], [], [], [], [], []
    for rep in range(settings.reps):
        progress(f"repetition {rep + 1}/{settings.reps}")
        state = model.new_state()

        def prefill_and_first():
            return int(np.argmax(model.prefill(state, prompt)))

        token, pp_s, pp_samples = _phase(source, prefill_and_first)
        pp_rates.append(settings.pp / pp_s)
        ttfts.append(pp_s * 1000)
        steps: list[float] = []

        def decode():
            nonlocal token
            for _ in range(settings.tg):
                t = time.perf_counter()
                token = int(np.argmax(model.step(state, token)))
                steps.append((time.perf_counter() - t) * 1000)

        _, tg_s, tg_samples = _phase(source, decode)
        tg_rates.append(settings.tg / tg_s)
        itl_ms.extend(steps)
        if source is not None:
            pp_joules.append(baseline_subtracted(energy_between(pp_samples), pp_s, idle) / settings.pp)
            tg_joules.append(baseline_subtracted(energy_between(tg_samples), tg_s, idle) / settings.tg)

    progress(f"decode at depth {settings.depth}")
    deep = model.new_state()
    model.prefill(deep, rng.integers(0, 248_000, settings.depth).tolist())
    depth_rates = []
    for _ in range(settings.reps):
        branch = deep.fork()
        start = time.perf_counter()
        for _ in range(settings.tg):
            model.step(branch, 1)
        depth_rates.append(settings.tg / (time.perf_counter() - start))

    soak = run_soak(model, settings, thermal or ThermalReader(), progress) if settings.soak_s > 0 else None
    progress("op breakdown")
    breakdown = (_onnx_breakdown if model.decoder.backend == "onnx" else _executorch_breakdown)(
        model, settings, prompt)
    cfg = model.config
    fixed, per_token_kv = cfg.state_bytes()
    return {
        "edgekit_profile": 1,
        "bundle": {"path": str(bundle_dir), "id": model.bundle.digest, "model": model.bundle.manifest.model,
                   "backend": model.decoder.backend, "quantization": model.bundle.manifest.quantization["weights"]},
        "machine": {"model": device_model(), "platform": platform.platform(), "machine": platform.machine(),
                    "processor": platform.processor(), "python": platform.python_version(),
                    "onnxruntime": _version("onnxruntime"), "executorch": _version("executorch"), "edgekit": edgekit.__version__},
        "settings": asdict(settings),
        "load_s": load_s,
        "ttft_ms": _mean_sd(ttfts),
        "prefill_tok_s": _mean_sd(pp_rates),
        "decode_tok_s": _mean_sd(tg_rates),
        "decode_at_depth_tok_s": _mean_sd(depth_rates),
        "inter_token_ms": {f"p{q}": float(np.percentile(itl_ms, q)) for q in (50, 90, 99)},
        "inter_token_series_ms": itl_ms,
        "memory": {"peak_rss_bytes": peak_rss_bytes(), "state_fixed_bytes": fixed, "kv_bytes_per_token": per_token_kv},
        "breakdown": breakdown,
        "energy": _energy_summary(source, idle, pp_joules, tg_joules, statistics.fmean(tg_rates), settings),
        "soak": soak,
    }


def _energy_summary(source: EnergySource | None, idle_w: float | None, pp_j: list[float], tg_j: list[float],
                    tg_rate: float, settings: ProfileSettings) -> dict:
    if source is None:
        return {"source": None, "note": "no energy source found on this device: energy was not measured"}
    decode_w = statistics.fmean(tg_j) * tg_rate  # J/token x tok/s: power drawn above idle while decoding
    summary = {"source": source.name, "idle_w": idle_w, "prefill_j_per_token": _mean_sd(pp_j),
               "decode_j_per_token": _mean_sd(tg_j), "decode_w_above_idle": decode_w,
               "note": "idle baseline subtracted"}
    if settings.battery_wh:
        summary["battery"] = {"capacity_wh": settings.battery_wh, "duty_cycle": settings.duty_cycle,
                              "percent_per_hour": battery_percent_per_hour(decode_w, settings.battery_wh,
                                                                           settings.duty_cycle)}
    return summary


def _version(package: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None
