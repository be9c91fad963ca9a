"""End of speech to action, with and without ending a session early on a finished command
(`endpointing.early_on_complete`), through the whole `voiced run` at real-time pace.

Each command sentence is said with a natural pause inside it (0.3-0.5 s: longer than the
early end's silence, shorter than the end silence): inside a number of several words ("set a
timer for twenty | five minutes"), else before an optional tail ("set the volume to fifty |
percent", "open the garage | door"), else between two other words. The two halves are
synthesized apart and joined with that pause. Each voice's sentences, and a few near misses
of its set, are one recording, two seconds apart over a quiet noise floor, read at real-time
pace (as a microphone delivers it) by `voiced run` with the set's command file (every action
replaced by `true`). The same recording is run with early ending off and on.

Measured per run: accuracy (the intent and slots said), false actions (near misses that ran
something, commands run with another intent or slot), and the time from the end of speech
(the last word's end in the audio: where its energy falls below 5 % of the utterance's peak)
to the action finished, for the commands said as finished commands (nothing may follow them)
and for the others (the grammar lets them go on: they wait out the end silence either way).
Cut short: a session the early end closed before the speaker's last word ended. The finished
commands' latency is also split into its stages (p50): to the session's end (`speech_ended`),
then to the final, then to the action finished; and each utterance's partials are kept in the
`--json` output, to see why a session ended where it did.

Sets: `A` (tuning: its sentences and voices) is what `complete_silence_s` was chosen on;
`B` (other sentences), `C` (set B's sentences, other voices) and `U` (another command file,
other voices) are held out.

    .venv/bin/python bench/bench_endpointing.py --sets B,C,U --per-voice 8                 # ~35 min
    .venv/bin/python bench/bench_endpointing.py --sets B --per-voice 8 --engine pocketsphinx
    .venv/bin/python bench/bench_endpointing.py --sets B,U --per-voice 6 --early-final
    .venv/bin/python bench/bench_endpointing.py --sets A --per-voice 8 --runs 0.15,0.25    # tuning
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import random
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from command_sets import NEAR_MISSES_HELD_OUT, NEAR_MISSES_HOME, NEAR_MISSES_TUNING, SETS, CommandSetSpec

from voiced.commands import load_commands
from voiced.commands.completion import CommandCompletion, spoken_form
from voiced.testing import mix, noise, read_pcm, silence, speech_span, synthesize, trimmed, write_wav
from voiced.textnorm import words_to_digits

ROOT = Path(__file__).resolve().parent.parent
RATE = 16000
GAP_S = 2.0
PAUSE_S = (0.3, 0.5)
# cut short: the session was closed this long before the last word ended (the VAD's end of
# speech and the energy's differ by a few frames either way)
CUT_SLACK_S = 0.1


@dataclass(frozen=True)
class PauseSet:
    spec: CommandSetSpec
    per_voice: int  # command sentences per voice (the first of the set's sample)
    near_misses: tuple[str, ...]
    near_misses_per_voice: int = 4


PAUSE_SETS = {
    "A": PauseSet(SETS["A"], 16, NEAR_MISSES_TUNING),
    "B": PauseSet(SETS["B"], 16, NEAR_MISSES_HELD_OUT),
    "C": PauseSet(SETS["C"], 12, NEAR_MISSES_HELD_OUT),
    "U": PauseSet(SETS["U"], 12, NEAR_MISSES_HOME),
}


@dataclass
class Utterance:
    said: str  # in words, as synthesized
    voice: str
    expected: tuple | None  # (intent, slots); None: nothing may run
    finished: bool  # a command nothing can follow (the early end may apply)
    pause_at: str  # where the pause is: "number", "tail", "words", or "" (none)
    pcm: bytes
    speech_end_s: float = 0.0  # in the utterance's own audio


@dataclass
class Outcome:
    """What one run did with one utterance."""

    matched: list = field(default_factory=list)  # (intent, slots) of each command_matched
    reasons: list = field(default_factory=list)  # speech_ended reasons
    partials: list = field(default_factory=list)  # their texts, to see why a session ended where it did
    cut_short: bool = False
    latency_s: float | None = None  # end of speech -> the first action finished
    # where that time went: end of speech -> the session ended -> its final -> the action finished
    stages_s: dict = field(default_factory=dict)


def spoken_units(text: str) -> list[list[str]]:
    """The sentence as spoken words, grouped: each number one group, each other word its own."""
    units = []
    for token in words_to_digits(text, "en").split():
        units.append(list(spoken_form(token, "en")) if token.isdigit() else [token])
    return units


def with_pause(text: str, completion: CommandCompletion, rng: random.Random) -> tuple[list[str], list[str], str]:
    """The sentence's words split where a speaker might pause (see the module's docstring)."""
    units = spoken_units(text)
    words = [word for unit in units for word in unit]
    in_number, position = [], 0
    for unit in units:
        in_number += [position + i for i in range(1, len(unit))]
        position += len(unit)
    before_tail = [
        i
        for i in range(1, len(words))
        if completion.is_sentence(" ".join(words[:i])) and completion.goes_on(" ".join(words[:i]))
    ]
    if in_number:
        at, kind = rng.choice(in_number), "number"
    elif before_tail:
        at, kind = rng.choice(before_tail), "tail"
    elif len(words) > 1:
        at, kind = rng.randrange(1, len(words)), "words"
    else:
        return words, [], ""
    return words[:at], words[at:], kind


def spoken(text: str, voice: str, cache: Path) -> bytes:
    """`text` spoken, without the TTS's own leading and trailing silence."""
    return trimmed(read_pcm(synthesize(text, voice, RATE, cache))[0], RATE)


