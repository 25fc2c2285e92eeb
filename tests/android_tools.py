"""What android_demo/check.sh and verify_aar.sh need on this machine (a JDK, and kotlinc/ktlint from npm
cached by android_demo/kotlin-tools.sh): the tests that run them skip with the reason when it is missing."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ANDROID_DEMO = Path(__file__).parent.parent / "android_demo"
TOOLS = Path(os.environ.get("EDGEKIT_ANDROID_TOOLS", Path.home() / ".cache" / "edgekit-android"))
KOTLINC = TOOLS / "node_modules" / "kotlin-compiler" / "bin" / "kotlinc"


def require_android_tools(*tools: tuple[str, str]) -> None:
    """Skip unless java, the given (command, what it is) tools, and kotlinc (or npm to install it) are there."""
    for tool, why in (("java", "a JDK 17 or newer"), *tools):
        if shutil.which(tool) is None:
            pytest.skip(f"android_demo needs {why}, not found on PATH")
    if not KOTLINC.parent.parent.is_dir() and shutil.which("npm") is None:
        pytest.skip("android_demo needs npm to install kotlin-compiler and ktlint")
