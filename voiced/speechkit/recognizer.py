"""The recognizer the daemon uses: sessions that keep under the service's limits, retry,
refresh credentials and fail over (policy in voiced.speechkit.resilience; this is its edge).

`Recognizer.session()` returns a RecognizerSession with the same interface as a single
RecognitionSession (send / finish / cancel from one thread, events() from another). Each
session has a worker thread that runs the session's core over one inbox: the caller's audio,
the results of its gRPC calls (one reader thread per call) and timer ticks. Opening a call
(credentials, connecting, IAM) happens in that worker, never in the caller's thread.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from voiced.protocol.results import AudioDelivered, EndpointSwitched, RecognitionEvent, Retrying, SessionError
from voiced.speechkit.auth import CredentialError, Credentials
from voiced.speechkit.client import RecognitionSession, SpeechKitClient
from voiced.speechkit.config import RecognitionSettings
from voiced.speechkit.resilience import (
    FALLBACK,
    PRIMARY,
    Backoff,
    CancelCall,
    Close,
    Deliver,
    EndpointHealth,
    FinishCall,
    OpenCall,
    SendToCall,
    SessionCore,
)

log = logging.getLogger(__name__)


class Client(Protocol):
    """Where a session's calls go: a gRPC endpoint (SpeechKitClient) or an engine in this
    process (voiced.server.local.LocalRecognizer)."""

    target: str

    def wait_connected(self, timeout_s: float) -> bool: ...

    def session(self) -> Any: ...

    def close(self) -> None: ...


_END = object()


class Recognizer:
    """Sessions against a primary endpoint, with an optional fallback endpoint."""

    def __init__(
        self,
        settings: RecognitionSettings,
        target: str,
        *,
        fallback_target: str | None = None,
        fallback_client: Client | None = None,
        credentials: Credentials | None = None,
        on_switch: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        """The fallback is `fallback_target` (a gRPC endpoint: the primary's credentials go
        there only with `fallback.send_credentials`) or `fallback_client` (e.g. the engine in
        this process, voiced.server.local)."""
        self.settings = settings
        self.credentials = credentials
        self._on_switch = on_switch
        self.clock = clock
        self._credentials: dict[str, Credentials | None] = {PRIMARY: credentials}
        self.clients: dict[str, Client] = {
            PRIMARY: SpeechKitClient(settings, target, credentials.metadata if credentials is not None else None)
        }
        if settings.fallback is not None and fallback_client is not None:
            self.clients[FALLBACK] = fallback_client
            self._credentials[FALLBACK] = None
        elif settings.fallback is not None and fallback_target is not None:
            given = credentials if settings.fallback.send_credentials else None
            self._credentials[FALLBACK] = given
            self.clients[FALLBACK] = SpeechKitClient(
                settings.for_fallback(), fallback_target, given.metadata if given is not None else None
            )
        self.health = EndpointHealth(has_fallback=FALLBACK in self.clients)
        self.backoff = Backoff(settings.retry)
        self.lock = threading.Lock()  # guards `health` across sessions
        self._closed = threading.Event()
        self._prober: threading.Thread | None = None

    def session(self) -> RecognizerSession:
        return RecognizerSession(self)

    def switched(self, event: EndpointSwitched) -> None:
        log.warning(
            "recognition switched to the %s endpoint %s: %s", event.to, self.clients[event.to].target, event.reason
        )
        if self._on_switch is not None:
            self._on_switch(event.to)
        if event.to == FALLBACK and (self._prober is None or not self._prober.is_alive()):
            self._prober = threading.Thread(target=self._probe_primary, name="probe-primary", daemon=True)
            self._prober.start()

    def _probe_primary(self) -> None:
        """While sessions go to the fallback, try the primary's connection now and then."""
        fallback = self.settings.fallback
        assert fallback is not None  # only a recognizer with a fallback switches to it
        while not self._closed.wait(fallback.probe_interval_s):
            if self.clients[PRIMARY].wait_connected(self.settings.timeouts.connect_s):
                with self.lock:
                    self.health.on_fallback = False
                log.info("the primary endpoint %s answers again", self.clients[PRIMARY].target)
                return

    def open_call(self, target: str, refresh: bool) -> RecognitionSession:
        """A call to `target`; raises CredentialError (a credential, or an unreachable endpoint)."""
        client = self.clients[target]
        credentials = self._credentials[target]
        if refresh and credentials is not None:
            credentials.refresh()
        if not client.wait_connected(self.settings.timeouts.connect_s):
            raise CredentialError(
                f"the {target} endpoint {client.target} is not reachable "
                f"(no connection within {self.settings.timeouts.connect_s:g} s)",
                code="UNAVAILABLE",
            )
        return client.session()

    def explain(self, error: SessionError, target: str) -> SessionError:
        """Name the credential that was refused (by fingerprint), so the user knows which."""
        if error.code == "UNAUTHENTICATED" and (used := self._credentials.get(target)) is not None:
            return SessionError(error.code, f"{error.details} [credential: {used.describe()}]")
        return error

    def close(self) -> None:
        self._closed.set()
        for client in self.clients.values():
            client.close()
        for used in {id(used): used for used in self._credentials.values()}.values():  # each once
            if (tokens := getattr(used, "tokens", None)) is not None:
                tokens.close()

    def __enter__(self) -> Recognizer:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


