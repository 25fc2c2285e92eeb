"""Run inside the aarch64 root (and on the x86 host, for the reference) by test_lane.py; only the public
``edgekit.runtimes.load`` API, so it runs in a Pi user's venv (no torch) as in the ExecuTorch one.

    probe.py env                   JSON: machine, CPU, what is importable, the wheels' platform tags
    probe.py logits BUNDLE OUT     OUT.npz: logits [1 + N, V] of a prompt prefill then N teacher-forced steps
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import platform
import sys

PROMPT = "The lighthouse keeper counted the ships that passed in the night."
CONTINUATION = " Each one carried a lantern, and he wrote its name in a book by the window, then slept."


def env() -> dict:
    tags = {}
    for dist in importlib.metadata.distributions():
        wheel = dist.read_text("WHEEL") or ""
        tags[dist.metadata["Name"].lower()] = sorted(
            line.split(":", 1)[1].strip() for line in wheel.splitlines() if line.startswith("Tag:"))
    features = next((line.split(":", 1)[1].split() for line in open("/proc/cpuinfo")
                     if line.startswith("Features")), [])
    return {"machine": platform.machine(), "python": platform.python_version(), "cpu_features": features,
            "absent": [m for m in ("torch", "transformers", "tokenizers") if importlib.util.find_spec(m) is None],
            "wheel_tags": tags}


def logits(bundle: str, out: str) -> None:
    import numpy as np

    from edgekit.runtimes import load

    model = load(bundle)
    prompt = model.tokenizer.encode(PROMPT)
    forced = model.tokenizer.encode(CONTINUATION)
    state = model.new_state()
    rows = [model.prefill(state, prompt).copy()]
    rows += [model.step(state, token).copy() for token in forced]
    np.savez(out, logits=np.stack(rows), prompt=np.array(prompt), forced=np.array(forced))


if __name__ == "__main__":
    if sys.argv[1] == "env":
        print(json.dumps(env()))
    else:
        logits(sys.argv[2], sys.argv[3])
