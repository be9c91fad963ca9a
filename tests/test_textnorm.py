import pytest

from voiced.textnorm import digits_to_words, normalize, number_words, words_to_digits


def test_normalize_case_punctuation_yo():
    assert normalize("  Включи СВЕТ, в ёлке!  ", "ru") == "включи свет в елке"
    assert normalize("Turn on the kitchen-light.", "en") == "turn on the kitchen light"
    assert normalize("What's the volume? It’s 40%.", "en-US") == "whats the volume its 40 percent"
    assert normalize("громкость 40%", "ru") == "громкость 40 процентов"


@pytest.mark.parametrize(
    ("text", "language", "expected"),
    [
        ("set a timer for twenty-five minutes", "en", "set a timer for 25 minutes"),
        ("one hundred and five", "en", "105"),
        ("volume zero", "en", "volume 0"),
        ("поставь таймер на двадцать пять минут", "ru", "поставь таймер на 25 минут"),
        ("таймер на двадцать одну минуту", "ru", "таймер на 21 минуту"),
        ("громкость сорок две", "ru", "громкость 42"),
        ("на двух минутах", "ru", "на 2 минутах"),
        ("turn on the light", "en", "turn on the light"),
        # tens and units written apart, as Whisper writes "пятьдесят одну": one number
        ("поставь таймер на 50 1 минуту", "ru", "поставь таймер на 51 минуту"),
        ("set a timer for 40 5 minutes", "en", "set a timer for 45 minutes"),
        ("заведи таймер на 50 09 минут", "ru", "заведи таймер на 59 минут"),  # its units in two digits
        ("на 20 0 минут, 9 5, 100 5, 10 5, 30 00, 30 10", "ru", "на 20 0 минут 9 5 100 5 10 5 30 00 30 10"),
    ],
)
def test_words_to_digits(text, language, expected):
    assert words_to_digits(text, language) == expected


def test_digits_round_trip():
    for language in ("en", "ru"):
        for value in (0, 7, 21, 59, 100, 999):
            assert words_to_digits(digits_to_words(str(value), language), language) == str(value)


def test_number_words_lists_all_russian_forms():
    assert {"два", "две", "двух"} <= set(number_words(2, "ru"))
    assert number_words(21, "en") == ["twenty one"]


def test_number_words_come_from_the_engine_hassil_holds():
    """One spell-out engine per language in the process, not one for hassil and one for
    voiced (Russian's holds ~1.7 MB)."""
    from hassil.numbers import get_rbnf_engine

    from voiced import textnorm

    assert words_to_digits("двадцать одну минуту", "ru-RU") == "21 минуту"
    assert textnorm._engine("ru-RU") is get_rbnf_engine("ru")
