"""The `mqtt` action: one long-lived paho client that reconnects by itself.

A message is reported "published" only when the broker acknowledged it (qos 1 and 2; with
MQTT 5 the acknowledgement also says whether the broker accepted it); qos 0 has no
acknowledgement, so it is reported "sent". A topic is checked before anything is sent: a
malformed one makes the broker drop the connection, not just the message.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import threading
from typing import Any

from voiced.actions.config import MqttAction, MqttBroker
from voiced.actions.context import Match
from voiced.actions.errors import ActionError
from voiced.actions.templating import render, render_data, template_values, topic_level, topic_problem
from voiced.config.loader import ConfigError, read_text

log = logging.getLogger(__name__)


class MqttPublisher:
    """Connects on first use; paho's network loop reconnects with backoff after a drop."""

    def __init__(self, broker: MqttBroker):
        self._broker = broker
        # a broker disconnects a client when another connects with its id: one id per process
        self.client_id = broker.client_id or f"voiced-{secrets.token_hex(4)}"
        self._lock = threading.Lock()
        self._client: Any = None  # paho.mqtt.client.Client
        self._connected = threading.Event()
        self.connections = 0  # successful connects so far (a reconnect is a second one)
        self._refused: dict[int, str] = {}  # message id -> the broker's refusal (MQTT 5 reason)

    def _password(self) -> str | None:
        if self._broker.password_env:
            return os.environ.get(self._broker.password_env)
        if self._broker.password_file:
            try:
                return read_text(self._broker.password_file, "password file").strip()
            except ConfigError as exc:
                raise ActionError(f"MQTT password: {self._broker.password_file} {exc.problems[0].message}") from None
        return None

    def _on_connect(self, client, userdata, flags, reason, properties) -> None:
        if reason.is_failure:
            log.warning("MQTT connect: %s", reason)
            return
        self.connections += 1
        self._connected.set()

    def _on_publish(self, client, userdata, mid, reason, properties) -> None:
        if reason.is_failure:
            self._refused[mid] = str(reason)

    def _connect(self) -> Any:
        with self._lock:
            if self._client is not None:
                return self._client
            import paho.mqtt.client as paho  # the optional `mqtt` extra: needed only when used

            broker = self._broker
            protocol = paho.MQTTv5 if broker.protocol == "5" else paho.MQTTv311
            client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=protocol)
            if broker.username:
                client.username_pw_set(broker.username, self._password())
            if broker.tls:
                client.tls_set(ca_certs=str(broker.ca_file) if broker.ca_file else None)
            client.reconnect_delay_set(min_delay=1, max_delay=30)
            client.on_connect = self._on_connect
            client.on_disconnect = lambda c, u, flags, reason, props: self._connected.clear()
            client.on_publish = self._on_publish
            client.connect_async(broker.host, broker.port, keepalive=broker.keepalive_s)
            client.loop_start()
            self._client = client
            return client

    def publish(self, topic: str, payload: bytes, qos: int, retain: bool, timeout_s: float) -> str:
        """Publish; the detail for the event. Raises ActionError unless the broker has it."""
        if (problem := topic_problem(topic)) is not None:
            raise ActionError(f"MQTT topic {topic!r} not published: {problem}")
        client = self._connect()
        if not self._connected.wait(min(timeout_s, self._broker.connect_timeout_s)):
            raise ActionError(f"MQTT broker {self._broker.host}:{self._broker.port} not connected")
        try:
            info = client.publish(topic, payload, qos=qos, retain=retain)
            info.wait_for_publish(timeout_s)
        except (ValueError, RuntimeError) as exc:  # paho: not queued, or the connection went
            raise ActionError(f"MQTT publish to {topic!r} failed: {exc}") from None
        if not info.is_published():
            raise ActionError(f"MQTT publish to {topic!r} not acknowledged within {timeout_s:g} s")
        if (refused := self._refused.pop(info.mid, None)) is not None:
            raise ActionError(f"MQTT broker refused the message to {topic!r}: {refused}")
        return f"published to {topic}" if qos else f"sent to {topic} (qos 0: not acknowledged)"

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.disconnect()
                self._client.loop_stop()
                self._client = None


def mqtt_action(action: MqttAction, match: Match, publisher: MqttPublisher) -> str:
    values = template_values(match)
    topic = render(action.topic, values, escape=topic_level)
    if isinstance(action.payload, str):
        payload = render(action.payload, values).encode()
    else:
        payload = json.dumps(render_data(action.payload, values), ensure_ascii=False).encode()
    return publisher.publish(topic, payload, action.qos, action.retain, action.timeout_s)
