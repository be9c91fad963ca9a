"""The recognizer `voiced run` uses: the configured endpoint with its credentials and fallback,
or a local server embedded in the daemon's process.

The embedded server's recognition service accepts only a random key made here and known only
to this process (its client sends it): another local process cannot hold its recognition
streams (each takes one of `max_streams`) or make it load models. Its reflection service is
still open (streams held there take server threads): closing that needs voiced/server/app.py.
(A later design may call the engine in-process.)
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

from voiced.commands.matching import CommandSet
from voiced.metrics import VoicedMetrics
from voiced.settings import DaemonSettings
from voiced.speechkit.credentials import ProcessKey, credentials_for
from voiced.speechkit.recognizer import Recognizer
from voiced.speechkit.settings import EMBEDDED

log = logging.getLogger(__name__)


@contextlib.contextmanager
def recognizer(settings: DaemonSettings, metrics: VoicedMetrics | None = None,
               command_set: CommandSet | None = None) -> Iterator[Recognizer]:
    """A recognizer for the configured endpoint (with its credentials and fallback), or for an
    embedded local server started here (also when the fallback is "embedded"), which gets
    `command_set` for its commands model. The embedded server accepts only this process's
    random key: another local process cannot hold its streams or make it load models."""
    recognition = settings.recognition
    credentials = credentials_for(recognition)  # a broken service-account key fails here
    fallback = recognition.fallback if recognition.endpoint else None
    server = key = None
    if not recognition.endpoint or (fallback is not None and fallback.endpoint == EMBEDDED):
        from voiced.server.app import start_server  # the `local` extra: only needed when embedded

        key = ProcessKey()
        commands = {settings.commands.local_grammar.model: command_set} if command_set is not None else {}
        server = start_server(settings.embedded_server(key.secret), host="127.0.0.1", port=0, command_sets=commands)
        log.info("embedded recognition server on %s", server.target)
    embedded_fallback = fallback is not None and fallback.endpoint == EMBEDDED
    fallback_target = None if fallback is None else server.target if embedded_fallback else fallback.endpoint
    client = Recognizer(recognition, recognition.target() or server.target, fallback_target=fallback_target,
                        credentials=credentials if recognition.endpoint else key,
                        fallback_credentials=key if embedded_fallback else None,
                        on_switch=metrics.fallback_switched if metrics else None)
    try:
        yield client
    finally:
        client.close()
        if server is not None:
            server.stop(grace=1.0)
            times = server.engine.stage_times
            if times.utterances:
                log.info("recognition CPU partials %.2f s final %.2f s over %d utterances",
                         times.partials_s, times.final_s, times.utterances)