class RecognizerSession:
    def __init__(self, recognizer: Recognizer):
        self._recognizer = recognizer
        self._inbox: queue.SimpleQueue = queue.SimpleQueue()
        self._out: queue.SimpleQueue = queue.SimpleQueue()
        self._calls: dict[int, RecognitionSession | _DeadCall] = {}
        self._targets: dict[int, str] = {}
        self._lock = threading.Lock()
        self._finished = False
        with recognizer.lock:
            self.core = SessionCore(recognizer.settings, recognizer.health, recognizer.backoff, recognizer.clock())
        threading.Thread(target=self._work, name="recognizer-session", daemon=True).start()

    def send(self, audio: bytes) -> None:
        """Queue audio; never blocks."""
        with self._lock:
            if self._finished:
                raise RuntimeError("send() after finish()")
            self._inbox.put(("audio", audio))

    def finish(self) -> None:
        with self._lock:
            if not self._finished:
                self._finished = True
                self._inbox.put(("finish",))

    def cancel(self) -> None:
        self._inbox.put(("cancel",))

    def events(self) -> Iterator[RecognitionEvent]:
        """Results in order, with Retrying / EndpointSwitched notices; a session that fails for
        good ends with one SessionError. Iterate once."""
        while (event := self._out.get()) is not _END:
            yield event

    def _work(self) -> None:
        recognizer, core = self._recognizer, self.core
        try:
            while True:
                wake = core.wake_at()
                try:
                    item = self._inbox.get(timeout=None if wake is None else max(0.0, wake - recognizer.clock()))
                except queue.Empty:
                    item = ("tick",)
                now = recognizer.clock()
                if item[0] == "delivered":
                    # the caller's finish reached the server on the session's current call
                    if self._finished and item[1] == max(self._calls):
                        self._out.put(AudioDelivered())
                    continue
                with recognizer.lock:
                    decisions = self._step(item, now) + core.tick(now)
                if self._carry_out(decisions):
                    return
        except Exception as exc:  # a bug here must still end the caller's events
            log.exception("recognizer session failed")
            for handle in self._calls.values():
                handle.cancel()
            self._out.put(SessionError("INTERNAL", f"recognizer session failed: {exc}"))
            self._out.put(_END)

    def _step(self, item: tuple, now: float) -> list:
        kind, core = item[0], self.core
        if kind == "audio":
            return core.audio(item[1], now)
        if kind == "finish":
            return core.finish(now)
        if kind == "cancel":
            return core.cancel()
        if kind == "event":
            return core.event(item[1], item[2], now)
        if kind == "ended":
            return core.ended(item[1], now)
        return []

    def _carry_out(self, decisions: list) -> bool:
        """Carry out the decisions; True once the session is over."""
        for decision in decisions:
            if isinstance(decision, OpenCall):
                self._open(decision)
            elif isinstance(decision, SendToCall):
                self._calls[decision.call].send(decision.audio)
            elif isinstance(decision, FinishCall):
                self._calls[decision.call].finish()
            elif isinstance(decision, CancelCall):
                if handle := self._calls.get(decision.call):
                    handle.cancel()
            elif isinstance(decision, Deliver):
                self._deliver(decision.event)
            elif isinstance(decision, Close):
                self._out.put(_END)
                return True
        return False

    def _deliver(self, event: RecognitionEvent) -> None:
        recognizer = self._recognizer
        if isinstance(event, EndpointSwitched):
            recognizer.switched(event)
        elif isinstance(event, Retrying):
            log.warning(
                "%s call failed (%s: %s): attempt %d in %.2f s on the %s endpoint",
                event.target,
                event.code,
                event.details,
                event.attempt,
                event.delay_s,
                event.target,
            )
        elif isinstance(event, SessionError):
            event = recognizer.explain(event, recognizer.health.last_target)
            level = logging.ERROR if event.code in ("INVALID_ARGUMENT", "UNAUTHENTICATED") else logging.WARNING
            log.log(level, "recognition failed: %s %s", event.code, event.details)
        self._out.put(event)

    def _open(self, decision: OpenCall) -> None:
        """Open a call (in this worker: it may wait for a connection or for IAM)."""
        self._targets[decision.call] = decision.target
        try:
            handle = self._recognizer.open_call(decision.target, decision.refresh_credentials)
        except CredentialError as exc:
            self._inbox.put(("event", decision.call, SessionError(exc.code, str(exc))))
            self._inbox.put(("ended", decision.call))
            self._calls[decision.call] = _DeadCall()
            return
        self._calls[decision.call] = handle
        handle.on_delivered = lambda call=decision.call: self._inbox.put(("delivered", call))
        threading.Thread(
            target=self._read, args=(decision.call, handle), name=f"call-{decision.call}", daemon=True
        ).start()
        for chunk in decision.audio:
            handle.send(chunk)
        if decision.finish:
            handle.finish()

    def _read(self, call: int, handle: RecognitionSession) -> None:
        try:
            for event in handle.events():
                self._inbox.put(("event", call, event))
        finally:
            self._inbox.put(("ended", call))


class _DeadCall:
    """Stands for a call that could not be opened (its error is already on the way)."""

    def send(self, audio: bytes) -> None:
        pass

    def finish(self) -> None:
        pass

    def cancel(self) -> None:
        pass
