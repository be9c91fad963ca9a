"""The audio bench/bench_wake.py measures the wake word on, synthesized here and repeatable.

Two sets, never mixed: thresholds are chosen on TUNING only, HELD_OUT is reported apart
(other voices, other commands, other texts).
- Wake tracks: the wake phrase by each voice, alone and followed by a command after a short
  pause (a comma's worth, as "alexa, turn on the light" is said), over noise, 2.5 s apart,
  with where the phrase and the command really are.
- Negative tracks: hours of speech that never says a wake name: sentences of the licence
  texts Debian ships (/usr/share/common-licenses) and everyday chatter, by rotating voices
  with random pauses (seeded), half of it made TV-like with sox (band-limited, reverberant,
  compressed, over a hum), all over a noise floor.
"""

from __future__ import annotations

import random
import re
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from command_sets import NON_COMMANDS_HELD_OUT, NON_COMMANDS_TUNING

from voiced.testing import noise, read_pcm, synthesize, trimmed

ROOT = Path(__file__).resolve().parent.parent

RATE = 16000
LICENCES = Path("/usr/share/common-licenses")
WAKE_PHRASES = {
    "alexa": "alexa",
    "hey_jarvis": "hey jarvis",
    "hey_mycroft": "hey mycroft",
    "okay_nabu": "okay nabu",
    "hey_rhasspy": "hey rhasspy",
}
NAMES = re.compile(r"alexa|jarvis|mycroft|nabu|rhasspy", re.IGNORECASE)


@dataclass(frozen=True)
class SpeechSet:
    name: str
    voices: tuple[str, ...]
    commands: tuple[str, ...]
    licences: tuple[str, ...]
    chatter: tuple[str, ...]
    seed: int


TUNING = SpeechSet(
    "tuning",
    (
        "flite:slt",
        "flite:kal16",
        "espeak:en-us+f3",
        "espeak:en-us+m3,p=30",
        "espeak:en-us,s=190",
        "flite:slt,tempo=1.15",
    ),
    ("turn on the kitchen light", "what time is it", "set a timer for five minutes"),
    ("GPL-3", "Apache-2.0", "Artistic", "BSD"),
    NON_COMMANDS_TUNING,
    seed=16,
)
HELD_OUT = SpeechSet(
    "held_out",
    (
        "flite:awb",
        "flite:rms",
        "espeak:en-gb,s=140",
        "espeak:en-us+f4,p=60",
        "espeak:en-gb-scotland+m7,s=160",
        "flite:rms,pitch=-150",
    ),
    ("open the garage door", "play some music in the living room", "turn off the bedroom lights"),
    ("GFDL-1.3", "MPL-2.0", "LGPL-2.1", "CC0-1.0"),
    NON_COMMANDS_HELD_OUT,
    seed=61,
)
SETS = {s.name: s for s in (TUNING, HELD_OUT)}
PAUSES_S = (0.15, 0.35)  # between the wake phrase and the command
BEDS = (("pinknoise", 0.008), ("brownnoise", 0.02), ("whitenoise", 0.003))


@dataclass(frozen=True)
class WakeItem:
    voice: str
    command: str | None
    start_s: float  # where the wake phrase starts in the track
    end_s: float  # where it ends
    command_s: float | None  # where the command starts


def samples(text: str, voice: str, workdir: Path) -> np.ndarray:
    return np.frombuffer(read_pcm(synthesize(text, voice, RATE, workdir))[0], np.int16)


def trimmed_samples(text: str, voice: str, workdir: Path) -> np.ndarray:
    """The speech without the TTS's own leading and trailing silence."""
    return np.frombuffer(trimmed(read_pcm(synthesize(text, voice, RATE, workdir))[0], RATE), np.int16)


def over_noise(track: np.ndarray, kind: str, volume: float) -> np.ndarray:
    bed = np.frombuffer(noise(len(track) / RATE + 1, RATE, kind, volume), np.int16)
    return np.clip(track.astype(np.int32) + np.resize(bed, track.shape), -32768, 32767).astype(np.int16)


