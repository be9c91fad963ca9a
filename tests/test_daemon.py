"""The daemon end to end: real audio through the real endpointer, the real client and the
real local server (embedded, or the session's `local_server` on loopback)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import wave
from pathlib import Path

import pytest
from conftest import mix, noise, read_pcm, silence, write_wav
from test_capture import asound_home

from voiced.daemon import run_daemon
from voiced.settings import DaemonSettings

DEMO = Path(__file__).resolve().parent.parent / "voiced" / "data" / "demo.wav"
RATE = 16000


def settings_for(server, **sections) -> DaemonSettings:
    recognition = {"endpoint": server.target, "language": "en-US", "partial_results": True}
    return DaemonSettings.model_validate({"recognition": recognition, **sections})


def run_collect(settings: DaemonSettings, wav: Path) -> list[dict]:
    events, lock = [], threading.Lock()

    def collect(event):
        with lock:
            events.append(event.to_dict() if hasattr(event, "to_dict") else dict(event))

    run_daemon(settings, str(wav), collect)
    return events


def of_type(events, kind):
    return [e for e in events if e["type"] == kind]


def voiced_cli(*args, env=None, timeout=120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "voiced", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, check=False)


def test_demo_on_the_embedded_server_gives_partials_and_finals_as_jsonl():
    child = voiced_cli("run", "--input", str(DEMO), "--fast", "--events", "jsonl")
    assert child.returncode == 0, child.stderr[-3000:]
    events = [json.loads(line) for line in child.stdout.splitlines()]
    assert [e["type"] for e in events if e["type"].startswith("speech")] == ["speech_started", "speech_ended"] * 2
    # read --fast, both sessions run at once: their finals may come in either order
    finals = {e["session"]: e["text"] for e in of_type(events, "final")}
    assert "lights in the kitchen" in finals[1] and "timer for 5 minutes" in finals[2], finals
    first_final = next(i for i, e in enumerate(events) if e["type"] == "final" and e["session"] == 1)
    assert any(e["type"] == "partial" and e["session"] == 1 for e in events[:first_final])
    assert all(isinstance(e["ts"], float) for e in events)


def test_text_output_to_a_pipe_has_finals_and_no_carriage_returns():
    child = voiced_cli("run", "--input", str(DEMO), "--fast")
    assert child.returncode == 0, child.stderr[-3000:]
    assert "\r" not in child.stdout
    lines = sorted(child.stdout.splitlines())
    assert len(lines) == 2 and "timer for five" in lines[0] and "lights in the kitchen" in lines[1]


@pytest.fixture(scope="module")
def noisy_commands(speech, tmp_path_factory) -> tuple[Path, list[str]]:
    """Four commands by four voices, separated by pauses, over a steady background noise."""
    phrases = [("flite:kal16", "open the garage door"), ("flite:slt", "stop the music"),
               ("flite:awb", "play some music"), ("flite:rms", "what time is it")]
    pcm = silence(1.0, RATE)
    for voice, text in phrases:
        pcm += read_pcm(speech(text, voice))[0] + silence(1.5, RATE)
    # (heavier noise is left to test_endpointing: the open LM, not the VAD, degrades under it)
    pcm = mix(pcm, noise(len(pcm) / RATE / 2 + 0.1, RATE, "brownnoise", 0.01))
    return write_wav(tmp_path_factory.mktemp("daemon") / "commands.wav", pcm, RATE), [t for _, t in phrases]


def test_one_session_per_utterance_and_the_first_word_is_kept(local_server, noisy_commands, tmp_path):
    wav, phrases = noisy_commands
    recordings = tmp_path / "rec"
    settings = settings_for(local_server, audio={"debug_recording": {"directory": str(recordings)}})
    events = run_collect(settings, wav)
    started, finals = of_type(events, "speech_started"), of_type(events, "final")
    assert len(started) == len(phrases) and not of_type(events, "session_error")
    assert sorted(e["session"] for e in finals) == [1, 2, 3, 4]
    for final, phrase in zip(sorted(finals, key=lambda e: e["session"]), phrases):
        assert final["text"].split()[0] == phrase.split()[0], (final, phrase)  # pre-roll keeps word one
    # debug recording: one WAV per session, starting with the pre-roll
    files = sorted(recordings.glob("session-*.wav"))
    assert len(files) == len(phrases)
    with wave.open(str(files[0]), "rb") as first:
        assert first.getnframes() / RATE >= started[0]["pre_roll_s"]


def test_monologue_is_cut_at_the_maximum_length(local_server, speech, tmp_path):
    sentence = read_pcm(speech("the quick brown fox jumps over the lazy dog", "flite:awb"))[0]
    pcm = silence(0.5, RATE)
    while len(pcm) < 10 * RATE * 2:
        pcm += sentence + silence(0.15, RATE)
    wav = write_wav(tmp_path / "monologue.wav", pcm + silence(1.5, RATE), RATE)
    settings = settings_for(local_server, endpointing={"max_utterance_s": 4.0})
    events = run_collect(settings, wav)
    ended = of_type(events, "speech_ended")
    assert ended[0]["reason"] == "max_length" and ended[0]["duration_s"] == pytest.approx(4.0, abs=0.05)
    assert len(of_type(events, "speech_started")) >= 3  # speech went on: new sessions, none longer


def test_unreachable_server_gives_session_errors_and_the_daemon_goes_on(tmp_path):
    with socket.socket() as probe:  # a port with nobody listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = DaemonSettings.model_validate({"recognition": {"endpoint": f"127.0.0.1:{port}", "language": "en-US"}})
    events = run_collect(settings, DEMO)
    errors = of_type(events, "session_error")
    assert len(of_type(events, "speech_started")) == 2 and len(errors) == 2
    assert {e["session"] for e in errors} == {1, 2} and errors[0]["code"]


def test_microphone_pipeline_on_a_virtual_alsa_device(local_server, speech, tmp_path):
    pcm = silence(1.0, RATE) + read_pcm(speech("turn on the lights in the kitchen"))[0] + silence(1.5, RATE) \
        + read_pcm(speech("set a timer for five minutes", "flite:kal16"))[0] + silence(3.0, RATE)
    infile = tmp_path / "mic.raw"
    infile.write_bytes(pcm)
    env = asound_home(tmp_path, infile)
    config = tmp_path / "voiced.yaml"
    config.write_text(f"audio:\n  device: wavmic\nrecognition:\n  endpoint: {local_server.target}\n  language: en-US\n")
    daemon = subprocess.Popen([sys.executable, "-m", "voiced", "run", "--config", str(config), "--events", "jsonl"],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    finals = []
    try:
        timer = threading.Timer(90, daemon.kill)  # only against a hang
        timer.start()
        for line in daemon.stdout:
            event = json.loads(line)
            if event["type"] == "final":
                finals.append(event["text"])
                if len(finals) == 2:
                    break
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=30) == 0
    finally:
        timer.cancel()
        if daemon.poll() is None:
            os.kill(daemon.pid, signal.SIGKILL)
    assert "lights in the kitchen" in finals[0] and "timer for five minutes" in finals[1]
