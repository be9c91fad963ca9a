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
    """Speak `text` with `voice` into a 16-bit mono WAV at `rate` Hz (cached by content)."""
    engine, _, name = voice.partition(":")
    key = hashlib.sha1(f"{engine}|{name}|{rate}|{text}".encode()).hexdigest()[:16]
    out = out_dir / f"{engine}-{name.replace('+', '_')}-{rate}-{key}.wav"
    if out.exists():
        return out
    raw = out_dir / f"{key}.tts.wav"
    if engine == "flite":
        subprocess.run(["flite", "-voice", name, "-t", text, "-o", str(raw)], check=True)
    elif engine == "espeak":
        subprocess.run(["espeak-ng", "-v", name, "-w", str(raw), text], check=True)
    else:
        raise ValueError(f"unknown TTS engine in voice {voice!r}")
    subprocess.run(
        ["sox", str(raw), "-r", str(rate), "-c", "1", "-b", "16", "-e", "signed-integer", str(out)],
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
