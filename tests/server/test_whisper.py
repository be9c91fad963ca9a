"""Whisper itself on real synthesized speech: its features, a free transcript, the scores of
numbers, and the model checked at start (the recognizer: test_whisper_commands)."""

from __future__ import annotations

import pytest

from voiced.commands.config import WhisperSettings
from voiced.server.app import start_server
from voiced.server.config import GrammarModel, ServerSettings
from voiced.server.decoding import ModelError
from voiced.server.whisper import WhisperModel, log_mel, window
from voiced.server.whisper_models import english_model_dir
from voiced.testing import read_pcm, silence, tone

EXAMPLE = "config/commands.yaml"
RATE = 16000


def test_features_and_window_follow_whisper():
    assert len(window(silence(0.4, RATE))) == 2 * RATE  # at least 2 s
    assert len(window(silence(2.3, RATE))) == 3 * RATE  # whole seconds
    assert len(window(silence(2.6, RATE))) == 4 * RATE  # with half a second of silence after the audio
    features = log_mel(window(tone(1.0, RATE, 8000, hz=1000)))
    assert features.shape == (80, 200)
    # the 1 kHz tone lights up its mel band in the first second, silence after it is the floor
    assert features[:, 10:90].argmax(axis=0).tolist() == [features[:, 50].argmax()] * 80
    assert features[:, 150].max() == pytest.approx(features.min())


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
