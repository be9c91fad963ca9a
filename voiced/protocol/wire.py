"""SpeechKit v2 protobuf messages, both ways (pure: no I/O): the client's requests from its
settings and its results from responses; the server's responses from its results."""

from __future__ import annotations

from collections.abc import Sequence

from google.protobuf.duration_pb2 import Duration

from voiced.proto.yandex.cloud.ai.stt.v2 import stt_service_pb2 as stt
from voiced.protocol.results import Final, Partial, RecognitionEvent
from voiced.protocol.vocabulary import Word
from voiced.speechkit.config import RecognitionSettings


def config_request(settings: RecognitionSettings) -> stt.StreamingRecognitionRequest:
    """The first message of every session: what the recognizer is asked for."""
    specification = stt.RecognitionSpec(
        language_code=settings.language,
        model=settings.model,
        profanity_filter=settings.profanity_filter,
        partial_results=settings.partial_results,
        raw_results=settings.raw_results,
        audio_encoding=settings.encoding,
        sample_rate_hertz=settings.sample_rate,
    )
    config = stt.RecognitionConfig(specification=specification)
    if settings.folder_id is not None:  # sent by a service account, the service refuses it
        config.folder_id = settings.folder_id
    return stt.StreamingRecognitionRequest(config=config)


def audio_request(audio: bytes) -> stt.StreamingRecognitionRequest:
    return stt.StreamingRecognitionRequest(audio_content=audio)


class AudioEncoder:
    """A session's PCM as the audio messages of its configured encoding, in order.

    LINEAR16_PCM goes as it is; OGG_OPUS is one Ogg Opus stream per session (each session's
    config starts a new one), a page per piece, ended by `finish()`."""

    def __init__(self, settings: RecognitionSettings):
        self._opus = None
        if settings.encoding == "OGG_OPUS":
            from voiced.audio.opus import OggOpusEncoder  # the optional `opus` extra

            self._opus = OggOpusEncoder(settings.sample_rate)

    def requests(self, pcm: bytes) -> list[stt.StreamingRecognitionRequest]:
        """Messages for 16-bit mono PCM at settings.sample_rate (Opus: none while it holds < 20 ms)."""
        if self._opus is None:
            return [audio_request(pcm)]
        audio = self._opus.encode(pcm)
        return [audio_request(audio)] if audio else []

    def finish(self) -> list[stt.StreamingRecognitionRequest]:
        """Messages that end the audio (the end of the Ogg stream), before the half-close."""
        audio = self._opus.flush() if self._opus is not None else b""
        return [audio_request(audio)] if audio else []


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
