"""Fault injection: the daemon under a dying, restarting, stalling or refusing recognition
server, a vanishing microphone, misbehaving actions and a storm of reloads.

Every test asserts the same four things: no crash, no stuck state (run_daemon returns / the
child exits), a clear event for the failure, and recovery once the fault clears. Faults are
injected when an event shows the pipeline is where the fault should hit (e.g. a partial
result = a call in the middle of an utterance), never after a sleep; audio reaches the daemon
through a pipe (`--input -`) fed by the test, so what the daemon has heard is decided here.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent import futures
from pathlib import Path

import grpc
import pytest
import yaml

from tests.audio.test_sources import asound_home
from tests.speechkit.test_recognizer import serve
from tests.tcp_proxy import TcpProxy
from voiced.commands.loading import load_configured
from voiced.daemon import run_daemon
from voiced.proto.yandex.cloud.ai.stt.v2 import stt_service_pb2_grpc as stt_grpc
from voiced.settings import DaemonSettings
from voiced.testing import free_port, silence, write_wav

RATE = 16000
FAST_RETRY = {"attempts": 3, "initial_s": 0.05, "max_s": 0.2, "jitter_s": 0.05, "auth_backoff_s": 0}
KITCHEN, BEDROOM = "turn on the kitchen lights", "turn on the bedroom lights"
CHUNK = 3200  # 100 ms of audio per write


def settings_for(target: str, **sections) -> DaemonSettings:
    recognition = {
        "endpoint": target,
        "language": "en-US",
        "model": "lights",
        "retry": FAST_RETRY,
        "timeouts": {"connect_s": 0.5},
        **sections.pop("recognition", {}),
    }
    sections.setdefault("commands", {"files": []})
    return DaemonSettings.model_validate({"recognition": recognition, **sections})


class Events(list):
    """The daemon's events as dicts, with waiting on a condition (the emit callback)."""

    def __init__(self):
        super().__init__()
        self.changed = threading.Condition()

    def __call__(self, event) -> None:
        with self.changed:
            self.append(event if isinstance(event, dict) else event.to_dict())
            self.changed.notify_all()

    def wait_for(self, predicate, timeout: float = 15) -> None:
        with self.changed:
            assert self.changed.wait_for(lambda: predicate(self), timeout), [dict(e) for e in self]

    def of(self, kind: str, session: int | None = None) -> list[dict]:
        with self.changed:
            return [e for e in self if e["type"] == kind and (session is None or e.get("session") == session)]


class PipedDaemon:
    """run_daemon in a thread reading raw PCM from a pipe (`--input -`) that the test writes."""

    def __init__(self, settings: DaemonSettings, monkeypatch):
        read_fd, write_fd = os.pipe()
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(os.fdopen(read_fd, "rb")))
        self._pipe = os.fdopen(write_fd, "wb", buffering=0)
        self.events = Events()
        self.failure: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(settings,), name="daemon", daemon=True)
        self.thread.start()

    def _run(self, settings: DaemonSettings) -> None:
        try:
            run_daemon(settings, load_configured(settings.commands), "-", self.events)
        except BaseException as exc:  # reported by finish(): a crash fails the test there
            self.failure = exc

    def feed(self, pcm: bytes) -> None:
        for start in range(0, len(pcm), CHUNK):
            self._pipe.write(pcm[start : start + CHUNK])

    def finish(self, timeout: float = 15) -> Events:
        """End the input; the daemon must finish its sessions and return (not crash, not hang)."""
        self._pipe.close()
        self.thread.join(timeout)
        assert not self.thread.is_alive(), f"run_daemon did not return: {list(self.events)}"
        assert self.failure is None, repr(self.failure)
        return self.events


def finals_text(events: Events, session: int) -> str:
    return " ".join(e["text"] for e in events.of("final", session))


def every_session_accounted_for(events: Events) -> None:
    """Each opened session ended in exactly one final or one session_error."""
    for started in events.of("speech_started"):
        session = started["session"]
        endings = events.of("final", session) + events.of("session_error", session)
        assert len(endings) == 1, (session, endings)


# ---- the recognition server: killed, dropped, stalled --------------------------------------


def mid_utterance_fault(daemon: PipedDaemon, utterance: bytes, fault) -> None:
    """Feed the first part of an utterance, wait until the server is answering it (a
    partial), inject `fault`, feed the rest and the silence that ends it."""
    cut = len(utterance) * 2 // 3 // 2 * 2
    daemon.feed(utterance[:cut])
    daemon.events.wait_for(lambda e: e.of("partial", 1))
    fault()
    daemon.feed(utterance[cut:] + silence(1.0, RATE))


