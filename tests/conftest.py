"""Shared test fixtures: real synthesized speech (flite / espeak-ng + sox).

Speech is synthesized once per test session into a cache directory and converted with sox
to 16-bit mono WAV at the asked rate. Voices are named "flite:<voice>" (kal, kal16, awb,
rms, slt) or "espeak:<voice>" (en-us, en-us+f3, en-gb, ...).
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import wave
from pathlib import Path

import pytest

FLITE_VOICES = ("slt", "kal16", "awb", "rms")
ESPEAK_VOICES = ("en-us", "en-us+f3", "en-gb")


def synthesize(text: str, voice: str, rate: int, out_dir: Path) -> Path:
    """Speak `text` with `voice` into a 16-bit mono WAV at `rate` Hz (cached by content).

    A voice is "engine:name" with optional settings after commas: espeak-ng's speed `s` (words
    per minute) and pitch `p` (0-99), and sox's `tempo` (factor) and `pitch` (cents) for any
    engine, e.g. "espeak:en-us+m3,s=140,p=30" or "flite:kal,tempo=1.1"."""
    spec, *options = voice.split(",")
    engine, _, name = spec.partition(":")
    settings = dict(option.split("=", 1) for option in options)
    key = hashlib.sha1(f"{voice}|{rate}|{text}".encode()).hexdigest()[:16]
    out = out_dir / f"{engine}-{name.replace('+', '_')}-{rate}-{key}.wav"
    if out.exists():
        return out
    raw = out_dir / f"{key}.tts.wav"
    if engine == "flite":
        subprocess.run(["flite", "-voice", name, "-t", text, "-o", str(raw)], check=True)
    elif engine == "espeak":
        tuning = [arg for flag in ("s", "p") if flag in settings for arg in (f"-{flag}", settings[flag])]
        subprocess.run(["espeak-ng", "-v", name, *tuning, "-w", str(raw), text], check=True)
    else:
        raise ValueError(f"unknown TTS engine in voice {voice!r}")
    effects = [*(["tempo", settings["tempo"]] if "tempo" in settings else []),
               *(["pitch", settings["pitch"]] if "pitch" in settings else [])]
    subprocess.run(
        ["sox", str(raw), "-r", str(rate), "-c", "1", "-b", "16", "-e", "signed-integer", str(out), *effects],
        check=True,
    )
    raw.unlink()
    return out


def read_pcm(path: Path) -> tuple[bytes, int]:
    """Samples and sample rate of a 16-bit mono WAV."""
    with wave.open(str(path), "rb") as wav:
        assert wav.getsampwidth() == 2 and wav.getnchannels() == 1, path
        return wav.readframes(wav.getnframes()), wav.getframerate()


def write_wav(path: Path, pcm: bytes, rate: int) -> Path:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(pcm)
    return path


def silence(seconds: float, rate: int) -> bytes:
    return b"\x00\x00" * int(seconds * rate)


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


def free_port() -> int:
    """A loopback TCP port nobody listens on (for servers to bind, or to be refused)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def noise(seconds: float, rate: int, kind: str = "pinknoise", volume: float = 0.05) -> bytes:
    """Background noise as raw 16-bit mono PCM (sox synth: whitenoise, pinknoise, brownnoise).
    The same every run (`-R`): without it sox seeds from the clock, and a recognition test on
    noisy speech passes or fails with the noise it happened to draw."""
    return subprocess.run(
        ["sox", "-R", "-n", "-r", str(rate), "-c", "1", "-b", "16", "-e", "signed-integer", "-t", "raw", "-",
         "synth", str(seconds), kind, "vol", str(volume)],
        check=True, capture_output=True,
    ).stdout


def mix(pcm: bytes, background: bytes) -> bytes:
    """`pcm` with `background` added under it (background is cut or repeated to fit)."""
    import numpy as np

    samples = np.frombuffer(pcm, np.int16).astype(np.int32)
    bed = np.resize(np.frombuffer(background, np.int16), samples.shape)
    return np.clip(samples + bed, -32768, 32767).astype(np.int16).tobytes()


class Mosquitto:
    """A real mosquitto broker on a free loopback port, for MQTT action tests (`users`: name ->
    password, anonymous clients refused; `acl`: who may publish or subscribe to what)."""

    def __init__(self, directory: Path, users: dict[str, str] | None = None, acl: str | None = None):
        self.port = free_port()
        directory.mkdir(parents=True, exist_ok=True)
        import getpass

        # as root mosquitto would switch to user "mosquitto", who cannot read the test's files
        lines = [f"listener {self.port} 127.0.0.1", f"allow_anonymous {'false' if users else 'true'}",
                 f"user {getpass.getuser()}"]
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

        self.process = subprocess.Popen(["mosquitto", "-c", str(self.conf)], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
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
    from voiced.server.config import GrammarModel, ServerSettings, SessionLimits

    server = start_server(ServerSettings(models={"lights": GrammarModel(jsgf=LIGHTS_GRAMMAR)},
                                         limits=SessionLimits(max_gap_s=60)))
    yield server
    server.stop()


def process_tree(root: int) -> list[int]:
    """`root` and all its descendants (from /proc)."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rpartition(")")[2].split()[1])
            except OSError:  # the process just ended
                continue
    tree, grew = {root}, True
    while grew:
        children = {pid for pid, parent in parents.items() if parent in tree} - tree
        tree |= children
        grew = bool(children)
    return sorted(tree)


def status_mb(pid: int, field: str) -> float:
    """A memory figure of /proc/PID/status (VmRSS: now, VmHWM: peak) in MB."""
    for line in (Path("/proc") / str(pid) / "status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} for {pid}")


def pss_mb(pid: int) -> float:
    """Proportional set size: pages shared between processes counted once in all (fork's
    copy-on-write model data across workers), so the figures of a tree add up."""
    for line in (Path("/proc") / str(pid) / "smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no Pss for {pid}")


class ServeProcess:
    """`voiced serve` in a child process on a free loopback port, ready (READY=1) when built.

    `server` is the `server:` section (JSON is YAML); `args` more command-line options."""

    def __init__(self, directory: Path, server: dict | None = None, args: tuple[str, ...] = (),
                 ready_timeout_s: float = 120):
        import json
        import os
        import socket
        import sys

        directory.mkdir(parents=True, exist_ok=True)
        self.config = directory / "serve.yaml"
        self.config.write_text(json.dumps({"server": server or {}}))
        self.port = free_port()
        self.target = f"127.0.0.1:{self.port}"
        notify_path = directory / f"notify-{self.port}"
        self._notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._notify.bind(str(notify_path))
        self._notify.settimeout(ready_timeout_s)
        self.log = directory / f"serve-{self.port}.log"
        with self.log.open("w") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "voiced", "serve", "--config", str(self.config), "--port", str(self.port),
                 *args], env={**os.environ, "NOTIFY_SOCKET": str(notify_path)}, stdout=subprocess.DEVNULL, stderr=log)
        try:
            while b"READY=1" not in self._notify.recv(4096):
                pass
        except OSError:
            self.stop()
            raise RuntimeError(f"voiced serve did not get ready: {self.log.read_text()[-2000:]}") from None

    def pss_mb(self) -> float:
        """Memory of the server and its workers, shared pages counted once."""
        total = 0.0
        for pid in process_tree(self.process.pid):
            try:
                total += pss_mb(pid)
            except OSError:
                continue
        return total

    def stop(self, timeout: float = 60) -> int:
        if self.process.poll() is None:
            self.process.terminate()
        try:
            return self.process.wait(timeout)
        finally:
            self.process.kill()
            self.process.wait()
            self._notify.close()


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
