"""How one recognition session survives the service's limits and failures, as a pure core.

A caller's session (one stream of audio) is carried by one or more gRPC calls:
- **Limits.** A call is half-closed when the caller has sent nothing for a while (well
  before the service's 5 s gap), and the next audio opens a new call. Once `1 - roll_margin`
  of a call's audio or byte budget is used, the call is half-closed after the next pause
  (`pause_s` of silence, webrtcvad) and the audio goes on in a new call; with no pause it
  rolls just before the limit. Every byte goes to exactly one call, in order. Budgets are
  counted on the PCM before encoding, so with Ogg Opus the byte count is an upper bound.
- **Errors.** A call's audio is kept until the call ends. UNAVAILABLE, INTERNAL,
  RESOURCE_EXHAUSTED and DEADLINE_EXCEEDED: the audio is sent again in a new call after an
  exponential backoff with jitter (tenacity), at most `attempts` calls. UNAUTHENTICATED: the
  credentials are refreshed once and the audio sent again; refused again, the session ends
  with a clear error and new sessions fail at once for `auth_backoff_s`. Anything else
  (INVALID_ARGUMENT: a configuration error) ends the session with the server's details.
  A call that already delivered a final is not replayed (its words would come twice).
- **Fallback.** After `fallback_after` UNAVAILABLE calls on the primary the audio goes to
  the fallback endpoint, and so do new sessions until the edge reports that the primary
  answers again.
- **Between sessions.** A session that failed for good makes the next session's first call
  wait out a backoff that grows with consecutive failures (audio is buffered meanwhile).
Every outcome reaches the caller as an event: results in order, Retrying, EndpointSwitched,
and one SessionError if the session fails for good.

No I/O and no clock: the edge (voiced.speechkit.recognizer) passes `now` and carries out
the decisions.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import tenacity

from voiced.audio.vad import VAD_RATES, EndpointerSettings, FrameSplitter, webrtc_vad
from voiced.protocol.results import EndpointSwitched, Final, RecognitionEvent, Retrying, SessionError
from voiced.speechkit.config import RecognitionSettings, RetrySettings

PRIMARY, FALLBACK = "primary", "fallback"
RETRYABLE = frozenset({"UNAVAILABLE", "INTERNAL", "RESOURCE_EXHAUSTED", "DEADLINE_EXCEEDED"})
MESSAGE_OVERHEAD = 16  # protobuf framing of one audio message, generously
CONFIG_ALLOWANCE = 512  # the config message
MAX_PIECE = 64 * 1024  # larger sends are cut so a roll can fall between the pieces


@dataclass(frozen=True)
class OpenCall:
    call: int
    target: str
    audio: tuple[bytes, ...]  # already sent by the caller: send it right away
    finish: bool  # and half-close after it
    refresh_credentials: bool


@dataclass(frozen=True)
class SendToCall:
    call: int
    audio: bytes


@dataclass(frozen=True)
class FinishCall:
    call: int


@dataclass(frozen=True)
class CancelCall:
    call: int


@dataclass(frozen=True)
class Deliver:
    event: RecognitionEvent


@dataclass(frozen=True)
class Close:
    """The session's events end here."""


Decision = OpenCall | SendToCall | FinishCall | CancelCall | Deliver | Close


class Backoff:
    """Exponential backoff with jitter: tenacity's schedule, asked for the n-th delay."""

    def __init__(self, settings: RetrySettings):
        self._wait = tenacity.wait_exponential_jitter(
            multiplier=settings.initial_s, max=settings.max_s, jitter=settings.jitter_s
        )

    def delay(self, failures: int) -> float:
        state = tenacity.RetryCallState(retry_object=None, fn=None, args=(), kwargs={})  # type: ignore[arg-type]
        state.attempt_number = max(1, failures)
        return self._wait(state)


@dataclass
class EndpointHealth:
    """What one client knows across its sessions (the edge guards it with a lock)."""

    has_fallback: bool = False
    on_fallback: bool = False
    last_target: str = PRIMARY
    failures: int = 0  # consecutive sessions that failed with a retryable status
    retry_after: float = 0.0  # the next session's first call waits until then
    auth_refused_until: float = 0.0
    auth_details: str = ""

    def target(self) -> str:
        return FALLBACK if self.on_fallback and self.has_fallback else PRIMARY


class SilenceTracker:
    """How long the audio has been silent at its end (the caller's PCM, whatever the encoding)."""

    def __init__(self, sample_rate: int):
        settings = EndpointerSettings()
        self._vad = webrtc_vad(settings, sample_rate)
        self._frames = FrameSplitter(settings.frame_bytes(sample_rate))
        self._frame_s = settings.frame_ms / 1000
        self.trailing_s = 0.0

    def feed(self, pcm: bytes) -> float:
        for frame in self._frames.feed(pcm):
            self.trailing_s = 0.0 if self._vad(frame) else self.trailing_s + self._frame_s
        return self.trailing_s


