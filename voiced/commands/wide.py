"""The wide search: when what Whisper heard is near no command in spelling, or its nearest is
too far below it, the command may still be in the audio. A voice the model hears badly
(espeak-ng's Russian: "лучеснет спину" for "включи свет в спальне") gets a transcript that
shares few letters with the command, yet scored against the audio the command fits about as
well as the garble. So one sentence of every kind of command is scored, and the best, within
the usual margin, is asked back ("Включить свет в спальне?"), never run unasked: only the
spelling-near candidates of voiced.commands.closedset may run as heard.

A kind is the sentences of one intent that start with the same word and have the same slot
values but their numbers ("включи свет в кухне" / "включи свет на кухне" / "включи свет кухне";
"поставь таймер на N минут(у/ы)"). Its number is the one the recognizer finds likeliest at its
place (among those the kind has), found before the kind is scored.

Pure: the edge (voiced.server.whisper_commands) decodes `numbered` for the numbers, then `texts`,
and lets `choose` decide. Measured on the Russian tuning set ru-A (espeak-ng `ru`, direct
engine, 2026-12-02): scoring every light sentence, the best was the light said for 10 of 11;
chatter scored 2.3 nats and more below what was heard, but near misses (a room the file lacks)
came within the margin: hence only ever asked. A number found this way is mostly wrong for
such a voice (1 of 6 timers): it is asked only when it leads clearly.

An answer ("да", "нет, не надо") found wide is not asked either but passed on as unsure, for
the daemon to take as the answer while a question is open (voiced.listen.dispatch): the one
word the model hears worst ("да" as "та") is the one a question waits for. A guessed answer
is never a final's text: a `voiced serve` client, asked nothing by voiced, gets no "да".
On ru-A through the daemon, espeak-ng `ru` went from 5 to 11 of 24 commands right
with it (5 without it: the right light was asked, and "да" not heard), festival's 23 of 24 and
no false action either way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from voiced.commands.answers import ANSWER_INTENTS, ANSWER_TEMPLATES
from voiced.commands.closedset import Choice, ClosedSet, Score
from voiced.commands.expansion import Expansion


@dataclass(frozen=True)
class Kind:
    """One kind of command: its sentences; the first one stands for the kind."""

    sentences: tuple[Expansion, ...]
    numbers: tuple[int, ...]  # the values of its first number, in its sentences (none: no number)

    def with_number(self, value: int) -> Expansion:
        """The kind's sentence with this number (its noun agreeing: "1 минуту", "5 минут"):
        the one shaped like the first sentence if there is one."""
        having = [sentence for sentence in self.sentences if _first_number(sentence) == value]
        shape = _shape(self.sentences[0])
        return next((sentence for sentence in having if _shape(sentence) == shape), having[0])


@dataclass(frozen=True)
class Found:
    """A kind's sentence to be scored, and the lead of its number (None: no number)."""

    sentence: Expansion
    lead: float | None = None


def _first_number(sentence: Expansion) -> int | None:
    return next((int(word) for word in sentence.spoken if word.isdigit()), None)


def _shape(sentence: Expansion) -> tuple[str, ...]:
    """The words with numbers as N."""
    return tuple("N" if word.isdigit() else word for word in sentence.words)


def can_search_wide(closed_set: ClosedSet) -> bool:
    """Whether a choice found wide can be asked: the language has answers to a question."""
    return closed_set.language in ANSWER_TEMPLATES


class WideSearch:
    """Every kind of command of a closed set, voiced's answers included, to be scored when
    nothing near was."""

    def __init__(self, closed_set: ClosedSet):
        self._closed_set = closed_set
        groups: dict[tuple, list[Expansion]] = {}
        for sentence in closed_set.sentences:
            slots = tuple((slot.name, slot.value) for slot in sentence.slots if not isinstance(slot.value, int))
            groups.setdefault((sentence.intent, sentence.words[:1], slots), []).append(sentence)
        self.kinds = [
            Kind(tuple(sentences), tuple(sorted({n for s in sentences if (n := _first_number(s)) is not None})))
            for sentences in groups.values()
        ]
        # for each kind with a number: its text as the recognizer writes it, and the values its
        # number may take; the recognizer finds the likeliest of them at the first number
        self.numbered = [
            (closed_set.written(kind.sentences[0].text), kind.numbers) for kind in self.kinds if kind.numbers
        ]

    def sentences(self, numbers: Sequence[tuple[int, float | None] | None]) -> list[Found]:
        """One sentence per kind: with the likeliest number found and its lead over the
        recognizer's runner-up (`numbers`, in the order of `numbered`; None: none found, and the
        kind is not scored)."""
        found = iter(numbers)
        chosen = []
        for kind in self.kinds:
            if not kind.numbers:
                chosen.append(Found(kind.sentences[0]))
            elif (number := next(found)) is not None and number[0] in kind.numbers:
                chosen.append(Found(kind.with_number(number[0]), number[1]))
        return chosen

    def texts(self, found: Sequence[Found]) -> list[str]:
        """The sentences as the recognizer writes them, to be scored."""
        return [self._closed_set.written(one.sentence.text) for one in found]

    def choose(
        self,
        rejected: Choice,
        heard_score: Score,
        found: Sequence[Found],
        scores: Sequence[Score],
        margin: float,
        number_lead: float,
    ) -> Choice:
        """The best-scoring sentence within `margin` of what was heard, to be asked back (one
        with a number only if that number led the runner-up by `number_lead`: a voice heard
        this badly has its numbers mostly wrong, and a question with a number not said is one
        more to say no to); else the choice rejected as it was."""
        per_token = self._closed_set.per_token
        if not found:
            return rejected
        best, score = max(zip(found, scores), key=lambda pair: pair[1].value(per_token))
        sentence = best.sentence
        gap = heard_score.value(per_token) - score.value(per_token)
        written = self._closed_set.written(sentence.text)
        if gap > margin:
            return rejected
        if best.lead is not None and best.lead < number_lead:
            return replace(
                rejected,
                reason=f"{rejected.reason}; of every kind, {written!r} fits {gap:.2f} below what was heard, "
                f"its number leading the next likeliest by {best.lead:.2f} only (at least {number_lead:g}): not asked",
            )
        spoken = " ".join(sentence.spoken)
        found_wide = Choice("", False, "", score.per_token, written, spoken, gap, rejected.heard)
        if sentence.intent in ANSWER_INTENTS:
            # a guess, never a final's text: the daemon takes it only while it has a question
            # open; a `voiced serve` client (asked nothing by voiced) gets no "да" it did not hear
            return replace(
                found_wide,
                reason=f"no near command; of every kind, the answer {written!r} fits {gap:.2f} below what was heard "
                f"(margin {margin:g}): an answer only to a question",
                unsure=spoken,
            )
        return replace(
            found_wide,
            reason=f"no near command; of every kind, {written!r} fits {gap:.2f} below what was heard "
            f"(margin {margin:g}): to ask",
            changes_number=_first_number(sentence) is not None,
            lead=best.lead,
            unsure=self._closed_set.spelled(sentence.spoken),
        )
