"""The aarch64 lane: edgekit installed in an arm64 Debian bookworm root (Python 3.11, what Raspberry Pi OS
Bookworm ships) and run under qemu-user as a Pi 4 (Cortex-A72: no dot product) and a Pi 5 (Cortex-A76).

Bundles and reference logits are made here on the x86 host; every command of a Pi user runs in the root
through the CLI, and the logits computed there are compared with the host's. `.ci/arm64/lane.sh` builds
(or reuses) the root and its venvs and runs this file; the default suite skips it without the root.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = os.environ.get("EDGEKIT_ARM64_ROOT")
pytestmark = pytest.mark.skipif(not ROOT, reason="the aarch64 lane needs its arm64 root: run .ci/arm64/lane.sh")

REPO = Path(__file__).resolve().parents[2]
CHROOT = REPO / ".ci" / "arm64" / "chroot.sh"
PROBE = Path(__file__).with_name("probe.py")
CPUS = ["cortex-a72", "cortex-a76"]  # Raspberry Pi 4, Raspberry Pi 5
STATS = r"\[(\d+) prompt tokens, (\d+) reused from the prompt cache.*context (\d+)/\d+\]"


@pytest.fixture(scope="module", params=CPUS)
def cpu(request) -> str:
    return request.param


@pytest.fixture(scope="session")
def lane(tmp_path_factory) -> Path:
    """The folder shared with the root (mounted at /lane): bundles exported here, media, results."""
    work = Path(os.environ.get("EDGEKIT_ARM64_WORK") or tmp_path_factory.mktemp("arm64"))
    for sub in ("bundles", "media", "results"):
        (work / sub).mkdir(parents=True, exist_ok=True)
    shutil.copy(PROBE, work / "probe.py")
    shutil.copytree(REPO / "runtimes" / "pi", work / "pi", dirs_exist_ok=True)
    return work


def host_edgekit(*args: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "edgekit", *args], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def export(lane: Path, name: str, *args: str) -> Path:
    out = lane / "bundles" / name
    if not (out / "manifest.json").exists():
        host_edgekit("export", "tiny-random", "-o", str(out), "--overwrite", *args)
    return out


@pytest.fixture(scope="session")
def int4(lane) -> Path:
    return export(lane, "int4", "--target", "rpi")


@pytest.fixture(scope="session")
def fp32(lane) -> Path:
    return export(lane, "fp32", "--target", "rpi", "--quant", "fp32")


@pytest.fixture(scope="session")
def media(lane) -> Path:
    """A still image and a 6 s clip with two cuts, written with the host's OpenCV."""
    cv2 = pytest.importorskip("cv2")
    sys.path.insert(0, str(REPO / "tests"))
    from synthetic_video import BLUE, GREEN, RED, frame, write_video

    folder = lane / "media"
    cv2.imwrite(str(folder / "still.png"), frame(GREEN, 20))
    write_video(folder / "clip.avi", [(RED, 2.0), (GREEN, 2.0), (BLUE, 2.0)])
    return folder


def in_root(lane: Path, cpu: str, *cmd: str, venv: str = "pi", timeout: float = 900,
            check: bool = True) -> subprocess.CompletedProcess:
    """Run CMD in the arm64 root as CPU, with /lane and the Pi venv (/venv) or the ExecuTorch one (/et)."""
    venv_dir = os.environ["EDGEKIT_ARM64_VENV" if venv == "pi" else "EDGEKIT_ARM64_ET_VENV"]
    mount = "/venv" if venv == "pi" else "/et"
    proc = subprocess.run([str(CHROOT), "--root", ROOT, "--cpu", cpu, "--bind", f"{lane}:/lane",
                           "--bind", f"{venv_dir}:{mount}", "--env", f"PATH={mount}/bin:/usr/bin:/bin",
                           "--env", "PYTHONUNBUFFERED=1", "--", "sh", "-c", 'cd /lane && exec "$@"', "sh", *cmd],
                          capture_output=True, text=True, timeout=timeout)
    if check:
        assert proc.returncode == 0, f"{' '.join(cmd)} on {cpu} exited {proc.returncode}:\n{proc.stderr[-3000:]}"
    return proc


def inner(lane: Path, path: Path) -> str:
    """``path`` (under the lane folder) as the root sees it."""
    return "/lane/" + str(path.relative_to(lane))


def record(lane: Path, name: str, result: dict) -> None:
    (lane / "results" / f"{name}.json").write_text(json.dumps(result, indent=1))


