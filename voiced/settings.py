"""The daemon's configuration file: one typed, immutable model composing every section.

Each part owns the model of its section; this module only puts them together, so one YAML
file configures the whole daemon and `load_settings` reports every problem as file:line:col.
With no file at all the defaults give a working daemon: microphone at 16 kHz, the embedded
local recognizer, peer-proven endpointing.
"""

from __future__ import annotations

from pathlib import Path

import pydantic

from voiced.capture import AudioSettings
from voiced.endpointing import EndpointerSettings
from voiced.feedback import FeedbackSettings
from voiced.metrics import MetricsSettings
from voiced.server.config import ServerSettings
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

    def with_sample_rate(self, sample_rate: int) -> DaemonSettings:
        """The recognizer must be told the rate the audio really has (a WAV input decides it)."""
        recognition = self.recognition.model_copy(update={"sample_rate": sample_rate})
        return self.model_copy(update={"recognition": recognition})

    def embedded_server(self) -> ServerSettings:
        """Settings of the local server the daemon starts when no endpoint is configured."""
        return self.server


def load_settings(path: str | Path | None) -> DaemonSettings:
    """Settings from a YAML file (None = all defaults); raises yamlconfig.ConfigError."""
    return DaemonSettings() if path is None else load_model(DaemonSettings, path)
