"""The closed-set decision, pure: the shipped commands, transcripts and scores as the Whisper
edge would give them (tests/test_server_whisper.py runs it on real speech)."""

import pytest
import yaml

from voiced.commands import load_commands
from voiced.commands.closedset import ClosedSet, Score


@pytest.fixture(scope="module")
def closed_set():
    return ClosedSet(load_commands(["config/commands.yaml"]), "en-US")


def test_candidates_are_the_nearest_sentences_and_the_second_opinion(closed_set):
    texts = [s.text for s in closed_set.candidates("Set a timer for 40 for minutes.")]
    assert "set a timer for 40 minutes" in texts and len(texts) <= 4
    with_opinion = [
        s.text for s in closed_set.candidates("Set a timer for 40 for minutes.", "set a timer for forty four minutes")
    ]
    assert with_opinion[-1] == "set a timer for 44 minutes"
    assert closed_set.candidates("Did you see the game last night?") == []  # nothing near


def test_written_forms_follow_the_transcript(closed_set):
    timer = next(s for s in closed_set.sentences if s.text == "set a timer for 44 minutes")
    assert closed_set.written_forms(timer, "Alice, set a timer for 40 for minutes, please.") == [
        ("alice set a timer for 44 minutes please", "Alice, set a timer for 44 minutes, please.")
    ]
    assert closed_set.written_forms(timer, "Set a timer for forty for minutes") == [
        ("set a timer for 44 minutes", "Set a timer for forty-four minutes.")
    ]
    volume = next(s for s in closed_set.sentences if s.text == "set the volume to 50 percent")
    assert [written for _, written in closed_set.written_forms(volume, "Set volume to 55%.")] == [
        "Set the volume to 50%."
    ]
    assert [written for _, written in closed_set.written_forms(volume, "Set the volume, please")] == [
        "Set the volume to 50%, please.",
        "Set the volume to fifty percent, please.",
    ]
    # a first word the sentence lacks may be the wake name heard wrong: each is tried there
    assert closed_set.written_forms(volume, "Ellis said the volume to 50, please.") == [
        ("set the volume to 50 percent please", "Set the volume to 50%, please."),
        ("computer set the volume to 50 percent please", "Computer, set the volume to 50%, please."),
        ("alice set the volume to 50 percent please", "Alice, set the volume to 50%, please."),
    ]


def test_a_candidate_is_taken_within_the_margin_only(closed_set):
    heard = "Set a timer for 40 for minutes."
    [timer] = [s for s in closed_set.sentences if s.text == "set a timer for 44 minutes"]
    text, form = closed_set.written_forms(timer, heard)[0]
    near = closed_set.choose(
        heard, Score(-2.0, 9), [(timer, text, form, Score(-4.5, 8))], margin=3.0, number_margin=3.0
    )
    assert (near.accepted, near.text, near.gap) == (True, "set a timer for 44 minutes", 2.5)
    assert near.changes_number  # 44 was not heard: the number margin applies
    strict = closed_set.choose(
        heard, Score(-2.0, 9), [(timer, text, form, Score(-4.5, 8))], margin=3.0, number_margin=2.0
    )
    assert not strict.accepted and "with a number not heard" in strict.reason
    far = closed_set.choose(heard, Score(-2.0, 9), [(timer, text, form, Score(-5.5, 8))], margin=9.0, number_margin=3.0)
    assert (far.accepted, far.text, far.candidate) == (
        False,
        "set a timer for 40 for minutes",
        "set a timer for 44 minutes",
    )
    nothing = closed_set.choose("Tell me a joke.", Score(-1.0, 5), [], margin=3.0, number_margin=3.0)
    assert not nothing.accepted and nothing.text == "tell me a joke"


def test_a_number_that_sounds_like_another_must_win_clearly(closed_set):
    choice = closed_set.as_heard("Set a timer for 15 minutes.", 0.9)
    assert closed_set.contrasts(choice) == ["Set a timer for 50 minutes."]
    clear = closed_set.confirm(choice, Score(-2.0, 8), [("...50...", Score(-9.0, 8))], lead=4.0)
    assert clear.accepted and clear.text == choice.text and clear.lead == 7.0
    close = closed_set.confirm(choice, Score(-2.0, 8), [("...50...", Score(-4.5, 8))], lead=4.0)
    assert not close.accepted and close.text == ""  # the transcript is a command: not to be taken


