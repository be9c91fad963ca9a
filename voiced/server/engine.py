"""pocketsphinx behind a small interface: load models once, lend decoders to sessions.

A decoder is expensive to load (the open LM ~0.3 s and ~45 MB beside the LM all its decoders
share, see `lmshare`) and cannot be shared by two utterances at once, so each model keeps a
few idle decoders for the next session (`pool`, within the server's memory budget).
Grammar models get a dictionary cut to their own words (loads in a fraction of the time)
and `bestpath=False`, without which pocketsphinx cuts grammar results short.

Rejection: a grammar forces any speech onto its nearest sentence. A grammar model with a
`rejection_margin` therefore also decodes each utterance with a free phone loop (the wheel's
phone LM) and compares the acoustic scores of the two paths over the same frames: speech that
is a sentence of the grammar scores nearly as well on the grammar path as on the phone loop,
other speech far worse. Both decoders compute every senone (`compallsen`), so their per-frame
normalized scores share one reference and can be compared.
"""

from __future__ import annotations

import ctypes
import logging
import re
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from voiced.server.config import GrammarModel, LanguageModel, ServerSettings
from voiced.server.lmshare import SharedLanguageModel
from voiced.server.pool import DecoderPool, MemoryBudget, memory_budget_mb
from voiced.yamlconfig import ConfigError

if TYPE_CHECKING:
    from voiced.commands.matching import CommandSet

log = logging.getLogger(__name__)

ENGINE_RATE = 16000  # what the acoustic models are trained on
FRAMES_PER_SECOND = 100  # pocketsphinx's feature frame rate
# sentence marks, silence, noise fillers, and the grammar's null transitions "(NULL)"
NON_WORDS = re.compile(r"^(<s>|</s>|<sil>|\(NULL\)|\[.*\]|\+\+.*\+\+)$")
# The phone loop is only a yardstick: a light phone-LM weight lets it follow the acoustics.
PHONE_LOOP_OPTIONS = {"lw": 2.0}
_JSGF_NON_WORDS = re.compile(r"\bpublic\b|<[^>]*>|/[^/]*/|\{[^}]*\}|//[^\n]*|/\*.*?\*/|[()\[\]|*+;=]", re.S)


class ModelError(Exception):
    """A configured model cannot be loaded; the message says which file or word is wrong."""


@dataclass(frozen=True)
class RecognizedWord:
    word: str
    start_s: float  # from the start of the utterance's audio
    end_s: float
    confidence: float


@dataclass(frozen=True)
class Hypothesis:
    text: str
    confidence: float
    words: tuple[RecognizedWord, ...]
    reason: str = ""  # why an engine reports no command (a rejection), for logs and in-process callers


def release_freed_memory() -> None:
    """Give memory freed by the engines back to the system (glibc keeps it otherwise: a
    Whisper final's buffers would stay resident, and RSS creep ~50 MB in a few utterances)."""
    if _libc is not None:
        _libc.malloc_trim(0)


def limit_malloc_arenas(arenas: int = 2) -> None:
    """glibc gives each thread that allocates its own arena (up to 8 per core), and each keeps
    freed memory of its own: with the gRPC, session and engine threads of a daemon, peak RSS
    was 325 MB instead of 288 (Whisper engine, 128 utterances). Call before threads start."""
    if _libc is not None:
        _libc.mallopt(_M_ARENA_MAX, arenas)


_M_ARENA_MAX = -8
try:
    _libc = ctypes.CDLL(None)
    _libc.malloc_trim, _libc.mallopt  # glibc; elsewhere nothing to do
except (AttributeError, OSError):
    _libc = None


def _wheel_model() -> Path:
    from pocketsphinx import get_model_path

    return Path(get_model_path()) / "en-us"


def model_paths(language: LanguageModel) -> tuple[Path, Path, Path]:
    """(acoustic model dir, dictionary, LM) with the wheel's en-us files as defaults."""
    wheel = _wheel_model()
    return (language.acoustic_model or wheel / "en-us", language.dictionary or wheel / "cmudict-en-us.dict",
            language.language_model or wheel / "en-us.lm.bin")


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
        raise ModelError(f"words not in the pronunciation dictionary {dictionary}: {', '.join(missing[:20])}"
                         + (" ..." if len(missing) > 20 else ""))
    return "".join(entries)


def acoustic_score(decoder, segments) -> int:
    """Sum of the segments' acoustic scores in the decoder's log units (base 1.0001)."""
    logmath = decoder.get_logmath()
    return sum(logmath.log(segment.ascore) for segment in segments)


