"""Match a transcript to a command: normalize, strip the wake name, exact hassil match, then
a bounded fuzzy fallback. Pure: no I/O, no clocks.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from hassil import Intents, recognize
from hassil.expression import INLINE_RANGE_PATTERN
from hassil.intents import RangeSlotList
from hassil.sample import sample_intents

from voiced.actions.config import Action
from voiced.commands.config import Command, CommandFile, CommandsSettings, LanguageSection
from voiced.textnorm import normalize

FALLBACK_INTENT = "fallback"


@dataclass(frozen=True)
class Match:
    intent: str
    slots: dict[str, Any]
    text: str  # the normalized text that was matched (wake name removed)
    score: float  # 1.0 for an exact template match, the similarity for a fuzzy one
    language: str
    actions: tuple[Action, ...] = ()
    original_text: str = ""
    is_fallback: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"intent": self.intent, "slots": self.slots, "text": self.text,
                "score": round(self.score, 3), "language": self.language,
                "is_fallback": self.is_fallback}


def base_language(language: str) -> str:
    return language.replace("_", "-").split("-")[0].lower()


def _typed(value: Any) -> Any:
    # hassil returns range values as floats; a spoken "five" is the integer 5
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


@dataclass
class _Language:
    intents: Intents
    wake_names: tuple[str, ...]
    samples: list[tuple[str, str]] | None = field(default=None)


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
        languages = {base_language(lang) for c in self.commands.values() for lang in c.sentences}
        self._languages = {lang: self._compile(lang, sections.get(lang, [])) for lang in sorted(languages)}

    @property
    def languages(self) -> list[str]:
        return list(self._languages)

    def _compile(self, language: str, sections: list[LanguageSection]) -> _Language:
        lists: dict[str, Any] = {}
        rules: dict[str, str] = {}
        skip_words: list[str] = []
        wake_names: list[str] = []
        for section in sections:
            lists.update(section.lists)
            rules.update(section.expansion_rules)
            skip_words.extend(normalize(w, language) for w in section.skip_words)
            wake_names.extend(normalize(w, language) for w in section.wake_names)
        intents = {
            name: {"data": [{"sentences": [normalize_template(t) for t in templates], "slots": command.slots}]}
            for name, command in self.commands.items()
            for lang, templates in command.sentences.items()
            if base_language(lang) == language
        }
        compiled = Intents.from_dict({
            "language": language, "intents": intents, "lists": lists,
            "expansion_rules": rules, "skip_words": skip_words,
        })
        _add_inline_ranges(compiled)
        # longest first, so "alice please" is stripped before "alice"
        return _Language(compiled, tuple(sorted(set(wake_names), key=len, reverse=True)))

    def intents(self, language: str) -> Intents:
        return self._languages[base_language(language)].intents

    def check(self, language: str) -> None:
        """Expand one sentence per intent: raises on undefined lists or rules."""
        for _ in sample_intents(self.intents(language), max_sentences_per_intent=1, language=language):
            pass

    def wake_names(self, language: str) -> tuple[str, ...]:
        return self._languages[base_language(language)].wake_names

    def strip_wake_name(self, text: str, language: str) -> tuple[str, bool]:
        for name in self.wake_names(language):
            if text == name or text.startswith(name + " "):
                return text[len(name):].strip(), True
        return text, False

    def match(self, text: str, language: str) -> Match | None:
        language = base_language(language)
        if language not in self._languages:
            return None
        normalized, had_wake_name = self.strip_wake_name(normalize(text, language), language)
        if self.settings.require_wake_name and not had_wake_name:
            return None
        found = self._exact(normalized, language, text)
        if found is None and normalized:
            found = self._fuzzy(normalized, language, text)
        if found is None and self.fallback_actions is not None and normalized:
            found = Match(FALLBACK_INTENT, {}, normalized, 0.0, language, self.fallback_actions,
                          text, is_fallback=True)
        return found

    def _exact(self, normalized: str, language: str, original: str, score: float = 1.0) -> Match | None:
        result = recognize(normalized, self.intents(language), language=language)
        if result is None:
            return None
        slots = {name: _typed(entity.value) for name, entity in result.entities.items()}
        command = self.commands[result.intent.name]
        return Match(result.intent.name, slots, normalized, score, language,
                     tuple(command.actions), original)

    def _samples(self, language: str) -> list[tuple[str, str]]:
        compiled = self._languages[language]
        if compiled.samples is None:
            limit = self.settings.max_fuzzy_sentences
            per_intent = max(1, limit // max(1, len(compiled.intents.intents)))
            compiled.samples = [
                (intent, normalize(sentence, language))
                for intent, sentence in sample_intents(
                    compiled.intents, max_sentences_per_intent=per_intent, language=language)
            ][:limit]
        return compiled.samples

    def _fuzzy(self, normalized: str, language: str, original: str) -> Match | None:
        threshold = self.settings.fuzzy_threshold
        if threshold >= 1.0:
            return None
        best_score, best_sentence = 0.0, None
        matcher = difflib.SequenceMatcher(autojunk=False)
        matcher.set_seq2(normalized)
        for _, sentence in self._samples(language):
            # a ratio can be at most 2*min/(sum) of the lengths: skip hopeless candidates cheaply
            if 2 * min(len(sentence), len(normalized)) / (len(sentence) + len(normalized)) < threshold:
                continue
            matcher.set_seq1(sentence)
            if matcher.real_quick_ratio() < threshold or matcher.quick_ratio() < threshold:
                continue
            score = matcher.ratio()
            if score > best_score:
                best_score, best_sentence = score, sentence
        if best_sentence is None or best_score < threshold:
            return None
        found = self._exact(best_sentence, language, original, best_score)
        return found


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
                            name=name, start=int(start), stop=int(stop), step=int(step or 1))


def normalize_template(template: str) -> str:
    """Lower-case template words (`ё`->`е`) so they meet normalized transcripts; list and rule
    names in {} and <> stay as written."""
    parts = _REFERENCE.split(template)
    return "".join(p if i % 2 else p.lower().replace("ё", "е") for i, p in enumerate(parts))
