"""The `recognition:` section: validation and the TLS decision."""

from __future__ import annotations

import pydantic
import pytest

from voiced.config.loader import ConfigError, parse_yaml, validate
from voiced.speechkit.config import RecognitionSettings


def test_yaml_section_is_validated_with_positions():
    doc = parse_yaml("endpoint: stt.api.cloud.yandex.net:443\nsample_rate: 44100\n", "voiced.yaml")
    with pytest.raises(ConfigError) as caught:
        validate(RecognitionSettings, doc)
    assert str(caught.value).startswith("voiced.yaml:2:14: sample_rate:")


def test_folder_id_longer_than_the_service_allows_is_rejected():
    with pytest.raises(pydantic.ValidationError):
        RecognitionSettings(folder_id="x" * 51)


@pytest.mark.parametrize(
    ("settings", "target", "tls"),
    [
        ({}, "127.0.0.1:50051", False),
        ({}, "stt.api.cloud.yandex.net:443", True),
        ({"tls": False}, "gateway.local:443", False),
        ({"tls": True}, "127.0.0.1:50051", True),
        ({"ca_file": "/etc/voiced/ca.pem"}, "127.0.0.1:50051", True),
    ],
)
def test_tls_follows_the_port_unless_configured(settings, target, tls):
    assert RecognitionSettings(**settings).uses_tls(target) is tls


def test_a_ca_file_with_tls_switched_off_is_a_contradiction():
    with pytest.raises(pydantic.ValidationError, match="ca_file"):
        RecognitionSettings(tls=False, ca_file="/etc/voiced/ca.pem")
