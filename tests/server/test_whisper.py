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
    # never longer than Whisper's 30 s (its encoder refuses more), the silence after included
    assert len(window(tone(31.0, RATE, 8000))) == len(window(tone(29.8, RATE, 8000))) == 30 * RATE
    assert not window(tone(31.0, RATE, 8000))[-RATE // 2 :].any()
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
    heard = model.transcribe(model.encode(pcm), len(pcm) / 2 / RATE)
    assert heard.text.lower().rstrip(".") == "open the garage door" and 0.5 < heard.confidence <= 1.0
    assert heard.first_number is None
    # an utterance longer than Whisper's window is cut to it, not refused by the encoder
    long = pcm + silence(30.0, RATE)
    assert model.transcribe(model.encode(long), len(long) / 2 / RATE).text.lower().rstrip(".") == "open the garage door"


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


def test_russian_texts_are_scored_in_one_pass_and_a_number_through_it_only(speech_pcm):
    """The one-pass scores (no end) rank texts as the stepped ones do; a number's lead decoded
    through the number only is the lead of the whole text's steps."""
    model = WhisperModel(language="ru")
    encoded = model.encode(speech_pcm("включи свет на кухне", "festival:msu_ru_nsh_clunits"))
    texts = ["Включи свет на кухне.", "Выключи свет на кухне.", "Включи свет в спальне.", "Стоп."]
    one_pass, stepped = model.text_scores(encoded, texts), model.scores(encoded, texts)
    assert [score.tokens for score in one_pass] == [score.tokens - 1 for score in stepped]  # no end
    assert max(range(4), key=lambda i: one_pass[i].mean) == 0 == max(range(4), key=lambda i: stepped[i].mean)
    assert one_pass[0].mean == pytest.approx(stepped[0].mean, abs=0.5)
    timer = model.encode(speech_pcm("поставь таймер на сорок девять минут", "festival:msu_ru_nsh_clunits"))
    [whole] = model.scores(timer, ["Поставь таймер на 49 минут."])
    assert model.number_lead(timer, "Поставь таймер на 49 минут.") == pytest.approx(whole.number_lead, abs=0.05)
    assert model.number_lead(timer, "Включи свет на кухне.") is None
    # a number among a text's first two tokens, and a text of one token: decoded all the same
    assert model.number_lead(timer, "49 минут.") is not None and model.number_lead(timer, "На 49.") is not None
    [one_token] = model.scores(timer, ["Да"])
    assert one_token.tokens == 2 and one_token.log_probability < 0


def test_a_number_written_as_the_transcript_wrote_it_takes_its_lead_from_there(speech_pcm):
    """The free transcript's first number, after the same token as in the text ("...на 5"),
    gives the text's lead with no decoding of its own; another number, or another token before
    it, is decoded as before."""
    model = WhisperModel(language="ru")
    pcm = speech_pcm("поставь таймер на пять минут", "festival:msu_ru_nsh_clunits")
    encoded = model.encode(pcm)
    assert model.transcribe(encoded, len(pcm) / 2 / RATE).first_number is None  # not asked for
    heard = model.transcribe(encoded, len(pcm) / 2 / RATE, number_lead=True)
    assert heard.first_number is not None and "5" in heard.text
    before, number, lead = heard.first_number
    assert model._tokenizer.decode([before, number]).split() == ["на", "5"] and lead > 3.0
    decoded = {
        text: model.number_lead(encoded, text)
        for text in ("Поставь таймер на 5 минут.", "Поставь таймер на 7 минут.", "Громкость 5.")
    }
    # the same two tokens: read off the transcript, the decoder not run again
    real_forced_logits, model._forced_logits = model._forced_logits, None
    assert model.number_lead(encoded, "Поставь таймер на 5 минут.", heard, enough=lead) == lead
    model._forced_logits = real_forced_logits
    # a lead read off short of `enough` is not trusted: the text is decoded
    assert (
        model.number_lead(encoded, "Поставь таймер на 5 минут.", heard, enough=lead + 0.01)
        == decoded["Поставь таймер на 5 минут."]
    )
    assert lead != decoded["Поставь таймер на 5 минут."] > 3.0  # decoded, it leads too (by another amount)
    assert model.number_lead(encoded, "Поставь таймер на 7 минут.", heard) == decoded["Поставь таймер на 7 минут."] < 0
    assert model.number_lead(encoded, "Громкость 5.", heard) == decoded["Громкость 5."] != lead


def test_the_likeliest_number_of_a_kind_is_found_at_its_place(speech_pcm):
    """The wide search's numbers: of a kind's values, the one the model finds likeliest after
    the words before it, with its lead over the next likeliest number (any number, as for
    number_lead); a text with no number in digits has none."""
    model = WhisperModel(language="ru")
    encoded = model.encode(speech_pcm("поставь таймер на сорок девять минут", "festival:msu_ru_nsh_clunits"))
    timer, no_number, volume = model.likeliest_numbers(
        encoded,
        [
            ("Поставь таймер на 1 минуту.", tuple(range(1, 61))),
            ("Включи свет в кухне.", ()),
            ("Поставь громкость 0 процентов.", tuple(range(0, 101, 10))),
        ],
    )
    assert timer is not None and timer[0] == 49 and timer[1] is not None and timer[1] > 3.0
    assert timer[1] == pytest.approx(model.number_lead(encoded, "Поставь таймер на 49 минут."), abs=0.05)
    assert no_number is None
    # 49 is no volume: the likeliest of the volumes, which leads too little to be asked
    assert volume is not None and volume[0] in range(0, 101, 10) and volume[1] is not None and volume[1] < 3.0