def utterances(pause_set: PauseSet, cache: Path) -> list[Utterance]:
    spec = pause_set.spec
    command_set = load_commands([spec.commands_file])
    completion = CommandCompletion(command_set, "en")
    sentences = spec.commands(command_set)[: pause_set.per_voice]
    rng = random.Random(f"pauses {spec.name}")
    said: list[Utterance] = []
    for index, voice in enumerate(spec.voices):
        start = index * pause_set.near_misses_per_voice % len(pause_set.near_misses)
        misses = (pause_set.near_misses * 2)[start : start + pause_set.near_misses_per_voice]
        for text in [*sentences, *misses]:
            match = command_set.match(text, "en")
            expected = (match.intent, match.slots) if text in sentences and match is not None else None
            head, tail, kind = with_pause(text, completion, rng)
            pcm = spoken(" ".join(head), voice, cache)
            if tail:
                pcm += silence(rng.uniform(*PAUSE_S), RATE) + spoken(" ".join(tail), voice, cache)
            words = " ".join(head + tail)
            said.append(
                Utterance(
                    words,
                    voice,
                    expected,
                    expected is not None and completion.finished(words),
                    kind,
                    pcm,
                    speech_span(pcm, RATE)[1],
                )
            )
    return said


def run_daemon(
    commands_file: Path, said: list[Utterance], endpointing: dict, local_grammar: dict, workdir: Path
) -> list[Outcome]:
    """Each voice's utterances as one recording through `voiced run` at real-time pace."""
    commands = yaml.safe_load(commands_file.read_text(encoding="utf-8"))
    for command in commands["commands"].values():
        command["actions"] = [{"type": "exec", "argv": ["true"]}]
    (workdir / "commands.yaml").write_text(yaml.safe_dump(commands, allow_unicode=True), encoding="utf-8")
    config = workdir / "voiced.yaml"
    sections = {"files": ["commands.yaml"], "local_grammar": local_grammar}
    config.write_text(yaml.safe_dump({"commands": sections, "endpointing": endpointing}))
    outcomes: list[Outcome] = []
    by_voice: dict[str, list[Utterance]] = collections.defaultdict(list)
    for utterance in said:
        by_voice[utterance.voice].append(utterance)
    for voice_said in by_voice.values():
        outcomes += _run_voice(config, voice_said, workdir)
    return outcomes


