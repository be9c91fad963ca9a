"""How reliably the Russian commands engine hears the answer to a number asked back
("Поставь таймер на двадцать две минуты?"): "да" or "нет" (voiced's answers,
voiced/commands/answers.py, alone as a closed set), said by the Russian voices of
bench/command_sets.py over the daemon's noise floor. The whole dialogue, the answers among
the commands, is measured by bench_commands.py --engine daemon.

    .venv/bin/python bench/bench_confirmation.py
"""

from __future__ import annotations

import collections
import sys
from pathlib import Path

from command_sets import RU_HELD_OUT_ESPEAK, RU_HELD_OUT_VOICES, RU_TUNING_VOICES

from voiced.commands import CommandsSettings
from voiced.commands.answers import NO, YES, answer_commands
from voiced.commands.matching import CommandSet
from voiced.server.config import GrammarModel, ServerSettings
from voiced.server.engine import Engine
from voiced.testing import mix, noise, read_pcm, silence, synthesize

RATE = 16000
SAID = [("да", YES), ("нет", NO), ("да, верно", YES), ("нет, не надо", NO)]


def main() -> int:
    cache = Path("/tmp/voiced-bench-tts")
    cache.mkdir(parents=True, exist_ok=True)
    answers = answer_commands(["ru"])
    assert answers is not None
    command_set = CommandSet([answers], CommandsSettings())
    grammar = GrammarModel(language="ru-RU", jsgf="#JSGF V1.0;", engine="whisper")
    engine = Engine(ServerSettings(models={"answers": grammar}), {"answers": command_set})
    counts: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for voice in RU_TUNING_VOICES + RU_HELD_OUT_VOICES + RU_HELD_OUT_ESPEAK:
        for text, wanted in SAID:
            pcm = silence(0.5, RATE) + read_pcm(synthesize(text, voice, RATE, cache))[0] + silence(0.7, RATE)
            pcm = mix(pcm, noise(len(pcm) / 2 / RATE + 0.1, RATE, "brownnoise", 0.005))
            recognizer = engine.lend("ru-RU", "answers")
            try:
                recognizer.start()
                recognizer.process(pcm)
                final = recognizer.end()
                heard = final.text or final.unsure  # an answer guessed from a garble is unsure
            finally:
                engine.give_back("ru-RU", "answers", recognizer)
            match = command_set.match(heard, "ru")
            got = match.intent if match is not None and not match.is_fallback else None
            counts[voice.split(":")[0]]["right" if got == wanted else "nothing" if got is None else "the other"] += 1
            print(f"  {voice:50s} {text!r:16s} -> {heard!r:22s} {got}")
    for engine_name, counted in counts.items():
        print(f"{engine_name}: {dict(counted)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
