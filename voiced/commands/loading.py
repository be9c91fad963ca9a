"""Load command files (files or directories of *.yaml) into a CommandSet, errors located.

Every problem is reported as file:line:col: schema violations by pydantic, template syntax
errors by hassil's own parser (located at the offending sentence), duplicate command names
across files, and references to lists or rules that no file defines (located at the
template or rule that makes them).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import pydantic
from hassil.expression import Expression, Group, ListReference, RuleReference
from hassil.parse_expression import parse_sentence

from voiced.commands.answers import ANSWER_INTENTS, answer_commands
from voiced.commands.config import CommandFile, CommandsSettings
from voiced.commands.expansion import TooManySentences
from voiced.commands.matching import CommandSet, base_language
from voiced.config.loader import ConfigError, ConfigProblem, LocatedDocument, read_yaml, validation_problems

log = logging.getLogger(__name__)

SUFFIXES = (".yaml", ".yml")


def path_problem(path: Path) -> str | None:
    """Why a named command path cannot be used (None: it can): it must be a regular file, or a
    directory of command files (not itself named *.yaml, which would be a mistake)."""
    try:
        if not path.is_dir():
            return None if path.is_file() else "is not a regular file" if path.exists() else "does not exist"
        if path.suffix in SUFFIXES:
            return f"is a directory, not a command file (a directory of command files is not named *{path.suffix})"
        os.listdir(path)
    except OSError as exc:
        return f"cannot be read: {exc.strerror}"
    return None


def command_paths(paths: Iterable[str | Path]) -> list[Path]:
    """Files as given; directories expand to their *.yaml / *.yml entries in name order (each
    must then be a regular file: reading it says so otherwise)."""
    found: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir() and path.suffix not in SUFFIXES:
            try:
                found.extend(sorted(p for p in path.iterdir() if p.suffix in SUFFIXES))
            except OSError as exc:
                raise ConfigError(
                    [ConfigProblem(str(path), 1, 1, f"cannot list the directory: {exc.strerror}")]
                ) from None
        else:
            found.append(path)
    return found


def _references(expression: Expression) -> Iterator[ListReference | RuleReference]:
    if isinstance(expression, ListReference | RuleReference):
        yield expression
    elif isinstance(expression, Group):
        for item in expression.items:
            yield from _references(item)


def _template_problems(
    doc: LocatedDocument, command_file: CommandFile, defined: dict[str, tuple[set[str], set[str]]]
) -> list[ConfigProblem]:
    """Syntax errors and undefined {lists} / <rules> of every template and rule of the file;
    `defined`: base language -> (list names, rule names) of all files."""
    checks: list[tuple[tuple[str | int, ...], str, str, str]] = [
        (("commands", name, "sentences", language, index), language, template, "template")
        for name, command in command_file.commands.items()
        for language, templates in command.sentences.items()
        for index, template in enumerate(templates)
    ]
    checks += [
        (("languages", language, "expansion_rules", rule), language, template, "rule")
        for language, section in command_file.languages.items()
        for rule, template in section.expansion_rules.items()
    ]
    problems = []
    for path, language, template, kind in checks:
        try:
            sentence = parse_sentence(template)
        except Exception as exc:  # hassil raises several types for bad templates
            problems.append(doc.problem(path, f"{kind} {template!r}: {exc}"))
            continue
        lists, rules = defined.get(base_language(language), (set(), set()))
        for reference in _references(sentence.expression):
            if isinstance(reference, RuleReference) and reference.rule_name not in rules:
                problems.append(
                    doc.problem(
                        path,
                        f"{kind} {template!r}: rule <{reference.rule_name}> is not "
                        f"defined in languages.{language}.expansion_rules",
                    )
                )
            elif (
                isinstance(reference, ListReference)
                and not reference.is_inline_range
                and reference.list_name not in lists
            ):
                problems.append(
                    doc.problem(
                        path,
                        f"{kind} {template!r}: list {{{reference.list_name}}} is not "
                        f"defined in languages.{language}.lists",
                    )
                )
    return problems


def load_commands(paths: Iterable[str | Path], settings: CommandsSettings | None = None) -> CommandSet:
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
            problems.extend(validation_problems(doc, exc))
            continue
        loaded.append((doc, command_file))

    defined: dict[str, tuple[set[str], set[str]]] = {}
    for _, command_file in loaded:
        for language, section in command_file.languages.items():
            lists, rules = defined.setdefault(base_language(language), (set(), set()))
            lists.update(section.lists)
            rules.update(section.expansion_rules)
    seen: dict[str, str] = {}
    for doc, command_file in loaded:
        problems.extend(_template_problems(doc, command_file, defined))
        for name in command_file.commands:
            if name in ANSWER_INTENTS:
                problems.append(doc.problem(("commands", name), f"the command name {name!r} is voiced's own (answers)"))
            elif name in seen:
                problems.append(doc.problem(("commands", name), f"command {name!r} also defined in {seen[name]}"))
            seen.setdefault(name, doc.file)
    if problems:
        raise ConfigError(problems)

    files = [cf for _, cf in loaded]
    languages = set().union(*(command_file.sentence_languages for command_file in files))
    if settings.confirm.enabled and (answers := answer_commands(sorted(languages))):
        files.append(answers)  # the closed set must hold the answers to a question asked back
    command_set = CommandSet(files, settings)
    for language in command_set.languages:
        try:
            # what the reference check above cannot see (hassil resolves lists lazily):
            # sampling one sentence per intent fails now instead of at the first spoken command
            command_set.check(language)
            command_set.sentences(language)  # the closed set: bounded by commands.max_sentences
        except TooManySentences:
            problems.append(
                ConfigProblem(
                    loaded[0][0].file,
                    1,
                    1,
                    (
                        f"language {language}: the templates spell out more than {settings.max_sentences} sentences; "
                        "use fewer alternatives or narrower ranges, or raise commands.max_sentences"
                    ),
                )
            )
        except Exception as exc:
            problems.append(
                ConfigProblem(loaded[0][0].file if loaded else "<none>", 1, 1, f"language {language}: {exc}")
            )
    if problems:
        raise ConfigError(problems)
    command_set.warnings = _template_warnings(loaded, command_set)
    return command_set


def _template_warnings(
    loaded: list[tuple[LocatedDocument, CommandFile]], command_set: CommandSet
) -> list[ConfigProblem]:
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
            if finding.intent in ANSWER_INTENTS:  # voiced's own, in no file
                continue
            place = where[(finding.intent, finding.language, finding.template)]
            warnings.append(
                ConfigProblem(
                    place.file,
                    place.line,
                    place.column,
                    f"warning: commands.{finding.intent} ({language}) {finding.message}",
                )
            )
    return warnings


def load_configured(settings: CommandsSettings) -> CommandSet | None:
    """The commands of the `commands:` section's files; None when there are none (a daemon
    without commands still transcribes). The files were resolved by voiced.settings: named
    ones must exist, the default one is there only if it exists."""
    if not settings.files:
        return None
    command_set = load_commands(settings.files, settings)
    return command_set if command_set.commands else None
