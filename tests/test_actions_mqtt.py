import json
import time

import pytest

from conftest import Mosquitto
from voiced.actions.config import MqttAction, MqttBroker
from voiced.actions.mqtt import MqttPublisher, mqtt_action
from voiced.actions.process import ActionError
from voiced.commands.matching import Match


def _wait_for(messages, count, timeout=10):
    deadline = time.monotonic() + timeout
    while len(messages) < count and time.monotonic() < deadline:
        time.sleep(0.02)
    return messages


def test_publishes_templated_topic_and_payload(mosquitto):
    subscriber = mosquitto.subscribe("home/#")
    publisher = MqttPublisher(MqttBroker(port=mosquitto.port, client_id="voiced-test-1"))
    try:
        match = Match("LightOn", {"room": "kitchen", "brightness": 40}, "turn on", 1.0, "en")
        text_action = MqttAction(type="mqtt", topic="home/$room/light/set", payload="ON $brightness", qos=1)
        json_action = MqttAction(type="mqtt", topic="home/$room/state",
                                 payload={"intent": "$intent", "level": "$brightness"}, retain=True)
        assert mqtt_action(text_action, match, publisher) == "published to home/kitchen/light/set"
        mqtt_action(json_action, match, publisher)
        # a slot value cannot climb out of its topic level or add wildcards
        hostile = Match("LightOn", {"room": "../#"}, "x", 1.0, "en")
        mqtt_action(text_action, hostile, publisher)
        messages = _wait_for(subscriber.messages, 3)
        assert messages[0] == ("home/kitchen/light/set", b"ON 40", False)
        assert messages[1][0] == "home/kitchen/state"
        assert json.loads(messages[1][1]) == {"intent": "LightOn", "level": 40}
        assert messages[2][0] == "home/..__/light/set"
    finally:
        publisher.close()
        subscriber.loop_stop()


def test_authenticated_broker_and_reconnect(tmp_path, monkeypatch):
    broker = Mosquitto(tmp_path / "auth", users={"voiced": "s3cret"})
    try:
        monkeypatch.setenv("TEST_MQTT_PASSWORD", "s3cret")
        good = MqttPublisher(MqttBroker(port=broker.port, client_id="voiced-auth", username="voiced",
                                        password_env="TEST_MQTT_PASSWORD", connect_timeout_s=40))
        bad = MqttPublisher(MqttBroker(port=broker.port, client_id="voiced-bad", username="voiced",
                                       connect_timeout_s=1))
        action = MqttAction(type="mqtt", topic="t", payload="x", qos=1, timeout_s=40)
        match = Match("X", {}, "x", 1.0, "en")
        mqtt_action(action, match, good)
        with pytest.raises(ActionError, match="not connected"):
            mqtt_action(action, match, bad)
        bad.close()
        # the broker restarts on the same port: the same publisher reconnects by itself
        broker.stop()
        broker.start()
        assert mqtt_action(action, match, good) == "published to t"
        good.close()
    finally:
        broker.stop()
