"""Finals -> command events -> actions, with the real matcher, runner and subprocesses."""

from __future__ import annotations

import contextlib
import sys
from dataclasses import replace

import yaml

from voiced.actions.config import ActionsSettings
from voiced.actions.runner import ActionRunner
from voiced.commands.loading import load_commands
from voiced.events import FinalEvent
from voiced.listen.confirmation import Confirmations
from voiced.listen.dispatch import CommandHandler

HOSTILE = "; rm -rf / $(touch PWNED) `touch PWNED2` && echo hi | cat > x"
WRITE_ARGS = "import sys; open(sys.argv[1], 'w').write('\\n'.join(sys.argv[2:]))"


def test_a_transcript_reaches_exec_only_as_data_and_other_speech_runs_nothing(tmp_path):
    out = tmp_path / "note"
    commands = tmp_path / "commands.yaml"
    commands.write_text(
        yaml.safe_dump(
            {
                "languages": {"en": {"lists": {"content": {"wildcard": True}}}},
                "commands": {
                    "Note": {
                        "sentences": {"en": ["note {content}"]},
                        "actions": [
                            {
                                "type": "exec",
                                "argv": [sys.executable, "-c", WRITE_ARGS, str(out), "$text", "$raw_text"],
                                "cwd": str(tmp_path),
                            }
                        ],
                    }
                },
            }
        )
    )
    events = []
    runner = ActionRunner(ActionsSettings(), events.append)
    handler = CommandHandler(load_commands([commands]), "en-US", runner, events.append)
    handler(FinalEvent(session=1, text=f"note {HOSTILE}", confidence=0.9))
    handler(FinalEvent(session=2, text="what a lovely day", confidence=0.9))
    assert runner.shutdown(30)
    kinds = [(e.type, getattr(e, "session", None)) for e in events]
    assert ("command_matched", 1) in kinds and ("rejected", 2) in kinds
    assert [e.type for e in events].count("action_finished") == 1
    # one argument each: $text normalized like the slot it contains, $raw_text as heard
    assert out.read_text().split("\n") == ["note rm rf touch pwned touch pwned2 echo hi cat x", f"note {HOSTILE}"]
    assert not (tmp_path / "PWNED").exists() and not (tmp_path / "PWNED2").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["commands.yaml", "note"]


def test_what_no_command_matched_is_asked_of_home_assistant_and_a_command_is_not(tmp_path):
    commands = tmp_path / "commands.yaml"
    commands.write_text(
        yaml.safe_dump(
            {
                "languages": {"en": {"wake_names": ["alice"]}},
                "commands": {"Hi": {"sentences": {"en": ["hello"]}, "actions": []}},
                "fallback": {"actions": [{"type": "exec", "argv": [sys.executable, "-c", "pass"]}]},
            }
        )
    )
    events, asked = [], []
    runner = ActionRunner(ActionsSettings(), events.append)
    converse = lambda text, session: asked.append((text, session))
    handler = CommandHandler(load_commands([commands]), "en-US", runner, events.append, converse)
    for session, text in enumerate(["alice, hello", "Alice, what's the weather?", "alice", "", "Open the doors"], 1):
        handler(FinalEvent(session=session, text=text, confidence=0.9))
    assert runner.shutdown(30)
    # the words as heard, without the wake name; the command file's fallback is not run
    assert asked == [("what's the weather?", 2), ("Open the doors", 5)]
    kinds = [(e.type, e.session) for e in events]
    assert kinds == [("command_matched", 1), ("rejected", 3), ("rejected", 4)]
    # no command files at all: every final with words is a question
    asked.clear()
    handler = CommandHandler(None, "en-US", runner, events.append, converse)
    handler(FinalEvent(session=6, text=" turn on the lights ", confidence=0.9))
    handler(FinalEvent(session=7, text="", confidence=0.0))
    assert asked == [("turn on the lights", 6)]


def test_a_command_the_engine_was_unsure_of_is_asked_back_and_runs_only_on_a_timely_yes(tmp_path):
    """The handler's side of asking back (voiced.listen.confirmation), its clock in the test's
    hands: the question is spoken (espeak-ng, into a player that keeps it) with the input held;
    "да" runs the command asked about; a "да" after the timeout, or with no question, runs nothing."""
    log = tmp_path / "ran"
    commands = tmp_path / "commands.yaml"
    timer = {"type": "exec", "argv": [sys.executable, "-c", WRITE_ARGS, str(log), "$minutes"]}
    commands.write_text(
        yaml.safe_dump(
            {
                "languages": {"ru": {"lists": {"minutes": {"range": {"from": 1, "to": 60}}}}},
                "commands": {
                    "SetTimer": {"sentences": {"ru": ["поставь таймер на {minutes} минут"]}, "actions": [timer]}
                },
            },
            allow_unicode=True,
        )
    )
    spoken = tmp_path / "question.wav"
    keep = f"import sys; open({str(spoken)!r}, 'wb').write(sys.stdin.buffer.read())"
    settings = ActionsSettings(
        sound_command=[sys.executable, "-c", keep], say_command=["espeak-ng", "-v", "ru", "--stdin", "--stdout"]
    )
    events, holds, now = [], [], [100.0]

    @contextlib.contextmanager
    def hold_input():
        holds.append("held")
        yield
        holds.append("released")

    runner = ActionRunner(settings, events.append)
    handler = CommandHandler(
        load_commands([commands]), "ru-RU", runner, events.append,
        confirmations=Confirmations(timeout_s=8), hold_input=hold_input, clock=lambda: now[0],
        await_answer=lambda: holds.append("gate opened"),
    )  # fmt: skip
    handler(
        FinalEvent(session=1, text="", confidence=0.0, reason="lead 1.2 only", unsure="поставь таймер на пять минут")
    )
    now[0] = 104.0
    handler(FinalEvent(session=2, text="да", confidence=0.9))
    handler(
        FinalEvent(session=3, text="", confidence=0.0, reason="lead 0.4 only", unsure="поставь таймер на шесть минут")
    )
    # another number heard unsure: the open question gives way to its own
    handler(
        FinalEvent(session=4, text="", confidence=0.0, reason="lead 0.4 only", unsure="поставь таймер на семь минут")
    )
    now[0] = 112.5  # past the 8 s
    handler(FinalEvent(session=5, text="да", confidence=0.9))
    assert runner.shutdown(30)
    seen = [(e.type, e.session) for e in events if not e.type.startswith("action")]
    assert seen == [
        ("confirmation_asked", 1),
        ("confirmation_answered", 2),
        ("command_matched", 1),
        ("confirmation_asked", 3),
        ("confirmation_answered", 4),
        ("confirmation_asked", 4),
        ("confirmation_answered", None),
        ("rejected", 5),
    ]
    assert [e.answer for e in events if e.type == "confirmation_answered"] == ["yes", "other", "timeout"]
    assert [e.question for e in events if e.type == "confirmation_asked"] == [
        "Поставь таймер на пять минут?",
        "Поставь таймер на шесть минут?",
        "Поставь таймер на семь минут?",
    ]
    assert log.read_text() == "5"
    # each question let its answer in without a wake word, and held the input while it was
    # spoken (they may overlap: two action threads)
    assert sorted(holds) == ["gate opened"] * 3 + ["held"] * 3 + ["released"] * 3 and spoken.read_bytes()[:4] == b"RIFF"


