"""Server benchmark: what recognition costs the local server, and how many live streams it holds.

    .venv/bin/python bench/bench_server.py                 # ~3 min on 2 cores
    .venv/bin/python bench/bench_server.py --max-streams 8 --json results.json

Starts `voiced serve` as a child process with a grammar model of the test phrases, and
measures the CPU time of that process (and any children) from /proc, so the client's own
work is not counted. Speech is synthesized here with flite (four voices) and sox.

1. Real-time factor (server CPU seconds per second of audio) for the open language model
   (`general`) and the grammar model: every phrase in its own session, sent as fast as
   possible, one session at a time; the first session of each model is a warm-up.
2. Concurrent real-time streams, open language model: N sessions at once, each sending
   its audio in 100 ms pieces at real-time pace, then half-closing. A level is held when
   every session ends without error and its final arrives within --lag-bound seconds of
   the half-close (a server that falls behind answers later and later). N doubles, then
   steps, until a level is not held.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import grpc

from voiced.speechkit.client import SpeechKitClient
from voiced.speechkit.events import Final, SessionError
from voiced.speechkit.settings import RecognitionSettings

RATE = 16000
CHUNK_S = 0.1
PHRASES = [
    ("slt", "turn on the kitchen light"), ("kal16", "what time is it"), ("awb", "set a timer for five minutes"),
    ("rms", "play some music in the living room"), ("slt", "turn off the bedroom lights"),
    ("kal16", "what is the weather like tomorrow"), ("awb", "stop the music"), ("rms", "open the garage door"),
]
GRAMMAR_MODEL = "commands"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def synthesize(text: str, voice: str, workdir: Path) -> bytes:
    """Raw 16-bit mono PCM at RATE, with 0.3 s of silence before and 0.6 s after the speech."""
    tts = workdir / "tts.wav"
    subprocess.run(["flite", "-voice", voice, "-t", text, "-o", str(tts)], check=True)
    pcm = subprocess.run(["sox", str(tts), "-r", str(RATE), "-c", "1", "-b", "16", "-e", "signed-integer",
                          "-t", "raw", "-"], check=True, capture_output=True).stdout
    return bytes(int(0.3 * RATE) * 2) + pcm + bytes(int(0.6 * RATE) * 2)


def audio_seconds(pcm: bytes) -> float:
    return len(pcm) / 2 / RATE


def process_tree_cpu_s(root: int) -> float:
    """User + system CPU seconds of `root` and all its descendants, from /proc."""
    parents, times = {}, {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except OSError:  # the process just ended
            continue
        parents[int(entry.name)] = int(fields[1])
        times[int(entry.name)] = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    tree, grew = {root}, True
    while grew:
        children = {pid for pid, parent in parents.items() if parent in tree} - tree
        tree |= children
        grew = bool(children)
    return sum(times.get(pid, 0.0) for pid in tree)


def server_config(workdir: Path, max_streams: int) -> Path:
    alternatives = " | ".join(text for _, text in PHRASES)
    grammar = f"#JSGF V1.0;\ngrammar {GRAMMAR_MODEL};\npublic <command> = {alternatives};\n"
    config = {"server": {
        "models": {GRAMMAR_MODEL: {"language": "en-US", "jsgf": grammar}},
        "limits": {"max_streams": max_streams + 4},
    }}
    path = workdir / "server.yaml"
    path.write_text(json.dumps(config, indent=1))  # JSON is YAML
    return path


class Server:
    """`voiced serve` in a child process on a free loopback port."""

    def __init__(self, config: Path):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.target = f"127.0.0.1:{probe.getsockname()[1]}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "voiced", "serve", "--config", str(config), "--port", self.target.split(":")[1]],
            stdout=subprocess.DEVNULL)
        with grpc.insecure_channel(self.target) as channel:
            grpc.channel_ready_future(channel).result(timeout=60)

    def cpu_s(self) -> float:
        return process_tree_cpu_s(self.process.pid)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(30)


def recognize(client: SpeechKitClient, pcm: bytes, realtime: bool) -> tuple[str, float]:
    """Stream `pcm` in one session; the final text and the seconds from half-close to the call's end."""
    session = client.session()
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
        session.send(pcm[start:start + size])
    session.finish()
    half_closed = time.monotonic()
    if not done.wait(120):
        session.cancel()
        raise RuntimeError("no end of the call within 120 s")
    if errors:
        raise RuntimeError(f"{errors[0].code}: {errors[0].details}")
    return " ".join(t for t in texts if t), time.monotonic() - half_closed


