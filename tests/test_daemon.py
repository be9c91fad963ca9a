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
import time
import wave
from pathlib import Path

import pytest
import yaml

from tests.audio.test_sources import asound_home
from tests.conftest import start_http_recorder
from voiced.commands.loading import load_configured
from voiced.daemon import run_daemon
from voiced.settings import DaemonSettings
from voiced.testing import free_port, mix, noise, read_pcm, silence, write_wav

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "voiced" / "data" / "demo.wav"
RATE = 16000


def settings_for(server, **sections) -> DaemonSettings:
    recognition = {"endpoint": server.target, "language": "en-US", "partial_results": True}
    sections.setdefault("commands", {"files": []})  # no shipped example actions in these tests
    return DaemonSettings.model_validate({"recognition": recognition, **sections})


def run_collect(settings: DaemonSettings, wav: Path) -> list[dict]:
    events, lock = [], threading.Lock()

    def collect(event):
        with lock:
            events.append(event.to_dict() if hasattr(event, "to_dict") else dict(event))

    run_daemon(settings, load_configured(settings.commands), str(wav), collect)
    return events


def of_type(events, kind):
    return [e for e in events if e["type"] == kind]


def voiced_cli(*args, env=None, timeout=120, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "voiced", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
        cwd=cwd,
    )


def no_commands(tmp_path) -> str:
    """A config without commands (none beside it): the open LM, transcription only."""
    (tmp_path / "voiced.yaml").write_text("{}\n")
    return str(tmp_path / "voiced.yaml")


def test_demo_on_the_embedded_server_gives_partials_and_finals_as_jsonl(tmp_path):
    child = voiced_cli(
        "run", "--config", no_commands(tmp_path), "--input", str(DEMO), "--fast", "--events", "jsonl", cwd=tmp_path
    )
    assert child.returncode == 0, child.stderr[-3000:]
    events = [json.loads(line) for line in child.stdout.splitlines()]
    assert [e["type"] for e in events if e["type"].startswith("speech")] == ["speech_started", "speech_ended"] * 2
    finals = {e["session"]: e["text"] for e in of_type(events, "final")}
    assert "lights in the kitchen" in finals[1] and "timer for 5 minutes" in finals[2], finals
    # read --fast, the file is held while a final is awaited: one session at a time, as live
    order = [(e["type"], e["session"]) for e in events if e["type"] in ("speech_started", "final")]
    assert order == [("speech_started", 1), ("final", 1), ("speech_started", 2), ("final", 2)], order
    first_final = next(i for i, e in enumerate(events) if e["type"] == "final" and e["session"] == 1)
    assert any(e["type"] == "partial" and e["session"] == 1 for e in events[:first_final])
    assert all(isinstance(e["ts"], float) for e in events)


def test_text_output_to_a_pipe_has_finals_and_no_carriage_returns(tmp_path):
    child = voiced_cli("run", "--config", no_commands(tmp_path), "--input", str(DEMO), "--fast", cwd=tmp_path)
    assert child.returncode == 0, child.stderr[-3000:]
    assert "\r" not in child.stdout
    lines = child.stdout.splitlines()
    assert len(lines) == 2 and "lights in the kitchen" in lines[0] and "timer for 5 minutes" in lines[1]


def test_an_8_khz_input_is_recognized_at_its_own_rate(tmp_path):
    """The recognizer is told the rate the WAV really has: told 16 kHz, 8 kHz audio would be
    decoded at twice its speed and match nothing."""
    _, rate = read_pcm(DEMO)
    wav = tmp_path / "demo8k.wav"
    subprocess.run(["sox", str(DEMO), "-r", "8000", str(wav)], check=True)
    assert read_pcm(wav)[1] == 8000 and rate == RATE
    commands = shipped_commands_logging_to(tmp_path, tmp_path / "actions.log")
    settings = DaemonSettings.model_validate({"commands": {"files": [str(commands)]}})
    matched = [e["intent"] for e in of_type(run_collect(settings, wav), "command_matched")]
    assert matched == ["LightOn", "SetTimer"]


