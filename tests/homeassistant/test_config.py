"""The `home_assistant:` section: what an address may be, and where the token comes from."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from voiced.homeassistant.config import HomeAssistantSettings

TOKEN = {"file": "/etc/voiced/ha-token"}


@pytest.mark.parametrize(
    "url, conversation_url",
    [
        ("http://homeassistant.local:8123", "http://homeassistant.local:8123/api/conversation/process"),
        ("https://ha.example.org/", "https://ha.example.org/api/conversation/process"),
        ("https://example.org/home/", "https://example.org/home/api/conversation/process"),
        ("http://[::1]:8123", "http://[::1]:8123/api/conversation/process"),
    ],
)
def test_the_api_is_under_has_address(url, conversation_url):
    assert HomeAssistantSettings(url=url, token=TOKEN).conversation_url == conversation_url


@pytest.mark.parametrize(
    "url, problem",
    [
        ("homeassistant.local:8123", "give HA's address as http://host:port"),
        ("ftp://ha", "give HA's address as http://host:port"),
        ("http://", "give HA's address as http://host:port"),
        ("http://ha:port", "not a URL"),
        ("http://user:pw@ha:8123", "no user or password in the URL"),
        ("http://ha:8123/?token=x", "no query or fragment"),
    ],
)
def test_what_is_no_address_of_ha_is_refused(url, problem):
    with pytest.raises(ValidationError, match=problem):
        HomeAssistantSettings(url=url, token=TOKEN)


def test_the_token_is_where_it_is_read_never_the_token_itself():
    with pytest.raises(ValidationError):
        HomeAssistantSettings.model_validate({"url": "http://ha:8123", "token": "eyJhbGciOi"})
    with pytest.raises(ValidationError, match="exactly one of file, env or credential"):
        HomeAssistantSettings.model_validate({"url": "http://ha:8123", "token": {"file": "/a", "env": "B"}})
    with pytest.raises(ValidationError):
        HomeAssistantSettings.model_validate({"url": "http://ha:8123", "token": TOKEN, "timeout_s": 0})
