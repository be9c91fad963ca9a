import pytest

from voiced.commands import load_commands
from voiced.commands.heard import first_sentence, heard_numbers, numbers, unheard_values


@pytest.fixture(scope="module")
def lights():
    sentences = load_commands(["config/commands.yaml"]).sentences("ru")
    return {sentence.text: sentence for sentence in sentences if sentence.intent in ("LightOn", "LightOff")}


@pytest.mark.parametrize(
    "said, heard, unheard",
    [
        ("включи свет в кухне", "Включи свет в прихожей.", ["кухне"]),  # a room the file lacks
        ("выключи свет в гостиной", "Выключи сведу в граже.", ["гостиной"]),
        ("включи свет в спальне", "Включи свет в спале.", []),  # a room heard garbled, still near
        ("погаси свет в ванной", "Погаси свет в ван ной.", []),  # written as two words
        ("погаси свет в зале", "Погаси свет вензали.", []),  # run into the word before it
        ("включи свет в ванной", "Включи свет на враны.", []),  # an ending as heard
        ("включи свет в ванной", "Включи свет в на.", ["ванной"]),  # "на" is in "ванной", but no room
        ("включи свет в кухне", "", ["кухне"]),
    ],
)
def test_a_slot_value_is_heard_if_something_written_is_near_it(lights, said, heard, unheard):
    assert unheard_values(lights[said], heard, "ru", 0.6) == unheard


def test_numbers_are_no_slot_values_to_hear():
    [timer] = [
        s for s in load_commands(["config/commands.yaml"]).sentences("ru") if s.text == "поставь таймер на 5 минут"
    ]
    assert unheard_values(timer, "Поставьте мир на 9 минут.", "ru", 0.6) == []


def test_numbers_heard_include_what_a_pair_or_a_hundred_and_some_may_be():
    heard = heard_numbers("Заведите мир на 40 80 минут, громко 120.", "ru")
    assert {"40", "80", "48", "120", "20"} <= heard.found
    assert heard.halves == {"40", "80"}
    assert numbers("поставь таймер на двадцать пять минут", "ru") == {"25"}


@pytest.mark.parametrize(
    ("heard", "first"),
    [
        ("Stop. Stop. Stop.", "Stop."),
        ("Tell me a joke Tell me a joke Tell me a joke", "Tell me a joke"),
        ("switch on the television, switch on the television, switch", "switch on the television"),
        ("Set a timer for 5 minutes.", "Set a timer for 5 minutes."),
        ("выключи свет кухню выключи свет кухню выключи свет к", "выключи свет кухню"),  # cut short in a word
        ("Stop. St", "Stop."),
        ("Stop. Talking to me.", "Stop. Talking to me."),  # not a repetition: kept whole
        ("Yes, yes, I will.", "Yes, yes, I will."),
        ("", ""),
    ],
)
def test_only_the_first_sentence_counts(heard, first):
    assert first_sentence(heard) == first
