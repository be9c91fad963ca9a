"""Load YAML into typed, immutable pydantic models, with errors located as file:line:col.

Every settings file of voiced goes through `load_model`: a YAML syntax error or a value
that fails validation is reported with the position of the offending node, so
`voiced check-config` (and a rejected SIGHUP reload) can point the user at the exact spot.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pydantic
import yaml

ModelT = TypeVar("ModelT", bound=pydantic.BaseModel)


@dataclass(frozen=True)
class ConfigProblem:
    file: str
    line: int  # 1-based
    column: int  # 1-based
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.message}"


class ConfigError(Exception):
    """One or more located problems in configuration files."""

    def __init__(self, problems: Iterable[ConfigProblem]):
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


@dataclass(frozen=True)
class LocatedDocument:
    """A parsed YAML document plus the position of every node, keyed by its path."""

    file: str
    data: Any
    marks: dict[tuple[Any, ...], tuple[int, int]]

    def locate(self, path: tuple[Any, ...]) -> tuple[int, int]:
        """Position of the deepest existing node on `path` (a missing key points at its parent)."""
        for end in range(len(path), -1, -1):
            if path[:end] in self.marks:
                return self.marks[path[:end]]
        return (1, 1)

    def problem(self, path: tuple[Any, ...], message: str) -> ConfigProblem:
        line, column = self.locate(path)
        return ConfigProblem(self.file, line, column, message)


def _record_marks(node: yaml.Node, path: tuple[Any, ...], marks: dict) -> None:
    marks[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                _record_marks(value_node, (*path, key_node.value), marks)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _record_marks(item, (*path, index), marks)


def parse_yaml(text: str, file: str = "<string>") -> LocatedDocument:
    """Parse one YAML document; raise ConfigError with the syntax error's position."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return LocatedDocument(file, {}, {})
        # construct first: it resolves merge keys (<<) in the node tree we then walk
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise ConfigError([ConfigProblem(file, line, column, f"YAML: {exc.problem}")]) from None
    finally:
        loader.dispose()
    marks: dict[tuple[Any, ...], tuple[int, int]] = {}
    _record_marks(node, (), marks)
    return LocatedDocument(file, data, marks)


def read_yaml(path: str | Path) -> LocatedDocument:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([ConfigProblem(str(path), 1, 1, f"cannot read: {exc.strerror}")]) from None
    return parse_yaml(text, str(path))


def validation_problems(
    doc: LocatedDocument, error: pydantic.ValidationError, prefix: tuple[Any, ...] = ()
) -> list[ConfigProblem]:
    problems = []
    for item in error.errors(include_url=False):
        loc = (*prefix, *item["loc"])
        dotted = ".".join(str(part) for part in loc) or "(top level)"
        problems.append(doc.problem(loc, f"{dotted}: {item['msg']}"))
    return problems


def validate(model: type[ModelT], doc: LocatedDocument, path: tuple[Any, ...] = ()) -> ModelT:
    """Validate the node at `path` of `doc` as `model`; problems are located in doc's file."""
    data = doc.data
    for part in path:
        data = data.get(part, {}) if isinstance(data, dict) else {}
    try:
        return model.model_validate({} if data is None else data)
    except pydantic.ValidationError as exc:
        raise ConfigError(validation_problems(doc, exc, path)) from None


def load_model(model: type[ModelT], path: str | Path) -> ModelT:
    return validate(model, read_yaml(path))
