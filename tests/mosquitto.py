"""A real Mosquitto broker for the tests, on 127.0.0.1 and a free port, with its own config; it can be
killed (SIGKILL) and started again on the same port. Sessions persist (autosave every second), so a
subscriber with a persistent session keeps receiving across a restart."""

from __future__ import annotations

import getpass
import json
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import paho.mqtt.client as paho
import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Mosquitto:
    """``tls``: the listener speaks TLS with a certificate for 127.0.0.1 signed by a CA made for the test
    (``ca.pem``), and wants user ``edgekit`` with password ``secret``."""

    def __init__(self, folder: Path, tls: bool = False) -> None:
        self.binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(self.binary).exists():
            pytest.skip("mosquitto is not installed (apt-get install mosquitto; .ci/run installs it)")
        self.folder = folder
        self.port = free_port()
        self.tls = tls
        self.config = folder / "mosquitto.conf"
        # run as whoever runs the tests (as root, mosquitto would switch to its own user, which cannot
        # write the persistence file into the test's folder)
        config = (f"user {getpass.getuser()}\nlistener {self.port} 127.0.0.1\npersistence true\n"
                  f"persistence_location {folder}/\nautosave_interval 1\nlog_dest stderr\n")
        if tls:
            make_certificates(folder)
            (folder / "passwords").write_text("edgekit:secret\n")
            subprocess.run([shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd", "-U",
                            str(folder / "passwords")], check=True, capture_output=True)
            config += (f"cafile {folder}/ca.pem\ncertfile {folder}/server.pem\nkeyfile {folder}/server.key\n"
                       f"allow_anonymous false\npassword_file {folder}/passwords\n")
        else:
            config += "allow_anonymous true\n"
        self.config.write_text(config)
        self.proc: subprocess.Popen | None = None

    def start(self) -> Mosquitto:
        self.proc = subprocess.Popen([self.binary, "-c", str(self.config)], stdout=subprocess.DEVNULL,
                                     stderr=open(self.folder / "mosquitto.log", "ab"))
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                assert self.proc.poll() is None, (self.folder / "mosquitto.log").read_text()
                time.sleep(0.05)
        raise AssertionError("mosquitto did not start")

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(10)

    @property
    def url(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://127.0.0.1:{self.port}/test/edgekit"


def make_certificates(folder: Path) -> None:
    """A CA and a server certificate for 127.0.0.1 signed by it (openssl)."""
    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=edgekit test CA",
            "-keyout", "ca.key", "-out", "ca.pem")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", "server.key",
            "-out", "server.csr")
    (folder / "san.ext").write_text("subjectAltName = IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2",
            "-extfile", "san.ext", "-out", "server.pem")


class Subscriber:
    """Collects every message on ``pattern`` (QoS 1, persistent session) in arrival order."""

    def __init__(self, broker: Mosquitto, pattern: str, client_id: str = "test-subscriber") -> None:
        self.messages: list[tuple[str, bytes, bool]] = []
        self.subscribed = threading.Event()
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
        self.client.reconnect_delay_set(min_delay=0.1, max_delay=0.5)
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(pattern, qos=1)
        self.client.on_subscribe = lambda *args: self.subscribed.set()
        self.client.on_message = lambda c, u, m: self.messages.append((m.topic, m.payload, m.retain))
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()
        assert self.subscribed.wait(10)

    def records(self, kind: str | None = None) -> list[dict]:
        return [json.loads(payload) for name, payload, _ in self.messages
                if name.startswith("test/edgekit/") and not name.endswith("/status")
                and (kind is None or name.endswith("/" + kind))]

    def wait(self, condition, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            assert time.monotonic() < deadline, self.messages[-5:]
            time.sleep(0.05)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def first_seen(records: list[dict]) -> list[str]:
    """Record ids in order of first arrival (QoS 1 is at least once: receivers drop duplicates by id)."""
    seen: dict[str, None] = {}
    for record in records:
        seen.setdefault(record["id"], None)
    return list(seen)
