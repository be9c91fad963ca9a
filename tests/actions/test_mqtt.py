import json
import time

import pytest

from tests.conftest import Mosquitto
from voiced.actions.config import MqttAction, MqttBroker
from voiced.actions.context import Match
from voiced.actions.errors import ActionError
from voiced.actions.mqtt import MqttPublisher, mqtt_action


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
        json_action = MqttAction(
            type="mqtt", topic="home/$room/state", payload={"intent": "$intent", "level": "$brightness"}, retain=True
        )
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
        good = MqttPublisher(
            MqttBroker(
                port=broker.port,
                client_id="voiced-auth",
                username="voiced",
                password_env="TEST_MQTT_PASSWORD",
                connect_timeout_s=40,
            )
        )
        bad = MqttPublisher(
            MqttBroker(port=broker.port, client_id="voiced-bad", username="voiced", connect_timeout_s=1)
        )
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


def test_a_transcript_cannot_make_a_malformed_topic(mosquitto):
    """$raw_text is the transcript as heard: a newline in a topic makes mosquitto drop the
    connection. It is refused before sending, and $text is normalized like a slot value."""
    subscriber = mosquitto.subscribe("said/#")
    publisher = MqttPublisher(MqttBroker(port=mosquitto.port))
    try:
        heard = Match("Say", {}, "hello there", 1.0, "en", original_text="hello\nthere")
        raw = MqttAction(type="mqtt", topic="said/$raw_text", payload="x", qos=0)
        with pytest.raises(ActionError, match=r"topic 'said/hello\\nthere' not published: it contains control"):
            mqtt_action(raw, heard, publisher)
        normalized = MqttAction(type="mqtt", topic="said/$text", payload="x", qos=1)
        assert mqtt_action(normalized, heard, publisher) == "published to said/hello there"
        assert _wait_for(subscriber.messages, 1) == [("said/hello there", b"x", False)]
        assert publisher.connections == 1  # never dropped by the broker
    finally:
        publisher.close()
        subscriber.loop_stop()


def test_topics_in_the_config_are_checked():
    with pytest.raises(ValueError, match="wildcards"):
        MqttAction(type="mqtt", topic="home/#")
    with pytest.raises(ValueError, match="empty"):
        MqttAction(type="mqtt", topic="")
    assert MqttAction(type="mqtt", topic="home/$room/set").topic == "home/$room/set"


def test_published_means_the_broker_accepted_it(tmp_path):
    """qos 1 over MQTT 5: a message the broker refuses (ACL) is a failure; qos 0 is never
    acknowledged, and is reported as sent, not published."""
    broker = Mosquitto(tmp_path / "acl", acl="topic write allowed/#\ntopic read #\n")
    publisher = MqttPublisher(MqttBroker(port=broker.port))
    try:
        match = Match("X", {}, "x", 1.0, "en")
        assert (
            mqtt_action(MqttAction(type="mqtt", topic="allowed/x", qos=1), match, publisher) == "published to allowed/x"
        )
        with pytest.raises(ActionError, match="refused the message to 'forbidden/x': Not authorized"):
            mqtt_action(MqttAction(type="mqtt", topic="forbidden/x", qos=1), match, publisher)
        assert (
            mqtt_action(MqttAction(type="mqtt", topic="forbidden/x", qos=0), match, publisher)
            == "sent to forbidden/x (qos 0: not acknowledged)"
        )
    finally:
        publisher.close()
        broker.stop()


def test_two_processes_on_one_broker_do_not_take_turns(mosquitto):
    """A broker disconnects a client when another connects with the same id: each publisher
    has its own, so both stay connected."""
    first, second = (MqttPublisher(MqttBroker(port=mosquitto.port)) for _ in range(2))
    try:
        assert first.client_id != second.client_id and first.client_id.startswith("voiced-")
        action = MqttAction(type="mqtt", topic="voiced/test", payload="x", qos=1)
        match = Match("X", {}, "x", 1.0, "en")
        for publisher in (first, second, first, second):
            assert mqtt_action(action, match, publisher) == "published to voiced/test"
        assert (first.connections, second.connections) == (1, 1)
    finally:
        first.close()
        second.close()
