"""Every sentence the commands accept, spelled out, with the words each slot value covers.

A command file's templates describe a finite set of sentences (list values, number ranges,
optional words, alternatives). Spelled out, that set is what the closed-set recognizer picks
from, what the fuzzy matcher compares a transcript with (slot words must be heard exactly),
and what `check-config` tests each template against (a sentence that can never match, or is
shadowed by an earlier command). Pure: hassil's parse tree in, sentences out.

Words are spelled as they are spoken and written (lower case, apostrophes kept: "what's");
numbers of range slots are digits, the form both the cloud and the matcher use.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from hassil.expression import Alternative, Expression, ListReference, Permutation, RuleReference, Sequence, TextChunk
from hassil.intents import Intents, RangeSlotList, TextSlotList, WildcardSlotList

from voiced.textnorm import normalize, spoken_words

# Past this many sentences per language the set is not spelled out: matching still works
# (hassil), but the closed-set recognizer and the template checks need the whole set.
DEFAULT_LIMIT = 50_000


class TooManySentences(ValueError):
    """The templates of a language spell out more sentences than the limit."""


class OpenTemplate(ValueError):
    """A template takes free text (a wildcard list): its sentences cannot be listed."""


@dataclass(frozen=True)
class SlotWords:
    name: str
    value: Any
    start: int  # index of the slot's first word in the sentence
    end: int  # one past its last word


@dataclass(frozen=True)
class Expansion:
    """One sentence a command accepts."""

    intent: str
    template: int  # index of the template among the intent's templates (in file order)
    spoken: tuple[str, ...]  # as said: "what's", "15"
    slots: tuple[SlotWords, ...] = ()

    @property
    def words(self) -> tuple[str, ...]:
        """Normalized as transcripts are ("whats")."""
        return tuple(normalize(word, "") for word in self.spoken)

    @property
    def text(self) -> str:
        return " ".join(self.words)

    def slot_word_indices(self) -> frozenset[int]:
        return frozenset(i for slot in self.slots for i in range(slot.start, slot.end))


# A piece of a sentence while it is spelled out: its words and the slots inside them.
_Piece = tuple[tuple[str, ...], tuple[SlotWords, ...]]
_EMPTY: _Piece = ((), ())


def _join(pieces: tuple[_Piece, ...]) -> _Piece:
    words: list[str] = []
    slots: list[SlotWords] = []
    for piece_words, piece_slots in pieces:
        offset = len(words)
        words.extend(piece_words)
        slots.extend(SlotWords(s.name, s.value, s.start + offset, s.end + offset) for s in piece_slots)
    return tuple(words), tuple(slots)


class _Speller:
    def __init__(self, intents: Intents, limit: int):
        self.intents = intents
        self.limit = limit
        self._depth = 0

    def pieces(self, expression: Expression) -> list[_Piece]:
        if isinstance(expression, TextChunk):
            return [(tuple(spoken_words(expression.text)), ())]
        if isinstance(expression, Alternative):
            found = [piece for item in expression.items for piece in self.pieces(item)]
            return list(dict.fromkeys([*found, _EMPTY] if expression.is_optional else found))
        if isinstance(expression, Permutation):
            orders = []
            for first, rest in expression.iterate_permutations():
                orders += self._product([first, rest] if rest.items else [first])
            return list(dict.fromkeys(orders))
        if isinstance(expression, Sequence):
            return self._product(expression.items)
        if isinstance(expression, RuleReference):
            return self._rule(expression.rule_name)
        if isinstance(expression, ListReference):
            return self._slot(expression)
        raise TypeError(f"unsupported template element {expression!r}")

    def _product(self, items: list[Expression]) -> list[_Piece]:
        choices = [self.pieces(item) for item in items]
        count = 1
        for options in choices:
            count *= len(options)
            if count > self.limit:
                raise TooManySentences(f"more than {self.limit} sentences")
        return list(dict.fromkeys(_join(combination) for combination in itertools.product(*choices)))

    def _rule(self, name: str) -> list[_Piece]:
        if name not in self.intents.expansion_rules or self._depth > 24:
            raise ValueError(f"rule <{name}> is not defined (or refers to itself)")
        self._depth += 1
        try:
            return self.pieces(self.intents.expansion_rules[name].expression)
        finally:
            self._depth -= 1

    def _slot(self, reference: ListReference) -> list[_Piece]:
        slot_list = self.intents.slot_lists.get(reference.list_name)
        inline = reference.get_inline_range()
        if slot_list is None and inline is not None:
            slot_list = RangeSlotList(name=reference.list_name, start=inline[0], stop=inline[1], step=inline[2])
        name = reference.slot_name
        if isinstance(slot_list, RangeSlotList):
            numbers = range(slot_list.start, slot_list.stop + 1, slot_list.step)
            return [((str(n),), (SlotWords(name, n, 0, 1),)) for n in numbers]
        if isinstance(slot_list, TextSlotList):
            pieces = []
            for value in slot_list.values:
                for words, _ in self.pieces(value.text_in):
                    pieces.append((words, (SlotWords(name, value.value_out, 0, len(words)),)))
            return list(dict.fromkeys(pieces))
        if isinstance(slot_list, WildcardSlotList):
            raise OpenTemplate(f"list {{{reference.list_name}}} is a wildcard (free text)")
        raise ValueError(f"list {{{reference.list_name}}} is not defined")


def expand_template(intents: Intents, intent: str, template: int, limit: int = DEFAULT_LIMIT) -> list[Expansion]:
    """The sentences of one template (raises TooManySentences, OpenTemplate, ValueError)."""
    sentence = [s for data in intents.intents[intent].data for s in data.sentences][template]
    speller = _Speller(intents, limit)
    return [Expansion(intent, template, words, slots) for words, slots in speller.pieces(sentence.expression) if words]


def expand(intents: Intents, limit: int = DEFAULT_LIMIT) -> Iterator[Expansion]:
    """Every sentence of every closed template, in file order; raises TooManySentences past
    `limit` in all. Templates with free text (wildcards) are left out: they are not a list."""
    total = 0
    for intent in intents.intents.values():
        count = sum(len(data.sentences) for data in intent.data)
        for template in range(count):
            try:
                found = expand_template(intents, intent.name, template, limit - total)
            except OpenTemplate:
                continue
            total += len(found)
            yield from found
