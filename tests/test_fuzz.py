"""Property-based tests (hypothesis) over every parser that reads user or device data.

Property: a one-line ``EdgekitError`` or a correct result; never another exception, never a hang (each
example runs under an alarm). Examples are derandomized (a fixed seed) and bounded so the suite stays
within a few minutes; ``EDGEKIT_FUZZ_SCALE=50 pytest tests/test_fuzz.py`` runs 50 times as many, with
a random seed (docs/faults.md).

Parsers covered: the manifest reader, the prompt-cache loader, the timeline reader (an old ``timeline.jsonl``, imported once into the store),
tokenizer files and text, the energy parsers' inputs (vcgencmd, dumpsys, sysfs) and the thermal
reader's, and the CLI's option values (durations, counts, context).
"""

from __future__ import annotations

import io
import json
import math
import os
import signal
import subprocess
import zipfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from edgekit.errors import EdgekitError  # noqa: E402

SCALE = int(os.environ.get("EDGEKIT_FUZZ_SCALE", "1"))
HANG_S = 60  # one example taking this long is a hang


def examples(n: int):
    """Hypothesis settings: ``n`` examples (times EDGEKIT_FUZZ_SCALE), a fixed seed unless scaled up."""
    return settings(max_examples=n * SCALE, derandomize=SCALE == 1, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                           HealthCheck.data_too_large])


@contextmanager
def no_hang(seconds: int = HANG_S):
    def alarm(signum, frame):
        raise TimeoutError(f"no result after {seconds} s: a hang")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def one_line(err: EdgekitError) -> None:
    text = str(err)
    assert text and "\n" not in text and len(text) < 600, text


REFUSED = object()  # what ``outcome`` returns for a one-line EdgekitError


def outcome(fn, *args, **kw):
    """``fn(*args)``'s result, or REFUSED after a one-line EdgekitError; any other exception fails the test."""
    with no_hang():
        try:
            return fn(*args, **kw)
        except EdgekitError as err:
            one_line(err)
            return REFUSED


text_or_junk = st.one_of(st.text(max_size=80), st.binary(max_size=80).map(lambda b: b.decode("latin-1")))


# -- CLI option values -------------------------------------------------------------------------------------
@examples(300)
@given(st.one_of(text_or_junk, st.from_regex(r"\A[-+]?[0-9.eE]{0,8}[smh]?\Z"),
                 st.sampled_from(["nan", "inf", "-inf", "1e400", "0s", "1e-400", "infh", "NaNs", "١٠s"])))
def test_durations(text):
    from edgekit.cli.options import parse_duration

    seconds = outcome(parse_duration, text)
    if seconds is not REFUSED:
        assert math.isfinite(seconds) and seconds > 0
        number, unit = (text[:-1], {"s": 1, "m": 60, "h": 3600}[text[-1]]) if text[-1:] in "smh" else (text, 1)
        assert seconds == float(number) * unit


@examples(200)
@given(st.dictionaries(st.sampled_from(["max_new_tokens", "threads", "max_context", "caption_tokens"]),
                       st.one_of(st.none(), st.integers(-2**70, 2**70))))
def test_counts(options):
    from edgekit.cli.options import check_counts

    refused = outcome(check_counts, **options) is REFUSED
    assert refused == any(v is not None and v < 1 for v in options.values())


@examples(60)
@given(st.one_of(st.none(), st.integers(-2**40, 2**70), st.booleans(), st.floats(), st.text(max_size=5)))
def test_context_budgets(tiny_bundle, value):
    from edgekit.bundle import Bundle
    from edgekit.runtimes import check_context

    bundle = Bundle.open(tiny_bundle)
    refused = outcome(check_context, bundle, value) is REFUSED
    fits = value is None or (type(value) is int and 1 <= value <= 262144)  # tiny's positions; its KV is small
    assert refused != fits, value


# -- the timeline reader -------------------------------------------------------------------------------------
record_line = st.builds(lambda d: (json.dumps(d) + "\n").encode(),
                        st.fixed_dictionaries({"type": st.sampled_from(["run", "segment", "stop"]),
                                               "run": st.integers(0, 3)}))