def wake_track(model: str, speech_set: SpeechSet, workdir: Path) -> tuple[bytes, list[WakeItem]]:
    """Each voice says the wake phrase alone, then before each command after each pause."""
    gap = np.zeros(int(2.5 * RATE), np.int16)
    pieces, items, position = [gap], [], len(gap) / RATE
    phrase = WAKE_PHRASES[model]
    for index, voice in enumerate(speech_set.voices):
        wake = trimmed_samples(phrase, voice, workdir)
        variants = [(None, 0.0)] + [(command, pause) for command in speech_set.commands for pause in PAUSES_S]
        for number, (command, pause) in enumerate(variants):
            parts = [wake]
            end = position + len(wake) / RATE
            command_s = None
            if command is not None:
                parts += [np.zeros(int(pause * RATE), np.int16), trimmed_samples(command, voice, workdir)]
                command_s = end + pause
            item = np.concatenate(parts)
            kind, volume = BEDS[(index + number) % len(BEDS)]
            pieces += [over_noise(np.concatenate([item, gap]), kind, volume)]
            items.append(
                WakeItem(
                    voice,
                    command,
                    round(position, 3),
                    round(end, 3),
                    None if command_s is None else round(command_s, 3),
                )
            )
            position += (len(item) + len(gap)) / RATE
    return np.concatenate(pieces).tobytes(), items


def sentences(speech_set: SpeechSet) -> list[str]:
    """Licence sentences of 4-30 words and the chatter, none saying a wake name."""
    found = []
    for name in speech_set.licences:
        text = re.sub(r"\s+", " ", (LICENCES / name).read_text(encoding="utf-8", errors="replace"))
        for sentence in re.split(r"(?<=[.;:!?])\s+", text):
            words = re.sub(r"[^A-Za-z0-9,' -]", " ", sentence).split()
            for start in range(0, len(words), 30):
                chunk = words[start : start + 30]
                if len(chunk) >= 4:
                    found.append(" ".join(chunk))
    found += list(speech_set.chatter)
    return [s for s in found if not NAMES.search(s)]


def tv_like(pcm: np.ndarray) -> np.ndarray:
    """Speech as a TV plays it: band-limited, compressed, in a reverberant room."""
    effects = [
        "sinc",
        "120-7000",
        "compand",
        "0.02,0.2",
        "-60,-60,-30,-15,0,-8",
        "-3",
        "reverb",
        "35",
        "gain",
        "-n",
        "-6",
    ]
    raw = ["-t", "raw", "-r", str(RATE), "-c", "1", "-b", "16", "-e", "signed-integer"]
    out = subprocess.run(
        ["sox", "-R", *raw, "-", *raw, "-", *effects], input=pcm.tobytes(), check=True, capture_output=True
    ).stdout
    return np.frombuffer(out, np.int16)[: len(pcm)]


def negative_track(speech_set: SpeechSet, hours: float, workdir: Path) -> bytes:
    """`hours` of speech never saying a wake name: conversation, then TV-like, over noise."""
    rng = random.Random(speech_set.seed)
    pool = sentences(speech_set)
    rng.shuffle(pool)
    pieces, total, index = [], 0, 0
    with ThreadPoolExecutor(2) as executor:
        while total < hours * 3600 * RATE:
            # each pass over the texts with other voices: a sentence is never said alike twice
            jobs = [
                (pool[i % len(pool)], speech_set.voices[(i + i // len(pool)) % len(speech_set.voices)])
                for i in range(index, index + 64)
            ]
            index += len(jobs)
            for clip in executor.map(lambda job: samples(*job, workdir), jobs):
                pause = np.zeros(int(rng.uniform(0.3, 1.2) * RATE), np.int16)
                pieces += [clip, pause]
                total += len(clip) + len(pause)
    speech = np.concatenate(pieces)[: int(hours * 3600 * RATE)]
    half = len(speech) // 2
    track = np.concatenate([speech[:half], tv_like(speech[half:])])
    return over_noise(track, "pinknoise", 0.008).tobytes()