def test_server_killed_mid_utterance_is_an_error_and_its_restart_serves_the_next(speech_pcm, monkeypatch):
    port = free_port()
    server = serve(port)
    try:
        daemon = PipedDaemon(settings_for(f"127.0.0.1:{port}", recognition={"model": "general"}), monkeypatch)

        def kill():
            server.kill()
            server.wait(10)

        mid_utterance_fault(daemon, speech_pcm(KITCHEN), kill)
        daemon.events.wait_for(lambda e: e.of("session_error", 1))
        server = serve(port)
        daemon.feed(speech_pcm(BEDROOM) + silence(1.0, RATE))
        daemon.events.wait_for(lambda e: e.of("final", 2))
        events = daemon.finish()
    finally:
        server.kill()
        server.wait(10)
    assert [e["code"] for e in events.of("session_error")] == ["UNAVAILABLE"]
    assert "bedroom" in finals_text(events, 2)
    every_session_accounted_for(events)


@pytest.fixture
def proxy(local_server):
    with TcpProxy(local_server.port) as running:
        yield running


def test_dropped_connections_mid_utterance_are_an_error_then_the_next_utterance_works(proxy, speech_pcm, monkeypatch):
    daemon = PipedDaemon(settings_for(proxy.target), monkeypatch)
    mid_utterance_fault(daemon, speech_pcm(KITCHEN), proxy.drop)
    daemon.events.wait_for(lambda e: e.of("session_error", 1))
    proxy.heal()
    daemon.feed(speech_pcm(BEDROOM) + silence(1.0, RATE))
    events = daemon.finish()
    [error] = events.of("session_error")
    assert error["code"] == "UNAVAILABLE" and error["details"]
    assert finals_text(events, 2) == BEDROOM
    every_session_accounted_for(events)


def test_connection_stalled_mid_utterance_ends_at_the_final_deadline_then_recovers(proxy, speech_pcm, monkeypatch):
    daemon = PipedDaemon(settings_for(proxy.target), monkeypatch)
    mid_utterance_fault(daemon, speech_pcm(KITCHEN), proxy.blackhole)
    # nothing comes back: the daemon's own deadline after the end of speech ends the wait
    daemon.events.wait_for(lambda e: e.of("session_error", 1))
    assert not daemon.events.of("final", 1)
    proxy.heal()
    daemon.feed(speech_pcm(BEDROOM) + silence(1.0, RATE))
    events = daemon.finish()
    [error] = events.of("session_error")
    assert error["code"] == "DEADLINE_EXCEEDED" and "after the end of speech" in error["details"]
    assert finals_text(events, 2) == BEDROOM
    every_session_accounted_for(events)


# ---- every documented status code ----------------------------------------------------------


class RefusingStt(stt_grpc.SttServiceServicer):
    """SttService that aborts each call with `code` after its first audio message, or (code
    None) passes the call through to a real server."""

    def __init__(self, upstream: str):
        self.code: str | None = None
        self.calls = 0
        self._upstream = stt_grpc.SttServiceStub(grpc.insecure_channel(upstream))

    def StreamingRecognize(self, request_iterator, context):
        self.calls += 1
        if self.code is not None:
            next(request_iterator, None)  # the config message
            next(request_iterator, None)  # some audio: the call is under way
            context.abort(getattr(grpc.StatusCode, self.code), f"test server refuses: {self.code}")
        yield from self._upstream.StreamingRecognize(request_iterator)


@pytest.fixture(scope="module")
def refusing_server(local_server):
    servicer = RefusingStt(local_server.target)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    stt_grpc.add_SttServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield servicer, f"127.0.0.1:{port}"
    server.stop(0)


# calls one session makes before it gives up (FAST_RETRY attempts = 3; one credential refresh)
CALLS = {
    "INVALID_ARGUMENT": 1,
    "UNAUTHENTICATED": 2,
    "PERMISSION_DENIED": 1,
    "RESOURCE_EXHAUSTED": 3,
    "INTERNAL": 3,
    "UNAVAILABLE": 3,
    "DEADLINE_EXCEEDED": 3,
}