junk_line = st.one_of(st.binary(max_size=40), st.sampled_from([b"[" * 5000 + b"\n", b"5\n", b"null\n", b"{}\n",
                                                               b'{"type": 3}\n', b"\xff\xfe\n", b"\r\n", b"{"]))


@examples(200)
@given(st.lists(st.one_of(record_line, junk_line), max_size=8))
def test_timeline_records(tmp_path_factory, lines):
    from edgekit.video.timeline import read_records

    path = tmp_path_factory.mktemp("timeline") / "timeline.jsonl"
    data = b"".join(lines)
    path.write_bytes(data)
    records = outcome(read_records, path)
    assert path.read_bytes() == data  # the importer only reads: a corrupt file is left for the user to look at
    if records is REFUSED:
        return
    assert all(isinstance(r, dict) and isinstance(r.get("type"), str) for r in records)
    complete = data[:data.rfind(b"\n") + 1]  # a torn last line (no newline) is ignored, nothing else is
    assert len(records) <= complete.count(b"\n")


# -- tokenizer files and text ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_bundle(int4_bundle):
    return int4_bundle


@pytest.fixture(scope="module")
def tokenizer_bytes(tiny_bundle) -> bytes:
    return (tiny_bundle / "tokenizer.json").read_bytes()


@pytest.fixture(scope="module")
def tok(tiny_bundle):
    from edgekit.tokenizer import Tokenizer

    return Tokenizer.from_file(tiny_bundle / "tokenizer.json")


@examples(25)
@given(st.data())
def test_tokenizer_files(tmp_path_factory, tokenizer_bytes, data):
    from edgekit.tokenizer import Tokenizer

    kind = data.draw(st.sampled_from(["truncate", "flip", "splice", "small json"]))
    raw = bytearray(tokenizer_bytes)
    if kind == "truncate":
        raw = raw[:data.draw(st.integers(0, len(raw) - 1))]
    elif kind == "flip":
        for at in data.draw(st.lists(st.integers(0, len(raw) - 1), min_size=1, max_size=4)):
            raw[at] = data.draw(st.integers(0, 255))
    elif kind == "splice":
        at = data.draw(st.integers(0, len(raw)))
        raw[at:at] = data.draw(st.binary(max_size=20))
    else:
        raw = bytearray(json.dumps(data.draw(st.dictionaries(st.sampled_from(["version", "model", "added_tokens",
                                                                               "normalizer", "pre_tokenizer"]),
                                                             st.one_of(st.none(), st.integers(), st.text(max_size=5),
                                                                       st.lists(st.integers(), max_size=3))))).encode())
    path = tmp_path_factory.mktemp("tok") / "tokenizer.json"
    path.write_bytes(bytes(raw))
    tokenizer = outcome(Tokenizer.from_file, path)
    if tokenizer is not REFUSED:  # it loaded: it must tokenize without raising anything but a one-line error
        outcome(tokenizer.encode_chat, [{"role": "user", "content": "Hello <|im_end|> there"}])


@examples(150)
@given(st.lists(st.tuples(st.sampled_from(["system", "user", "assistant"]), st.text(max_size=60)), max_size=4),
       st.booleans())
def test_chat_text_is_always_text(tok, turns, thinking):
    from edgekit.tokenizer import render_chat

    messages = [{"role": role, "content": content} for role, content in turns]
    ids = outcome(tok.encode_chat, messages, enable_thinking=thinking)
    if ids is REFUSED:  # only text Python cannot write as UTF-8 (lone surrogates) is refused
        assert any(not c.isascii() for _, content in turns for c in content)
        return
    assert ids.count(tok.token_id("<|im_start|>")) == len(messages) + 1
    assert ids.count(tok.token_id("<|im_end|>")) == len(messages)
    assert tok.decode(ids) == render_chat(messages, enable_thinking=thinking)


