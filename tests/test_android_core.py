"""The Android app's plain-Kotlin core and its ExecuTorch-facing code: android_demo/check.sh compiles the
core, runs its tests against the shared vectors (tests/vectors), compiles the app's ExecuTorch calls against
the ExecuTorch 1.5.1 API declarations (android_demo/executorch-api), and runs ktlint and xmllint. Needs a
JDK, xmllint, and npm (or the tools already in ~/.cache/edgekit-android); skipped with the reason
otherwise. ~2-4 min (kotlinc)."""

from __future__ import annotations

import subprocess

from android_tools import ANDROID_DEMO, require_android_tools


def test_android_core_check():
    require_android_tools(("xmllint", "xmllint (Debian libxml2-utils)"))
    result = subprocess.run(["bash", str(ANDROID_DEMO / "check.sh")], capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "check.sh: all passed" in result.stdout
    assert " passed, 0 failed" in result.stdout
    assert "against the ExecuTorch 1.5.1 declarations" in result.stdout
