"""Server benchmark: what recognition costs the local server, how many live streams it holds
per number of worker processes, and its memory against the number of streams.

    .venv/bin/python bench/bench_server.py                 # ~10 min on 2 cores
    .venv/bin/python bench/bench_server.py --max-streams 8 --json results.json

Starts `voiced serve` as a child process (tests/conftest.py's ServeProcess) with grammar models
of the test phrases, and measures the CPU time and memory (PSS: pages shared between the
workers counted once) of its process tree from /proc, so the client's own work is not counted.
Speech is synthesized here with flite (four voices) and sox.

1. Real-time factor (server CPU seconds per second of audio) for the open language model
   (`general`) and the grammar models: every phrase in its own session, sent as fast as
   possible, one session at a time; the first session of each model is a warm-up.
2. Concurrent real-time streams, for each model and number of workers (--workers, default
   1 and the number of cores): N sessions at once, each on a connection of its own (as N
   devices; the server spreads sessions over its decoder processes), each sending its audio in
   100 ms pieces at real-time pace, then half-closing. A level is held when every session
   ends without error and its final arrives within --lag-bound seconds of the half-close (a
   server that falls behind answers later and later). N steps up until a level is not held.
3. Memory against streams, for each model, one worker: N streams held open at once (each has
   heard a phrase and got its final, so each holds a decoder), the server's PSS read then.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import grpc

from voiced.proto.yandex.cloud.ai.stt.v2 import stt_service_pb2_grpc as stt_grpc
from voiced.protocol.results import Final, SessionError
from voiced.speechkit.client import RecognitionSession, SpeechKitClient
from voiced.speechkit.config import RecognitionSettings
from voiced.testing import ServeProcess, cpu_seconds, process_tree

ROOT = Path(__file__).resolve().parent.parent

RATE = 16000
CHUNK_S = 0.1
PHRASES = [
    ("slt", "turn on the kitchen light"),
    ("kal16", "what time is it"),
    ("awb", "set a timer for five minutes"),
    ("rms", "play some music in the living room"),
    ("slt", "turn off the bedroom lights"),
    ("kal16", "what is the weather like tomorrow"),
    ("awb", "stop the music"),
    ("rms", "open the garage door"),
]
GRAMMAR_MODEL = "commands"
# the grammar as the daemon runs it: with rejection (a phone loop decodes beside it, ~2x the CPU)
REJECTING_MODEL = "commands-rejecting"
REJECTION_MARGIN = 0.75  # the daemon's default (commands.local_grammar.rejection_margin)
MODELS = ("general", GRAMMAR_MODEL, REJECTING_MODEL)


def synthesize(text: str, voice: str, workdir: Path) -> bytes:
    """Raw 16-bit mono PCM at RATE, with 0.3 s of silence before and 0.6 s after the speech."""
    tts = workdir / "tts.wav"
    subprocess.run(["flite", "-voice", voice, "-t", text, "-o", str(tts)], check=True)
    pcm = subprocess.run(
        ["sox", str(tts), "-r", str(RATE), "-c", "1", "-b", "16", "-e", "signed-integer", "-t", "raw", "-"],
        check=True,
        capture_output=True,
    ).stdout
    return bytes(int(0.3 * RATE) * 2) + pcm + bytes(int(0.6 * RATE) * 2)


def audio_seconds(pcm: bytes) -> float:
    return len(pcm) / 2 / RATE


def process_tree_cpu_s(root: int) -> float:
    """User + system CPU seconds of `root` and all its descendants, from /proc."""
    return sum(cpu_seconds(pid) for pid in process_tree(root))


def server_section(max_streams: int, **more) -> dict:
    alternatives = " | ".join(text for _, text in PHRASES)
    grammar = f"#JSGF V1.0;\ngrammar {GRAMMAR_MODEL};\npublic <command> = {alternatives};\n"
    return {
        "models": {
            GRAMMAR_MODEL: {"language": "en-US", "jsgf": grammar},
            REJECTING_MODEL: {"language": "en-US", "jsgf": grammar, "rejection_margin": REJECTION_MARGIN},
        },
        "limits": {"max_streams": max_streams + 4},
        **more,
    }


class Session:
    """One session on a connection of its own (grpcio shares one connection between channels
    to the same target unless told not to): each stream is a separate client, as devices are."""

    def __init__(self, target: str, model: str, partial_results: bool):
        self.channel = grpc.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)])
        settings = RecognitionSettings(model=model, partial_results=partial_results)
        self.call = RecognitionSession(stt_grpc.SttServiceStub(self.channel), settings, [])

    def close(self) -> None:
        self.call.cancel()
        self.channel.close()


def recognize(session: RecognitionSession, pcm: bytes, realtime: bool) -> tuple[str, float]:
    """Stream `pcm` in one session; the final text and the seconds from half-close to the call's end."""
    texts: list[str] = []
    errors: list[SessionError] = []
    done = threading.Event()

    def read() -> None:
        for event in session.events():
            if isinstance(event, Final):
                texts.append(event.text)
            elif isinstance(event, SessionError):
                errors.append(event)
        done.set()

    threading.Thread(target=read, daemon=True).start()
    size = 2 * int(RATE * CHUNK_S)
    started = time.monotonic()
    for index, start in enumerate(range(0, len(pcm), size)):
        if realtime:
            time.sleep(max(0.0, started + index * CHUNK_S - time.monotonic()))
        session.send(pcm[start : start + size])
    session.finish()
    half_closed = time.monotonic()
    if not done.wait(120):
        session.cancel()
        raise RuntimeError("no end of the call within 120 s")
    if errors:
        raise RuntimeError(f"{errors[0].code}: {errors[0].details}")
    return " ".join(t for t in texts if t), time.monotonic() - half_closed


