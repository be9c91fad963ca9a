"""The `home_assistant:` section of the daemon YAML: where Home Assistant is, the token voiced
calls it with, and how its conversation agent is asked. Left out (the default): no Home
Assistant; speech that matches no command runs the command files' fallback, if any."""

from __future__ import annotations

from urllib.parse import urlsplit

import pydantic
from pydantic import Field

from voiced.config.loader import FrozenModel
from voiced.speechkit.config import SecretSource


class HomeAssistantSettings(FrozenModel):
    # where HA's web server is, as a browser reaches it: http://homeassistant.local:8123, or
    # https://ha.example.org/ behind a proxy; the API paths are added to it
    url: str
    # a long-lived access token (HA: your profile -> Security): a file, an environment
    # variable or a systemd credential, never the token itself; never logged (fingerprints only)
    token: SecretSource
    verify_tls: bool = True
    ca_file: pydantic.FilePath | None = None  # a private CA for HA's certificate
    timeout_s: float = Field(10.0, gt=0, le=300)  # HA must have answered within this
    # the conversation agent: null = HA's own (Assist); e.g. conversation.openai_conversation.
    # The REST API does not use the agent of HA's Assist pipelines: name it here.
    agent_id: str | None = Field(None, min_length=1)
    language: str | None = Field(None, min_length=1)  # null: recognition.language (HA maps en-US to en)
    # a question within this long after HA's last answer continues its conversation (an LLM
    # agent remembers what was said); 0: every question starts afresh. HA forgets after 5 min.
    keep_conversation_s: float = Field(300.0, ge=0)
    speak: bool = True  # speak HA's answer with actions.say_command and actions.sound_command
    speak_timeout_s: float = Field(60.0, gt=0)  # to synthesize and play one answer

    @pydantic.field_validator("url")
    @classmethod
    def _base_url(cls, url: str) -> str:
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 (it raises on a port that is no number)
        except ValueError as exc:
            raise ValueError(f"not a URL: {exc}") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                "give HA's address as http://host:port or https://host (e.g. http://homeassistant.local:8123)"
            )
        if parts.username is not None or parts.password is not None:
            raise ValueError("no user or password in the URL: HA takes the token (`token:`)")
        if parts.query or parts.fragment:
            raise ValueError("no query or fragment in the URL: only HA's address (and a proxy's path)")
        return url.rstrip("/")

    @property
    def conversation_url(self) -> str:
        return self.url + "/api/conversation/process"
