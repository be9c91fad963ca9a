"""Soak: a long mix of speech, silence and noise through `voiced run`, faster than real time,
with the daemon's RSS and open file descriptors sampled as it goes.

    .venv/bin/python bench/soak.py --minutes 60          # the full soak (~15 min on 2 cores)
    .venv/bin/python bench/soak.py --minutes 3 --json out.json

Pass criteria (exit status 1 otherwise): every session accounted for (each session opened ended
in a final or a session error), RSS grows by at most --rss-bound-mb from the second quarter of
the run to the last, open file descriptors at the end within --fd-bound of their first sample.
tests/test_daemon.py runs a short variant in CI.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from voiced.testing import noise, read_pcm, synthesize, write_wav

RATE = 16000
PHRASES = [
    ("slt", "turn on the kitchen light"),
    ("kal16", "what time is it"),
    ("awb", "set a timer for five minutes"),
    ("rms", "play some music in the living room"),
    ("slt", "turn off the bedroom lights"),
    ("awb", "open the garage door"),
]


def mixed_audio(minutes: float, workdir: Path, seed: int = 7) -> tuple[Path, int]:
    """A WAV of phrases separated by a quiet floor and bursts of noise (the same every run), and
    how many phrases it holds."""
    rng = random.Random(seed)
    phrases = [read_pcm(synthesize(text, f"flite:{voice}", RATE, workdir))[0] for voice, text in PHRASES]
    floor = noise(4, RATE, "brownnoise", 0.005)
    burst = noise(2, RATE, "pinknoise", 0.03)
    target = int(minutes * 60 * RATE * 2)
    parts, total, count = [], 0, 0
    while total < target:
        gap = floor[: 2 * int(RATE * rng.uniform(1.0, 3.0))]
        piece = [gap, rng.choice(phrases), gap] + ([burst] if rng.random() < 0.3 else [])
        parts += piece
        total += sum(map(len, piece))
        count += 1
    return write_wav(workdir / "soak.wav", b"".join(parts), RATE), count


def _sample(pid: int) -> tuple[float, int] | None:
    try:
        rss = next(int(line.split()[1]) for line in open(f"/proc/{pid}/status") if line.startswith("VmRSS:"))
        return rss / 1024, len(os.listdir(f"/proc/{pid}/fd"))
    except (OSError, StopIteration):
        return None


def soak(minutes: float, workdir: Path, interval_s: float = 0.5) -> dict:
    audio, phrases = mixed_audio(minutes, workdir)
    child = subprocess.Popen(
        [sys.executable, "-m", "voiced", "run", "--input", str(audio), "--fast", "--events", "jsonl"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    samples: list[tuple[float, float, int]] = []
    started = time.monotonic()

    def sample() -> None:
        while child.poll() is None:
            if (point := _sample(child.pid)) is not None:
                samples.append((time.monotonic() - started, *point))
            time.sleep(interval_s)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout, stderr = child.communicate()
    sampler.join()
    events = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    sessions = {
        kind: {e["session"] for e in events if e["type"] == kind}
        for kind in ("speech_started", "final", "session_error")
    }
    count = {kind: len(ids) for kind, ids in sessions.items()}
    # after the first quarter (models loaded, buffers at working size), memory must not creep:
    # compare the mean of the second quarter with the mean of the last quarter
    quarter = max(1, len(samples) // 4)
    early, late = samples[quarter : 2 * quarter] or samples, samples[-quarter:]
    steady = samples[quarter:] or samples
    return {
        "audio_minutes": minutes,
        "phrases": phrases,
        "wall_s": round(time.monotonic() - started, 1),
        "exit_code": child.returncode,
        "stderr_tail": stderr[-500:] if child.returncode else "",
        "sessions": count["speech_started"],
        "finals": count["final"],
        "session_errors": count["session_error"],
        # every session opened ended in a final (maybe empty: nothing recognized) or an error
        "accounted": sessions["speech_started"] == sessions["final"] | sessions["session_error"],
        "rss_mb_first": round(samples[0][1], 1) if samples else None,
        "rss_mb_steady_min": round(min(s[1] for s in steady), 1) if steady else None,
        "rss_mb_steady_max": round(max(s[1] for s in steady), 1) if steady else None,
        "fds_min": min((s[2] for s in samples), default=None),
        "fds_max": max((s[2] for s in samples), default=None),
        "fds_first": samples[0][2] if samples else None,
        "fds_last": samples[-1][2] if samples else None,
        "rss_mb_growth": round(sum(s[1] for s in late) / len(late) - sum(s[1] for s in early) / len(early), 1)
        if samples
        else None,
        "samples": len(samples),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--rss-bound-mb", type=float, default=30.0)
    parser.add_argument("--fd-bound", type=int, default=8)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        result = soak(args.minutes, Path(tmp))
    result["rss_flat"] = (result["rss_mb_growth"] or 0) <= args.rss_bound_mb
    result["fds_flat"] = (result["fds_last"] or 0) - (result["fds_first"] or 0) <= args.fd_bound
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 0 if result["exit_code"] == 0 and result["accounted"] and result["rss_flat"] and result["fds_flat"] else 1


if __name__ == "__main__":
    sys.exit(main())
