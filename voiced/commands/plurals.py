"""Nouns counted by a number agree with it: "одну минуту", "две минуты", "пять минут".

A command file names, per language, the forms a counted noun takes (`counted_nouns`), in the
order of the language's CLDR plural categories (Russian: one, few, many; English: one,
other), and the gender and case the number is spoken in ("feminine-accusative": 1 is
"одну", 2 "две"). From that, for every number: which form follows it (CLDR's plural rules)
and how the number is spelled (CLDR's spell-out rules, unicode-rbnf). Nothing is listed per
number. Templates keep every form (`<minute>` = "(минуту|минуты|минут)"): the matcher forgives
a wrong ending, while the closed set of sentences the recognizer chooses from holds only the
sentence that agrees. Pure.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

from voiced.commands.expansion import Expansion
from voiced.textnorm import base_language, fold, spell_number


def plural_category(number: int, language: str) -> str:
    """The CLDR plural category of a whole number (cardinal): one / few / many / other."""
    language = base_language(language)
    if language in ("ru", "uk", "be"):
        if number % 10 == 1 and number % 100 != 11:
            return "one"
        if 2 <= number % 10 <= 4 and not 12 <= number % 100 <= 14:
            return "few"
        return "many"
    return "one" if number == 1 else "other"


CATEGORIES = {"ru": ("one", "few", "many"), "uk": ("one", "few", "many"), "be": ("one", "few", "many")}
DEFAULT_CATEGORIES = ("one", "other")


@dataclass(frozen=True)
class CountedNoun:
    forms: tuple[str, ...]  # in the order of the language's plural categories
    number: str = ""  # gender and case of the number before it, as CLDR names them ("feminine-accusative")


class Agreement:
    """The counted nouns of one language: which sentences agree, and how numbers are spelled."""

    def __init__(self, nouns: Sequence[CountedNoun], language: str):
        self.language = base_language(language)
        categories = CATEGORIES.get(self.language, DEFAULT_CATEGORIES)
        self._nouns = {}
        for noun in nouns:
            forms = tuple(fold(form) for form in noun.forms)
            if len(forms) != len(categories):
                raise ValueError(
                    f"counted noun {list(noun.forms)}: give {len(categories)} forms ({', '.join(categories)})"
                )
            for form in forms:
                self._nouns[form] = (dict(zip(categories, forms)), noun.number)

    def __bool__(self) -> bool:
        return bool(self._nouns)

    def agrees(self, sentence: Expansion) -> bool:
        """Whether every counted noun after a number slot has the form the number needs."""
        words = sentence.words
        for slot in sentence.slots:
            if isinstance(slot.value, int) and slot.end < len(words) and words[slot.end] in self._nouns:
                forms, _ = self._nouns[words[slot.end]]
                if forms[plural_category(slot.value, self.language)] != words[slot.end]:
                    return False
        return True

    def disagreeing(self, words: Sequence[str]) -> set[str]:
        """The numbers (in digits) of a transcript's words followed by a counted noun in a form
        they do not take ("9 минуты"): one of the two was heard wrong."""
        found = set()
        for number, word in itertools.pairwise(words):
            noun = self._nouns.get(folded := fold(word))
            if number.isdigit() and noun and noun[0][plural_category(int(number), self.language)] != folded:
                found.add(number)
        return found

    def spell(self, number: int, next_word: str) -> str:
        """`number` in words, in the gender and case the noun after it wants ("одну")."""
        found = self._nouns.get(fold(next_word))
        ruleset = f"spellout-cardinal-{found[1]}" if found and found[1] else None
        return spell_number(number, self.language, ruleset)
