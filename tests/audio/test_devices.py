"""Finding the input device `audio.device` names, and `voiced devices`, on the virtual
ALSA microphone of tests/audio/test_sources.py (PortAudio lists only devices it can open)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import pytest

from tests.audio.test_sources import RATE, asound_home, run_child
from voiced.audio.devices import DeviceNotFound, find_device
from voiced.testing import silence


def test_missing_device_name_is_an_error_naming_the_inputs(tmp_path):
    (tmp_path / "in.raw").write_bytes(silence(0.5, RATE))  # PortAudio lists only devices it can open
    env = asound_home(tmp_path, tmp_path / "in.raw")
    code = """
        import pyaudio
        from voiced.audio.devices import DeviceNotFound, find_device
        pa = pyaudio.PyAudio()
        print("index", find_device(pa, "wavmic"))
        try:
            find_device(pa, "no such microphone")
        except DeviceNotFound as exc:
            print("error", exc)
    """
    child = run_child(code, env)
    lines = dict(line.split(" ", 1) for line in child.stdout.splitlines())
    assert lines["index"].isdigit()
    assert "no such microphone" in lines["error"] and "'wavmic'" in lines["error"]


def test_voiced_devices_lists_the_virtual_microphone(tmp_path):
    (tmp_path / "in.raw").write_bytes(silence(0.5, RATE))
    env = asound_home(tmp_path, tmp_path / "in.raw")
    child = subprocess.run(
        [sys.executable, "-m", "voiced", "devices"], env=env, capture_output=True, text=True, timeout=60
    )
    assert child.returncode == 0, child.stderr[-2000:]
    assert "  wavmic  (" in child.stdout and "index or a part of the name" in child.stdout
    assert child.stderr == ""  # PortAudio's probing leaves no ALSA or JACK chatter (it did: ~90 lines)


def test_a_missing_microphone_is_one_clear_line_however_often_it_is_retried(tmp_path):
    (tmp_path / "in.raw").write_bytes(silence(0.5, RATE))
    env = asound_home(tmp_path, tmp_path / "in.raw")
    config = tmp_path / "voiced.yaml"
    config.write_text(
        "audio: {device: 99, reopen_backoff_s: 0.05, reopen_backoff_max_s: 0.05}\nrecognition: {model: general}\n"
    )
    daemon = subprocess.Popen(
        [sys.executable, "-m", "voiced", "run", "--config", str(config), "--events", "jsonl"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    try:
        errors = []
        for line in daemon.stdout:
            if (event := json.loads(line))["type"] == "audio_error":
                errors.append(event)
                if len(errors) == 5:  # five reopen attempts, each one a fresh PortAudio
                    break
        daemon.send_signal(signal.SIGTERM)
        _, stderr = daemon.communicate(timeout=60)
    finally:
        if daemon.poll() is None:
            daemon.kill()
    hint = "no input device with index 99: list the inputs with `voiced devices`, then set audio.device"
    assert all(event["details"].startswith(hint) and event["source"] == "99" for event in errors)
    assert daemon.returncode == 0
    assert [line for line in stderr.splitlines() if not line.startswith("voiced: ")] == [
        f"WARNING voiced.audio.sources: audio input failed: {errors[0]['details']}; retrying in 0.1 s"
    ]


def test_no_default_input_says_what_to_do():
    class NoDefault:  # PyAudio on a machine without a microphone: "no default input" is an OSError
        def get_default_input_device_info(self):
            raise OSError(-9996, "Invalid input device (no default output device)")

        def get_device_count(self):
            return 0

    with pytest.raises(DeviceNotFound) as caught:
        find_device(NoDefault(), None)
    assert str(caught.value) == (
        "no default audio input device: list the inputs with `voiced devices`, then set "
        "audio.device to an index or a part of a name"
    )
