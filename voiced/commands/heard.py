"""What a free transcript heard: its first sentence, its numbers as Whisper may have meant
them, and whether it heard a command sentence's slot values at all. Pure."""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

import rapidfuzz

from voiced.commands.expansion import Expansion
from voiced.textnorm import normalize, words_to_digits


def first_sentence(text: str) -> str:
    """Whisper repeats itself in short windows ("Stop. Stop. Stop.", "Tell me a joke Tell me a
    joke Tell me", "Включи свет. Включи св"): a transcript that is one phrase over and over
    counts as the phrase once.
    Anything else is kept whole ("Stop. Talking to me." is not "Stop.")."""
    words = text.split()
    folded = [normalize(word, "") for word in words]
    for period in range(1, len(words) // 2 + 1):
        # the last repetition may be cut short, even inside a word ("Выключи свет. Выключи св")
        if all(word == folded[i % period] for i, word in enumerate(folded[:-1])) and folded[
            (len(folded) - 1) % period
        ].startswith(folded[-1]):
            return " ".join(words[:period]).rstrip(",;")
    return text.strip()


def numbers(text: str, language: str) -> set[str]:
    return set(re.findall(r"\d+", words_to_digits(normalize(text, language), language)))


@dataclass(frozen=True)
class HeardNumbers:
    """The numbers of a transcript, as Whisper may have meant them."""

    found: set[str]  # written, and what a pair of them in a row or a hundred and some may be
    halves: set[str]  # written next to another number: each alone is only part of what was said
    words: list[str]  # the transcript's words, numbers in digits


def heard_numbers(text: str, language: str) -> HeardNumbers:
    """After tens, Whisper writes the units as a number that sounds like them ("сорок восемь"
    as "40 80", "пятьдесят две" as "50 20", "двадцать девять" as "20 19"): the pair may be the
    number. A hundred and some may be just the some: the word before ended like "сто"
    ("громкость двадцать" as "громко 120")."""
    words = words_to_digits(normalize(text, language), language).split()
    found = {word for word in words if word.isdigit()}
    found |= {str(int(word) - 100) for word in found if 100 < int(word) < 200}
    halves = set()
    for tens, after in itertools.pairwise(words):
        if not (tens.isdigit() and after.isdigit()):
            continue
        halves |= {tens, after}
        if not (len(tens) == 2 and tens[1] == "0" and tens[0] >= "2"):
            continue
        value = int(after)
        unit = value // 10 if value % 10 == 0 and 10 <= value <= 90 else value - 10 if 11 <= value <= 19 else None
        if unit:
            found.add(str(int(tens) + unit))
    return HeardNumbers(found, halves, words)


def unheard_values(sentence: Expansion, heard: str, language: str, similarity: float) -> list[str]:
    """The words of the sentence's list slot values (a room, not a number) that nothing the
    transcript wrote is near in spelling (`similarity`, 0..1): "включи свет в прихожей", a
    room the file lacks, is near "включи свет в кухне" in spelling and in score, but
    "прихожей" is not near "кухне" (ru-lights, tuning, through the daemon: 6 of its 36 near
    misses ran so)."""
    words = normalize(heard, language).split()
    written = words + ["".join(pair) for pair in itertools.pairwise(words)]
    return [
        word
        for slot in sentence.slots
        if not isinstance(slot.value, int)
        for word in sentence.words[slot.start : slot.end]
        if not any(_near(word, other, similarity) for other in written)
    ]


def _near(value: str, word: str, similarity: float) -> bool:
    """Whether a word written may be the value: alike in spelling, the best-aligned part of the
    longer against the shorter, as Whisper base runs words together ("погаси свет вензали",
    "включи сверхнокухню") and writes endings as it hears them ("на враны" for "на ванной").
    A word much shorter than the value is no part of it ("на" is in "ванной")."""
    return len(word) >= len(value) - 1 and rapidfuzz.fuzz.partial_ratio(value, word) >= similarity * 100
