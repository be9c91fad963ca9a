"""Command accuracy and false-action rate of the local engine with the command grammar.

Commands are sampled from config/commands.yaml (hassil templates), non-command sentences
are a fixed list of everyday requests and chatter (some close to commands); everything is
synthesized with several voices. A command counts as right when the transcript matches the
same intent with the same slots; a non-command counts as a false action when it matches any
command. Goals: accuracy >= 97 %, false actions <= 2 %.

    .venv/bin/python bench/bench_commands.py                  # through `voiced serve` (engineer A's server)
    .venv/bin/python bench/bench_commands.py --engine direct  # pocketsphinx in-process, same grammar
"""

from __future__ import annotations

import argparse
import random
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from conftest import read_pcm, synthesize  # noqa: E402
from hassil.sample import sample_intents  # noqa: E402

from voiced.commands import load_commands  # noqa: E402
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


class DirectEngine:
    """pocketsphinx with the grammar and a dictionary cut to its words (as the server does)."""

    def __init__(self, jsgf: str, workdir: Path):
        import pocketsphinx

        model = Path(pocketsphinx.__file__).parent / "model" / "en-us"
        body = " ".join(line.split("=", 1)[1] for line in jsgf.splitlines() if " = " in line)
        words = set(re.findall(r"[a-z']+", re.sub(r"<[^>]*>|/[^/]*/", " ", body)))
        lines = [line for line in open(model / "cmudict-en-us.dict", encoding="utf-8")
                 if line.split()[0].split("(")[0] in words]
        (workdir / "g.dict").write_text("".join(lines))
        (workdir / "g.jsgf").write_text(jsgf)
        config = pocketsphinx.Config(hmm=str(model / "en-us"), dict=str(workdir / "g.dict"),
                                     jsgf=str(workdir / "g.jsgf"), bestpath=False, loglevel="FATAL")
        self.decoder = pocketsphinx.Decoder(config)

    def transcribe(self, pcm: bytes, rate: int) -> str:
        self.decoder.start_utt()
        self.decoder.process_raw(pcm, full_utt=True)
        self.decoder.end_utt()
        hyp = self.decoder.hyp()
        return hyp.hypstr if hyp else ""


class ServerEngine:
    """The local server (`voiced serve`) with the grammar registered as model "commands"."""

    def __init__(self, jsgf: str, workdir: Path):
        import grpc

        from voiced.proto.yandex.cloud.ai.stt.v2 import stt_service_pb2 as pb
        from voiced.proto.yandex.cloud.ai.stt.v2 import stt_service_pb2_grpc as pb_grpc
        from voiced.server.app import start_server
        from voiced.server.config import GrammarModel, ServerSettings

        settings = ServerSettings(models={"commands": GrammarModel(jsgf=jsgf, language="en-US")})
        self.server = start_server(settings)
        self.pb = pb
        self.stub = pb_grpc.SttServiceStub(grpc.insecure_channel(self.server.target))

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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engine", choices=["server", "direct"], default="server")
    parser.add_argument("--commands", type=int, default=24, help="command sentences sampled per voice")
    parser.add_argument("--voices", default=",".join(VOICES))
    parser.add_argument("--no-rejection", action="store_true", help="grammar without the garbage loop")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/voiced-bench-tts"))
    parser.add_argument("-v", "--verbose", action="store_true", help="print every error")
    args = parser.parse_args()

    command_set = load_commands([ROOT / "config" / "commands.yaml"])
    jsgf = to_jsgf(command_set, "en", garbage_weight=None if args.no_rejection else 1.0)
    args.cache.mkdir(parents=True, exist_ok=True)
    engine = (ServerEngine if args.engine == "server" else DirectEngine)(jsgf, args.cache)
    sentences = random.Random(5).sample(list(sample_intents(command_set.intents("en"), language="en")),
                                        args.commands)
    print(f"engine={args.engine} rejection={'off' if args.no_rejection else 'garbage loop'}")
    total_right = total_cmd = total_false = total_non = 0
    for voice in args.voices.split(","):
        right = false = 0
        for _, text in sentences:
            expected = command_set.match(text, "en")
            heard = engine.transcribe(*read_pcm(synthesize(text, voice, 16000, args.cache)))
            got = command_set.match(heard, "en")
            ok = got is not None and (got.intent, got.slots) == (expected.intent, expected.slots)
            right += ok
            if not ok and args.verbose:
                print(f"  miss  {voice}: {text!r} -> {heard!r}")
        for text in NON_COMMANDS:
            heard = engine.transcribe(*read_pcm(synthesize(text, voice, 16000, args.cache)))
            got = command_set.match(heard, "en")
            false += got is not None
            if got is not None and args.verbose:
                print(f"  false {voice}: {text!r} -> {heard!r} ({got.intent})")
        print(f"{voice:14s} command accuracy {right}/{len(sentences)} = {right / len(sentences):6.1%}   "
              f"false actions {false}/{len(NON_COMMANDS)} = {false / len(NON_COMMANDS):5.1%}")
        total_right += right; total_cmd += len(sentences); total_false += false; total_non += len(NON_COMMANDS)
    print(f"{'all':14s} command accuracy {total_right}/{total_cmd} = {total_right / total_cmd:6.1%}   "
          f"false actions {total_false}/{total_non} = {total_false / total_non:5.1%}   "
          f"(goals >= 97 %, <= 2 %)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
