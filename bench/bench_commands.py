"""Command accuracy and false actions of the offline commands recognizer, on synthesized speech.

Sets (bench/command_sets.py): A and `numbers` are what thresholds were tuned on; B (other
sentences), C (other voices), U (another command file) and numbers-C are held out. Each set
has command sentences (right: the same intent and slots as said) and speech that must run
nothing: everyday chatter and near misses (numbers out of range, rooms the file does not
have, half commands). A false action is any action run for those, or a command run with
another intent or slot than said. Goals: accuracy >= 97 % on every held-out set, false
actions <= 1 %.

    .venv/bin/python bench/bench_commands.py --sets A,B,C,U            # through the local server
    .venv/bin/python bench/bench_commands.py --sets A --engine direct --sweep   # every margin, in-process
    .venv/bin/python bench/bench_commands.py --sets A,B --engine direct --chunked --end-silence 0.15  # early finals
    .venv/bin/python bench/bench_commands.py --sets A,C --engine daemon       # the whole `voiced run`
    .venv/bin/python bench/bench_commands.py --recognizer pocketsphinx       # the light engine instead
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

from command_sets import SETS, CommandSetSpec
from daemon_engine import LOCALES, DaemonEngine, Trace, User
from sweep_commands import sweep

from voiced.commands import CommandsSettings, load_commands
from voiced.commands.config import ConfirmSettings, WhisperSettings
from voiced.commands.grammar import to_jsgf
from voiced.server.config import GrammarModel, ServerSettings
from voiced.testing import read_pcm, silence, synthesize

ROOT = Path(__file__).resolve().parent.parent

RATE = 16000
PAD = silence(0.5, RATE)  # as the endpointer's pre-roll and end silence
# what the sets are sampled from and judged by: the file's commands, not voiced's answers to a question
FILE_ONLY = CommandsSettings(confirm=ConfirmSettings(enabled=False))
ANSWERS = {"en": ("yes", "no"), "ru": ("да", "нет")}  # what a user says to a question (en: never asked)


@dataclass
class Heard:
    """One utterance: what was said, what came back, and (direct engine) how it was decided."""

    said: str
    expected: tuple | None  # (intent, slots), None: nothing may run
    text: str
    seconds: float
    voice: str = ""
    choice: object = None
    language: str = "en"  # the Whisper engine's Choice (for --sweep)


def model_settings(
    commands_file: Path, recognizer: str, options: dict, language: str = "en"
) -> tuple[ServerSettings, object]:
    """The server's commands model as the daemon registers it (and the commands it serves).
    `options`: pocketsphinx's `rejection_margin`, or WhisperSettings fields, where given."""
    command_set = load_commands([commands_file])
    grammar = GrammarModel(
        language=LOCALES[language],
        jsgf=to_jsgf(command_set, language, garbage_weight=None),
        engine=recognizer,
        rejection_margin=options.get("rejection_margin", 0.75) if recognizer == "pocketsphinx" else None,
        whisper=WhisperSettings(**options) if recognizer == "whisper" else WhisperSettings(),
    )
    # as the daemon's embedded server: one microphone, so the engine keeps adapting to it
    return ServerSettings(models={"commands": grammar}, keep_channel_adaptation=True), command_set


class DirectEngine:
    """The server's engine in-process on each whole utterance (no gRPC, no endpointer), fed in
    one piece, or in the daemon's 30 ms frames (`chunked`: the Whisper final may then begin
    early, and decides on the audio up to 0.1 s into the quiet after the speech)."""

    chunked = False
    end_silence = PAD

    def __init__(self, commands_file: Path, recognizer: str, options: dict, language: str = "en"):
        from voiced.server.engine import Engine

        self.locale = LOCALES[language]
        settings, command_set = model_settings(commands_file, recognizer, options, language)
        self.engine = Engine(settings, {"commands": command_set})
        self.early_finals_used = 0

    def run(self, pcms: list[bytes]) -> list[tuple[str, object]]:
        results = []
        for pcm in pcms:
            recognizer = self.engine.lend(self.locale, "commands")
            try:
                recognizer.start()
                audio = PAD + pcm + self.end_silence
                step = 960 if self.chunked else len(audio)
                for start in range(0, len(audio), step):
                    recognizer.process(audio[start : start + step])
                used = getattr(recognizer, "early_finals_used", 0)
                text = recognizer.end().text
                self.early_finals_used += getattr(recognizer, "early_finals_used", 0) - used
                results.append((text, getattr(recognizer, "last_choice", None)))
            finally:
                self.engine.give_back(self.locale, "commands", recognizer)
        return results

    def stages(self) -> dict[str, float]:
        times = self.engine.stage_times
        return {"partials": times.partials_s, "final": times.final_s, "early finals used": self.early_finals_used}


