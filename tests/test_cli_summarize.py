"""`edgekit summarize` end to end in subprocesses, Ctrl-C / SIGTERM included, and the Raspberry Pi
runner script + systemd unit (runtimes/pi/) with a video file standing in for the camera."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from synthetic_video import BLUE, GREEN, RED, write_video

PI = Path(__file__).resolve().parent.parent / "runtimes" / "pi"
SAMPLING = ["--temperature", "1", "--top-k", "20", "--seed", "0"]


def edgekit(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgekit", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


def timeline(out: Path) -> dict:
    """The store's runs, through `edgekit timeline export` (which also writes timeline.md)."""
    proc = edgekit("timeline", "export", str(out), cwd=out.parent)
    assert proc.returncode == 0, proc.stderr
    return json.loads((out / "timeline.json").read_text())


def segments_in(out: Path) -> int:
    """Segments committed to the store so far (read while the summarizer writes: WAL)."""
    if not (out / "timeline.db").exists():
        return 0
    db = sqlite3.connect(f"file:{out / 'timeline.db'}?mode=ro", uri=True, timeout=30)
    try:
        return db.execute("SELECT count(*) FROM segments").fetchone()[0]
    except sqlite3.OperationalError:  # the schema is not there yet
        return 0
    finally:
        db.close()