@pytest.fixture(scope="module")
def noisy_commands(speech, tmp_path_factory) -> tuple[Path, list[str]]:
    """Four commands by four voices, separated by pauses, over a steady background noise."""
    phrases = [
        ("flite:kal16", "open the garage door"),
        ("flite:slt", "stop the music"),
        ("flite:awb", "play some music"),
        ("flite:rms", "what time is it"),
    ]
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
    port = free_port()  # nobody listening
    settings = DaemonSettings.model_validate({"recognition": {"endpoint": f"127.0.0.1:{port}", "language": "en-US"}})
    events = run_collect(settings, DEMO)
    errors = of_type(events, "session_error")
    assert len(of_type(events, "speech_started")) == 2 and len(errors) == 2
    assert {e["session"] for e in errors} == {1, 2} and errors[0]["code"]


def test_microphone_pipeline_on_a_virtual_alsa_device(local_server, speech, tmp_path):
    pcm = (
        silence(1.0, RATE)
        + read_pcm(speech("turn on the lights in the kitchen"))[0]
        + silence(1.5, RATE)
        + read_pcm(speech("set a timer for five minutes", "flite:kal16"))[0]
        + silence(3.0, RATE)
    )
    infile = tmp_path / "mic.raw"
    infile.write_bytes(pcm)
    env = asound_home(tmp_path, infile)
    config = tmp_path / "voiced.yaml"
    config.write_text(f"audio:\n  device: wavmic\nrecognition:\n  endpoint: {local_server.target}\n  language: en-US\n")
    daemon = subprocess.Popen(
        [sys.executable, "-m", "voiced", "run", "--config", str(config), "--events", "jsonl"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=tmp_path,
    )
    finals, errors = [], []
    try:
        timer = threading.Timer(120, daemon.kill)  # only against a hang
        timer.start()
        for line in daemon.stdout:
            event = json.loads(line)
            if event["type"] in ("final", "session_error"):
                (finals if event["type"] == "final" else errors).append(event)
                if len(finals) + len(errors) == 2:  # both sessions accounted for
                    break
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=30) == 0
    finally:
        timer.cancel()
        if daemon.poll() is None:
            os.kill(daemon.pid, signal.SIGKILL)
    # the file-backed device delivers faster than real time: both sessions are open at once, and
    # a busy machine takes longer than the 5 s after the end of speech to decode them (the
    # deadline counts from the recognizer's delivery and progress, not from the read)
    assert not errors, [error["details"] for error in errors]
    texts = sorted(event["text"] for event in finals)
    assert "timer for 5 minutes" in texts[0] and "lights in the kitchen" in texts[1]


# --- commands and actions: spoken commands run the right actions with the right slot values ---

WRITE_ARGS = "import sys; open(sys.argv[1], 'a').write(' '.join(sys.argv[2:]) + '\\n')"


