"""Validate the first message of a call against the service's documented spec (pure).

Missing fields take the documented defaults (ru-RU, general, OGG_OPUS, 48000 Hz), so a
client that leaves a field out gets the service's behaviour, and a clear INVALID_ARGUMENT
when that default is something this server cannot do. The audio-format and model checks
are the Wyoming front end's too (`wyoming_asr`), their messages in its clients' field names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from voiced.audio import opus
from voiced.protocol.vocabulary import (
    DEFAULT_ENCODING,
    DEFAULT_LANGUAGE,
    DEFAULT_MODEL,
    DEFAULT_SAMPLE_RATE,
    ENCODINGS,
    MAX_FOLDER_ID,
    OPEN_MODELS,
    SAMPLE_RATES,
    STREAMED_ENCODINGS,
)

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
    encoding: str = "LINEAR16_PCM"  # a name in STREAMED_ENCODINGS (OGG_OPUS with the `opus` extra)


@dataclass(frozen=True)
class FieldNames:
    """What a front end calls the fields its client set, for the messages of SpecError."""

    language: str
    model: str
    sample_rate: str
    channels: str


SPEECHKIT_FIELDS = FieldNames(
    language="language_code", model="model", sample_rate="sample_rate_hertz", channels="audio_channel_count"
)


def check_audio_format(sample_rate: int, channels: int, fields: FieldNames) -> None:
    """16-bit PCM at one of SAMPLE_RATES (the session resamples them to the engine's), mono."""
    if sample_rate not in SAMPLE_RATES:
        raise SpecError(
            f"{fields.sample_rate} {sample_rate} is not supported; use one of {', '.join(map(str, SAMPLE_RATES))}"
        )
    if channels != 1:
        raise SpecError(f"{fields.channels} {channels} is not supported: audio must be mono (1)")


def check_model(
    model: str,
    language: str,
    languages: list[str],
    grammars: dict[str, str],
    fields: FieldNames,
    language_note: str = "",
) -> str:
    """The model's name as the engine knows it ("general" for every open-model alias), once
    `model` is served and `language` is installed and is the model's. `language_note` follows
    the language in a message (e.g. that it was a default)."""
    if model in OPEN_MODELS:
        model = DEFAULT_MODEL
    elif model not in grammars:
        raise SpecError(
            f"{fields.model} '{shown(model)}' is not available; available: {', '.join([*OPEN_MODELS, *grammars])}"
        )
    if model in grammars and grammars[model] == language:
        return model  # a grammar model has its own language (the Whisper engine's may have no open model)
    if language not in languages:
        raise SpecError(
            f"{fields.language} {shown(language)}{language_note} has no installed model; "
            f"installed: {', '.join(languages)}"
        )
    if model in grammars and grammars[model] != language:
        raise SpecError(f"model {model!r} is a {grammars[model]} grammar, but {fields.language} is {shown(language)}")
    return model


def served_model(
    language_code: str, model_name: str, languages: list[str], grammars: dict[str, str]
) -> tuple[str, str]:
    """(language, model) as served to a SpeechKit v2 request: the documented defaults for
    empty ones, every open model name as "general"; SpecError for what is not installed."""
    language = language_code or DEFAULT_LANGUAGE
    note = " (the default when language_code is not set)" if not language_code else ""
    return language, check_model(model_name or DEFAULT_MODEL, language, languages, grammars, SPEECHKIT_FIELDS, note)


def parse_spec(config: Any, languages: list[str], grammars: dict[str, str]) -> SessionSpec:
    """`config`: a RecognitionConfig message (read by field, so this module needs no protobuf);
    `languages`: installed language codes; `grammars`: grammar model name -> its language."""
    spec = config.specification
    if len(config.folder_id) > MAX_FOLDER_ID:
        raise SpecError(f"folder_id is {len(config.folder_id)} characters long, at most {MAX_FOLDER_ID} allowed")
    encoding = spec.audio_encoding or DEFAULT_ENCODING
    name = ENCODINGS.get(encoding, f"#{encoding}")
    default = " (the default when audio_encoding is not set)" if not spec.audio_encoding else ""
    if name not in STREAMED_ENCODINGS:
        raise SpecError(
            f"audio_encoding {name}{default} is not supported by this server; "
            f"supported: {', '.join(STREAMED_ENCODINGS)}"
        )
    if name == "OGG_OPUS" and not opus.available():
        raise SpecError(
            f"audio_encoding OGG_OPUS{default} needs Opus support, which this server lacks "
            "(install the 'opus' extra: pip install 'voiced[opus]'); or send LINEAR16_PCM"
        )
    sample_rate = spec.sample_rate_hertz or DEFAULT_SAMPLE_RATE
    check_audio_format(sample_rate, spec.audio_channel_count or 1, SPEECHKIT_FIELDS)
    language, model = served_model(spec.language_code, spec.model, languages, grammars)
    return SessionSpec(
        language=language,
        model=model,
        sample_rate=sample_rate,
        partial_results=spec.partial_results,
        single_utterance=spec.single_utterance,
        raw_results=spec.raw_results,
        profanity_filter=spec.profanity_filter,
        encoding=name,
    )
