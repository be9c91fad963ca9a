"""One open language model in memory, shared by every decoder of its language.

What pocketsphinx 5 lets decoders share (its Python API, measured on the wheel's en-US model):
a decoder with the full dictionary and its own LM holds ~91 MB. Of that, the N-gram model
itself is ~19 MB and can be shared: `NGramModel` is loaded once and handed to each decoder
with `add_lm` (pocketsphinx reference-counts it). The acoustic model and the dictionary cannot
be shared (a decoder loads its own from files; no API takes them ready-made), nor the search's
per-word structures (~44 MB with the full dictionary). Those shrink with the dictionary, and
the 135k-word CMU dictionary holds 55k words the LM does not know, which the N-gram search can
never put in a hypothesis: the decoders get the dictionary cut to the LM's vocabulary (80k
words). Together: ~45 MB per further decoder instead of ~91, with identical hypotheses, scores
and word times (tests/test_server_memory.py compares them).

Decoders in one process never run the shared LM at once: pocketsphinx's Python binding keeps
the GIL while it decodes (which is also why `voiced serve --workers` exists); the LM's score
caches would otherwise be shared mutable state.
"""

from __future__ import annotations

import threading
from pathlib import Path

SEARCH = "general"  # the name of the N-gram search in each decoder
OUT_OF_VOCABULARY = -536870912  # NGramModel.prob of a word the LM does not have (logmath's zero)


def lm_dictionary(dictionary: Path, lm) -> str:
    """The entries of `dictionary` (alternative pronunciations too) whose word the LM knows."""
    with dictionary.open(encoding="utf-8") as lines:
        return "".join(
            line if line.endswith("\n") else line + "\n"
            for line in lines
            if line.strip() and lm.prob([line.split(maxsplit=1)[0].split("(", 1)[0]]) != OUT_OF_VOCABULARY
        )


class SharedLanguageModel:
    """Decoders of one open LM. The LM and the cut dictionary load at the first `decoder()`
    (`load()` does it explicitly, so its memory can be told apart from a decoder's)."""

    def __init__(self, acoustic_model: Path, dictionary: Path, language_model: Path, workdir: Path, name: str):
        self._acoustic_model = acoustic_model
        self._dictionary = dictionary
        self._language_model = language_model
        self._cut_dictionary = workdir / f"{name}.lm.dict"
        self._lm = None
        self._lock = threading.Lock()

    def load(self) -> None:
        from pocketsphinx import Decoder, NGramModel

        with self._lock:
            if self._lm is not None:
                return
            # a decoder without an LM only lends its configuration and log base to the LM
            probe = Decoder(hmm=str(self._acoustic_model), dict=str(self._dictionary), lm=None, loglevel="FATAL")
            lm = NGramModel(probe.config, probe.get_logmath(), str(self._language_model))
            self._cut_dictionary.write_text(lm_dictionary(self._dictionary, lm), encoding="utf-8")
            self._lm = lm

    def decoder(self):
        from pocketsphinx import Decoder

        self.load()
        decoder = Decoder(hmm=str(self._acoustic_model), dict=str(self._cut_dictionary), lm=None, loglevel="FATAL")
        decoder.add_lm(SEARCH, self._lm)
        decoder.activate_search(SEARCH)
        return decoder
