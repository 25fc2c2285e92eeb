"""MQTT out and in (paho-mqtt): the timeline's records as JSON messages, Home Assistant discovery, and the
collector that keeps a fleet's records in one store.

Topics under ``PREFIX`` (from ``mqtt://HOST:PORT/PREFIX``): ``PREFIX/CAMERA/run``, ``.../segment``,
``.../summary``, ``.../event``, ``.../stop``, one JSON record per message (QoS 1; its ``id`` lets
receivers drop the duplicates an at-least-once delivery may bring), and ``PREFIX/CAMERA/status``
(``online``/``offline``, retained, the last will). Home Assistant finds a device per camera by MQTT
discovery (``homeassistant/<component>/<node_id>/<object_id>/config``): a sensor with the latest caption,
one with the latest summary, and an event entity for source events (reconnects).

The publisher sends the store's outbox oldest first, one message at a time, and deletes a row only
when the broker has acknowledged it: while the broker is down the summarizer keeps writing and the
outbox grows; when it is back the backlog goes out in order.
"""

from __future__ import annotations

import json
import sqlite3
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as paho

from edgekit.errors import EdgekitError
from edgekit.video.store import Store

if TYPE_CHECKING:  # a collector needs no OpenCV
    from edgekit.video.timeline import Timeline

KINDS = ("run", "segment", "summary", "event", "stop")
DISCOVERY = "homeassistant"


@dataclass
class Broker:
    """Where and how to connect: ``mqtt://`` (1883) or ``mqtts://`` (TLS, 8883), optional user/password,
    a CA file for a private CA, a client certificate and key, or ``insecure`` (no host name check)."""

    host: str
    port: int
    prefix: str = "edgekit"
    username: str | None = None
    password: str | None = None
    tls: bool = False
    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None
    insecure: bool = False

    @classmethod
    def from_url(cls, url: str, username: str | None = None, password: str | None = None, ca: Path | None = None,
                 cert: Path | None = None, key: Path | None = None, insecure: bool = False) -> Broker:
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise EdgekitError(f"cannot read the broker address {url!r}",
                               "write it like mqtt://HOST:1883/PREFIX or mqtts://HOST:8883/PREFIX")
        try:
            port = parts.port or (8883 if parts.scheme == "mqtts" else 1883)
        except ValueError:
            raise EdgekitError(f"the port in {url!r} is not a number", "write it like mqtt://HOST:1883/PREFIX") from None
        prefix = parts.path.strip("/") or "edgekit"
        if any(c in prefix for c in "#+") or "#" in url:  # urlsplit reads "#..." as a fragment
            raise EdgekitError(f"the topic prefix {prefix!r} holds an MQTT wildcard", "use letters, digits, / and -")
        tls = parts.scheme == "mqtts" or ca is not None or cert is not None
        for path in (ca, cert, key):
            if path is not None and not Path(path).is_file():
                raise EdgekitError(f"no file at {path}", "pass the PEM file of the CA, certificate or key")
        return cls(parts.hostname, port, prefix, username or (unquote(parts.username) if parts.username else None),
                   password or (unquote(parts.password) if parts.password else None), tls, ca, cert, key, insecure)

    def client(self, client_id: str, clean_session: bool = True) -> paho.Client:
        client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean_session,
                             protocol=paho.MQTTv311)
        if self.username is not None:
            client.username_pw_set(self.username, self.password)
        if self.tls:
            client.tls_set(ca_certs=str(self.ca) if self.ca else None, certfile=str(self.cert) if self.cert else None,
                           keyfile=str(self.key) if self.key else None, cert_reqs=ssl.CERT_REQUIRED)
            client.tls_insecure_set(self.insecure)
        client.reconnect_delay_set(min_delay=1, max_delay=4)  # a broker back is used within seconds
        return client


def topic(prefix: str, camera: str, kind: str) -> str:
    return f"{prefix}/{camera}/{kind}"


def discovery(prefix: str, camera: str) -> dict[str, dict[str, Any]]:
    """Home Assistant discovery configs (topic -> payload) for one camera: one device, three entities."""
    device = {"identifiers": [f"edgekit_{camera}"], "name": f"edgekit {camera}", "manufacturer": "edgekit",
              "model": "video summarizer"}
    common = {"device": device, "availability_topic": topic(prefix, camera, "status")}
    return {
        f"{DISCOVERY}/sensor/{camera}/caption/config": {
            **common, "name": "Caption", "unique_id": f"edgekit_{camera}_caption", "icon": "mdi:cctv",
            "state_topic": topic(prefix, camera, "segment"), "value_template": "{{ value_json.caption[:255] }}",
            "json_attributes_topic": topic(prefix, camera, "segment"),
            "json_attributes_template": "{{ {'wall': value_json.wall, 'start': value_json.start, "
                                        "'end': value_json.end, 'id': value_json.id} | tojson }}"},
        f"{DISCOVERY}/sensor/{camera}/summary/config": {
            **common, "name": "Summary", "unique_id": f"edgekit_{camera}_summary", "icon": "mdi:text-box",
            "state_topic": topic(prefix, camera, "summary"), "value_template": "{{ value_json.text[:255] }}"},
        f"{DISCOVERY}/event/{camera}/activity/config": {
            **common, "name": "Activity", "unique_id": f"edgekit_{camera}_activity", "event_types": ["source"],
            "state_topic": topic(prefix, camera, "event"),
            "value_template": "{{ {'event_type': 'source', 'text': value_json.text, 'wall': value_json.wall} "
                              "| tojson }}"},
    }


