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

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from voiced.actions.config import Action


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class LanguageSection(_Frozen):
    wake_names: list[str] = []
    lists: dict[str, Any] = {}  # hassil slot lists: values (in/out), range (from/to)
    expansion_rules: dict[str, str] = {}
    skip_words: list[str] = []  # politeness words ignored when matching ("please")


class Command(_Frozen):
    sentences: dict[str, list[str]] = Field(min_length=1)  # language -> templates
    slots: dict[str, Any] = {}  # fixed slot values added to every match
    actions: list[Action] = []


class Fallback(_Frozen):
    actions: list[Action] = []


class CommandFile(_Frozen):
    languages: dict[str, LanguageSection] = {}
    commands: dict[str, Command] = {}
    fallback: Fallback | None = None


class LocalGrammar(_Frozen):
    """How the commands become a grammar model of the embedded local server."""

    model: str = "commands"  # the model name the daemon registers and asks for
    # Rejection: speech whose best grammar path fits worse than a free phone loop by more than
    # this (relative to the loop's own fit, per frame of speech) gives no result; None = off.
    # Lower rejects more non-commands and more real commands (bench/bench_commands.py --sweep).
    rejection_margin: float | None = Field(0.75, ge=0)
    # The other (older, weaker) rejection: a loop of filler words beside the commands, with
    # this weight against them; None = no filler loop.
    garbage_weight: float | None = Field(None, gt=0)


class CommandsSettings(_Frozen):
    """The `commands:` section of the daemon YAML."""

    # Files or directories of *.yaml; relative paths are relative to the daemon's config file.
    # Named files must exist. Left out (null): commands.yaml beside the config file if there is
    # one, else no commands (the daemon then only transcribes).
    files: list[Path] | None = None
    # Require the wake name at the start ("alice, turn on ..."); else it is optional.
    require_wake_name: bool = False
    # Fuzzy fallback: best similarity (0..1) of the normalized text to a sampled sentence.
    fuzzy_threshold: float = Field(0.85, ge=0.0, le=1.0)  # 1.0 disables fuzzy matching
    max_fuzzy_sentences: int = Field(20000, ge=0)
    # With the embedded local server and `recognition.model` left out, recognize with a grammar
    # of the commands (accurate, rejects other speech); `recognition.model: general` keeps the
    # open language model (any speech is transcribed, then matched).
    local_grammar: LocalGrammar = LocalGrammar()