# -- the prompt-cache loader -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def model(tiny_bundle):
    from edgekit.runtimes import load

    return load(tiny_bundle)


@pytest.fixture(scope="module")
def cache_bytes(model, tmp_path_factory) -> bytes:
    from edgekit.runtimes import PromptCache

    cache = PromptCache(model)
    cache.prefill(model.tokenizer.encode("A short prompt to checkpoint, twice over."), marks=[(4, "system")])
    path = tmp_path_factory.mktemp("cache") / "c.npz"
    cache.save(path)
    return path.read_bytes()


def _arrays(raw: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(raw)) as npz:
        return {name: npz[name] for name in npz.files}


def _resealed(arrays: dict[str, np.ndarray], header: object) -> bytes:
    """A cache file of these arrays and header with its checksum recomputed (what a crafted file does)."""
    from edgekit.runtimes.prompt_cache import _digest

    if isinstance(header, dict):
        header = {**header, "sha256": _digest(arrays)}
    out = io.BytesIO()
    np.savez(out, **arrays, header=np.frombuffer(json.dumps(header).encode(), dtype=np.uint8))
    return out.getvalue()


def _check_loaded(model, cache) -> None:
    for cp in cache.checkpoints:  # what loaded fits the bundle and can be resumed
        assert len(cp.tokens) == cp.state.length >= 1
        state = cache._restore(cp) if cp.state.length <= model.max_context else None
        assert state is None or state.length == cp.state.length


@examples(40)
@given(st.data())
def test_prompt_cache_bytes(model, cache_bytes, tmp_path_factory, data):
    from edgekit.runtimes import PromptCache

    raw = bytearray(cache_bytes)
    kind = data.draw(st.sampled_from(["truncate", "flip", "junk"]))
    if kind == "truncate":
        raw = raw[:data.draw(st.integers(0, len(raw) - 1))]
    elif kind == "flip":
        for at in data.draw(st.lists(st.integers(0, len(raw) - 1), min_size=1, max_size=6)):
            raw[at] ^= data.draw(st.integers(1, 255))
    else:
        raw = bytearray(data.draw(st.binary(max_size=200)))
    path = tmp_path_factory.mktemp("cache") / "c.npz"
    path.write_bytes(bytes(raw))
    cache = outcome(PromptCache.load, model, path)
    if cache is not REFUSED:
        _check_loaded(model, cache)


json_value = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(-2**40, 2**40), st.text(max_size=8)),
                          lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                                       max_size=3), max_leaves=8)


@examples(80)
@given(st.data())
def test_prompt_cache_crafted(model, cache_bytes, tmp_path_factory, data):
    """Resealed files: the checksum matches, so only the loader's checks stand between them and the graph."""
    from edgekit.runtimes import PromptCache

    arrays = _arrays(cache_bytes)
    header = json.loads(arrays.pop("header").tobytes())
    what = data.draw(st.sampled_from(["header field", "entry field", "array", "drop", "rename", "header"]))
    if what == "header field":
        header[data.draw(st.sampled_from(["format", "version", "bundle", "checkpoints"]))] = data.draw(json_value)
    elif what == "entry field":
        entry = header["checkpoints"][data.draw(st.integers(0, len(header["checkpoints"]) - 1))]
        entry[data.draw(st.sampled_from(["kind", "length", "next_position"]))] = data.draw(
            st.one_of(json_value, st.integers(-5, 5000)))
    elif what == "array":
        name = data.draw(st.sampled_from(sorted(arrays)))
        shape = tuple(data.draw(st.lists(st.integers(0, 6), min_size=0, max_size=4)))
        dtype = data.draw(st.sampled_from([np.float32, np.float64, np.int64, np.int8, np.bool_]))
        arrays[name] = np.asarray(data.draw(st.integers(-2**31, 2**31)), dtype=np.int64).astype(dtype) * np.ones(
            shape, dtype)
    elif what == "drop":
        arrays.pop(data.draw(st.sampled_from(sorted(arrays))))
    elif what == "rename":
        arrays[data.draw(st.text(min_size=1, max_size=12))] = arrays.pop(data.draw(st.sampled_from(sorted(arrays))))
    else:
        header = data.draw(json_value)
    path = tmp_path_factory.mktemp("cache") / "c.npz"
    try:
        path.write_bytes(_resealed(arrays, header))
    except (ValueError, zipfile.BadZipFile):  # a name numpy cannot store: not a file anyone can write
        return
    cache = outcome(PromptCache.load, model, path)
    if cache is not REFUSED:
        _check_loaded(model, cache)


