"""The Whisper commands recognizer: live partials from a pocketsphinx grammar decoder, the
final chosen by Whisper (voiced.server.whisper) from the closed set of command sentences
(voiced.commands.closedset), begun early where the words already are a whole command.

Per utterance, once it has ended: the audio is encoded once; Whisper writes what it heard;
the closed set takes that if it is a command, else has the nearest command sentences scored
against the same encoding and picks one within the margin, or none. A language without a
pocketsphinx model (Russian) has no live partials: `FinalsOnly` stands in for the grammar
decoder, and no final begins early.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field

from voiced.audio.vad import QUIET_RATIO, loudness
from voiced.commands.closedset import Choice, ClosedSet, Score
from voiced.commands.completion import CommandCompletion
from voiced.commands.config import WhisperSettings
from voiced.commands.wide import WideSearch
from voiced.server.decoding import ENGINE_RATE, Hypothesis, StageTimes
from voiced.server.pocketsphinx import PocketsphinxRecognizer
from voiced.server.whisper import MAX_UTTERANCE_S, Transcript, WhisperModel

log = logging.getLogger(__name__)

# Quiet audio is as the endpointer's (voiced.audio.vad.QUIET_RATIO). A final may begin
# QUIET_AFTER_SPEECH_S into the quiet after the last loud chunk, on the audio so far; it is
# the answer if the utterance ends within EARLY_FINAL_KEPT_WITHIN_S more audio
# (a session ended early on a finished command: 0.15 s of quiet). Whisper's choice moves
# with the window's length: deciding every final on audio cut 0.1 s into the quiet lost 1-2
# of 100 held-out commands (direct engine), so a longer wait (end_silence) decides on all of it
QUIET_AFTER_SPEECH_S = 0.1
EARLY_FINAL_KEPT_WITHIN_S = 0.3
# a number's lead read off the free transcript is trusted this far past `number_lead`; nearer,
# its sentence is decoded for it (on the tuning sets the two leads differed only that near it)
LEAD_READ_OFF_MARGIN = 0.5
# The wide search (voiced.commands.wide) only for a transcript written this unsurely (its
# per-token probability): on the Russian tuning set ru-A, 23 of espeak-ng's 24 commands (a voice
# the model hears badly) against 3 of festival's 18 chatter and near misses (clear transcripts
# of non-commands, for which the search would cost CPU for nothing)
WIDE_SEARCH_BELOW = 0.45


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


@dataclass
class EarlyFinal:
    """A final begun before the utterance ended, when the partial was `partial`. It stands if
    the utterance ends with nothing loud after it and the same words."""

    partial: str
    audio_bytes: int  # of the utterance it decides on
    choice: Future = field(default_factory=Future)
    loud_after: bool = False


class WhisperCommandsRecognizer:
    """A pocketsphinx grammar decoder (no rejection) for the live partials; at the end of the
    utterance Whisper chooses the final from the closed set. Same interface as PocketsphinxRecognizer.

    Whisper's final costs 0.2-0.4 s of CPU after the end. Once the partial is a whole command
    sentence and QUIET_AFTER_SPEECH_S of quiet has followed the last loud chunk, the final
    begins, in a thread of its own, on the audio so far (`EarlyFinal`). If the utterance ends
    soon after (EARLY_FINAL_KEPT_WITHIN_S), with nothing loud after that point and the same
    words, that final is the answer, mostly computed already: the window's padded silence
    stands for the little quiet audio it lacks. Loud audio after it (the speaker went on:
    "... for twenty | five minutes"), other words, or a long wait, and it is given up: the
    final is computed at the end on all of the audio.
    """

    def __init__(
        self,
        partials: PocketsphinxRecognizer | FinalsOnly,
        whisper: WhisperModel,
        closed_set: ClosedSet,
        settings: WhisperSettings,
        times: StageTimes,
        completion: CommandCompletion | None = None,
        wide: WideSearch | None = None,
    ):
        self._partials = partials
        self._whisper = whisper
        self._closed_set = closed_set
        self._settings = settings
        self._thresholds = settings.thresholds(closed_set.language)
        self._times = times
        self._completion = completion
        self._wide = wide
        self._audio = bytearray()
        self._loudest = self._quiet_s = 0.0
        self._speech_end: int | None = None  # bytes of audio up to QUIET_AFTER_SPEECH_S into quiet
        self._early: EarlyFinal | None = None
        self._sentence_seen: tuple[str, bool] = ("", False)  # the last partial: is it a sentence
        self.last_choice: Choice | None = None  # of the last final (for benchmarks and logs)
        self.early_finals_begun = self.early_finals_used = 0  # for benchmarks and tests
        self.contrasts_scored_ahead = 0  # finals whose contrasts were scored beside the transcript

    @property
    def in_utterance(self) -> bool:
        return self._partials.in_utterance

    def start(self) -> None:
        self._audio.clear()
        self._loudest, self._quiet_s, self._speech_end, self._early = 0.0, 0.0, None, None
        self._partials.start()

    def process(self, pcm: bytes) -> None:
        started = time.thread_time()
        self._partials.process(pcm)
        if len(self._audio) < MAX_UTTERANCE_S * ENGINE_RATE * 2:
            self._audio += pcm
        if self._completion is not None:
            self._follow_loudness(pcm)
        self._times.add(partials_s=time.thread_time() - started)

    def _follow_loudness(self, pcm: bytes) -> None:
        level = loudness(pcm)
        quiet = level < QUIET_RATIO * self._loudest
        self._loudest = max(self._loudest, level)
        if not quiet:
            self._quiet_s, self._speech_end = 0.0, None
            if self._early is not None:
                self._early.loud_after = True
            return
        self._quiet_s += len(pcm) / 2 / ENGINE_RATE
        if self._speech_end is None and self._quiet_s >= QUIET_AFTER_SPEECH_S:
            self._speech_end = len(self._audio)
        # one at a time: a final given up on (the speaker went on) first finishes its work
        free = self._early is None or (self._early.loud_after and self._early.choice.done())
        if self._speech_end is not None and free:
            partial = self._partials.partial()
            if self._is_sentence(partial):
                self._begin_early_final(partial)

    def _is_sentence(self, partial: str) -> bool:
        if partial != self._sentence_seen[0]:
            assert self._completion is not None
            self._sentence_seen = (partial, bool(partial) and self._completion.is_sentence(partial))
        return self._sentence_seen[1]

    def _begin_early_final(self, partial: str) -> None:
        audio = bytes(self._audio[: self._speech_end])
        early = EarlyFinal(partial, len(audio))

        def choose() -> None:
            started = time.process_time()
            try:
                early.choice.set_result(self._choose(audio, early.partial))
            except BaseException as exc:  # the final is computed again, and fails there if it must
                early.choice.set_exception(exc)
            self._times.add(final_s=time.process_time() - started)

        self._early = early
        self.early_finals_begun += 1
        threading.Thread(target=choose, name="whisper-early-final", daemon=True).start()

    def partial(self) -> str:
        return self._partials.partial()

    def end(self) -> Hypothesis:
        by_grammar = self._partials.end()
        # process time, not thread time: CTranslate2 computes in threads of its own (so with
        # several sessions at once this counts their work too: a benchmark figure)
        started = time.process_time()
        early = self._early_choice(by_grammar.text)
        choice = early if early is not None else self._choose(bytes(self._audio), by_grammar.text)
        self.last_choice = choice
        log.info("commands final %r%s: %s", choice.text, " (begun early)" if early else "", choice.reason)
        # word times are the grammar decoder's, when it heard the same words (else unknown)
        words = by_grammar.words if by_grammar.text.split() == choice.text.split() else ()
        # an early final counted its own CPU time (waiting for it here would count it twice)
        self._times.add(final_s=0.0 if early else time.process_time() - started, utterances=1)
        return Hypothesis(
            choice.text,
            round(choice.confidence, 4),
            words,
            "" if choice.accepted else f"heard {choice.heard!r}: {choice.reason}",
            choice.unsure,
        )

    def _early_choice(self, heard_by_grammar: str) -> Choice | None:
        early, self._early = self._early, None
        if early is None or early.loud_after or early.partial.split() != heard_by_grammar.split():
            return None
        if len(self._audio) - early.audio_bytes > EARLY_FINAL_KEPT_WITHIN_S * ENGINE_RATE * 2:
            return None  # the session waited out a long silence: decide on all of it
        try:
            choice = early.choice.result()
        except Exception:
            return None
        self.early_finals_used += 1
        return choice

    def _choose(self, pcm: bytes, second_opinion: str) -> Choice:
        closed_set, whisper = self._closed_set, self._whisper
        encoded = whisper.encode(pcm)
        # a number that sounds like another is checked against it once the transcript is
        # written; begun now on the grammar decoder's words, written as Whisper usually writes
        # them, it runs beside the transcript (the second core) and stands if they are the same
        likely = closed_set.likely_contrasts(second_opinion)
        ahead = whisper.scores_ahead(encoded, likely) if likely else None
        transcript = whisper.transcribe(
            encoded, len(pcm) / 2 / ENGINE_RATE, self._settings.beam_size, closed_set.numbers_against_runner_up
        )
        heard, confidence = transcript.text, transcript.confidence
        if not heard:
            return Choice("", False, "nothing heard")
        if closed_set.is_command(heard):
            choice = closed_set.as_heard(heard, confidence)
        else:
            forms = [
                (sentence, *form)
                for sentence in closed_set.candidates(heard, second_opinion)
                for form in closed_set.written_forms(sentence, heard)
            ]
            if not forms:  # nothing to score it against: no need to score what was heard either
                return self._search_wide(encoded, transcript, None, closed_set.none_near(heard, confidence))
            heard_score, *scores = self._scorer(encoded, [heard, *(written for _, _, written in forms)])
            scored = [(*form, score) for form, score in zip(forms, scores)]
            thresholds = self._thresholds
            choice = closed_set.choose(heard, heard_score, scored, thresholds.margin, thresholds.number_margin)
            if not choice.accepted:
                return self._search_wide(encoded, transcript, heard_score, choice)
        chosen, others = None, []
        if contrasts := closed_set.contrasts(choice):
            texts = [choice.form, *contrasts]
            if ahead is not None and texts == likely:
                self.contrasts_scored_ahead += 1
                chosen, *others = ahead.result()
            else:
                chosen, *others = whisper.scores(encoded, texts)
        elif number_form := closed_set.number_form(choice):
            # its number's lead over the runner-up is all that is checked (the transcript's
            # own, where it wrote the same number after the same token)
            enough = self._thresholds.number_lead + LEAD_READ_OFF_MARGIN
            chosen = Score(0.0, 0, whisper.number_lead(encoded, number_form, transcript, enough))
        return closed_set.confirm(
            choice, chosen, list(zip(contrasts, others)), self._thresholds.number_lead, second_opinion
        )

    def _scorer(self, encoded, texts: list[str]) -> list[Score]:
        """Per-token means compare the texts without their ends (one pass of the decoder);
        whole-text sums need the end, or a sentence cut short would score as well as all of it."""
        scorer = self._whisper.text_scores if self._closed_set.per_token else self._whisper.scores
        return scorer(encoded, texts)

    def _search_wide(self, encoded, heard: Transcript, heard_score: Score | None, rejected: Choice) -> Choice:
        """Nothing near in spelling was taken, and the model was unsure of what it wrote: one
        sentence of every kind of command is scored (voiced.commands.wide), the best within the
        margin to be asked back."""
        if self._wide is None or heard.confidence >= WIDE_SEARCH_BELOW:
            return rejected
        found = self._wide.sentences(self._whisper.likeliest_numbers(encoded, self._wide.numbered))
        texts = self._wide.texts(found)
        if heard_score is None:
            heard_score, *scores = self._scorer(encoded, [heard.text, *texts])
        else:
            scores = self._scorer(encoded, texts)
        thresholds = self._thresholds
        return self._wide.choose(rejected, heard_score, found, scores, thresholds.margin, thresholds.number_lead)

    # channel adaptation belongs to the pocketsphinx decoder
    def abort(self) -> None:
        self._early = None
        self._partials.abort()

    def reset(self) -> None:
        self._partials.reset()

    def channel(self) -> list[str]:
        return self._partials.channel()

    def adopt(self, channel: list[str]) -> None:
        self._partials.adopt(channel)
