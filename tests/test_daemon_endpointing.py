"""Ending a session early on a finished command (`endpointing.early_on_complete`), end to end:
real synthesized speech read at real-time pace (as a microphone delivers it) through the
daemon and its embedded commands recognizer. Nothing here times anything: the session's end
reason, the sessions per utterance and the commands run say what happened."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from tests.test_daemon import of_type
from voiced.commands.loading import load_configured
from voiced.daemon import run_daemon
from voiced.settings import DaemonSettings
from voiced.testing import mix, noise, read_pcm, silence, trimmed, write_wav

RATE = 16000
COMMANDS = """
languages:
  en:
    lists:
      room: {values: [kitchen, bedroom]}
      speed: {range: {from: 1, to: 30}}
commands:
  LightOn:
    sentences: {en: ["turn on the {room} light", "turn on the light [in the {room}]"]}
    actions: [{type: exec, argv: ["true"]}]
  Fan:
    sentences: {en: ["set the fan to {speed}"]}
    actions: [{type: exec, argv: ["true"]}]
"""
# A pause inside the sentence: longer than the early end's silence (0.15 s), far shorter than
# the end silence. The end silence is long so that on a busy machine a late partial still
# comes before it: the early end is then the only thing that can end a session this soon.
PAUSE_S = 0.6
ENDPOINTING = {"end_silence": 3.0}


@pytest.fixture(scope="module")
def said(speech):
    def make(*pieces: str, voice: str = "flite:slt") -> bytes:
        """The pieces said one after another, PAUSE_S apart."""
        return silence(PAUSE_S, RATE).join(trimmed(read_pcm(speech(piece, voice))[0], RATE) for piece in pieces)

    return make


def run_realtime(tmp_path: Path, utterances: list[bytes], **sections) -> list[dict]:
    """The utterances, 4 s apart over a quiet noise floor, through `voiced run --input FILE`
    at real-time pace; its events."""
    gap = silence(4.0, RATE)
    pcm = gap + b"".join(utterance + gap for utterance in utterances)
    wav = write_wav(tmp_path / "said.wav", mix(pcm, noise(len(pcm) / 2 / RATE, RATE, "brownnoise", 0.005)), RATE)
    (tmp_path / "commands.yaml").write_text(COMMANDS)
    settings = DaemonSettings.model_validate(
        {"commands": {"files": [str(tmp_path / "commands.yaml")]}, "endpointing": ENDPOINTING, **sections}
    )
    events, lock = [], threading.Lock()

    def collect(event):
        with lock:
            events.append(event.to_dict())

    run_daemon(settings, load_configured(settings.commands), str(wav), collect, realtime=True)
    return events


def test_a_finished_command_ends_early_and_one_that_can_go_on_waits(said, tmp_path):
    events = run_realtime(
        tmp_path,
        [
            said("turn on the kitchen light"),  # nothing can follow it
            said("set the fan to twelve"),  # nor a number no other number of the range goes on from
            said("set the fan to twenty", "five"),  # "twenty" may grow into "twenty five"
            said("turn on the light", "in the bedroom"),  # an optional tail may follow
        ],
    )
    heard = [(e["type"], e["session"], e.get("text", e.get("reason"))) for e in events if "session" in e]
    # one session per utterance, none cut at the pause. "twenty five" is "twenty" with one
    # word more, which a decoder may add to a pause: that one waits out the end silence
    ended = [(e["session"], e["reason"]) for e in of_type(events, "speech_ended")]
    assert ended == [(1, "complete"), (2, "complete"), (3, "silence"), (4, "complete")], heard
    matched = [(e["session"], e["intent"], e["slots"]) for e in of_type(events, "command_matched")]
    assert matched == [
        (1, "LightOn", {"room": "kitchen"}),
        (2, "Fan", {"speed": 12}),
        (3, "Fan", {"speed": 25}),
        (4, "LightOn", {"room": "bedroom"}),
    ], heard


def test_with_early_ending_off_or_open_speech_every_session_waits_out_the_end_silence(said, tmp_path):
    utterances = [said("turn on the kitchen light")]
    off = run_realtime(tmp_path, utterances, endpointing={**ENDPOINTING, "early_on_complete": False})
    assert [e["reason"] for e in of_type(off, "speech_ended")] == ["silence"]
    assert [e["intent"] for e in of_type(off, "command_matched")] == ["LightOn"]
    general = run_realtime(tmp_path, utterances, recognition={"model": "general"})
    assert [e["reason"] for e in of_type(general, "speech_ended")] == ["silence"]
    assert "kitchen" in of_type(general, "final")[0]["text"]
