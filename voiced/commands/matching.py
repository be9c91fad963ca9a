"""Match a transcript to a command: normalize, strip the wake name, exact hassil match, then
a fuzzy fallback that forgives filler words but never changes what a slot heard. Pure: no
I/O, no clocks.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from hassil import Intents, recognize
from hassil.expression import INLINE_RANGE_PATTERN
from hassil.intents import RangeSlotList
from hassil.sample import sample_intents

from voiced.actions.config import Action
from voiced.actions.context import Match
from voiced.commands.answers import ANSWER_INTENTS
from voiced.commands.config import Command, CommandFile, CommandsSettings, LanguageSection
from voiced.commands.expansion import Expansion, OpenTemplate, TooManySentences, expand, expand_template
from voiced.commands.plurals import Agreement, CountedNoun
from voiced.textnorm import base_language, fold, normalize, words_to_digits

FALLBACK_INTENT = "fallback"


def _typed(value: Any) -> Any:
    # hassil returns range values as floats; a spoken "five" is the integer 5
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


@dataclass
class _Language:
    intents: Intents  # templates folded as transcripts are: what is matched
    spoken: Intents  # templates with words as spoken: grammars and the closed set of sentences
    wake_names: tuple[str, ...]
    skip_words: tuple[str, ...]
    counted_nouns: tuple[CountedNoun, ...] = ()
    sentences: list[Expansion] | None = field(default=None)  # spelled out on first use
    sentence_texts: list[str] | None = field(default=None)


# Words a speaker adds or drops without changing what is asked (besides the commands' own
# skip words): a fuzzy match may forgive them, and nothing else.
FILLER_WORDS = {
    "en": ("a", "an", "the", "um", "uh", "er", "erm", "ah", "oh", "hmm", "okay", "ok", "so", "well", "just"),
    "ru": ("ну", "э", "ээ", "мм", "а", "вот", "же", "ка"),
}


class CommandSet:
    """All commands of all files, compiled per language into hassil Intents."""

    def __init__(self, files: Sequence[CommandFile], settings: CommandsSettings):
        self.settings = settings
        self.commands: dict[str, Command] = {}
        sections: dict[str, list[LanguageSection]] = {}
        self.fallback_actions: tuple[Action, ...] | None = None
        for command_file in files:
            self.commands.update(command_file.commands)
            for language, section in command_file.languages.items():
                sections.setdefault(base_language(language), []).append(section)
            if command_file.fallback is not None:
                self.fallback_actions = tuple(command_file.fallback.actions)
        languages = set().union(*(command_file.sentence_languages for command_file in files))
        self._languages = {lang: self._compile(lang, sections.get(lang, [])) for lang in sorted(languages)}
        self.warnings: list[Any] = []  # located template warnings, set by the loader (ConfigProblem)

    @property
    def languages(self) -> list[str]:
        return list(self._languages)

    def _compile(self, language: str, sections: list[LanguageSection]) -> _Language:
        lists: dict[str, Any] = {}
        rules: dict[str, str] = {}
        skip_words: list[str] = []
        wake_names: list[str] = []
        counted = [
            CountedNoun(tuple(noun.forms), noun.number) for section in sections for noun in section.counted_nouns
        ]
        for section in sections:
            lists.update(section.lists)
            rules.update(section.expansion_rules)
            skip_words.extend(normalize(w, language) for w in section.skip_words)
            wake_names.extend(normalize(w, language) for w in section.wake_names)

        def intents(fold_template: Callable[[str], str]) -> Intents:
            compiled = Intents.from_dict(
                {
                    "language": language,
                    "intents": {
                        name: {"data": [{"sentences": [fold_template(t) for t in templates], "slots": command.slots}]}
                        for name, command in self.commands.items()
                        for lang, templates in command.sentences.items()
                        if base_language(lang) == language
                    },
                    "lists": {name: _fold_list(slot_list, fold_template) for name, slot_list in lists.items()},
                    "expansion_rules": {name: fold_template(rule) for name, rule in rules.items()},
                    "skip_words": skip_words,
                }
            )
            _add_inline_ranges(compiled)
            return compiled

        # longest first, so "alice please" is stripped before "alice"
        return _Language(
            intents(normalize_template),
            intents(spoken_template),
            tuple(sorted(set(wake_names), key=len, reverse=True)),
            tuple(dict.fromkeys(skip_words)),
            tuple(counted),
        )

    def intents(self, language: str) -> Intents:
        """What transcripts are matched against (templates folded as transcripts are)."""
        return self._languages[base_language(language)].intents

    def spoken_intents(self, language: str) -> Intents:
        """The same templates with words spelled as spoken ("what's"): for grammars and
        the closed set of sentences."""
        return self._languages[base_language(language)].spoken

    def sentences(self, language: str) -> list[Expansion]:
        """Every sentence of the language's closed templates (raises TooManySentences), those
        with a counted noun only in the form its number needs ("пять минут", not "пять минуту")."""
        compiled = self._languages[base_language(language)]
        if compiled.sentences is None:
            agreement = self.agreement(language)
            compiled.sentences = [
                sentence
                for sentence in expand(compiled.spoken, self.settings.max_sentences)
                if agreement.agrees(sentence)
            ]
        return compiled.sentences

    def agreement(self, language: str) -> Agreement:
        """The language's counted nouns (raises ValueError on a noun with the wrong forms)."""
        return Agreement(self._languages[base_language(language)].counted_nouns, language)

    def check(self, language: str) -> None:
        """Expand one sentence per intent: raises on undefined lists or rules."""
        for _ in sample_intents(self.intents(language), max_sentences_per_intent=1, language=language):
            pass

    def wake_names(self, language: str) -> tuple[str, ...]:
        return self._languages[base_language(language)].wake_names

    def skip_words(self, language: str) -> tuple[str, ...]:
        return self._languages[base_language(language)].skip_words

    def strip_wake_name(self, text: str, language: str) -> tuple[str, bool]:
        for name in self.wake_names(language):
            if text == name or text.startswith(name + " "):
                return text[len(name) :].strip(), True
        return text, False

    def addressed(self, text: str, language: str) -> str | None:
        """What `text` asks of the speaker, as heard (not normalized: for another listener,
        such as Home Assistant): the transcript without the wake name it begins with. None when
        it asks nothing: no words, the wake name alone, or no wake name where
        `require_wake_name` wants one (as `match` would run no fallback)."""
        compiled = self._languages.get(base_language(language))
        names = compiled.wake_names if compiled is not None else ()
        words = text.split()
        longest = max((len(name.split()) for name in names), default=0) + 1  # "alice," is one word
        for count in range(min(len(words), longest), 0, -1):
            if normalize(" ".join(words[:count]), language) in names:
                rest = " ".join(words[count:])
                return rest if normalize(rest, language) else None
        if self.settings.require_wake_name or not normalize(text, language):
            return None
        return text.strip()

    def match(self, text: str, language: str, fuzzy: bool = True) -> Match | None:
        """The command `text` says, or the fallback, or None. `fuzzy=False`: templates only."""
        language = base_language(language)
        if language not in self._languages:
            return None
        normalized, had_wake_name = self.strip_wake_name(normalize(text, language), language)
        found = self._exact(normalized, language, text)
        # an answer to a question the speaker asked back needs no wake name
        if self.settings.require_wake_name and not had_wake_name:
            return found if found is not None and found.intent in ANSWER_INTENTS else None
        if found is None and normalized and fuzzy:
            found = self._fuzzy(normalized, language, text)
        if found is None and self.fallback_actions is not None and normalized:
            found = Match(FALLBACK_INTENT, {}, normalized, 0.0, language, self.fallback_actions, text, is_fallback=True)
        return found

    def _exact(self, normalized: str, language: str, original: str, score: float = 1.0) -> Match | None:
        result = recognize(normalized, self.intents(language), language=language)
        if result is None:
            return None
        slots = {name: _typed(entity.value) for name, entity in result.entities.items()}
        command = self.commands[result.intent.name]
        return Match(result.intent.name, slots, normalized, score, language, tuple(command.actions), original)

    def _fuzzy(self, normalized: str, language: str, original: str) -> Match | None:
        """The nearest sentence that differs from `normalized` only where nothing is at stake:
        filler words (articles, skip words, hesitations) added or left out, and a word of the
        template heard in another form of itself ("lights" for "light"). A slot's words and every
        number must be heard exactly: "ninety minutes" is never "nine minutes", "the attic" never
        "the kitchen"."""
        threshold = self.settings.fuzzy_threshold
        if threshold >= 1.0:
            return None
        try:
            sentences = self.sentences(language)
        except TooManySentences:
            return None
        heard = words_to_digits(normalized, language).split()
        fillers = self._fillers(language)
        # compared without fillers: how many a speaker adds says nothing about what was asked
        texts = self._sentence_texts(language)
        key = " ".join(word for word in heard if word not in fillers)
        # rapidfuzz (~2.3 MB) is loaded by the first near miss: a daemon whose transcripts all
        # match exactly (the commands grammar gives only whole sentences) never holds it
        import rapidfuzz

        for _, score, index in rapidfuzz.process.extract(
            key, texts, scorer=rapidfuzz.fuzz.ratio, limit=8, score_cutoff=threshold * 100
        ):
            sentence = sentences[index]
            if only_harmless_differences(sentence, heard, fillers):
                return self._exact(sentence.text, language, original, score / 100)
        return None

    def _fillers(self, language: str) -> frozenset[str]:
        return frozenset(FILLER_WORDS.get(language, ())) | frozenset(self.skip_words(language))

    def _sentence_texts(self, language: str) -> list[str]:
        """The sentences as the fuzzy matcher compares them: filler words left out."""
        compiled = self._languages[base_language(language)]
        if compiled.sentence_texts is None:
            fillers = self._fillers(language)
            compiled.sentence_texts = [
                " ".join(w for w in sentence.words if w not in fillers) for sentence in self.sentences(language)
            ]
        return compiled.sentence_texts

    def lint(self, language: str, per_template: int = 500) -> list[TemplateFinding]:
        """Templates that can never match (each of its sentences matches nothing, or another
        command first). Checks up to `per_template` sentences of each template."""
        language = base_language(language)
        spoken = self.spoken_intents(language)
        findings = []
        for name, intent in spoken.intents.items():
            count = sum(len(data.sentences) for data in intent.data)
            for template in range(count):
                try:
                    sentences = expand_template(spoken, name, template)[:per_template]
                except (TooManySentences, OpenTemplate):
                    continue
                if not sentences:
                    findings.append(TemplateFinding(name, language, template, "can never match: it has no words"))
                    continue
                example = sentences[0].text
                matched = [self.match(s.text, language, fuzzy=False) for s in sentences]
                intents = {m.intent for m in matched if m is not None and not m.is_fallback}
                if not intents:
                    findings.append(
                        TemplateFinding(
                            name,
                            language,
                            template,
                            f"can never match: none of its sentences matches a command (e.g. {example!r})",
                        )
                    )
                elif name not in intents:
                    findings.append(
                        TemplateFinding(
                            name,
                            language,
                            template,
                            f"is shadowed by {', '.join(sorted(intents))}: "
                            f"each of its sentences runs that command (e.g. {example!r})",
                        )
                    )
        return findings


