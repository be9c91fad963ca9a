"""Audio sources. The microphone path runs the real PyAudio/PortAudio/ALSA stack on a virtual
capture device: an ALSA `file` PCM that plays a raw PCM file as its input. ALSA reads its
configuration once per process, so microphone checks run in a child with HOME pointing at
a directory whose .asoundrc defines the device."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from voiced.audio.sources import RawStreamSource, WavFileSource
from voiced.testing import read_pcm, silence, write_wav

RATE = 16000
FRAME_MS = 30
FRAME = RATE * FRAME_MS // 1000 * 2


def asound_home(directory: Path, infile: Path) -> dict[str, str]:
    """Environment whose ALSA has input device `wavmic` (and default) reading `infile`."""
    (directory / ".asoundrc").write_text(
        textwrap.dedent(f"""
        pcm.wavmic_raw {{ type file; slave.pcm "null"; file "/dev/null"; infile "{infile}"; format "raw" }}
        pcm.wavmic {{
            type plug
            slave {{ pcm "wavmic_raw"; format S16_LE; rate {RATE}; channels 1 }}
            hint {{ show on description "WAV file microphone" }}
        }}
        pcm.!default wavmic
    """)
    )
    return {**os.environ, "HOME": str(directory), "JACK_NO_START_SERVER": "1"}


def run_child(code: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="module")
def phrase_pcm(speech) -> bytes:
    return read_pcm(speech("turn on the kitchen light", "flite:slt"))[0]


def test_wav_file_frames_equal_samples_and_last_frame_is_padded(tmp_path, phrase_pcm):
    path = write_wav(tmp_path / "p.wav", phrase_pcm, RATE)
    source = WavFileSource(path, FRAME_MS)
    frames = list(source.frames())
    assert source.sample_rate == RATE and all(len(f) == FRAME for f in frames)
    joined = b"".join(frames)
    assert joined[: len(phrase_pcm)] == phrase_pcm and set(joined[len(phrase_pcm) :]) <= {0}
    assert len(frames) == -(-len(phrase_pcm) // FRAME)


def test_wav_file_realtime_mode_is_paced_like_a_microphone(tmp_path):
    path = write_wav(tmp_path / "s.wav", silence(0.6, RATE), RATE)
    started = time.monotonic()
    count = sum(1 for _ in WavFileSource(path, FRAME_MS, realtime=True).frames())
    # the last frame is due at (count - 1) frames of audio time, never earlier
    assert time.monotonic() - started >= (count - 1) * FRAME_MS / 1000


def test_wav_file_must_be_16_bit_mono_at_a_supported_rate(tmp_path):
    path = tmp_path / "stereo.wav"
    subprocess.run(["sox", "-n", "-r", "16000", "-c", "2", "-b", "16", str(path), "trim", "0", "0.1"], check=True)
    with pytest.raises(ValueError, match="16-bit mono"):
        WavFileSource(path, FRAME_MS)
    path = write_wav(tmp_path / "cd.wav", silence(0.1, 44100), 44100)
    with pytest.raises(ValueError, match="44100 Hz"):
        WavFileSource(path, FRAME_MS)


def test_raw_stream_source_reassembles_frames(phrase_pcm):
    source = RawStreamSource(io.BufferedReader(io.BytesIO(phrase_pcm), buffer_size=1000), RATE, FRAME_MS)
    joined = b"".join(source.frames())
    assert joined[: len(phrase_pcm)] == phrase_pcm and len(joined) % FRAME == 0


MIC_READ = """
    import sys
    from voiced.audio.sources import AudioSettings, MicrophoneSource
    source = MicrophoneSource(AudioSettings(device={device!r}), {frame_ms})
    out = bytearray()
    for frame in source.frames():
        assert len(frame) == source.frame_bytes
        out += frame
        if len(out) >= {want}:
            source.close()
    sys.stdout.buffer.write(bytes(out))
