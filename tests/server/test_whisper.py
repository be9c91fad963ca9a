"""The Whisper commands engine on real synthesized speech: the real model (tiny.en from the
whisper extra), the real server on loopback, the shipped command file."""

from __future__ import annotations

import grpc
import numpy as np
import pytest

from voiced.commands import load_commands
from voiced.commands.config import WhisperSettings
from voiced.proto.yandex.cloud.ai.stt.v2 import stt_service_pb2 as pb
from voiced.proto.yandex.cloud.ai.stt.v2 import stt_service_pb2_grpc as pb_grpc
from voiced.server.app import start_server
from voiced.server.config import GrammarModel, ServerSettings
from voiced.server.decoding import ModelError
from voiced.server.whisper import WhisperModel, log_mel, window
from voiced.server.whisper_models import english_model_dir
from voiced.testing import read_pcm, silence

EXAMPLE = "config/commands.yaml"
RATE = 16000


@pytest.fixture(scope="module")
def commands_server():
    """`voiced serve` with the shipped commands as model "commands" on the Whisper engine."""
    server = start_server(
        ServerSettings(models={"commands": GrammarModel(commands_files=(EXAMPLE,), engine="whisper")})
    )
    yield server
    server.stop()


@pytest.fixture(scope="module")
def example():
    return load_commands([EXAMPLE])


def recognize(server, pcm: bytes, raw_results: bool = False) -> tuple[list[str], list[str]]:
    """(partials, finals) of one call, the audio sent in 0.1 s messages."""
    spec = pb.RecognitionSpec(
        audio_encoding=pb.RecognitionSpec.LINEAR16_PCM,
        sample_rate_hertz=RATE,
        language_code="en-US",
        model="commands",
        partial_results=True,
        raw_results=raw_results,
    )

    def requests():
        yield pb.StreamingRecognitionRequest(config=pb.RecognitionConfig(specification=spec))
        for start in range(0, len(pcm), 3200):
            yield pb.StreamingRecognitionRequest(audio_content=pcm[start : start + 3200])

    with grpc.insecure_channel(server.target) as channel:
        responses = list(pb_grpc.SttServiceStub(channel).StreamingRecognize(requests(), timeout=60))
    chunks = [chunk for response in responses for chunk in response.chunks]
    return (
        [c.alternatives[0].text for c in chunks if not c.final],
        [c.alternatives[0].text for c in chunks if c.final],
    )


def test_features_and_window_follow_whisper():
    assert len(window(silence(0.4, RATE))) == 2 * RATE  # at least 2 s
    assert len(window(silence(2.3, RATE))) == 3 * RATE  # whole seconds
    assert len(window(silence(2.6, RATE))) == 4 * RATE  # with half a second of silence after the audio
    tone = (np.sin(np.arange(RATE) * 2 * np.pi * 1000 / RATE) * 8000).astype(np.int16).tobytes()
    features = log_mel(window(tone))
    assert features.shape == (80, 200)
    # the 1 kHz tone lights up its mel band in the first second, silence after it is the floor
    assert features[:, 10:90].argmax(axis=0).tolist() == [features[:, 50].argmax()] * 80
    assert features[:, 150].max() == pytest.approx(features.min())


@pytest.mark.parametrize(
    ("voice", "text", "intent", "slots"),
    [
        ("flite:slt", "set a timer for fifteen minutes", "SetTimer", {"minutes": 15}),
        ("flite:awb", "switch off the lights in the lounge", "LightOff", {"room": "living_room", "device": "light"}),
        ("espeak:en-us", "turn on the kitchen light", "LightOn", {"room": "kitchen", "device": "light"}),
        ("flite:awb", "computer set the volume to forty percent please", "SetVolume", {"volume": 40}),
        ("flite:kal16", "what time is it", "WhatTime", {}),
    ],
)
def test_commands_come_back_as_command_sentences_after_live_partials(
    commands_server, example, speech_pcm, voice, text, intent, slots
):
    partials, finals = recognize(commands_server, speech_pcm(text, voice) + silence(0.5, RATE))
    assert len(finals) == 1 and partials, (partials, finals)
    match = example.match(finals[0], "en")
    assert (match.intent, match.slots) == (intent, slots), finals


@pytest.mark.parametrize(
    ("voice", "text"),
    [
        ("flite:slt", "set a timer for ninety minutes"),  # out of range: not 9, not 19
        ("flite:awb", "turn on the lights in the attic"),  # no such room
        ("flite:rms", "set the volume to fifty five"),  # off the step: not 50
        ("flite:slt", "switch on the television"),
        ("espeak:en-us", "tell me a joke"),
    ],
)
def test_near_misses_and_chatter_come_back_as_no_command(commands_server, example, speech_pcm, voice, text):
    _, finals = recognize(commands_server, speech_pcm(text, voice) + silence(0.5, RATE))
    assert all(example.match(final, "en") is None for final in finals), finals


def test_numbers_as_digits_or_as_words(commands_server, speech_pcm):
    pcm = speech_pcm("set a timer for twenty five minutes", "flite:slt") + silence(0.5, RATE)
    assert recognize(commands_server, pcm)[1] == ["set a timer for 25 minutes"]
    assert recognize(commands_server, pcm, raw_results=True)[1] == ["set a timer for twenty five minutes"]


def test_the_model_is_checked_at_start(tmp_path):
    with pytest.raises(ModelError, match="does not load"):
        WhisperModel(tmp_path)
    with pytest.raises(ModelError, match="English-only"):
        WhisperModel(english_model_dir(), language="ru")
    grammar = GrammarModel(commands_files=(EXAMPLE,), engine="whisper", whisper=WhisperSettings(model=tmp_path))
    with pytest.raises(ModelError, match=f"Whisper model {tmp_path} does not load"):
        start_server(ServerSettings(models={"commands": grammar}))


def test_a_transcript_is_read_from_the_speech(speech):
    model = WhisperModel()
    pcm = silence(0.5, RATE) + read_pcm(speech("open the garage door", "flite:slt"))[0] + silence(0.5, RATE)
    heard, confidence = model.transcribe(model.encode(pcm), len(pcm) / 2 / RATE)
    assert heard.lower().rstrip(".") == "open the garage door" and 0.5 < confidence <= 1.0


def test_a_russian_number_is_scored_against_its_runner_up(speech_pcm):
    """Multilingual base on Russian speech: the number said leads every other number at its
    place (its own tens aside: Whisper writes "сорок девять" as "40-9"), a number not said
    trails the one said."""
    model = WhisperModel(language="ru")
    encoded = model.encode(speech_pcm("поставь таймер на сорок девять минут", "festival:msu_ru_nsh_clunits"))
    said, other, tens = model.scores(
        encoded, ["Поставь таймер на 49 минут.", "Поставь таймер на 45 минут.", "Поставь таймер на 40 минут."]
    )
    assert said.number_lead is not None and said.number_lead > 3.0
    assert other.number_lead is not None and other.number_lead < 0
    assert tens.number_lead is not None and tens.number_lead < 3.0  # "40" alone is not what was said
    assert said.mean > max(other.mean, tens.mean)