@pytest.fixture(scope="module")
def http_server():
    server = start_http_recorder()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def home(tmp_path_factory, http_server, mosquitto):
    """A command file whose actions write a file, publish to the broker and POST to loopback,
    and one local server with its grammar (rejection on), as the embedded one would have."""
    from voiced.commands.loading import load_configured
    from voiced.listen.recognizers import local_server, with_commands
    from voiced.server.app import start_server

    directory = tmp_path_factory.mktemp("home")
    log = directory / "actions.log"
    write = lambda *args: {"type": "exec", "argv": [sys.executable, "-c", WRITE_ARGS, str(log), *args]}
    commands = {
        "languages": {
            "en": {
                "lists": {
                    "room": {
                        "values": [
                            {"in": "kitchen", "out": "kitchen"},
                            {"in": "bedroom", "out": "bedroom"},
                            {"in": "(living room|lounge)", "out": "living_room"},
                        ]
                    },
                    "minutes": {"range": {"from": 1, "to": 60}},
                },
                "expansion_rules": {"light": "(light|lights|lamp)"},
            }
        },
        "commands": {
            "LightOn": {
                "sentences": {"en": ["turn on [the] {room} <light>", "turn on [the] <light> in [the] {room}"]},
                "actions": [write("on", "$room"), {"type": "mqtt", "topic": "home/$room/light", "payload": "ON"}],
            },
            "LightOff": {
                "sentences": {"en": ["turn off [the] {room} <light>", "turn off [the] <light> in [the] {room}"]},
                "actions": [write("off", "$room")],
            },
            "SetTimer": {
                "sentences": {"en": ["set [a] timer for {minutes} (minute|minutes)"]},
                "actions": [
                    write("timer", "$minutes"),
                    {
                        "type": "http",
                        "url": f"http://127.0.0.1:{http_server.server_port}/timer",
                        "json": {"minutes": "$minutes"},
                    },
                ],
            },
        },
    }
    path = directory / "commands.yaml"
    path.write_text(yaml.safe_dump(commands))
    sections = {
        "commands": {"files": [str(path)]},
        "actions": {"mqtt": {"port": mosquitto.port}},
        # this server and the daemon share one process: on a loaded machine the daemon's
        # messages may be late by more than the service's 5 s (not what is tested here)
        "server": {"limits": {"max_gap_s": 60}},
    }
    embedded = DaemonSettings.model_validate(sections)
    command_set = load_configured(embedded.commands)
    server = start_server(
        local_server(with_commands(embedded, command_set).server, "commands"), command_sets={"commands": command_set}
    )
    settings = DaemonSettings.model_validate(
        {**sections, "recognition": {"endpoint": server.target, "language": "en-US", "model": "commands"}}
    )
    yield settings, log
    server.stop()


def spoken(speech, tmp_path, phrases) -> Path:
    pcm = silence(1.0, RATE)
    for voice, text in phrases:
        pcm += read_pcm(speech(text, voice))[0] + silence(1.5, RATE)
    return write_wav(tmp_path / "spoken.wav", pcm, RATE)


def test_spoken_commands_run_their_actions_with_the_slot_values(home, speech, mosquitto, http_server, tmp_path):
    settings, log = home
    log.unlink(missing_ok=True)
    subscriber = mosquitto.subscribe("home/#")
    wav = spoken(
        speech,
        tmp_path,
        [
            ("flite:kal16", "turn on the kitchen light"),
            ("flite:awb", "set a timer for twelve minutes"),
            ("flite:rms", "turn off the lights in the bedroom"),
            ("espeak:en-us", "turn on the living room light"),
            ("flite:slt", "set a timer for forty five minutes"),
        ],
    )
    events = run_collect(settings, wav)
    matched = sorted((e["intent"], tuple(sorted(e["slots"].items()))) for e in of_type(events, "command_matched"))
    assert matched == sorted(
        [
            ("LightOn", (("room", "kitchen"),)),
            ("SetTimer", (("minutes", 12),)),
            ("LightOff", (("room", "bedroom"),)),
            ("LightOn", (("room", "living_room"),)),
            ("SetTimer", (("minutes", 45),)),
        ]
    )
    # every action ran before run_daemon returned (the runner is drained on the way out)
    assert sorted(log.read_text().splitlines()) == [
        "off bedroom",
        "on kitchen",
        "on living_room",
        "timer 12",
        "timer 45",
    ]
    assert not of_type(events, "action_failed") and len(of_type(events, "action_finished")) == 9
    assert sorted(json.loads(body)["minutes"] for _, _, _, body in http_server.requests[-2:]) == [12, 45]
    subscriber.loop_stop()
    # (retained messages other tests left on the shared broker arrive flagged: not ours)
    assert sorted((topic, payload) for topic, payload, retained in subscriber.messages if not retained) == [
        ("home/kitchen/light", b"ON"),
        ("home/living_room/light", b"ON"),
    ]