def test_likely_contrasts_are_what_contrasts_scores_for_the_usual_writing(closed_set):
    """Scored ahead, beside the transcript: the grammar decoder's words as Whisper usually
    writes them, then what contrasts() gives for that text; nothing without a number alike."""
    likely = closed_set.likely_contrasts("set a timer for fifteen minutes")
    assert likely == ["Set a timer for 15 minutes.", "Set a timer for 50 minutes."]
    assert likely[1:] == closed_set.contrasts(closed_set.as_heard(likely[0], 0.9))
    assert closed_set.likely_contrasts("set a timer for five minutes") == []
    assert closed_set.likely_contrasts("turn on the kitchen light") == []
    assert closed_set.likely_contrasts("") == []


def test_the_second_recognizer_vetoes_other_numbers_but_not_its_known_slip(closed_set):
    twenty = closed_set.as_heard("Set a timer for 20 minutes.", 0.9)
    vetoed = closed_set.confirm(twenty, None, [], lead=4.0, second_opinion="set a timer for twenty nine minutes")
    assert not vetoed.accepted and vetoed.text == "" and "other numbers" in vetoed.reason
    assert closed_set.confirm(twenty, None, [], 4.0, "set a timer for twenty minutes").accepted
    assert closed_set.confirm(twenty, None, [], 4.0, "what time is it").accepted  # no number: no opinion
    fifteen = closed_set.as_heard("Set a timer for 15 minutes.", 0.9)
    slip = closed_set.confirm(
        fifteen, Score(-2.0, 8), [("...50...", Score(-9.0, 8))], 4.0, "set a timer for fifty minutes"
    )
    assert slip.accepted  # "-teen" heard as "-ty" by the grammar: the lead (7) decides
    fifty = closed_set.as_heard("Set a timer for 50 minutes.", 0.9)
    assert not closed_set.confirm(fifty, None, [], 4.0, "set a timer for fifteen minutes").accepted
    words = closed_set.as_heard("Set a timer for fifteen minutes.", 0.9)
    assert closed_set.contrasts(words) == ["Set a timer for fifty minutes."]
    assert closed_set.contrasts(closed_set.as_heard("Set a timer for 5 minutes.", 0.9)) == []


def test_russian_scores_per_token_and_numbers_against_the_runner_up():
    """Russian (multilingual base): mean log-probability per token, so a long command is not
    outscored by a short one; a number is taken only when the recognizer's next likeliest number
    at its place trails by the lead (a number with no lead known is not taken)."""
    russian = ClosedSet(load_commands(["config/commands.yaml"]), "ru-RU", per_token=True)
    heard = "Поставьте таймер на 5 минут."
    [timer] = [s for s in russian.sentences if s.text == "поставь таймер на 5 минут"]
    [stop] = [s for s in russian.sentences if s.text == "стоп"]
    timer_form = russian.written_forms(timer, heard)[0]
    stop_form = russian.written_forms(stop, heard)[0]
    scored = [(timer, *timer_form, Score(-8.0, 10)), (stop, *stop_form, Score(-4.0, 3))]  # per token: -0.8 and -1.33
    choice = russian.choose(heard, Score(-7.0, 10), scored, margin=1.45, number_margin=0.25)
    assert (choice.accepted, choice.text, round(choice.gap, 2)) == (True, "поставь таймер на 5 минут", 0.1)
    assert russian.number_form(choice) == "Поставь таймер на 5 минут."
    assert russian.contrasts(choice) == []  # no table of numbers alike: the runner-up decides
    clear = russian.confirm(choice, Score(-8.0, 10, number_lead=4.2), [], lead=3.0)
    assert clear.accepted and clear.lead == 4.2
    close = russian.confirm(choice, Score(-8.0, 10, number_lead=1.1), [], lead=3.0)
    assert not close.accepted and close.text == "" and "leads the next likeliest number by 1.10" in close.reason
    # what the daemon may ask back: the sentence in words, the number agreeing with its noun
    assert close.unsure == "поставь таймер на пять минут" and clear.unsure == ""
    assert not russian.confirm(choice, Score(-8.0, 10), [], lead=3.0).accepted  # no lead known


