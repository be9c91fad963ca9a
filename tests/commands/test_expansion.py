import pytest

from voiced.commands import CommandsSettings, load_commands
from voiced.commands.expansion import TooManySentences, expand

EXAMPLE = "config/commands.yaml"


@pytest.fixture(scope="module")
def commands():
    return load_commands([EXAMPLE])


def test_every_sentence_is_spelled_out_once_with_its_slot_words(commands):
    sentences = commands.sentences("en")
    texts = [s.text for s in sentences]
    assert len(texts) == len(set(texts)) == 721  # 2x2x6x3 x2 x2 (lights) + 2x60x2 + 2x11x2 + 2 + 3
    timer = next(s for s in sentences if s.text == "set timer for 45 minutes")
    assert (timer.intent, [(x.name, x.value, timer.words[x.start : x.end]) for x in timer.slots]) == (
        "SetTimer",
        [("minutes", 45, ("45",))],
    )
    lounge = next(s for s in sentences if s.text == "switch off the lights in the living room")
    assert [(x.name, x.value, lounge.words[x.start : x.end]) for x in lounge.slots] == [
        ("room", "living_room", ("living", "room"))
    ]
    assert lounge.slot_word_indices() == {6, 7}
    # every spelled-out sentence is a command the matcher gives the same intent and slots
    for sentence in sentences[::9]:
        match = commands.match(sentence.text, "en", fuzzy=False)
        assert match.intent == sentence.intent
        assert {x.name: x.value for x in sentence.slots}.items() <= match.slots.items()


def test_words_keep_their_apostrophes_as_spoken_and_lose_them_as_matched(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text('commands:\n  W:\n    sentences: {en: ["what\'s (on;up)"]}\n')
    sentences = load_commands([path]).sentences("en")
    assert sorted(s.spoken for s in sentences) == [("what's", "on", "up"), ("what's", "up", "on")]
    assert sorted(s.text for s in sentences) == ["whats on up", "whats up on"]


def test_the_set_is_bounded_and_free_text_templates_are_left_out(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(
        "languages:\n  en:\n    lists:\n      n: {range: {from: 1, to: 30}}\n"
        "      note: {wildcard: true}\n"
        "commands:\n  Big:\n    sentences: {en: ['{n} and {n} and {n}']}\n"
        "  Note:\n    sentences: {en: ['note {note}', 'clear notes']}\n"
    )
    with pytest.raises(Exception) as error:
        load_commands([path], CommandsSettings(max_sentences=10_000))
    assert "more than 10000 sentences" in str(error.value)
    commands = load_commands([path], CommandsSettings(max_sentences=30_000))
    assert len(commands.sentences("en")) == 27_001  # 30 x 30 x 30, and the wildcard template is no list
    with pytest.raises(TooManySentences):
        list(expand(commands.spoken_intents("en"), limit=999))