def test_speech_that_is_not_a_command_runs_nothing_and_says_why(home, speech, tmp_path):
    settings, log = home
    log.unlink(missing_ok=True)
    wav = spoken(
        speech,
        tmp_path,
        [
            ("flite:slt", "switch on the television"),
            ("flite:kal16", "turn on the garden sprinkler"),
            ("flite:awb", "what is the weather like tomorrow"),
            ("flite:rms", "close the window in the kitchen"),
            ("espeak:en-us", "did you see the game last night"),
            # near misses: a number out of range, a room the file lacks
            ("flite:slt", "set a timer for ninety minutes"),
            ("flite:awb", "turn on the lights in the attic"),
        ],
    )
    events = run_collect(settings, wav)
    assert len(of_type(events, "speech_started")) == 7 and not of_type(events, "session_error")
    assert not of_type(events, "command_matched") and not of_type(events, "action_started")
    assert not log.exists()
    rejected = {e["session"]: e for e in of_type(events, "rejected")}
    assert sorted(rejected) == list(range(1, 8))
    # what was heard is in the reason: the speaker sees why nothing happened
    assert "attic" in rejected[7]["reason"], rejected[7]


def test_demo_with_the_shipped_commands_matches_both_sentences(tmp_path):
    """`voiced run` on the demo, embedded server with the grammar of config/commands.yaml (its
    actions swapped for one harmless exec each: the shipped ones call Home Assistant etc.)."""
    log = tmp_path / "actions.log"
    shipped_commands_logging_to(tmp_path, log)
    (tmp_path / "voiced.yaml").write_text("commands:\n  files: [commands.yaml]\n")
    child = voiced_cli(
        "run",
        "--config",
        str(tmp_path / "voiced.yaml"),
        "--input",
        str(DEMO),
        "--fast",
        "--events",
        "jsonl",
        cwd=tmp_path,
    )
    assert child.returncode == 0, child.stderr[-3000:]
    events = [json.loads(line) for line in child.stdout.splitlines()]
    matched = {e["session"]: (e["intent"], e["slots"]) for e in of_type(events, "command_matched")}
    assert matched == {1: ("LightOn", {"room": "kitchen", "device": "light"}), 2: ("SetTimer", {"minutes": 5})}
    assert sorted(log.read_text().splitlines()) == ["LightOn", "SetTimer"]
    assert "turn on the lights in the kitchen" in {e["text"] for e in of_type(events, "final")}


def test_broken_command_file_stops_the_start_with_a_located_error(tmp_path):
    (tmp_path / "commands.yaml").write_text("commands:\n  A:\n    sentences: {en: ['turn [on']}\n")
    (tmp_path / "voiced.yaml").write_text("commands:\n  files: [commands.yaml]\n")
    child = voiced_cli("run", "--config", str(tmp_path / "voiced.yaml"), "--input", str(DEMO), "--fast", cwd=tmp_path)
    assert child.returncode == 2
    config_line, problem = child.stderr.splitlines()[:2]
    assert config_line == f"voiced: config {tmp_path / 'voiced.yaml'} (--config)"
    assert problem.startswith(f"{tmp_path / 'commands.yaml'}:3:22: template 'turn [on'")


def test_short_soak_accounts_for_every_session_and_leaks_no_descriptors(tmp_path):
    """The CI variant of bench/soak.py: two minutes of speech, silence and noise, read --fast."""
    report = tmp_path / "soak.json"
    subprocess.run(
        [sys.executable, str(ROOT / "bench" / "soak.py"), "--minutes", "2", "--json", str(report)],
        capture_output=True,
        timeout=600,
        check=False,
    )
    result = json.loads(report.read_text())
    assert result["exit_code"] == 0, result["stderr_tail"]
    assert result["accounted"] and result["sessions"] >= result["phrases"] - 1, result
    assert result["fds_last"] - result["fds_first"] <= 8, result


