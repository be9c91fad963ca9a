"""Asking back: the pure core (its clock passed in), and the whole daemon asking with real
Russian speech through the real Whisper engine and espeak-ng speaking the question."""

from __future__ import annotations

import sys

import yaml

from tests.test_daemon import of_type, run_collect, shipped_commands_logging_to
from voiced.actions.context import Match
from voiced.commands.answers import NO, YES
from voiced.commands.config import ConfirmSettings
from voiced.commands.loading import load_commands
from voiced.listen.confirmation import Confirmations, confirmations_for, question_text
from voiced.settings import DaemonSettings
from voiced.testing import mix, noise, read_pcm, silence, write_wav

RATE = 16000
FESTIVAL = "festival:msu_ru_nsh_clunits"
TIMER = Match("SetTimer", {"minutes": 22}, "поставь таймер на 22 минуты", 1.0, "ru")


def answer(intent: str | None) -> Match | None:
    return None if intent is None else Match(intent, {}, "", 1.0, "ru")


def test_question_is_the_sentence_asked():
    assert question_text("поставь таймер на двадцать две минуты") == "Поставь таймер на двадцать две минуты?"
    assert question_text(" стоп. ") == "Стоп?"


def test_yes_runs_the_command_asked_and_closes_the_question():
    confirmations = Confirmations(timeout_s=8)
    asked = confirmations.ask(TIMER, "поставь таймер на двадцать две минуты", 3, now=100.0)
    assert confirmations.answer(answer(YES), "да", now=105.0) == (asked, "yes")
    assert confirmations.open is None
    assert confirmations.answer(answer(YES), "да", now=106.0) is None  # nothing is open any more


def test_no_other_speech_and_a_late_answer_run_nothing():
    confirmations = Confirmations(timeout_s=8)
    for heard, match, now, expected in [
        ("нет", answer(NO), 101.0, "no"),
        ("включи свет на кухне", answer("LightOn"), 101.0, "other"),
        ("какая погода", None, 101.0, "other"),
        ("да", answer(YES), 108.5, "timeout"),
    ]:
        asked = confirmations.ask(TIMER, "поставь таймер на двадцать две минуты", 3, now=100.0)
        assert confirmations.answer(match, heard, now) == (asked, expected), heard


def test_nothing_heard_leaves_the_question_open_until_its_time():
    confirmations = Confirmations(timeout_s=8)
    asked = confirmations.ask(TIMER, "поставь таймер на двадцать две минуты", 3, now=100.0)
    assert confirmations.answer(None, "", now=104.0) is None  # a cough in the pause
    assert confirmations.open == asked
    assert confirmations.answer(None, "", now=108.1) == (asked, "timeout")


def test_asking_is_on_only_where_the_commands_hold_the_languages_answers(tmp_path):
    path = tmp_path / "commands.yaml"
    path.write_text(yaml.safe_dump({"commands": {"Stop": {"sentences": {"ru": ["стоп"], "en": ["stop"]}}}}))
    commands = load_commands([path])
    assert confirmations_for(ConfirmSettings(), commands, "ru-RU") is not None
    assert confirmations_for(ConfirmSettings(), commands, "en-US") is None  # English has no answers
    assert confirmations_for(ConfirmSettings(enabled=False), commands, "ru-RU") is None
    assert confirmations_for(ConfirmSettings(), None, "ru-RU") is None


def test_the_daemon_asks_back_an_unsure_number_and_runs_it_on_yes_only(speech, tmp_path):
    """number_lead 100: no number is ever sure, so each timer is said back (espeak-ng writes
    the question, the player stands in for the loudspeaker). "да" runs the timer asked about;
    "нет" runs nothing; a command instead of an answer runs itself, not the one asked about;
    "да" with no question open runs nothing. Festival's Russian voice, the real Whisper engine."""
    voice = FESTIVAL
    said = [
        "поставь таймер на двадцать две минуты",
        "да",
        "поставь таймер на пять минут",
        "нет",
        "поставь таймер на десять минут",
        "включи свет на кухне",
        "да",
    ]
    gap = silence(1.5, RATE)
    audio = gap + gap.join(read_pcm(speech(text, voice))[0] for text in said) + gap
    wav = write_wav(
        tmp_path / "ru.wav", mix(audio, noise(len(audio) / 2 / RATE + 0.1, RATE, "brownnoise", 0.005)), RATE
    )
    log = tmp_path / "actions.log"
    spoken = tmp_path / "spoken"
    spoken.mkdir()
    keep_wav = (
        "import sys, uuid; open(sys.argv[1] + '/' + uuid.uuid4().hex + '.wav', 'wb').write(sys.stdin.buffer.read())"
    )
    settings = DaemonSettings.model_validate(
        {
            "recognition": {"language": "ru-RU"},
            "commands": {
                "files": [str(shipped_commands_logging_to(tmp_path, log))],
                "local_grammar": {"whisper": {"number_lead": 100}},
                "confirm": {"timeout_s": 120},  # the test is not about the time it takes
            },
            # the file is read faster than real time: a hold by the wall clock would mask the answer
            "feedback": {"mute_input": False},
            "actions": {
                "say_command": ["espeak-ng", "-v", "ru", "--stdin", "--stdout"],
                "sound_command": [sys.executable, "-c", keep_wav, str(spoken)],
            },
        }
    )
    events = run_collect(settings, wav)
    asked = [(e["intent"], e["slots"], e["question"]) for e in of_type(events, "confirmation_asked")]
    assert asked == [
        ("SetTimer", {"minutes": 22}, "Поставь таймер на двадцать две минуты?"),
        ("SetTimer", {"minutes": 5}, "Поставь таймер на пять минут?"),
        ("SetTimer", {"minutes": 10}, "Поставь таймер на десять минут?"),
    ]
    assert [e["answer"] for e in of_type(events, "confirmation_answered")] == ["yes", "no", "other"]
    matched = [(e["intent"], e["slots"]) for e in of_type(events, "command_matched")]
    assert matched == [("SetTimer", {"minutes": 22}), ("LightOn", {"room": "kitchen", "device": "light"})]
    assert log.read_text().split() == ["SetTimer", "LightOn"]
    assert [e["reason"] for e in of_type(events, "rejected")] == ["'да' answers a question, but none is open"]
    questions = sorted(spoken.iterdir())
    assert len(questions) == 3 and all(path.read_bytes()[:4] == b"RIFF" for path in questions)


