"""Typed settings of the actions a command runs (`type:` selects the kind).

Templates (`argv` items, URL, body strings, topic, payload, say text) use `string.Template`
syntax: `$room`, `${minutes}`, plus `$intent` and `$text`. Only slot values are substituted;
nothing is evaluated, so a transcript is always data.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class _Action(_Frozen):
    timeout_s: float = Field(10.0, gt=0)


class ExecAction(_Action):
    type: Literal["exec"]
    argv: list[str] = Field(min_length=1)
    # Extra environment; VOICED_INTENT, VOICED_TEXT, VOICED_SLOT_<NAME> are always set.
    env: dict[str, str] = {}
    cwd: Path | None = None
    # Speak what the program prints on stdout (via the `actions.say` command).
    speak_output: bool = False
    max_output_bytes: int = Field(64 * 1024, gt=0)


class HttpAction(_Action):
    type: Literal["http"]
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    url: str
    headers: dict[str, str] = {}
    # Header values read from the environment / a file (secrets: never logged, never templated).
    headers_from_env: dict[str, str] = {}
    headers_from_file: dict[str, Path] = {}
    json_body: Any = Field(None, alias="json")
    verify_tls: bool = True
    ca_file: Path | None = None


class MqttAction(_Action):
    type: Literal["mqtt"]
    topic: str
    payload: Any = ""  # a string template, or a mapping/list sent as JSON (strings templated)
    qos: Literal[0, 1, 2] = 0
    retain: bool = False


class SoundAction(_Action):
    type: Literal["sound"]
    file: Path


class SayAction(_Action):
    type: Literal["say"]
    text: str


Action = Annotated[
    ExecAction | HttpAction | MqttAction | SoundAction | SayAction, Field(discriminator="type")
]


class MqttBroker(_Frozen):
    host: str = "127.0.0.1"
    port: int = 1883
    client_id: str = "voiced"
    username: str | None = None
    password_env: str | None = None  # name of the environment variable holding the password
    password_file: Path | None = None
    tls: bool = False
    ca_file: Path | None = None
    keepalive_s: int = 30
    connect_timeout_s: float = Field(5.0, gt=0)


class ActionsSettings(_Frozen):
    """The `actions:` section of the daemon YAML: how actions run, not which."""

    max_concurrent: int = Field(2, ge=1, le=16)
    mqtt: MqttBroker = MqttBroker()
    # The player gets the file as its last argument.
    sound_command: list[str] = ["aplay", "-q"]
    say_command: list[str] = ["espeak-ng", "--stdin"]  # the text arrives on stdin
