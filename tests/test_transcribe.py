"""`voiced transcribe`: input checks, and the real command against the real local server."""

from __future__ import annotations

import subprocess
import sys
import wave
from pathlib import Path

import pytest

from voiced.testing import free_port, read_pcm, silence
from voiced.transcribe import InputError, Recording, chunks, read_recording


def voiced_transcribe(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    child = subprocess.run(
        [sys.executable, "-m", "voiced", "transcribe", *args],
        input=stdin,
        capture_output=True,
        timeout=120,
        check=False,
    )
    return subprocess.CompletedProcess(child.args, child.returncode, child.stdout.decode(), child.stderr.decode())


def wav_bytes(tmp_path: Path, channels: int, width: int, rate: int) -> bytes:
    path = tmp_path / "in.wav"
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(width)
        wav.setframerate(rate)
        wav.writeframes(bytes(channels * width * (rate // 10)))
    return path.read_bytes()


def test_wav_header_decides_the_rate(speech):
    data = speech("hello", rate=8000).read_bytes()
    recording = read_recording(data, rate=None)
    assert recording.sample_rate == 8000 and recording.pcm == read_pcm(speech("hello", rate=8000))[0]


def test_raw_pcm_takes_the_given_rate():
    assert read_recording(b"\x01\x00" * 100, rate=48000) == Recording(b"\x01\x00" * 100, 48000)


@pytest.mark.parametrize(("channels", "width", "message"), [(2, 2, "2 channel"), (1, 1, "8-bit")])
def test_wav_that_is_not_mono_16_bit_is_refused_with_the_reason(tmp_path, channels, width, message):
    with pytest.raises(InputError, match="mono 16-bit") as caught:
        read_recording(wav_bytes(tmp_path, channels, width, 16000), rate=None)
    assert message in str(caught.value)


def test_raw_pcm_without_rate_is_refused():
    with pytest.raises(InputError, match="--rate"):
        read_recording(b"\x00\x00" * 10, rate=None)


def test_rate_the_protocol_lacks_is_refused_with_the_supported_ones(tmp_path):
    with pytest.raises(InputError, match="8000, 16000, 48000"):
        read_recording(wav_bytes(tmp_path, 1, 2, 44100), rate=None)


def test_rate_contradicting_the_wav_header_is_refused(tmp_path):
    with pytest.raises(InputError, match="contradicts"):
        read_recording(wav_bytes(tmp_path, 1, 2, 16000), rate=8000)


def test_odd_raw_length_is_refused():
    with pytest.raises(InputError, match="odd"):
        read_recording(b"\x00" * 3, rate=16000)


def test_chunks_are_100_ms_and_cover_everything():
    recording = Recording(bytes(range(256)) * 130, 16000)  # 33280 bytes = 1.04 s
    pieces = list(chunks(recording))
    assert [len(p) for p in pieces[:-1]] == [3200] * 10 and len(pieces[-1]) == 33280 - 32000
    assert b"".join(pieces) == recording.pcm


def test_no_server_gives_one_clear_unavailable_line(speech):
    child = voiced_transcribe(str(speech("hello")), "--endpoint", f"127.0.0.1:{free_port()}", "--fast")
    assert child.returncode == 1
    assert child.stderr.startswith("voiced transcribe: UNAVAILABLE: ") and child.stderr.count("\n") == 1, child.stderr
    assert child.stdout == ""


def test_unreadable_input_is_a_usage_error_without_traceback(tmp_path):
    child = voiced_transcribe(str(tmp_path / "missing.wav"))
    assert child.returncode == 2 and "cannot read" in child.stderr and "Traceback" not in child.stderr
    child = voiced_transcribe("-", stdin=b"\x00\x00" * 100)
    assert child.returncode == 2 and "--rate" in child.stderr and "Traceback" not in child.stderr


def _results(stdout: str) -> list[tuple[str, str]]:
    kinds = [line.split(":", 1) for line in stdout.splitlines()]
    return [(kind, text.strip()) for kind, text in kinds]


def test_wav_file_gives_partials_then_the_final_words(local_server, speech):
    wav = speech("turn on the kitchen lights", "flite:slt", 16000)
    child = voiced_transcribe(str(wav), "--endpoint", local_server.target, "--partial", "--fast")
    assert child.returncode == 0, child.stderr
    results = _results(child.stdout)
    finals = [text for kind, text in results if kind == "final"]
    assert finals and "kitchen" in finals[0], child.stdout
    assert results[0][0] == "partial", child.stdout


def test_raw_pcm_on_stdin_at_real_time_pace(local_server, speech_pcm):
    pcm = speech_pcm("open the garage door", "flite:kal16", 8000) + silence(0.5, 8000)
    # 8 kHz: the grammar model (the open model gets narrow-band audio wrong too often)
    child = voiced_transcribe("-", "--rate", "8000", "--model", "lights", "--endpoint", local_server.target, stdin=pcm)
    assert child.returncode == 0, child.stderr
    results = _results(child.stdout)
    assert results == [("final", "open the garage door")], child.stdout  # no --partial: finals only


def test_server_rejection_is_reported_with_its_code_and_details(local_server, speech):
    child = voiced_transcribe(
        str(speech("hello")), "--endpoint", local_server.target, "--model", "no-such-model", "--fast"
    )
    assert child.returncode == 1
    assert child.stderr.startswith("voiced transcribe: INVALID_ARGUMENT: ") and "general" in child.stderr, child.stderr
    assert "Traceback" not in child.stderr