class ServerEngine:
    """`voiced serve` with the commands model, each utterance one call in 0.25 s messages."""

    def __init__(self, commands_file: Path, recognizer: str, options: dict, language: str = "en"):
        import grpc

        from voiced.proto.yandex.cloud.ai.stt.v2 import stt_service_pb2 as pb
        from voiced.proto.yandex.cloud.ai.stt.v2 import stt_service_pb2_grpc as pb_grpc
        from voiced.server.app import start_server

        self.locale = LOCALES[language]
        settings, command_set = model_settings(commands_file, recognizer, options, language)
        self.server = start_server(settings, command_sets={"commands": command_set})
        self.pb = pb
        self.stub = pb_grpc.SttServiceStub(grpc.insecure_channel(self.server.target))

    def run(self, pcms: list[bytes]) -> list[tuple[str, object]]:
        return [(self._transcribe(PAD + pcm + PAD), None) for pcm in pcms]

    def _transcribe(self, pcm: bytes) -> str:
        pb = self.pb
        spec = pb.RecognitionSpec(
            audio_encoding=pb.RecognitionSpec.LINEAR16_PCM,
            sample_rate_hertz=RATE,
            language_code=self.locale,
            model="commands",
            raw_results=True,
        )

        def requests():
            yield pb.StreamingRecognitionRequest(config=pb.RecognitionConfig(specification=spec))
            for start in range(0, len(pcm), 8000):
                yield pb.StreamingRecognitionRequest(audio_content=pcm[start : start + 8000])

        return " ".join(
            chunk.alternatives[0].text
            for response in self.stub.StreamingRecognize(requests(), timeout=120)
            for chunk in response.chunks
            if chunk.final and chunk.alternatives
        )

    def stages(self) -> dict[str, float]:
        times = self.server.engine.stage_times
        return {"partials": times.partials_s, "final": times.final_s}


ENGINES = {"server": ServerEngine, "direct": DirectEngine, "daemon": DaemonEngine}


def expected_of(command_set, text: str, language: str = "en") -> tuple | None:
    match = command_set.match(text, language)
    return (match.intent, match.slots) if match is not None else None


def outcome(command_set, heard: Heard) -> str:
    """right / rejected (a command that ran nothing) / wrong (a false action) / silent (rightly nothing)."""
    match = command_set.match(heard.text, heard.language)
    got = (match.intent, match.slots) if match is not None and not match.is_fallback else None
    if heard.expected is None:
        return "silent" if got is None else "wrong"
    return "right" if got == heard.expected else "rejected" if got is None else "wrong"


def measure(spec: CommandSetSpec, engine, cache: Path) -> tuple[list[Heard], dict]:
    command_set = load_commands([spec.commands_file], FILE_ONLY)
    commands = spec.commands(command_set)
    heard: list[Heard] = []
    started = time.process_time()
    daemon_cpu, answers_s = getattr(engine, "cpu_s", 0.0), getattr(engine, "answers_s", 0.0)
    for voice in spec.voices:
        said = commands + list(spec.others)
        pcms = [read_pcm(synthesize(text, voice, RATE, cache))[0] for text in said]
        expected = [expected_of(command_set, text, spec.language) if text in commands else None for text in said]
        if isinstance(engine, DaemonEngine):  # a user who answers its questions
            yes, no = (read_pcm(synthesize(word, voice, RATE, cache))[0] for word in ANSWERS[spec.language])
            results = engine.run(pcms, User(expected, yes, no))
        else:
            results = engine.run(pcms)
        for text, pcm, wanted, (got, choice) in zip(said, pcms, expected, results):
            heard.append(Heard(text, wanted, got, len(pcm) / 2 / RATE, voice, choice, spec.language))
    if isinstance(engine, DaemonEngine):
        return heard, {"cpu_s": engine.cpu_s - daemon_cpu, "answers_s": engine.answers_s - answers_s}
    return heard, {"cpu_s": time.process_time() - started}


