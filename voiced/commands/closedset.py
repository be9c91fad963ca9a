"""Closed-set recognition of commands: pick the command sentence the audio says, or none.

An open-vocabulary recognizer (Whisper) writes what it heard freely. Commands are a finite
set of sentences (voiced.commands.expansion), so its transcript is checked against them:

1. The transcript is a command as it stands (the matcher says so): take it as heard.
2. Otherwise the few sentences nearest to it in spelling, their numbers in digits or in words,
   are candidates (and the sentence a second recognizer heard, if it is as near); none near:
   no command.
3. Each candidate, written as the recognizer writes ("Set a timer for 15 minutes."), and the
   free transcript are scored by the recognizer on the same audio: the log-probability of the
   whole text, its end included (compared per token: of its tokens, without the end). The
   best candidate is taken when it scores within `margin` of the free transcript: the audio
   says it about as well as what was heard. Further away, it was something else ("ninety
   minutes" is not "nineteen"): no command.
   A candidate with a number the transcript does not have must be within `number_margin`:
   Whisper heard "200" or "ninety" clearly, and a command with another number is not it.
   Tens followed by a number that sounds like units are those units ("40 80" may be 48), and
   a hundred and some may be the some ("громкость двадцать" heard as "громко 120"). Where
   numbers are asked back, a number heard garbled (no number at all: "громко сороть"; one
   that does not agree with its noun; half of two in a row) is held to the usual margin,
   and the candidate is only ever asked.
4. Numbers are checked twice, as a wrong number is a wrong action that goes unseen (a missed
   command can be said again). In English (tiny.en, measured):
   - a number that sounds like another ("seventeen" / "seventy") must win by `number_lead`:
     the chosen text is scored against the same text with the other number, whether the
     other is a command or not. Measured (bench set `numbers`): Whisper tiny.en writes a "-ty"
     said as its "-teen" in 7 of 35, with a small lead; a "-teen" said leads by 2.8 or more;
   - a second recognizer (the pocketsphinx grammar that gives the partials) must not have
     heard other numbers. Its own known slip, a "-teen" heard as its "-ty" (8 of 20 on the
     same set), is left to the lead.
   In other languages (multilingual base; no grammar decoder where pocketsphinx has no model):
   the chosen text, its numbers in digits (one token each), is scored, and at each number the
   recognizer's runner-up, the likeliest other number there, must trail by `number_lead`
   (read off the free transcript when it wrote that number after the same word, well past it).

Pure: the scores come from the edge (voiced.server.whisper), which asks `is_command`,
`candidates` and their `written_forms`, lets `choose` decide, then scores the `contrasts` of
the choice and lets `confirm` decide.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

import rapidfuzz

from voiced.commands.expansion import Expansion
from voiced.commands.heard import heard_numbers, numbers, unheard_values
from voiced.commands.matching import CommandSet, base_language
from voiced.textnorm import normalize, spell_number, words_to_digits

# candidate sentences scored per utterance, and how near (0..1, in spelling) they must be
CANDIDATES = 4
MIN_SIMILARITY = 0.6
# numbers heard alike, the first needing the lead: "-teen" and "-ty"
CONFUSABLE_NUMBERS = {"en": {teen: (teen - 10) * 10 for teen in range(13, 20)}}


@dataclass(frozen=True)
class Score:
    """How well the audio says a text: the log-probability of its tokens and its end."""

    log_probability: float
    tokens: int
    # how much likelier a number written in digits is than the likeliest other number at its
    # place (the recognizer's runner-up), None: not known or no number
    number_lead: float | None = None

    @property
    def mean(self) -> float:
        """The mean log-probability per token."""
        return self.log_probability / max(1, self.tokens)

    @property
    def per_token(self) -> float:
        return math.exp(self.mean)

    def value(self, per_token: bool) -> float:
        """What is compared: the mean per token, or the whole text's log-probability."""
        return self.mean if per_token else self.log_probability


