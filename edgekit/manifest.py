"""``manifest.json``, typed: the one reader and writer of what a bundle holds.

A bundle describes itself: the model it came from (id and full config), the backend and its graphs,
the state the runtime must carry, the quantization, the tokenizer and chat template, eos ids, runtime
defaults, and the size and sha256 of every other file. ``Manifest.parse`` refuses, with one line naming
the field, an unknown (future) format version, an unknown backend, and any field that is missing or of
the wrong type; ``write_manifest`` writes only what ``parse`` reads back. The same cases
(``tests/vectors/manifest.json``) run through the Android app's reader (``Manifest.kt``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from edgekit.config import TextConfig
from edgekit.errors import EdgekitError
from edgekit.files import atomic_write_text, sha256_file
from edgekit.tokenizer import CHAT_TEMPLATE_ID

FORMAT = "edgekit-bundle"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
BACKENDS = ("onnx", "executorch")
_REEXPORT = "re-export the bundle with `edgekit export MODEL -o DIR`"
_NO_VISION_FIX = "re-export it from a checkpoint with a vision tower (without --no-vision)"


def malformed(where: str, what: str) -> EdgekitError:
    return EdgekitError(f"{MANIFEST} is malformed: {where} {what}", _REEXPORT)


class Fields:
    """Typed reads from one JSON object of a manifest; errors name the field (``graphs.decoder.file``)."""

    def __init__(self, data: Any, where: str) -> None:
        if not isinstance(data, dict):
            raise malformed(where, f"must be an object, not {_kind(data)}")
        self.data, self.where = data, where

    def _get(self, key: str, optional: bool) -> Any:
        if key not in self.data or self.data[key] is None:
            if optional:
                return None
            raise malformed(f"{self.where}.{key}", "is missing")
        return self.data[key]

    def _check(self, key: str, value: Any, ok: bool, want: str) -> Any:
        if not ok:
            raise malformed(f"{self.where}.{key}", f"must be {want}, not {_kind(value)} {_short(value)}")
        return value

    def str(self, key: str, optional: bool = False) -> str | None:
        value = self._get(key, optional)
        return value if value is None else self._check(key, value, isinstance(value, str), "a string")

    def int(self, key: str, optional: bool = False, minimum: int | None = None) -> int | None:
        value = self._get(key, optional)
        if value is None:
            return None
        self._check(key, value, isinstance(value, int) and not isinstance(value, bool), "an integer")
        if minimum is not None and value < minimum:
            raise malformed(f"{self.where}.{key}", f"must be at least {minimum}, not {value}")
        return value

    def number(self, key: str, optional: bool = False) -> float | None:
        value = self._get(key, optional)
        if value is None:
            return None
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return float(self._check(key, value, ok, "a number"))

    def bool(self, key: str, optional: bool = False) -> bool | None:
        value = self._get(key, optional)
        return value if value is None else self._check(key, value, isinstance(value, bool), "true or false")

    def ints(self, key: str, optional: bool = False) -> tuple[int, ...] | None:
        value = self._get(key, optional)
        if value is None:
            return None
        ok = isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        return tuple(self._check(key, value, ok, "a list of integers"))

    def strs(self, key: str, optional: bool = False) -> tuple[str, ...] | None:
        value = self._get(key, optional)
        if value is None:
            return None
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
        return tuple(self._check(key, value, ok, "a list of strings"))

    def obj(self, key: str, optional: bool = False) -> Fields | None:
        value = self._get(key, optional)
        return value if value is None else Fields(value, f"{self.where}.{key}")


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), type(value).__name__)


def _short(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _drop_none(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if v is not None}


@dataclass(frozen=True)
class FileEntry:
    """Size and sha256 of one file of the bundle."""

    bytes: int
    sha256: str


@dataclass(frozen=True)
class TokenizerSpec:
    file: str
    chat_template: str
    eos_ids: tuple[int, ...]
    pad_id: int | None = None


@dataclass(frozen=True)
class RuntimeDefaults:
    """The context budget (tokens) and the prefill chunk the runtime uses unless told otherwise."""

    max_context: int
    chunk_size: int


@dataclass(frozen=True)
class DecoderSpec:
    """``graphs.decoder``. ONNX: ``data``, ``opset``, ``deltanet``, ``kv_update`` (in_place or append);
    ExecuTorch: ``methods``, ``delegate``, ``max_tokens_per_call`` (KV is ``resident`` in the program)."""

    file: str
    kv_update: str
    logits: str = "last"
    data: str | None = None
    opset: int | None = None
    contrib_ops: bool | None = None
    deltanet: str | None = None
    methods: tuple[str, ...] | None = None
    delegate: str | None = None
    max_tokens_per_call: int | None = None

    @classmethod
    def parse(cls, f: Fields, backend: str) -> DecoderSpec:
        spec = cls(file=f.str("file"), kv_update=f.str("kv_update"), logits=f.str("logits", True) or "last",
                   data=f.str("data", True), opset=f.int("opset", True), contrib_ops=f.bool("contrib_ops", True),
                   deltanet=f.str("deltanet", True), methods=f.strs("methods", True), delegate=f.str("delegate", True),
                   max_tokens_per_call=f.int("max_tokens_per_call", True, minimum=1))
        needed = {"onnx": ("deltanet",), "executorch": ("methods", "delegate", "max_tokens_per_call")}[backend]
        for name in needed:
            if getattr(spec, name) is None:
                raise malformed(f"{f.where}.{name}", f"is missing (a {backend} decoder needs it)")
        return spec

    def to_json(self) -> dict[str, Any]:
        return _drop_none({**asdict(self), "methods": list(self.methods) if self.methods else None})


@dataclass(frozen=True)
class VisionTokens:
    """Token ids the vision prompt blocks use."""

    image: int
    video: int
    vision_start: int
    vision_end: int


@dataclass(frozen=True)
class VisionSpec:
    """``graphs.vision``: the tower (an ONNX graph, or a method of the .pte), its patch geometry, the pixel
    budgets and token ids of its prompt blocks. A .pte's tower takes one frame size (``frame_size``,
    ``grid``, ``tokens_per_pair``) and carries the Android camera's pre-tokenized ``camera_prompt``."""

    file: str
    weights: str
    patch_size: int
    temporal_patch_size: int
    merge_size: int
    head_dim: int
    rope_theta: float
    position_grid: int
    out_hidden_size: int
    image: dict[str, int]
    video: dict[str, int]
    token_ids: VisionTokens
    # ONNX
    data: str | None = None
    opset: int | None = None
    inputs: tuple[str, ...] | None = None
    outputs: tuple[str, ...] | None = None
    block_size: int | None = None
    # ExecuTorch
    method: str | None = None
    frame_size: tuple[int, int] | None = None
    grid: tuple[int, int, int] | None = None
    tokens_per_pair: int | None = None
    input: str | None = None
    output: str | None = None
    quantization: dict[str, Any] | None = None
    camera_prompt: dict[str, Any] | None = None

    @classmethod
    def parse(cls, f: Fields, backend: str) -> VisionSpec:
        image, video, ids = f.obj("image"), f.obj("video"), f.obj("token_ids")
        quantization = f.obj("quantization", True)
        camera = f.obj("camera_prompt", True)
        spec = cls(
            file=f.str("file"), weights=f.str("weights"), patch_size=f.int("patch_size", minimum=1),
            temporal_patch_size=f.int("temporal_patch_size", minimum=1), merge_size=f.int("merge_size", minimum=1),
            head_dim=f.int("head_dim", minimum=1), rope_theta=f.number("rope_theta"),
            position_grid=f.int("position_grid", minimum=1), out_hidden_size=f.int("out_hidden_size", minimum=1),
            image={k: image.int(k, minimum=1) for k in ("min_pixels", "max_pixels")},
            video={"min_pixels": video.int("min_pixels", minimum=1), "max_pixels": video.int("max_pixels", minimum=1),
                   **({"fps": video.number("fps")} if "fps" in video.data else {})},
            token_ids=VisionTokens(**{k: ids.int(k, minimum=0) for k in ("image", "video", "vision_start",
                                                                         "vision_end")}),
            data=f.str("data", True), opset=f.int("opset", True), inputs=f.strs("inputs", True),
            outputs=f.strs("outputs", True), block_size=f.int("block_size", True, minimum=1),
            method=f.str("method", True), frame_size=f.ints("frame_size", True), grid=f.ints("grid", True),
            tokens_per_pair=f.int("tokens_per_pair", True, minimum=1), input=f.str("input", True),
            output=f.str("output", True), quantization=quantization.data if quantization else None,
            camera_prompt=camera.data if camera else None)
        if backend == "onnx" and spec.inputs is None:
            raise malformed(f"{f.where}.inputs", "is missing (an ONNX tower needs it)")
        if backend == "executorch":
            spec._check_fixed_frame(f.where)
        return spec

    def _check_fixed_frame(self, where: str) -> None:
        """A .pte's tower: one square frame size, a multiple of 32, and the grid and token count it implies."""
        for name in ("method", "frame_size", "grid", "tokens_per_pair", "camera_prompt"):
            if getattr(self, name) is None:
                raise malformed(f"{where}.{name}", "is missing (a .pte's vision encoder needs it)")
        size = self.frame_size[0]
        unit = self.patch_size * self.merge_size
        if len(self.frame_size) != 2 or self.frame_size[1] != size or size <= 0 or size % unit:
            raise malformed(f"{where}.frame_size", f"must be [S, S] with S a multiple of {unit}")
        if list(self.grid) != [1, size // self.patch_size, size // self.patch_size]:
            raise malformed(f"{where}.grid", f"must be [1, {size // self.patch_size}, {size // self.patch_size}]")
        if self.tokens_per_pair != (self.grid[1] // self.merge_size) * (self.grid[2] // self.merge_size):
            raise malformed(f"{where}.tokens_per_pair", "disagrees with the grid")

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        for name in ("inputs", "outputs", "frame_size", "grid"):
            data[name] = list(data[name]) if data[name] is not None else None
        return _drop_none(data)


@dataclass(frozen=True)
class Manifest:
    """A bundle's parsed ``manifest.json`` (``data`` keeps the whole JSON, untyped parts included)."""

    backend: str
    target: str
    created_by: str
    model: str
    config: dict[str, Any]
    tokenizer: TokenizerSpec
    runtime: RuntimeDefaults
    decoder: DecoderSpec
    quantization: dict[str, Any]
    generation: dict[str, float]
    files: dict[str, FileEntry]
    required_ops: tuple[str, ...] = ()
    data: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def parse(cls, data: Any) -> Manifest:
        """Check and type a manifest's JSON; one-line ``EdgekitError`` for anything this edgekit cannot read."""
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise EdgekitError(f"this {MANIFEST} is not an edgekit manifest", _REEXPORT)
        version = data.get("format_version")
        if version != FORMAT_VERSION:
            raise EdgekitError(f"bundle format version {_short(version)} is not supported "
                               f"(this edgekit reads version {FORMAT_VERSION})", "re-export it with this edgekit version")
        f = Fields(data, "manifest")
        backend = f.str("backend")
        if backend not in BACKENDS:
            raise EdgekitError(f"unknown bundle backend {backend!r}",
                               f"this edgekit runs {' and '.join(BACKENDS)} bundles: {_REEXPORT}")
        source = f.obj("source")
        config = source.obj("config").data
        tok, runtime, graphs = f.obj("tokenizer"), f.obj("runtime"), f.obj("graphs")
        files = f.obj("files")
        entries = {}
        for name in files.data:
            entry = files.obj(name)
            entries[name] = FileEntry(entry.int("bytes", minimum=0), entry.str("sha256"))
        generation = f.obj("generation", True)
        gen = {k: generation.number(k) for k in generation.data} if generation else {}
        manifest = cls(
            backend=backend, target=f.str("target"), created_by=f.str("created_by"), model=source.str("model"),
            config=config,
            tokenizer=TokenizerSpec(tok.str("file"), tok.str("chat_template"), tok.ints("eos_ids"),
                                    tok.int("pad_id", True)),
            runtime=RuntimeDefaults(runtime.int("max_context", minimum=1), runtime.int("chunk_size", minimum=1)),
            decoder=DecoderSpec.parse(graphs.obj("decoder"), backend),
            quantization=f.obj("quantization").data, generation=gen, files=entries,
            required_ops=(f.strs("required_ops") if backend == "executorch" else f.strs("required_ops", True) or ()),
            data=data)
        f.obj("quantization").str("weights")
        state = f.obj("state")
        state.ints("deltanet_layers"), state.ints("attention_layers")
        if manifest.tokenizer.chat_template != CHAT_TEMPLATE_ID:
            raise EdgekitError(f"chat template {manifest.tokenizer.chat_template!r} is not supported (this edgekit "
                               f"renders {CHAT_TEMPLATE_ID!r})", _REEXPORT)
        for name in (manifest.decoder.file, manifest.decoder.data, manifest.tokenizer.file):
            if name is not None and name not in entries:
                raise malformed("manifest.files", f"does not list {name}")
        if "vision" in graphs.data:
            graphs.obj("vision")  # an object; its fields are checked when the tower is used (see ``vision``)
        return manifest

    @classmethod
    def read(cls, path: Path) -> Manifest:
        try:
            data = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise EdgekitError(f"{path} is corrupt ({err.__class__.__name__})", "re-export the bundle") from None
        return cls.parse(data)

    @cached_property
    def text_config(self) -> TextConfig:
        """The decoder's dimensions, from the source config; it must agree with the manifest's state spec
        (the runtimes size the state from it)."""
        try:
            cfg = TextConfig.from_hf(self.config)
        except (KeyError, TypeError, ValueError, AttributeError) as err:  # AttributeError: a null or list section
            raise malformed("source.config", f"is not a Qwen3.5 config ({type(err).__name__}: {err})") from None
        state = self.data["state"]
        for key, layers in (("deltanet_layers", cfg.deltanet_layers), ("attention_layers", cfg.attention_layers)):
            if list(state[key]) != layers:
                raise malformed(f"state.{key}", "does not match the model config")
        return cfg

    @property
    def graphs(self) -> list[str]:
        """The graphs the bundle holds: ``decoder``, and ``vision`` with a vision tower."""
        return list(self.data["graphs"])

    @property
    def has_vision(self) -> bool:
        return "vision" in self.data["graphs"]

    @cached_property
    def vision(self) -> VisionSpec:
        """``graphs.vision``, checked on first use (a bad vision entry does not stop text generation)."""
        if not self.has_vision:
            raise EdgekitError("this bundle has no vision graph", _NO_VISION_FIX)
        return VisionSpec.parse(Fields(self.data["graphs"]["vision"], "graphs.vision"), self.backend)

    @property
    def digest(self) -> str:
        """A short id of this exact bundle (sha256 over the manifest's file checksums)."""
        files = {name: {"bytes": e.bytes, "sha256": e.sha256} for name, e in self.files.items()}
        return hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()[:16]


def write_manifest(folder: Path, fields: dict[str, Any]) -> Manifest:
    """Record size and sha256 of every file in ``folder`` and write ``manifest.json`` atomically; ``fields``
    are the manifest without ``format``/``files`` (decoder and vision entries as ``DecoderSpec``/``VisionSpec``
    or plain dicts). What is written is parsed back first: a writer bug fails the export, not a later load."""
    files = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.name != MANIFEST and not path.name.startswith("."):  # not edgekit's stamp
            files[path.name] = {"bytes": path.stat().st_size, "sha256": sha256_file(path)}
    graphs = {name: spec.to_json() if hasattr(spec, "to_json") else spec for name, spec in fields["graphs"].items()}
    data = {"format": FORMAT, "format_version": FORMAT_VERSION, **fields, "graphs": graphs, "files": files}
    manifest = Manifest.parse(data)
    if manifest.has_vision:
        manifest.vision  # noqa: B018  (checks the vision entry too)
    atomic_write_text(folder / MANIFEST, json.dumps(data, indent=2) + "\n")
    return manifest
