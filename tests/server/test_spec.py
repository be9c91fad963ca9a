"""The first message of a call, checked against the service's documented spec (pure)."""

from __future__ import annotations

import pytest

from voiced.proto.yandex.cloud.ai.stt.v2 import stt_service_pb2 as stt
from voiced.server.spec import SpecError, parse_spec

LANGUAGES = ["en-US"]
GRAMMARS = {"lights": "en-US"}


def config(folder_id: str = "", **spec) -> stt.RecognitionConfig:
    fields = {"language_code": "en-US", "audio_encoding": "LINEAR16_PCM", "sample_rate_hertz": 16000} | spec
    return stt.RecognitionConfig(specification=stt.RecognitionSpec(**fields), folder_id=folder_id)


def rejection(**spec) -> str:
    with pytest.raises(SpecError) as error:
        parse_spec(config(**spec), LANGUAGES, GRAMMARS)
    return str(error.value)


def test_a_full_spec_is_taken_as_given():
    spec = parse_spec(
        config(
            model="lights",
            sample_rate_hertz=8000,
            partial_results=True,
            single_utterance=True,
            raw_results=True,
            profanity_filter=True,
        ),
        LANGUAGES,
        GRAMMARS,
    )
    assert (
        spec.model,
        spec.sample_rate,
        spec.partial_results,
        spec.single_utterance,
        spec.raw_results,
        spec.profanity_filter,
    ) == ("lights", 8000, True, True, True, True)


def test_missing_fields_take_the_documented_defaults():
    spec = parse_spec(config(model="", sample_rate_hertz=0), LANGUAGES, GRAMMARS)
    assert (spec.model, spec.sample_rate, spec.partial_results, spec.raw_results) == ("general", 48000, False, False)


@pytest.mark.parametrize("model", ["general:rc", "general:deprecated"])
def test_the_service_model_variants_use_the_open_model(model):
    assert parse_spec(config(model=model), LANGUAGES, GRAMMARS).model == "general"


def test_the_default_language_is_russian_and_not_installed_here():
    details = rejection(language_code="")
    assert "ru-RU" in details and "default" in details and "installed: en-US" in details


def test_an_unknown_language_names_the_installed_ones():
    assert rejection(language_code="tr-TR") == "language_code tr-TR has no installed model; installed: en-US"


def test_an_unknown_model_lists_the_available_ones():
    details = rejection(model="nope")
    assert "'nope'" in details and "general" in details and "lights" in details


def test_a_grammar_of_another_language_is_refused():
    with pytest.raises(SpecError, match="ru-RU grammar"):
        parse_spec(config(model="lights"), ["en-US", "ru-RU"], {"lights": "ru-RU"})


@pytest.mark.parametrize(("encoding", "named"), [("MP3", "MP3"), (7, "#7")])
def test_unsupported_encodings_name_the_supported_ones(encoding, named):
    details = rejection(audio_encoding=encoding)
    assert named in details and "supported: LINEAR16_PCM" in details


def test_an_unset_encoding_is_the_documented_ogg_opus():
    spec = parse_spec(config(audio_encoding="AUDIO_ENCODING_UNSPECIFIED"), LANGUAGES, GRAMMARS)
    assert spec.encoding == "OGG_OPUS"


@pytest.mark.parametrize("rate", [44100, 22050, 1])
def test_other_sample_rates_are_refused(rate):
    assert "8000, 16000, 48000" in rejection(sample_rate_hertz=rate)


@pytest.mark.parametrize("channels", [2, -1])
def test_only_mono_is_accepted(channels):
    assert "mono" in rejection(audio_channel_count=channels)


def test_a_mono_channel_count_is_fine():
    assert parse_spec(config(audio_channel_count=1), LANGUAGES, GRAMMARS).sample_rate == 16000


def test_folder_id_longer_than_50_characters_is_refused():
    with pytest.raises(SpecError, match="at most 50"):
        parse_spec(config(folder_id="b" * 51), LANGUAGES, GRAMMARS)
    assert parse_spec(config(folder_id="b" * 50), LANGUAGES, GRAMMARS).language == "en-US"