def compare(lane: Path, cpu: str, bundle: Path, name: str, venv: str = "pi") -> tuple[np.ndarray, np.ndarray]:
    """Logits of the same prompt + teacher-forced steps on x86 (here) and on the emulated CPU."""
    ref = lane / "results" / f"{name}-x86.npz"
    if not ref.exists():
        subprocess.run([sys.executable, str(PROBE), "logits", str(bundle), str(ref)], check=True)
    arm = lane / "results" / f"{name}-{cpu}.npz"
    in_root(lane, cpu, "python", "/lane/probe.py", "logits", inner(lane, bundle), inner(lane, arm), venv=venv)
    x86, aarch64 = np.load(ref), np.load(arm)
    assert np.array_equal(x86["forced"], aarch64["forced"]) and len(x86["forced"]) >= 16
    return x86["logits"], aarch64["logits"]


def agreement(lane: Path, cpu: str, name: str, x86: np.ndarray, arm: np.ndarray) -> dict:
    result = {"cpu": cpu, "positions": len(x86), "top1_agreement": float(np.mean(x86.argmax(-1) == arm.argmax(-1))),
              "max_abs_logit_diff": float(np.abs(x86 - arm).max()),
              "mean_abs_logit_diff": float(np.abs(x86 - arm).mean())}
    record(lane, f"{name}-{cpu}", result)
    return result


# --- the install -------------------------------------------------------------------------------------------

def test_install_is_what_a_pi_user_gets(lane, cpu):
    env = json.loads(in_root(lane, cpu, "python", "/lane/probe.py", "env").stdout)
    assert env["machine"] == "aarch64" and env["python"].startswith("3.11.")
    assert set(env["absent"]) == {"torch", "transformers", "tokenizers"}  # edgekit reads tokenizer.json itself
    assert ("asimddp" in env["cpu_features"]) == (cpu == "cortex-a76")
    binary = {name: tags for name, tags in env["wheel_tags"].items() if tags and not tags[0].endswith("-none-any")}
    assert {"numpy", "onnxruntime", "regex", "opencv-python-headless"} <= set(binary)
    assert all(any("aarch64" in t for t in tags) for tags in binary.values()), binary


# --- numerics against x86 ----------------------------------------------------------------------------------

def test_fp32_onnx_logits_match_x86(lane, cpu, fp32):
    x86, arm = compare(lane, cpu, fp32, "onnx-fp32")
    result = agreement(lane, cpu, "onnx-fp32", x86, arm)
    assert result["max_abs_logit_diff"] < 1e-4, result
    assert np.std(x86, axis=-1).min() > 1e-3  # real logits, not a constant row


def test_int4_onnx_agrees_with_x86(lane, cpu, int4):
    x86, arm = compare(lane, cpu, int4, "onnx-int4")
    result = agreement(lane, cpu, "onnx-int4", x86, arm)
    # MatMulNBits (accuracy level 4) quantizes activations to int8 with other kernels on Arm: close, not equal.
    assert result["top1_agreement"] >= 0.9 and result["max_abs_logit_diff"] < 0.1, result


# --- the CLI, as on a Pi -----------------------------------------------------------------------------------

def test_info_and_verify(lane, cpu, int4):
    b = inner(lane, int4)
    info = in_root(lane, cpu, "edgekit", "info", b)
    assert "onnx" in info.stdout and "int4" in info.stdout, info.stdout
    verify = in_root(lane, cpu, "edgekit", "verify", b)
    assert "ok" in (verify.stdout + verify.stderr).lower(), verify.stdout


def test_generate(lane, cpu, int4):
    proc = in_root(lane, cpu, "edgekit", "generate", inner(lane, int4), "-p", "Hello, how are you?", "-n", "8")
    [(prompt, reused, context)] = [tuple(map(int, s)) for s in re.findall(STATS, proc.stderr)]
    assert reused == 0 and prompt < context <= prompt + 8, proc.stderr


def test_chat_resumes_its_prompt_cache_in_a_second_process(lane, cpu, int4):
    b, cache = inner(lane, int4), f"/lane/results/chat-{cpu}.npz"
    first = in_root(lane, cpu, "sh", "-c", f"printf 'Hello there\\n\\n' | edgekit chat {b} -n 3 --cache {cache}")
    [(_, _, context)] = [tuple(map(int, s)) for s in re.findall(STATS, first.stderr)]
    second = in_root(lane, cpu, "sh", "-c",
                     f"printf 'And again\\n\\n' | edgekit chat {b} -n 3 --cache {cache} --resume")
    [(prompt, reused, _)] = [tuple(map(int, s)) for s in re.findall(STATS, second.stderr)]
    assert reused == context and prompt > reused, second.stderr


