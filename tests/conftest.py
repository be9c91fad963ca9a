"""Shared test fixtures: real synthesized speech (voiced.testing, cached per test session),
a real mosquitto broker, the real local server, a real HTTP server.

Tests that need the speech tools (flite, espeak-ng, sox) are marked `speech`:
`pytest -m "not speech"` runs the others without them."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from voiced.testing import free_port, read_pcm, silence, synthesize


@pytest.fixture(scope="session")
def tts_dir(tmp_path_factory) -> Path:
    for tool in ("flite", "espeak-ng", "sox"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing: run the README's setup (bash .ci/setup --dev)")
    return tmp_path_factory.mktemp("tts")


@pytest.fixture(scope="session")
def speech(tts_dir):
    """speech(text, voice="flite:slt", rate=16000) -> path of a WAV of that text."""

    def make(text: str, voice: str = "flite:slt", rate: int = 16000) -> Path:
        return synthesize(text, voice, rate, tts_dir)

    return make


@pytest.fixture(scope="session")
def speech_pcm(speech):
    """speech_pcm(text, voice, rate, pad_s=0.5) -> raw PCM with silence padding around it."""

    def make(text: str, voice: str = "flite:slt", rate: int = 16000, pad_s: float = 0.5) -> bytes:
        pcm, _ = read_pcm(speech(text, voice, rate))
        return silence(pad_s, rate) + pcm + silence(pad_s, rate)

    return make


class Mosquitto:
    """A real mosquitto broker on a free loopback port, for MQTT action tests (`users`: name ->
    password, anonymous clients refused; `acl`: who may publish or subscribe to what)."""

    def __init__(self, directory: Path, users: dict[str, str] | None = None, acl: str | None = None):
        self.port = free_port()
        directory.mkdir(parents=True, exist_ok=True)
        import getpass

        # as root mosquitto would switch to user "mosquitto", who cannot read the test's files
        lines = [
            f"listener {self.port} 127.0.0.1",
            f"allow_anonymous {'false' if users else 'true'}",
            f"user {getpass.getuser()}",
        ]
        if users:
            passwd = directory / "passwd"
            passwd.touch(mode=0o600)
            for user, password in users.items():
                subprocess.run(["mosquitto_passwd", "-b", str(passwd), user, password], check=True)
            lines.append(f"password_file {passwd}")
        if acl is not None:  # mosquitto's acl_file syntax; lines before any `user` are for anonymous clients
            (directory / "acl").write_text(acl)
            lines.append(f"acl_file {directory / 'acl'}")
        self.conf = directory / "mosquitto.conf"
        self.conf.write_text("\n".join(lines) + "\n")
        self.start()

    def start(self) -> None:
        import socket
        import time

        self.process = subprocess.Popen(
            ["mosquitto", "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("mosquitto did not start")

    def subscribe(self, topic: str):
        """A connected paho client collecting (topic, payload, retain) of `topic` in `.messages`."""
        import threading

        import paho.mqtt.client as paho

        client = paho.Client(paho.CallbackAPIVersion.VERSION2)
        client.messages = []
        subscribed = threading.Event()
        client.on_connect = lambda c, u, f, r, p: c.subscribe(topic, qos=1)
        client.on_subscribe = lambda c, u, mid, codes, p: subscribed.set()
        client.on_message = lambda c, u, m: c.messages.append((m.topic, m.payload, m.retain))
        client.connect("127.0.0.1", self.port)
        client.loop_start()
        assert subscribed.wait(10), "test subscriber could not subscribe"
        return client

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory):
    broker = Mosquitto(tmp_path_factory.mktemp("mosquitto"))
    yield broker
    broker.stop()


LIGHTS_GRAMMAR = """#JSGF V1.0;
grammar lights;
public <command> = turn (on | off) the (kitchen | bedroom | garage) lights | open the garage door
                 | set a timer for (one | two | five | ten | twenty) minutes;
"""


@pytest.fixture(scope="session")
def local_server():
    """The real local server on a free loopback port, with a small grammar model "lights". Its
    gap limit is generous: it shares the test's process with the clients, and on a loaded
    machine their messages can be late by more than the service's 5 s (tested elsewhere)."""
    from voiced.server.app import start_server
    from voiced.server.config import GrammarModel, ServerLimits, ServerSettings

    server = start_server(
        ServerSettings(models={"lights": GrammarModel(jsgf=LIGHTS_GRAMMAR)}, limits=ServerLimits(max_gap_s=60))
    )
    yield server
    server.stop()


def start_http_recorder(tls: tuple[Path, Path] | None = None):
    """A real HTTP server on a free loopback port recording what it is sent (stop: .shutdown());
    HTTPS with `tls` = (certificate, key) PEM files."""
    import ssl
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Recorder(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.server.requests.append((self.command, self.path, dict(self.headers), body))
            self.send_response(500 if self.path.startswith("/fail") else 200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b"[]")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    server.requests = []
    if tls is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*tls)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def http_server():
    server = start_http_recorder()
    yield server
    server.shutdown()
    server.server_close()


SPEECH_FIXTURES = {"tts_dir", "speech", "speech_pcm"}


def pytest_collection_modifyitems(items):
    """Mark the tests that synthesize speech (and so need flite, espeak-ng, festival and sox)."""
    for item in items:
        if SPEECH_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.speech)
