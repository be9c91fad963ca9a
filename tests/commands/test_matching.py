import pytest

from voiced.commands import CommandsSettings, load_commands

EXAMPLE = "config/commands.yaml"


@pytest.fixture(scope="module")
def commands():
    return load_commands([EXAMPLE])


@pytest.mark.parametrize(
    ("text", "language", "intent", "slots"),
    [
        ("Turn on the kitchen light.", "en-US", "LightOn", {"room": "kitchen", "device": "light"}),
        (
            "Alice, switch off the lights in the lounge please",
            "en",
            "LightOff",
            {"room": "living_room", "device": "light"},
        ),
        ("set a timer for twenty-five minutes", "en", "SetTimer", {"minutes": 25}),
        ("Set a timer for 25 minutes", "en", "SetTimer", {"minutes": 25}),
        ("set the volume to 40 percent", "en", "SetVolume", {"volume": 40}),
        ("Алиса, включи свет на кухне!", "ru-RU", "LightOn", {"room": "kitchen", "device": "light"}),
        ("погаси свет в спальне", "ru", "LightOff", {"room": "bedroom", "device": "light"}),
        ("Поставь таймер на двадцать одну минуту", "ru", "SetTimer", {"minutes": 21}),
        ("заведи таймер на 5 минут", "ru", "SetTimer", {"minutes": 5}),
        ("Сколько сейчас времени?", "ru", "WhatTime", {}),
        ("ЗАМОЛЧИ", "ru", "Stop", {}),
    ],
)
def test_exact_matches_with_typed_slots(commands, text, language, intent, slots):
    match = commands.match(text, language)
    assert match is not None, text
    assert (match.intent, match.slots, match.score) == (intent, slots, 1.0)
    assert type(match.slots.get("minutes", 0)) is int
    assert match.actions  # the command's actions come with the match


def test_fuzzy_match_forgives_fillers_and_word_forms_within_its_threshold(commands):
    near = commands.match("um turned on the the kitchen lights okay", "en")  # "turned": a form of "turn"
    assert near.intent == "LightOn" and near.slots["room"] == "kitchen" and 0.85 <= near.score < 1.0
    assert commands.match("uh so turn on kitchen light", "en").slots["room"] == "kitchen"
    assert commands.match("turn on the garden sprinkler", "en") is None
    assert commands.match("what is the weather like tomorrow", "en") is None
    assert commands.match("", "en") is None
    strict = load_commands([EXAMPLE], CommandsSettings(fuzzy_threshold=1.0))
    assert strict.match("um turned on the the kitchen lights okay", "en") is None


@pytest.mark.parametrize(
    "text",
    [
        "set a timer for ninety minutes",  # out of range: never 9 or 19
        "set a timer for 90 minutes",
        "set a timer for zero minutes",  # below the range
        "set a timer for a hundred minutes",
        "set the volume to fifty five",  # off the range's step: never 50
        "set the volume to 5",
        "turn on the lights in the attic",  # no such room: never another one
        "turn on the garage light",
        "turn on the kitchen light in the attic",  # words added that are not fillers
        "turn on the kitchen fan",
        "turn of the kitchen light",  # "of" is no form of "on" or "off"
        "unlock the kitchen light",
    ],
)
def test_fuzzy_match_never_changes_what_a_slot_heard(commands, text):
    assert commands.match(text, "en") is None


def test_apostrophes_match_either_way(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(
        'languages:\n  en:\n    lists:\n      room: {values: ["kid\'s room", study]}\n'
        'commands:\n  Weather:\n    sentences: {en: ["what\'s the weather [like]"]}\n'
        '  Light:\n    sentences: {en: ["light the {room}"]}\n'
    )
    commands = load_commands([path])
    for text in ("What's the weather?", "whats the weather like", "What’s the weather"):
        assert commands.match(text, "en").intent == "Weather", text
    assert commands.match("light the kids room", "en").slots == {"room": "kid's room"}
    assert commands.match("Light the kid's room.", "en").slots == {"room": "kid's room"}
    assert commands.lint("en") == []


def test_lint_finds_templates_that_never_run_their_command(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(
        "commands:\n  A:\n    sentences: {en: ['turn on the light']}\n"
        "  B:\n    sentences: {en: ['turn on the light', 'switch on the light', '?!']}\n"
    )
    findings = {(f.intent, f.template): f.message for f in load_commands([path]).lint("en")}
    assert set(findings) == {("B", 0), ("B", 2)}
    assert findings[("B", 0)].startswith("is shadowed by A")
    assert findings[("B", 2)].startswith("can never match")


def test_required_wake_name_and_unknown_language():
    strict = load_commands([EXAMPLE], CommandsSettings(require_wake_name=True))
    assert strict.match("turn on the kitchen light", "en") is None
    assert strict.match("computer, turn on the kitchen light", "en").intent == "LightOn"
    assert strict.match("Компьютер, стоп", "ru").intent == "Stop"
    assert strict.match("turn on the kitchen light", "de") is None


def test_fallback_handler_gets_unmatched_speech(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(
        "commands:\n  Hi:\n    sentences: {en: ['hello']}\nfallback:\n  actions: [{type: say, text: 'pardon?'}]\n"
    )
    commands = load_commands([path])
    assert commands.match("hello", "en").is_fallback is False
    fallback = commands.match("open the pod bay doors", "en")
    assert fallback.is_fallback and fallback.intent == "fallback" and fallback.actions[0].text == "pardon?"


def test_what_is_addressed_to_another_listener_keeps_its_words_without_the_wake_name():
    commands = load_commands([EXAMPLE])
    assert commands.addressed("  What's the weather like? ", "en-US") == "What's the weather like?"
    assert commands.addressed("Computer, what's the weather like?", "en") == "what's the weather like?"
    assert commands.addressed("Компьютер, какая погода?", "ru") == "какая погода?"
    assert commands.addressed("computer", "en") is None and commands.addressed(" ,. ", "en") is None
    strict = load_commands([EXAMPLE], CommandsSettings(require_wake_name=True))
    assert strict.addressed("what's the weather like", "en") is None
    assert strict.addressed("computer what's the weather like", "en") == "what's the weather like"
    assert strict.addressed("computer what's the weather like", "de") is None


def test_only_a_near_miss_loads_rapidfuzz():
    """~2.3 MB of a ~60 MB remote-endpoint daemon: transcripts that match exactly (all of the
    commands grammar's) never need it. A fresh interpreter: this one may hold it already."""
    import subprocess
    import sys

    code = (
        "import sys\nfrom voiced.commands import load_commands\n"
        f"commands = load_commands([{EXAMPLE!r}])\n"
        "exact = commands.match('turn on the kitchen light', 'en')\n"
        "print(exact.intent, 'rapidfuzz' in sys.modules)\n"
        "near = commands.match('um turned on the the kitchen lights okay', 'en')\n"
        "print(near.intent, 'rapidfuzz' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.split("\n")[:2] == ["LightOn False", "LightOn True"]
