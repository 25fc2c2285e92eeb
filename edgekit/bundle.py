"""The bundle: a folder with ``manifest.json`` (``edgekit.manifest``), the model graphs and ``tokenizer.json``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgekit.config import TextConfig
from edgekit.errors import EdgekitError
from edgekit.files import sha256_file
from edgekit.manifest import MANIFEST, Manifest


@dataclass
class Bundle:
    """An opened bundle folder; ``open`` checks it is one, ``verify_files`` checks every checksum."""

    path: Path
    manifest: Manifest

    @classmethod
    def open(cls, path: str | Path) -> Bundle:
        path = Path(path)
        if not path.is_dir():
            raise EdgekitError(f"bundle folder {path} does not exist", "export one with `edgekit export MODEL -o DIR`")
        manifest_path = path / MANIFEST
        if not manifest_path.is_file():
            raise EdgekitError(f"{path} has no {MANIFEST}, so it is not an edgekit bundle",
                               "export one with `edgekit export MODEL -o DIR`")
        bundle = cls(path, Manifest.read(manifest_path))
        missing = [name for name in bundle.manifest.files if not (path / name).is_file()]
        if missing:
            raise EdgekitError(f"bundle {path} is missing {', '.join(missing)}", "re-export or re-copy the bundle")
        return bundle

    @property
    def text_config(self) -> TextConfig:
        return self.manifest.text_config

    @property
    def digest(self) -> str:
        """A short id of this exact bundle (sha256 over the manifest's file checksums)."""
        return self.manifest.digest

    def file(self, name: str) -> Path:
        return self.path / name

    def verify_files(self) -> list[str]:
        """Problems found (empty when every file matches its recorded size and sha256)."""
        problems = []
        for name, entry in self.manifest.files.items():
            path = self.path / name
            if path.stat().st_size != entry.bytes:
                problems.append(f"{name}: size {path.stat().st_size} != {entry.bytes} recorded")
            elif sha256_file(path) != entry.sha256:
                problems.append(f"{name}: sha256 does not match the manifest (file is corrupt)")
        return problems
