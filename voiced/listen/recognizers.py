"""The recognizer `voiced run` uses: the configured endpoint, with its credentials, retries
and fallback; or, with no endpoint, the local engine in the daemon's own process.

The local engine (voiced.server.local) opens no port: no other process can reach it, and the
audio is segmented once, by the daemon's endpointer. gRPC is loaded only for an endpoint.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

from voiced.commands.completion import CommandCompletion
from voiced.commands.matching import CommandSet, base_language
from voiced.ops.metrics import VoicedMetrics
from voiced.server.config import GrammarModel, ServerSettings
from voiced.settings import DaemonSettings
from voiced.speechkit.config import RecognitionSettings

log = logging.getLogger(__name__)


@contextlib.contextmanager
def recognizer(
    recognition: RecognitionSettings,
    server: ServerSettings,
    commands_model: str,
    command_set: CommandSet | None = None,
    metrics: VoicedMetrics | None = None,
) -> Iterator[Any]:
    """Something with `session()` (send / finish / cancel, events()): the configured endpoint,
    or the local engine (also the endpoint's fallback when that is "embedded"), whose
    `commands_model` gets `command_set`."""
    fallback = recognition.fallback if recognition.endpoint else None
    local = None
    if not recognition.endpoint or (fallback is not None and fallback.endpoint == "embedded"):
        asked = recognition if not recognition.endpoint else recognition.for_fallback()
        local = _local_engine(local_server(server, asked.model), commands_model, command_set, asked)
    try:
        if not recognition.endpoint:
            yield local
            return
        from voiced.speechkit.auth import credentials_for
        from voiced.speechkit.recognizer import Recognizer

        credentials = credentials_for(recognition)  # a broken service-account key fails here
        target = recognition.target()
        assert target is not None  # an endpoint is set
        client = Recognizer(
            recognition,
            target,
            credentials=credentials,
            fallback_target=None if fallback is None or local is not None else fallback.endpoint,
            fallback_client=local,
            on_switch=metrics.fallback_switched if metrics else None,
        )
        try:
            yield client
        finally:
            client.close()
    finally:
        if local is not None:
            local.close()


def _local_engine(
    server: ServerSettings, commands_model: str, command_set: CommandSet | None, recognition: RecognitionSettings
):
    """The local engine with its models loaded (a broken one raises ModelError)."""
    from voiced.server.engine import Engine
    from voiced.server.local import LocalRecognizer

    engine = Engine(server, {commands_model: command_set} if command_set is not None else {})
    engine.warm_up()
    log.info("local recognition engine loaded in this process (%s)", ", ".join(engine.grammars) or "open LM")
    return LocalRecognizer(engine, recognition, server)


def with_commands(settings: DaemonSettings, command_set: CommandSet | None) -> DaemonSettings:
    """The settings with the commands registered as the local engine's commands model, and
    asked for, when it applies: no endpoint, the commands have the recognition language, and
    `recognition.model` is left out (or names that model). With `home_assistant` and the
    pocketsphinx engine, only when `recognition.model` names it: its grammar hears nothing but
    commands, and what no command matched is for Home Assistant, so the open model is kept.
    The Whisper engine reports what it heard when no command fits: HA gets that."""
    from voiced.commands.grammar import to_jsgf

    recognition, grammar = settings.recognition, settings.commands.local_grammar
    if (
        command_set is None
        or recognition.endpoint is not None
        or base_language(recognition.language) not in command_set.languages
        or ("model" in recognition.model_fields_set and recognition.model != grammar.model)
    ):
        return settings
    engine = grammar.chosen_engine(recognition.language)
    if settings.home_assistant is not None and engine == "pocketsphinx" and "model" not in recognition.model_fields_set:
        return settings
    # the Whisper engine's grammar only gives partials: no rejection branch
    jsgf = to_jsgf(
        command_set, recognition.language, garbage_weight=grammar.garbage_weight if engine == "pocketsphinx" else None
    )
    model = GrammarModel(
        language=recognition.language,
        jsgf=jsgf,
        engine=engine,
        rejection_margin=grammar.rejection_margin,
        whisper=grammar.whisper,
    )
    server = settings.server.model_copy(update={"models": {**settings.server.models, grammar.model: model}})
    return settings.model_copy(
        update={"server": server, "recognition": recognition.model_copy(update={"model": grammar.model})}
    )


def command_completion(settings: DaemonSettings, command_set: CommandSet | None) -> CommandCompletion | None:
    """What tells the listening core that a partial is a whole command nothing can follow
    (`endpointing.early_on_complete`): only when the partials come from the local commands
    model (`settings` as `with_commands` made them), whose grammar is the commands'. Open
    speech and the cloud give no such promise: their sessions wait out the end silence."""
    recognition = settings.recognition
    if (
        command_set is None
        or not settings.endpointing.early_on_complete
        or recognition.endpoint is not None
        or recognition.model != settings.commands.local_grammar.model
        or base_language(recognition.language) not in command_set.languages
    ):
        return None
    return CommandCompletion(command_set, recognition.language)


# How often the engine in the daemon's process reads its hypothesis, unless `server:` says: a
# session ends early on a finished command once a partial has heard the quiet after it, so
# this cadence is part of the latency (0.1 s added 50 ms on average; 0.3 s, the served
# default, would add 0.15 s). Each 30 ms frame: reading pocketsphinx's hypothesis that often
# cost no measurable CPU (7.6 s of audio, hypothesis every frame vs every third: within noise)
LOCAL_PARTIAL_INTERVAL_S = 0.03


def local_server(server: ServerSettings, model: str) -> ServerSettings:
    """The `server:` settings of the engine the daemon runs in its own process: its only
    client is this daemon's microphone, so the engine keeps adapting to that channel, and
    only the `model` the daemon asks for is loaded up front."""
    update: dict = {"keep_channel_adaptation": True, "preload": (model,)}
    if "partial_interval_s" not in server.model_fields_set:
        update["partial_interval_s"] = LOCAL_PARTIAL_INTERVAL_S
    return server.model_copy(update=update)
