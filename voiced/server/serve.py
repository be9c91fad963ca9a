"""`voiced serve`: the local recognition server as a command, decoding in its own process or
in N decoder processes (--workers), serving until SIGTERM/SIGINT and stopping within a bound."""

from __future__ import annotations

import logging
import multiprocessing
import sys

import pydantic

from voiced.config.loader import ConfigError
from voiced.ops.notify import Notifier
from voiced.ops.signals import SignalRequests
from voiced.protocol.vocabulary import DEFAULT_PORT
from voiced.server.app import load_engine, serve_engine, serve_until_stopped
from voiced.server.decoders import DecoderProcesses
from voiced.server.decoding import Decoders, ModelError
from voiced.settings import load_settings

log = logging.getLogger(__name__)


def main(args) -> int:
    try:
        settings = load_settings(args.config).server
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    if args.workers is not None:
        settings = settings.model_copy(update={"workers": args.workers})
    if args.wyoming is not None:
        try:
            settings = settings.with_wyoming(args.wyoming)
        except pydantic.ValidationError as exc:
            message = exc.errors()[0]["msg"].removeprefix("Value error, ")
            print(f"voiced serve: --wyoming: {message}", file=sys.stderr)
            return 2
    whisper = sorted(name for name, model in settings.models.items() if model.engine == "whisper")
    if settings.workers > 1 and whisper:
        # CTranslate2's threads stay in the process that loaded the model: a forked decoder
        # process hung at its first final (tried). Whisper decodes outside the GIL anyway
        print(
            f"voiced serve: {settings.workers} workers: models {', '.join(whisper)} use the Whisper "
            "engine, which cannot run in forked decoder processes; serve them with one worker",
            file=sys.stderr,
        )
        return 2
    host, port = args.host or "127.0.0.1", DEFAULT_PORT if args.port is None else args.port
    notifier = Notifier.from_environment()
    with SignalRequests() as signals:
        try:
            engine, credentials = load_engine(settings)
        except ConfigError as exc:  # e.g. a key file that holds no key
            print(exc, file=sys.stderr)
            return 2
        except (ModelError, OSError, RuntimeError) as exc:
            print(f"voiced serve: cannot start: {exc}", file=sys.stderr)
            return 1
        decoders: Decoders = engine
        healthy, workers = (lambda: True), ""
        try:
            if settings.workers > 1:
                # forked before gRPC starts in this process (gRPC must not run across a fork);
                # max_streams and the memory budget apply to each decoder process
                count = settings.workers
                processes = DecoderProcesses(engine, count, multiprocessing.get_context("fork"))
                decoders, healthy, workers = processes, processes.alive, f" with {count} decoder processes"
                limits = settings.limits.model_copy(update={"max_streams": settings.limits.max_streams * count})
                settings = settings.model_copy(update={"limits": limits})
            running = serve_engine(settings, decoders, credentials, host, port)
        except (OSError, RuntimeError) as exc:
            decoders.close()
            print(f"voiced serve: cannot start: {exc}", file=sys.stderr)
            return 1
        wyoming = f" and Wyoming ASR on {running.wyoming.uri}" if running.wyoming is not None else ""
        models = ", ".join([*settings.languages, *settings.models])
        log.warning("serving SpeechKit STT v2 on %s%s%s (%s)", running.target, wyoming, workers, models)
        notifier.ready(f"serving on {running.target}{wyoming}{workers}")
        return serve_until_stopped(running, signals, notifier, healthy)
