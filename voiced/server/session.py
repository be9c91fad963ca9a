"""One call's recognition: client audio in, result chunks out (no network, no clock).

An Ogg Opus stream is decoded first (its pages may be cut anywhere between messages).
The stream is resampled to the engine's 16 kHz, cut into utterances by the same
endpointer the daemon uses (a pause ends an utterance, as the service does), and each
utterance is decoded as it arrives. Partials are read at a bounded cadence of audio and
sent only when they change; a final closes each utterance that has words. After
`single_utterance`'s first final, audio is accepted and ignored until the client closes.

Without an endpointer (`endpointing=None`: the daemon's in-process sessions, whose own
endpointer already decided where speech starts and ends) the whole stream is one utterance,
and its final is reported even without words, with the engine's reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import soxr

from voiced.audio import opus
from voiced.audio.vad import (
    Endpointer,
    EndpointerSettings,
    FrameSplitter,
    SpeechAudio,
    SpeechEnded,
    SpeechStarted,
    SpeechTimedOut,
)
from voiced.protocol.vocabulary import Word
from voiced.server.decoding import ENGINE_RATE, Hypothesis, Recognizer
from voiced.server.spec import SessionSpec
from voiced.textnorm import digits_to_words, words_to_digits


@dataclass(frozen=True)
class Result:
    """One SpeechRecognitionChunk: `final` ones close an utterance (end_of_utterance)."""

    final: bool
    text: str
    confidence: float = 0.0
    words: tuple[Word, ...] = ()
    reason: str = ""  # how the engine decided (a rejection's why), for logs and in-process callers
    unsure: str = ""  # a command to confirm before it runs (voiced.server.decoding.Hypothesis), in-process only
    # a partial's: the audio of the utterance it has heard, in seconds (for in-process callers)
    audio_s: float | None = None


def mask_profanity(text: str, words: frozenset[str]) -> str:
    """Each listed word keeps its first letter, the rest becomes asterisks (as the service does)."""
    return re.sub(r"\w+", lambda m: m[0][0] + "*" * (len(m[0]) - 1) if m[0].lower() in words else m[0], text)


class InvalidAudio(ValueError):
    """The audio cannot be decoded as the config said; the message is for the client."""


class StreamRecognition:
    def __init__(
        self,
        spec: SessionSpec,
        recognizer: Recognizer,
        endpointing: EndpointerSettings | None,
        partial_interval_s: float,
        profanity_words: tuple[str, ...],
        unchanged_partials: bool = False,
    ):
        """`unchanged_partials`: also report each partial read that has not changed, with an
        empty text (the daemon's in-process sessions: its listening core learns how much of
        the audio the hypothesis it has covers; on the wire only changes are sent)."""
        self.spec = spec
        self._recognizer = recognizer
        self._opus = opus.OggOpusDecoder() if spec.encoding == "OGG_OPUS" else None
        self._pcm_rate = opus.OPUS_RATE if self._opus is not None else spec.sample_rate
        self._resampler = (
            soxr.ResampleStream(self._pcm_rate, ENGINE_RATE, 1, dtype="int16")
            if self._pcm_rate != ENGINE_RATE
            else None
        )
        self._odd_byte = b""  # half a sample: messages may split a sample between them
        self.audio_s = 0.0  # of audio received (decoded), for the session's audio limit
        self._endpointer = Endpointer(endpointing, ENGINE_RATE) if endpointing is not None else None
        self._frames = FrameSplitter((endpointing or EndpointerSettings()).frame_bytes(ENGINE_RATE))
        self._partial_every = max(1, round(partial_interval_s * ENGINE_RATE * 2))  # in bytes of audio
        self._since_partial = 0
        self._last_partial = ""
        self._unchanged_partials = unchanged_partials
        self._decoded_s = 0.0  # of the utterance's audio, at the engine's rate
        self._utterance_start_s = 0.0
        self._profanity = frozenset(w.lower() for w in profanity_words)
        self.done = False  # single_utterance after its first final

    def _to_engine_rate(self, pcm: bytes, last: bool = False) -> bytes:
        if self._resampler is None:
            return pcm  # the frame splitter reassembles split samples itself
        pcm = self._odd_byte + pcm
        whole = len(pcm) // 2 * 2
        self._odd_byte = pcm[whole:]
        samples = np.frombuffer(pcm[:whole], dtype=np.int16)
        return self._resampler.resample_chunk(samples, last=last).tobytes()

    def _to_pcm(self, audio: bytes) -> bytes:
        if self._opus is None:
            return audio
        try:
            return self._opus.decode(audio)
        except opus.OggOpusError as error:
            raise InvalidAudio(f"audio_content is not a valid OGG_OPUS stream: {error}") from None

    def feed(self, audio: bytes) -> list[Result]:
        """Audio as the client sent it: 16-bit mono at spec.sample_rate, or pieces of Ogg Opus."""
        pcm = self._to_pcm(audio)
        self.audio_s += len(pcm) / 2 / self._pcm_rate
        if self.done:
            return []
        results: list[Result] = []
        for frame in self._frames.feed(self._to_engine_rate(pcm)):
            if self._endpointer is None:  # one utterance: the stream
                if not self._recognizer.in_utterance:
                    self._recognizer.start()
                results += self._decode(frame)
                continue
            for event in self._endpointer.process(frame):
                results += self._on_event(event)
                if self.done:
                    return results
        return results

    def finish(self) -> list[Result]:
        """The client half-closed: decode what is pending and finalize the open utterance."""
        if self.done:
            return []
        results: list[Result] = []
        tail = self._frames.remainder() + self._to_engine_rate(b"", last=True)
        if self._recognizer.in_utterance:
            if tail:
                self._recognizer.process(tail)
            results += self._final()
        return results

    def _on_event(self, event) -> list[Result]:
        if isinstance(event, SpeechStarted):
            self._utterance_start_s = event.at_s
            self._recognizer.start()
            return self._decode(event.audio)
        if isinstance(event, SpeechAudio):
            return self._decode(event.audio)
        if isinstance(event, (SpeechEnded, SpeechTimedOut)):
            return self._final()
        return []

    def _decode(self, audio: bytes) -> list[Result]:
        self._recognizer.process(audio)
        self._since_partial += len(audio)
        self._decoded_s += len(audio) / 2 / ENGINE_RATE
        if not self.spec.partial_results or self._since_partial < self._partial_every:
            return []
        self._since_partial = 0
        text = self._recognizer.partial()
        if not text or text == self._last_partial:
            return [Result(final=False, text="", audio_s=self._decoded_s)] if self._unchanged_partials else []
        self._last_partial = text
        return [Result(final=False, text=self._present(text), audio_s=self._decoded_s)]

    def _final(self) -> list[Result]:
        """The utterance's final; none when it has no words (noise, or a grammar's rejection):
        an utterance is speech of one or more words, so noise neither gets an empty final nor
        ends a single_utterance session (see README, "empty finals")."""
        hypothesis: Hypothesis = self._recognizer.end()
        self._since_partial = 0
        self._last_partial = ""
        self._decoded_s = 0.0
        if not hypothesis.text and self._endpointer is not None:
            return []
        self.done = self.spec.single_utterance
        offset = self._utterance_start_s
        words = tuple(
            Word(self._present(w.word), offset + w.start_s, offset + w.end_s, w.confidence) for w in hypothesis.words
        )
        return [
            Result(
                final=True,
                text=self._present(hypothesis.text),
                confidence=hypothesis.confidence,
                words=words,
                reason=hypothesis.reason,
                unsure=hypothesis.unsure,
            )
        ]

    def _present(self, text: str) -> str:
        """Numbers as digits unless raw_results; listed words masked under profanity_filter."""
        if not self.spec.raw_results:
            text = words_to_digits(text, self.spec.language)
        elif any(char.isdigit() for char in text):  # an engine that writes digits (Whisper)
            text = digits_to_words(text, self.spec.language)
        if self.spec.profanity_filter:
            text = mask_profanity(text, self._profanity)
        return text
