"""Validate the first message of a call against the service's documented spec (pure).

Missing fields take the documented defaults (ru-RU, general, OGG_OPUS, 48000 Hz), so a
client that leaves a field out gets the service's behaviour, and a clear INVALID_ARGUMENT
when that default is something this server cannot do. The audio-format and model checks
are the Wyoming front end's too (`wyoming_asr`), their messages in its clients' field names.
"""

from __future__ import annotations

from dataclasses import dataclass

from voiced import opus
from voiced.proto.yandex.cloud.ai.stt.v2 import stt_service_pb2 as stt

DEFAULT_LANGUAGE = "ru-RU"
DEFAULT_MODEL = "general"
OPEN_MODELS = ("general", "general:rc", "general:deprecated")  # all served by the open LM here
DEFAULT_SAMPLE_RATE = 48000
SAMPLE_RATES = (8000, 16000, 48000)
MAX_FOLDER_ID = 50
Encoding = stt.RecognitionSpec.AudioEncoding
SUPPORTED_ENCODINGS = ("LINEAR16_PCM", "OGG_OPUS")  # OGG_OPUS with the `opus` extra (voiced.opus)


SHOWN_CHARS = 64  # of a client's string echoed in details (they travel in a size-capped header)


def shown(value: str) -> str:
    """`value` for the details, cut to SHOWN_CHARS with its real length said."""
    return value if len(value) <= SHOWN_CHARS else f"{value[:SHOWN_CHARS]}... ({len(value)} characters)"


class SpecError(ValueError):
    """The config cannot be served; the message is the status details for the client."""


@dataclass(frozen=True)
class SessionSpec:
    language: str
    model: str  # "general" or the name of a registered grammar model
    sample_rate: int  # of LINEAR16_PCM; an Ogg Opus stream carries its own
    partial_results: bool
    single_utterance: bool
    raw_results: bool
    profanity_filter: bool
    encoding: str = "LINEAR16_PCM"  # a name in SUPPORTED_ENCODINGS


@dataclass(frozen=True)
class FieldNames:
    """What a front end calls the fields its client set, for the messages of SpecError."""

    language: str
    model: str
    sample_rate: str
    channels: str


SPEECHKIT_FIELDS = FieldNames(language="language_code", model="model", sample_rate="sample_rate_hertz",
                              channels="audio_channel_count")


def check_audio_format(sample_rate: int, channels: int, fields: FieldNames) -> None:
    """16-bit PCM at one of SAMPLE_RATES (the session resamples them to the engine's), mono."""
    if sample_rate not in SAMPLE_RATES:
        raise SpecError(f"{fields.sample_rate} {sample_rate} is not supported; use one of "
                        f"{', '.join(map(str, SAMPLE_RATES))}")
    if channels != 1:
        raise SpecError(f"{fields.channels} {channels} is not supported: audio must be mono (1)")


def check_model(model: str, language: str, languages: list[str], grammars: dict[str, str], fields: FieldNames,
                language_note: str = "") -> str:
    """The model's name as the engine knows it ("general" for every open-model alias), once
    `model` is served and `language` is installed and is the model's. `language_note` follows
    the language in a message (e.g. that it was a default)."""
    if model in OPEN_MODELS:
        model = DEFAULT_MODEL
    elif model not in grammars:
        raise SpecError(f"{fields.model} '{shown(model)}' is not available; available: "
                        f"{', '.join([*OPEN_MODELS, *grammars])}")
    if language not in languages:
        raise SpecError(f"{fields.language} {shown(language)}{language_note} has no installed model; installed: "
                        f"{', '.join(languages)}")
    if model in grammars and grammars[model] != language:
        raise SpecError(f"model {model!r} is a {grammars[model]} grammar, but {fields.language} is {shown(language)}")
    return model


def parse_spec(config: stt.RecognitionConfig, languages: list[str], grammars: dict[str, str]) -> SessionSpec:
    """`languages`: installed language codes; `grammars`: grammar model name -> its language."""
    spec = config.specification
    if len(config.folder_id) > MAX_FOLDER_ID:
        raise SpecError(f"folder_id is {len(config.folder_id)} characters long, at most {MAX_FOLDER_ID} allowed")
    encoding = spec.audio_encoding or Encoding.OGG_OPUS
    name = Encoding.Name(encoding) if encoding in Encoding.values() else f"#{encoding}"
    default = " (the default when audio_encoding is not set)" if not spec.audio_encoding else ""
    if name not in SUPPORTED_ENCODINGS:
        raise SpecError(f"audio_encoding {name}{default} is not supported by this server; "
                        f"supported: {', '.join(SUPPORTED_ENCODINGS)}")
    if name == "OGG_OPUS" and not opus.available():
        raise SpecError(f"audio_encoding OGG_OPUS{default} needs Opus support, which this server lacks "
                        "(install the 'opus' extra: pip install 'voiced[opus]'); or send LINEAR16_PCM")
    sample_rate = spec.sample_rate_hertz or DEFAULT_SAMPLE_RATE
    check_audio_format(sample_rate, spec.audio_channel_count or 1, SPEECHKIT_FIELDS)
    language = spec.language_code or DEFAULT_LANGUAGE
    note = " (the default when language_code is not set)" if not spec.language_code else ""
    model = check_model(spec.model or DEFAULT_MODEL, language, languages, grammars, SPEECHKIT_FIELDS, note)
    return SessionSpec(language=language, model=model, sample_rate=sample_rate,
                       partial_results=spec.partial_results, single_utterance=spec.single_utterance,
                       raw_results=spec.raw_results, profanity_filter=spec.profanity_filter, encoding=name)
