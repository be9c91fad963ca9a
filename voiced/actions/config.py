"""Typed settings of the actions a command runs (`type:` selects the kind).

Templates (`argv` items, URL, body strings, topic, payload, say text) use `string.Template`
syntax: `$room`, `${minutes}`, plus `$intent`, `$text` (the matched words, normalized like a
slot value) and `$raw_text` (the transcript as heard). Only these are substituted; nothing
is evaluated, so a transcript is always data.
"""

from __future__ import annotations

import string
from collections import defaultdict
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator

from voiced.actions.templating import topic_problem
from voiced.config.loader import FrozenModel

_ANY_VALUE: defaultdict[str, str] = defaultdict(lambda: "x")  # what any $name stands for when a template is checked


ACTION_TIMEOUT_S = 10.0  # an action's default bound: to run, to be played, to be spoken


class _Action(FrozenModel):
    timeout_s: float = Field(ACTION_TIMEOUT_S, gt=0)


class ExecAction(_Action):
    type: Literal["exec"]
    argv: list[str] = Field(min_length=1)
    # The program's environment is minimal (PATH, HOME, LANG, LC_*, TZ, ... of the daemon's):
    # `env` adds variables, `pass_env` names daemon variables to pass on (e.g. a token it
    # needs). VOICED_INTENT, VOICED_TEXT, VOICED_RAW_TEXT, VOICED_SLOT_<NAME> are always set.
    env: dict[str, str] = {}
    pass_env: list[str] = []
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

    @field_validator("topic")
    @classmethod
    def _valid_topic(cls, topic: str) -> str:
        # the template itself (values are escaped into one level each, and checked when sent)
        if (problem := topic_problem(string.Template(topic).safe_substitute(_ANY_VALUE))) is not None:
            raise ValueError(f"not a topic to publish to: {problem}")
        return topic


class SoundAction(_Action):
    type: Literal["sound"]
    file: Path


class SayAction(_Action):
    type: Literal["say"]
    text: str


Action = Annotated[ExecAction | HttpAction | MqttAction | SoundAction | SayAction, Field(discriminator="type")]


class MqttBroker(FrozenModel):
    host: str = "127.0.0.1"
    port: int = 1883
    # None: "voiced-" and a random suffix, new for each process. A broker disconnects a client
    # when another connects with its id, so two processes must never share one.
    client_id: str | None = None
    # 5: the broker's acknowledgement says whether it accepted a message (e.g. not authorized);
    # 3.1.1 for brokers without MQTT 5 (they acknowledge what they drop, too)
    protocol: Literal["5", "3.1.1"] = "5"
    username: str | None = None
    password_env: str | None = None  # name of the environment variable holding the password
    password_file: Path | None = None
    tls: bool = False
    ca_file: Path | None = None
    keepalive_s: int = 30
    connect_timeout_s: float = Field(5.0, gt=0)


class ActionsSettings(FrozenModel):
    """The `actions:` section of the daemon YAML: how actions run, not which."""

    max_concurrent: int = Field(2, ge=1, le=16)
    mqtt: MqttBroker = MqttBroker()
    # The player gets the file as its last argument.
    sound_command: list[str] = ["aplay", "-q"]
    # The text arrives on stdin; the command writes a WAV on stdout, which sound_command then
    # plays from stdin ("-" is its last argument), so a missing audio device is reported.
    # Left out, espeak-ng speaks the recognition language (voiced.settings).
    say_command: list[str] = ["espeak-ng", "--stdin", "--stdout"]
