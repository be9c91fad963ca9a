"""Settings -> config message, and responses -> events (pure, no server needed)."""

from __future__ import annotations

import pytest
from google.protobuf.duration_pb2 import Duration

from voiced.proto.yandex.cloud.ai.stt.v2 import stt_service_pb2 as stt
from voiced.protocol.results import Final, Partial, Word
from voiced.protocol.wire import audio_request, response_events
from voiced.speechkit.client import config_request
from voiced.speechkit.config import RecognitionSettings


def test_config_request_carries_every_setting():
    settings = RecognitionSettings(
        language="ru-RU",
        model="commands",
        partial_results=False,
        profanity_filter=True,
        raw_results=True,
        sample_rate=8000,
        folder_id="b1gvmob95yysaplct532",
    )
    request = config_request(settings)
    assert request.WhichOneof("streaming_request") == "config"
    spec = request.config.specification
    assert (spec.language_code, spec.model, spec.partial_results, spec.profanity_filter, spec.raw_results) == (
        "ru-RU",
        "commands",
        False,
        True,
        True,
    )
    assert spec.audio_encoding == stt.RecognitionSpec.LINEAR16_PCM and spec.sample_rate_hertz == 8000
    assert request.config.folder_id == "b1gvmob95yysaplct532"


def test_folder_id_is_left_out_unless_configured():
    request = config_request(RecognitionSettings())
    assert not request.config.folder_id
    # proto3 strings have no presence: left out means not on the wire at all
    assert b"b1g" not in request.SerializeToString()
    assert stt.RecognitionConfig.FromString(request.config.SerializeToString()).folder_id == ""


def test_default_config_asks_for_what_the_local_server_has():
    spec = config_request(RecognitionSettings()).config.specification
    assert (spec.language_code, spec.model, spec.sample_rate_hertz, spec.partial_results) == (
        "en-US",
        "general",
        16000,
        True,
    )
    assert spec.audio_encoding == stt.RecognitionSpec.LINEAR16_PCM


def test_opus_encoding_is_named_on_the_wire():
    spec = config_request(RecognitionSettings(encoding="OGG_OPUS", sample_rate=48000)).config.specification
    assert spec.audio_encoding == stt.RecognitionSpec.OGG_OPUS


def test_audio_request_is_the_audio_branch_of_the_oneof():
    request = audio_request(b"\x01\x02")
    assert request.WhichOneof("streaming_request") == "audio_content" and request.audio_content == b"\x01\x02"


def _alternative(text: str, confidence: float = 0.9, words=()) -> stt.SpeechRecognitionAlternative:
    return stt.SpeechRecognitionAlternative(text=text, confidence=confidence, words=list(words))


def test_partial_and_final_chunks_become_events_in_order():
    word = stt.WordInfo(
        word="hello",
        start_time=Duration(seconds=1, nanos=250_000_000),
        end_time=Duration(seconds=1, nanos=750_000_000),
        confidence=0.8,
    )
    response = stt.StreamingRecognitionResponse(
        chunks=[
            stt.SpeechRecognitionChunk(alternatives=[_alternative("hell")], final=False),
            stt.SpeechRecognitionChunk(
                alternatives=[_alternative("hello", 0.75, [word]), _alternative("yellow", 0.2)],
                final=True,
                end_of_utterance=True,
            ),
        ]
    )
    partial, final = response_events(response)
    assert partial == Partial("hell")
    assert final.text == "hello" and final.confidence == pytest.approx(0.75) and final.end_of_utterance
    assert final.words == (Word("hello", 1.25, 1.75, pytest.approx(0.8)),)


def test_empty_partial_is_dropped_but_empty_final_still_ends_the_utterance():
    response = stt.StreamingRecognitionResponse(
        chunks=[
            stt.SpeechRecognitionChunk(final=False),
            stt.SpeechRecognitionChunk(final=True, end_of_utterance=True),
        ]
    )
    assert response_events(response) == [Final("", 0.0, (), True)]


def test_response_without_chunks_gives_no_event():
    assert response_events(stt.StreamingRecognitionResponse()) == []
