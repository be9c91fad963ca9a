"""Earcons: shipped WAVs, a real player subprocess, the mute window, and no self-triggering."""

from __future__ import annotations

import logging
import sys
import time
import wave
from pathlib import Path

import pytest

from voiced.audio.vad import Endpointer, EndpointerSettings, FrameSplitter, SpeechStarted
from voiced.config.loader import ConfigError, parse_yaml, validate
from voiced.listen.earcons import DATA_DIR, EarconPlayer, FeedbackSettings, MuteWindow, earcon_for, feedback_sink

# stands in for aplay (no sound card here): records which file it was given, then "plays"
FAKE_PLAYER = """\
import sys, time
with open(sys.argv[1], "a") as marker:
    marker.write(sys.argv[-1] + "\\n")  # the earcon: the player's last argument
time.sleep(float(sys.argv[2]))
sys.exit(int(sys.argv[3]) if len(sys.argv) > 4 else 0)
"""


@pytest.fixture
def player_command(tmp_path):
    script = tmp_path / "fake_player.py"
    script.write_text(FAKE_PLAYER)
    marker = tmp_path / "played.txt"

    def command(play_s: float, *extra: str) -> tuple[str, ...]:
        return (sys.executable, str(script), str(marker), str(play_s), *extra)

    command.marker = marker
    return command


def _wait_until(condition, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.02)


def _played(marker: Path) -> list[str]:
    return marker.read_text().splitlines() if marker.exists() else []


@pytest.mark.parametrize("name", ["listening", "done", "error"])
def test_shipped_earcons_are_short_16k_mono_and_audible(name):
    with wave.open(str(DATA_DIR / f"{name}.wav"), "rb") as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (16000, 1, 2)
        assert 0.1 <= wav.getnframes() / 16000 <= 0.5
        samples = memoryview(wav.readframes(wav.getnframes())).cast("h")
    assert max(abs(s) for s in samples) > 3000


def test_earcons_differ():
    contents = {(DATA_DIR / f"{name}.wav").read_bytes() for name in ("listening", "done", "error")}
    assert len(contents) == 3


def test_player_runs_the_command_and_reports_the_mute_window(player_command):
    settings = FeedbackSettings(enabled=True, player=player_command(0.5), mute_margin_s=0.2)
    player = EarconPlayer(settings)
    started = time.monotonic()
    assert player.play("done")
    until = player.muted_until()
    assert until is not None and until >= started + 0.23 + 0.2  # done.wav is 0.23 s long
    assert player.input_muted()
    assert player.mask_input(b"\x01\x02" * 480) == bytes(960)
    _wait_until(lambda: _played(player_command.marker) == [str(DATA_DIR / "done.wav")])
    _wait_until(lambda: not player.input_muted())
    assert time.monotonic() - started >= 0.5 + 0.2  # the player's run time, then the margin
    assert player.mask_input(b"\x01\x02") == b"\x01\x02"
    player.close()


def test_listening_plays_at_speech_start_or_with_the_wake_prompt_on_the_wake_word():
    assert earcon_for("speech_started") == "listening" and earcon_for("wake_detected") is None
    assert earcon_for("speech_started", wake_prompt=True) is None
    assert earcon_for("wake_detected", wake_prompt=True) == "listening"
    assert earcon_for("final", wake_prompt=True) == "done" and earcon_for("partial") is None


def test_the_sink_plays_the_earcon_of_the_event(player_command):
    player = EarconPlayer(FeedbackSettings(enabled=True, player=player_command(0), mute_margin_s=0))
    feedback_sink(player)({"type": "final", "session": 1, "text": "hello", "confidence": 1.0})
    _wait_until(lambda: _played(player_command.marker) == [str(DATA_DIR / "done.wav")])
    player.close()


def test_a_new_earcon_cuts_the_previous_one(player_command):
    player = EarconPlayer(FeedbackSettings(enabled=True, player=player_command(30), mute_margin_s=0))
    assert player.play("listening")
    _wait_until(lambda: len(_played(player_command.marker)) == 1)
    assert player.play("error")
    _wait_until(lambda: len(_played(player_command.marker)) == 2)
    assert player.input_muted()  # the first player's exit does not end the second's mute
    started = time.monotonic()
    player.close()
    assert time.monotonic() - started < 10  # terminated, not waited for
    assert _played(player_command.marker) == [str(DATA_DIR / "listening.wav"), str(DATA_DIR / "error.wav")]
    _wait_until(lambda: not player.input_muted())


