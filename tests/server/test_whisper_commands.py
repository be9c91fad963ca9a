"""The Whisper commands recognizer on real synthesized speech: the real model (tiny.en from the
whisper extra), the real server on loopback or its engine in-process, the shipped command file."""

from __future__ import annotations

import grpc
import pytest

from voiced.commands import load_commands
from voiced.commands.config import WhisperSettings
from voiced.proto.yandex.cloud.ai.stt.v2 import stt_service_pb2 as pb
from voiced.proto.yandex.cloud.ai.stt.v2 import stt_service_pb2_grpc as pb_grpc
from voiced.server.app import start_server
from voiced.server.config import GrammarModel, ServerSettings
from voiced.server.engine import Engine
from voiced.testing import silence

EXAMPLE = "config/commands.yaml"
RATE = 16000
EARLY = WhisperSettings(early_final=True)


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


@pytest.fixture(scope="module")
def commands_engine():
    engine = Engine(
        ServerSettings(
            models={"commands": GrammarModel(commands_files=(EXAMPLE,), engine="whisper", whisper=EARLY)},
            idle_decoders=1,
        )
    )
    yield engine
    engine.close()


def decode(engine: Engine, pcm: bytes) -> tuple[str, int, int]:
    """The final of `pcm` fed in 30 ms chunks, as the daemon sends it, and how many finals
    the recognizer began early and how many of them it took."""
    recognizer = engine.lend("en-US", "commands")
    try:
        begun, used = recognizer.early_finals_begun, recognizer.early_finals_used
        final = feed(recognizer, pcm)
        return final, recognizer.early_finals_begun - begun, recognizer.early_finals_used - used
    finally:
        engine.give_back("en-US", "commands", recognizer)


def feed(recognizer, pcm: bytes) -> str:
    """The final of one utterance, its audio fed in 30 ms chunks."""
    recognizer.start()
    for start in range(0, len(pcm), 960):
        recognizer.process(pcm[start : start + 960])
    return recognizer.end().text


def test_a_final_begun_at_the_quiet_after_a_whole_command_is_the_answer(commands_engine, speech_pcm):
    """As a session ended early on a finished command (0.15 s of silence), the final begun in
    that silence is taken; after a long silence (end_silence), the final decides on all of it."""
    text = "turn on the kitchen light"
    assert decode(commands_engine, speech_pcm(text, "flite:slt", pad_s=0.15)) == (text, 1, 1)
    assert decode(commands_engine, speech_pcm(text, "flite:slt", pad_s=0.8)) == (text, 1, 0)


def test_no_final_begins_early_unless_asked(speech_pcm):
    engine = Engine(ServerSettings(models={"commands": GrammarModel(commands_files=(EXAMPLE,), engine="whisper")}))
    try:
        text = "turn on the kitchen light"
        assert decode(engine, speech_pcm(text, "flite:slt", pad_s=0.15)) == (text, 0, 0)
    finally:
        engine.close()


FAN_COMMANDS = """
languages:
  en:
    lists:
      speed: {range: {from: 1, to: 30}}
commands:
  Fan:
    sentences: {en: ["set the fan to {speed}"]}
"""


def test_a_final_begun_early_is_given_up_when_the_speaker_goes_on(tmp_path, speech_pcm):
    """After "set the fan to twenty" (a whole command) and a pause, "five" is loud: the final
    begun in the pause is given up, and the final decided on all that was said."""
    (tmp_path / "fan.yaml").write_text(FAN_COMMANDS)
    grammar = GrammarModel(commands_files=(str(tmp_path / "fan.yaml"),), engine="whisper", whisper=EARLY)
    engine = Engine(ServerSettings(models={"commands": grammar}, idle_decoders=1))
    try:
        first, rest = speech_pcm("set the fan to twenty", pad_s=0.4), speech_pcm("five", pad_s=0.3)
        final, begun, used = decode(engine, first + rest)
    finally:
        engine.close()
    match = load_commands([tmp_path / "fan.yaml"]).match(final, "en")
    assert (match.slots, used) == ({"speed": 25}, 0) and begun >= 1, (final, begun)


