"""What every engine of the server gives and takes: 16 kHz audio in, a Hypothesis out.

The pocketsphinx recognizers (voiced.server.pocketsphinx) and the Whisper commands
recognizer (voiced.server.whisper) both offer start / process / partial / end / abort, and
the channel-adaptation calls reset / channel / adopt; the engine (voiced.server.engine)
lends them to sessions.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Protocol

from voiced.protocol.vocabulary import Word

ENGINE_RATE = 16000  # what the acoustic models are trained on
FRAMES_PER_SECOND = 100  # pocketsphinx's feature frame rate


class ModelError(Exception):
    """A configured model cannot be loaded; the message says which file or word is wrong."""


@dataclass(frozen=True)
class Hypothesis:
    text: str
    confidence: float
    words: tuple[Word, ...]
    reason: str = ""  # why an engine reports no command (a rejection), for logs and in-process callers
    # the command it rejected only for a number heard not surely enough, to be confirmed (in-process callers)
    unsure: str = ""


@dataclass
class StageTimes:
    """CPU seconds this engine spent per stage, for benchmarks (thread time of its callers)."""

    partials_s: float = 0.0
    final_s: float = 0.0
    utterances: int = 0

    def __post_init__(self):
        self._lock = threading.Lock()

    def add(self, partials_s: float = 0.0, final_s: float = 0.0, utterances: int = 0) -> None:
        with self._lock:
            self.partials_s += partials_s
            self.final_s += final_s
            self.utterances += utterances


class Recognizer(Protocol):
    """One utterance at a time: start, feed 16 kHz PCM, read partials, end with a Hypothesis."""

    @property
    def in_utterance(self) -> bool: ...

    def start(self) -> None: ...

    def process(self, pcm: bytes) -> None: ...

    def partial(self) -> str: ...

    def end(self) -> Hypothesis: ...

    def abort(self) -> None: ...

    def reset(self) -> None:
        """Forget the channel adaptation of earlier sessions."""

    def channel(self) -> list[str]: ...

    def adopt(self, channel: list[str]) -> None: ...


class Decoders(Protocol):
    """Where the server's sessions borrow their recognizers: the engine in the server's own
    process (voiced.server.engine), or the decoder processes of `--workers`
    (voiced.server.decoders)."""

    @property
    def languages(self) -> list[str]: ...

    @property
    def grammars(self) -> dict[str, str]: ...

    def lend(self, language: str, model: str): ...

    def give_back(self, language: str, model: str, recognizer) -> None: ...

    def close(self) -> None: ...