@pytest.mark.parametrize(
    ("heard", "changes_number"),
    [
        ("Поставьте мир на 40 80 минут.", False),  # "сорок восемь": units heard as "восемьдесят"
        ("Поставьте мир на 40 8 минут.", False),
        ("Поставьте мир на 40 18 минут.", False),  # "восемь" heard as "восемнадцать"
        ("Поставьте мир на 40 минут.", True),
        ("Поставьте мир на 80 минут.", True),
        ("Поставьте мир на 8 40 минут.", True),  # units before the tens are not its units
    ],
)
def test_tens_and_a_number_like_units_after_them_are_a_number_heard(heard, changes_number):
    """Whisper base writes the units after tens as a number that sounds like them: a candidate
    with that number is held to the usual margin, not to the margin of a number not heard."""
    russian = ClosedSet(load_commands(["config/commands.yaml"]), "ru-RU", per_token=True)
    [timer] = [s for s in russian.sentences if s.text == "поставь таймер на 48 минут"]
    text, form = russian.written_forms(timer, heard)[0]
    choice = russian.choose(
        heard, Score(-7.0, 10), [(timer, text, form, Score(-12.0, 10))], margin=1.45, number_margin=0.25
    )
    assert (choice.changes_number, choice.accepted) == (changes_number, not changes_number)


@pytest.mark.parametrize(
    ("heard", "changes_number"),
    [
        ("Сделай громко 120 процентов.", False),  # "громкость двадцать": "сть" heard as "сто"
        ("Сделай громко с 120 процентов.", False),
        ("Сделай громко 220 процентов.", True),
        ("Сделай громко 100 процентов.", True),
    ],
)
def test_a_hundred_and_a_number_heard_may_be_the_number(heard, changes_number):
    russian = ClosedSet(load_commands(["config/commands.yaml"]), "ru-RU", per_token=True)
    [volume] = [s for s in russian.sentences if s.text == "сделай громкость 20 процентов"]
    text, form = russian.written_forms(volume, heard)[0]
    choice = russian.choose(
        heard, Score(-7.0, 10), [(volume, text, form, Score(-12.0, 10))], margin=1.45, number_margin=0.25
    )
    assert (choice.changes_number, choice.accepted) == (changes_number, not changes_number)


def test_a_number_heard_garbled_is_only_ever_asked_back(closed_set):
    """No number at all in the transcript ("сорок" heard as "сороть"), none that agrees with
    its noun, or the candidate's number half of two in a row: the usual margin, then asked,
    whatever its lead. A number heard as another one keeps the strict margin. English (no
    asking back) keeps it in every case."""
    russian = ClosedSet(load_commands(["config/commands.yaml"]), "ru-RU", per_token=True)
    [volume] = [s for s in russian.sentences if s.text == "сделай громкость 40 процентов"]
    garbled = "Сделай громко сороть процентов."
    text, form = russian.written_forms(volume, garbled)[0]
    choice = russian.choose(
        garbled, Score(-7.0, 10), [(volume, text, form, Score(-12.0, 10))], margin=1.45, number_margin=0.25
    )
    assert (choice.accepted, choice.changes_number, choice.number_unclear) == (True, True, True)
    assert russian.number_form(choice) is None  # no lead to decode: it is asked anyway
    asked = russian.confirm(choice, None, [], lead=3.0)
    assert (asked.accepted, asked.unsure) == (False, "сделай громкость сорок процентов")
    assert "its number was not heard clearly" in asked.reason
    # a number that does not agree with its noun was heard no better ("две" as "9 минуты")
    [timer] = [s for s in russian.sentences if s.text == "поставь таймер на 2 минуты"]
    for heard, unclear in (("Поставьте мир на 9 минуты.", True), ("Поставьте мир на 9 минут.", False)):
        text, form = russian.written_forms(timer, heard)[0]
        timer_choice = russian.choose(heard, Score(-7.0, 10), [(timer, text, form, Score(-12.0, 10))], 1.45, 0.25)
        assert (timer_choice.accepted, timer_choice.number_unclear) == (unclear, unclear)
    # half of two numbers in a row ("тридцать пять" as "30 30"), not what the pair may be (48)
    for said, heard, unclear in (
        ("заведи таймер на 30 минут", "Заведите мир на 30 30 минут.", True),
        ("заведи таймер на 48 минут", "Заведите мир на 40 80 минут.", False),
    ):
        [timer] = [s for s in russian.sentences if s.text == said]
        text, form = russian.written_forms(timer, heard)[0]
        timer_choice = russian.choose(heard, Score(-7.0, 10), [(timer, text, form, Score(-12.0, 10))], 1.45, 0.25)
        assert (timer_choice.accepted, timer_choice.number_unclear) == (True, unclear)
    other = "Сделай громко 70 процентов."
    text, form = russian.written_forms(volume, other)[0]
    strict = russian.choose(
        other, Score(-7.0, 10), [(volume, text, form, Score(-12.0, 10))], margin=1.45, number_margin=0.25
    )
    assert (strict.accepted, strict.number_unclear) == (False, False)
    english = "Set a timer for for minutes."
    [timer] = [s for s in closed_set.sentences if s.text == "set a timer for 44 minutes"]
    text, form = closed_set.written_forms(timer, english)[0]
    kept = closed_set.choose(
        english, Score(-2.0, 9), [(timer, text, form, Score(-4.5, 8))], margin=3.0, number_margin=2.0
    )
    assert (kept.accepted, kept.number_unclear) == (False, False)


