"""The layering of docs/architecture.md, enforced: which folder may import which, and what an ONNX export loads.

The floors, bottom up: the core (``edgekit/*.py``), the device runtime (``runtimes/``) and the build host
(``export/``) beside it, then the apps on top (``edgekit/device``, ``edgekit/video``) and the CLI over all.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# floor -> the edgekit floors its modules may import (its own included)
ALLOWED = {
    "core": {"core"},
    "runtimes": {"core", "runtimes"},
    "export": {"core", "export"},
    "device": {"core", "runtimes", "device"},
    "video": {"core", "runtimes", "video"},
    "cli": {"core", "runtimes", "export", "device", "video", "cli"},
}
# third-party modules a floor must never import, even lazily: the core and the build host stay free of the
# device runtimes' native stacks, and the core of torch.
FORBIDDEN = {
    "core": {"onnxruntime", "cv2", "torch", "transformers", "executorch", "torchao"},
    "export": {"onnxruntime", "cv2"},
}


def floor_of_file(path: Path) -> str:
    rel = path.relative_to(ROOT)
    if rel.parts[0] in ("runtimes", "export"):
        return rel.parts[0]
    if rel == Path("edgekit/__main__.py"):
        return "cli"  # `python -m edgekit`
    if len(rel.parts) == 2:
        return "core"
    return rel.parts[1]  # edgekit/<subpackage>/...


def floor_of_module(name: str) -> str | None:
    """The floor of an imported ``edgekit...`` module, None for anything else."""
    parts = name.split(".")
    if parts[0] != "edgekit":
        return None
    if len(parts) == 1:
        return "core"
    if parts[1] in ("runtimes", "export", "device", "video", "cli"):
        return parts[1]
    return "core"


def imports(path: Path) -> list[str]:
    """Every module ``path`` imports, at module level or inside functions."""
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def sources() -> list[Path]:
    files = [*ROOT.glob("edgekit/**/*.py"), *ROOT.glob("runtimes/**/*.py"), *ROOT.glob("export/**/*.py")]
    # edgekit/__init__.py's ``load`` is the public shortcut into the runtime: the one import upwards by design.
    return [f for f in files if f != ROOT / "edgekit" / "__init__.py"]


@pytest.mark.parametrize("path", sources(), ids=lambda p: str(p.relative_to(ROOT)))
def test_each_module_imports_only_the_floors_below_it(path):
    floor = floor_of_file(path)
    wrong = [name for name in imports(path)
             if (floor_of_module(name) not in ALLOWED[floor] and floor_of_module(name) is not None)
             or name.split(".")[0] in FORBIDDEN.get(floor, ())]
    assert not wrong, f"{path.relative_to(ROOT)} ({floor}) imports {wrong}; see docs/architecture.md"


def test_the_layer_check_catches_an_upward_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from edgekit.video.timeline import clock\nimport onnxruntime\n")
    names = imports(bad)
    assert floor_of_module(names[0]) == "video" and "video" not in ALLOWED["runtimes"]
    assert names[1] in FORBIDDEN["export"]


def test_onnx_export_loads_neither_executorch_torchao_onnxruntime_nor_opencv(tmp_path):
    """`edgekit export --format onnx` imports only what it uses (torchao's import alone prints warnings)."""
    script = (
        "import json, sys\n"
        "from edgekit.cli import app\n"
        "try:\n"
        f"    app(['export', 'tiny-random', '-o', {str(tmp_path / 'b')!r}, '--format', 'onnx'])\n"
        "except SystemExit as e:\n"
        "    assert not e.code, e.code\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))\n")
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    loaded = set(json.loads(run.stdout.strip().splitlines()[-1]))
    assert not loaded & {"executorch", "torchao", "onnxruntime", "cv2"}, loaded
    assert "torchao" not in run.stderr and "_pytree" not in run.stderr, run.stderr[-2000:]