# -- energy and thermal parsers' inputs ----------------------------------------------------------------------
def _runner(output: str | BaseException):
    def run(argv):
        if isinstance(output, BaseException):
            raise output
        return output
    return run


tool_outcome = st.one_of(
    text_or_junk,
    st.sampled_from([FileNotFoundError("vcgencmd"), PermissionError("denied"),
                     subprocess.CalledProcessError(1, "x", stderr="boom\nmore"), subprocess.TimeoutExpired("x", 10)]))
pmic_line = st.builds(lambda rail, kind, value, unit: f"  {rail}_{unit} {kind}(0)={value}{unit}",
                      st.from_regex(r"\A[A-Z0-9_]{1,8}\Z"), st.sampled_from(["current", "volt"]),
                      st.one_of(st.from_regex(r"\A[-+0-9.eE]{1,8}\Z"), st.floats().map(str)), st.sampled_from("AV"))


@examples(200)
@given(st.one_of(tool_outcome, st.lists(st.one_of(pmic_line, text_or_junk), max_size=6).map("\n".join)))
def test_vcgencmd_pmic(output):
    from edgekit.device.energy import PiPmicSource

    reading = outcome(PiPmicSource(_runner(output)).read)
    assert reading is REFUSED or math.isfinite(reading.power_w)


@examples(150)
@given(tool_outcome)
def test_vcgencmd_throttled(output):
    from edgekit.device.thermal import parse_throttled

    if isinstance(output, str):
        flags = outcome(parse_throttled, output)
        assert flags is REFUSED or all(isinstance(f, tuple) for f in flags)


dumpsys = st.lists(st.one_of(
    st.builds(lambda k, v: f"  {k}: {v}", st.sampled_from(["level", "scale", "status", "temperature", "voltage",
                                                              "AC powered"]),
              st.one_of(st.integers(-10**6, 10**6).map(str), st.sampled_from(["nan", "inf", "-0", "1e400", ""]),
                        text_or_junk)),
    text_or_junk), max_size=8).map("\n".join)


@examples(200)
@given(st.one_of(tool_outcome, dumpsys), st.one_of(tool_outcome, st.builds(
    lambda a, b: f"{a}\n{b}\n", st.integers(-10**9, 10**9), st.integers(-10**9, 10**9))))
def test_adb_dumpsys_and_battery(info_out, read_out):
    from edgekit.device.energy import AdbBatterySource

    info = outcome(AdbBatterySource(runner=_runner(info_out)).info)
    if info is not REFUSED:
        for value in (info.percent, info.temperature_c, info.voltage_v):
            assert value is None or math.isfinite(value)
    reading = outcome(AdbBatterySource(runner=_runner(read_out)).read)
    assert reading is REFUSED or (math.isfinite(reading.power_w) and reading.power_w >= 0)


@examples(150)
@given(tool_outcome)
def test_energy_command(output):
    from edgekit.device.energy import CommandSource

    reading = outcome(CommandSource(["meter"], runner=_runner(output)).read)
    if reading is not REFUSED:
        assert math.isfinite(reading.energy_j if reading.energy_j is not None else reading.power_w)


sysfs_value = st.one_of(st.integers(-2**63, 2**64).map(lambda v: f"{v}\n".encode()), st.binary(max_size=20),
                        st.sampled_from([b"nan\n", b"inf\n", b"\xff\xfe", b"", b"package-0\n", b"Battery\n",
                                         b"Device\n", b"System\n"]))


