"""What a recognition session yields: intermediate and final results, or the error that ended it."""

from __future__ import annotations

from dataclasses import dataclass

from voiced.protocol.vocabulary import Word


@dataclass(frozen=True)
class Partial:
    """An intermediate hypothesis of the utterance in progress (`final=false`). An empty text:
    the hypothesis has not changed."""

    text: str
    # how much of the session's audio the hypothesis has heard, in seconds, where the
    # recognizer says (the in-process engine; the wire has no such field): None, unknown
    audio_s: float | None = None


@dataclass(frozen=True)
class Final:
    """The result of a whole utterance (`final=true`), best alternative."""

    text: str
    confidence: float
    words: tuple[Word, ...] = ()
    end_of_utterance: bool = False
    reason: str = ""  # an in-process engine's why, when it recognized no command (the wire has none)
    unsure: str = ""  # an in-process engine's command heard not surely enough: to confirm (the wire has none)


@dataclass(frozen=True)
class SessionError:
    """The call ended with a gRPC status other than OK; `code` is its name, e.g. "UNAVAILABLE"."""

    code: str
    details: str


@dataclass(frozen=True)
class Retrying:
    """A call failed with `code` and its audio is being sent again (after `delay_s`) to `target`
    ("primary" or "fallback"); `attempt` counts calls for this audio, the first one is 1."""

    code: str
    details: str
    attempt: int
    delay_s: float
    target: str


@dataclass(frozen=True)
class EndpointSwitched:
    """From now on sessions go to `to` ("primary" or "fallback")."""

    to: str
    reason: str


@dataclass(frozen=True)
class AudioDelivered:
    """After the caller's finish(): the recognizer has taken all of the session's audio (gRPC
    sent the last message), so its final can be expected from now on, however long the audio
    waited to be sent (input read faster than real time, a busy recognizer)."""


RecognitionEvent = Partial | Final | SessionError | Retrying | EndpointSwitched | AudioDelivered
