"""What no command matched goes to the stand-in HA and its answer is spoken with the `say`
path (say_command, then sound_command): through the real ActionRunner, and end to end
through the real daemon with real synthesized speech."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

from tests.actions.test_runner import Events
from tests.homeassistant.conftest import TOKEN, Reply, conversation_result
from voiced.actions.config import ActionsSettings
from voiced.actions.runner import ActionRunner
from voiced.commands.loading import load_configured
from voiced.daemon import run_daemon
from voiced.homeassistant.client import ConversationClient
from voiced.homeassistant.config import HomeAssistantSettings
from voiced.homeassistant.fallback import ConversationFallback
from voiced.settings import DaemonSettings
from voiced.testing import read_pcm, silence, write_wav

RATE = 16000
# the synthesizer passes the text through; the player appends what it is given to a file
SYNTHESIZER = [sys.executable, "-c", "import sys; sys.stdout.write(sys.stdin.read())"]


def speaking_into(path: Path) -> dict:
    player = [sys.executable, "-c", f"import sys; open({str(path)!r}, 'a').write(sys.stdin.read() + '\\n')"]
    return {"say_command": SYNTHESIZER, "sound_command": player}


def section(home_assistant, token_file, **settings) -> dict:
    return {"url": home_assistant.url, "token": {"file": str(token_file)}, "timeout_s": 5, **settings}


@pytest.fixture
def ask(home_assistant, token_file, tmp_path):
    """ask(text, **section) -> (the events, what was spoken), once the outcome is reported."""
    spoken = tmp_path / "spoken"
    runners = []

    def ask(text: str, actions: dict | None = None, **settings) -> tuple[Events, list[str]]:
        events = Events()
        runner = ActionRunner(ActionsSettings.model_validate(actions or speaking_into(spoken)), events)
        runners.append(runner)
        client = ConversationClient(
            HomeAssistantSettings.model_validate(section(home_assistant, token_file, **settings)), "en-US"
        )
        fallback = ConversationFallback(client, runner, events)
        fallback(text, 3)
        assert runner.shutdown(60)  # the question, the answer and its speaking have run
        fallback.close()
        return events, spoken.read_text().splitlines() if spoken.exists() else []

    yield ask
    for runner in runners:
        runner.shutdown(5)


def test_has_answer_is_reported_and_spoken(ask, home_assistant):
    events, spoken = ask("what is the weather like tomorrow")
    assert [e["type"] for e in events] == ["conversation_started", "conversation_answered"]
    started, answered = events
    assert started == {
        "type": "conversation_started",
        "text": "what is the weather like tomorrow",
        "language": "en-US",
        "session": 3,
    }
    assert answered["answer"] == "You asked: what is the weather like tomorrow" and answered["session"] == 3
    assert (answered["response_type"], answered["error_code"], answered["conversation_id"]) == (
        "action_done",
        None,
        "01JSTANDIN",
    )
    assert spoken == ["You asked: what is the weather like tomorrow"]
    assert home_assistant.requests[0].headers["authorization"] == f"Bearer {TOKEN}"


def test_has_own_error_answer_is_spoken_and_its_code_reported(ask, home_assistant, caplog):
    sorry = "Sorry, I couldn't understand that"
    home_assistant.answer = lambda request: Reply(body=conversation_result(sorry, "error", "no_intent_match"))
    events, spoken = ask("fly me to the moon")
    answered = events[-1]
    assert (answered["type"], answered["response_type"], answered["error_code"]) == (
        "conversation_answered",
        "error",
        "no_intent_match",
    )
    assert spoken == [sorry]
    assert "Home Assistant could not do 'fly me to the moon' (no_intent_match)" in caplog.text


@pytest.mark.parametrize(
    "reply, error",
    [
        (Reply(500, b'{"message": "Agent crashed"}'), "HTTP 500: Agent crashed"),
        (Reply(body=b"<html>proxy login</html>"), "the reply is not JSON (24 bytes)"),
    ],
)
def test_a_failure_is_reported_and_nothing_is_spoken(ask, home_assistant, reply, error):
    home_assistant.answer = lambda request: reply
    events, spoken = ask("what time is it")
    assert [e["type"] for e in events] == ["conversation_started", "conversation_failed"]
    assert events[-1]["stage"] == "ask" and events[-1]["error"].endswith(error)
    assert spoken == []


def test_an_answer_that_cannot_be_spoken_is_a_failure_after_the_answer(ask, tmp_path):
    mute = {"say_command": SYNTHESIZER, "sound_command": [sys.executable, "-c", "import sys; sys.exit('no device')"]}
    events, _ = ask("what time is it", actions=mute)
    assert [e["type"] for e in events] == ["conversation_started", "conversation_answered", "conversation_failed"]
    assert events[-1]["stage"] == "speak" and "no device" in events[-1]["error"]
    events, spoken = ask("what time is it", speak=False)
    assert [e["type"] for e in events] == ["conversation_started", "conversation_answered"] and spoken == []


@pytest.mark.parametrize("engine", ["pocketsphinx", "whisper"])
def test_through_the_daemon_a_question_reaches_ha_and_commands_do_not(
    engine, home_assistant, token_file, speech, tmp_path
):
    """Real speech, the embedded recognizer, the real matcher, runner and client. pocketsphinx:
    its open model (with Home Assistant the daemon does not narrow it to the commands' grammar);
    whisper: the commands model, whose final is what Whisper heard when no command fits."""
    log, spoken = tmp_path / "commands.log", tmp_path / "spoken"
    write = [sys.executable, "-c", f"import sys; open({str(log)!r}, 'a').write(' '.join(sys.argv[1:]) + '\\n')"]
    commands = tmp_path / "commands.yaml"
    commands.write_text(
        yaml.safe_dump(
            {
                "languages": {"en": {"lists": {"minutes": {"range": {"from": 1, "to": 60}}}}},
                "commands": {
                    "SetTimer": {
                        "sentences": {"en": ["set [a] timer for {minutes} (minute|minutes)"]},
                        "actions": [{"type": "exec", "argv": [*write, "timer", "$minutes"]}],
                    },
                    "LightOn": {
                        "sentences": {"en": ["turn on [the] kitchen light"]},
                        "actions": [{"type": "exec", "argv": [*write, "light", "on"]}],
                    },
                },
            }
        )
    )
    settings = DaemonSettings.model_validate(
        {
            "recognition": {"language": "en-US"},
            "commands": {"files": [str(commands)], "local_grammar": {"engine": engine}},
            "actions": speaking_into(spoken),
            "home_assistant": section(home_assistant, token_file),
        }
    )
    pcm = silence(1.0, RATE)
    for voice, text in [
        ("flite:slt", "what is the weather like tomorrow"),
        ("flite:slt", "set a timer for five minutes"),
        ("flite:awb", "turn on the kitchen light"),
    ]:
        pcm += read_pcm(speech(text, voice))[0] + silence(1.5, RATE)
    wav = write_wav(tmp_path / "spoken.wav", pcm, RATE)
    events = Events()
    run_daemon(settings, load_configured(settings.commands), str(wav), events)  # returns once actions are done
    by_type = {kind: [e for e in events if e["type"] == kind] for kind in {e["type"] for e in events}}
    assert sorted(e["intent"] for e in by_type["command_matched"]) == ["LightOn", "SetTimer"]
    assert sorted(log.read_text().splitlines()) == ["light on", "timer 5"]
    # only the question went to HA, as the transcript, in the JSON body alone
    (request,) = home_assistant.requests
    assert json.loads(request.body) == {"text": "what is the weather like tomorrow", "language": "en-US"}
    (answered,) = by_type["conversation_answered"]
    assert answered["session"] == 1 and "conversation_failed" not in by_type and "rejected" not in by_type
    assert spoken.read_text().splitlines() == ["You asked: what is the weather like tomorrow"]
