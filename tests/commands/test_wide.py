"""The wide search's kinds of command and its choice, on the shipped command file (scores given
as numbers: the real model's are in tests/server/test_whisper_commands.py)."""

from __future__ import annotations

import pytest

from voiced.commands import load_commands
from voiced.commands.closedset import ClosedSet, Score
from voiced.commands.wide import Found, WideSearch, can_search_wide


@pytest.fixture(scope="module")
def russian() -> ClosedSet:
    return ClosedSet(load_commands(["config/commands.yaml"]), "ru-RU", per_token=True)


@pytest.fixture(scope="module")
def wide(russian) -> WideSearch:
    return WideSearch(russian)


def test_a_kind_is_an_intent_a_first_word_and_slot_values_but_numbers(wide):
    """One kind per verb and room ("включи свет в кухне" stands for "...на кухне", "...кухне"),
    one per verb for the timer and the volume, whatever their numbers; voiced's answers too."""
    first = {kind.sentences[0].text: kind for kind in wide.kinds}
    assert "включи свет в кухне" in first and "зажги свет в кухне" in first and "погаси свет в ванной" in first
    assert not any(text.startswith("включи свет") and "на" in text.split() for text in first)
    timers = [kind for kind in wide.kinds if kind.sentences[0].intent == "SetTimer"]
    assert [kind.numbers for kind in timers] == [tuple(range(1, 61))] * 2
    volume = next(kind for kind in wide.kinds if kind.sentences[0].intent == "SetVolume")
    assert volume.numbers == tuple(range(0, 101, 10))
    assert {kind.sentences[0].text for kind in wide.kinds} >= {"да", "нет", "верно", "неверно", "не надо"}
    assert {kind.sentences[0].intent for kind in wide.kinds} == set(wide._closed_set.command_set.commands)


def test_a_number_found_takes_the_sentence_its_noun_agrees_with(wide):
    timer = next(kind for kind in wide.kinds if kind.sentences[0].text == "поставь таймер на 1 минуту")
    assert timer.with_number(1).text == "поставь таймер на 1 минуту"
    assert timer.with_number(22).text == "поставь таймер на 22 минуты"
    assert timer.with_number(45).text == "поставь таймер на 45 минут"
    volume = next(kind for kind in wide.kinds if kind.sentences[0].text.startswith("поставь громкость"))
    # shaped as the kind's first sentence ("...процентов") where the file has both
    assert volume.with_number(40).text == volume.sentences[0].text.replace("0", "40")


def test_each_kind_is_scored_once_with_its_likeliest_number(wide):
    """The kinds with a number are decoded first for it (`numbered`, as the recognizer writes
    them); then each kind gives one sentence: with its number found, or none if none was."""
    numbered = wide.numbered
    assert [text for text, _ in numbered] == [
        "Поставь таймер на 1 минуту.",
        "Заведи таймер на 1 минуту.",
        "Поставь громкость 0 процентов.",
        "Сделай громкость 0 процентов.",
    ]
    found = wide.sentences([(7, 4.0), None, (250, 5.0), (30, 1.0)])
    texts = [one.sentence.text for one in found]
    assert "поставь таймер на 7 минут" in texts and "сделай громкость 30 процентов" in texts
    assert [one.lead for one in found if one.sentence.intent != "LightOn" and one.lead] == [4.0, 1.0]
    # no number found, or one out of the kind's range: the kind is not scored
    assert not any(text.startswith(("заведи таймер", "поставь громкость")) for text in texts)
    assert len(found) == len(wide.kinds) - 2
    assert wide.texts(found)[0] == "Включи свет в кухне."


def test_the_best_kind_within_the_margin_is_asked_back_never_run(russian, wide):
    rejected = russian.none_near("лучеснет спину", 0.2)
    found = [Found(sentence) for sentence in russian.sentences if sentence.text in ("включи свет в спальне", "стоп")]
    scores = [Score(-10.0, 10), Score(-6.0, 3)]  # per token: -1.0 and -2.0
    asked = wide.choose(rejected, Score(-5.0, 10), found, scores, margin=1.45, number_lead=3.0)
    assert (asked.accepted, asked.text, asked.unsure) == (False, "", "включи свет в спальне")
    assert asked.gap == pytest.approx(0.5) and "to ask" in asked.reason and asked.heard == "лучеснет спину"
    # the best further below what was heard than the margin: rejected as it was
    assert wide.choose(rejected, Score(-5.0, 10), found, scores, margin=0.4, number_lead=3.0) == rejected
    assert wide.choose(rejected, Score(-5.0, 10), [], [], margin=1.45, number_lead=3.0) == rejected


def test_a_kind_with_a_number_is_asked_only_when_its_number_led_clearly(russian, wide):
    rejected = russian.none_near("pasta time in the frozen minute", 0.2)
    [timer] = [sentence for sentence in russian.sentences if sentence.text == "поставь таймер на 30 минут"]
    unclear = wide.choose(rejected, Score(-5.0, 10), [Found(timer, 0.8)], [Score(-6.0, 10)], 1.45, 3.0)
    assert unclear.unsure == "" and not unclear.accepted
    assert "its number leading the next likeliest by 0.80 only" in unclear.reason and "not asked" in unclear.reason
    clear = wide.choose(rejected, Score(-5.0, 10), [Found(timer, 4.0)], [Score(-6.0, 10)], 1.45, 3.0)
    assert (clear.unsure, clear.lead, clear.changes_number) == ("поставь таймер на тридцать минут", 4.0, True)


def test_an_answer_found_wide_is_passed_on_unsure_never_as_heard(russian, wide):
    """ "да" heard as "та": found wide, it is the answer for a question the daemon has open, but
    no final's text (a `voiced serve` client would take it as said)."""
    rejected = russian.none_near("та", 0.3)
    by_text = {sentence.text: sentence for sentence in russian.sentences}
    found = [Found(by_text["да"]), Found(by_text["стоп"])]
    choice = wide.choose(rejected, Score(-2.0, 2), found, [Score(-2.6, 2), Score(-4.0, 2)], 1.45, 3.0)
    assert (choice.accepted, choice.text, choice.unsure) == (False, "", "да")
    assert "the answer 'Да.'" in choice.reason and "an answer only to a question" in choice.reason


def test_only_languages_with_answers_search_wide(russian):
    assert can_search_wide(russian)
    assert not can_search_wide(ClosedSet(load_commands(["config/commands.yaml"]), "en-US"))