@pytest.mark.parametrize("code", list(CALLS))
def test_each_status_code_is_reported_after_the_policy_and_the_next_session_works(
    code, refusing_server, speech_pcm, monkeypatch
):
    servicer, target = refusing_server
    servicer.code, servicer.calls = code, 0
    daemon = PipedDaemon(settings_for(target), monkeypatch)
    try:
        daemon.feed(speech_pcm(KITCHEN) + silence(1.0, RATE))
        daemon.events.wait_for(lambda e: e.of("session_error", 1))
        calls = servicer.calls
    finally:
        servicer.code = None  # the server is well again
    daemon.feed(speech_pcm(BEDROOM) + silence(1.0, RATE))
    events = daemon.finish()
    [error] = events.of("session_error")
    assert error["code"] == code and f"test server refuses: {code}" in error["details"]
    if code == "INVALID_ARGUMENT":
        assert error["details"].startswith("configuration error")
    assert calls == CALLS[code]
    assert finals_text(events, 2) == BEDROOM
    every_session_accounted_for(events)


# ---- the microphone vanishes and returns ---------------------------------------------------


def test_missing_microphone_is_reported_until_it_returns_then_speech_is_heard(local_server, speech_pcm, tmp_path):
    """`voiced run` on the ALSA virtual microphone whose input file is gone (the device cannot
    open): audio_error events with a growing retry delay; the file comes back: speech is heard."""
    infile = tmp_path / "mic.raw"
    env = asound_home(tmp_path, infile)
    config = tmp_path / "voiced.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "audio": {"device": "wavmic", "reopen_backoff_s": 0.05, "reopen_backoff_max_s": 0.2},
                "recognition": {"endpoint": local_server.target, "language": "en-US", "model": "lights"},
                "commands": {"files": []},
            }
        )
    )
    daemon = subprocess.Popen(
        [sys.executable, "-m", "voiced", "run", "--config", str(config), "--events", "jsonl"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=tmp_path,
    )
    timer = threading.Timer(60, daemon.kill)  # only against a hang
    timer.start()
    errors, final = [], None
    try:
        for line in daemon.stdout:
            event = json.loads(line)
            if event["type"] == "audio_error":
                errors.append(event)
                if len(errors) == 4:  # plugged in again (whole, as a device appears)
                    staged = tmp_path / "staged.raw"
                    staged.write_bytes(speech_pcm(KITCHEN) + silence(3.0, RATE))
                    staged.rename(infile)
            elif event["type"] == "final" and event["text"]:
                final = event
                break
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=20) == 0
    finally:
        timer.cancel()
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
    assert len(errors) >= 4 and all(e["source"] == "wavmic" and e["details"] for e in errors)
    assert [e["retry_in_s"] for e in errors[:4]] == [0.05, 0.1, 0.2, 0.2]
    assert final is not None and final["text"] == KITCHEN


# ---- actions that hang, crash or flood -----------------------------------------------------

WRITE_ARGS = "import sys; open(sys.argv[1], 'a').write(' '.join(sys.argv[2:]) + '\\n')"


def python_action(code: str, **options) -> dict:
    return {"type": "exec", "argv": [sys.executable, "-c", code], **options}


def test_hanging_crashing_and_flooding_actions_are_reported_and_the_daemon_goes_on(
    local_server, speech_pcm, monkeypatch, tmp_path
):
    log = tmp_path / "actions.log"
    actions = [
        python_action("import time; time.sleep(600)", timeout_s=1),  # hangs
        python_action("import os, signal; os.kill(os.getpid(), signal.SIGSEGV)"),  # crashes
        python_action(
            "import sys\nwhile True: sys.stdout.write('x' * 65536)", timeout_s=1, max_output_bytes=1024
        ),  # floods forever
        python_action("import sys; sys.stdout.write('y' * 20_000_000)", max_output_bytes=1024),  # a big burst
        {"type": "exec", "argv": [sys.executable, "-c", WRITE_ARGS, str(log), "on", "$room"]},
    ]
    commands = {
        "languages": {"en": {"lists": {"room": {"values": ["kitchen", "bedroom"]}}}},
        "commands": {"LightOn": {"sentences": {"en": ["turn on the {room} lights"]}, "actions": actions}},
    }
    (tmp_path / "commands.yaml").write_text(yaml.safe_dump(commands))
    daemon = PipedDaemon(
        settings_for(local_server.target, commands={"files": [str(tmp_path / "commands.yaml")]}), monkeypatch
    )
    daemon.feed(speech_pcm(KITCHEN) + silence(1.0, RATE) + speech_pcm(BEDROOM) + silence(1.0, RATE))
    events = daemon.finish(timeout=30)  # returns once every action has finished or was killed
    assert sorted(e["slots"]["room"] for e in events.of("command_matched")) == ["bedroom", "kitchen"]
    outcomes = sorted(
        (e["index"], e["type"], e.get("error") or e.get("detail"))
        for e in events
        if e["type"] in ("action_failed", "action_finished")
    )
    assert [(index, kind) for index, kind, _ in outcomes] == [
        (0, "action_failed"),
        (0, "action_failed"),
        (1, "action_failed"),
        (1, "action_failed"),
        (2, "action_failed"),
        (2, "action_failed"),
        (3, "action_finished"),
        (3, "action_finished"),
        (4, "action_finished"),
        (4, "action_finished"),
    ]
    by_index = {index: detail for index, _, detail in outcomes}
    assert "timeout" in by_index[0] and "killed by signal 11" in by_index[1] and "timeout" in by_index[2]
    assert by_index[3] == "exit 0 (output truncated)"
    assert sorted(log.read_text().splitlines()) == ["on bedroom", "on kitchen"]


