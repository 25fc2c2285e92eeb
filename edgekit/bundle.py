"""The bundle: a folder with ``manifest.json`` (``edgekit.manifest``), the model graphs and ``tokenizer.json``."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from edgekit.config import TextConfig
from edgekit.errors import EdgekitError
from edgekit.files import atomic_write_text, sha256_file
from edgekit.manifest import FORMAT, MANIFEST, Manifest

# Files whose sha256 matched, by (size, mtime_ns, inode) when they were hashed: a file that has not changed
# since is not hashed again at load. Hidden (write_manifest skips hidden files); `edgekit verify` ignores it.
STAMP = ".edgekit-verified.json"


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
        files = bundle.manifest.files
        missing = [name for name in files if not (path / name).is_file()]
        if missing:
            raise EdgekitError(f"bundle {path} is missing {', '.join(missing)}", "re-export or re-copy the bundle")
        wrong = [f"{name} ({(path / name).stat().st_size} bytes, {entry.bytes} recorded)"
                 for name, entry in files.items() if (path / name).stat().st_size != entry.bytes]
        if wrong:
            raise EdgekitError(f"bundle {path} is damaged: {', '.join(wrong)}", "re-export or re-copy the bundle")
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

    def check_files(self) -> int:
        """Refuse a corrupt bundle before it runs: hash each file that changed since it last matched.

        A file whose (size, mtime_ns, inode) is in the stamp beside the manifest matched its sha256
        then and is not read again; the others are hashed (about 1-2 s per GB) and, when they match,
        stamped (atomically; a read-only bundle is simply hashed at every load). Returns the bytes hashed.
        """
        stamp_path = self.path / STAMP
        try:
            stamp = json.loads(stamp_path.read_text())
            stamp = stamp if isinstance(stamp, dict) else {}
        except (OSError, ValueError):
            stamp = {}
        fresh, hashed = {}, 0
        for name, entry in self.manifest.files.items():
            st = (self.path / name).stat()
            key = [st.st_size, st.st_mtime_ns, st.st_ino, entry.sha256]
            if stamp.get(name) != key:
                hashed += st.st_size
                if sha256_file(self.path / name) != entry.sha256:
                    raise EdgekitError(f"bundle {self.path} is corrupt: {name} does not match its sha256",
                                       "re-export or re-copy the bundle (`edgekit verify` lists every problem)")
            fresh[name] = key
        if fresh != stamp and os.access(self.path, os.W_OK):
            try:
                atomic_write_text(stamp_path, json.dumps(fresh) + "\n")
            except EdgekitError:
                pass  # a full or read-only disk: the bundle still runs, it is hashed again next time
        return hashed

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


def is_replaceable(path: Path) -> bool:
    """Whether ``export --overwrite`` may replace ``path``: an edgekit bundle folder, or an empty folder."""
    path = Path(path)
    if not path.is_dir() or path.is_symlink():
        return False
    entries = list(path.iterdir())
    if not entries:
        return True
    try:
        manifest = json.loads((path / MANIFEST).read_text())
    except (OSError, ValueError):
        return False
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        return False
    # Only what an exporter writes: the manifest, the files it lists, and edgekit's own stamp.
    listed = manifest.get("files")
    known = (set(listed) if isinstance(listed, dict) else set()) | {MANIFEST, STAMP}
    return all(entry.name in known and entry.is_file() for entry in entries)
