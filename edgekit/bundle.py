"""The bundle: a folder with ``manifest.json``, the model graphs and ``tokenizer.json``.

The manifest makes a bundle self-describing: which model it came from (id and full config), the
backend and its graphs, the state the runtime must carry, the quantization, the tokenizer and chat
template, eos ids, runtime defaults, and the sha256 of every other file in the folder.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgekit.config import TextConfig
from edgekit.errors import EdgekitError
from edgekit.files import atomic_write_text, sha256_file

FORMAT = "edgekit-bundle"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"


@dataclass
class Bundle:
    """An opened bundle folder; ``open`` checks it is one, ``verify_files`` checks every checksum."""

    path: Path
    manifest: dict[str, Any]

    @classmethod
    def open(cls, path: str | Path) -> "Bundle":
        path = Path(path)
        if not path.is_dir():
            raise EdgekitError(f"bundle folder {path} does not exist", "export one with `edgekit export MODEL -o DIR`")
        manifest_path = path / MANIFEST
        if not manifest_path.is_file():
            raise EdgekitError(f"{path} has no {MANIFEST}, so it is not an edgekit bundle",
                               "export one with `edgekit export MODEL -o DIR`")
        try:
            manifest = json.loads(manifest_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise EdgekitError(f"{manifest_path} is corrupt ({err.__class__.__name__})",
                               "re-export the bundle") from None
        if manifest.get("format") != FORMAT:
            raise EdgekitError(f"{manifest_path} is not an edgekit manifest", "re-export the bundle")
        if manifest.get("format_version") != FORMAT_VERSION:
            raise EdgekitError(
                f"bundle format version {manifest.get('format_version')} is not supported "
                f"(this edgekit reads version {FORMAT_VERSION})", "re-export it with this edgekit version")
        bundle = cls(path, manifest)
        missing = [name for name in manifest.get("files", {}) if not (path / name).is_file()]
        if missing:
            raise EdgekitError(f"bundle {path} is missing {', '.join(missing)}", "re-export or re-copy the bundle")
        return bundle

    @property
    def text_config(self) -> TextConfig:
        return TextConfig.from_hf(self.manifest["source"]["config"])

    @property
    def digest(self) -> str:
        """A short id of this exact bundle (sha256 over the manifest's file checksums)."""
        files = json.dumps(self.manifest["files"], sort_keys=True).encode()
        return hashlib.sha256(files).hexdigest()[:16]

    def file(self, name: str) -> Path:
        return self.path / name

    def verify_files(self) -> list[str]:
        """Problems found (empty when every file matches its recorded size and sha256)."""
        problems = []
        for name, info in self.manifest["files"].items():
            path = self.path / name
            if path.stat().st_size != info["bytes"]:
                problems.append(f"{name}: size {path.stat().st_size} != {info['bytes']} recorded")
            elif sha256_file(path) != info["sha256"]:
                problems.append(f"{name}: sha256 does not match the manifest (file is corrupt)")
        return problems


def write_manifest(folder: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """Record size and sha256 of every file in ``folder`` and write ``manifest.json`` atomically."""
    files = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.name != MANIFEST:
            files[path.name] = {"bytes": path.stat().st_size, "sha256": sha256_file(path)}
    manifest = {"format": FORMAT, "format_version": FORMAT_VERSION, **manifest, "files": files}
    atomic_write_text(folder / MANIFEST, json.dumps(manifest, indent=2) + "\n")
    return manifest