def _run_voice(config: Path, said: list[Utterance], workdir: Path) -> list[Outcome]:
    gap = silence(GAP_S, RATE)
    parts, starts = [gap], []
    for utterance in said:
        starts.append(sum(map(len, parts)) / 2 / RATE)
        parts += [utterance.pcm, gap]
    audio = b"".join(parts)
    audio = mix(audio, noise(len(audio) / 2 / RATE + 0.1, RATE, "brownnoise", 0.005))
    recording = write_wav(workdir / "voice.wav", audio, RATE)
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "voiced",
            "run",
            "--config",
            str(config),
            "--input",
            str(recording),
            "--events",
            "jsonl",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=3600,
    )
    if run.returncode != 0:
        raise RuntimeError(f"voiced run failed: {run.stderr[-2000:]}")
    events = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    opened = [e for e in events if e["type"] == "speech_started"]
    # the wall-clock time of audio position 0: a session opens when the audio up to
    # audio_s + pre_roll_s has arrived (the median takes out the jitter of single frames)
    audio_zero = statistics.median(e["ts"] - e["audio_s"] - e["pre_roll_s"] for e in opened)
    utterance_of: dict[int, int] = {}
    outcomes = [Outcome() for _ in said]
    for event in events:
        kind, session = event["type"], event.get("session")
        if kind == "speech_started":
            detected_s = event["audio_s"] + event["pre_roll_s"]
            utterance_of[session] = max(0, sum(start <= detected_s for start in starts) - 1)
            continue
        if session not in utterance_of:
            continue
        index = utterance_of[session]
        outcome, utterance = outcomes[index], said[index]
        speech_end = starts[index] + utterance.speech_end_s
        if kind == "partial":
            outcome.partials.append(event["text"])
        elif kind == "speech_ended":
            outcome.reasons.append(event["reason"])
            outcome.stages_s.setdefault("ended", event["ts"] - (audio_zero + speech_end))
            # the session's speech ended (by the VAD) before the speaker's last word did
            if event["reason"] == "complete" and event["audio_s"] < speech_end - CUT_SLACK_S:
                outcome.cut_short = True
        elif kind == "final":
            outcome.stages_s.setdefault("final", event["ts"] - (audio_zero + speech_end))
        elif kind == "command_matched":
            outcome.matched.append((event["intent"], event["slots"]))
        elif kind == "action_finished" and outcome.latency_s is None:
            outcome.latency_s = event["ts"] - (audio_zero + speech_end)
    return outcomes


