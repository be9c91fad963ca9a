import pytest

from voiced.commands import CommandsSettings, load_commands
from voiced.commands.completion import CommandCompletion, spoken_form

HOME = """
languages:
  en:
    wake_names: [computer]
    skip_words: [please]
    lists:
      room:
        values: [kitchen, bedroom, {in: "(living room|lounge)", out: living_room}]
      speed: {range: {from: 1, to: 30}}
      level: {range: {from: 0, to: 100, step: 10}}
      minutes: {range: {from: 1, to: 60}}
commands:
  LightOn:
    sentences: {en: ["turn on the {room} light", "turn on the light [in the {room}]"]}
  Fan:
    sentences: {en: ["set the fan to {speed}"]}
  Volume:
    sentences: {en: ["set the volume to {level} [percent]"]}
  Garage:
    sentences: {en: ["open the garage [door]"]}
  Timer:
    sentences: {en: ["set a timer for {minutes} minutes"]}
  Stop:
    sentences: {en: ["stop", "stop the music"]}
"""

RUSSIAN = """
languages:
  ru:
    expansion_rules:
      minute: "(минуту|минуты|минут)"
    lists:
      minutes: {range: {from: 1, to: 60}}
commands:
  Timer:
    sentences: {ru: ["(поставь|заведи) таймер на {minutes} <minute>"]}
"""


def completion_of(tmp_path, text: str, language: str = "en", **settings) -> CommandCompletion:
    path = tmp_path / "commands.yaml"
    path.write_text(text, encoding="utf-8")
    return CommandCompletion(load_commands([path], CommandsSettings(**settings)), language)


@pytest.fixture
def home(tmp_path) -> CommandCompletion:
    return completion_of(tmp_path, HOME)


@pytest.mark.parametrize(
    "text",
    [
        "turn on the kitchen light",
        "Turn on the living room light.",  # written as transcripts may be
        "turn on the light in the lounge",
        "set the fan to 12",
        "set the fan to twelve",
        "set the fan to thirty",  # the range ends at 30: no number goes on from it
        "set the fan to 2",  # no number of the range is said "two ..."
        "set a timer for 25 minutes",
        "stop the music",
        "computer, turn on the bedroom light",  # after the wake name
    ],
)
def test_a_whole_sentence_that_nothing_can_follow_is_finished(home, text):
    assert home.finished(text)


@pytest.mark.parametrize(
    ("text", "what_may_follow"),
    [
        ("turn on the light", "the optional tail [in the {room}]"),
        ("set the fan to 20", "more of the number: twenty five"),
        ("set the fan to twenty", "the same, heard as a word"),
        ("set the volume to 40", "[percent]"),
        ("open the garage", "[door]"),
        ("stop", "another command's words: stop the music"),
    ],
)
def test_a_sentence_the_grammar_lets_go_on_is_not_finished(home, text, what_may_follow):
    assert home.is_sentence(text) and home.goes_on(text), what_may_follow
    assert not home.finished(text), what_may_follow


@pytest.mark.parametrize(
    ("text", "one_word_less"),
    [
        ("set the fan to 28", "set the fan to twenty"),
        ("set the fan to twenty-five", "set the fan to twenty"),
        ("set the volume to 40 percent", "set the volume to forty"),
        ("open the garage door", "open the garage"),
    ],
)
def test_a_sentence_one_word_longer_than_another_is_not_trusted_to_be_finished(home, text, one_word_less):
    """The decoder may have heard one word more than was said (a pause after "twenty" heard as
    "twenty eight"): ending there would cut the speaker short."""
    assert home.is_sentence(text) and not home.goes_on(text) and home.is_sentence(one_word_less)
    assert not home.finished(text)


@pytest.mark.parametrize(
    "text", ["", "turn on the", "set the fan to", "set a timer for 20", "turn on the attic light", "hello there"]
)
def test_the_start_of_a_sentence_or_no_command_at_all_is_not_finished(home, text):
    assert not home.finished(text)


def test_a_number_that_may_grow_is_seen_in_digits_and_in_words(tmp_path):
    completion = completion_of(
        tmp_path,
        "languages:\n  en:\n    lists:\n      n: {range: {from: 1, to: 200}}\n"
        "commands:\n  Level:\n    sentences: {en: ['level {n}']}\n",
    )
    # "one" starts "one hundred", which starts "one hundred twenty"; 200 is the range's last
    assert not completion.finished("level 1") and not completion.finished("level one")
    assert not completion.finished("level 100") and not completion.finished("level one hundred")
    assert completion.finished("level 7") and completion.finished("level seventeen")
    # each is another number with one word more ("level one hundred", "level two")
    assert not completion.finished("level one hundred and seventeen") and not completion.finished("level 200")
    assert spoken_form("level 125", "en") == spoken_form("level one hundred and twenty-five", "en")


def test_a_skip_word_does_not_hold_a_finished_command_open(home):
    """A skip word ("please") may be said anywhere: counted as a possible continuation, it
    would keep every command open. Said after a pause, it is a session of its own that runs
    nothing."""
    assert home.finished("turn on the kitchen light")
    assert not home.finished("turn on the kitchen light please")  # no sentence as spelled out


def test_with_the_wake_name_required_nothing_without_it_is_finished(tmp_path):
    completion = completion_of(tmp_path, HOME, require_wake_name=True)
    assert not completion.finished("turn on the kitchen light")
    assert completion.finished("computer, turn on the kitchen light")


def test_russian_numbers_in_each_form_they_are_said_in(tmp_path):
    completion = completion_of(tmp_path, RUSSIAN, language="ru-RU")
    assert completion.finished("поставь таймер на двадцать одну минуту")
    assert completion.finished("поставь таймер на 21 минуту")
    assert completion.finished("заведи таймер на пять минут")
    assert not completion.finished("поставь таймер на двадцать")  # "... двадцать одну минуту"
    assert not completion.finished("поставь таймер на 5")