def real_time_factor(server: Server, model: str, phrases: list[tuple[str, bytes]]) -> dict:
    client = SpeechKitClient(RecognitionSettings(model=model, partial_results=False), server.target)
    recognize(client, phrases[0][1], realtime=False)  # warm-up: model loading is not recognition
    cpu_before, exact = server.cpu_s(), 0
    for text, pcm in phrases:
        exact += recognize(client, pcm, realtime=False)[0] == text
    cpu = server.cpu_s() - cpu_before
    audio = sum(audio_seconds(pcm) for _, pcm in phrases)
    client.close()
    return {"model": model, "audio_s": round(audio, 2), "server_cpu_s": round(cpu, 2),
            "rtf": round(cpu / audio, 4), "exact_phrases": f"{exact}/{len(phrases)}"}


def concurrency_level(server: Server, streams: int, pcm: bytes, lag_bound_s: float) -> dict:
    client = SpeechKitClient(RecognitionSettings(partial_results=True), server.target)
    lags: list[float] = []
    failures: list[str] = []

    def one(offset_s: float) -> None:
        time.sleep(offset_s)  # spread the sessions' 100 ms sends over the period
        try:
            lags.append(recognize(client, pcm, realtime=True)[1])
        except RuntimeError as exc:
            failures.append(str(exc))

    cpu_before, wall_before = server.cpu_s(), time.monotonic()
    threads = [threading.Thread(target=one, args=(i * CHUNK_S / streams,)) for i in range(streams)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    cpu, wall = server.cpu_s() - cpu_before, time.monotonic() - wall_before
    client.close()
    held = not failures and max(lags) <= lag_bound_s
    return {"streams": streams, "held": held, "max_lag_s": round(max(lags), 3) if lags else None,
            "median_lag_s": round(statistics.median(lags), 3) if lags else None,
            "server_cores_busy": round(cpu / wall, 2),
            "server_cpu_s_per_stream_audio_s": round(cpu / (streams * audio_seconds(pcm)), 4),
            "failures": failures[:3]}


def stream_counts(maximum: int) -> list[int]:
    counts, n = [], 1
    while n <= maximum:
        counts.append(n)
        n = n * 2 if n < 4 else n + 2
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-streams", type=int, default=16, help="stop the ramp here (default 16)")
    parser.add_argument("--lag-bound", type=float, default=1.0,
                        help="seconds from half-close to the final beyond which a level is not held (default 1.0)")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args()
    results: dict = {"machine": {"cpus": os.cpu_count(), "load_avg_at_start": os.getloadavg()}}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        phrases = [(text, synthesize(text, voice, workdir)) for voice, text in PHRASES]
        server = Server(server_config(workdir, args.max_streams))
        try:
            print(f"server: voiced serve on {server.target}, {len(phrases)} phrases, "
                  f"{sum(audio_seconds(p) for _, p in phrases):.1f} s of audio; machine: {os.cpu_count()} CPUs, "
                  f"load average {os.getloadavg()[0]:.2f} at start")
            results["rtf"] = [real_time_factor(server, model, phrases) for model in ("general", GRAMMAR_MODEL)]
            for row in results["rtf"]:
                print(f"RTF {row['model']:>9}: {row['rtf']:.3f} server CPU s per audio s "
                      f"({row['server_cpu_s']} s for {row['audio_s']} s; exact phrases {row['exact_phrases']})")
            general, grammar = results["rtf"]
            print(f"open LM / grammar CPU ratio: {general['rtf'] / grammar['rtf']:.1f}x")
            # one stream: three phrases back to back (about 7 s), like a user giving commands
            stream_pcm = b"".join(pcm for _, pcm in phrases[:3])
            results["concurrency"] = []
            for streams in stream_counts(args.max_streams):
                level = concurrency_level(server, streams, stream_pcm, args.lag_bound)
                results["concurrency"].append(level)
                print(f"{streams:>3} real-time streams (open LM): {'held' if level['held'] else 'NOT held'}; "
                      f"final lag median {level['median_lag_s']} s, max {level['max_lag_s']} s; "
                      f"server busy {level['server_cores_busy']} cores, "
                      f"{level['server_cpu_s_per_stream_audio_s']} CPU s per stream-audio s"
                      + (f"; failures: {level['failures']}" if level["failures"] else ""))
                if not level["held"]:
                    break
            held = [level["streams"] for level in results["concurrency"] if level["held"]]
            results["max_streams_held"] = max(held, default=0)
            print(f"concurrent real-time streams held (final within {args.lag_bound} s of the half-close): "
                  f"{results['max_streams_held']}")
        finally:
            server.stop()
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
