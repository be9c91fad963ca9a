"""The speech that bench/bench_commands.py measures command recognition on.

Tuning data (set A, NEAR_MISSES_TUNING, NON_COMMANDS_TUNING, the TUNING_VOICES) is what any
threshold of voiced was chosen on. Everything else is held out: other sentences (B), other
voices (C), another command file written for this bench and never tuned on (U). Keep it that
way: report held-out figures apart, and never pick a setting by looking at them.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

from hassil.sample import sample_intents

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_COMMANDS = ROOT / "config" / "commands.yaml"
HOME_COMMANDS = ROOT / "bench" / "data" / "home_commands.yaml"

TUNING_VOICES = ("flite:slt", "flite:kal16", "flite:awb", "flite:rms", "espeak:en-us")
# never used to tune: flite's 8 kHz diphone voice, espeak-ng accents, variants and speeds
HELD_OUT_VOICES = (
    "flite:kal",
    "espeak:en-us+f3",
    "espeak:en-gb",
    "espeak:en-gb-scotland,s=150",
    "espeak:en-029+m3",
    "espeak:en-us-nyc+f4,s=185,p=60",
)

# everyday requests and chatter, some close to commands: no action may run
NON_COMMANDS_TUNING = (
    "what is the weather like tomorrow",
    "I think we should go to the store",
    "turn on the garden sprinkler",
    "call my mother please",
    "the cat is sleeping on the sofa",
    "how far is the moon",
    "play some jazz music",
    "open the garage door",
    "set an alarm for seven",
    "did you see the game last night",
    "remind me to buy milk",
    "switch on the television",
    "what time does the train leave",
    "my favourite colour is blue",
    "tell me a joke",
    "close the window in the kitchen",
    "turn up the heating",
    "read me the news",
    "where are my keys",
    "good morning everyone",
    "the meeting is at three",
    "I am going for a walk",
    "order a pizza",
    "lock the front door",
)
NON_COMMANDS_HELD_OUT = (
    "can you hear me",
    "the kitchen is a mess again",
    "we need more light in here",
    "I set the table for dinner",
    "what a lovely evening",
    "how many minutes until the bus comes",
    "the volume of this book is huge",
    "put the kettle on",
    "is it going to rain",
    "who won the match",
    "my timer app is broken",
    "dim the lights a little",
    "thank you very much",
    "let's watch a film",
    "the bedroom needs painting",
    "turn the page",
    "stop talking to me",
    "what's for lunch",
    "I'll be back in ten minutes",
    "open a window please",
    "the lamp in the hall is old",
    "switch the channel",
    "time flies",
    "bathroom cleaning on saturday",
)

# command-like speech outside the example's vocabulary: numbers out of range or off the step,
# rooms and devices it does not have, half commands. No action may run.
NEAR_MISSES_TUNING = (
    "set a timer for ninety minutes",
    "set a timer for zero minutes",
    "set a timer for seventy minutes",
    "turn on the lights in the attic",
    "turn on the garage light",
    "switch off the hallway lamp",
    "set the volume to fifty five",
    "set the volume to one hundred and ten",
    "set the volume to seven",
    "turn on the",
    "set a timer",
    "set the volume",
    "turn off the kitchen fan",
    "turn on the kitchen heater",
    "what time is the game",
    "set a timer for sixty one minutes",
)
NEAR_MISSES_HELD_OUT = (
    "set a timer for eighty minutes",
    "set a timer for a hundred minutes",
    "set a timer for sixty five minutes",
    "turn on the lights in the garden",
    "turn on the basement light",
    "switch off the lights in the hall",
    "set the volume to forty five",
    "set the volume to two hundred",
    "set the volume to three",
    "turn off the",
    "set a",
    "switch on the kitchen radio",
    "turn on the bedroom fan",
    "what time is the meeting",
    "set an alarm for five minutes",
    "set a reminder for ten minutes",
)
NEAR_MISSES_HOME = (
    "set the temperature to thirty degrees",
    "set the thermostat to ten",
    "open the garage window",
    "play some music in the garden",
    "set the fan to seven",
    "unlock the front door",
    "close the blinds in the attic",
    "what's the weather like tomorrow",
    "pause the video",
    "open the front door",
    "lock the garage door",
    "set the fan speed to zero",
)


# Russian (multilingual Whisper base): festival's msu_ru_nsh (Debian festvox-ru) and espeak-ng
RU_TUNING_VOICES = ("festival:msu_ru_nsh_clunits", "espeak:ru")
# festvox-ru has one speaker: held out are it changed by sox (faster and lower, slower and
# higher), and espeak-ng variants (which Whisper base mostly cannot understand: reported apart)
RU_HELD_OUT_VOICES = (
    "festival:msu_ru_nsh_clunits,tempo=1.15,pitch=-150",
    "festival:msu_ru_nsh_clunits,tempo=0.9,pitch=200",
)
RU_HELD_OUT_ESPEAK = ("espeak:ru+f3", "espeak:ru+m3,s=150")
# more tuning numbers: festival changed by sox in four ways other than the held-out two
RU_NUMBERS_TUNING_VOICES = (
    "festival:msu_ru_nsh_clunits,tempo=1.05,pitch=100",
    "festival:msu_ru_nsh_clunits,tempo=0.95,pitch=-80",
    "festival:msu_ru_nsh_clunits,tempo=1.3,pitch=-300",
    "festival:msu_ru_nsh_clunits,tempo=0.8,pitch=300",
)
RU_NON_COMMANDS_TUNING = (
    "какая завтра погода",
    "позвони маме",
    "включи телевизор",
    "открой окно на кухне",
    "расскажи анекдот",
    "где мои ключи",
    "кошка спит на диване",
    "закажи пиццу",
    "доброе утро",
    "который час в москве сейчас",
)
RU_NEAR_MISSES_TUNING = (
    "поставь таймер на девяносто минут",
    "поставь таймер на ноль минут",
    "поставь таймер на семьдесят минут",
    "включи свет в гараже",
    "выключи свет на чердаке",
    "сделай громкость пятьдесят пять",
    "поставь будильник на семь",
    "включи вентилятор на кухне",
)
# another device or a room the file lacks, in the light commands' words
RU_LIGHT_NEAR_MISSES_TUNING = (
    "включи телевизор в спальне",
    "выключи музыку на кухне",
    "включи чайник на кухне",
    "выключи свет в гараже",
    "включи свет в прихожей",
    "выключи обогреватель в ванной",
)
RU_NON_COMMANDS_HELD_OUT = (
    "ты меня слышишь",
    "на кухне опять беспорядок",
    "какой хороший вечер",
    "сколько минут до автобуса",
    "спасибо большое",
    "давай посмотрим фильм",
    "спальню нужно покрасить",
    "что на обед",
    "я вернусь через десять минут",
    "лампа в коридоре старая",
)
RU_NEAR_MISSES_HELD_OUT = (
    "поставь таймер на восемьдесят минут",
    "поставь таймер на сто минут",
    "поставь таймер на шестьдесят пять минут",
    "включи свет в саду",
    "выключи свет в подвале",
    "сделай громкость сорок пять",
    "поставь напоминание на десять минут",
    "включи радио на кухне",
)


def russian_sentences(command_set, seed: int, count: int, intents: tuple[str, ...] = ()) -> list[str]:
    """Sampled sentences of the closed set (numbers agreeing with their nouns), numbers spelled
    as said ("двадцать одну минуту")."""
    agreement = command_set.agreement("ru")
    every = [
        " ".join(
            agreement.spell(int(word), after) if word.isdigit() else word
            for word, after in zip(sentence.spoken, [*sentence.spoken[1:], ""])
        )
        for sentence in command_set.sentences("ru")
        if not intents or sentence.intent in intents
    ]
    return random.Random(seed).sample(every, min(count, len(every)))


@dataclass(frozen=True)
class CommandSetSpec:
    name: str
    description: str
    commands_file: Path
    voices: tuple[str, ...]
    seed: int = 0  # sampling of the command sentences
    per_voice: int = 0
    fixed: tuple[str, ...] = ()  # command sentences said as they are (instead of sampled ones)
    others: tuple[str, ...] = field(default=())  # non-commands and near misses: nothing may run
    tuning: bool = False
    language: str = "en"
    intents: tuple[str, ...] = ()  # Russian sets: sample these commands' sentences only

    def commands(self, command_set) -> list[str]:
        if self.fixed:
            return list(self.fixed)
        if self.language == "ru":
            return russian_sentences(command_set, self.seed, self.per_voice, self.intents)
        every = [text for _, text in sample_intents(command_set.intents("en"), language="en")]
        return random.Random(self.seed).sample(every, self.per_voice)


SETS = {
    "A": CommandSetSpec(
        "A",
        "tuning: example sentences (seed 5), tuning voices",
        EXAMPLE_COMMANDS,
        TUNING_VOICES,
        seed=5,
        per_voice=24,
        others=NON_COMMANDS_TUNING + NEAR_MISSES_TUNING,
        tuning=True,
    ),
    "numbers": CommandSetSpec(
        "numbers",
        "tuning: every timer value 1-60, tuning voices",
        EXAMPLE_COMMANDS,
        TUNING_VOICES,
        fixed=tuple(f"set a timer for {n} minutes" for n in range(1, 61)),
        tuning=True,
    ),
    "B": CommandSetSpec(
        "B",
        "held out: other example sentences (seed 11), tuning voices",
        EXAMPLE_COMMANDS,
        TUNING_VOICES,
        seed=11,
        per_voice=40,
        others=NON_COMMANDS_HELD_OUT + NEAR_MISSES_HELD_OUT,
    ),
    "C": CommandSetSpec(
        "C",
        "held out: set B's sentences, voices never used in development",
        EXAMPLE_COMMANDS,
        HELD_OUT_VOICES,
        seed=11,
        per_voice=40,
        others=NON_COMMANDS_HELD_OUT + NEAR_MISSES_HELD_OUT,
    ),
    "U": CommandSetSpec(
        "U",
        "held out: another command file, voices never used in development",
        HOME_COMMANDS,
        HELD_OUT_VOICES,
        seed=3,
        per_voice=30,
        others=NON_COMMANDS_HELD_OUT + NEAR_MISSES_HOME,
    ),
    "numbers-C": CommandSetSpec(
        "numbers-C",
        "held out: every timer value 1-60, voices never used in development",
        EXAMPLE_COMMANDS,
        HELD_OUT_VOICES,
        fixed=tuple(f"set a timer for {n} minutes" for n in range(1, 61)),
    ),
    "ru-A": CommandSetSpec(
        "ru-A",
        "tuning: Russian example sentences (seed 5), Russian tuning voices",
        EXAMPLE_COMMANDS,
        RU_TUNING_VOICES,
        seed=5,
        per_voice=24,
        others=RU_NON_COMMANDS_TUNING + RU_NEAR_MISSES_TUNING,
        tuning=True,
        language="ru",
    ),
    "ru-numbers": CommandSetSpec(
        "ru-numbers",
        "tuning: 30 Russian timer sentences (seed 7), Russian tuning voices",
        EXAMPLE_COMMANDS,
        RU_TUNING_VOICES,
        seed=7,
        per_voice=30,
        tuning=True,
        language="ru",
        intents=("SetTimer",),
    ),
    "ru-numbers-2": CommandSetSpec(
        "ru-numbers-2",
        "tuning: 60 Russian timer sentences (seed 21), festival changed by sox in four tuning ways",
        EXAMPLE_COMMANDS,
        RU_NUMBERS_TUNING_VOICES,
        seed=21,
        per_voice=60,
        tuning=True,
        language="ru",
        intents=("SetTimer",),
    ),
    "ru-volume": CommandSetSpec(
        "ru-volume",
        "tuning: every Russian volume sentence (0-100), ru-numbers-2's voices",
        EXAMPLE_COMMANDS,
        RU_NUMBERS_TUNING_VOICES,
        seed=23,
        per_voice=44,
        tuning=True,
        language="ru",
        intents=("SetVolume",),
    ),
    "ru-lights": CommandSetSpec(
        "ru-lights",
        "tuning: 40 Russian light sentences (seed 31), on and off, every Russian tuning voice",
        EXAMPLE_COMMANDS,
        RU_TUNING_VOICES + RU_NUMBERS_TUNING_VOICES,
        seed=31,
        per_voice=40,
        others=RU_LIGHT_NEAR_MISSES_TUNING,
        tuning=True,
        language="ru",
        intents=("LightOn", "LightOff"),
    ),
    "ru-B": CommandSetSpec(
        "ru-B",
        "held out: other Russian sentences (seed 11), Russian voices never tuned on",
        EXAMPLE_COMMANDS,
        RU_HELD_OUT_VOICES,
        seed=11,
        per_voice=30,
        others=RU_NON_COMMANDS_HELD_OUT + RU_NEAR_MISSES_HELD_OUT,
        language="ru",
    ),
    "ru-C": CommandSetSpec(
        "ru-C",
        "held out: set ru-B's sentences by espeak-ng variants",
        EXAMPLE_COMMANDS,
        RU_HELD_OUT_ESPEAK,
        seed=11,
        per_voice=30,
        others=RU_NON_COMMANDS_HELD_OUT + RU_NEAR_MISSES_HELD_OUT,
        language="ru",
    ),
    "ru-numbers-B": CommandSetSpec(
        "ru-numbers-B",
        "held out: 20 other Russian timer sentences (seed 13), Russian voices never tuned on",
        EXAMPLE_COMMANDS,
        RU_HELD_OUT_VOICES,
        seed=13,
        per_voice=20,
        language="ru",
        intents=("SetTimer",),
    ),
}