# ---- a storm of reloads --------------------------------------------------------------------


class NotifySocket:
    """A $NOTIFY_SOCKET whose sd_notify messages are read all along, as systemd does (a full
    datagram queue would block the sender)."""

    def __init__(self, directory: Path):
        self.path = str(directory / "notify.sock")
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(self.path)
        self.messages = Events()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        with contextlib.suppress(OSError):
            while datagram := self._sock.recv(4096):  # b"" once shut down
                self.messages({"type": "notify", "text": datagram.decode()})

    def count(self, field: str) -> int:
        return sum(field in m["text"] for m in self.messages.of("notify"))

    def close(self) -> None:
        self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()


def test_reload_storm_with_valid_and_broken_configs_keeps_running_and_finishes(local_server, speech_pcm):
    with tempfile.TemporaryDirectory(prefix="storm") as name:  # short path: AF_UNIX names are short
        directory = Path(name)
        # long enough that the reload after the storm comes while a pipeline still listens
        wav = write_wav(directory / "in.wav", speech_pcm(KITCHEN) + silence(4.0, RATE), RATE)
        config = directory / "voiced.yaml"
        valid = yaml.safe_dump(
            {
                "recognition": {"endpoint": local_server.target, "language": "en-US", "model": "lights"},
                "commands": {"files": []},
            }
        )
        broken = valid + "endpointing: {frame_ms: 7}\n"

        def write_config(text: str) -> None:  # as an editor saves: a whole new file
            (directory / "next.yaml").write_text(text)
            (directory / "next.yaml").rename(config)

        write_config(valid)
        notify = NotifySocket(directory)
        env = {**os.environ, "NOTIFY_SOCKET": notify.path}
        command = [
            sys.executable,
            "-m",
            "voiced",
            "-v",
            "run",
            "--config",
            str(config),
            "--input",
            str(wav),
            "--events",
            "jsonl",
        ]
        daemon = subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=directory
        )
        try:
            notify.messages.wait_for(lambda m: notify.count("READY=1"), timeout=30)  # the signal handlers are installed
            # one broken config read for certain: in the storm, a daemon slowed by a busy machine
            # may read each file only after the next has replaced it
            write_config(broken)
            daemon.send_signal(signal.SIGHUP)
            notify.messages.wait_for(lambda m: notify.count("READY=1") >= 2, timeout=60)  # rejected, running on
            for index in range(30):
                write_config(broken if index % 2 else valid)
                daemon.send_signal(signal.SIGHUP)
                time.sleep(0.02)
            write_config(valid)
            daemon.send_signal(signal.SIGHUP)  # and one valid config read for certain
            try:
                stdout, stderr = daemon.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                daemon.kill()
                stdout, stderr = daemon.communicate()
                pytest.fail(f"voiced run still running after the storm:\n{stderr[-3000:]}")
        finally:
            if daemon.poll() is None:
                daemon.kill()
                daemon.wait()
            notify.close()
    assert daemon.returncode == 0, stderr[-3000:]
    assert "reload rejected" in stderr and "configuration reloaded" in stderr
    assert notify.count("RELOADING=1") >= 2
    finals = [json.loads(line) for line in stdout.splitlines() if '"final"' in line]
    assert any(e["text"] == KITCHEN for e in finals), stdout[-3000:]