class DaemonProcess:
    """`voiced run` reading raw PCM from a pipe (a microphone that never ends), with a real
    NOTIFY_SOCKET and its JSONL events collected as they come."""

    def __init__(self, tmp_path: Path, config: Path):
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(str(tmp_path / "notify"))
        self.notify.settimeout(60)
        env = {**os.environ, "NOTIFY_SOCKET": str(tmp_path / "notify")}
        self.child = subprocess.Popen(
            [sys.executable, "-m", "voiced", "run", "--config", str(config), "--input", "-", "--events", "jsonl"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=tmp_path,
        )
        self.events: list[dict] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.child.stdout:
            self.events.append(json.loads(line))

    def notifications(self, until: bytes) -> list[bytes]:
        seen = []
        while until not in b"".join(seen):
            seen.append(self.notify.recv(4096))
        return seen

    def speak(self, pcm: bytes) -> None:
        self.child.stdin.write(pcm)
        self.child.stdin.flush()

    def wait_for(self, predicate, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not predicate(self.events):
            assert time.monotonic() < deadline, self.events
            time.sleep(0.05)

    def close(self) -> None:
        self.child.kill()
        self.child.wait()
        self.notify.close()


@pytest.fixture
def daemon_config(tmp_path):
    config = tmp_path / "voiced.yaml"
    config.write_text("recognition:\n  model: general\nservice:\n  stop_timeout_s: 5\n")
    return config


def test_sighup_reloads_a_valid_config_and_keeps_the_running_one_on_an_invalid_one(tmp_path, daemon_config, speech_pcm):
    daemon = DaemonProcess(tmp_path, daemon_config)
    try:
        assert b"READY=1" in b"".join(daemon.notifications(b"READY=1"))
        daemon_config.write_text("recognition:\n  model: general\nendpointing:\n  aggressiveness: nine\n")
        daemon.child.send_signal(signal.SIGHUP)
        rejected = b"".join(daemon.notifications(b"READY=1"))
        assert b"RELOADING=1" in rejected
        daemon.speak(speech_pcm("what time is it", "flite:slt") + silence(1.0, 16000))  # a microphone goes on
        daemon.wait_for(lambda events: any(e["type"] == "final" for e in events))
        daemon_config.write_text("recognition:\n  model: general\n  raw_results: true\n")
        daemon.child.send_signal(signal.SIGHUP)
        assert b"RELOADING=1" in b"".join(daemon.notifications(b"READY=1"))
        daemon.speak(speech_pcm("set a timer for five minutes", "flite:slt") + silence(1.0, 16000))
        daemon.wait_for(lambda events: sum(e["type"] == "final" for e in events) >= 2)
        assert daemon.child.poll() is None  # still running after both reloads
        finals = [e["text"] for e in daemon.events if e["type"] == "final"]
        assert "time" in finals[0] and "five" in finals[1]  # raw_results from the reloaded config
        daemon.child.stdin.close()
        assert daemon.child.wait(timeout=30) == 0
        assert b"aggressiveness" in daemon.child.stderr.read()  # the rejected config, located
    finally:
        daemon.close()


def test_sigterm_mid_utterance_delivers_its_final_and_exits_0_within_the_bound(tmp_path, daemon_config, speech_pcm):
    daemon = DaemonProcess(tmp_path, daemon_config)
    try:
        daemon.notifications(b"READY=1")
        pcm = speech_pcm("turn on the kitchen lights", "flite:slt", pad_s=0.3)
        daemon.speak(pcm[: len(pcm) - 9600])  # no trailing silence: the utterance is in progress
        # all of it heard (a partial has the last word), but the session still open
        daemon.wait_for(lambda events: any(e["type"] == "partial" and "kitchen" in e["text"] for e in events))
        assert not any(e["type"] == "final" for e in daemon.events)
        stopped_at = time.monotonic()
        daemon.child.send_signal(signal.SIGTERM)
        assert daemon.child.wait(timeout=30) == 0
        assert time.monotonic() - stopped_at < 5 + 3  # service.stop_timeout_s, plus start-up slack
        assert b"STOPPING=1" in b"".join(daemon.notifications(b"STOPPING=1"))
        daemon._reader.join(5)
        finals = [e["text"] for e in daemon.events if e["type"] == "final"]
        assert finals and "kitchen" in finals[0], daemon.events
    finally:
        daemon.close()


def shipped_commands_logging_to(tmp_path, log: Path) -> Path:
    """config/commands.yaml with each command's actions swapped for one exec that logs its intent."""
    shipped = yaml.safe_load((ROOT / "config" / "commands.yaml").read_text())
    for command in shipped["commands"].values():
        command["actions"] = [{"type": "exec", "argv": [sys.executable, "-c", WRITE_ARGS, str(log), "$intent"]}]
    path = tmp_path / "commands.yaml"
    path.write_text(yaml.safe_dump(shipped, allow_unicode=True))
    return path


def test_with_the_wake_word_only_a_command_after_the_name_opens_a_session(speech, tmp_path):
    """wake.mode: wake_word on the embedded recognizer: "alexa, turn on the kitchen light"
    runs its command; the same kind of command without the name opens no session (nothing
    reaches the recognizer); the name with no command after it ends the wait."""

    def said(text: str, voice: str = "flite:kal16") -> bytes:
        return read_pcm(speech(text, voice))[0]

    pcm = b"".join(
        [
            silence(1.0, RATE),
            said("alexa") + silence(0.3, RATE) + said("turn on the kitchen light"),
            silence(2.0, RATE),
            said("set a timer for five minutes"),  # no name: must open nothing
            silence(2.0, RATE),
            said("alexa"),  # and then nothing
            silence(7.0, RATE),
        ]
    )
    wav = write_wav(tmp_path / "wake.wav", mix(pcm, noise(len(pcm) / 2 / RATE, RATE, "pinknoise", 0.005)), RATE)
    log = tmp_path / "actions.log"
    settings = DaemonSettings.model_validate(
        {
            "commands": {"files": [str(shipped_commands_logging_to(tmp_path, log))]},
            "wake": {"mode": "wake_word", "model": "alexa", "command_timeout_s": 4},
        }
    )
    events = run_collect(settings, wav)
    kinds = [e["type"] for e in events if e["type"] in ("wake_detected", "speech_started", "wake_timeout")]
    assert kinds == ["wake_detected", "speech_started", "wake_detected", "wake_timeout"], kinds
    first_wake = of_type(events, "wake_detected")[0]
    assert first_wake["model"] == "alexa" and first_wake["score"] >= 0.5
    # the session's audio starts after the name: the pre-roll does not reach back into it
    assert of_type(events, "speech_started")[0]["audio_s"] >= first_wake["audio_s"] - 0.01
    assert [(e["intent"], e["slots"]) for e in of_type(events, "command_matched")] == [
        ("LightOn", {"room": "kitchen", "device": "light"})
    ]
    assert log.read_text().split() == ["LightOn"]


def test_russian_commands_run_offline_with_finals_only(speech, tmp_path):
    """recognition.language ru-RU, no endpoint: the Whisper engine with the multilingual model
    (russian extra) and no pocketsphinx model, so no partials. Real Russian speech (festival's
    msu_ru_nsh): a light command and a timer whose noun agrees with its number run; a question
    that is no command runs nothing and is reported as rejected."""
    said = ["включи свет на кухне", "поставь таймер на двадцать две минуты", "какая завтра погода"]
    gap = silence(1.5, RATE)
    audio = gap + gap.join(read_pcm(speech(text, "festival:msu_ru_nsh_clunits"))[0] for text in said) + gap
    audio = mix(audio, noise(len(audio) / 2 / RATE + 0.1, RATE, "brownnoise", 0.005))
    wav = write_wav(tmp_path / "ru.wav", audio, RATE)
    log = tmp_path / "actions.log"
    commands = shipped_commands_logging_to(tmp_path, log)
    settings = DaemonSettings.model_validate(
        {"recognition": {"language": "ru-RU"}, "commands": {"files": [str(commands)]}}
    )
    events = run_collect(settings, wav)
    matched = [(e["intent"], e["slots"]) for e in of_type(events, "command_matched")]
    assert matched == [("LightOn", {"room": "kitchen", "device": "light"}), ("SetTimer", {"minutes": 22})]
    assert sorted(log.read_text().splitlines()) == ["LightOn", "SetTimer"]
    assert len(of_type(events, "rejected")) == 1
    assert not of_type(events, "partial")
