"""Wake word benchmark: microWakeWord against openWakeWord on the same synthesized audio.

    .venv/bin/python bench/bench_wake.py                        # everything, ~20 min on 2 cores
    .venv/bin/python bench/bench_wake.py --hours 0.1 --open-hours 0.05   # a quick look

Printed per unit, all measured in this run:
- CPU s per audio s of the wake detector (VAD included) on digital silence, a quiet noise
  floor and speech, with and without the VAD gate, and of the whole wake-word listening
  (detector + endpointer, as the listening core runs it);
- per model and engine: the threshold chosen on the TUNING set (the highest that detects
  >= 95 % of its wake phrases), then detection % and false accepts per hour of speech that
  never says the name, tuning and held-out apart (bench/wake_corpus.py says what they are);
- for microWakeWord through the real gated detector at that threshold: detection % per
  voice, and where it put the end of the wake phrase against where the phrase really ended
  and where the command really started.
The engine comparison replays each model's scores (computed once, ungated) through the real
`WakeDetector`; openWakeWord's false accepts are counted on `--open-hours` only (it costs
~25 times more CPU).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import wake_corpus as corpus

from voiced.audio.vad import EndpointerSettings
from voiced.testing import noise, read_pcm, write_wav
from voiced.wake.detector import WakeDetector
from voiced.wake.engines import load_scorer
from voiced.wake.gate import wake_word_endpointer
from voiced.wake.settings import SHIPPED_MODELS, WakeSettings, resolve_model

ROOT = Path(__file__).resolve().parent.parent

RATE = corpus.RATE
ENDPOINTING = EndpointerSettings()
FRAME_BYTES = ENDPOINTING.frame_bytes(RATE)
GOAL_DETECTION = 0.95
# a detection belongs to a wake phrase if it comes between its start and this long after its end
MATCH_AFTER_S = 1.0


def frames_of(pcm: bytes):
    return (pcm[i : i + FRAME_BYTES] for i in range(0, len(pcm) - FRAME_BYTES + 1, FRAME_BYTES))


def settings(engine: str, model: str, threshold: float | None = None, gate: bool = True) -> WakeSettings:
    return WakeSettings(mode="wake_word", engine=engine, model=model, threshold=threshold, vad_gate=gate)


class ReplayScorer:
    """Scores recorded per frame by the real model, played back into the real detector."""

    def __init__(self, real_scorer_info: tuple[str, float, float], per_frame: list[list[float]]):
        self.name, self.threshold, self.detection_lag_s = real_scorer_info
        self._per_frame, self._next = per_frame, 0

    def scores(self, pcm: bytes) -> list[float]:
        count = len(pcm) // FRAME_BYTES
        out = [score for frame in self._per_frame[self._next : self._next + count] for score in frame]
        self._next += count
        return out

    def reset(self) -> None:
        pass  # recorded without resets: a replay can only be as long-sighted as the recording


# --- CPU --------------------------------------------------------------------------------


def cpu_per_audio_s(run, pcm: bytes) -> float:
    started = time.process_time()
    for frame in frames_of(pcm):
        run(frame)
    return (time.process_time() - started) / (len(pcm) / 2 / RATE)


def measure_cpu(engines: list[str], speech: bytes, seconds: float) -> dict:
    conditions = {
        "digital silence": b"\0\0" * int(seconds * RATE),
        "noise floor": noise(seconds, RATE, "pinknoise", 0.005),
        "speech": speech[: int(seconds * RATE) * 2],
    }
    figures = {}
    for engine in engines:
        for gate in (False, True):
            for condition, pcm in conditions.items():
                detector = WakeDetector(
                    settings(engine, "alexa", gate=gate), ENDPOINTING, load_scorer(resolve_model("alexa", engine))
                )
                figures[f"{engine} detector, gate {'on' if gate else 'off'}, {condition}"] = cpu_per_audio_s(
                    detector.process, pcm
                )
        for condition, pcm in conditions.items():
            listening = wake_word_endpointer(settings(engine, "alexa"), ENDPOINTING, RATE)
            figures[f"{engine} whole listening (gated detector + endpointer), {condition}"] = cpu_per_audio_s(
                listening.process, pcm
            )
    return figures


# --- scores, detections ------------------------------------------------------------------


def record_scores(job: tuple[str, str, str]) -> tuple[tuple[str, str, str], list[list[float]], tuple]:
    engine, model, wav = job
    scorer = load_scorer(resolve_model(model, engine))
    pcm, _ = read_pcm(Path(wav))
    return (
        job,
        [scorer.scores(frame) for frame in frames_of(pcm)],
        (scorer.name, scorer.threshold, scorer.detection_lag_s),
    )


def detect(wake: WakeSettings, pcm: bytes, scorer) -> list:
    detector = WakeDetector(wake, ENDPOINTING, scorer)
    return [event for frame in frames_of(pcm) for event in detector.process(frame)]


def match(items: list[corpus.WakeItem], detections: list) -> tuple[dict, list]:
    """item index -> its first detection; the detections that belong to no wake phrase."""
    found, stray = {}, []
    for event in detections:
        owner = next(
            (i for i, item in enumerate(items) if item.start_s <= event.at_s <= item.end_s + MATCH_AFTER_S), None
        )
        if owner is None:
            stray.append(event)
        else:
            found.setdefault(owner, event)
    return found, stray


def item_peaks(items: list[corpus.WakeItem], per_frame: list[list[float]]) -> list[float]:
    frame_s = ENDPOINTING.frame_ms / 1000
    return [
        max(
            (s for f in per_frame[int(i.start_s / frame_s) : int((i.end_s + MATCH_AFTER_S) / frame_s)] for s in f),
            default=0.0,
        )
        for i in items
    ]


def tuned_threshold(peaks: list[float]) -> float:
    """The highest threshold (0.01 steps, at most 0.99) detecting >= 95 % of the phrases."""
    allowed_misses = math.floor(len(peaks) * (1 - GOAL_DETECTION))
    floor_peak = sorted(peaks)[allowed_misses]
    return max(0.01, min(0.99, math.floor(floor_peak * 100) / 100))


def rates(items, pcm_wake, negative_pcm, wake: WakeSettings, scorer_for) -> dict:
    found, stray = match(items, detect(wake, pcm_wake, scorer_for("wake")))
    false_accepts = detect(wake, negative_pcm, scorer_for("negative"))
    hours = len(negative_pcm) / 2 / RATE / 3600
    return {
        "detected": len(found),
        "phrases": len(items),
        "detection": len(found) / len(items),
        "false_accepts": len(false_accepts) + len(stray),
        "hours": hours,
        "fa_per_hour": (len(false_accepts) + len(stray)) / hours,
        "found": found,
    }


def positions(items: list[corpus.WakeItem], found: dict) -> dict:
    """Where the detector put the end of the wake phrase, against the truth."""
    errors = [found[i].phrase_end_s - items[i].end_s for i in found]
    commands = [i for i in found if items[i].command_s is not None]
    clipped = [i for i in commands if found[i].phrase_end_s > items[i].command_s + 0.03]
    wake_tail = [i for i in found if found[i].phrase_end_s < items[i].end_s - 0.1]
    return {
        "median_error_s": statistics.median(errors),
        "max_late_s": max(errors),
        "max_early_s": min(errors),
        "command_clipped": len(clipped),
        "commands": len(commands),
        "wake_tail_over_0.1s": len(wake_tail),
    }


def per_voice(items: list[corpus.WakeItem], found: dict) -> dict:
    voices = {}
    for index, item in enumerate(items):
        hit, total = voices.get(item.voice, (0, 0))
        voices[item.voice] = (hit + (index in found), total + 1)
    return {voice: f"{hit}/{total}" for voice, (hit, total) in voices.items()}


# --- the run -----------------------------------------------------------------------------


def build_audio(models: set[str], hours: float, open_hours: float, workdir: Path) -> dict:
    """WAV paths (the workers read them) and the wake phrases' positions, per set."""
    audio = {}
    for speech_set in corpus.SETS.values():
        negative = corpus.negative_track(speech_set, hours, workdir)
        entry = {
            "negative": write_wav(workdir / f"{speech_set.name}-negative-{hours:g}h.wav", negative, RATE),
            "negative_open": write_wav(
                workdir / f"{speech_set.name}-negative-{open_hours:g}h.wav",
                negative[: int(open_hours * 3600 * RATE) * 2],
                RATE,
            ),
            "wake": {},
        }
        for model in sorted(models):
            pcm, items = corpus.wake_track(model, speech_set, workdir)
            entry["wake"][model] = (write_wav(workdir / f"{speech_set.name}-wake-{model}.wav", pcm, RATE), items)
        audio[speech_set.name] = entry
    return audio


