"""pocketsphinx: the open language model and command grammars, with the phone-loop rejection.

A decoder is expensive to load (the open LM ~0.3 s and ~45 MB beside the LM all its decoders
share, see `lmshare`) and cannot serve two utterances at once; the engine keeps a few idle
ones. Grammar models get a dictionary cut to their own words (loads in a fraction of the
time) and `bestpath=False`, without which pocketsphinx cuts grammar results short.

Rejection: a grammar forces any speech onto its nearest sentence. A grammar model with a
`rejection_margin` therefore also decodes each utterance with a free phone loop (the wheel's
phone LM) and compares the acoustic scores of the two paths over the same frames: speech that
is a sentence of the grammar scores nearly as well on the grammar path as on the phone loop,
other speech far worse. Both decoders compute every senone (`compallsen`), so their per-frame
normalized scores share one reference and can be compared.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from voiced.protocol.vocabulary import Word
from voiced.server.config import LanguageModel
from voiced.server.decoding import FRAMES_PER_SECOND, Hypothesis, ModelError

log = logging.getLogger(__name__)

# sentence marks, silence, noise fillers, and the grammar's null transitions "(NULL)"
NON_WORDS = re.compile(r"^(<s>|</s>|<sil>|\(NULL\)|\[.*\]|\+\+.*\+\+)$")
# The phone loop is only a yardstick: a light phone-LM weight lets it follow the acoustics.
PHONE_LOOP_OPTIONS = {"lw": 2.0}
_JSGF_NON_WORDS = re.compile(r"\bpublic\b|<[^>]*>|/[^/]*/|\{[^}]*\}|//[^\n]*|/\*.*?\*/|[()\[\]|*+;=]", re.S)


def wheel_model() -> Path:
    from pocketsphinx import get_model_path

    return Path(get_model_path()) / "en-us"


def model_paths(language: LanguageModel) -> tuple[Path, Path, Path]:
    """(acoustic model dir, dictionary, LM) with the wheel's en-us files as defaults."""
    wheel = wheel_model()
    return (
        language.acoustic_model or wheel / "en-us",
        language.dictionary or wheel / "cmudict-en-us.dict",
        language.language_model or wheel / "en-us.lm.bin",
    )


def grammar_words(jsgf: str) -> set[str]:
    """The words a JSGF grammar can produce (header lines, rule names, weights, tags and
    operators removed)."""
    body = "\n".join(line for line in jsgf.splitlines() if not line.lstrip().startswith(("#JSGF", "grammar ")))
    return {word.lower() for word in _JSGF_NON_WORDS.sub(" ", body).split()}


def cut_dictionary(dictionary: Path, words: set[str]) -> str:
    """The entries of `words` (with their alternative pronunciations `word(2)`)."""
    entries, found = [], set()
    with dictionary.open(encoding="utf-8") as lines:
        for line in lines:
            head = line.split(maxsplit=1)[0] if line.strip() else ""
            word = head.split("(", 1)[0]
            if word in words:
                entries.append(line if line.endswith("\n") else line + "\n")
                found.add(word)
    if missing := sorted(words - found):
        raise ModelError(
            f"words not in the pronunciation dictionary {dictionary}: {', '.join(missing[:20])}"
            + (" ..." if len(missing) > 20 else "")
        )
    return "".join(entries)


def acoustic_score(decoder, segments) -> int:
    """Sum of the segments' acoustic scores in the decoder's log units (base 1.0001)."""
    logmath = decoder.get_logmath()
    return sum(logmath.log(segment.ascore) for segment in segments)


def rejection_gap(
    grammar_score: int, phone_loop_score: int, speech_frames: int, phone_speech_score: int, phone_speech_frames: int
) -> float:
    """How much worse the grammar path fits than the free phone loop, per frame of speech, as
    a fraction of how (badly) the phone loop itself fits that speech per frame.

    Per frame of speech: the utterance's silence scores alike on both paths and would only
    dilute the gap. Relative: a voice or channel unlike the acoustic model's training data
    loses on every path, the grammar's too (measured: an espeak-ng command loses as much per
    frame as a natural voice's non-command, but only a third as much relative to the loop)."""
    gap = (phone_loop_score - grammar_score) / max(1, speech_frames)
    phone_per_frame = abs(phone_speech_score) / max(1, phone_speech_frames)
    return gap / max(1.0, phone_per_frame)