def default_sigint() -> None:
    """In the child: Ctrl-C's default action. A shell without job control (a CI script run in the background)
    starts its children with SIGINT ignored, and Python then never turns it into KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def wait_for_segments(out: Path, count: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        if segments_in(out) >= count:
            return
        time.sleep(0.05)
    raise AssertionError("no segments written")


@pytest.fixture(scope="module")
def long_video(tmp_path_factory):
    """60 s of moving shapes: long enough that a run is still going when it is interrupted."""
    return write_video(tmp_path_factory.mktemp("video") / "long.avi", [(RED, 20.0), (BLUE, 20.0), (GREEN, 20.0)])


def test_summarize_live_prints_captions_and_writes_the_timeline(int4_bundle, tmp_path):
    """Each caption is one --live line and one Markdown row, whatever tokens the random model samples
    (issue 18.9: a sampled newline once split a caption over two lines)."""
    video = write_video(tmp_path / "v.avi", [(RED, 2.0), (BLUE, 2.0)])
    proc = edgekit("summarize", str(int4_bundle), str(video), "-o", "out", "--segment", "2s", "--live",
                   "--camera", "porch", *SAMPLING, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "frame statistics" not in proc.stderr  # this bundle has a vision tower: the model sees the frames
    (run,) = timeline(tmp_path / "out")["runs"]
    assert "vision tower" in run["captioner"] and run["camera"] == "porch"
    assert len(run["segments"]) == 2 and run["stop"]["reason"] == "end" and run["summary"]
    captions = [s["caption"] for s in run["segments"]]
    assert all("\n" not in c for c in captions)
    assert proc.stdout.splitlines() == [f"[00:00:00.0-00:00:02.0] {captions[0]}", f"[00:00:02.0-00:00:03.9] {captions[1]}",
                                        f"summary [00:00:00.0-00:00:03.9]: {run['summary']}"]
    rows = [line for line in (tmp_path / "out" / "timeline.md").read_text().splitlines() if line.startswith("| 00:")]
    assert len(rows) == 2


def test_low_memory_writes_the_same_timeline(int4_bundle, tmp_path):
    """--low-memory rebuilds the tower for every segment instead of keeping it; nothing the run writes changes."""
    video = write_video(tmp_path / "v.avi", [(RED, 2.0), (BLUE, 2.0)])
    for name, extra in (("kept", []), ("low", ["--low-memory"])):
        proc = edgekit("summarize", str(int4_bundle), str(video), "-o", name, "--segment", "2s", *SAMPLING, *extra,
                       cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
    kept, low = (timeline(tmp_path / name)["runs"][0] for name in ("kept", "low"))
    assert [s["caption"] for s in low["segments"]] == [s["caption"] for s in kept["segments"]]
    assert len(low["segments"]) == 2 and low["summary"] == kept["summary"]

def test_summarize_errors_are_one_line(int4_bundle, tmp_path):
    video = write_video(tmp_path / "v.avi", [(RED, 1.0)])
    assert edgekit("summarize", str(int4_bundle), str(video), "-o", "out", cwd=tmp_path).returncode == 0
    cases = [
        (["-o", "out"], 2, "out already holds a timeline. pass --append"),
        (["-o", "o2", "--segment", "soon"], 2, "cannot read the duration 'soon'"),
        (["-o", "o2", "--fps", "0"], 2, "pass --fps above 0"),
    ]
    for extra, code, message in cases:
        proc = edgekit("summarize", str(int4_bundle), str(video), *extra, cwd=tmp_path)
        assert proc.returncode == code and message in proc.stderr, proc.stderr
        assert proc.stderr.strip().count("\n") == 0 and "Traceback" not in proc.stderr
    proc = edgekit("summarize", str(int4_bundle), "missing.mp4", "-o", "o3", cwd=tmp_path)
    assert proc.returncode == 2 and "error: no video, image folder or camera at 'missing.mp4'" in proc.stderr
    # issue 18.6: a file that exists but cannot be opened fails the same way as a missing one: nothing
    # written, so the retry on the right file is not refused
    (tmp_path / "empty.mp4").write_bytes(b"")
    proc = edgekit("summarize", str(int4_bundle), "empty.mp4", "-o", "o3", cwd=tmp_path)
    assert proc.returncode == 2 and "error: cannot open the video empty.mp4" in proc.stderr, proc.stderr
    assert not (tmp_path / "o3").exists()
    assert edgekit("summarize", str(int4_bundle), str(video), "-o", "o3", cwd=tmp_path).returncode == 0
    # a camera that is not there: exit 3 (the runner retries that), the timeline records the run
    proc = edgekit("summarize", str(int4_bundle), "9", "-o", "cam", "--reconnect", "0", cwd=tmp_path)
    assert proc.returncode == 3 and proc.stderr.splitlines()[-1] == (
        "error: camera 9 could not be opened. check the camera cable / stream address; the timeline so far is kept")
    assert timeline(tmp_path / "cam")["runs"][0]["stop"]["reason"] == "disconnected"


def test_ctrl_c_writes_what_exists(int4_bundle, long_video, tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "edgekit", "summarize", str(int4_bundle), str(long_video),
                             "-o", "out", "--segment", "1s", *SAMPLING], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=default_sigint)
    wait_for_segments(tmp_path / "out", 2, proc)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "interrupted: stopped by Ctrl-C" in stderr and "Traceback" not in stderr
    (run,) = timeline(tmp_path / "out")["runs"]
    assert run["stop"]["reason"] == "interrupted" and 2 <= len(run["segments"]) < 60
    assert run["summary"] and stdout.strip() == run["summary"].strip()  # the summary of what was captioned
    for segment in run["segments"]:
        assert all((tmp_path / "out" / name).is_file() for name in segment["thumbnails"])


def test_kill_9_loses_at_most_the_segment_being_written(int4_bundle, long_video, tmp_path):
    """A SIGKILL mid-run (a power cut, the OOM killer): the store opens clean with every segment committed
    before the kill, the run reads as running, and the next run appends to it."""
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "edgekit", "summarize", str(int4_bundle), str(long_video),
                             "-o", "out", "--segment", "1s", "--camera", "yard", *SAMPLING], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for_segments(out, 3, proc)
    seen = segments_in(out)
    proc.kill()
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    db = sqlite3.connect(out / "timeline.db")
    assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    db.execute("INSERT INTO captions_fts(captions_fts) VALUES ('integrity-check')")  # raises if the index is off
    kept = db.execute("SELECT count(*) FROM segments").fetchone()[0]
    db.close()
    assert seen <= kept < 60  # nothing committed was lost; at most the segment in flight is missing
    (run,) = timeline(out)["runs"]
    assert run["stop"] is None and len(run["segments"]) == kept
    assert [s["index"] for s in run["segments"]] == list(range(kept))
    assert all((out / name).is_file() for s in run["segments"] for name in s["thumbnails"])
    assert "Running (or stopped without a trace" in (out / "timeline.md").read_text()
    video = write_video(tmp_path / "v.avi", [(RED, 1.0)])
    assert edgekit("summarize", str(int4_bundle), str(video), "-o", "out", "--append", "--camera", "yard",
                   cwd=tmp_path).returncode == 0
    assert [r["run"] for r in timeline(out)["runs"]] == [1, 2]


def runner(tmp_path: Path, bundle: Path, source: str, **env: str) -> subprocess.Popen:
    environment = {**os.environ, "EDGEKIT_BUNDLE": str(bundle), "EDGEKIT_SOURCE": source,
                   "EDGEKIT_OUT": str(tmp_path / "out"), "EDGEKIT_PYTHON": sys.executable, "EDGEKIT_FPS": "2",
                   "EDGEKIT_SEGMENT": "1s", "EDGEKIT_THREADS": "1", "EDGEKIT_RESTART_DELAY": "0", **env}
    return subprocess.Popen([str(PI / "run-summarizer.sh")], cwd=tmp_path, env=environment,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_pi_runner_ends_when_the_source_ends(int4_bundle, tmp_path):
    video = write_video(tmp_path / "v.avi", [(RED, 1.0), (BLUE, 1.0)])
    proc = runner(tmp_path, int4_bundle, str(video), EDGEKIT_CAMERA="Pi Porch", EDGEKIT_MAX_STORE="1GB")
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0 and "edgekit-summarizer: the source ended" in stderr, stderr
    assert stdout.count("] ") >= 2  # --live captions, for the journal
    (run,) = timeline(tmp_path / "out")["runs"]
    assert run["stop"]["reason"] == "end" and run["camera"] == "pi_porch"


def test_pi_runner_passes_store_and_mqtt_settings(tmp_path):
    """Wrong store or MQTT settings reach `edgekit summarize` (exit 2: not restarted)."""
    for env, message in [({"EDGEKIT_KEEP": "a week"}, "cannot read the duration 'a week'"),
                         ({"EDGEKIT_MAX_STORE": "lots"}, "cannot read the size 'lots'"),
                         ({"EDGEKIT_MQTT": "http://broker"}, "cannot read the broker address 'http://broker'"),
                         ({"EDGEKIT_MQTT": "mqtts://b", "EDGEKIT_MQTT_CA": "/no/ca.pem"}, "no file at /no/ca.pem")]:
        proc = runner(tmp_path, tmp_path, "0", **env)
        _, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 2 and message in stderr and "not restarting" in stderr, stderr


def test_pi_runner_restarts_a_lost_camera_then_gives_up(int4_bundle, tmp_path):
    proc = runner(tmp_path, int4_bundle, "9", EDGEKIT_RECONNECT="0", EDGEKIT_MAX_RESTARTS="1")
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 3, stderr
    assert "exited with 3: restart 1 in 0 s" in stderr and "restart 2" not in stderr
    assert "giving up after 1 restarts (last exit 3)" in stderr
    runs = timeline(tmp_path / "out")["runs"]  # every attempt appended its run to the same timeline
    assert [r["run"] for r in runs] == [1, 2] and {r["stop"]["reason"] for r in runs} == {"disconnected"}


def test_pi_runner_does_not_restart_on_bad_settings(tmp_path):
    proc = runner(tmp_path, tmp_path / "no-bundle", "0")
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 2 and "not restarting" in stderr and "restart 1" not in stderr, stderr


def test_pi_runner_stops_cleanly_on_sigterm(int4_bundle, long_video, tmp_path):
    proc = runner(tmp_path, int4_bundle, str(long_video))
    wait_for_segments(tmp_path / "out", 1, proc)
    proc.send_signal(signal.SIGTERM)  # what systemctl stop sends
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0 and "edgekit-summarizer: stopped (summarizer exit 130)" in stderr, stderr
    (run,) = timeline(tmp_path / "out")["runs"]
    assert run["stop"]["reason"] == "interrupted" and "SIGTERM" in run["stop"]["message"]


def test_systemd_unit_is_valid(tmp_path):
    unit = (PI / "edgekit-summarizer.service").read_text()
    settings = dict(line.split("=", 1) for line in unit.splitlines() if "=" in line and not line.startswith("#"))
    assert settings["ExecStart"] == "/usr/local/bin/edgekit-summarizer"
    assert settings["Restart"] == "on-failure" and settings["KillMode"] == "mixed"
    assert settings["EnvironmentFile"] == "/etc/default/edgekit-summarizer"
    env = dict(line.split("=", 1) for line in (PI / "edgekit-summarizer.env").read_text().splitlines()
               if "=" in line and not line.startswith("#"))
    assert {"EDGEKIT_BUNDLE", "EDGEKIT_SOURCE", "EDGEKIT_OUT", "EDGEKIT_KEEP", "EDGEKIT_MQTT"} <= set(env)
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (the unit's keys were checked above)")
    # verify needs ExecStart to exist: point it at the runner script in this checkout
    copy = tmp_path / "edgekit-summarizer.service"
    copy.write_text(unit.replace("/usr/local/bin/edgekit-summarizer", str(PI / "run-summarizer.sh")))
    proc = subprocess.run([analyze, "verify", str(copy)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stderr.strip() == "", proc.stderr
