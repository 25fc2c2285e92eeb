"""Running local tools (adb, ssh, vcgencmd, getprop, an energy meter) with one-line errors.

Two shapes: a ``Runner`` (argv in, stdout out, any failure raised) for tools whose output is read, and
``call`` for tools whose exit status the caller inspects (a command run on a device).
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable

from edgekit.errors import EdgekitError

Runner = Callable[[list[str]], str]
"""``argv -> stdout``; raises ``FileNotFoundError`` when the tool is missing, ``CalledProcessError`` (with
its stdout and stderr) on a non-zero exit, any other ``OSError``/``SubprocessError`` otherwise."""


def run_command(argv: list[str], timeout: float | None = 10) -> str:
    """Run ``argv`` and return its stdout (raises ``OSError`` or ``subprocess.SubprocessError``)."""
    return subprocess.run(argv, capture_output=True, text=True, check=True, timeout=timeout).stdout


def run_tool(runner: Runner, argv: list[str], fix: str) -> str:
    """``runner(argv)``, with any failure turned into a one-line ``EdgekitError``."""
    command = " ".join(argv)
    try:
        return runner(argv)
    except FileNotFoundError:
        raise EdgekitError(f"`{argv[0]}` is not installed", fix) from None
    except subprocess.CalledProcessError as err:
        detail = first_line(str(err.stderr or err.output or "")) or f"exit status {err.returncode}"
        raise EdgekitError(f"`{command}` failed: {detail}", fix) from None
    except (OSError, subprocess.SubprocessError) as err:
        raise EdgekitError(f"`{command}` failed ({err.__class__.__name__})", fix) from None


def call(argv: list[str], missing_fix: str, timeout: float | None,
         runner: Runner | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` and return it with any exit status; a missing tool or a hang is a one-line error.

    ``runner``, when given, stands in for the tool (its ``CalledProcessError`` becomes the exit status).
    """
    try:
        if runner is None:
            return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        return subprocess.CompletedProcess(argv, 0, runner(argv), "")
    except subprocess.CalledProcessError as err:
        return subprocess.CompletedProcess(argv, err.returncode, str(err.output or ""), str(err.stderr or ""))
    except FileNotFoundError:
        raise EdgekitError(f"`{argv[0]}` is not installed", missing_fix) from None
    except subprocess.TimeoutExpired:
        raise EdgekitError(f"`{' '.join(argv[:4])} ...` did not answer within {timeout:.0f} s",
                           "check the connection to the device") from None
    except (OSError, subprocess.SubprocessError) as err:
        raise EdgekitError(f"`{' '.join(argv)}` failed ({err.__class__.__name__})", missing_fix) from None


def first_line(text: str) -> str:
    """The first non-blank line of ``text`` (a tool's own error message), or ""."""
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def last_line(text: str) -> str:
    """The last non-blank line of ``text`` (a traceback's exception, an ``error: ...`` line), or ""."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""
