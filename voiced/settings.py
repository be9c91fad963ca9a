"""The daemon's configuration file: one typed, immutable model composing every section.

Each part owns the model of its section; this module only puts them together, so one YAML
file configures the whole daemon and `load_settings` reports every problem as file:line:col.
With no file at all the defaults give a working daemon: microphone at 16 kHz, the embedded
local recognizer, peer-proven endpointing.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pydantic import model_validator

from voiced.actions.config import ActionsSettings
from voiced.audio.sources import AudioSettings
from voiced.commands.config import CommandsSettings
from voiced.config.loader import FrozenModel, LocatedDocument, read_yaml, validate
from voiced.homeassistant.config import HomeAssistantSettings
from voiced.listen.core import SessionEndpointing
from voiced.listen.earcons import FeedbackSettings
from voiced.ops.metrics import MetricsSettings
from voiced.ops.signals import ServiceSettings
from voiced.server.config import ServerSettings
from voiced.speechkit.config import RecognitionSettings
from voiced.textnorm import base_language
from voiced.wake.settings import WakeSettings

# the example of this checkout (config/ beside the package): the last place a config is looked for
EXAMPLE_CONFIG = Path(__file__).resolve().parent.parent / "config" / "voiced.yaml"
CONFIG_VARIABLE = "VOICED_CONFIG"


class DaemonSettings(FrozenModel):
    server: ServerSettings = ServerSettings()
    recognition: RecognitionSettings = RecognitionSettings()
    audio: AudioSettings = AudioSettings()
    endpointing: SessionEndpointing = SessionEndpointing()
    feedback: FeedbackSettings = FeedbackSettings()
    metrics: MetricsSettings = MetricsSettings()
    service: ServiceSettings = ServiceSettings()
    commands: CommandsSettings = CommandsSettings()
    actions: ActionsSettings = ActionsSettings()
    wake: WakeSettings = WakeSettings()
    home_assistant: HomeAssistantSettings | None = None  # what no command matched goes to HA

    @model_validator(mode="before")
    @classmethod
    def _say_in_the_recognition_language(cls, data: object) -> object:
        """espeak-ng speaks English unless given a voice: with `actions.say_command` left out, it
        speaks the recognition language (a number asked back in Russian is read in Russian)."""
        if not isinstance(data, Mapping):
            return data
        recognition, actions = data.get("recognition") or {}, data.get("actions") or {}
        if not isinstance(recognition, Mapping) or not isinstance(actions, Mapping) or "say_command" in actions:
            return data
        language = base_language(
            str(recognition.get("language") or RecognitionSettings.model_fields["language"].default)
        )
        if language == "en":
            return data
        espeak, *options = ActionsSettings.model_fields["say_command"].default
        return {**data, "actions": {**actions, "say_command": [espeak, "-v", language, *options]}}


@dataclass(frozen=True)
class ConfigChoice:
    path: Path | None  # None: no file anywhere, built-in defaults
    source: str  # how it was chosen, for the start-up line

    def describe(self) -> str:
        return f"{self.path} ({self.source})" if self.path else f"none ({self.source})"


def config_candidates(environ: Mapping[str, str] | None = None) -> list[tuple[Path, str]]:
    """Where a config is looked for when --config is not given, in order."""
    environ = os.environ if environ is None else environ
    user_dir = Path(environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config"))
    candidates = [
        (user_dir / "voiced" / "voiced.yaml", "user config"),
        (Path("/etc/voiced/voiced.yaml"), "system config"),
        (EXAMPLE_CONFIG, "bundled example"),
    ]
    if environ.get(CONFIG_VARIABLE):
        candidates.insert(0, (Path(environ[CONFIG_VARIABLE]), f"${CONFIG_VARIABLE}"))
    return candidates


def find_config(explicit: str | Path | None, environ: dict[str, str] | None = None) -> ConfigChoice:
    """--config, else $VOICED_CONFIG, ~/.config/voiced/voiced.yaml, /etc/voiced/voiced.yaml, the
    bundled example: the first that exists (an unreadable one is chosen, and its error shown)."""
    if explicit is not None:
        return ConfigChoice(Path(explicit), "--config")
    for path, source in config_candidates(environ):
        try:
            os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            continue
        except OSError:
            pass  # it is there but cannot be looked at: reading it reports why
        return ConfigChoice(path, source)
    return ConfigChoice(None, "no config file found: built-in defaults")


DEFAULT_COMMANDS = "commands.yaml"  # beside the config file, when `commands.files` is left out


def settings_from(doc: LocatedDocument) -> DaemonSettings:
    """Validated settings of a parsed config file; raises yamlconfig.ConfigError. Command files
    are relative to the file's directory; left out, commands.yaml there is used if it exists."""
    settings = validate(DaemonSettings, doc)
    directory = Path(doc.file).parent
    named = settings.commands.files
    if named is None:
        files = [directory / DEFAULT_COMMANDS] if (directory / DEFAULT_COMMANDS).exists() else []
    else:
        files = [file if file.is_absolute() else directory / file for file in named]
    return settings.model_copy(update={"commands": settings.commands.model_copy(update={"files": files})})


def load_settings(path: str | Path | None) -> DaemonSettings:
    """Settings from a YAML file (None = all defaults); raises yamlconfig.ConfigError."""
    return DaemonSettings() if path is None else settings_from(read_yaml(path))
