"""The shipped units: `systemd-analyze verify` clean, security exposure <= 2.0, and in step
with the CLI and install-service.

verify insists that ExecStart's binary exists, and /usr/local/bin/voiced exists only once
installed. So each unit is verified as a copy whose ExecStart points at this environment's
own `voiced` executable, with everything else byte-identical (--root would need a whole
image with every unit the dependencies name).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
import yaml

from tests.audio.test_sources import asound_home
from voiced.cli import build_parser
from voiced.ops.install import CONFIG_PATH, CREDENTIALS_DIR, EXECUTABLE_LINK, UNITS
from voiced.ops.signals import ServiceSettings
from voiced.testing import read_pcm, silence

UNIT_DIR = Path(__file__).resolve().parents[2] / "systemd"
EXPOSURE_TARGET = 2.0
VOICED = Path(sys.executable).parent / "voiced"


def parse_unit(path: Path) -> dict[str, list[str]]:
    """ "Section.Key" -> values in order (systemd keys may repeat)."""
    entries: dict[str, list[str]] = {}
    section = ""
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        entries.setdefault(f"{section}.{key}", []).append(value)
    return entries


def one(entries: dict[str, list[str]], key: str) -> str:
    values = entries[f"Service.{key}"]
    assert len(values) == 1, (key, values)
    return values[0]


@pytest.fixture(scope="module")
def systemd_analyze() -> str:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.fail("systemd-analyze is missing: run the README's setup (bash .ci/setup --dev)")
    return tool


@pytest.fixture(params=sorted(UNITS.values()))
def testable_unit(request, tmp_path) -> Path:
    """A copy of the shipped unit whose ExecStart binary exists here."""
    shipped = UNIT_DIR / request.param
    text = shipped.read_text()
    assert text.count(f"ExecStart={EXECUTABLE_LINK} ") == 1
    copy = tmp_path / request.param
    copy.write_text(text.replace(f"ExecStart={EXECUTABLE_LINK} ", f"ExecStart={VOICED} "))
    return copy


def test_verify_is_clean(systemd_analyze, testable_unit):
    result = subprocess.run(
        [systemd_analyze, "verify", str(testable_unit)], capture_output=True, text=True, timeout=120
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    # other units on the host may have problems of their own; ours must have none
    assert [line for line in output.splitlines() if "voiced" in line] == []


def test_security_exposure_within_target(systemd_analyze, testable_unit):
    result = subprocess.run(
        [
            systemd_analyze,
            "security",
            "--offline=yes",
            f"--threshold={int(EXPOSURE_TARGET * 10)}",
            "--no-pager",
            str(testable_unit),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    overall = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert overall, result.stdout + result.stderr
    assert float(overall.group(1)) <= EXPOSURE_TARGET, result.stdout
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("unit", sorted(UNITS.values()))
def test_exec_start_is_a_valid_voiced_command_line(unit):
    argv = shlex.split(one(parse_unit(UNIT_DIR / unit), "ExecStart"))
    assert argv[0] == str(EXECUTABLE_LINK)  # the link install-service creates
    args = build_parser().parse_args(argv[1:])
    assert args.config == str(CONFIG_PATH)
    assert args.command == ("run" if unit == "voiced.service" else "serve")


@pytest.mark.parametrize("unit", sorted(UNITS.values()))
def test_service_contract(unit):
    entries = parse_unit(UNIT_DIR / unit)
    assert one(entries, "Type") == "notify"
    assert one(entries, "NotifyAccess") == "main"
    assert one(entries, "Restart") == "on-failure"
    assert (one(entries, "User"), one(entries, "Group")) == ("voiced", "voiced")
    assert one(entries, "NoNewPrivileges") == "yes"
    assert one(entries, "ProtectSystem") == "strict"
    assert one(entries, "DevicePolicy") == "closed"
    assert set(one(entries, "RestrictAddressFamilies").split()) == {"AF_UNIX", "AF_INET", "AF_INET6"}
    assert entries["Service.SystemCallFilter"][0] == "@system-service"
    assert entries["Install.WantedBy"] == ["multi-user.target"]
    timeout_stop = float(one(entries, "TimeoutStopSec").removesuffix("s"))
    # the daemon's own stop bound must run out before systemd starts killing
    limits = ServiceSettings.model_fields["stop_timeout_s"].metadata
    assert next(limit.le for limit in limits if hasattr(limit, "le")) < timeout_stop


def test_daemon_unit_specifics():
    entries = parse_unit(UNIT_DIR / "voiced.service")
    assert one(entries, "SupplementaryGroups") == "audio"
    assert one(entries, "DeviceAllow") == "char-alsa rw"
    assert one(entries, "LoadCredential") == f"voiced:{CREDENTIALS_DIR}"
    assert one(entries, "StateDirectory") == "voiced"
    assert float(one(entries, "WatchdogSec").removesuffix("s")) >= 10
    assert one(entries, "ExecReload") == "/bin/kill -HUP $MAINPID"
    assert one(entries, "KillMode") == "mixed"


@pytest.fixture
def notify_socket(tmp_path):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify"))
    sock.settimeout(0.2)
    yield sock, str(tmp_path / "notify")
    sock.close()


@pytest.mark.parametrize("unit", sorted(UNITS.values()))
def test_type_notify_command_reports_ready(unit, notify_socket, speech, tmp_path):
    """A Type=notify unit whose program never sends READY=1 is killed at start: run the
    unit's own command line (config and input swapped for test ones) under a NOTIFY_SOCKET."""
    sock, address = notify_socket
    config = tmp_path / "voiced.yaml"
    config.write_text("{}\n")
    argv = shlex.split(one(parse_unit(UNIT_DIR / unit), "ExecStart"))
    argv = [str(VOICED)] + [str(config) if arg == str(CONFIG_PATH) else arg for arg in argv[1:]]
    if "serve" in argv:
        argv[argv.index("--port") + 1] = "0"
    else:  # no microphone here: a spoken command from a file
        argv += ["--input", str(speech("turn on the light"))]
    env = {**os.environ, "NOTIFY_SOCKET": address}
    process = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    messages: list[str] = []
    try:
        deadline = time.monotonic() + 60
        while not any("READY=1" in m.split("\n") for m in messages) and time.monotonic() < deadline:
            try:
                messages.append(sock.recv(4096).decode())
            except TimeoutError:
                if process.poll() is not None:
                    break
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=60)
    assert any("READY=1" in m.split("\n") for m in messages), (
        f"{unit}: `{shlex.join(argv)}` sent no READY=1 (got {messages}); wire voiced.ops.notify.Notifier "
        f"into it. stderr: {stderr[-2000:]}"
    )


