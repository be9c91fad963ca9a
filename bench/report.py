"""Run every benchmark and write one report: bench/report/REPORT.md and PNG plots.

    .venv/bin/pip install -e '.[dev,bench]' && .venv/bin/pip install --no-deps 'rhasspy-silence>=0.4,<0.5'
    .venv/bin/python bench/report.py            # ~22 min on 2 cores
    .venv/bin/python bench/report.py --quick    # shorter runs of each (~6 min)

Each benchmark runs as its own process (so one's memory and threads do not skew another's)
and leaves JSON in bench/report/; this script only runs them, measures start -> READY, and
renders the tables and plots.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "report"
DEMO = ROOT / "voiced" / "data" / "demo.wav"


def run(*args: str, timeout: float = 1800) -> str:
    print("+", " ".join(args), file=sys.stderr, flush=True)
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, check=True, capture_output=True, text=True, timeout=timeout
    ).stdout


def ready_time_s(*command: str, repeats: int = 3) -> float:
    """Median seconds from exec to READY=1 on a real NOTIFY_SOCKET."""
    times = []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "notify"
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            sock.bind(str(path))
            sock.settimeout(120)
            started = time.monotonic()
            child = subprocess.Popen(
                [sys.executable, "-m", "voiced", *command],
                cwd=ROOT,
                env={**os.environ, "NOTIFY_SOCKET": str(path)},
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            while b"READY=1" not in sock.recv(4096):
                pass
            times.append(time.monotonic() - started)
            child.terminate()
            child.wait(60)
            sock.close()
    return statistics.median(times)


def demo_speech_ends_s() -> list[float]:
    """Where each utterance of the demo ends (audio seconds): where its last word's energy falls
    under 5 % of the utterance's peak (voiced.testing.speech_span), in each utterance the
    daemon's own endpointer finds. The reference the latencies are measured from; the VAD's
    own end lags it by 50-160 ms, and a session ended on a finished command need not wait for it."""
    import wave

    from voiced.audio.vad import (
        Endpointer,
        EndpointerSettings,
        FrameSplitter,
        SpeechEnded,
        SpeechStarted,
        SpeechTimedOut,
    )
    from voiced.testing import speech_span

    with wave.open(str(DEMO), "rb") as wav:
        rate, pcm = wav.getframerate(), wav.readframes(wav.getnframes())
    settings = EndpointerSettings()
    endpointer = Endpointer(settings, rate)
    ends, start = [], 0.0
    for frame in FrameSplitter(settings.frame_bytes(rate)).feed(pcm + bytes(rate * 2)):
        for event in endpointer.process(frame):
            if isinstance(event, SpeechStarted):
                start = event.at_s
            elif isinstance(event, (SpeechEnded, SpeechTimedOut)):  # one end per session, as before
                utterance = pcm[round(start * rate) * 2 : round((event.at_s + 0.3) * rate) * 2]
                ends.append(start + float(speech_span(utterance, rate)[1]))
    return ends


def ready_times() -> dict:
    return {"serve": ready_time_s("serve", "--port", "0"), "run": ready_time_s("run", "--input", str(DEMO))}


def action_latency(quick: bool, engine: str = "auto") -> dict:
    """From the end of speech (the last word's audio reaching the daemon) to the final, the
    match and the actions finished, from the daemon's own JSONL events, the demo played at
    real-time pace (as a microphone delivers it) through the embedded server. The wall-clock
    time of an audio position comes from the speech_started events (their `ts` is when the
    audio up to `audio_s + pre_roll_s` had arrived)."""
    rounds = 2 if quick else 5
    ends = demo_speech_ends_s()
    # the demo's two commands, each with an action that succeeds at once (`true`), so the
    # figure is the daemon's own latency, not a smart-home server's
    workdir = Path(tempfile.mkdtemp(prefix="voiced-latency-"))
    (workdir / "commands.yaml").write_text(
        json.dumps(
            {
                "languages": {
                    "en": {
                        "lists": {
                            "room": {"values": [{"in": "kitchen", "out": "kitchen"}]},
                            "minutes": {"range": {"from": 1, "to": 60}},
                        }
                    }
                },
                "commands": {
                    "LightOn": {
                        "sentences": {"en": ["turn on [the] lights in [the] {room}"]},
                        "actions": [{"type": "exec", "argv": ["true"]}],
                    },
                    "SetTimer": {
                        "sentences": {"en": ["set [a] timer for {minutes} minutes"]},
                        "actions": [{"type": "exec", "argv": ["true"]}],
                    },
                },
            }
        )
    )
    (workdir / "voiced.yaml").write_text(
        json.dumps({"commands": {"files": ["commands.yaml"], "local_grammar": {"engine": engine}}})
    )
    samples: dict[str, list[float]] = {"final": [], "command_matched": [], "action_finished": []}
    for _ in range(rounds):
        out = run(
            "-m",
            "voiced",
            "run",
            "--config",
            str(workdir / "voiced.yaml"),
            "--input",
            str(DEMO),
            "--events",
            "jsonl",
            timeout=300,
        )
        events = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        starts = [e for e in events if e["type"] == "speech_started"]
        audio_zero = statistics.median(e["ts"] - e["audio_s"] - e["pre_roll_s"] for e in starts)
        speech_end = {e["session"]: audio_zero + end for e, end in zip(starts, ends)}
        for kind in samples:
            seen = set()
            for e in events:
                session = e.get("session")
                if e["type"] == kind and session in speech_end and session not in seen:
                    seen.add(session)
                    samples[kind].append(e["ts"] - speech_end[session])
    return samples


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[round(q) - 1]


def plots(latency: dict, listening: dict) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = []
    fig, ax = plt.subplots(figsize=(7, 3.5))
    labels = [k for k, v in latency.items() if v]
    ax.boxplot([[1000 * x for x in latency[k]] for k in labels], orientation="horizontal", tick_labels=labels)
    ax.set_xlabel("ms after the end of speech (includes the 700 ms end-of-speech silence)")
    ax.set_title("speech end -> result, voiced run on the embedded server")
    fig.tight_layout()
    fig.savefig(OUT / "latency.png", dpi=110)
    names.append("latency.png")
    detectors = {
        k: v for k, v in listening["detectors"].items() if isinstance(v, dict) and "cpu_per_audio_s_noise" in v
    }
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.barh(list(detectors), [v["cpu_per_audio_s_noise"] for v in detectors.values()])
    ax.set_xscale("log")
    ax.set_xlabel("CPU seconds per audio second, background noise (log scale)")
    ax.set_title("listening cost per component")
    fig.tight_layout()
    fig.savefig(OUT / "cpu.png", dpi=110)
    names.append("cpu.png")
    plt.close("all")
    return names


def markdown(results: dict) -> str:
    lat = results["latency"]
    redone = "".join(
        f"; {part} measured again on {date} (--redo)" for part, date in sorted(results.get("redone", {}).items())
    )
    lines = [
        "# voiced benchmark report",
        "",
        f"Machine: {results['machine']}. Produced by `.venv/bin/python bench/report.py"
        f"{' --quick' if results['quick'] else ''}` on {results['date']}{redone}.",
        "",
        "## Speech end -> result (`voiced run`, embedded local server, demo at real-time pace, exec `true` actions)",
        "",
        "| result | samples | p50 ms | p95 ms | max ms |",
        "|---|---|---|---|---|",
    ]
    for kind, values in lat.items():
        if values:
            lines.append(
                f"| {kind} | {len(values)} | {1000 * percentile(values, 50):.0f} | "
                f"{1000 * percentile(values, 95):.0f} | {1000 * max(values):.0f} |"
            )
    lines += [
        "",
        "Measured from the end of the last word (audio time), so they include the quiet that tells "
        "the end of speech from a pause: 0.15 s after a finished command (`endpointing.complete_silence_s`), "
        "0.7 s where a command may go on (`endpointing.end_silence`).",
        "",
        "![latency](latency.png)",
        "",
        "## Listening: CPU per audio second, and endpointers side by side (same audio)",
        "",
        "| detector | silence | mic floor | noise | segments in silence+noise | segments in speech track"
        " | IoU with truth |",
        "|---|---|---|---|---|---|---|",
    ]
    detectors = results["listening"]["detectors"]
    for name, row in detectors.items():
        if isinstance(row, dict) and "cpu_per_audio_s_noise" in row:
            lines.append(
                f"| {name} | {row['cpu_per_audio_s_silence']} | {row['cpu_per_audio_s_mic_floor']} | "
                f"{row['cpu_per_audio_s_noise']} | {row.get('segments_in_silence_and_noise')} | "
                f"{row.get('segments_in_speech_track', '-')} | {row.get('iou_with_truth', '-')} |"
            )
    lines += [
        "",
        f"Speech track: {detectors['truth_segments']} utterances in {detectors['track_s']} s.",
        "",
        "![cpu](cpu.png)",
        "",
    ]
    engine = results["listening"].get("engine", {})
    if engine:
        lines += [
            "## Daemon on the speech track (embedded server)",
            "",
            f"- speech end -> final: p50 {engine['latency_s_p50']} s, p95 {engine['latency_s_p95']} s "
            f"({engine['finals']} finals of {engine['utterances']} utterances)",
            f"- peak RSS of `voiced run` with its embedded server: {engine['daemon_peak_rss_mb']} MB",
            "",
        ]
    server = results["server"]
    lines += ["## Local server", "", "| model | RTF (server CPU s per audio s) | exact phrases |", "|---|---|---|"]
    lines += [f"| {r['model']} | {r['rtf']} | {r['exact_phrases']} |" for r in server["rtf"]]
    lines += [
        "",
        "Concurrent real-time streams held (final within 1 s of the half-close), one connection per stream:",
        "",
        "| model | workers | streams held | server cores busy at the last level held |",
        "|---|---|---|---|",
    ]
    for row in server["concurrency"]:
        busy = [level["server_cores_busy"] for level in row["levels"] if level["held"]]
        lines.append(
            f"| {row['model']} | {row['workers']} | **{row['max_streams_held']}** | {busy[-1] if busy else '-'} |"
        )
    lines += [
        "",
        "Server memory (PSS) with N streams held open, one worker:",
        "",
        "| model | fresh | " + " | ".join(f"{p['streams']} streams" for p in server["memory"][0]["points"]) + " |",
        "|---|---|" + "---|" * len(server["memory"][0]["points"]),
    ]
    lines += [
        f"| {row['model']} | {row['fresh_pss_mb']:.0f} MB | "
        + " | ".join(f"{p['pss_mb']:.0f} MB" for p in row["points"])
        + " |"
        for row in server["memory"]
    ]
    lines += wyoming_lines(results.get("wyoming"))
    lines += [
        "",
        "## Bytes per utterance: LPCM vs Ogg Opus",
        "",
        "```",
        results["opus"].strip(),
        "```",
        "",
        "## Start -> READY (sd_notify)",
        "",
        f"- `voiced serve`: {results['ready']['serve']:.2f} s",
        f"- `voiced run` (embedded server): {results['ready']['run']:.2f} s",
        "",
        "## Commands on the local engine",
        "",
        "```",
        results["commands"].strip(),
        "```",
        "",
        "## Soak",
        "",
        "```json",
        json.dumps(results["soak"], indent=1),
        "```",
        "",
    ]
    return "\n".join(lines)


def wyoming_lines(wyoming: dict | None) -> list[str]:
    """bench_wyoming.py's table (absent from reports made before it)."""
    if not wyoming:
        return []
    lines = [
        "",
        "## Transcript after the end of the audio: Wyoming vs the v2 API (same audio, same server)",
        "",
        f"Each phrase at {wyoming['pace']:g}x real time in {wyoming['chunk_ms']} ms chunks, {wyoming['rounds']} "
        f"round(s); load average {wyoming['machine']['load_avg_at_start'][0]:.1f} at the start.",
        "",
        "| model | Wyoming p50 / p95 ms (audio-stop -> transcript) | v2 API p50 / p95 ms (half-close -> end) "
        "| requests each | same text |",
        "|---|---|---|---|---|",
    ]

    def figures(api: dict) -> str:
        return f"{api['p50_ms']:.0f} / {api['p95_ms']:.0f}" if api else "-"

    for row in wyoming["models"]:
        failed = " / ".join(str(len(row["failures"][api])) for api in ("wyoming", "v2"))
        lines.append(
            f"| {row['model']} | {figures(row['wyoming'])} | {figures(row['v2'])} | "
            f"{row['requests_per_api']} (failed {failed}) | {row['agree']} |"
        )
    return lines


def wyoming(quick: bool) -> dict:
    wyoming_json = OUT / "wyoming.json"
    run("bench/bench_wyoming.py", "--json", str(wyoming_json), *(["--rounds", "1"] if quick else []))
    return json.loads(wyoming_json.read_text())


def listening(quick: bool) -> dict:
    return json.loads(run("bench/bench_listening.py", *(["--seconds", "30", "--rounds", "1"] if quick else [])))


def commands(quick: bool) -> str:
    return run("bench/bench_commands.py", *(["--commands", "8"] if quick else []))


def soak(quick: bool) -> dict:
    soak_json = OUT / "soak.json"
    subprocess.run(
        [sys.executable, "bench/soak.py", "--minutes", "5" if quick else "60", "--json", str(soak_json)],
        cwd=ROOT,
        check=False,
    )
    return json.loads(soak_json.read_text())


def server(quick: bool) -> dict:
    server_json = OUT / "server.json"
    run(
        "bench/bench_server.py",
        "--json",
        str(server_json),
        *(["--max-streams", "6", "--memory-streams", "1", "2"] if quick else []),
    )
    return json.loads(server_json.read_text())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="shorter runs (a smoke test of the report)")
    parser.add_argument("--render-only", action="store_true", help="redo REPORT.md and plots from results.json")
    parser.add_argument(
        "--redo",
        metavar="PARTS",
        help="measure only these again (comma list of: ready, latency, "
        "listening, server, wyoming, commands, soak), keep the rest of results.json",
    )
    parser.add_argument(
        "--engine",
        choices=("auto", "whisper", "pocketsphinx"),
        default="auto",
        help="the commands engine of the latency runs (default auto: whisper when installed)",
    )
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    if args.render_only or args.redo:
        results = json.loads((OUT / "results.json").read_text())
        parts = set((args.redo or "").split(",")) - {""}
        results.setdefault("redone", {}).update(dict.fromkeys(parts, time.strftime("%Y-%m-%d")))
        if "ready" in parts:
            results["ready"] = ready_times()
        if "latency" in parts:
            results["latency"] = action_latency(args.quick, args.engine)
        if "listening" in parts:
            results["listening"] = listening(args.quick)
        if "server" in parts:
            results["server"] = server(args.quick)
        if "wyoming" in parts:
            results["wyoming"] = wyoming(args.quick)
        if "commands" in parts:
            results["commands"] = commands(args.quick)
        if "soak" in parts:
            results["soak"] = soak(args.quick)
        (OUT / "results.json").write_text(json.dumps(results, indent=1))
        plots(results["latency"], results["listening"])
        (OUT / "REPORT.md").write_text(markdown(results))
        return 0
    quick = args.quick
    results: dict = {
        "quick": quick,
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
    }
    results["ready"] = ready_times()
    results["latency"] = action_latency(quick, args.engine)
    results["listening"] = listening(quick)
    results["server"] = server(quick)
    results["wyoming"] = wyoming(quick)
    results["opus"] = run("bench/bench_opus.py", *(["--rates", "16000", "--bitrates", "24000"] if quick else []))
    results["commands"] = commands(quick)
    results["soak"] = soak(quick)
    (OUT / "results.json").write_text(json.dumps(results, indent=1))
    plots(results["latency"], results["listening"])
    (OUT / "REPORT.md").write_text(markdown(results))
    print(f"wrote {OUT / 'REPORT.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
