"""`edgekit timeline serve` in headless Chromium: the day view renders (a screenshot at a phone's size with
the thumbnails drawn), and a search shows the matching segment and not the others."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import urllib.request
from datetime import datetime
from urllib.error import HTTPError

import numpy as np
import pytest
from mosquitto import free_port
from PIL import Image

from edgekit.video.timeline import Timeline

RED_BGR = (0, 0, 200)
WIDTH, HEIGHT = 412, 915  # a phone


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    out = tmp_path_factory.mktemp("web") / "out"
    noon = datetime.now().replace(hour=12, minute=0, second=0, microsecond=0).timestamp()
    for camera, captions, colour in [("porch", ["a red car arrives", "a man walks a dog"], RED_BGR),
                                     ("garden", ["a cat sits on the wall"], (0, 200, 0))]:
        timeline = Timeline(out, mode="append", camera=camera)
        timeline.start_run("test", {"fps": 2.0, "size": 224, "segment_s": 10.0}, "test")
        timeline.started = noon
        for i, caption in enumerate(captions):
            timeline.add_segment(i, 10.0 * i, 10.0 * i + 10, [10.0 * i], [], caption,
                                 [np.full((96, 128, 3), colour, np.uint8)])
        timeline.add_summary(0, 20, f"{camera}: {', '.join(captions)}", final=True)
        timeline.close()
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "edgekit", "timeline", "serve", str(out), "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stderr.readline().startswith(f"serving {out} on http://127.0.0.1:{port}/"), proc.communicate()
    yield out, f"http://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(30)


def chromium(tmp_path, *args):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("chromium is not installed (.ci/run installs it)")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", f"--user-data-dir={tmp_path / 'chromium'}"]
    return subprocess.run([browser, *flags, *args], capture_output=True, text=True, timeout=120)


def test_the_day_view_renders(served, tmp_path):
    out, url = served
    shot = tmp_path / "day.png"
    chromium(tmp_path, f"--window-size={WIDTH},{HEIGHT}", "--hide-scrollbars", f"--screenshot={shot}", url + "/")
    image = Image.open(shot).convert("RGB")
    assert image.size == (WIDTH, HEIGHT)
    pixels = np.asarray(image).reshape(-1, 3).astype(int)
    assert len(np.unique(pixels, axis=0)) > 50  # text, header, cards: not a blank page
    red = (np.abs(pixels - (200, 0, 0)).max(1) < 30).sum()
    green = (np.abs(pixels - (0, 200, 0)).max(1) < 30).sum()
    assert red > 1000 and green > 1000  # the porch's and the garden's thumbnails were drawn
    dom = chromium(tmp_path, "--dump-dom", url + "/").stdout
    assert "3 segments on" in dom and "porch: a red car arrives" in dom
    assert captions(dom) == ["a red car arrives", "a cat sits on the wall", "a man walks a dog"]  # by time


def test_a_search_shows_the_matching_segment(served, tmp_path):
    _, url = served
    dom = chromium(tmp_path, "--dump-dom", url + "/?q=red+car").stdout
    assert '1 segment matching “red car”' in dom and 'id="porch/1/segment/0"' in dom
    assert captions(dom) == ["a red car arrives"]
    assert "(porch): porch: a red car arrives, a man walks a dog" in dom  # the summary that matches
    one_camera = chromium(tmp_path, "--dump-dom", url + "/?camera=garden").stdout
    assert "1 segments on" in one_camera and captions(one_camera) == ["a cat sits on the wall"]


def captions(dom: str) -> list[str]:
    return re.findall(r'<div class="caption">([^<]*)</div>', dom)


def test_only_thumbnails_are_served(served):
    out, url = served
    name = next((out / "frames").iterdir()).name
    assert urllib.request.urlopen(f"{url}/frames/{name}").read()[:2] == b"\xff\xd8"  # a JPEG
    for path in ("/frames/../timeline.db", "/frames/%2e%2e/timeline.db", "/timeline.db", "/frames/missing.jpg"):
        with pytest.raises(HTTPError) as err:
            urllib.request.urlopen(url + path)
        assert err.value.code == 404


def test_a_folder_without_a_store_is_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "edgekit", "timeline", "serve", str(tmp_path)], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2 and proc.stderr.startswith(f"error: {tmp_path} holds no timeline"), proc.stderr
