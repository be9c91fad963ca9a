"""`voiced serve --workers N`: N processes serving one port, so decoding uses N cores.

pocketsphinx keeps the GIL while it decodes: one process decodes on one core. The models are
loaded once, in the parent; then N workers are forked (their model data is shared copy-on-
write) and each starts its own gRPC server on the same port with SO_REUSEPORT (grpcio's
`grpc.so_reuseport`, the pattern of grpcio's multiprocessing example: gRPC must not run in a
process before it forks). The kernel spreads *connections* over the workers: the calls of one
channel all go to one worker, so capacity grows with the number of clients (devices), not
with calls multiplexed on one connection. The Wyoming listener (server.wyoming.uri) is served
the same way: each worker listens on its port with SO_REUSEPORT, and a Wyoming request (one
connection) is decoded by the worker that accepted it.

The parent reports READY once every worker serves, passes SIGTERM on, and ends when they
have: if a worker dies on its own the parent stops the others and exits 1 (a supervisor such
as systemd restarts the whole server).
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import queue
import signal
import socket
import sys
import time

from voiced.server.app import STOP_MARGIN_S, serve_engine, serve_until_stopped
from voiced.server.config import ServerSettings
from voiced.server.engine import Engine

log = logging.getLogger(__name__)

READY_TIMEOUT_S = 120.0
STOP_GRACE_S = 5.0  # as serve_until_stopped's


@contextlib.contextmanager
def reserved_port(host: str, port: int):
    """A port all workers can bind (SO_REUSEPORT), held while they run: port 0 picks one here,
    so that every worker gets the same."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        holder.bind((host, port))
        yield holder.getsockname()[1]


@contextlib.contextmanager
def reserved_wyoming_port(settings: ServerSettings):
    """`settings` with the Wyoming port every worker is to bind, held meanwhile (as reserved_port)."""
    if settings.wyoming.address is None:
        yield settings
        return
    host, port = settings.wyoming.address
    with reserved_port(host, port) as port:
        yield settings.with_wyoming(f"tcp://{f'[{host}]' if ':' in host else host}:{port}")


def _worker(settings: ServerSettings, engine: Engine, credentials, host: str, port: int, ready) -> None:
    from voiced.ops.signals import SignalRequests

    with SignalRequests() as signals:
        try:
            running = serve_engine(settings, engine, credentials, host, port, reuse_port=True)
        except (OSError, RuntimeError) as exc:
            ready.put((os.getpid(), str(exc)))
            sys.exit(1)
        ready.put((os.getpid(), None))
        sys.exit(serve_until_stopped(running, signals))


def run_workers(settings: ServerSettings, engine: Engine, credentials, host: str, port: int, notifier, signals) -> int:
    context = multiprocessing.get_context("fork")
    ready = context.Queue()
    with reserved_port(host, port) as port, reserved_wyoming_port(settings) as settings:
        workers = [
            context.Process(
                target=_worker,
                args=(settings, engine, credentials, host, port, ready),
                name=f"voiced-serve-worker-{index}",
            )
            for index in range(settings.workers)
        ]
        for worker in workers:
            worker.start()
        try:
            failure = _wait_ready(ready, workers)
            if failure is not None:
                print(f"voiced serve: cannot start: {failure}", file=sys.stderr)
                return 1
            target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
            if settings.wyoming.uri is not None:
                target += f" and Wyoming ASR on {settings.wyoming.uri}"
            log.warning(
                "serving SpeechKit STT v2 on %s with %d workers (%s)",
                target,
                len(workers),
                ", ".join([*settings.languages, *settings.models]),
            )
            notifier.ready(f"serving on {target} with {len(workers)} workers")
            return _supervise(workers, signals, notifier)
        finally:
            _stop(workers)
            engine.close()


def _wait_ready(ready, workers) -> str | None:
    """None once every worker serves, else what went wrong."""
    waiting = {worker.pid for worker in workers}
    deadline = time.monotonic() + READY_TIMEOUT_S
    while waiting:
        try:
            pid, error = ready.get(timeout=1.0)
        except queue.Empty:
            if any(not worker.is_alive() for worker in workers):
                return "a worker died before it served"
            if time.monotonic() > deadline:
                return f"the workers did not get ready within {READY_TIMEOUT_S:g} s"
            continue
        if error is not None:
            return error
        waiting.discard(pid)
    return None


def _supervise(workers, signals, notifier) -> int:
    from voiced.ops.signals import STOP

    while True:
        if signals.next(timeout=1.0) == STOP:
            notifier.stopping("finishing calls in flight")
            return 0 if _stop(workers) else 1
        if dead := [worker for worker in workers if not worker.is_alive()]:
            log.error("worker %s ended (exit code %s): stopping the server", dead[0].pid, dead[0].exitcode)
            _stop(workers)
            return 1


def _stop(workers) -> bool:
    """SIGTERM to each live worker, then wait for them within their own stop bound (SIGKILL
    past it). Whether all ended cleanly."""
    for worker in workers:
        if worker.is_alive():
            os.kill(worker.pid, signal.SIGTERM)
    clean = True
    for worker in workers:
        worker.join(STOP_GRACE_S + STOP_MARGIN_S + 5.0)
        if worker.is_alive():
            worker.kill()
            worker.join()
        clean = clean and worker.exitcode == 0
    return clean
