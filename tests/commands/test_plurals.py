"""Counted nouns agree with their numbers: CLDR plural categories and spell-out rules."""

from __future__ import annotations

import pytest

from voiced.commands import load_commands
from voiced.commands.plurals import Agreement, CountedNoun, plural_category

MINUTE = CountedNoun(("минуту", "минуты", "минут"), "feminine-accusative")


@pytest.mark.parametrize(
    ("number", "category"),
    [
        *[(1, "one"), (21, "one"), (11, "many"), (2, "few"), (4, "few"), (12, "many"), (14, "many")],
        *[(22, "few"), (5, "many"), (20, "many"), (60, "many"), (101, "one"), (111, "many")],
    ],
)
def test_russian_plural_categories(number, category):
    assert plural_category(number, "ru-RU") == category


def test_english_has_one_and_other():
    assert [plural_category(n, "en") for n in (1, 2, 21)] == ["one", "other", "other"]


def test_numbers_are_spelled_in_the_gender_and_case_of_their_noun():
    agreement = Agreement([MINUTE], "ru")
    assert [agreement.spell(n, "минуту") for n in (1, 2, 21, 22, 5)] == [
        "одну",
        "две",
        "двадцать одну",
        "двадцать две",
        "пять",
    ]
    assert agreement.spell(1, "час") == "один"  # not a counted noun: the plain cardinal


def test_the_closed_set_holds_only_sentences_that_agree():
    timers = {s.text for s in load_commands(["config/commands.yaml"]).sentences("ru") if s.intent == "SetTimer"}
    assert {"поставь таймер на 1 минуту", "поставь таймер на 2 минуты", "поставь таймер на 5 минут"} <= timers
    assert {"поставь таймер на 21 минуту", "поставь таймер на 44 минуты", "поставь таймер на 11 минут"} <= timers
    assert not timers & {"поставь таймер на 1 минут", "поставь таймер на 5 минуту", "поставь таймер на 12 минуты"}
    assert len(timers) == 2 * 60


def test_numbers_that_do_not_agree_with_their_noun_are_found():
    agreement = Agreement([MINUTE], "ru")
    assert agreement.disagreeing("поставьте мир на 9 минуты".split()) == {"9"}
    assert agreement.disagreeing("на 22 минуты и 21 минуту и 5 минут".split()) == set()
    assert agreement.disagreeing("на 5 минуту или 2 процента".split()) == {"5"}  # "процента": not counted here


def test_a_noun_needs_every_form_of_its_language():
    with pytest.raises(ValueError, match="give 3 forms"):
        Agreement([CountedNoun(("минуту", "минут"))], "ru")


def test_matching_forgives_a_wrong_ending():
    commands = load_commands(["config/commands.yaml"])
    assert commands.match("поставь таймер на двадцать одну минуту", "ru").slots == {"minutes": 21}
    assert commands.match("поставь таймер на пять минуту", "ru").slots == {"minutes": 5}