def real_gated(job: tuple[str, float, str, str, str]) -> tuple:
    """microWakeWord through the real gated detector: detections on a wake and a negative track."""
    model, threshold, _, wake_wav, negative_wav = job
    wake = settings("micro", model, threshold, gate=True)
    scorer = lambda: load_scorer(resolve_model(model, "micro"))
    return (
        job,
        detect(wake, read_pcm(Path(wake_wav))[0], scorer()),
        detect(wake, read_pcm(Path(negative_wav))[0], scorer()),
    )


def summary(figures: dict) -> str:
    return (
        f"{figures['detected']:3d}/{figures['phrases']:<3d} {figures['detection']:6.1%}   "
        f"{figures['false_accepts']:3d} FA in {figures['hours']:.2f} h = {figures['fa_per_hour']:5.2f}/h"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engines", default="micro,open")
    parser.add_argument("--hours", type=float, default=2.0, help="speech without the name, per set")
    parser.add_argument("--open-hours", type=float, default=0.25, help="of it, for openWakeWord's false accepts")
    parser.add_argument("--cpu-seconds", type=float, default=120.0, help="audio per CPU condition")
    parser.add_argument(
        "--gated-at",
        choices=["tuned", "own"],
        default="tuned",
        help="the threshold of the real gated runs: tuned here, or the model's own",
    )
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/voiced-bench-wake"))
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "wake.json")
    args = parser.parse_args()
    engines = args.engines.split(",")
    args.workdir.mkdir(parents=True, exist_ok=True)
    models = {model for engine in engines for model in SHIPPED_MODELS[engine]}
    started = time.monotonic()
    audio = build_audio(models, args.hours, min(args.open_hours, args.hours), args.workdir)
    print(f"audio built in {time.monotonic() - started:.0f} s; {args.hours:g} h of speech without a name per set")

    cpu = measure_cpu(engines, read_pcm(audio["tuning"]["negative"])[0], args.cpu_seconds)
    print(f"\nCPU s per audio s ({args.cpu_seconds:g} s of audio each, model alexa)")
    for condition, value in cpu.items():
        print(f"  {condition:<72s} {value:.4f}")

    jobs = [
        (engine, model, str(audio[s]["wake"][model][0]))
        for engine in engines
        for model in SHIPPED_MODELS[engine]
        for s in corpus.SETS
    ] + [
        (engine, model, str(audio[s]["negative" if engine == "micro" else "negative_open"]))
        for engine in engines
        for model in SHIPPED_MODELS[engine]
        for s in corpus.SETS
    ]
    with ProcessPoolExecutor(2) as pool:
        recorded = {job: (trace, info) for job, trace, info in pool.map(record_scores, jobs)}

    results = {"cpu_per_audio_s": cpu, "models": {}}
    print("\nper model, scores replayed ungated: threshold chosen on tuning; detection | false accepts")
    for engine in engines:
        for model in SHIPPED_MODELS[engine]:

            def trace(set_name, kind, engine=engine, model=model):
                wav = (
                    audio[set_name]["wake"][model][0]
                    if kind == "wake"
                    else audio[set_name]["negative" if engine == "micro" else "negative_open"]
                )
                return recorded[(engine, model, str(wav))]

            items = {s: audio[s]["wake"][model][1] for s in corpus.SETS}
            tuned = tuned_threshold(item_peaks(items["tuning"], trace("tuning", "wake")[0]))
            own = trace("tuning", "wake")[1][1]
            entry = {"tuned_threshold": tuned, "own_threshold": own}
            for label, threshold in (("tuned", tuned), ("own", own)):
                for set_name in corpus.SETS:
                    figures = rates(
                        items[set_name],
                        read_pcm(audio[set_name]["wake"][model][0])[0],
                        read_pcm(audio[set_name]["negative" if engine == "micro" else "negative_open"])[0],
                        settings(engine, model, threshold, gate=False),
                        lambda kind, s=set_name: ReplayScorer(trace(s, kind)[1], trace(s, kind)[0]),
                    )
                    figures.pop("found")
                    entry[f"{label} {set_name}"] = figures
                    print(f"  {engine:5s} {model:11s} {label:5s} {threshold:.2f} {set_name:8s} {summary(figures)}")
            results["models"][f"{engine} {model}"] = entry

    if "micro" in engines:
        print(f"\nmicroWakeWord, real gated detector at the {args.gated_at} threshold")
        gated_jobs = [
            (
                model,
                results["models"][f"micro {model}"][f"{args.gated_at}_threshold"],
                s,
                str(audio[s]["wake"][model][0]),
                str(audio[s]["negative"]),
            )
            for model in SHIPPED_MODELS["micro"]
            for s in corpus.SETS
        ]
        with ProcessPoolExecutor(2) as pool:
            for (model, threshold, set_name, _, _), wake_events, negative_events in pool.map(real_gated, gated_jobs):
                items = audio[set_name]["wake"][model][1]
                found, stray = match(items, wake_events)
                false_accepts = len(negative_events) + len(stray)
                figures = {
                    "threshold": threshold,
                    "detection": len(found) / len(items),
                    "fa_per_hour": false_accepts / args.hours,
                    "false_accepts": false_accepts,
                    "per_voice": per_voice(items, found),
                    "phrase_end": positions(items, found) if found else {},
                }
                results["models"][f"micro {model}"][f"gated {set_name}"] = figures
                print(
                    f"  {model:11s} {threshold:.2f} {set_name:8s} {len(found):3d}/{len(items)} "
                    f"{figures['detection']:6.1%}  {false_accepts} FA in {args.hours:g} h = "
                    f"{figures['fa_per_hour']:.2f}/h"
                )
                print(f"      per voice: {figures['per_voice']}")
                print(f"      phrase end: {figures['phrase_end']}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2, default=str))
    print(f"\n{time.monotonic() - started:.0f} s in all; figures in {args.json}")


if __name__ == "__main__":
    main()
