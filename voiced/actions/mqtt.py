"""The `mqtt` action: one long-lived paho client that reconnects by itself."""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from voiced.actions.config import MqttAction, MqttBroker
from voiced.actions.process import ActionError
from voiced.actions.templating import render, render_data, template_values, topic_level

if TYPE_CHECKING:
    from voiced.commands.matching import Match

log = logging.getLogger(__name__)


class MqttPublisher:
    """Connects on first use; paho's network loop reconnects with backoff after a drop."""

    def __init__(self, broker: MqttBroker):
        self._broker = broker
        self._lock = threading.Lock()
        self._client: Any = None  # paho.mqtt.client.Client
        self._connected = threading.Event()

    def _password(self) -> str | None:
        if self._broker.password_env:
            return os.environ.get(self._broker.password_env)
        if self._broker.password_file:
            return Path(self._broker.password_file).read_text(encoding="utf-8").strip()
        return None

    def _connect(self) -> Any:
        with self._lock:
            if self._client is not None:
                return self._client
            import paho.mqtt.client as paho  # the optional `mqtt` extra: needed only when used

            broker = self._broker
            client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=broker.client_id)
            if broker.username:
                client.username_pw_set(broker.username, self._password())
            if broker.tls:
                client.tls_set(ca_certs=str(broker.ca_file) if broker.ca_file else None)
            client.reconnect_delay_set(min_delay=1, max_delay=30)
            client.on_connect = lambda c, u, flags, reason, props: (
                self._connected.set() if not reason.is_failure else log.warning("MQTT connect: %s", reason))
            client.on_disconnect = lambda c, u, flags, reason, props: self._connected.clear()
            client.connect_async(broker.host, broker.port, keepalive=broker.keepalive_s)
            client.loop_start()
            self._client = client
            return client

    def publish(self, topic: str, payload: bytes, qos: int, retain: bool, timeout_s: float) -> None:
        client = self._connect()
        if not self._connected.wait(min(timeout_s, self._broker.connect_timeout_s)):
            raise ActionError(f"MQTT broker {self._broker.host}:{self._broker.port} not connected")
        info = client.publish(topic, payload, qos=qos, retain=retain)
        info.wait_for_publish(timeout_s)
        if not info.is_published():
            raise ActionError(f"MQTT publish to {topic!r} not confirmed within {timeout_s:g} s")

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
    publisher.publish(topic, payload, action.qos, action.retain, action.timeout_s)
    return f"published to {topic}"
