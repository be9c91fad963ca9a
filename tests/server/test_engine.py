"""pocketsphinx models: grammar words, cut dictionaries, lent recognizers."""

from __future__ import annotations

import pytest

from tests.conftest import LIGHTS_GRAMMAR
from voiced.server.config import GrammarModel, ServerSettings
from voiced.server.decoding import ModelError
from voiced.server.engine import Engine
from voiced.server.pocketsphinx import cut_dictionary, grammar_words, model_paths
from voiced.testing import mix, noise, read_pcm

RATE = 16000


def test_grammar_words_leave_out_rule_names_weights_and_operators():
    jsgf = "#JSGF V1.0;\ngrammar g;\npublic <a> = /2/ (turn | switch) [the] <b>+ ;\n<b> = Light {tag} | lamp*;\n"
    assert grammar_words(jsgf) == {"turn", "switch", "the", "light", "lamp"}


def test_a_cut_dictionary_keeps_alternative_pronunciations(tmp_path):
    dictionary = tmp_path / "d.dict"
    dictionary.write_text("the DH AH\nthe(2) DH IY\nlamp L AE M P\nzoo Z UW\n")
    assert cut_dictionary(dictionary, {"the", "lamp"}) == "the DH AH\nthe(2) DH IY\nlamp L AE M P\n"


def test_words_missing_from_the_dictionary_are_named():
    _, dictionary, _ = model_paths(ServerSettings().languages["en-US"])
    with pytest.raises(ModelError, match="frobnicate"):
        cut_dictionary(dictionary, {"lights", "frobnicate"})


def test_a_grammar_of_an_uninstalled_language_is_a_model_error():
    with pytest.raises(ModelError, match="ru-RU"):
        Engine(ServerSettings(models={"x": GrammarModel(language="ru-RU", jsgf=LIGHTS_GRAMMAR)}))


def test_a_missing_grammar_file_is_a_model_error(tmp_path):
    with pytest.raises(ModelError, match="cannot read"):
        Engine(ServerSettings(models={"x": GrammarModel(jsgf_file=tmp_path / "missing.jsgf")}))


def test_a_lent_recognizer_forgets_the_previous_sessions_channel(speech):
    """The same audio gives the same result, word times and confidences included, on a fresh
    decoder and on one that decoded other, noisy audio before: the cepstral mean and the noise
    estimate are both reset. Words carry times and confidences."""
    engine = Engine(ServerSettings(idle_decoders=1))
    pcm, _ = read_pcm(speech("what time is it", "flite:awb"))
    other, _ = read_pcm(speech("the quick brown fox jumps over the lazy dog", "espeak:en-us"))
    other = mix(other, noise(len(other) / RATE / 2, RATE, "whitenoise", 0.3))

    def decode(audio):
        recognizer = engine.lend("en-US", "general")
        recognizer.start()
        for i in range(0, len(audio), 3200):
            recognizer.process(audio[i : i + 3200])
        result = recognizer.end()
        engine.give_back("en-US", "general", recognizer)
        return result

    first = decode(pcm)
    decode(other)
    again = decode(pcm)
    assert "time" in first.text
    assert again == first
    assert all(0 <= w.start_s < w.end_s and 0 < w.confidence <= 1 for w in first.words)
    assert 0 < first.confidence <= 1
    engine.close()


def test_a_rejecting_grammar_keeps_commands_and_refuses_other_speech(speech):
    """Without rejection a grammar forces any speech onto its nearest sentence; with it, speech
    that fits the grammar far worse than a free phone loop gives an empty hypothesis."""

    def hear(engine, text, voice):
        recognizer = engine.lend("en-US", "lights")
        try:
            pad = bytes(16000)
            recognizer.start()
            recognizer.process(pad + read_pcm(speech(text, voice))[0] + pad)
            return recognizer.end().text, recognizer.last_gap
        finally:
            engine.give_back("en-US", "lights", recognizer)

    forced = Engine(ServerSettings(models={"lights": GrammarModel(jsgf=LIGHTS_GRAMMAR)}))
    rejecting = Engine(ServerSettings(models={"lights": GrammarModel(jsgf=LIGHTS_GRAMMAR, rejection_margin=0.9)}))
    try:
        assert hear(forced, "switch on the television", "flite:slt")[0]  # forced onto a sentence
        for voice in ("flite:slt", "flite:kal16", "espeak:en-us"):
            for command in ("turn on the kitchen lights", "open the garage door"):
                text, gap = hear(rejecting, command, voice)
                assert text == command and gap < 0.9, (voice, command, text, gap)
            for other in ("switch on the television", "what is the weather like tomorrow"):
                text, gap = hear(rejecting, other, voice)
                assert text == "" and (gap is None or gap > 0.9), (voice, other, gap)  # None: no path at all
    finally:
        forced.close()
        rejecting.close()
