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


class CommandsSettings(_Frozen):
    """The `commands:` section of the daemon YAML."""

    files: list[Path] = [Path("config/commands.yaml")]  # files or directories of *.yaml
    # Require the wake name at the start ("alice, turn on ..."); else it is optional.
    require_wake_name: bool = False
    # Fuzzy fallback: best similarity (0..1) of the normalized text to a sampled sentence.
    fuzzy_threshold: float = Field(0.85, ge=0.0, le=1.0)  # 1.0 disables fuzzy matching
    max_fuzzy_sentences: int = Field(20000, ge=0)
