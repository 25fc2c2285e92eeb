"""Options and helpers shared by several verbs: sampling, threads, context, loading a bundle, durations."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from edgekit.errors import EdgekitError

TEMPERATURE = typer.Option(0.0, "--temperature", help="0 = greedy.")
TOP_K = typer.Option(0, "--top-k", help="0 = off.")
TOP_P = typer.Option(1.0, "--top-p")
REPETITION_PENALTY = typer.Option(1.0, "--repetition-penalty")
SEED = typer.Option(None, "--seed")
THREADS = typer.Option(None, "--threads", help="onnxruntime intra-op threads (default: cores, at most 4).")
MAX_CONTEXT = typer.Option(None, "--max-context", help="Override the bundle's context budget.")
THINK = typer.Option(False, "--think/--no-think", help="Let the model think first (off by default).")
MQTT = typer.Option(None, "--mqtt", help="Broker: mqtt://HOST:1883/PREFIX or mqtts://HOST:8883/PREFIX (TLS); "
                    "user:password@ may come before HOST.")
MQTT_USER = typer.Option(None, "--mqtt-user", envvar="EDGEKIT_MQTT_USER", help="Broker user name.")
MQTT_PASSWORD = typer.Option(None, "--mqtt-password", envvar="EDGEKIT_MQTT_PASSWORD",
                             help="Broker password (better from the environment: EDGEKIT_MQTT_PASSWORD).")
MQTT_CA = typer.Option(None, "--mqtt-ca", help="CA certificate (PEM) of the broker's TLS certificate; turns on TLS.")
MQTT_CERT = typer.Option(None, "--mqtt-cert", help="Client certificate (PEM) for brokers that require one.")
MQTT_KEY = typer.Option(None, "--mqtt-key", help="The client certificate's private key (PEM).")
MQTT_INSECURE = typer.Option(False, "--mqtt-insecure", help="TLS without checking the broker's host name.")


def check_counts(**options: Optional[int]) -> None:
    """Refuse a count option below 1 (``max_new_tokens=-1`` -> "-n/--max-new-tokens must be at least 1")
    before anything loads; ``None`` means the option was left out."""
    for name, value in options.items():
        if value is not None and value < 1:
            flag = _FLAGS.get(name, "--" + name.replace("_", "-"))
            raise EdgekitError(f"{flag} must be at least 1 (got {value})", f"pass {flag} 1 or more")


_FLAGS = {"max_new_tokens": "-n/--max-new-tokens"}


def load_model(bundle: Path, threads: Optional[int], max_context: Optional[int]):
    """The bundle's runtime ``Model`` (imported late: ``edgekit --help`` loads no runtime)."""
    import edgekit

    check_counts(threads=threads, max_context=max_context)
    return edgekit.load(bundle, threads=threads, max_context=max_context)


def read_document(path: Path) -> str:
    """A UTF-8 text file's content, or a one-line error (missing, a folder, unreadable, binary)."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise EdgekitError(f"no file at {path}", "pass the path of a text file") from None
    except IsADirectoryError:
        raise EdgekitError(f"{path} is a folder", "pass the path of a text file") from None
    except OSError as err:
        raise EdgekitError(f"cannot read {path} ({err.strerror})", "pass a readable text file") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise EdgekitError(f"{path} is not UTF-8 text (a binary file?)", "pass a text file") from None
    if "\x00" in text:
        raise EdgekitError(f"{path} holds NUL bytes (a binary file?)", "pass a text file")
    return text


def sampling_params(temperature: float, top_k: int, top_p: float, repetition_penalty: float, seed: Optional[int]):
    from edgekit.sampling import SamplingParams

    return SamplingParams(temperature=temperature, top_k=top_k, top_p=top_p,
                          repetition_penalty=repetition_penalty, seed=seed)


def open_cache(model, cache_file: Optional[Path], must_exist: bool = False):
    """The prompt cache: loaded from ``cache_file`` when it exists, else a new in-memory one (with
    ``must_exist`` a missing file is an error: a cache that is only read would be silently useless)."""
    from edgekit.runtimes import PromptCache

    if cache_file is not None and cache_file.exists():
        return PromptCache.load(model, cache_file)
    if cache_file is not None and must_exist:
        raise EdgekitError(f"no prompt cache at {cache_file}", "check the path, or create it with `edgekit cache save`")
    return PromptCache(model)


def broker(url: Optional[str], user: Optional[str], password: Optional[str], ca: Optional[Path],
           cert: Optional[Path], key: Optional[Path], insecure: bool):
    """The MQTT broker of the ``--mqtt*`` options, None without ``--mqtt`` (paho is imported only then)."""
    if url is None:
        return None
    try:
        from edgekit.video.mqtt import Broker
    except ModuleNotFoundError as err:
        if err.name not in ("paho", "paho.mqtt"):
            raise
        raise EdgekitError("--mqtt needs paho-mqtt", "pip install 'edgekit[video]'") from None
    return Broker.from_url(url, user, password, ca, cert, key, insecure)


def check_cache_path(cache_file: Optional[Path]) -> None:
    """A cache file that will be written: its folder must exist and be writable (checked before loading)."""
    from edgekit.files import check_writable_folder

    if cache_file is None:
        return
    if cache_file.is_dir():
        raise EdgekitError(f"{cache_file} is a folder", "give a file name, e.g. cache.npz")
    if not cache_file.parent.is_dir():
        raise EdgekitError(f"the folder of {cache_file} does not exist", f"create {cache_file.parent} first")
    check_writable_folder(cache_file.parent, "prompt cache")


def parse_duration(text: str) -> float:
    """Seconds in ``90``, ``90s``, ``10m``, ``1h`` or ``7d``."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    number, unit = (text[:-1], units[text[-1]]) if text and text[-1] in units else (text, 1)
    try:
        seconds = float(number) * unit
    except ValueError:
        seconds = -1.0
    if not 0 < seconds < float("inf"):  # also refuses nan and inf ("nan", "1e400s")
        raise EdgekitError(f"cannot read the duration {text!r}", "write it like 90s, 10m, 1h or 7d")
    return seconds


def parse_size(text: str) -> int:
    """Bytes in ``500MB``, ``2GB``, ``1.5G`` or ``4096`` (decimal units)."""
    units = {"K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}
    number = text.strip().upper().removesuffix("B")
    unit = units.get(number[-1:], 1)
    try:
        size = float(number[:-1] if unit > 1 else number) * unit
    except ValueError:
        size = -1.0
    if size <= 0:
        raise EdgekitError(f"cannot read the size {text!r}", "write it like 500MB or 2GB")
    return int(size)