def real_time_factor(server: ServeProcess, model: str, phrases: list[tuple[str, bytes]]) -> dict:
    client = SpeechKitClient(RecognitionSettings(model=model, partial_results=False), server.target)
    recognize(client.session(), phrases[0][1], realtime=False)  # warm-up: model loading is not recognition
    cpu_before, exact = process_tree_cpu_s(server.process.pid), 0
    for text, pcm in phrases:
        exact += recognize(client.session(), pcm, realtime=False)[0] == text
    cpu = process_tree_cpu_s(server.process.pid) - cpu_before
    audio = sum(audio_seconds(pcm) for _, pcm in phrases)
    client.close()
    return {
        "model": model,
        "audio_s": round(audio, 2),
        "server_cpu_s": round(cpu, 2),
        "rtf": round(cpu / audio, 4),
        "exact_phrases": f"{exact}/{len(phrases)}",
    }


def concurrency_level(server: ServeProcess, model: str, streams: int, pcm: bytes, lag_bound_s: float) -> dict:
    sessions = [Session(server.target, model, partial_results=True) for _ in range(streams)]
    lags: list[float] = []
    failures: list[str] = []

    def one(session: Session, offset_s: float) -> None:
        time.sleep(offset_s)  # spread the sessions' 100 ms sends over the period
        try:
            lags.append(recognize(session.call, pcm, realtime=True)[1])
        except RuntimeError as exc:
            failures.append(str(exc))

    cpu_before, wall_before = process_tree_cpu_s(server.process.pid), time.monotonic()
    threads = [
        threading.Thread(target=one, args=(session, i * CHUNK_S / streams)) for i, session in enumerate(sessions)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    cpu, wall = process_tree_cpu_s(server.process.pid) - cpu_before, time.monotonic() - wall_before
    for session in sessions:
        session.close()
    held = not failures and max(lags) <= lag_bound_s
    return {
        "streams": streams,
        "held": held,
        "max_lag_s": round(max(lags), 3) if lags else None,
        "median_lag_s": round(statistics.median(lags), 3) if lags else None,
        "server_cores_busy": round(cpu / wall, 2),
        "server_cpu_s_per_stream_audio_s": round(cpu / (streams * audio_seconds(pcm)), 4),
        "failures": failures[:3],
    }


def stream_counts(maximum: int) -> list[int]:
    """1 to 8 one by one (one worker's open LM holds about 3), then by 2 to 16, then by 4."""
    counts, n = [], 1
    while n <= maximum:
        counts.append(n)
        n += 1 if n < 8 else 2 if n < 16 else 4
    return counts


def concurrency(workdir: Path, model: str, workers: int, maximum: int, pcm: bytes, lag_bound_s: float) -> dict:
    server = ServeProcess(workdir / f"{model}-{workers}", server_section(maximum), args=("--workers", str(workers)))
    levels = []
    try:
        for streams in stream_counts(maximum):
            level = concurrency_level(server, model, streams, pcm, lag_bound_s)
            levels.append(level)
            print(
                f"{model:>18}, {workers} worker(s): {streams:>3} real-time streams "
                f"{'held' if level['held'] else 'NOT held'}; final lag median {level['median_lag_s']} s, "
                f"max {level['max_lag_s']} s; server busy {level['server_cores_busy']} cores"
                + (f"; failures: {level['failures']}" if level["failures"] else ""),
                flush=True,
            )
            if not level["held"]:
                break
    finally:
        server.stop()
    held = max((level["streams"] for level in levels if level["held"]), default=0)
    return {"model": model, "workers": workers, "max_streams_held": held, "levels": levels}


@contextlib.contextmanager
def held_streams(target: str, model: str, count: int, pcm: bytes):
    """`count` sessions that each heard `pcm` and got its final (each holds a decoder), kept
    open with a little silence until the block ends."""
    release = threading.Event()
    sessions = [Session(target, model, partial_results=False) for _ in range(count)]
    outcomes: list[bool] = []  # per session: got its final (else refused, e.g. the memory budget)

    def hold(session: Session) -> None:
        session.call.send(pcm + bytes(2 * RATE))  # a second of silence after it ends the utterance
        # from the start: a server decoding many streams on one core answers seconds later, and
        # a client silent for 5 s meanwhile is closed (DEADLINE_EXCEEDED), as the service does
        threading.Thread(target=keep_alive, args=(session,), daemon=True).start()
        for event in session.call.events():
            if isinstance(event, (Final, SessionError)):
                outcomes.append(isinstance(event, Final))
                break

    def keep_alive(session: Session) -> None:
        while not release.wait(0.5):
            session.call.send(bytes(640))

    threads = [threading.Thread(target=hold, args=(session,), daemon=True) for session in sessions]
    for thread in threads:
        thread.start()
    try:
        while len(outcomes) < count:
            time.sleep(0.05)
        yield outcomes
    finally:
        release.set()
        for session in sessions:
            session.close()


def memory_curve(workdir: Path, model: str, counts: list[int], pcm: bytes) -> dict:
    server = ServeProcess(workdir / f"memory-{model}", server_section(max(counts), idle_decoders=0, preload=[model]))
    points = []
    try:
        fresh = server.pss_mb()
        for count in counts:
            with held_streams(server.target, model, count, pcm) as outcomes:
                points.append({"streams": count, "pss_mb": round(server.pss_mb(), 1), "served": sum(outcomes)})
            print(
                f"{model:>18}: {count:>3} streams held, server PSS {points[-1]['pss_mb']} MB (fresh {fresh:.0f} MB)",
                flush=True,
            )
    finally:
        server.stop()
    return {"model": model, "fresh_pss_mb": round(fresh, 1), "points": points}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-streams", type=int, default=40, help="stop each ramp here (default 40)")
    parser.add_argument(
        "--lag-bound",
        type=float,
        default=1.0,
        help="seconds from half-close to the final beyond which a level is not held (default 1.0)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        nargs="+",
        default=sorted({1, os.cpu_count() or 1}),
        help="numbers of worker processes to measure (default: 1 and the number of cores)",
    )
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--memory-streams", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args()
    results: dict = {"machine": {"cpus": os.cpu_count(), "load_avg_at_start": os.getloadavg()}}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        phrases = [(text, synthesize(text, voice, workdir)) for voice, text in PHRASES]
        print(
            f"{len(phrases)} phrases, {sum(audio_seconds(p) for _, p in phrases):.1f} s of audio; machine: "
            f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at start",
            flush=True,
        )
        server = ServeProcess(workdir / "rtf", server_section(4))
        try:
            results["rtf"] = [real_time_factor(server, model, phrases) for model in args.models]
        finally:
            server.stop()
        for row in results["rtf"]:
            print(
                f"RTF {row['model']:>18}: {row['rtf']:.3f} server CPU s per audio s "
                f"({row['server_cpu_s']} s for {row['audio_s']} s; exact phrases {row['exact_phrases']})"
            )
        # one stream: three phrases back to back (about 7 s), like a user giving commands
        stream_pcm = b"".join(pcm for _, pcm in phrases[:3])
        results["concurrency"] = [
            concurrency(workdir, model, workers, args.max_streams, stream_pcm, args.lag_bound)
            for model in args.models
            for workers in args.workers
        ]
        for row in results["concurrency"]:
            print(
                f"{row['model']:>18}, {row['workers']} worker(s): {row['max_streams_held']} concurrent real-time "
                f"streams held (final within {args.lag_bound} s of the half-close)"
            )
        results["memory"] = [memory_curve(workdir, model, args.memory_streams, phrases[1][1]) for model in args.models]
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