def test_a_number_word_heard_wrong_is_near_its_word():
    """Sentences are near what was heard with their numbers in digits or in words: "сороть"
    (for "сорок") is near no digits, but nearest to the sentence with forty in words."""
    russian = ClosedSet(load_commands(["config/commands.yaml"]), "ru-RU", per_token=True)
    assert russian.candidates("сделай громко сороть процентов")[0].text == "сделай громкость 40 процентов"
    assert russian.candidates("поставьте мир на 40 80 минут")[1].text == "поставь таймер на 48 минут"


def test_a_slot_value_heard_as_nothing_near_it_is_only_ever_asked_back():
    """A room the file lacks ("включи свет в прихожей") scores near "включи свет в кухне", but
    nothing written is near "кухне": asked, not run. A room heard garbled but near runs."""
    russian = ClosedSet(load_commands(["config/commands.yaml"]), "ru-RU", per_token=True)
    [kitchen] = [s for s in russian.sentences if s.text == "включи свет в кухне"]
    for heard, unheard in (("Включи свет в прихожей.", ("кухне",)), ("Включи свет в кухно.", ())):
        text, form = russian.written_forms(kitchen, heard)[0]
        choice = russian.choose(heard, Score(-7.0, 10), [(kitchen, text, form, Score(-12.0, 10))], 1.45, 0.25)
        assert (choice.accepted, choice.unheard) == (True, unheard)
        confirmed = russian.confirm(choice, None, [], lead=3.0)
        assert (confirmed.accepted, confirmed.unsure) == (not unheard, "включи свет в кухне" if unheard else "")
        assert ("nothing heard is near 'кухне'" in confirmed.reason) == bool(unheard)


def test_english_runs_a_slot_value_heard_as_nothing_near_it(closed_set):
    """No asking back in English (tiny.en, tuned without it): the margin alone decides."""
    [kitchen] = [s for s in closed_set.sentences if s.text == "turn on the kitchen light"]
    heard = "Turn on the garage light."
    text, form = closed_set.written_forms(kitchen, heard)[0]
    choice = closed_set.choose(
        heard, Score(-2.0, 8), [(kitchen, text, form, Score(-3.0, 8))], margin=3.0, number_margin=2.0
    )
    assert (choice.accepted, choice.unheard) == (True, ())


def test_a_slot_value_is_checked_in_a_sentence_that_begins_with_a_skip_word(tmp_path):
    """The candidate is reported with the skip words heard around it, and the sentence has one
    of its own: its slot values are still found and checked."""
    path = tmp_path / "commands.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "languages": {"ru": {"skip_words": ["пожалуйста"], "lists": {"room": {"values": ["кухне"]}}}},
                "commands": {"LightOn": {"sentences": {"ru": ["пожалуйста включи свет в {room}"]}}},
            },
            allow_unicode=True,
        )
    )
    russian = ClosedSet(load_commands([path]), "ru-RU", per_token=True)
    heard = "Пожалуйста, включи свет в прихожей, пожалуйста."
    text, form = russian.written_forms(russian.sentences[0], heard)[0]
    choice = russian.choose(heard, Score(-7.0, 10), [(russian.sentences[0], text, form, Score(-12.0, 10))], 1.45, 0.25)
    assert (choice.accepted, choice.unheard) == (True, ("кухне",))
