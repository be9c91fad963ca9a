"""The daemon under faults and hostile neighbours, as real processes: its event output closed
early, another local process at its embedded recognizer, input faster than real time, a
rejected reload, action programs that try to outlive it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import yaml

from tests.tcp_proxy import TcpProxy
from tests.test_daemon import DEMO, RATE, WRITE_ARGS, DaemonProcess
from voiced.listen.recognizers import recognizer
from voiced.protocol.results import Final
from voiced.settings import DaemonSettings
from voiced.testing import read_pcm, silence


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def write_commands(directory: Path, actions: dict[str, list]) -> Path:
    """voiced.yaml naming a commands.yaml with the shipped sentences and the given actions."""
    shipped = yaml.safe_load((Path(__file__).resolve().parent.parent / "config" / "commands.yaml").read_text())
    shipped["commands"] = {
        name: {**command, "actions": actions.get(name, [])} for name, command in shipped["commands"].items()
    }
    (directory / "commands.yaml").write_text(yaml.safe_dump(shipped, allow_unicode=True))
    config = directory / "voiced.yaml"
    config.write_text("commands:\n  files: [commands.yaml]\nservice:\n  stop_timeout_s: 2\n")
    return config


def test_a_closed_event_output_stops_no_action(tmp_path):
    """`voiced run --events jsonl | head -1`: the reader leaves after one line; both spoken
    commands still run their actions, and the daemon ends normally."""
    log = tmp_path / "actions.log"
    write = {"type": "exec", "argv": [sys.executable, "-c", WRITE_ARGS, str(log), "$intent"]}
    config = write_commands(tmp_path, {"LightOn": [write], "SetTimer": [write]})
    child = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "voiced",
            "run",
            "--config",
            str(config),
            "--input",
            str(DEMO),
            "--fast",
            "--events",
            "jsonl",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=tmp_path,
    )
    assert json.loads(child.stdout.readline())["type"] == "speech_started"
    child.stdout.close()  # what `head -1` does
    _, stderr = child.communicate(timeout=120)
    assert child.returncode == 0, stderr.decode()[-3000:]
    assert sorted(log.read_text().split()) == ["LightOn", "SetTimer"]
    assert stderr.count(b"event output closed") == 1 and b"Traceback" not in stderr, stderr.decode()[-3000:]


def _listening_sockets() -> set[str]:
    """Inodes of this process's sockets that listen on TCP (IPv4 or IPv6)."""
    listening = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as lines:
            listening |= {fields[9] for fields in map(str.split, list(lines)[1:]) if fields[3] == "0A"}
    mine = {
        os.readlink(f"/proc/self/fd/{fd}")
        for fd in os.listdir("/proc/self/fd")
        if os.path.exists(f"/proc/self/fd/{fd}")
    }
    return {inode for inode in listening if f"socket:[{inode}]" in mine}


def test_the_local_recognizer_opens_no_port_and_serves_the_daemon(speech_pcm):
    settings = DaemonSettings.model_validate({"recognition": {"model": "general"}})
    before = _listening_sockets()
    with recognizer(settings.recognition, settings.server, settings.commands.local_grammar.model) as client:
        assert _listening_sockets() == before  # nothing another process could connect to
        session = client.session()
        session.send(speech_pcm("what time is it"))
        session.finish()
        finals = [event.text for event in session.events() if isinstance(event, Final)]
        assert any("time" in text for text in finals), finals


def test_input_faster_than_real_time_loses_no_session(tmp_path, speech, local_server):
    """Seven commands on stdin at once (`voiced run --input - < file`) to a recognizer behind a
    link that carries audio at twice real time: the last of them reach it many seconds after
    they were read (more than the 5 s a final is given), yet every session ends in its final.
    (The link, not the CPU, makes the backlog: the same on an idle or a loaded machine.)"""
    phrases = [
        "turn on the kitchen lights",
        "set a timer for five minutes",
        "open the garage door",
        "turn off the bedroom lights",
        "set a timer for twenty minutes",
        "turn on the garage lights",
        "turn off the kitchen lights",
    ]
    pcm = silence(0.5, RATE)
    for phrase in phrases:
        pcm += read_pcm(speech(phrase, "flite:kal16"))[0] + silence(1.0, RATE)
    with TcpProxy(local_server.port) as link:
        link.throttle(2 * RATE * 2)
        config = tmp_path / "voiced.yaml"
        config.write_text(f"recognition: {{endpoint: '{link.target}', model: lights}}\n")  # conftest's grammar
        child = subprocess.run(
            [sys.executable, "-m", "voiced", "run", "--config", str(config), "--input", "-", "--events", "jsonl"],
            input=pcm + silence(2.0, RATE),
            capture_output=True,
            timeout=300,
            cwd=tmp_path,
        )
    assert child.returncode == 0, child.stderr.decode()[-3000:]
    events = [json.loads(line) for line in child.stdout.splitlines()]
    assert [e for e in events if e["type"] == "session_error"] == []
    assert len([e for e in events if e["type"] == "speech_started"]) == len(phrases)
    finals = {e["session"]: e["text"] for e in events if e["type"] == "final"}
    assert [finals.get(session) for session in range(1, 8)] == [
        "turn on the kitchen lights",
        "set a timer for 5 minutes",
        "open the garage door",
        "turn off the bedroom lights",
        "set a timer for 20 minutes",
        "turn on the garage lights",
        "turn off the kitchen lights",
    ]


