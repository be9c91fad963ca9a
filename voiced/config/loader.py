"""Load YAML into typed, immutable pydantic models, with errors located as file:line:col.

Every settings file of voiced goes through `read_yaml`: a YAML syntax error or a value
that fails validation is reported with the position of the offending node, so
`voiced check-config` (and a rejected SIGHUP reload) can point the user at the exact spot.

Config files are untrusted input of bounded size: only regular files are read (a FIFO would
block, /dev/zero never ends), at most MAX_FILE_BYTES of UTF-8, and the YAML may nest at
most MAX_DEPTH levels and expand (aliases included) to at most MAX_NODES nodes, so a
"billion laughs" document fails fast instead of filling memory.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pydantic
import yaml

ModelT = TypeVar("ModelT", bound=pydantic.BaseModel)


class FrozenModel(pydantic.BaseModel):
    """The base of every settings section: immutable once loaded, and a key it does not know
    is an error (a misspelt key would otherwise be ignored without a word)."""

    model_config = pydantic.ConfigDict(frozen=True, extra="forbid")


MAX_FILE_BYTES = 1 << 20  # a config or command file of 1 MiB is already huge
MAX_DEPTH = 64  # nesting levels (voiced's deepest real structure is under 10)
MAX_NODES = 100_000  # after alias expansion: what validation will walk


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


class _LimitExceeded(yaml.MarkedYAMLError):
    pass


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader that refuses documents nesting deeper than MAX_DEPTH or expanding (through
    aliases) to more than MAX_NODES nodes, before anything walks the expanded tree."""

    def __init__(self, text: str):
        super().__init__(text)
        self._depth = 0
        self._nodes = 0
        self._open_anchors: set[str] = set()
        self._expansion: dict[int, tuple[int, int]] = {}  # id(node) -> (nodes, depth) expanded

    def _measure(self, node: yaml.Node) -> tuple[int, int]:
        """(nodes, depth) of `node` with aliases expanded; bounded, as every composed node is."""
        if (known := self._expansion.get(id(node))) is None:
            children = [self._measure(child) for child in _children(node)]
            known = (1 + sum(n for n, _ in children), 1 + max((d for _, d in children), default=0))
            self._expansion[id(node)] = known
        return known

    def _count(self, nodes: int, depth: int, mark) -> None:
        self._nodes += nodes
        if depth > MAX_DEPTH:
            raise _LimitExceeded(None, None, f"nested more than {MAX_DEPTH} levels deep", mark)
        if self._nodes > MAX_NODES:
            raise _LimitExceeded(None, None, f"more than {MAX_NODES} nodes (aliases expanded)", mark)

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            if event.anchor in self._open_anchors:
                raise _LimitExceeded(
                    None, None, f"alias *{event.anchor} refers to a node that contains it", event.start_mark
                )
            if event.anchor in self.anchors:
                nodes, depth = self._measure(self.anchors[event.anchor])
                self._count(nodes, self._depth + depth, event.start_mark)
            return super().compose_node(parent, index)
        self._depth += 1
        self._count(1, self._depth, event.start_mark)
        anchor = getattr(event, "anchor", None)
        if anchor is not None:
            self._open_anchors.add(anchor)
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1
            self._open_anchors.discard(anchor)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _record_marks(node: yaml.Node, path: tuple[Any, ...], marks: dict) -> None:
    marks[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                _record_marks(value_node, (*path, key_node.value), marks)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _record_marks(item, (*path, index), marks)


def _position(text: str | bytes, index: int) -> tuple[int, int]:
    if isinstance(text, bytes):
        return text.count(b"\n", 0, index) + 1, index - (text.rfind(b"\n", 0, index) + 1) + 1
    return text.count("\n", 0, index) + 1, index - (text.rfind("\n", 0, index) + 1) + 1


def _syntax_problem(text: str, file: str, exc: yaml.MarkedYAMLError) -> ConfigProblem:
    """Where the mistake most likely is. PyYAML reports where it noticed: after a missing
    quote or colon that is often lines further down, at the end of the value that ran on."""
    mark = exc.problem_mark or exc.context_mark
    if mark is None:
        return ConfigProblem(file, 1, 1, f"YAML: {exc.problem or exc}")
    noticed = f"{exc.problem} (at {mark.line + 1}:{mark.column + 1})"
    runaway = None
    try:
        for token in yaml.scan(text):
            if token.end_mark.index > mark.index:
                break
            if isinstance(token, yaml.ScalarToken):
                runaway = token if token.start_mark.line < token.end_mark.line else None
    except yaml.YAMLError:
        pass
    if runaway is not None and not isinstance(exc, _LimitExceeded):
        hint = "a closing quote missing?" if runaway.style in ("'", '"') else "a ':' missing, or the indentation?"
        start = runaway.start_mark
        return ConfigProblem(
            file,
            start.line + 1,
            start.column + 1,
            f"YAML: this value runs on to line {runaway.end_mark.line + 1} ({hint}): {noticed}",
        )
    context = (
        f" ({exc.context} at {exc.context_mark.line + 1}:{exc.context_mark.column + 1})"
        if exc.context and exc.context_mark and exc.context_mark is not mark
        else ""
    )
    return ConfigProblem(file, mark.line + 1, mark.column + 1, f"YAML: {exc.problem}{context}")


def parse_yaml(text: str, file: str = "<string>") -> LocatedDocument:
    """Parse one YAML document within the limits; raise ConfigError with the problem's position."""
    loader = None
    try:
        loader = _BoundedLoader(text)  # its reader checks the characters here
        node = loader.get_single_node()
        if node is None:
            return LocatedDocument(file, {}, {})
        # construct first: it resolves merge keys (<<) in the node tree we then walk
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        raise ConfigError([_syntax_problem(text, file, exc)]) from None
    except yaml.reader.ReaderError as exc:  # a control character PyYAML refuses
        line, column = _position(text, exc.position)
        raise ConfigError(
            [ConfigProblem(file, line, column, f"YAML: character #x{exc.character:04x} is not allowed ({exc.reason})")]
        ) from None
    finally:
        if loader is not None:
            loader.dispose()
    marks: dict[tuple[Any, ...], tuple[int, int]] = {}
    _record_marks(node, (), marks)
    return LocatedDocument(file, data, marks)


def read_text(path: str | Path, what: str = "file") -> str:
    """The UTF-8 text of a regular file of at most MAX_FILE_BYTES; ConfigError otherwise."""
    path = Path(path)

    def problem(message: str, line: int = 1, column: int = 1) -> ConfigError:
        return ConfigError([ConfigProblem(str(path), line, column, message)])

    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer (it is refused just below)
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as exc:
        raise problem(f"cannot read the {what}: {exc.strerror}") from None
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise problem(f"is a directory, not a {what}")
        if not stat.S_ISREG(mode):
            raise problem(f"is not a regular file (a FIFO, device or socket): not read as a {what}")
        chunks, size = [], 0
        while size <= MAX_FILE_BYTES and (chunk := os.read(fd, MAX_FILE_BYTES + 1 - size)):
            chunks.append(chunk)
            size += len(chunk)
        data = b"".join(chunks)
    except OSError as exc:
        raise problem(f"cannot read the {what}: {exc.strerror}") from None
    finally:
        os.close(fd)
    if len(data) > MAX_FILE_BYTES:
        raise problem(f"larger than {MAX_FILE_BYTES} bytes: not read as a {what}")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line, column = _position(data, exc.start)
        # (the position, not the byte: the file may hold a secret)
        raise problem("not UTF-8 text: it cannot be decoded here", line, column) from None


def read_yaml(path: str | Path) -> LocatedDocument:
    return parse_yaml(read_text(path, "YAML file"), str(path))


def _real_path(data: Any, loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """`loc` without the union-member tags pydantic puts into it ("float", "literal[...]",
    "exec"): only the keys and indexes that are in the document, plus a last field name
    (one that is missing or not allowed)."""
    real: list[Any] = []
    node = data
    for position, part in enumerate(loc):
        last = position == len(loc) - 1
        in_dict = isinstance(node, dict) and part in node
        in_list = isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        if in_dict or in_list:
            node = node[part]
        elif isinstance(node, dict | None) and last:
            pass  # a field that is missing (or a key that is not allowed)
        else:
            continue  # a union member's tag
        real.append(part)
    return tuple(real)


def validation_problems(
    doc: LocatedDocument, error: pydantic.ValidationError, prefix: tuple[Any, ...] = ()
) -> list[ConfigProblem]:
    """One problem per offending node: the failures of a union's members (`end_silence:
    fast` is neither a preset nor a number) are joined into one message."""
    messages: dict[tuple[Any, ...], list[str]] = {}
    for item in error.errors(include_url=False):
        path = _real_path(doc.data, (*prefix, *item["loc"]))
        message = item["msg"].removeprefix("Value error, ")
        if message not in messages.setdefault(path, []):
            messages[path].append(message)
    problems = []
    for path, texts in messages.items():
        dotted = ".".join(str(part) for part in path) or "(top level)"
        joined = texts[0] + "".join(f"; or {text.removeprefix('Input should be ')}" for text in texts[1:])
        problems.append(doc.problem(path, f"{dotted}: {joined}"))
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
