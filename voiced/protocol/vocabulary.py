"""The words of SpeechKit STT v2 that the client, the server and the daemon share, defined
once: sample rates, encodings, the documented defaults and session limits, the port, and
what a recognized word is. Pure: no protobuf, no gRPC (voiced.protocol.wire converts).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# LINEAR16_PCM rates the service takes (webrtcvad takes each of them too)
SAMPLE_RATES = (8000, 16000, 48000)
SampleRate = Literal[8000, 16000, 48000]  # the same, for settings (a Literal cannot be built from a tuple)

# RecognitionSpec.AudioEncoding, as the wire numbers them (tests/test_proto.py holds them to the stubs)
ENCODINGS = {0: "AUDIO_ENCODING_UNSPECIFIED", 1: "LINEAR16_PCM", 2: "OGG_OPUS", 3: "MP3"}
Encoding = Literal["LINEAR16_PCM", "OGG_OPUS"]  # what voiced sends and serves (MP3 is not for streaming)
STREAMED_ENCODINGS = ("LINEAR16_PCM", "OGG_OPUS")

# what the service assumes for a field left out
DEFAULT_LANGUAGE = "ru-RU"
DEFAULT_MODEL = "general"
DEFAULT_ENCODING = 2  # OGG_OPUS
DEFAULT_SAMPLE_RATE = 48000
OPEN_MODELS = ("general", "general:rc", "general:deprecated")
MAX_FOLDER_ID = 50

# a session ends past any of these (the client rolls to a new one before)
MAX_GAP_S = 5.0  # between two messages
MAX_AUDIO_S = 300.0
MAX_BYTES = 10 * 1024 * 1024

DEFAULT_PORT = 50051  # of `voiced serve` (the cloud's endpoint is stt.api.cloud.yandex.net:443)


@dataclass(frozen=True)
class Word:
    """A recognized word (WordInfo): times from the start of the session's audio."""

    word: str
    start_s: float
    end_s: float
    confidence: float