def test_action_programs_do_not_outlive_the_daemon(tmp_path, speech_pcm):
    """An action still running at SIGTERM (its own timeout far away) is stopped with the
    daemon, together with what it started, `setsid` included."""
    pids = tmp_path / "pids"
    # ($$ is the action templates' escape of a $)
    script = f"setsid sleep 1000 & echo $$! >> {pids}; sleep 1000 & echo $$! >> {pids}; echo $$$$ >> {pids}; wait"
    config = write_commands(tmp_path, {"WhatTime": [{"type": "exec", "argv": ["sh", "-c", script], "timeout_s": 600}]})
    daemon = DaemonProcess(tmp_path, config)
    try:
        daemon.notifications(b"READY=1")
        daemon.speak(speech_pcm("what time is it") + silence(1.0, RATE))
        daemon.wait_for(lambda events: any(e["type"] == "action_started" for e in events))
        daemon.wait_for(lambda events: pids.exists() and len(pids.read_text().split()) == 3)
        started = [int(pid) for pid in pids.read_text().split()]
        assert all(alive(pid) for pid in started)
        daemon.child.send_signal(signal.SIGTERM)
        assert daemon.child.wait(timeout=60) == 0
        assert [pid for pid in started if alive(pid)] == []
    finally:
        daemon.close()


def test_a_hostile_config_on_reload_is_rejected_and_the_daemon_goes_on(tmp_path, speech_pcm):
    config = tmp_path / "voiced.yaml"
    config.write_text("recognition:\n  model: general\n")
    daemon = DaemonProcess(tmp_path, config)
    try:
        daemon.notifications(b"READY=1")
        stderr = []
        reader = threading.Thread(target=lambda: stderr.extend(daemon.child.stderr), daemon=True)
        reader.start()
        for content in (b"audio:\n  device: \xff\n", b"x: " + b"[" * 100_000 + b"]" * 100_000, b"a: &a [x, *a]\n"):
            config.write_bytes(content)
            daemon.child.send_signal(signal.SIGHUP)
            assert b"READY=1" in b"".join(daemon.notifications(b"READY=1"))  # back from RELOADING
        daemon.speak(speech_pcm("what time is it") + silence(1.0, RATE))
        daemon.wait_for(lambda events: any(e["type"] == "final" and "time" in e["text"] for e in events))
        daemon.child.stdin.close()
        assert daemon.child.wait(timeout=60) == 0
        reader.join(10)
        log = b"".join(stderr).decode()
        assert log.count("reload rejected, keeping the running configuration") == 3 and "Traceback" not in log, log
        assert f"{config}:2:11: not UTF-8 text" in log and "nested more than 64 levels" in log
    finally:
        daemon.close()


def test_running_actions_and_programs_are_isolated_from_the_daemon_environment(tmp_path):
    """A secret in the daemon's environment does not reach an exec action's program."""
    out = tmp_path / "env.json"
    dump = f"import json, os; json.dump(dict(os.environ), open({str(out)!r}, 'w'))"
    config = write_commands(
        tmp_path, {"WhatTime": [{"type": "exec", "argv": [sys.executable, "-c", dump], "pass_env": ["PASSED_ON"]}]}
    )
    env = {**os.environ, "HA_AUTHORIZATION": "Bearer secret", "MQTT_PASSWORD": "secret", "PASSED_ON": "yes"}
    child = subprocess.run(
        [sys.executable, "-m", "voiced", "match", "what time is it", "--run", "--config", str(config)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
    )
    assert child.returncode == 0, child.stderr
    seen = json.loads(out.read_text())
    assert "HA_AUTHORIZATION" not in seen and "MQTT_PASSWORD" not in seen and seen["PASSED_ON"] == "yes"
    assert seen["VOICED_INTENT"] == "WhatTime" and seen["PATH"] == os.environ["PATH"]
