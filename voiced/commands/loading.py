"""Load command files (files or directories of *.yaml) into a CommandSet, errors located.

Every problem is reported as file:line:col: schema violations by pydantic, template syntax
errors by hassil's own parser (located at the offending sentence), duplicate command names
across files, and references to lists or rules that no file defines.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

import pydantic
from hassil.parse_expression import parse_sentence

from voiced.commands.config import CommandFile, CommandsSettings
from voiced.commands.expansion import TooManySentences
from voiced.commands.matching import CommandSet, base_language
from voiced.yamlconfig import ConfigError, ConfigProblem, LocatedDocument, read_yaml


log = logging.getLogger(__name__)

ACTION_TYPES = frozenset({"exec", "http", "mqtt", "sound", "say"})


def command_paths(paths: Iterable[str | Path]) -> list[Path]:
    """Files as given; directories expand to their *.yaml / *.yml files in name order."""
    found: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found.extend(sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml")))
        else:
            found.append(path)
    return found


def _validation_problems(doc: LocatedDocument, error: pydantic.ValidationError) -> list[ConfigProblem]:
    problems = []
    for item in error.errors(include_url=False):
        # pydantic puts the union tag ("exec") into the location; the YAML has no such key
        loc = tuple(part for index, part in enumerate(item["loc"])
                    if not (part in ACTION_TYPES and index and isinstance(item["loc"][index - 1], int)))
        dotted = ".".join(str(part) for part in loc)
        problems.append(doc.problem(loc, f"{dotted}: {item['msg']}"))
    return problems


def _template_problems(doc: LocatedDocument, command_file: CommandFile) -> list[ConfigProblem]:
    problems = []
    for name, command in command_file.commands.items():
        for language, templates in command.sentences.items():
            for index, template in enumerate(templates):
                try:
                    parse_sentence(template)
                except Exception as exc:  # hassil raises several types for bad templates
                    path = ("commands", name, "sentences", language, index)
                    problems.append(doc.problem(path, f"template {template!r}: {exc}"))
    for language, section in command_file.languages.items():
        for rule, template in section.expansion_rules.items():
            try:
                parse_sentence(template)
            except Exception as exc:
                path = ("languages", language, "expansion_rules", rule)
                problems.append(doc.problem(path, f"rule {template!r}: {exc}"))
    return problems


def load_commands(
    paths: Iterable[str | Path], settings: CommandsSettings | None = None
) -> CommandSet:
    """Parse and validate all command files; raise ConfigError listing every problem."""
    settings = settings or CommandsSettings()
    problems: list[ConfigProblem] = []
    loaded: list[tuple[LocatedDocument, CommandFile]] = []
    for path in command_paths(paths):
        try:
            doc = read_yaml(path)
        except ConfigError as exc:
            problems.extend(exc.problems)
            continue
        try:
            command_file = CommandFile.model_validate(doc.data or {})
        except pydantic.ValidationError as exc:
            problems.extend(_validation_problems(doc, exc))
            continue
        problems.extend(_template_problems(doc, command_file))
        loaded.append((doc, command_file))

    seen: dict[str, str] = {}
    for doc, command_file in loaded:
        for name in command_file.commands:
            if name in seen:
                problems.append(doc.problem(("commands", name), f"command {name!r} also defined in {seen[name]}"))
            seen.setdefault(name, doc.file)
    if problems:
        raise ConfigError(problems)

    command_set = CommandSet([cf for _, cf in loaded], settings)
    for language in command_set.languages:
        try:
            # hassil resolves lists and rules lazily; sampling one sentence per intent finds
            # undefined references now instead of at the first spoken command
            command_set.check(language)
            command_set.sentences(language)  # the closed set: bounded by commands.max_sentences
        except TooManySentences:
            problems.append(ConfigProblem(loaded[0][0].file, 1, 1, (
                f"language {language}: the templates spell out more than {settings.max_sentences} sentences; "
                "use fewer alternatives or narrower ranges, or raise commands.max_sentences")))
        except Exception as exc:
            problems.append(ConfigProblem(loaded[0][0].file if loaded else "<none>", 1, 1,
                                          f"language {language}: {exc}"))
    if problems:
        raise ConfigError(problems)
    command_set.warnings = _template_warnings(loaded, command_set)
    return command_set


def _template_warnings(loaded: list[tuple[LocatedDocument, CommandFile]], command_set: CommandSet) -> list[ConfigProblem]:
    """check-config's warnings: templates that never run their own command, located."""
    where: dict[tuple[str, str, int], ConfigProblem] = {}  # (intent, language, template) -> its place
    for doc, command_file in loaded:
        for name, command in command_file.commands.items():
            counts: dict[str, int] = {}
            for language, templates in command.sentences.items():
                base = base_language(language)
                for index in range(len(templates)):
                    path = ("commands", name, "sentences", language, index)
                    where[(name, base, counts.get(base, 0) + index)] = doc.problem(path, "")
                counts[base] = counts.get(base, 0) + len(templates)
    warnings = []
    for language in command_set.languages:
        for finding in command_set.lint(language):
            place = where[(finding.intent, finding.language, finding.template)]
            warnings.append(ConfigProblem(place.file, place.line, place.column,
                                          f"warning: commands.{finding.intent} ({language}) {finding.message}"))
    return warnings


def load_configured(settings: CommandsSettings) -> CommandSet | None:
    """The commands the daemon's `commands:` section names; None when there are none.

    Files named in the config must exist; the default file is optional (a daemon without
    commands still transcribes)."""
    paths = command_paths(settings.files)
    if "files" not in settings.model_fields_set and not any(path.exists() for path in paths):
        log.info("no command file at %s: transcribing only", ", ".join(map(str, settings.files)))
        return None
    command_set = load_commands(paths, settings)
    return command_set if command_set.commands else None
