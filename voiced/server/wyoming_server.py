"""The Wyoming listener of `voiced serve`: Home Assistant's voice protocol beside the v2 gRPC
API, in the same process, on the same decoders (models, decoder pools, memory budget) and the
same concurrent-stream slots. An asyncio loop in a thread of its own accepts connections
(`wyoming_connection.AsrHandler` serves each); a thread pool decodes their audio.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading

from voiced.server.config import ServerSettings
from voiced.server.decoding import Decoders
from voiced.server.wyoming_asr import describe
from voiced.server.wyoming_connection import AsrHandler

log = logging.getLogger(__name__)

START_TIMEOUT_S = 30.0


class WyomingListener:
    """The listener and its connections, on an event loop in a thread of its own."""

    def __init__(self, settings: ServerSettings, engine: Decoders, slots: threading.BoundedSemaphore):
        self.settings = settings
        self.engine = engine
        self.slots = slots  # the server's concurrent streams, shared with the v2 API
        self.info = describe(settings)
        self.executor = concurrent.futures.ThreadPoolExecutor(
            settings.limits.max_streams, thread_name_prefix="wyoming-decode"
        )
        self.stopping = False
        self.uri = ""  # tcp://HOST:PORT once listening (the port bound, for port 0)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run_loop, name="wyoming", daemon=True)
        self._server: asyncio.Server | None = None
        self._connections: dict[asyncio.Task, AsrHandler] = {}
        self._streams = threading.Condition()
        self._held_slots = 0  # by this listener's streams: until their decoders are back

    def take_slot(self) -> bool:
        """One of the server's concurrent streams for a Wyoming stream, if one is free."""
        if not self.slots.acquire(blocking=False):
            return False
        with self._streams:
            self._held_slots += 1
        return True

    def free_slot(self) -> None:
        self.slots.release()
        with self._streams:
            self._held_slots -= 1
            self._streams.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Whether, within `timeout`, every Wyoming stream has ended and given its decoder back
        (a client that went away is noticed once its slice in hand is decoded)."""
        with self._streams:
            return self._streams.wait_for(lambda: self._held_slots == 0, timeout)

    def _run_loop(self) -> None:
        self._loop.run_forever()
        self._loop.close()

    def start(self, host: str, port: int) -> int:
        """Listen on host:port (0 = any); the port bound. OSError when it cannot bind."""
        self._thread.start()
        try:
            return asyncio.run_coroutine_threadsafe(self._open(host, port), self._loop).result(START_TIMEOUT_S)
        except BaseException:
            self._end_loop()
            raise

    async def _open(self, host: str, port: int) -> int:
        self._server = await asyncio.start_server(self._serve, host, port)
        port = self._server.sockets[0].getsockname()[1]
        self.uri = f"tcp://{f'[{host}]' if ':' in host else host}:{port}"
        return port

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handler = AsrHandler(reader, writer, self)
        task = asyncio.current_task()
        assert task is not None  # asyncio runs each connection's callback in a task of its own
        self._connections[task] = handler
        try:
            await handler.run()
        except Exception:  # a bug must end this connection only
            log.exception("Wyoming connection failed")
        finally:
            self._connections.pop(task, None)

    def stop(self, grace: float, margin: float) -> concurrent.futures.Future:
        """Stop listening; requests in flight get `grace` s to be answered, idle connections
        close now, then what is left is cancelled. Done (True: all ended in time) within
        grace + margin; the caller waits for it."""
        done: concurrent.futures.Future = concurrent.futures.Future()

        def finish(closing: concurrent.futures.Future) -> None:
            self._end_loop()
            done.set_result(not closing.cancelled() and closing.exception() is None and closing.result())

        asyncio.run_coroutine_threadsafe(self._close(grace, margin), self._loop).add_done_callback(finish)
        return done

    async def _close(self, grace: float, margin: float) -> bool:
        self.stopping = True
        if self._server is not None:
            self._server.close()
        for task, handler in list(self._connections.items()):
            if handler.stream is None:
                task.cancel()
        pending: set = set()
        if self._connections:
            _, pending = await asyncio.wait(list(self._connections), timeout=grace)
        for task in pending:
            task.cancel()
        if pending:
            _, pending = await asyncio.wait(pending, timeout=margin)
        return not pending

    def _end_loop(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
        self._loop.call_soon_threadsafe(self._loop.stop)
