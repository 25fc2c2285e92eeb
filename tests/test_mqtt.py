"""MQTT out and in against a real Mosquitto broker started by the tests on 127.0.0.1: every record arrives,
in order, through a broker killed and restarted mid-run; Home Assistant discovery; a fleet collected into
one store; broker addresses and TLS options."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from paho.mqtt.publish import single
from mosquitto import Mosquitto, Subscriber, first_seen
from synthetic_video import BLUE, GREEN, RED, write_video
from test_cli_summarize import SAMPLING, edgekit, segments_in

from edgekit.errors import EdgekitError
from edgekit.video.mqtt import Broker, Publisher, discovery
from edgekit.video.store import Store
from edgekit.video.timeline import Timeline

FRAME = np.full((48, 64, 3), (0, 200, 0), np.uint8)


@pytest.fixture
def mosquitto(tmp_path):
    broker = Mosquitto(tmp_path).start()
    yield broker
    if broker.proc.poll() is None:
        broker.kill()


def test_broker_addresses_and_tls_options(tmp_path):
    b = Broker.from_url("mqtt://user:p%40ss@pi.local/home/cams")
    assert (b.host, b.port, b.prefix, b.username, b.password, b.tls) == ("pi.local", 1883, "home/cams", "user",
                                                                         "p@ss", False)
    b = Broker.from_url("mqtts://broker:8884", username="me", password="pw")
    assert (b.port, b.prefix, b.tls, b.username) == (8884, "edgekit", True, "me")
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    assert Broker.from_url("mqtt://broker", ca=ca).tls  # a CA file turns TLS on
    for url, message in [("http://broker", "cannot read the broker address"), ("mqtt://", "cannot read"),
                         ("mqtt://h:port", "port in"), ("mqtt://h/a/#", "wildcard")]:
        with pytest.raises(EdgekitError, match=message):
            Broker.from_url(url)
    with pytest.raises(EdgekitError, match="no file at"):
        Broker.from_url("mqtts://h", ca=tmp_path / "missing.pem")


def test_the_backlog_goes_out_in_order_after_the_broker_is_back(mosquitto, tmp_path):
    subscriber = Subscriber(mosquitto, "test/edgekit/#")
    timeline = Timeline(tmp_path / "out", camera="yard", outbox_prefix="test/edgekit")
    publisher = Publisher(timeline, Broker.from_url(mosquitto.url)).start()
    timeline.start_run("test", {"fps": 2.0, "size": 224, "segment_s": 1.0}, "test")
    for i in range(5):
        timeline.add_segment(i, i, i + 1, [i], [], f"segment {i}", [FRAME])
    subscriber.wait(lambda: len(subscriber.records("segment")) == 5 and publisher.pending() == 0)
    time.sleep(1.5)  # the broker saves the subscriber's session every second
    mosquitto.kill()
    for i in range(5, 15):  # the summarizer keeps writing while the broker is down
        timeline.add_segment(i, i, i + 1, [i], [], f"segment {i}", [FRAME])
    assert publisher.pending() == 10  # kept in the outbox, not lost
    mosquitto.start()
    timeline.stop("end", 15, "the source ended", {})
    assert publisher.close(timeout_s=60) == 0
    timeline.close()
    subscriber.wait(lambda: len(subscriber.records("stop")) >= 1)
    ids = first_seen(subscriber.records())
    assert ids == ["yard/1/run", *[f"yard/1/segment/{i}" for i in range(15)], "yard/1/stop"]
    assert [r["caption"] for r in subscriber.records("segment")][:5] == [f"segment {i}" for i in range(5)]
    subscriber.close()


def test_summarize_publishes_every_segment_through_a_broker_restart(int4_bundle, mosquitto, tmp_path):
    subscriber = Subscriber(mosquitto, "#")
    video = write_video(tmp_path / "v.avi", [(RED, 8.0), (BLUE, 8.0), (GREEN, 8.0)])
    proc = subprocess.Popen([sys.executable, "-m", "edgekit", "summarize", str(int4_bundle), str(video), "-o", "out",
                             "--segment", "1s", "--camera", "Front Door", "--mqtt", mosquitto.url, *SAMPLING],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out = tmp_path / "out"
    subscriber.wait(lambda: len(subscriber.records("segment")) >= 3)
    time.sleep(1.5)
    mosquitto.kill()
    seen = segments_in(out)
    deadline = time.monotonic() + 120
    while segments_in(out) < seen + 3 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    mosquitto.start()
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    assert "outbox" not in stderr  # the backlog went out before the run ended
    store = Store(out)
    expected = [s["id"] for s in store.segments()]
    assert len(expected) == 24
    subscriber.wait(lambda: len(subscriber.records("stop")) >= 1)
    segments = [i for i in first_seen(subscriber.records()) if "/segment/" in i]
    assert segments == expected == [f"front_door/1/segment/{i}" for i in range(24)]  # all of them, in order
    assert [r["caption"] for r in subscriber.records("segment")][:3] == [s["caption"] for s in store.segments()][:3]
    retained = {name: json.loads(payload) for name, payload, _ in subscriber.messages
                if name.startswith("homeassistant/")}
    assert retained == discovery("test/edgekit", "front_door")
    config = retained["homeassistant/sensor/front_door/caption/config"]
    assert config["state_topic"] == "test/edgekit/front_door/segment" and config["device"]["name"] == "edgekit front_door"
    assert retained["homeassistant/event/front_door/activity/config"]["event_types"] == ["source"]
    statuses = [payload for name, payload, _ in subscriber.messages if name == "test/edgekit/front_door/status"]
    assert statuses[0] == b"online" and statuses[-1] == b"offline"
    subscriber.close()


def test_collect_keeps_a_fleet_in_one_store(mosquitto, tmp_path):
    collector = subprocess.Popen([sys.executable, "-m", "edgekit", "timeline", "collect", "--mqtt", mosquitto.url,
                                  "-o", str(tmp_path / "fleet")], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True)
    try:
        assert collector.stderr.readline().startswith("collecting test/edgekit/+/..."), collector.communicate()
        single("test/edgekit/porch/segment", b"\xff not json", qos=1, port=mosquitto.port)  # a stranger: rejected
        for camera in ("garage", "porch"):
            timeline = Timeline(tmp_path / camera, camera=camera, outbox_prefix="test/edgekit")
            publisher = Publisher(timeline, Broker.from_url(mosquitto.url)).start()
            timeline.start_run("test", {"fps": 2.0, "size": 224, "segment_s": 1.0}, "test")
            records = [timeline.add_segment(i, i, i + 1, [i], [], f"{camera} segment {i}", [FRAME]) for i in range(3)]
            timeline.stop("end", 3, "the source ended", {})
            assert publisher.close(timeout_s=30) == 0
            timeline.close()
            again = json.dumps(records[0])  # a re-send (QoS 1 is at least once): dropped by its id
            single("test/edgekit/{camera}/segment".format(camera=camera), again, qos=1, port=mosquitto.port)
        fleet = Store(tmp_path / "fleet")
        deadline = time.monotonic() + 30
        while len(fleet.segments()) < 6 and time.monotonic() < deadline:
            time.sleep(0.05)
        collector.send_signal(signal.SIGTERM)
        _, stderr = collector.communicate(timeout=30)
    finally:
        if collector.poll() is None:  # a failed assertion above must not leave it running
            collector.kill()
    assert collector.returncode == 0 and "1 rejected" in stderr, stderr
    assert fleet.cameras() == ["garage", "porch"]
    assert [(s["camera"], s["caption"]) for s in fleet.segments(camera="porch")] == [
        ("porch", f"porch segment {i}") for i in range(3)]
    assert [s["caption"] for s in fleet.search("garage")] and len(fleet.segments()) == 6
    assert [r["stop"]["reason"] for r in fleet.document()["runs"]] == ["end", "end"]


def test_tls_with_a_private_ca_and_a_password(tmp_path):
    """mqtts:// with --mqtt-ca and a user: the records arrive; a wrong password or no CA gets nothing through."""
    broker = Mosquitto(tmp_path, tls=True).start()
    try:
        ca = tmp_path / "ca.pem"
        received = []
        reader = Broker.from_url(broker.url, username="edgekit", password="secret", ca=ca).client("test-reader")
        reader.on_connect = lambda c, u, f, rc, p: c.subscribe("test/edgekit/#", qos=1)
        reader.on_message = lambda c, u, m: m.topic.endswith("/status") or received.append(json.loads(m.payload))
        reader.connect("127.0.0.1", broker.port)
        reader.loop_start()
        for name, options, expected in [("good", {"password": "secret", "ca": ca}, 0),
                                        ("bad-password", {"password": "wrong", "ca": ca}, 3),
                                        ("no-ca", {"password": "secret"}, 3)]:
            timeline = Timeline(tmp_path / name, camera=name, outbox_prefix="test/edgekit")
            publisher = Publisher(timeline, Broker.from_url(broker.url, username="edgekit", **options)).start()
            timeline.start_run("test", {"fps": 2.0, "size": 224, "segment_s": 1.0}, "test")
            timeline.add_segment(0, 0, 1, [0], [], f"{name} caption", [FRAME])
            timeline.stop("end", 1, "the source ended", {})
            assert publisher.close(timeout_s=10 if expected == 0 else 2) == expected  # kept in the outbox
            timeline.close()
        deadline = time.monotonic() + 10
        while len(received) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [r["id"] for r in received] == ["good/1/run", "good/1/segment/0", "good/1/stop"]
        reader.disconnect()
        reader.loop_stop()
    finally:
        broker.kill()


def test_a_broker_that_is_not_there_is_one_line(tmp_path):
    proc = edgekit("timeline", "collect", "--mqtt", "mqtt://127.0.0.1:1/x", "-o", "fleet", cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.startswith("error: cannot reach the broker 127.0.0.1:1"), proc.stderr
    assert proc.stderr.count("\n") == 1 and not (tmp_path / "fleet").exists()
