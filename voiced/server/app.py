"""Start and stop the local server; `voiced serve`."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Mapping
from concurrent import futures
from dataclasses import dataclass
from typing import TYPE_CHECKING

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from voiced.ops.signals import STOP
from voiced.server.config import ServerSettings
from voiced.server.decoding import Decoders
from voiced.server.engine import Engine
from voiced.server.service import SERVICE_NAME, SttService

if TYPE_CHECKING:
    from voiced.commands.matching import CommandSet
    from voiced.server.wyoming_server import WyomingListener

log = logging.getLogger(__name__)

STOP_MARGIN_S = 5.0  # past the grace: cancelled calls end within a slice of decoding
# grpcurl opens one reflection stream per command. A stream a client keeps open holds a server
# thread for as long as it likes, and needs no credentials: 12 of them took every thread
REFLECTION_STREAMS = 2


@dataclass
class RunningServer:
    server: grpc.Server
    decoders: Decoders
    port: int
    target: str  # host:port for clients
    wyoming: WyomingListener | None = None  # server.wyoming.uri's listener

    def stop(self, grace: float | None = 1.0) -> bool:
        """Refuse new calls, give those in flight `grace` seconds, then cancel them (both APIs
        at once). Whether every call ended within STOP_MARGIN_S more (a call grpcio never
        finishes would otherwise keep this waiting forever: logged, and the caller decides)."""
        bound = (grace or 0.0) + STOP_MARGIN_S
        deadline = time.monotonic() + bound
        wyoming = self.wyoming.stop(grace or 0.0, STOP_MARGIN_S) if self.wyoming is not None else None
        stopped = self.server.stop(grace).wait(timeout=bound)
        if wyoming is not None:
            try:
                stopped = wyoming.result(timeout=max(0.0, deadline - time.monotonic())) and stopped
            except TimeoutError:
                stopped = False
        if not stopped:
            log.error("the server did not finish its calls within %g s of the stop", bound)
        self.decoders.close()
        return stopped


def load_engine(
    settings: ServerSettings,
    command_sets: Mapping[str, CommandSet] | None = None,
) -> tuple[Engine, tuple[tuple[str, ...], tuple[str, ...]]]:
    """(the engine with its preloaded models, the accepted credentials). Configured auth whose
    key files are unreadable or hold no key raises ConfigError first; a broken model ModelError.
    `command_sets`: loaded commands for grammar models, by name (see Engine)."""
    credentials = settings.auth.accepted()
    engine = Engine(settings, command_sets)
    engine.warm_up()
    return engine, credentials


def serve_engine(settings: ServerSettings, decoders: Decoders, credentials, host: str, port: int) -> RunningServer:
    """A gRPC server for `decoders` on host:port (0 = any), and the Wyoming listener if
    server.wyoming.uri is set. A second server on a port in use fails to bind (OSError,
    RuntimeError), as it should: grpcio would share it (SO_REUSEPORT) unless told not to."""
    limits = settings.limits
    slots = threading.BoundedSemaphore(limits.max_streams)  # concurrent streams over both APIs
    # a few threads beyond the cap, so calls past it can be answered RESOURCE_EXHAUSTED, and
    # the reflection streams' own: those never take the recognition calls' threads
    threads = limits.max_streams + 4 + REFLECTION_STREAMS
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=threads, thread_name_prefix="stt"),
        interceptors=[BoundedStreams("/grpc.reflection.", REFLECTION_STREAMS)],
        options=[("grpc.max_receive_message_length", limits.max_message_bytes), ("grpc.so_reuseport", 0)],
    )
    SttService(settings, decoders, credentials, slots).add_to(server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for name in ("", SERVICE_NAME):
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    reflection.enable_server_reflection([SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME], server)
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if settings.tls is not None:
        tls = grpc.ssl_server_credentials([(settings.tls.key_file.read_bytes(), settings.tls.cert_file.read_bytes())])
        bound = server.add_secure_port(address, tls)
    else:
        bound = server.add_insecure_port(address)
    server.start()
    target_host = f"[{host}]" if ":" in host else host
    running = RunningServer(server, decoders, bound, f"{target_host}:{bound}")
    if settings.wyoming.address is not None:
        try:
            running.wyoming = start_wyoming(settings, decoders, slots)
        except BaseException:
            server.stop(None)
            raise
    return running


class BoundedStreams(grpc.ServerInterceptor):
    """At most `limit` streams at once of the methods whose names begin with `prefix`; past
    that, RESOURCE_EXHAUSTED."""

    def __init__(self, prefix: str, limit: int):
        self._prefix = prefix
        self._limit = limit
        self._open = threading.BoundedSemaphore(limit)

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        if handler is None or handler.stream_stream is None or not handler_call_details.method.startswith(self._prefix):
            return handler
        behavior, open_streams = handler.stream_stream, self._open
        refusal = f"at most {self._limit} {self._prefix.strip('/.')} streams at once: try again when one has ended"

        def bounded(requests, context):
            if not open_streams.acquire(blocking=False):
                context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, refusal)
            try:
                yield from behavior(requests, context)
            finally:
                open_streams.release()

        return grpc.stream_stream_rpc_method_handler(
            bounded, request_deserializer=handler.request_deserializer, response_serializer=handler.response_serializer
        )


def start_wyoming(settings: ServerSettings, decoders: Decoders, slots: threading.BoundedSemaphore) -> WyomingListener:
    try:
        from voiced.server.wyoming_server import WyomingListener
    except ImportError as exc:
        raise RuntimeError(
            f"server.wyoming needs the wyoming package ({exc.name} is missing): pip install 'voiced[wyoming]'"
        ) from None
    address = settings.wyoming.address
    assert address is not None  # the caller checked
    listener = WyomingListener(settings, decoders, slots)
    listener.start(*address)
    return listener


def start_server(
    settings: ServerSettings,
    host: str = "127.0.0.1",
    port: int = 0,
    command_sets: Mapping[str, CommandSet] | None = None,
) -> RunningServer:
    """Load the models, then serve on host:port (0 = any); errors as `load_engine`."""
    engine, credentials = load_engine(settings, command_sets)
    return serve_engine(settings, engine, credentials, host, port)


def serve_until_stopped(running: RunningServer, signals, notifier=None, healthy=lambda: True) -> int:
    """Serve until SIGTERM/SIGINT, then stop within a bound (0: every call ended in time).
    Once `healthy()` is false (a decoder process died), stop and return 1, for a supervisor
    such as systemd to restart the whole server."""
    while signals.next(timeout=1.0) != STOP:  # SIGHUP: nothing to reload (models load at start)
        if not healthy():
            log.error("a decoder process ended: stopping the server")
            running.stop(grace=0)
            return 1
    if notifier is not None:
        notifier.stopping("finishing calls in flight")
    if not running.stop(grace=5.0):
        # SIGTERM must end the process in bounded time: the threads of a stuck call would
        # keep the interpreter from exiting (they are joined at exit)
        logging.shutdown()
        os._exit(1)
    return 0