class Publisher:
    """Sends the outbox of ``timeline``'s store to ``broker`` from a background thread (its own SQLite
    connection, opened once the timeline has written its first record), and announces the camera to Home
    Assistant on every connect."""

    def __init__(self, timeline: Timeline, broker: Broker) -> None:
        self.broker = broker
        self.timeline = timeline
        self.camera = camera = timeline.camera
        self.store: Store | None = None
        self.status = topic(broker.prefix, camera, "status")
        self.client = broker.client(f"edgekit-{camera}-{int(time.time())}")
        self.client.will_set(self.status, "offline", qos=1, retain=True)
        self.client.on_connect = self._connected
        self.client.on_disconnect = self._disconnected
        self.connected = threading.Event()
        self.generation = 0  # connections made so far
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._drain, name="edgekit-mqtt", daemon=True)

    def start(self) -> Publisher:
        self.client.connect_async(self.broker.host, self.broker.port, keepalive=30)
        self.client.loop_start()
        self._thread.start()
        return self

    def _connected(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            return
        for name, config in discovery(self.broker.prefix, self.camera).items():
            client.publish(name, json.dumps(config), qos=1, retain=True)
        client.publish(self.status, "online", qos=1, retain=True)
        self.generation += 1
        self.connected.set()

    def _disconnected(self, client, userdata, flags, reason_code, properties) -> None:
        self.connected.clear()

    def pending(self) -> int:
        """Records the broker has not acknowledged yet (0 before the timeline's first record)."""
        store = self.store or self.timeline.store
        return store.db.execute("SELECT count(*) FROM outbox").fetchone()[0] if store else 0

    def _drain(self) -> None:
        while not self._stop.is_set():
            if not self.connected.wait(0.2):
                continue
            if self.store is None:
                if self.timeline.store is None:
                    self._stop.wait(0.1)
                    continue
                self.store = Store(self.timeline.out)
            head = self.store.outbox_head(1)
            if not head:
                self._stop.wait(0.1)
                continue
            row = head[0]
            if self._publish(row["topic"], row["payload"]):
                self.store.outbox_done(row["id"])
                self.sent += 1

    def _publish(self, name: str, payload: str) -> bool:
        """Publish once and wait for the broker's PUBACK; False (to retry) when the connection is lost and
        paho has not re-sent it within 5 s of the next connect."""
        info = self.client.publish(name, payload, qos=1)
        generation, since = self.generation, None
        while not info.is_published():
            if self._stop.is_set():
                return False
            if self.generation != generation:
                since = since or time.monotonic()
                if time.monotonic() - since > 5:
                    return False
            time.sleep(0.01)
        return True

    def close(self, timeout_s: float = 5.0) -> int:
        """Give the backlog up to ``timeout_s`` to go out (the broker may be coming back), say offline,
        disconnect; return how many records are left in the outbox for the next run."""
        deadline = time.monotonic() + timeout_s
        while self.pending() and time.monotonic() < deadline:
            time.sleep(0.05)
        self._stop.set()
        self._thread.join()
        if self.connected.is_set():
            self.client.publish(self.status, "offline", qos=1, retain=True).wait_for_publish(2)
        self.client.disconnect()
        self.client.loop_stop()
        left = self.pending()
        if self.store is not None:
            self.store.close()
        return left


class Collector:
    """Subscribes to ``PREFIX/+/<kind>`` for every kind and writes each record into one store (duplicates
    dropped by id). A persistent session (fixed ``client_id``) keeps what arrives while it is down."""

    def __init__(self, out: Path, broker: Broker, client_id: str = "edgekit-collector",
                 on_subscribed: Callable[[], None] = lambda: None) -> None:
        self.broker = broker
        self.out = out
        self.store: Store | None = None
        self.client = broker.client(client_id, clean_session=False)
        self.client.on_connect = self._connected
        self.client.on_message = self._message
        self.client.on_subscribe = lambda *args: on_subscribed()
        self.received = self.rejected = 0

    def _connected(self, client, userdata, flags, reason_code, properties) -> None:
        if not reason_code.is_failure:
            client.subscribe([(topic(self.broker.prefix, "+", kind), 1) for kind in KINDS])

    def _message(self, client, userdata, message) -> None:
        try:
            record = json.loads(message.payload)
            camera, kind = message.topic.split("/")[-2:]
            if not isinstance(record, dict) or record.get("camera") != camera or record.get("type") != kind:
                raise ValueError("topic and record disagree")
            self.store.add(record)
            self.received += 1
        except (ValueError, KeyError, TypeError, EdgekitError, sqlite3.Error):
            self.rejected += 1  # a stranger's message on our topics: skipped, counted

    def connect(self) -> None:
        """Reach the broker, then open (or create) the store: an unreachable broker leaves no folder behind."""
        try:
            self.client.connect(self.broker.host, self.broker.port, keepalive=30)
        except OSError as err:
            raise EdgekitError(f"cannot reach the broker {self.broker.host}:{self.broker.port} ({err})",
                               "check the --mqtt address and that the broker runs") from None
        self.store = Store(self.out, create=True)

    def run(self, stop: threading.Event) -> None:
        """Receive until ``stop`` is set (paho reconnects by itself when the broker drops)."""
        self.client.loop_start()
        try:
            stop.wait()
        finally:
            self.client.disconnect()
            self.client.loop_stop()
            self.store.close()