def report(spec: CommandSetSpec, heard: list[Heard], command_set, cost: dict, verbose: bool) -> dict:
    counts = collections.Counter(outcome(command_set, h) for h in heard)
    per_voice = collections.defaultdict(collections.Counter)
    for h in heard:
        result = outcome(command_set, h)
        per_voice[h.voice][result] += 1
        asked = result == "silent" and h.choice is not None and h.choice.unsure  # a question for chatter
        if verbose and (result in ("wrong", "rejected") or asked):
            print(f"  {result:8s} {h.voice}: {h.said!r} -> {h.text!r}")
            if isinstance(h.choice, Trace):  # the daemon's own events
                for note in h.choice.notes:
                    print(f"           {note}")
            elif h.choice is not None:
                print(f"           heard {h.choice.heard!r}: {h.choice.reason} (lead {h.choice.lead})")
                if h.choice.unsure:
                    print(f"           would ask {h.choice.unsure!r}")
    said_commands = sum(h.expected is not None for h in heard)
    wrong_commands = sum(1 for h in heard if h.expected is not None and outcome(command_set, h) == "wrong")
    speech_s = sum(h.seconds for h in heard) + cost.get("answers_s", 0.0)  # commands and answers to questions
    figures = {
        "set": spec.name,
        "tuning": spec.tuning,
        "utterances": len(heard),
        "commands": said_commands,
        "right": counts["right"],
        "accuracy": counts["right"] / max(1, said_commands),
        "wrong_commands": wrong_commands,
        "false_actions": counts["wrong"],
        "false_action_rate": counts["wrong"] / max(1, len(heard)),
        "others": len(heard) - said_commands,
        "cpu_per_audio_s": cost["cpu_s"] / max(1e-9, speech_s),
    }
    kind = "tuning" if spec.tuning else "HELD OUT"
    print(f"set {spec.name} ({kind}: {spec.description})")
    for voice, c in per_voice.items():
        commands = (
            c["right"]
            + c["rejected"]
            + sum(
                1 for h in heard if h.voice == voice and h.expected is not None and outcome(command_set, h) == "wrong"
            )
        )
        print(f"  {voice:34s} right {c['right']}/{commands}  false actions {c['wrong']}")
    print(
        f"  all: accuracy {counts['right']}/{said_commands} = {figures['accuracy']:.1%}   false actions "
        f"{counts['wrong']}/{len(heard)} = {figures['false_action_rate']:.1%} ({wrong_commands} wrong commands, "
        f"{counts['wrong'] - wrong_commands} of {figures['others']} non-commands and near misses)   "
        f"{figures['cpu_per_audio_s']:.3f} CPU s per audio s",
        flush=True,
    )
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", default="A,B,C,U", help=f"comma-separated, of {', '.join(SETS)}")
    parser.add_argument("--engine", choices=list(ENGINES), default="server")
    parser.add_argument("--recognizer", choices=["whisper", "pocketsphinx"], default="whisper")
    parser.add_argument("--margin", type=float, help="the recognizer's rejection margin (default: the daemon's)")
    parser.add_argument("--beam", type=int, help="Whisper's beam for the free transcript (default: the daemon's)")
    parser.add_argument("--whisper-model", type=Path, help="a CTranslate2 Whisper directory (default: tiny.en)")
    parser.add_argument(
        "--chunked",
        action="store_true",
        help="(direct engine) feed 30 ms frames, as the daemon does, with early finals",
    )
    parser.add_argument(
        "--end-silence", type=float, default=0.5, help="(direct engine) seconds of silence after each utterance"
    )
    parser.add_argument(
        "--no-confirm", action="store_true", help="(daemon engine) reject numbers rather than ask them back"
    )
    parser.add_argument("--sweep", action="store_true", help="(direct engine, whisper) results for a range of margins")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/voiced-bench-tts"))
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("-v", "--verbose", action="store_true", help="print every miss and false action")
    args = parser.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    DirectEngine.chunked, DirectEngine.end_silence = args.chunked, silence(args.end_silence, RATE)
    DaemonEngine.confirm = not args.no_confirm
    if args.sweep and (args.engine != "direct" or args.recognizer != "whisper"):
        parser.error("--sweep needs --engine direct --recognizer whisper")
    options = {}
    if args.margin is not None:
        options["rejection_margin" if args.recognizer == "pocketsphinx" else "margin"] = args.margin
    if args.beam is not None:
        options["beam_size"] = args.beam
    if args.whisper_model is not None:
        options["model"] = str(args.whisper_model)
    if args.chunked and args.recognizer == "whisper":
        options["early_final"] = True
    if args.sweep:  # every threshold open: each decision is replayed for a grid of them
        options.update(margin=1e9, number_margin=1e9, number_lead=0.0)
    print(f"engine={args.engine} recognizer={args.recognizer} options={options or 'defaults'}")
    engines: dict[tuple[Path, str], object] = {}
    results, swept = [], []
    for name in args.sets.split(","):
        spec = SETS[name]
        key = (spec.commands_file, spec.language)
        if key not in engines:
            engines[key] = ENGINES[args.engine](spec.commands_file, args.recognizer, options, spec.language)
        engine = engines[key]
        heard, cost = measure(spec, engine, args.cache)
        command_set = load_commands([spec.commands_file], FILE_ONLY)
        results.append(report(spec, heard, command_set, cost, args.verbose))
        swept.append((spec, heard, command_set))
    for engine in engines.values():
        stages = engine.stages()
        if stages:
            print(
                "recognition CPU by stage (s): "
                + ", ".join(f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}" for k, v in stages.items())
            )
        if isinstance(engine, DaemonEngine):
            print(
                f"daemon: peak RSS {engine.peak_rss_mb:.0f} MB; a start (left out of CPU per audio s): "
                f"{engine.start_cpu_s or 0:.2f} CPU s; sessions per utterance: "
                + ", ".join(f"{count}: {n}" for count, n in sorted(engine.sessions_per_utterance.items()))
                + "; questions answered: "
                + (", ".join(f"{answer}: {n}" for answer, n in sorted(engine.questions.items())) or "none asked")
            )
    if args.sweep:
        sweep(swept, lambda command_set, h, text: outcome(command_set, h if text is None else replace(h, text=text)))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
