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

from voiced.commands.matching import CommandSet
from voiced.metrics import VoicedMetrics
from voiced.settings import DaemonSettings

log = logging.getLogger(__name__)


@contextlib.contextmanager
def recognizer(settings: DaemonSettings, metrics: VoicedMetrics | None = None,
               command_set: CommandSet | None = None) -> Iterator[Any]:
    """Something with `session()` (send / finish / cancel, events()): the configured endpoint,
    or the local engine (also the endpoint's fallback when that is "embedded"), whose
    commands model gets `command_set`."""
    recognition = settings.recognition
    fallback = recognition.fallback if recognition.endpoint else None
    local = None
    if not recognition.endpoint or (fallback is not None and fallback.endpoint == "embedded"):
        local = _local_engine(settings, command_set, recognition if not recognition.endpoint
                              else recognition.for_fallback())
    try:
        if not recognition.endpoint:
            yield local
            return
        from voiced.speechkit.credentials import credentials_for
        from voiced.speechkit.recognizer import Recognizer

        credentials = credentials_for(recognition)  # a broken service-account key fails here
        client = Recognizer(recognition, recognition.target(), credentials=credentials,
                            fallback_target=None if fallback is None or local is not None else fallback.endpoint,
                            fallback_client=local, on_switch=metrics.fallback_switched if metrics else None)
        try:
            yield client
        finally:
            client.close()
    finally:
        if local is not None:
            local.close()


def _local_engine(settings: DaemonSettings, command_set: CommandSet | None, recognition):
    """The local engine with its models loaded (a broken one raises ModelError)."""
    from voiced.server.engine import Engine
    from voiced.server.local import LocalRecognizer

    commands = {settings.commands.local_grammar.model: command_set} if command_set is not None else {}
    server = settings.embedded_server()
    engine = Engine(server, commands)
    engine.warm_up()
    log.info("local recognition engine loaded in this process (%s)", ", ".join(engine.grammars) or "open LM")
    return LocalRecognizer(engine, recognition, server)