def test_saved_prefix_is_reused_by_generate(lane, cpu, int4):
    doc = lane / "media" / "doc.txt"
    doc.write_text("The lighthouse keeper counted ships every night. " * 8)
    b, cache = inner(lane, int4), f"/lane/results/doc-{cpu}.npz"
    saved = in_root(lane, cpu, "edgekit", "cache", "save", b, "-o", cache, "--system", "Be brief.",
                    "--file", inner(lane, doc))
    precomputed = int(re.search(r"(\d+) tokens precomputed", saved.stdout + saved.stderr).group(1))
    prompt = "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n" + doc.read_text() + "\n\nHow many?"
    gen = in_root(lane, cpu, "edgekit", "generate", b, "--raw", "-p", prompt, "-n", "2", "--cache", cache)
    [(_, reused, _)] = [tuple(map(int, s)) for s in re.findall(STATS, gen.stderr)]
    assert reused == precomputed, gen.stderr


def test_describe_an_image(lane, cpu, int4, media):
    proc = in_root(lane, cpu, "edgekit", "describe", inner(lane, int4), inner(lane, media / "still.png"), "-n", "4")
    assert "1 image (" in proc.stderr and "vision tokens" in proc.stderr, proc.stderr


def stored(out: Path) -> tuple[int, list[str]]:
    """Segments and final summaries in the timeline store a run in the root wrote (the same SQLite file on x86)."""
    with sqlite3.connect(out / "timeline.db") as db:
        segments = db.execute("SELECT count(*) FROM segments").fetchone()[0]
        return segments, [row[0] for row in db.execute("SELECT text FROM summaries WHERE final = 1")]


def test_summarize_a_clip(lane, cpu, int4, media):
    out = lane / "results" / f"summary-{cpu}"
    shutil.rmtree(out, ignore_errors=True)
    in_root(lane, cpu, "edgekit", "summarize", inner(lane, int4), inner(lane, media / "clip.avi"),
            "-o", inner(lane, out), "--segment", "2s", "--fps", "2")
    segments, summaries = stored(out)
    assert segments > 0 and len(summaries) == 1  # its words are whatever the random model samples (maybe none)


def test_profile(lane, cpu, int4):
    out = lane / "results" / f"profile-{cpu}"
    in_root(lane, cpu, "edgekit", "profile", inner(lane, int4), "-o", inner(lane, out), "--pp", "16", "--tg", "4",
            "--depth", "32", "--reps", "1", "--energy", "none")
    report = json.loads((out / "profile.json").read_text())
    assert report["ttft_ms"]["n"] == 1 and report["ttft_ms"]["mean"] > 0
    assert "MatMulNBits" in report["breakdown"]["ms_per_step_top_ops"]


def test_pi_runner_script_on_a_video_file(lane, cpu, int4, media):
    out = lane / "results" / f"runner-{cpu}"
    shutil.rmtree(out, ignore_errors=True)
    proc = in_root(lane, cpu, "env", f"EDGEKIT_BUNDLE={inner(lane, int4)}",
                   f"EDGEKIT_SOURCE={inner(lane, media / 'clip.avi')}", f"EDGEKIT_OUT={inner(lane, out)}",
                   "EDGEKIT_SEGMENT=2s", "EDGEKIT_FPS=2", "EDGEKIT_PYTHON=python", "bash", "/lane/pi/run-summarizer.sh")
    assert "edgekit-summarizer: the source ended" in proc.stderr, proc.stderr
    assert stored(out)[0] > 0


# --- ExecuTorch (.pte, XNNPACK's Arm kernels) --------------------------------------------------------------

@pytest.fixture(scope="session")
def pte_fp32(lane) -> Path:
    return export(lane, "pte-fp32", "--format", "executorch", "--quant", "fp32", "--target", "rpi", "--no-vision")


@pytest.fixture(scope="session")
def pte_8da4w(lane) -> Path:
    return export(lane, "pte-8da4w", "--format", "executorch", "--target", "rpi", "--no-vision")


def test_pte_fp32_logits_match_x86(lane, cpu, pte_fp32):
    x86, arm = compare(lane, cpu, pte_fp32, "pte-fp32", venv="et")
    result = agreement(lane, cpu, "pte-fp32", x86, arm)
    assert result["max_abs_logit_diff"] < 1e-4, result


def test_pte_8da4w_agrees_with_x86(lane, cpu, pte_8da4w):
    x86, arm = compare(lane, cpu, pte_8da4w, "pte-8da4w", venv="et")
    result = agreement(lane, cpu, "pte-8da4w", x86, arm)
    assert result["top1_agreement"] >= 0.9, result
