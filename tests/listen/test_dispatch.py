"""Finals -> command events -> actions, with the real matcher, runner and subprocesses."""

from __future__ import annotations

import sys

import yaml

from voiced.actions.config import ActionsSettings
from voiced.actions.runner import ActionRunner
from voiced.commands.loading import load_commands
from voiced.events import FinalEvent
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