class PocketsphinxRecognizer:
    """One decoder lent to one session: start, feed 16 kHz PCM, read hypotheses, end.

    With a phone-loop decoder and a margin, a final whose grammar path loses more than the
    margin per speech frame to the phone loop is rejected (an empty hypothesis)."""

    def __init__(self, decoder, phone_loop=None, rejection_margin: float | None = None):
        self.decoder = decoder
        self.phone_loop = phone_loop if rejection_margin is not None else None
        self.rejection_margin = rejection_margin
        self.in_utterance = False
        self.last_gap: float | None = None  # of the last final (for benchmarks and logs)
        # pocketsphinx adapts its cepstral mean to the audio it hears; a decoder coming back
        # from another client's session must not carry that client's channel into this one
        self._decoders = [decoder] + ([self.phone_loop] if self.phone_loop is not None else [])
        self._initial_cmn = [d.get_cmn() for d in self._decoders]

    def reset(self) -> None:
        """Forget the previous session's channel adaptation: the cepstral mean, and the noise
        estimate of the front end (kept apart from the CMN; reinit_feat costs ~0.1 ms)."""
        for decoder in self._decoders:
            decoder.reinit_feat()
        self.adopt(self._initial_cmn)

    def channel(self) -> list[str]:
        """The channel adaptation (cepstral means) this recognizer has reached."""
        return [decoder.get_cmn() for decoder in self._decoders]

    def adopt(self, channel: list[str]) -> None:
        for decoder, cmn in zip(self._decoders, channel):
            decoder.set_cmn(cmn)

    def start(self) -> None:
        for decoder in self._decoders:
            decoder.start_utt()
        self.in_utterance = True

    def process(self, pcm: bytes) -> None:
        for decoder in self._decoders:
            decoder.process_raw(pcm, False, False)

    def partial(self) -> str:
        hypothesis = self.decoder.hyp()
        return hypothesis.hypstr if hypothesis is not None else ""

    def end(self) -> Hypothesis:
        for decoder in self._decoders:
            decoder.end_utt()
        self.in_utterance = False
        self.last_gap = None
        hypothesis = self.decoder.hyp()
        if hypothesis is None or not hypothesis.hypstr:
            return Hypothesis("", 0.0, ())
        if self.phone_loop is not None and self._rejected(hypothesis.hypstr):
            return Hypothesis(
                "",
                0.0,
                (),
                f"{hypothesis.hypstr!r} fits the commands {self.last_gap:.2f} worse than "
                f"free phones (margin {self.rejection_margin:g}): not a command",
            )
        words = tuple(
            Word(
                segment.word.split("(", 1)[0],
                segment.start_frame / FRAMES_PER_SECOND,
                (segment.end_frame + 1) / FRAMES_PER_SECOND,
                min(1.0, max(0.0, segment.prob)),
            )
            for segment in self.decoder.seg()
            if not NON_WORDS.match(segment.word)
        )
        # the mean word posterior: pocketsphinx's own utterance probability shrinks with length
        confidence = sum(word.confidence for word in words) / len(words) if words else 0.0
        return Hypothesis(hypothesis.hypstr, round(confidence, 4), words)

    def _rejected(self, text: str) -> bool:
        assert self.phone_loop is not None and self.rejection_margin is not None  # checked by the caller
        segments = list(self.decoder.seg())
        speech_frames = sum(s.end_frame - s.start_frame + 1 for s in segments if not NON_WORDS.match(s.word))
        phone_segments = list(self.phone_loop.seg()) if self.phone_loop.hyp() is not None else []
        if not phone_segments:
            return False  # nothing to compare with: keep the grammar's result
        phones = [s for s in phone_segments if s.word != "SIL" and not NON_WORDS.match(s.word)]
        self.last_gap = rejection_gap(
            acoustic_score(self.decoder, segments),
            acoustic_score(self.phone_loop, phone_segments),
            speech_frames,
            acoustic_score(self.phone_loop, phones),
            sum(s.end_frame - s.start_frame + 1 for s in phones),
        )
        rejected = self.last_gap > self.rejection_margin
        log.debug(
            "%s %r: fits %.2f worse than the phone loop (margin %g)",
            "rejected" if rejected else "accepted",
            text,
            self.last_gap,
            self.rejection_margin,
        )
        return rejected

    def abort(self) -> None:
        if self.in_utterance:
            for decoder in self._decoders:
                decoder.end_utt()
            self.in_utterance = False
