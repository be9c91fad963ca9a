"""Would saying a number back ("Двадцать две минуты?") and waiting for "да" work as well as the
runner-up check? Half of it measured here: how reliably the Russian commands engine hears the
answer, "да" or "нет" (a closed set of two commands), said by the Russian voices of
bench/command_sets.py over the daemon's noise floor. The other half is bench_commands.py
--sweep with number_lead 0 (how many numbers are right when none is rejected).

    .venv/bin/python bench/bench_confirmation.py
"""

from __future__ import annotations

import collections
import sys
import tempfile
from pathlib import Path

import yaml
from command_sets import RU_HELD_OUT_ESPEAK, RU_HELD_OUT_VOICES, RU_TUNING_VOICES

from voiced.commands import load_commands
from voiced.server.config import GrammarModel, ServerSettings
from voiced.server.engine import Engine
from voiced.testing import mix, noise, read_pcm, silence, synthesize

RATE = 16000
ANSWERS = {"Yes": ["(да|верно|да верно)"], "No": ["(нет|не надо|неверно)"]}
SAID = [("да", "Yes"), ("нет", "No"), ("да, верно", "Yes"), ("нет, не надо", "No")]


def main() -> int:
    cache = Path("/tmp/voiced-bench-tts")
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as directory:
        answers = Path(directory) / "answers.yaml"
        commands = {name: {"sentences": {"ru": templates}} for name, templates in ANSWERS.items()}
        answers.write_text(yaml.safe_dump({"commands": commands}, allow_unicode=True), encoding="utf-8")
        command_set = load_commands([answers])
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
                heard = recognizer.end().text
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