def test_an_unsure_command_heard_in_another_word_form_is_asked_back_in_it(tmp_path):
    """The engine takes a transcript that is a command as it stands, a word in another form of
    the template's ("поставить" for "поставь"): unsure of its number, it is asked all the same,
    in the words heard, and "да" runs the template's command."""
    commands = tmp_path / "commands.yaml"
    commands.write_text(
        yaml.safe_dump(
            {
                "languages": {"ru": {"lists": {"minutes": {"range": {"from": 1, "to": 60}}}}},
                "commands": {"SetTimer": {"sentences": {"ru": ["поставь таймер на {minutes} минут"]}, "actions": []}},
            },
            allow_unicode=True,
        )
    )
    keep = f"import sys; open({str(tmp_path / 'question.wav')!r}, 'wb').write(sys.stdin.buffer.read())"
    settings = ActionsSettings(
        sound_command=[sys.executable, "-c", keep], say_command=["espeak-ng", "-v", "ru", "--stdin", "--stdout"]
    )
    events: list = []
    runner = ActionRunner(settings, events.append)
    handler = CommandHandler(
        load_commands([commands]), "ru-RU", runner, events.append, confirmations=Confirmations(timeout_s=8)
    )
    unsure = "поставить таймер на восемь минут"
    handler(FinalEvent(session=1, text="", confidence=0.0, reason="lead 2.7 only", unsure=unsure))
    handler(FinalEvent(session=2, text="да", confidence=0.9))
    assert runner.shutdown(30)
    seen = [e for e in events if not e.type.startswith("action")]
    assert [(e.type, e.session) for e in seen] == [
        ("confirmation_asked", 1),
        ("confirmation_answered", 2),
        ("command_matched", 1),
    ]
    assert seen[0].question == "Поставить таймер на восемь минут?" and seen[2].slots == {"minutes": 8}


def test_a_question_unanswered_in_time_is_reported_as_time_passes():
    events, now = [], [100.0]
    commands = load_commands(["config/commands.yaml"])
    runner = ActionRunner(ActionsSettings(say_command=["true"]), events.append)
    handler = CommandHandler(
        commands, "ru-RU", runner, events.append, confirmations=Confirmations(timeout_s=8), clock=lambda: now[0]
    )
    handler.tick()  # nothing asked: nothing to report
    handler(FinalEvent(session=1, text="", confidence=0.0, reason="lead 1.2 only", unsure="стоп"))
    for now[0] in (104.0, 108.0):
        handler.tick()
    assert [e.type for e in events if not e.type.startswith("action")] == ["confirmation_asked"]
    now[0] = 108.05
    handler.tick()
    handler.tick()  # reported once
    answered = [e for e in events if e.type == "confirmation_answered"]
    assert [(e.intent, e.answer, e.session) for e in answered] == [("Stop", "timeout", None)]
    assert runner.shutdown(30)


def test_an_answer_heard_unsure_answers_an_open_question_and_nothing_else():
    """The wide search passes "да" guessed from a garble on as unsure: with a question open it
    is the answer (the command asked about runs); with none open it is rejected, never asked."""
    events, now = [], [100.0]
    runner = ActionRunner(ActionsSettings(say_command=["true"]), events.append)
    handler = CommandHandler(
        load_commands(["config/commands.yaml"]), "ru-RU", runner, events.append,
        confirmations=Confirmations(timeout_s=8), clock=lambda: now[0],
    )  # fmt: skip
    guessed_yes = FinalEvent(session=2, text="", confidence=0.0, reason="the answer 'Да.' fits", unsure="да")
    handler(FinalEvent(session=1, text="", confidence=0.0, reason="lead 1.2 only", unsure="стоп"))
    handler(guessed_yes)
    handler(replace(guessed_yes, session=3))  # no question open any more
    assert runner.shutdown(30)
    seen = [(e.type, e.session) for e in events if not e.type.startswith("action")]
    assert seen == [("confirmation_asked", 1), ("confirmation_answered", 2), ("command_matched", 1), ("rejected", 3)]
    assert [e.answer for e in events if e.type == "confirmation_answered"] == ["yes"]