# The kernel's own form of MemoryDenyWriteExecute (Linux >= 6.3; systemd uses it where it can,
# a seccomp filter with the same effect elsewhere): no memory both writable and executable.
MDWE_EXEC = textwrap.dedent("""
    import ctypes, os, sys
    if ctypes.CDLL(None, use_errno=True).prctl(65, 1, 0, 0, 0) != 0:  # PR_SET_MDWE, REFUSE_EXEC_GAIN
        sys.exit(77)
    os.execv(sys.argv[1], sys.argv[1:])
""")
W_X_MAPPING = "import mmap; mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)"


def under_mdwe(argv: list[str]) -> list[str]:
    return [sys.executable, "-c", MDWE_EXEC, *argv]


def test_the_daemon_works_under_memory_deny_write_execute(speech, tmp_path):
    """Both units set MemoryDenyWriteExecute=yes: a dependency that needs writable code (a
    JIT, some cffi callbacks) would crash the service at start. Run the whole data path that
    way: PortAudio capture from the virtual ALSA microphone, webrtcvad, Ogg Opus (PyAV) to the
    embedded gRPC server, its soxr and pocketsphinx, and the command matcher."""
    probe = subprocess.run(
        under_mdwe([sys.executable, "-c", W_X_MAPPING]), capture_output=True, text=True, timeout=60, check=False
    )
    if probe.returncode == 77:
        pytest.skip("this kernel has no PR_SET_MDWE (Linux < 6.3)")
    assert "PermissionError" in probe.stderr, "the policy is not in force: this test would prove nothing"

    rate = 16000
    pcm = silence(1.0, rate) + read_pcm(speech("turn on the lights in the kitchen"))[0] + silence(3.0, rate)
    infile = tmp_path / "mic.raw"
    infile.write_bytes(pcm)
    env = asound_home(tmp_path, infile)
    config = tmp_path / "voiced.yaml"
    config.write_text(
        "audio:\n  device: wavmic\nrecognition:\n  language: en-US\n  encoding: OGG_OPUS\ncommands:\n  files: []\n"
    )
    daemon = subprocess.Popen(
        under_mdwe([str(VOICED), "run", "--config", str(config), "--events", "jsonl"]),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    hang_guard = threading.Timer(120, daemon.kill)
    hang_guard.start()
    try:
        finals = (json.loads(line)["text"] for line in daemon.stdout if json.loads(line)["type"] == "final")
        final = next(finals, None)
        daemon.send_signal(signal.SIGTERM)
        _, stderr = daemon.communicate(timeout=60)
    finally:
        hang_guard.cancel()
        if daemon.poll() is None:
            daemon.kill()
    assert final is not None and "lights in the kitchen" in final, stderr[-2000:]
    assert daemon.returncode == 0, stderr[-2000:]


def test_the_daemon_unit_bounds_memory_and_tasks():
    entries = parse_unit(UNIT_DIR / "voiced.service")
    assert one(entries, "MemoryMax") == "512M" and one(entries, "TasksMax") == "256"


SHIPPED_SENTENCES = {
    "LightOn": "turn on the kitchen light",
    "LightOff": "turn off the kitchen light",
    "SetTimer": "set a timer for five minutes",
    "WhatTime": "what time is it",
    "Stop": "stop",
}


def test_every_shipped_example_works_under_the_units_restrictions(tmp_path, mosquitto, http_server):
    """The example commands as shipped (only Home Assistant's address and the broker's port
    pointed at local stand-ins), run by `voiced match --run` with what the unit takes away that
    can be had without systemd: no user session (ProtectHome hides /run/user: no
    XDG_RUNTIME_DIR, no session bus), no new privileges, no writable+executable memory, audio
    through ALSA only (a null device here). (SetVolume's amixer needs a sound card's mixer.)"""
    shipped = (UNIT_DIR.parent / "config" / "commands.yaml").read_text()
    (tmp_path / "commands.yaml").write_text(
        shipped.replace("homeassistant.local:8123", f"127.0.0.1:{http_server.server_port}")
    )
    config = tmp_path / "voiced.yaml"
    config.write_text(f"commands: {{files: [commands.yaml]}}\nactions: {{mqtt: {{port: {mosquitto.port}}}}}\n")
    (tmp_path / ".asoundrc").write_text("pcm.!default { type null }\n")
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("XDG_RUNTIME_DIR", "DBUS_SESSION_BUS_ADDRESS", "VOICED_CONFIG")
    }
    env.update(HOME=str(tmp_path), HA_AUTHORIZATION="Bearer test-token")
    assert set(SHIPPED_SENTENCES) | {"SetVolume"} == set(yaml.safe_load(shipped)["commands"])
    for intent, sentence in SHIPPED_SENTENCES.items():
        argv = [
            "setpriv",
            "--no-new-privs",
            *under_mdwe([str(VOICED), "match", sentence, "--run", "--config", str(config)]),
        ]
        child = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
        assert child.returncode == 0, child.stderr[-2000:]
        events = [json.loads(line) for line in child.stdout.splitlines() if line.startswith('{"ts"')]
        assert [e["type"] for e in events if e["type"] in ("action_finished", "action_failed")] == [
            "action_finished"
        ] * len(yaml.safe_load(shipped)["commands"][intent]["actions"]), (intent, events)