def _write_tree(root: Path, files: dict[str, bytes | None]) -> None:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if content is None:  # a directory where a file is expected
            path.mkdir(exist_ok=True)
        else:
            path.write_bytes(content)


def _sysfs(names):
    return st.dictionaries(st.sampled_from(names), st.one_of(sysfs_value, st.none()), max_size=len(names))


RAPL = ["intel-rapl:0/name", "intel-rapl:0/energy_uj", "intel-rapl:0/max_energy_range_uj",
        "intel-rapl:1/name", "intel-rapl:1/energy_uj", "intel-rapl:0:0/name"]
BATTERY = ["BAT0/type", "BAT0/scope", "BAT0/power_now", "BAT0/current_now", "BAT0/voltage_now", "BAT0/energy_now",
           "BAT0/capacity", "BAT0/status", "hid-mouse/type", "hid-mouse/scope"]
THERMAL = ["thermal_zone0/temp", "thermal_zone0/type", "thermal_zone1/temp", "thermal_zone1/type"]
CPUS = ["cpu0/cpufreq/scaling_cur_freq", "cpu1/cpufreq/scaling_cur_freq", "cpufreq/policy0"]


@examples(120)
@given(_sysfs(RAPL), _sysfs(RAPL))
def test_rapl_sysfs(tmp_path_factory, first, second):
    from edgekit.device.energy import RaplSource

    root = tmp_path_factory.mktemp("powercap")
    _write_tree(root, first)
    source = RaplSource(root)
    readings = [outcome(source.read)]
    _write_tree(root, {k: v for k, v in second.items() if v is not None and (root / k).is_file()})
    readings.append(outcome(source.read))
    for r in readings:
        assert r is REFUSED or math.isfinite(r.energy_j)


@examples(120)
@given(_sysfs(BATTERY))
def test_battery_sysfs(tmp_path_factory, files):
    from edgekit.device.energy import BatterySource

    root = tmp_path_factory.mktemp("power_supply")
    _write_tree(root, files)
    source = BatterySource(root)
    reading = outcome(source.read)
    if reading is not REFUSED:
        assert all(v is None or math.isfinite(v) for v in (reading.power_w, reading.energy_j))
    level = outcome(source.percent)
    assert level is REFUSED or level is None or math.isfinite(level)
    outcome(source.status)


@examples(120)
@given(_sysfs(THERMAL), _sysfs(CPUS), tool_outcome)
def test_thermal_sysfs_and_vcgencmd(tmp_path_factory, zones, cpus, throttled):
    from edgekit.device.thermal import ThermalReader

    thermal_root, cpu_root = tmp_path_factory.mktemp("thermal"), tmp_path_factory.mktemp("cpu")
    _write_tree(thermal_root, zones)
    _write_tree(cpu_root, cpus)
    sample = outcome(ThermalReader(thermal_root, cpu_root, runner=_runner(throttled)).read)
    if sample is not REFUSED:
        assert all(math.isfinite(v) for v in [*sample.temperatures_c.values(), *sample.cpu_mhz.values()])


# -- the manifest reader -----------------------------------------------------------------------------------
def _paths(value, prefix=()):
    """Every (path, value) inside a JSON value, the root included."""
    yield prefix, value
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        yield from _paths(item, (*prefix, key))


@examples(200)
@given(st.data())
def test_manifest_reader(tiny_bundle, data):
    """A real manifest with one value anywhere replaced (or removed), or any JSON at all."""
    from edgekit.manifest import Manifest

    real = json.loads((tiny_bundle / "manifest.json").read_text())
    if data.draw(st.booleans()):
        doc = data.draw(json_value)
    else:
        doc = json.loads(json.dumps(real))
        paths = [p for p, _ in _paths(doc) if p]
        path = data.draw(st.sampled_from(paths))
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        if data.draw(st.booleans()) and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = data.draw(json_value)
    manifest = outcome(Manifest.parse, doc)
    if manifest is not REFUSED:
        outcome(lambda: manifest.text_config)
        if manifest.has_vision:
            outcome(lambda: manifest.vision)
