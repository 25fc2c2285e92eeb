"""A Hugging Face checkpoint folder to a quantized GGUF file, with llama.cpp's own tools.

    python benchmarks/gguf_export.py CHECKPOINT OUT_FOLDER Q4_0 --bf16 CACHED.gguf

llama.cpp's converter (``convert_hf_to_gguf.py``, its ``conversion/`` package and its own ``gguf-py``, which the
Qwen3.5 conversion needs: PyPI's gguf 0.19 fails) ships in the llama-cpp-python sdist, not in its wheel: the sdist
of the installed version is fetched with pip once into ``benchmarks/.cache/``. The checkpoint becomes a bf16 GGUF
(``--no-mtp``: the random checkpoint has no MTP block), cached at ``--bf16`` and shared by the quantizations, which
``llama_model_quantize`` (llama.cpp's ``llama-quantize``, through llama-cpp-python) makes. Writes
``OUT_FOLDER/model.gguf`` and ``OUT_FOLDER/steps.json`` (the time of each step; ``convert_s`` is null when the
bf16 file was cached).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from importlib import metadata
from pathlib import Path

HERE = Path(__file__).resolve().parent
FTYPES = {"Q4_0": "LLAMA_FTYPE_MOSTLY_Q4_0", "Q4_K_M": "LLAMA_FTYPE_MOSTLY_Q4_K_M"}
CONVERTER_PARTS = ("convert_hf_to_gguf.py", "conversion/", "gguf-py/")


def converter_source() -> Path:
    """The vendored llama.cpp of the installed llama-cpp-python's sdist (only the converter's files)."""
    version = metadata.version("llama-cpp-python")
    root = HERE / ".cache" / f"llama-cpp-python-{version}-converter"
    if (root / "convert_hf_to_gguf.py").is_file():
        return root
    with tempfile.TemporaryDirectory() as download:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                        f"llama-cpp-python=={version}", "-d", download], check=True)
        (sdist,) = Path(download).glob("llama_cpp_python-*.tar.gz")
        partial = root.with_name(root.name + ".partial")
        with tarfile.open(sdist) as tar:
            prefix = f"{tar.getnames()[0].split('/')[0]}/vendor/llama.cpp/"
            members = []
            for member in tar.getmembers():
                if member.name.startswith(prefix) and member.name[len(prefix):].startswith(CONVERTER_PARTS):
                    member.name = member.name[len(prefix):]
                    members.append(member)
            tar.extractall(partial, members=members, filter="data")
        os.replace(partial, root)
    return root


def convert_bf16(checkpoint: Path, out: Path) -> None:
    """``convert_hf_to_gguf.py --outtype bf16 --no-mtp`` into ``out`` (written under a partial name first)."""
    source = converter_source()
    partial = out.with_name(out.name + ".partial")
    subprocess.run([sys.executable, str(source / "convert_hf_to_gguf.py"), str(checkpoint), "--outfile",
                    str(partial), "--outtype", "bf16", "--no-mtp"], check=True)
    os.replace(partial, out)


def quantize(source: Path, out: Path, kind: str) -> None:
    """``llama_model_quantize`` with llama.cpp's default recipe for ``kind`` (as ``llama-quantize`` would)."""
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, FTYPES[kind])
    if llama_cpp.llama_model_quantize(str(source).encode(), str(out).encode(), ctypes.byref(params)) != 0:
        raise SystemExit(f"llama_model_quantize to {kind} failed")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("kind", choices=sorted(FTYPES))
    parser.add_argument("--bf16", type=Path, required=True, help="the bf16 GGUF, made once and reused")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    steps: dict[str, float | None] = {"convert_s": None}
    if not args.bf16.is_file():
        start = time.perf_counter()
        convert_bf16(args.checkpoint, args.bf16)
        steps["convert_s"] = time.perf_counter() - start
    start = time.perf_counter()
    quantize(args.bf16, args.out / "model.gguf", args.kind)
    steps["quantize_s"] = time.perf_counter() - start
    (args.out / "steps.json").write_text(json.dumps(steps))


if __name__ == "__main__":
    main()
