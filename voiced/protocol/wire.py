"""SpeechKit v2 protobuf messages, both ways (pure: no I/O): audio requests, the results a
client reads from responses, and the responses a server makes of its results. The client's
config request and audio encoding live with its settings (voiced.speechkit.client)."""

from __future__ import annotations

from collections.abc import Sequence

from google.protobuf.duration_pb2 import Duration

from voiced.proto.yandex.cloud.ai.stt.v2 import stt_service_pb2 as stt
from voiced.protocol.results import Final, Partial, RecognitionEvent
from voiced.protocol.vocabulary import Word


def audio_request(audio: bytes) -> stt.StreamingRecognitionRequest:
    return stt.StreamingRecognitionRequest(audio_content=audio)


def _seconds(duration) -> float:
    return duration.seconds + duration.nanos / 1e9


def _words(alternative: stt.SpeechRecognitionAlternative) -> tuple[Word, ...]:
    return tuple(Word(w.word, _seconds(w.start_time), _seconds(w.end_time), w.confidence) for w in alternative.words)


def response_events(response: stt.StreamingRecognitionResponse) -> list[RecognitionEvent]:
    """One event per chunk: the first alternative is the best one.

    A partial without any alternative says nothing and is dropped; a final without one is
    kept (as empty text) because it still marks the end of the utterance."""
    events: list[RecognitionEvent] = []
    for chunk in response.chunks:
        best = chunk.alternatives[0] if chunk.alternatives else None
        if chunk.final:
            events.append(
                Final(
                    text=best.text if best else "",
                    confidence=best.confidence if best else 0.0,
                    words=_words(best) if best else (),
                    end_of_utterance=chunk.end_of_utterance,
                )
            )
        elif best is not None:
            events.append(Partial(best.text))
    return events


def _duration(seconds: float) -> Duration:
    duration = Duration()
    duration.FromNanoseconds(round(seconds * 1e9))
    return duration


def result_response(
    final: bool, text: str, confidence: float, words: Sequence[Word]
) -> stt.StreamingRecognitionResponse:
    """The server's chunk of one result: a final one ends its utterance."""
    infos = [
        stt.WordInfo(start_time=_duration(w.start_s), end_time=_duration(w.end_s), word=w.word, confidence=w.confidence)
        for w in words
    ]
    alternative = stt.SpeechRecognitionAlternative(text=text, confidence=confidence, words=infos)
    chunk = stt.SpeechRecognitionChunk(alternatives=[alternative], final=final, end_of_utterance=final)
    return stt.StreamingRecognitionResponse(chunks=[chunk])
