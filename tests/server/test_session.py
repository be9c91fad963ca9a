"""One call's recognition core, fed audio directly (no gRPC)."""

from __future__ import annotations

import pytest

from tests.conftest import LIGHTS_GRAMMAR
from voiced.server.config import GrammarModel, ServerSettings
from voiced.server.engine import Engine
from voiced.server.session import StreamRecognition, mask_profanity
from voiced.server.spec import SessionSpec
from voiced.testing import silence

SETTINGS = ServerSettings(models={"lights": GrammarModel(jsgf=LIGHTS_GRAMMAR)})


@pytest.fixture(scope="module")
def engine():
    engine = Engine(SETTINGS)
    yield engine
    engine.close()


def stream(engine, rate=16000, model="lights", **flags) -> StreamRecognition:
    spec = SessionSpec(
        language="en-US",
        model=model,
        sample_rate=rate,
        partial_results=flags.get("partial", False),
        single_utterance=flags.get("single", False),
        raw_results=flags.get("raw", False),
        profanity_filter=flags.get("profanity", False),
    )
    return StreamRecognition(
        spec, engine.lend("en-US", model), SETTINGS.endpointing, SETTINGS.partial_interval_s, SETTINGS.profanity_words
    )


def feed_all(recognition: StreamRecognition, pcm: bytes, chunk: int) -> list:
    results = []
    for i in range(0, len(pcm), chunk):
        results += recognition.feed(pcm[i : i + chunk])
    return results + recognition.finish()


def test_silence_gives_nothing(engine):
    assert feed_all(stream(engine, partial=True), silence(3.0, 16000), 3200) == []


@pytest.mark.parametrize("chunk", [2, 333, 16000])  # odd splits, down to single samples
def test_results_do_not_depend_on_how_the_audio_is_split(engine, speech_pcm, chunk):
    pcm = speech_pcm("turn off the garage lights", "flite:kal16")
    texts = [r.text for r in feed_all(stream(engine), pcm, chunk) if r.final]
    assert texts == ["turn off the garage lights"]


@pytest.mark.parametrize("rate", [8000, 48000])
@pytest.mark.parametrize("odd", [0, 1])  # odd: every message splits a sample with the next one
def test_other_rates_are_resampled_for_the_engine(engine, speech_pcm, rate, odd):
    pcm = speech_pcm("open the garage door", "flite:slt", rate)
    texts = [r.text for r in feed_all(stream(engine, rate=rate), pcm, rate // 10 * 2 + odd) if r.final]
    assert texts == ["open the garage door"]


def test_audio_after_a_single_utterance_is_ignored(engine, speech_pcm):
    pcm = speech_pcm("turn on the kitchen lights", "flite:slt") + speech_pcm("open the garage door", "flite:slt")
    recognition = stream(engine, single=True)
    results = feed_all(recognition, pcm, 3200)
    assert [r.text for r in results] == ["turn on the kitchen lights"] and recognition.done


def test_profanity_keeps_the_first_letter_of_listed_words_only():
    words = frozenset({"damn", "hell"})
    assert mask_profanity("Damn, the hello hell", words) == "D***, the hello h***"


def test_in_process_partials_say_how_much_audio_they_have_heard_even_unchanged(engine, speech_pcm):
    """The daemon's in-process sessions (no endpointer): every partial read is reported, an
    unchanged one with an empty text, each with the audio heard so far; on the wire only
    changes are sent."""
    pcm = speech_pcm("turn off the garage lights", "flite:kal16") + silence(1.0, 16000)
    spec = SessionSpec("en-US", "lights", 16000, True, False, False, False)
    every = StreamRecognition(spec, engine.lend("en-US", "lights"), None, 0.1, (), unchanged_partials=True)
    partials = [r for r in feed_all(every, pcm, 3200) if not r.final]
    heard = [r.audio_s for r in partials]
    assert heard == sorted(heard) and heard[-1] == pytest.approx(len(pcm) / 2 / 16000, abs=0.1)
    assert partials[-1].text == "" and any(r.text == "turn off the garage lights" for r in partials)
    changes = StreamRecognition(spec, engine.lend("en-US", "lights"), None, 0.1, ())
    assert [r.text for r in feed_all(changes, pcm, 3200) if not r.final] == [r.text for r in partials if r.text]