def test_a_number_alike_is_scored_ahead_beside_the_transcript(commands_engine, speech_pcm):
    """ "Fifteen" is checked against "fifty": the grammar decoder heard the same words, so that
    check ran beside the transcript and its scores are the ones the final took."""
    recognizer = commands_engine.lend("en-US", "commands")
    try:
        before = recognizer.contrasts_scored_ahead
        final = feed(recognizer, speech_pcm("set a timer for fifteen minutes", "flite:slt", pad_s=0.8))
        assert final == "set a timer for 15 minutes"
        # (once, or twice with the final this engine began early in the silence and gave up)
        assert recognizer.contrasts_scored_ahead > before
        assert recognizer.last_choice is not None and recognizer.last_choice.lead is not None
    finally:
        commands_engine.give_back("en-US", "commands", recognizer)


def test_numbers_as_digits_or_as_words(commands_server, speech_pcm):
    pcm = speech_pcm("set a timer for twenty five minutes", "flite:slt") + silence(0.5, RATE)
    assert recognize(commands_server, pcm)[1] == ["set a timer for 25 minutes"]
    assert recognize(commands_server, pcm, raw_results=True)[1] == ["set a timer for twenty five minutes"]


def russian(whisper: WhisperSettings | None = None) -> Engine:
    """The shipped commands in Russian on the multilingual model (russian extra), in-process."""
    grammar = GrammarModel(
        language="ru-RU", commands_files=(EXAMPLE,), engine="whisper", whisper=whisper or WhisperSettings()
    )
    return Engine(ServerSettings(models={"commands": grammar}, idle_decoders=1))


@pytest.fixture(scope="module")
def russian_engine():
    engine = russian()
    yield engine
    engine.close()


def russian_final(engine: Engine, pcm: bytes):
    """The hypothesis of one utterance, and how it was chosen."""
    recognizer = engine.lend("ru-RU", "commands")
    try:
        recognizer.start()
        recognizer.process(pcm)
        return recognizer.end(), recognizer.last_choice
    finally:
        engine.give_back("ru-RU", "commands", recognizer)


def test_a_command_heard_as_a_garble_is_found_wide_and_only_asked(russian_engine, speech_pcm):
    """espeak-ng's Russian, which the model hears badly ("подосиснет кухни..." for "погаси
    свет кухне"): near no command in spelling, it is scored against every kind of command, and
    the kitchen's light off is what the daemon asks back; nothing is run unasked."""
    hypothesis, choice = russian_final(russian_engine, speech_pcm("погаси свет кухне", "espeak:ru"))
    assert hypothesis.text == "" and choice.accepted is False
    assert hypothesis.unsure == "погаси свет в кухне", choice.reason
    assert "of every kind" in choice.reason and choice.gap <= 1.45


def test_clear_chatter_is_not_searched_wide(russian_engine, speech_pcm):
    """A transcript written surely and near no command is no command: not scored against every
    kind (that costs about a second of CPU here), not asked."""
    hypothesis, choice = russian_final(russian_engine, speech_pcm("где мои ключи", "festival:msu_ru_nsh_clunits"))
    assert (hypothesis.text, hypothesis.unsure) == ("где мои ключи", "")  # as heard: no command
    assert choice.reason == "no command sentence is near what was heard"


def test_the_wide_search_can_be_switched_off(speech_pcm):
    engine = russian(WhisperSettings(wide_search=False))
    try:
        hypothesis, choice = russian_final(engine, speech_pcm("погаси свет кухне", "espeak:ru"))
    finally:
        engine.close()
    assert (choice.accepted, hypothesis.unsure) == (False, "")  # the garble as heard: nothing to run or ask
    assert "of every kind" not in choice.reason and choice.reason


def test_a_room_the_file_lacks_is_asked_not_run(russian_engine, speech_pcm):
    """Heard word for word ("включи свет в прихожей"), it scores near the kitchen's light (a
    room the file has), but nothing written is near "кухне": asked back, never run."""
    voice = "festival:msu_ru_nsh_clunits,tempo=0.95,pitch=-80"
    hypothesis, choice = russian_final(russian_engine, speech_pcm("включи свет в прихожей", voice))
    assert hypothesis.text == "" and choice.accepted is False, choice.reason
    assert (hypothesis.unsure, choice.unheard) == ("включи свет в кухне", ("кухне",)), choice.reason