def percentile(values: list[float], q: int) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def figures(said: list[Utterance], outcomes: list[Outcome]) -> dict:
    commands = [(u, o) for u, o in zip(said, outcomes) if u.expected is not None]
    others = [(u, o) for u, o in zip(said, outcomes) if u.expected is None]
    right = [(u, o) for u, o in commands if o.matched == [u.expected]]
    wrong = sum(1 for u, o in commands if any(m != u.expected for m in o.matched))
    finished = [o.latency_s for u, o in right if u.finished and o.latency_s is not None]
    going_on = [o.latency_s for u, o in right if not u.finished and o.latency_s is not None]

    def ms(values: list[float], q: int) -> int | None:
        value = percentile(values, q)
        return None if value is None else round(1000 * value)

    # p50 of each stage's share of the finished commands' latency
    timed = [o for u, o in right if u.finished and o.latency_s is not None and len(o.stages_s) == 2]
    stages = {
        "session_ended": [o.stages_s["ended"] for o in timed],
        "final": [o.stages_s["final"] - o.stages_s["ended"] for o in timed],
        "action": [o.latency_s - o.stages_s["final"] for o in timed],
    }

    return {
        "commands": len(commands),
        "right": len(right),
        "accuracy": len(right) / max(1, len(commands)),
        "false_actions": wrong + sum(1 for _, o in others if o.matched),
        "utterances": len(said),
        "finished_latency_ms": {"n": len(finished), "p50": ms(finished, 50), "p95": ms(finished, 95)},
        "going_on_latency_ms": {"n": len(going_on), "p50": ms(going_on, 50), "p95": ms(going_on, 95)},
        "finished_stages_p50_ms": {name: ms(values, 50) for name, values in stages.items()},
        "cut_short": sum(o.cut_short for o in outcomes),
        # a shorter command (or any other) run in place of the one said
        "cut_short_wrong": sum(1 for u, o in commands if o.cut_short and any(m != u.expected for m in o.matched)),
        "ended_complete": sum("complete" in o.reasons for o in outcomes),
        "sessions_per_utterance": dict(collections.Counter(len(o.reasons) for o in outcomes)),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", default="A,B,C,U", help=f"comma-separated, of {', '.join(PAUSE_SETS)}")
    parser.add_argument(
        "--runs",
        default="off,on",
        help="comma-separated: off, on (the settings' complete_silence_s), or seconds (on, with that silence)",
    )
    parser.add_argument("--engine", default="whisper", choices=("whisper", "pocketsphinx"))
    parser.add_argument(
        "--early-final", action="store_true", help="(whisper) begin the final in the quiet after a whole command"
    )
    parser.add_argument("--per-voice", type=int, help="command sentences per voice (default: the set's)")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/voiced-bench-tts"))
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    runs: dict[str, dict] = {}
    for run in args.runs.split(","):
        if run in ("off", "on"):
            runs[run] = {"early_on_complete": run == "on"}
        else:
            runs[f"on {run} s"] = {"early_on_complete": True, "complete_silence_s": float(run)}
    local_grammar: dict = {"engine": args.engine}
    if args.early_final:
        local_grammar["whisper"] = {"early_final": True}
    print(f"engine {args.engine}" + (", early final" if args.early_final else ""))
    results: dict[str, dict] = {"engine": {"name": args.engine}}
    with tempfile.TemporaryDirectory(prefix="voiced-bench-endpointing-") as tmp:
        for name in args.sets.split(","):
            pause_set = PAUSE_SETS[name]
            if args.per_voice is not None:
                pause_set = dataclasses.replace(pause_set, per_voice=args.per_voice)
            said = utterances(pause_set, args.cache)
            kind = "tuning" if pause_set.spec.tuning else "HELD OUT"
            pauses = dict(collections.Counter(u.pause_at for u in said))
            print(f"set {name} ({kind}: {pause_set.spec.description}); pauses {pauses}")
            results[name] = {"tuning": pause_set.spec.tuning}
            for run_name, endpointing in runs.items():
                outcomes = run_daemon(pause_set.spec.commands_file, said, endpointing, local_grammar, Path(tmp))
                found = results[name][run_name] = figures(said, outcomes)
                found["each"] = [
                    {"said": u.said, "voice": u.voice, "expected": u.expected, "pause": u.pause_at, **vars(o)}
                    for u, o in zip(said, outcomes)
                ]
                done, going = found["finished_latency_ms"], found["going_on_latency_ms"]
                print(
                    f"  {run_name:10s} accuracy {found['right']}/{found['commands']} = {found['accuracy']:.1%}  "
                    f"false actions {found['false_actions']}/{found['utterances']}  "
                    f"finished commands p50/p95 {done['p50']}/{done['p95']} ms (n={done['n']})  "
                    f"others {going['p50']}/{going['p95']} ms (n={going['n']})  "
                    f"stages p50 {found['finished_stages_p50_ms']} ms  "
                    f"ended complete {found['ended_complete']}  cut short {found['cut_short']} "
                    f"({found['cut_short_wrong']} ran a wrong command)  sessions {found['sessions_per_utterance']}",
                    flush=True,
                )
                if args.json:  # after each run: a long bench stopped early keeps what it measured
                    args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