def rejection_gap(grammar_score: int, phone_loop_score: int, speech_frames: int,
                  phone_speech_score: int, phone_speech_frames: int) -> float:
    """How much worse the grammar path fits than the free phone loop, per frame of speech, as
    a fraction of how (badly) the phone loop itself fits that speech per frame.

    Per frame of speech: the utterance's silence scores alike on both paths and would only
    dilute the gap. Relative: a voice or channel unlike the acoustic model's training data
    loses on every path, the grammar's too (measured: an espeak-ng command loses as much per
    frame as a natural voice's non-command, but only a third as much relative to the loop)."""
    gap = (phone_loop_score - grammar_score) / max(1, speech_frames)
    phone_per_frame = abs(phone_speech_score) / max(1, phone_speech_frames)
    return gap / max(1.0, phone_per_frame)


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


class Recognizer:
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
            return Hypothesis("", 0.0, (), f"{hypothesis.hypstr!r} fits the commands {self.last_gap:.2f} worse than "
                                           f"free phones (margin {self.rejection_margin:g}): not a command")
        words = tuple(
            RecognizedWord(segment.word.split("(", 1)[0], segment.start_frame / FRAMES_PER_SECOND,
                           (segment.end_frame + 1) / FRAMES_PER_SECOND, min(1.0, max(0.0, segment.prob)))
            for segment in self.decoder.seg() if not NON_WORDS.match(segment.word)
        )
        # the mean word posterior: pocketsphinx's own utterance probability shrinks with length
        confidence = sum(word.confidence for word in words) / len(words) if words else 0.0
        return Hypothesis(hypothesis.hypstr, round(confidence, 4), words)

    def _rejected(self, text: str) -> bool:
        segments = list(self.decoder.seg())
        speech_frames = sum(s.end_frame - s.start_frame + 1 for s in segments if not NON_WORDS.match(s.word))
        phone_segments = list(self.phone_loop.seg()) if self.phone_loop.hyp() is not None else []
        if not phone_segments:
            return False  # nothing to compare with: keep the grammar's result
        phones = [s for s in phone_segments if s.word != "SIL" and not NON_WORDS.match(s.word)]
        self.last_gap = rejection_gap(
            acoustic_score(self.decoder, segments), acoustic_score(self.phone_loop, phone_segments), speech_frames,
            acoustic_score(self.phone_loop, phones), sum(s.end_frame - s.start_frame + 1 for s in phones))
        rejected = self.last_gap > self.rejection_margin
        log.debug("%s %r: fits %.2f worse than the phone loop (margin %g)",
                  "rejected" if rejected else "accepted", text, self.last_gap, self.rejection_margin)
        return rejected

    def abort(self) -> None:
        if self.in_utterance:
            for decoder in self._decoders:
                decoder.end_utt()
            self.in_utterance = False