@dataclass
class _Call:
    id: int
    target: str
    chunks: list[bytes]
    open_at: float
    last_send: float
    tries: int = 1
    unavailable_on_primary: int = 0
    refreshed: bool = False
    refresh: bool = False
    audio_bytes: int = 0
    data_bytes: int = CONFIG_ALLOWANCE
    finished: bool = False
    opened: bool = False
    ended: bool = False
    got_final: bool = False
    events: list = field(default_factory=list)


class SessionCore:
    def __init__(self, settings: RecognitionSettings, health: EndpointHealth, backoff: Backoff, now: float):
        self.settings = settings
        self.health = health
        self.backoff = backoff
        limits = settings.limits
        # the core sees the PCM before any encoding: its length is the audio's duration, and
        # as a byte count it bounds what is sent (Ogg Opus is about a tenth of it)
        bytes_per_s = settings.sample_rate * 2
        self._hard_audio = int(limits.max_audio_s * bytes_per_s * 0.99)
        self._hard_data = int(limits.max_bytes * 0.99) - CONFIG_ALLOWANCE
        keep = 1.0 - limits.roll_margin
        self._soft_audio = int(limits.max_audio_s * bytes_per_s * keep)
        self._soft_data = int(limits.max_bytes * keep)
        self._silence = SilenceTracker(settings.sample_rate) if settings.sample_rate in VAD_RATES else None
        # half-close an idle call well before the service's gap limit
        self.idle_close_s = max(limits.max_gap_s * 0.5, limits.max_gap_s - 1.5)
        self._calls: list[_Call] = []  # in audio order; the head is the oldest not yet ended
        self._current: _Call | None = None  # takes the caller's audio
        self._next_id = 1
        self._caller_finished = False
        self.closed = False
        self.calls_opened = 0

    # -- caller side ----------------------------------------------------------------------

    def audio(self, chunk: bytes, now: float) -> list[Decision]:
        decisions: list[Decision] = []
        for start in range(0, len(chunk), MAX_PIECE):
            decisions += self._piece(chunk[start : start + MAX_PIECE], now)
        return decisions

    def finish(self, now: float) -> list[Decision]:
        self._caller_finished = True
        return self._end_current() + self._flush()

    def cancel(self) -> list[Decision]:
        decisions: list[Decision] = [CancelCall(c.id) for c in self._calls if c.opened and not c.ended]
        self._calls.clear()
        self.closed = True
        return [*decisions, Close()]

    # -- call side ------------------------------------------------------------------------

    def event(self, call_id: int, event: RecognitionEvent, now: float) -> list[Decision]:
        call = self._find(call_id)
        if call is None or self.closed:
            return []
        if isinstance(event, SessionError):
            return self._failed(call, event, now)
        if isinstance(event, Final):
            call.got_final = True
        call.events.append(event)
        return self._flush()

    def ended(self, call_id: int, now: float) -> list[Decision]:
        call = self._find(call_id)
        if call is None or self.closed:
            return []
        call.ended = True
        self.health.failures = 0
        self.health.retry_after = 0.0
        return self._flush()

    def tick(self, now: float) -> list[Decision]:
        if self.closed:
            return []
        decisions: list[Decision] = []
        for call in self._calls:
            if not call.opened and call.open_at <= now:
                decisions.append(self._open(call))
        current = self._current
        if current is not None and now - current.last_send >= self.idle_close_s:
            decisions += self._end_current()
        return decisions

    def wake_at(self) -> float | None:
        """When `tick` has something to do, None = only on input."""
        if self.closed:
            return None
        times = [c.open_at for c in self._calls if not c.opened]
        if self._current is not None:
            times.append(self._current.last_send + self.idle_close_s)
        return min(times) if times else None

    # -- inside ---------------------------------------------------------------------------

    def _piece(self, piece: bytes, now: float) -> list[Decision]:
        if self.closed:
            return []
        decisions: list[Decision] = []
        call = self._current
        if call is not None and call.audio_bytes and self._past(call, len(piece), self._hard_audio, self._hard_data):
            decisions += self._end_current()  # no pause came in time: roll before the limit
            call = None
        if call is None:
            decisions += self._new_call(now)
            if self.closed:
                return decisions
            call = self._current
            assert call is not None  # _new_call opened it
        call.chunks.append(piece)
        call.audio_bytes += len(piece)
        call.data_bytes += len(piece) + MESSAGE_OVERHEAD
        call.last_send = now
        if call.opened:
            decisions.append(SendToCall(call.id, piece))
        trailing_s = self._silence.feed(piece) if self._silence is not None else 0.0
        if self._past(call, 0, self._soft_audio, self._soft_data) and (
            self._silence is None or trailing_s >= self.settings.limits.pause_s
        ):
            decisions += self._end_current()  # an utterance boundary: roll here
        return decisions

    @staticmethod
    def _past(call: _Call, extra: int, audio_limit: int, data_limit: int) -> bool:
        over_audio = call.audio_bytes + extra > audio_limit
        return over_audio or call.data_bytes + extra + MESSAGE_OVERHEAD > data_limit

    def _new_call(self, now: float) -> list[Decision]:
        health = self.health
        if now < health.auth_refused_until:
            return self._terminate(
                SessionError(
                    "UNAUTHENTICATED",
                    (
                        f"credentials were refused ({health.auth_details}); not trying again for "
                        f"{health.auth_refused_until - now:.0f} s: fix them and reload"
                    ),
                ),
                now,
                count=False,
            )
        target = health.target()
        call = _Call(self._take_id(), target, [], open_at=max(now, health.retry_after), last_send=now)
        self._calls.append(call)
        self._current = call
        decisions = self._switch_to(
            target,
            "sessions go to the fallback while the primary is unreachable"
            if target == FALLBACK
            else "the primary answers again",
        )
        if call.open_at <= now:
            decisions.append(self._open(call))
        return decisions

    def _open(self, call: _Call) -> OpenCall:
        call.opened = True
        self.calls_opened += 1
        return OpenCall(call.id, call.target, tuple(call.chunks), call.finished, call.refresh)

    def _end_current(self) -> list[Decision]:
        call, self._current = self._current, None
        if call is None:
            return []
        call.finished = True
        return [FinishCall(call.id)] if call.opened else []

    def _failed(self, call: _Call, error: SessionError, now: float) -> list[Decision]:
        retry = self.settings.retry
        code = error.code
        if call.target == PRIMARY and code == "UNAVAILABLE":
            call.unavailable_on_primary += 1
        if code in RETRYABLE and not call.got_final and call.tries < retry.attempts:
            target = call.target
            if (
                self.health.has_fallback
                and target == PRIMARY
                and code == "UNAVAILABLE"
                and call.unavailable_on_primary >= retry.fallback_after
            ):
                target = FALLBACK
                self.health.on_fallback = True
            delay = 0.0 if target != call.target else self.backoff.delay(call.tries)
            return self._replace(call, target, now, delay, refresh=False, error=error)
        if code == "UNAUTHENTICATED" and not call.refreshed and not call.got_final:
            return self._replace(call, call.target, now, 0.0, refresh=True, error=error)
        if code == "INVALID_ARGUMENT":
            error = SessionError(
                code, f"configuration error, the {call.target} endpoint refused the request: {error.details}"
            )
        return self._terminate(error, now)

    def _replace(
        self, call: _Call, target: str, now: float, delay: float, refresh: bool, error: SessionError
    ) -> list[Decision]:
        """A new call for the same audio, in the same place, opened after `delay`."""
        replacement = _Call(
            self._take_id(),
            target,
            call.chunks,
            open_at=now + delay,
            last_send=call.last_send,
            tries=call.tries + 1,
            unavailable_on_primary=call.unavailable_on_primary,
            refreshed=call.refreshed or refresh,
            refresh=refresh,
            audio_bytes=call.audio_bytes,
            data_bytes=call.data_bytes,
            finished=call.finished,
        )
        self._calls[self._calls.index(call)] = replacement
        if self._current is call:
            self._current = replacement
        decisions: list[Decision] = [
            Deliver(Retrying(error.code, error.details, replacement.tries, round(delay, 3), target))
        ]
        decisions += self._switch_to(target, f"the primary is unreachable ({error.code})")
        if delay <= 0:
            decisions.append(self._open(replacement))
        return decisions

    def _terminate(self, error: SessionError, now: float, count: bool = True) -> list[Decision]:
        """The session fails for good: what came before is delivered, then the error."""
        health = self.health
        if count and error.code in RETRYABLE:
            health.failures += 1
            health.retry_after = now + self.backoff.delay(health.failures)
        if count and error.code == "UNAUTHENTICATED":
            health.auth_refused_until = now + self.settings.retry.auth_backoff_s
            health.auth_details = error.details
        decisions: list[Decision] = []
        for call in self._calls:
            decisions += [Deliver(e) for e in call.events]
            if call.opened and not call.ended:
                decisions.append(CancelCall(call.id))
        self._calls.clear()
        self._current = None
        self.closed = True
        return [*decisions, Deliver(error), Close()]

    def _switch_to(self, target: str, reason: str) -> list[Decision]:
        if target == self.health.last_target:
            return []
        self.health.last_target = target
        return [Deliver(EndpointSwitched(target, reason))]

    def _flush(self) -> list[Decision]:
        decisions: list[Decision] = []
        while self._calls:
            head = self._calls[0]
            decisions += [Deliver(e) for e in head.events]
            head.events.clear()
            if not head.ended:
                break
            self._calls.pop(0)
        if not self._calls and self._caller_finished and self._current is None and not self.closed:
            self.closed = True
            decisions.append(Close())
        return decisions

    def _find(self, call_id: int) -> _Call | None:
        return next((c for c in self._calls if c.id == call_id), None)

    def _take_id(self) -> int:
        self._next_id += 1
        return self._next_id - 1