def test_mute_input_off_never_masks(player_command):
    player = EarconPlayer(FeedbackSettings(enabled=True, player=player_command(1), mute_input=False))
    assert player.play("done")
    assert not player.input_muted() and player.muted_until() is None
    player.close()


def test_disabled_or_unset_earcons_do_not_run_the_player(player_command):
    assert not EarconPlayer(FeedbackSettings(player=player_command(0))).play("done")
    assert not EarconPlayer(FeedbackSettings(enabled=True, error=None, player=player_command(0))).play("error")
    time.sleep(0.2)
    assert not player_command.marker.exists()


def test_missing_player_is_reported_not_raised(caplog):
    player = EarconPlayer(FeedbackSettings(enabled=True, player="no-such-player-binary -q"))
    with caplog.at_level(logging.WARNING, logger="voiced.listen.earcons"):
        assert not player.play("done")
    assert "no-such-player-binary" in caplog.text
    assert not player.input_muted()


def test_failing_player_is_logged_and_unmutes(player_command, caplog):
    player = EarconPlayer(FeedbackSettings(enabled=True, player=player_command(0, "3"), mute_margin_s=0))
    with caplog.at_level(logging.WARNING, logger="voiced.listen.earcons"):
        assert player.play("error")
        _wait_until(lambda: not player.input_muted() and "exit 3" in caplog.text)


def test_mute_window_core():
    window = MuteWindow(margin_s=0.25)
    assert window.until(now=10.0) is None
    window.started(token=1, now=10.0, duration_s=0.3)
    assert window.until(now=10.0) == pytest.approx(10.55)
    assert window.until(now=11.0) == pytest.approx(11.25)  # overran its length: still playing
    window.started(token=2, now=11.0, duration_s=0.2)
    window.finished(token=1, now=11.1)  # superseded playback ending changes nothing
    assert window.until(now=11.1) == pytest.approx(11.45)
    window.finished(token=2, now=11.2)
    assert window.until(now=11.3) == pytest.approx(11.45)
    assert window.until(now=11.5) is None


def test_a_held_input_stays_muted_however_long_and_past_earcons_ending():
    window = MuteWindow(margin_s=0.25)
    window.hold()  # a question said back: its length is not known
    window.started(token=1, now=10.0, duration_s=0.1)
    window.finished(token=1, now=10.1)
    assert window.until(now=13.0) == pytest.approx(13.25)
    window.release(now=13.0)
    assert window.until(now=13.2) == pytest.approx(13.25)
    assert window.until(now=13.3) is None


def test_holding_input_masks_frames_while_inside():
    player = EarconPlayer(FeedbackSettings(enabled=False, mute_margin_s=0))
    with player.holding_input():
        assert player.mask_input(b"\x01\x02") == b"\x00\x00"
    assert player.mask_input(b"\x01\x02") == b"\x01\x02"


def test_settings_split_a_player_string_and_locate_errors(tmp_path):
    assert FeedbackSettings(player="aplay -q -D 'plughw:1,0'").player == ("aplay", "-q", "-D", "plughw:1,0")
    doc = parse_yaml(f"feedback:\n  enabled: true\n  done: {tmp_path}/missing.wav\n", "voiced.yaml")
    with pytest.raises(ConfigError) as error:
        validate(FeedbackSettings, doc, ("feedback",))
    assert str(error.value).startswith("voiced.yaml:3:9: feedback.done:")
    with pytest.raises(ValueError):
        FeedbackSettings(player=[])


def _speech_starts(player: EarconPlayer, pcm: bytes) -> int:
    endpointer = Endpointer(EndpointerSettings(), 16000)
    splitter = FrameSplitter(endpointer.frame_bytes)
    events = [event for frame in splitter.feed(pcm) for event in endpointer.process(player.mask_input(frame))]
    return sum(isinstance(event, SpeechStarted) for event in events)


def test_speech_heard_during_playback_opens_no_session(player_command, speech_pcm):
    pcm = speech_pcm("turn on the kitchen light")
    player = EarconPlayer(FeedbackSettings(enabled=True, player=player_command(30), mute_margin_s=0.1))
    assert _speech_starts(player, pcm) == 1  # nothing playing: the real VAD hears it
    player.play("done")
    assert _speech_starts(player, pcm) == 0
    player.close()
    _wait_until(lambda: not player.input_muted())
    assert _speech_starts(player, pcm) == 1
