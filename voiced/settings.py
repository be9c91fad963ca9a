"""The daemon's configuration file: one typed, immutable model composing every section.

Each part owns the model of its section; this module only puts them together, so one YAML
file configures the whole daemon and `load_settings` reports every problem as file:line:col.
With no file at all the defaults give a working daemon: microphone at 16 kHz, the embedded
local recognizer, peer-proven endpointing.
"""

from __future__ import annotations

from pathlib import Path

import pydantic

from voiced.actions.config import ActionsSettings
from voiced.capture import AudioSettings
from voiced.commands.config import CommandsSettings
from voiced.endpointing import EndpointerSettings
from voiced.feedback import FeedbackSettings
from voiced.metrics import MetricsSettings
from voiced.server.config import GrammarModel, ServerSettings, WyomingSettings
from voiced.service import ServiceSettings
from voiced.speechkit.settings import RecognitionSettings
from voiced.yamlconfig import load_model


class DaemonSettings(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(frozen=True, extra="forbid")

    server: ServerSettings = ServerSettings()
    recognition: RecognitionSettings = RecognitionSettings()
    audio: AudioSettings = AudioSettings()
    endpointing: EndpointerSettings = EndpointerSettings()
    feedback: FeedbackSettings = FeedbackSettings()
    metrics: MetricsSettings = MetricsSettings()
    service: ServiceSettings = ServiceSettings()
    commands: CommandsSettings = CommandsSettings()
    actions: ActionsSettings = ActionsSettings()

    def with_sample_rate(self, sample_rate: int) -> DaemonSettings:
        """The recognizer must be told the rate the audio really has (a WAV input decides it)."""
        recognition = self.recognition.model_copy(update={"sample_rate": sample_rate})
        return self.model_copy(update={"recognition": recognition})

    def uses_command_grammar(self) -> bool:
        """Whether the embedded server should recognize with the commands' grammar: no
        endpoint, and `recognition.model` left out (or naming that grammar)."""
        recognition = self.recognition
        return recognition.endpoint is None and (
            "model" not in recognition.model_fields_set or recognition.model == self.commands.local_grammar.model)

    def with_command_grammar(self, jsgf: str) -> DaemonSettings:
        """Register `jsgf` (the commands' grammar) on the embedded server and ask for it; with
        the Whisper engine the server also needs the commands themselves (start_server's
        `command_sets`)."""
        grammar = self.commands.local_grammar
        model = GrammarModel(language=self.recognition.language, jsgf=jsgf, engine=grammar.chosen_engine(),
                             rejection_margin=grammar.rejection_margin, whisper=grammar.whisper)
        server = self.server.model_copy(update={"models": {**self.server.models, grammar.model: model}})
        recognition = self.recognition.model_copy(update={"model": grammar.model})
        return self.model_copy(update={"server": server, "recognition": recognition})

    def embedded_server(self) -> ServerSettings:
        """Settings of the local server the daemon starts when no endpoint is configured: its
        only client is this daemon's microphone, so the engine keeps adapting to that channel,
        and only the model the daemon asks for is loaded up front. It serves no Wyoming
        listener: server.wyoming is `voiced serve`'s (both may run from one config file)."""
        return self.server.model_copy(update={"keep_channel_adaptation": True, "preload": (self.recognition.model,),
                                              "wyoming": WyomingSettings()})


def load_settings(path: str | Path | None) -> DaemonSettings:
    """Settings from a YAML file (None = all defaults); raises yamlconfig.ConfigError.
    Command files named in the file are found relative to the file's directory."""
    if path is None:
        return DaemonSettings()
    settings = load_model(DaemonSettings, path)
    commands = settings.commands
    if "files" in commands.model_fields_set:
        files = [file if file.is_absolute() else Path(path).parent / file for file in commands.files]
        settings = settings.model_copy(update={"commands": commands.model_copy(update={"files": files})})
    return settings