@dataclass(frozen=True)
class Choice:
    """What the recognizer reports: a command sentence, or what was heard and why it is none."""

    text: str  # the chosen sentence (spoken words), or the free transcript when rejected
    accepted: bool
    reason: str  # for logs: how it was decided
    confidence: float = 0.0  # per-token probability of the text reported (geometric mean)
    form: str = ""  # the chosen text as the recognizer writes it
    # the best candidate and how far below the free transcript it scored (None: not scored),
    # so a benchmark can replay the decision for any margin
    candidate: str = ""
    gap: float | None = None
    heard: str = ""  # the free transcript, normalized
    changes_number: bool = False  # the candidate has a number the transcript does not
    # the transcript heard its number garbled (choose()): only ever asked back
    number_unclear: bool = False
    # slot value words the transcript wrote nothing near to (choose()): only ever asked back
    unheard: tuple[str, ...] = ()
    lead: float | None = None  # over the same text with a number that sounds alike (None: none)
    second_opinion: str = ""  # what the second recognizer heard, for the number check
    # rejected only because its number led the runner-up by too little: the sentence (spoken
    # words), which the daemon may say back and run on a "yes" (voiced.listen.confirmation)
    unsure: str = ""


class ClosedSet:
    """`per_token`: scores compare as mean log-probabilities per token (Whisper base on Russian:
    summed, a short sentence outscores most long ones), else as the whole text's."""

    def __init__(self, command_set: CommandSet, language: str, per_token: bool = False):
        self.command_set = command_set
        self.language = base_language(language)
        self.per_token = per_token
        self.sentences = command_set.sentences(self.language)
        self._texts = [words_to_digits(sentence.text, self.language) for sentence in self.sentences]
        self._index = {text: index for index, text in reversed(list(enumerate(self._texts)))}
        self._affixes = frozenset(command_set.wake_names(self.language)) | frozenset(
            command_set.skip_words(self.language)
        )
        self._confusable = CONFUSABLE_NUMBERS.get(self.language, {})
        # no table of numbers alike: a number is checked against the runner-up (number_form), or asked
        self.numbers_against_runner_up = not self._confusable
        self._agreement = command_set.agreement(self.language)
        # and with numbers in words: a number word heard wrong ("сороть") is near its word, not its digits
        self._spelled_texts = [self.spelled(text.split()) for text in self._texts]

    def is_command(self, heard: str) -> bool:
        """Whether the free transcript already is a command as it stands."""
        match = self.command_set.match(heard, self.language)
        return match is not None and not match.is_fallback

    def as_heard(self, heard: str, confidence: float) -> Choice:
        return Choice(
            normalize(heard, self.language),
            True,
            "heard as a command",
            confidence,
            heard,
            heard=normalize(heard, self.language),
        )

    def candidates(self, heard: str, second_opinion: str = "") -> list[Expansion]:
        """The sentences nearest to what was heard (wake names and skip words aside), and the
        sentence a second recognizer heard (e.g. a grammar decoder's final), if it is one and
        is as near to what was heard."""
        core = " ".join(self._core_words(heard)[1])
        key = words_to_digits(core, self.language)  # as _key(heard), from the words just found
        nearness: dict[int, float] = {}
        for query, texts in ((key, self._texts), (core, self._spelled_texts)):
            for _, similarity, index in rapidfuzz.process.extract(
                query, texts, scorer=rapidfuzz.fuzz.ratio, limit=CANDIDATES, score_cutoff=MIN_SIMILARITY * 100
            ):
                nearness[index] = max(similarity, nearness.get(index, 0.0))
        found = sorted(nearness, key=lambda index: -nearness[index])[:CANDIDATES]
        other = self._index.get(self._key(second_opinion)) if second_opinion else None
        if other is not None and rapidfuzz.fuzz.ratio(key, self._texts[other]) >= MIN_SIMILARITY * 100:
            found.append(other)
        return [self.sentences[index] for index in dict.fromkeys(found)]

    def _key(self, text: str) -> str:
        return words_to_digits(" ".join(self._core_words(text)[1]), self.language)

    def _core_words(self, heard: str) -> tuple[list[str], list[str], list[str]]:
        """(leading wake names / skip words, the rest, trailing skip words) of the transcript."""
        words = normalize(heard, self.language).split()
        start, end = 0, len(words)
        while start < end and words[start] in self._affixes:
            start += 1
        while end > start and words[end - 1] in self._affixes:
            end -= 1
        return words[:start], words[start:end], words[end:]

    def written_forms(self, sentence: Expansion, heard: str) -> list[tuple[str, str]]:
        """(sentence as it would be reported, as the recognizer would write it): with the wake
        name and skip words heard around it, and numbers in digits or in words as the
        transcript writes them (both when it has none). When the transcript starts with a word
        the sentence does not, nearer in spelling to a wake name than to the sentence's first
        word, it may be a wake name heard wrong ("Ellis" for "Alice"): each wake name is tried
        there too ("Поставьте" is the sentence's "поставь", heard in another form)."""
        before, core, after = self._core_words(heard)
        digits = any(char.isdigit() for char in heard)
        in_words = words_to_digits(normalize(heard, self.language), self.language) != normalize(heard, self.language)
        spellings = [False] if digits and not in_words else [True] if in_words and not digits else [False, True]
        prefixes = [before]
        names = self.command_set.wake_names(self.language)
        if not before and core and core[0] != sentence.words[0] and names:
            first = rapidfuzz.fuzz.ratio(core[0], sentence.words[0])
            if max(rapidfuzz.fuzz.ratio(core[0], name) for name in names) > first:
                prefixes += [[name] for name in names]
        forms = []
        for prefix in prefixes:
            for spell in spellings:
                text = self.spelled(sentence.spoken) if spell else " ".join(sentence.spoken)
                if not spell:
                    text = re.sub(r"(\d+) percent\b", r"\1%", text)
                if prefix:
                    text = " ".join(prefix) + ", " + text
                if after:
                    text = text + ", " + " ".join(after)
                forms.append((" ".join([*prefix, *sentence.spoken, *after]), text[:1].upper() + text[1:] + "."))
        return list(dict.fromkeys(forms))

    def none_near(self, heard: str, confidence: float) -> Choice:
        """No command: none is near enough in spelling to be scored."""
        as_heard = normalize(heard, self.language)
        return Choice(as_heard, False, "no command sentence is near what was heard", confidence, heard=as_heard)

    def spelled(self, words: Sequence[str]) -> str:
        """The words with each number spelled as the noun after it needs ("22 минуты" ->
        "двадцать две минуты")."""
        return " ".join(
            self._agreement.spell(int(word), next_word) if word.isdigit() else word
            for word, next_word in zip(words, [*words[1:], ""])
        )

    def choose(
        self,
        heard: str,
        heard_score: Score,
        scored: list[tuple[Expansion, str, str, Score]],
        margin: float,
        number_margin: float,
    ) -> Choice:
        """The best scored candidate within `margin` (log-probability) of the free transcript,
        or `number_margin` when it has a number the transcript does not; else the free
        transcript as not a command. `scored`: (sentence, as reported, written form, score) for
        each written form (written_forms()) of each candidate sentence."""
        as_heard = normalize(heard, self.language)
        if not scored:
            return self.none_near(heard, heard_score.per_token)
        sentence, candidate, form, score = max(scored, key=lambda item: item[3].value(self.per_token))
        gap = heard_score.value(self.per_token) - score.value(self.per_token)
        in_heard, said = heard_numbers(heard, self.language), numbers(candidate, self.language)
        changes_number = bool(said - in_heard.found)
        # Where numbers may be asked back (no table of numbers alike), a number heard garbled
        # is not a number heard as another one: the usual margin, and confirm() has it asked.
        # Garbled: no number at all in the transcript ("громко ссорк" for "громкость сорок"),
        # none that agrees with the noun after it ("9 минуты" for "две"), or the candidate's
        # number is half of two in a row ("30 30 минут" for "тридцать пять")
        clear = in_heard.found - self._agreement.disagreeing(in_heard.words)
        number_unclear = self.numbers_against_runner_up and (
            (changes_number and not clear) or bool(said & in_heard.halves)
        )
        bound = number_margin if changes_number and not number_unclear else margin
        kind = "a number heard garbled" if number_unclear else "a number not heard" if changes_number else ""
        what = f"with {kind}, margin" if kind else "margin"
        if gap <= bound:
            # where things unclear are asked back: a slot value the transcript wrote nothing
            # near to may be one the file lacks (confirm() has it asked)
            unheard = (
                unheard_values(sentence, heard, self.language, MIN_SIMILARITY) if self.numbers_against_runner_up else []
            )
            return Choice(
                candidate,
                True,
                f"{form!r} fits {gap:.2f} below what was heard ({what} {bound:g})",
                score.per_token,
                form,
                candidate,
                gap,
                as_heard,
                changes_number,
                number_unclear=number_unclear,
                unheard=tuple(unheard),
            )
        return Choice(
            as_heard,
            False,
            f"the nearest command {form!r} fits {gap:.2f} below what was heard ({what} {bound:g})",
            heard_score.per_token,
            "",
            candidate,
            gap,
            as_heard,
            changes_number,
            number_unclear=number_unclear,
        )

    def contrasts(self, choice: Choice) -> list[str]:
        """The chosen text with each confusable number in it swapped for the one it sounds like
        ("...for 17 minutes." -> "...for 70 minutes."), written the same way."""
        if not choice.accepted:
            return []
        contrasts = []
        for number, other in self._confusable.items():
            for said, instead in (
                (str(number), str(other)),
                (spell_number(number, self.language), spell_number(other, self.language)),
            ):
                swapped = re.sub(rf"(?<![\w-]){re.escape(said)}(?![\w-])", instead, choice.form, flags=re.I)
                if swapped != choice.form:
                    contrasts.append(swapped)
        return contrasts

    def number_form(self, choice: Choice) -> str | None:
        """Where numbers are checked against the recognizer's runner-up (every language without
        a table of numbers that sound alike): the chosen text with its numbers in digits, to be
        scored for its `number_lead`; None when it has no number."""
        if (
            not choice.accepted
            or not self.numbers_against_runner_up
            or choice.number_unclear
            or not numbers(choice.text, self.language)
        ):
            return None
        return self.written(choice.text)

    def likely_contrasts(self, sentence: str) -> list[str]:
        """Before Whisper has written what it heard: the texts contrasts() would have scored if
        it writes `sentence` (another recognizer's words) the usual way, that form first; []
        when the sentence has no number that sounds like another."""
        if not sentence:
            return []
        form = self.written(sentence)
        contrasts = self.contrasts(self.as_heard(form, 0.0))
        return [form, *contrasts] if contrasts else []

    def written(self, text: str) -> str:
        """A sentence as Whisper usually writes it: numbers in digits, a capital, a full stop."""
        text = words_to_digits(text, self.language)
        return text[:1].upper() + text[1:] + "."

    def confirm(
        self,
        choice: Choice,
        chosen: Score | None,
        contrasts: list[tuple[str, Score]],
        lead: float,
        second_opinion: str = "",
    ) -> Choice:
        """The choice, unless a contrast scores within `lead` of it, or the second recognizer
        heard other numbers: then nothing runs (and no text is reported: the transcript may be a
        command, not to be taken for one). The second recognizer's known slip, a "-teen" heard
        as its "-ty", is no veto: the lead decides it. A number checked against the runner-up
        alone and found short keeps its sentence as `unsure`: it may be said back and confirmed."""
        if not choice.accepted:
            return choice
        choice = replace(choice, second_opinion=second_opinion)
        if choice.unheard:
            return replace(
                choice,
                text="",
                accepted=False,
                unsure=self.spelled(choice.text.split()),
                reason=f"{choice.form!r}: nothing heard is near {' '.join(choice.unheard)!r}",
            )
        if self.numbers_against_runner_up and numbers(choice.text, self.language):
            runner_up = chosen.number_lead if chosen is not None else None
            choice = replace(choice, lead=runner_up)
            if choice.number_unclear or runner_up is None or runner_up < lead:
                return replace(
                    choice,
                    text="",
                    accepted=False,
                    unsure=self.spelled(choice.text.split()),
                    reason=f"{choice.form!r}: its number was not heard clearly"
                    if choice.number_unclear
                    else (
                        f"{choice.form!r}: its number leads the next likeliest number by "
                        f"{'nothing' if runner_up is None else f'{runner_up:.2f}'} only (at least {lead:g} needed)"
                    ),
                )
        if contrasts and chosen is not None:
            text, score = max(contrasts, key=lambda contrast: contrast[1].value(self.per_token))
            lead_seen = chosen.value(self.per_token) - score.value(self.per_token)
            choice = replace(choice, lead=lead_seen)
            if lead_seen < lead:
                return replace(
                    choice,
                    text="",
                    accepted=False,
                    reason=(
                        f"{choice.form!r} leads {text!r} by {lead_seen:.2f} only (at least {lead:g} needed for a "
                        "number that sounds alike)"
                    ),
                )
        mine, theirs = numbers(choice.text, self.language), numbers(second_opinion, self.language)
        slips = {str(self._confusable[int(n)]) for n in mine if n.isdigit() and int(n) in self._confusable}
        if theirs and mine and theirs != mine and not (theirs - mine) <= slips:
            return replace(
                choice,
                text="",
                accepted=False,
                reason=(f"{choice.form!r}: the grammar decoder heard other numbers ({second_opinion!r})"),
            )
        return choice