"""


@pytest.mark.parametrize("device", ["wavmic", "WAV", None])
def test_microphone_frames_equal_the_device_input(tmp_path, phrase_pcm, device):
    infile = tmp_path / "in.raw"
    infile.write_bytes(phrase_pcm)
    env = asound_home(tmp_path, infile)
    code = MIC_READ.format(device=device, frame_ms=FRAME_MS, want=len(phrase_pcm))
    child = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True, timeout=60)
    assert child.returncode == 0, child.stderr.decode()[-2000:]
    got = np.frombuffer(child.stdout[: len(phrase_pcm)], np.int16).astype(float)
    want = np.frombuffer(phrase_pcm, np.int16).astype(float)
    assert np.corrcoef(got, want)[0, 1] > 0.999


def test_microphone_error_is_reported_and_capture_recovers(tmp_path, phrase_pcm):
    """The device fails to open (its input file is gone); capture retries with backoff and
    goes on once the device is back."""
    infile = tmp_path / "later.raw"
    env = asound_home(tmp_path, infile)
    code = f"""
        import json, pathlib, sys
        from voiced.audio.sources import AudioSettings, MicrophoneSource
        errors = []
        def on_error(event):
            errors.append(event)
            if len(errors) == 3:  # the device comes back
                pathlib.Path({str(infile)!r}).write_bytes({phrase_pcm[: FRAME * 20]!r})
        settings = AudioSettings(device="wavmic", reopen_backoff_s=0.05, reopen_backoff_max_s=0.2)
        source = MicrophoneSource(settings, {FRAME_MS}, on_error)
        frames = 0
        for frame in source.frames():
            frames += 1
            if frames == 10:
                source.close()
        print(json.dumps({{"frames": frames, "retry": [e.retry_in_s for e in errors], "details": errors[0].details}}))
    """
    child = run_child(code, env)
    assert child.returncode == 0, child.stderr[-2000:]
    result = json.loads(child.stdout.strip().splitlines()[-1])
    assert result["frames"] == 10
    assert result["retry"] == [0.05, 0.1, 0.2]  # exponential, capped
    assert result["details"]


def test_microphone_failing_mid_stream_is_reported_reopened_and_read_again(tmp_path, phrase_pcm):
    """A USB microphone pulled out mid-stream makes PortAudio's read raise OSError (-9999,
    'Unanticipated host error'). No device here can be unplugged, so the real stream's read is
    made to raise once, after 5 frames; the source must report it, reopen the real device and
    go on reading it."""
    infile = tmp_path / "mic.raw"
    infile.write_bytes(phrase_pcm[: FRAME * 40])
    env = asound_home(tmp_path, infile)
    code = f"""
        import json, pyaudio
        from voiced.audio.sources import AudioSettings, MicrophoneSource
        real_read, reads = pyaudio.PyAudio.Stream.read, []
        def unplugged_once(stream, *args, **kwargs):
            reads.append(1)
            if len(reads) == 6:
                raise OSError(-9999, "Unanticipated host error")
            return real_read(stream, *args, **kwargs)
        pyaudio.PyAudio.Stream.read = unplugged_once
        errors = []
        source = MicrophoneSource(AudioSettings(device="wavmic", reopen_backoff_s=0.05), {FRAME_MS}, errors.append)
        frames = []
        for frame in source.frames():
            frames.append(frame.hex())
            if len(frames) == 12:
                source.close()
        print(json.dumps({{"frames": frames, "errors": [e.details for e in errors]}}))
    """
    child = run_child(code, env)
    assert child.returncode == 0, child.stderr[-2000:]
    result = json.loads(child.stdout.strip().splitlines()[-1])
    assert len(result["errors"]) == 1 and "host error" in result["errors"][0]
    frames = [bytes.fromhex(f) for f in result["frames"]]
    # 5 frames before the failure; after the reopen the device is read from its start again
    assert frames[:5] == frames[5:10] == [phrase_pcm[i * FRAME : (i + 1) * FRAME] for i in range(5)]
