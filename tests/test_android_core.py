"""The Android app's plain-Kotlin core: android_demo/check.sh compiles it, runs its tests against the
shared vectors (tests/vectors), and runs ktlint and xmllint. Needs a JDK, xmllint, and npm (or the
tools already in ~/.cache/edgekit-android); skipped with the reason otherwise. ~1-2 min (kotlinc)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

CHECK = Path(__file__).parent.parent / "android_demo" / "check.sh"
TOOLS = Path(os.environ.get("EDGEKIT_ANDROID_TOOLS", Path.home() / ".cache" / "edgekit-android"))


def test_android_core_check():
    for tool, why in (("java", "a JDK 17"), ("xmllint", "xmllint (Debian libxml2-utils)")):
        if shutil.which(tool) is None:
            pytest.skip(f"android_demo/check.sh needs {why}, not found on PATH")
    if not (TOOLS / "node_modules" / "kotlin-compiler").is_dir() and shutil.which("npm") is None:
        pytest.skip("android_demo/check.sh needs npm to install kotlin-compiler and ktlint")
    result = subprocess.run(["bash", str(CHECK)], capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "check.sh: all passed" in result.stdout
    assert " passed, 0 failed" in result.stdout