@dataclass(frozen=True)
class TemplateFinding:
    """A template that never runs its own command (a warning of `check-config`)."""

    intent: str
    language: str
    template: int
    message: str


def only_harmless_differences(sentence: Expansion, heard: list[str], fillers: frozenset[str]) -> bool:
    """Whether `heard` says `sentence`, up to filler words and other forms of template words."""
    slot_words = sentence.slot_word_indices()
    words = sentence.words
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=words, b=heard, autojunk=False).get_opcodes():
        if tag == "equal":
            continue
        # in each differing stretch: fillers may come and go (never a slot's words); what is
        # left must pair up word for word, each pair the same word or forms of a template word
        said = [i for i in range(i1, i2) if i in slot_words or words[i] not in fillers]
        got = [word for word in heard[j1:j2] if word not in fillers]
        if len(said) != len(got):
            return False
        for i, word in zip(said, got):
            if words[i] != word and (i in slot_words or not same_word(words[i], word)):
                return False
    return True


def same_word(template_word: str, heard_word: str) -> bool:
    """Two forms of one word ("light" / "lights", "minute" / "minutes"): a long common start and
    a short different end. Never numbers, and never a word with another start ("lock" /
    "unlock", "on" / "off")."""
    if template_word.isdigit() or heard_word.isdigit():
        return False
    shorter = min(len(template_word), len(heard_word))
    # A character prefix is what is wanted here ("light" / "lights"), not a path prefix.
    common = len(os.path.commonprefix([template_word, heard_word]))  # noqa: RUF071
    return common >= max(3, shorter - 1) and abs(len(template_word) - len(heard_word)) <= 2