def test_with_the_wake_word_the_answer_needs_no_wake_word(speech, tmp_path):
    """wake.mode: wake_word: "alexa" then a Russian timer, asked back; "да" said without the
    wake word is let in (the gate awaits the answer) and runs the timer."""
    said = [("alexa", "flite:rms"), ("поставь таймер на пять минут", FESTIVAL), ("да", FESTIVAL)]
    pause = silence(0.3, RATE)
    audio = silence(1.0, RATE) + read_pcm(speech(*said[0]))[0] + pause + read_pcm(speech(*said[1]))[0]
    audio += silence(1.5, RATE) + read_pcm(speech(*said[2]))[0] + silence(2.0, RATE)
    wav = write_wav(tmp_path / "wake.wav", mix(audio, noise(len(audio) / 2 / RATE, RATE, "pinknoise", 0.005)), RATE)
    log = tmp_path / "actions.log"
    settings = DaemonSettings.model_validate(
        {
            "recognition": {"language": "ru-RU"},
            "wake": {"mode": "wake_word", "model": "alexa", "command_timeout_s": 4},
            "commands": {
                "files": [str(shipped_commands_logging_to(tmp_path, log))],
                "local_grammar": {"whisper": {"number_lead": 100}},
            },
            "feedback": {"mute_input": False},
            "actions": {"sound_command": ["true"]},
        }
    )
    events = run_collect(settings, wav)
    assert [e["type"] for e in events if e["type"] in ("wake_detected", "speech_started")] == [
        "wake_detected",
        "speech_started",
        "speech_started",
    ]
    assert [e["answer"] for e in of_type(events, "confirmation_answered")] == ["yes"]
    assert [(e["intent"], e["slots"]) for e in of_type(events, "command_matched")] == [("SetTimer", {"minutes": 5})]
    assert log.read_text().split() == ["SetTimer"]


def test_an_unanswered_question_is_closed_when_its_time_is_up():
    confirmations = Confirmations(timeout_s=8)
    assert confirmations.expire(now=200.0) is None  # nothing open
    asked = confirmations.ask(TIMER, "поставь таймер на двадцать две минуты", 3, now=100.0)
    assert confirmations.expire(now=108.0) is None and confirmations.open == asked  # still in time
    assert confirmations.expire(now=108.1) == asked
    assert confirmations.open is None and confirmations.answer(answer(YES), "да", now=108.2) is None


def test_the_daemon_reports_a_question_timed_out_when_its_time_is_up(speech, tmp_path):
    """Not with whatever is said next: the timeout comes before the next utterance begins, and
    the late "да" then answers nothing."""
    said = ["поставь таймер на пять минут", "да"]
    gap = silence(1.5, RATE)
    audio = gap + gap.join(read_pcm(speech(text, FESTIVAL))[0] for text in said) + gap
    wav = write_wav(tmp_path / "late.wav", mix(audio, noise(len(audio) / 2 / RATE, RATE, "brownnoise", 0.005)), RATE)
    settings = DaemonSettings.model_validate(
        {
            "recognition": {"language": "ru-RU"},
            "commands": {
                "files": [str(shipped_commands_logging_to(tmp_path, tmp_path / "actions.log"))],
                "local_grammar": {"whisper": {"number_lead": 100}},
                # past before the next utterance can begin, even with the file read at full speed
                "confirm": {"timeout_s": 0.001},
            },
            "feedback": {"mute_input": False},
            "actions": {"sound_command": ["true"]},
        }
    )
    events = run_collect(settings, wav)
    order = [
        e["type"] for e in events if e["type"] in ("speech_started", "confirmation_asked", "confirmation_answered")
    ]
    assert order == ["speech_started", "confirmation_asked", "confirmation_answered", "speech_started"]
    assert [(e["answer"], e["session"]) for e in of_type(events, "confirmation_answered")] == [("timeout", None)]
    assert of_type(events, "command_matched") == []
    assert [e["reason"] for e in of_type(events, "rejected")] == ["'да' answers a question, but none is open"]
