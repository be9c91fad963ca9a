"""The recognition engine in the daemon's own process: no port, no protocol, one endpointer.

`LocalRecognizer` offers what the gRPC client offers: `session()` gives a session with
`send` / `finish` / `cancel` (from one thread) and `events()` (from another), yielding the
same Partial / Final / SessionError / AudioDelivered results. The daemon's endpointer has
already decided where speech starts and ends, so each session is one utterance: the
server's own endpointer, which segments a client's stream, is not run a second time. Its
final comes even without words, with the engine's reason (a rejected command says why).
Nothing else can reach it: there is no listening socket.

Decoding runs in a thread per session, as the gRPC server's handlers do, so the caller's
listening loop never waits for the engine.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterator

from voiced.protocol.results import AudioDelivered, Final, Partial, RecognitionEvent, SessionError
from voiced.server.config import ServerSettings
from voiced.server.engine import Engine
from voiced.server.pool import PoolExhausted
from voiced.server.session import Result, StreamRecognition
from voiced.server.spec import SessionSpec, served_model
from voiced.speechkit.config import RecognitionSettings

log = logging.getLogger(__name__)

IN_PROCESS = "in-process"  # the target name in logs and switch events
_END = object()


class LocalRecognizer:
    """Sessions on an engine loaded in this process; `close()` frees the engine."""

    target = IN_PROCESS

    def __init__(self, engine: Engine, recognition: RecognitionSettings, server: ServerSettings):
        language, model = served_model(recognition.language, recognition.model, engine.languages, engine.grammars)
        self._spec = SessionSpec(
            language=language,
            model=model,
            sample_rate=recognition.sample_rate,
            partial_results=recognition.partial_results,
            single_utterance=False,
            raw_results=recognition.raw_results,
            profanity_filter=recognition.profanity_filter,
        )
        self._engine = engine
        self._server = server

    def session(self) -> LocalSession:
        return LocalSession(self._engine, self._spec, self._server)

    def wait_connected(self, timeout_s: float) -> bool:
        return True  # nothing to connect to

    def close(self) -> None:
        times = self._engine.stage_times
        if times.utterances:  # what the benchmarks read
            log.info(
                "recognition CPU partials %.2f s final %.2f s over %d utterances",
                times.partials_s,
                times.final_s,
                times.utterances,
            )
        self._engine.close()


class LocalSession:
    def __init__(self, engine: Engine, spec: SessionSpec, server: ServerSettings):
        self._engine = engine
        self._spec = spec
        self._server = server
        self._inbox: queue.SimpleQueue = queue.SimpleQueue()
        self._out: queue.SimpleQueue = queue.SimpleQueue()
        self._finished = False
        threading.Thread(target=self._work, name="local-session", daemon=True).start()

    def send(self, audio: bytes) -> None:
        """Queue audio; never blocks."""
        if self._finished:
            raise RuntimeError("send() after finish()")
        self._inbox.put(audio)

    def finish(self) -> None:
        if not self._finished:
            self._finished = True
            self._inbox.put(None)

    def cancel(self) -> None:
        self._inbox.put(_END)

    def events(self) -> Iterator[RecognitionEvent]:
        """Results as they come; a failed session ends with one SessionError. Iterate once."""
        while (event := self._out.get()) is not _END:
            yield event

    def _work(self) -> None:
        recognizer = stream = None
        try:
            while (item := self._inbox.get()) is not _END:
                if stream is None:
                    recognizer = self._engine.lend(self._spec.language, self._spec.model)
                    stream = StreamRecognition(
                        self._spec,
                        recognizer,
                        None,
                        self._server.partial_interval_s,
                        self._server.profanity_words,
                        unchanged_partials=True,
                    )
                if item is None:  # finished: every byte is with the engine now
                    self._out.put(AudioDelivered())
                    self._deliver(stream.finish())
                    break
                self._deliver(stream.feed(item))
        except PoolExhausted as exc:
            self._out.put(SessionError("RESOURCE_EXHAUSTED", str(exc)))
        except Exception as exc:  # an engine failure ends this session only
            log.exception("in-process recognition failed")
            self._out.put(SessionError("INTERNAL", f"recognition failed: {exc}"))
        finally:
            if recognizer is not None:
                self._engine.give_back(self._spec.language, self._spec.model, recognizer)
            self._out.put(_END)

    def _deliver(self, results: list[Result]) -> None:
        for result in results:
            if not result.final:
                self._out.put(Partial(result.text, result.audio_s))
                continue
            self._out.put(
                Final(result.text, result.confidence, result.words, reason=result.reason, unsure=result.unsure)
            )