class Engine:
    """All models of one server configuration; thread-safe.

    `command_sets`: commands already loaded for grammar models (by model name), instead of
    their `commands_files` (the daemon passes the commands it checked and runs)."""

    def __init__(self, settings: ServerSettings, command_sets: Mapping[str, CommandSet] | None = None):
        self._settings = settings
        self._command_sets = dict(command_sets or {})
        release_freed_memory()  # before the models: loading one (Whisper) takes 2-3x its size for a moment
        self.stage_times = StageTimes()
        self._dictionaries = tempfile.TemporaryDirectory(prefix="voiced-dict-")
        self._pools: dict[str, DecoderPool] = {}
        self._channels: dict[str, list[str]] = {}  # pool -> adaptation reached (keep_channel_adaptation)
        self.budget = MemoryBudget(memory_budget_mb(settings))
        for code, language in settings.languages.items():
            shared = SharedLanguageModel(*model_paths(language), Path(self._dictionaries.name), code)
            self._pools[f"{code}/general"] = DecoderPool(f"{code}/general", lambda shared=shared: Recognizer(
                shared.decoder()), settings.idle_decoders, self.budget, prepare=shared.load)
        for name, grammar in settings.models.items():
            factory, prepare = self._grammar_factory(name, grammar)
            self._pools[f"{grammar.language}/{name}"] = DecoderPool(f"{grammar.language}/{name}", factory,
                                                                    settings.idle_decoders, self.budget, prepare)

    @property
    def languages(self) -> list[str]:
        return list(self._settings.languages)

    @property
    def grammars(self) -> dict[str, str]:
        return {name: model.language for name, model in self._settings.models.items()}

    def _grammar_factory(self, name: str, grammar: GrammarModel):
        """(recognizer factory, loader of what its recognizers share or None). The grammar is
        checked now: a bad one fails at startup, not at the first call."""
        from pocketsphinx import Decoder

        if grammar.language not in self._settings.languages:
            raise ModelError(f"grammar model {name!r}: language {grammar.language} is not in server.languages")
        acoustic, dictionary, _ = model_paths(self._settings.languages[grammar.language])
        command_set = self._commands_of(name, grammar)
        jsgf = self._jsgf_of(name, grammar, command_set)
        directory = Path(self._dictionaries.name)
        (directory / f"{name}.jsgf").write_text(jsgf, encoding="utf-8")
        cut = cut_dictionary(dictionary, grammar_words(jsgf))
        (directory / f"{name}.dict").write_text(cut, encoding="utf-8")

        rejecting = grammar.rejection_margin is not None and grammar.engine == "pocketsphinx"
        language = self._settings.languages[grammar.language]
        phone_lm = language.phone_language_model or _wheel_model() / "en-us-phone.lm.bin"
        if rejecting and language.acoustic_model is not None and language.phone_language_model is None:
            raise ModelError(f"grammar model {name!r}: rejection_margin needs the phone_language_model of "
                             f"{grammar.language} (the wheel's en-us one fits only its own acoustic model)")

        def factory():
            try:
                decoder = Decoder(hmm=str(acoustic), dict=str(directory / f"{name}.dict"),
                                  jsgf=str(directory / f"{name}.jsgf"), bestpath=False, compallsen=rejecting,
                                  loglevel="FATAL")
                # the phone loop has no words: the grammar's small dictionary spares it loading
                # the whole default one (~28 MB per decoder; same phones and scores, measured)
                phone_loop = Decoder(hmm=str(acoustic), allphone=str(phone_lm), compallsen=True,
                                     dict=str(directory / f"{name}.dict"), loglevel="FATAL",
                                     **PHONE_LOOP_OPTIONS) if rejecting else None
            except (RuntimeError, ValueError) as exc:
                raise ModelError(f"grammar model {name!r} does not load: {exc}") from None
            return Recognizer(decoder, phone_loop, grammar.rejection_margin)

        if grammar.engine == "whisper":
            return self._whisper_factory(name, grammar, command_set, factory)
        return factory, None

    def _commands_of(self, name: str, grammar: GrammarModel) -> CommandSet | None:
        if name in self._command_sets or not grammar.commands_files:
            return self._command_sets.get(name)
        from voiced.commands.loading import load_commands

        try:
            return load_commands(grammar.commands_files)
        except ConfigError as exc:
            raise ModelError(f"grammar model {name!r}: its commands do not load:\n{exc}") from None

    def _jsgf_of(self, name: str, grammar: GrammarModel, command_set: CommandSet | None) -> str:
        if grammar.jsgf is not None:
            return grammar.jsgf
        if grammar.jsgf_file is not None:
            try:
                return grammar.jsgf_file.read_text(encoding="utf-8")
            except OSError as exc:
                raise ModelError(f"grammar model {name!r}: cannot read {grammar.jsgf_file}: {exc.strerror}") from None
        from voiced.commands.grammar import to_jsgf

        assert command_set is not None  # commands_files were given: they loaded
        return to_jsgf(command_set, grammar.language, garbage_weight=None)

    def _whisper_factory(self, name: str, grammar: GrammarModel, command_set: CommandSet | None, partials):
        """Recognizers of a Whisper commands model, the grammar decoder giving partials, and the
        loader of the Whisper model they share (the pool loads it once, within the memory
        budget; a configuration check builds an Engine and loads nothing). The model's files
        are checked now."""
        from voiced.commands.closedset import ClosedSet
        from voiced.server.whisper import WhisperCommandsRecognizer, WhisperModel, check_model_dir

        if command_set is None:
            raise ModelError(f"grammar model {name!r}: engine whisper chooses among the commands' sentences: "
                             "give commands_files")
        whisper = grammar.whisper
        check_model_dir(whisper.model)
        closed_set = ClosedSet(command_set, grammar.language)
        shared: list[WhisperModel] = []

        def load() -> None:
            shared.append(WhisperModel(whisper.model, grammar.language.split("-")[0], whisper.threads))

        return (lambda: WhisperCommandsRecognizer(partials(), shared[0], closed_set, whisper, self.stage_times),
                load)

    def warm_up(self) -> None:
        """Load one decoder of each model in `preload` (None: all) now: startup fails on a
        broken model, and the first call does not wait for a load. (Grammar files and their
        words are checked at construction either way.)"""
        preload = self._settings.preload
        for key, pool in self._pools.items():
            if preload is None or key.split("/", 1)[1] in preload:
                pool.release(pool.acquire())
        release_freed_memory()  # what loading the models took and gave up

    def lend(self, language: str, model: str) -> Recognizer:
        recognizer = self._pools[f"{language}/{model}"].acquire()
        channel = self._channels.get(f"{language}/{model}")
        if not self._settings.keep_channel_adaptation:
            recognizer.reset()
        elif channel is not None:
            # whichever idle decoder this is, it goes on from the channel the last session reached
            recognizer.adopt(channel)
        return recognizer

    def give_back(self, language: str, model: str, recognizer: Recognizer) -> None:
        recognizer.abort()
        release_freed_memory()
        if self._settings.keep_channel_adaptation:
            self._channels[f"{language}/{model}"] = recognizer.channel()
        self._pools[f"{language}/{model}"].release(recognizer)

    def close(self) -> None:
        self._dictionaries.cleanup()
