"""Debug recordings: one WAV per session, directory bounded by count and size."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import wave

from voiced.audio.recording import SessionRecorder
from voiced.audio.sources import RecordingSettings


def test_each_session_is_saved_as_a_wav_with_its_audio(tmp_path):
    recorder = SessionRecorder(RecordingSettings(directory=tmp_path / "rec"), 16000)
    recorder.add(1, b"\x01\x00" * 100)
    recorder.add(2, b"\x02\x00" * 50)
    recorder.add(1, b"\x03\x00" * 100)
    path = recorder.save(1)
    with wave.open(str(path), "rb") as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (16000, 1, 2)
        assert wav.readframes(1000) == b"\x01\x00" * 100 + b"\x03\x00" * 100
    assert recorder.save(1) is None  # saved once
    assert recorder.save(3) is None  # a session that sent nothing leaves no file


def test_directory_is_bounded_by_count_then_by_size(tmp_path):
    recorder = SessionRecorder(RecordingSettings(directory=tmp_path, max_files=3), 16000)
    saved = []
    for session in range(6):
        recorder.add(session, b"\x00\x00" * 1000)
        saved.append(recorder.save(session))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in saved[-3:])

    small = SessionRecorder(RecordingSettings(directory=tmp_path / "s", max_megabytes=0.005), 16000)
    for session in range(4):
        small.add(session, b"\x00\x00" * 1000)  # ~2 KB each: only two fit in 5 KB
        last = small.save(session)
    assert sorted((tmp_path / "s").iterdir())[-1] == last and len(list((tmp_path / "s").iterdir())) == 2


def test_a_full_disk_leaves_no_files_behind(tmp_path):
    """Writes fail (as on a full disk: a file size limit in a child process makes them fail
    with EFBIG) for sessions too long to fit: nothing is left of them, no empty or partial
    files pile up past max_files, and the sessions that fit are kept."""
    code = textwrap.dedent(f"""
        import resource, signal
        from pathlib import Path
        from voiced.audio.sources import RecordingSettings
        from voiced.audio.recording import SessionRecorder
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
        recorder = SessionRecorder(RecordingSettings(directory=Path({str(tmp_path)!r}), max_files=3), 16000)
        for session in range(10):
            recorder.add(session, b"\\x00\\x00" * (100 if session % 2 else 16000))  # 1 s: too big
            recorder.save(session)
    """)
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    kept = sorted(tmp_path.iterdir())
    assert [path.name.rsplit("-", 1)[1] for path in kept] == ["5.wav", "7.wav", "9.wav"]  # the last small ones
    for path in kept:
        with wave.open(str(path), "rb") as wav:
            assert wav.getnframes() == 100