_REFERENCE = re.compile(r"(\{[^}]*\}|<[^>]*>)")


def _add_inline_ranges(intents: Intents) -> None:
    """Register `{1..60:minutes}` ranges as lists: hassil's matcher creates them on the fly,
    but its sampler (used for fuzzy matching and checks) needs them up front."""
    for intent in intents.intents.values():
        for data in intent.data:
            for sentence in data.sentences:
                for name in sentence.list_names(intents.expansion_rules):
                    found = INLINE_RANGE_PATTERN.match(name)
                    if found and name not in intents.slot_lists:
                        start, stop, step = found.groups()
                        intents.slot_lists[name] = RangeSlotList(
                            name=name, start=int(start), stop=int(stop), step=int(step or 1)
                        )


def _fold_list(slot_list: Any, fold_template: Callable[[str], str]) -> Any:
    """A hassil list with its spoken forms (`in`) folded like templates; values out stay."""
    if not isinstance(slot_list, dict) or not isinstance(slot_list.get("values"), list):
        return slot_list
    values = [
        {"in": fold_template(value), "out": value}
        if isinstance(value, str)
        else {**value, "in": fold_template(value["in"])}
        if isinstance(value, dict) and isinstance(value.get("in"), str)
        else value
        for value in slot_list["values"]
    ]
    return {**slot_list, "values": values}


def normalize_template(template: str) -> str:
    """Fold template words as transcripts are (case, `ё`, apostrophes: "what's" -> "whats"), so
    they meet normalized transcripts; list and rule names in {} and <> stay as written."""
    parts = _REFERENCE.split(template)
    return "".join(p if i % 2 else fold(p) for i, p in enumerate(parts))


def spoken_template(template: str) -> str:
    """Template words in lower case, as spoken and as a pronunciation dictionary spells them."""
    parts = _REFERENCE.split(template)
    return "".join(p if i % 2 else p.lower().replace("ё", "е") for i, p in enumerate(parts))
