"""The machine and package versions a benchmark result was measured with."""

from __future__ import annotations

import hashlib
import os
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

CPU_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni")
PACKAGES = ("onnxruntime", "onnxruntime-genai", "llama-cpp-python", "executorch", "torchao", "torch", "transformers",
            "edgekit")
# The package whose version decides an anchor's export.
ANCHOR_EXPORTERS = {"genai": "onnxruntime-genai", "llama-q4_0": "llama-cpp-python", "llama-q4_k_m": "llama-cpp-python",
                    "et-upstream": "executorch"}


def machine_info() -> dict[str, Any]:
    """CPU model, the SIMD flags that matter for int4 kernels, cores, memory and the load right now."""
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    flags = set(fields.get("flags", "").split())
    return {"cpu": fields.get("model name", platform.processor()), "flags": {f: f in flags for f in CPU_FLAGS},
            "cores": os.cpu_count(), "usable_cores": len(os.sched_getaffinity(0)),
            "memory_bytes": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"),
            "platform": platform.platform(), "load_average_start": list(os.getloadavg())}


def versions() -> dict[str, str | None]:
    """Python and the packages whose versions decide the numbers (read from metadata: nothing is imported)."""
    found: dict[str, str | None] = {"python": platform.python_version()}
    for package in PACKAGES:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = None
    return found


def exporter_fingerprint(runtime: str) -> str:
    """What decides an export's output: for edgekit, a sha256 of its exporter's sources (so a cached
    export is redone after any exporter change); for an anchor, its package's version."""
    if runtime in ANCHOR_EXPORTERS:
        package = ANCHOR_EXPORTERS[runtime]
        return f"{package} {metadata.version(package)}"
    import edgekit.export

    digest = hashlib.sha256()
    for path in sorted(Path(edgekit.export.__path__[0]).glob("*.py")):
        digest.update(path.name.encode() + path.read_bytes())
    return f"edgekit exporter {digest.hexdigest()[:16]}"
