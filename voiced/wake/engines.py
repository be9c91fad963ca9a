"""The thin edge: load a wake model with its library and turn audio into scores.

Both libraries run TFLite through the C library inside their wheels, and both models ship
inside the wheels: nothing is downloaded. A scorer takes 16 kHz 16-bit mono PCM of any
length and returns the scores the model produced on it (0-1, one per model step:
microWakeWord every 30 ms, openWakeWord every 80 ms).
"""

from __future__ import annotations

from typing import Protocol

from voiced.wake.settings import WakeModel

SAMPLE_RATE = 16000


class WakeScorer(Protocol):
    name: str
    threshold: float  # the default threshold for this model
    # how long after the end of the phrase the score typically crosses the threshold
    detection_lag_s: float

    def scores(self, pcm: bytes) -> list[float]: ...

    def reset(self) -> None:
        """Forget all audio heard (after a detection, so the phrase cannot fire twice)."""


class MissingEngine(RuntimeError):
    pass


def load_scorer(model: WakeModel) -> WakeScorer:
    """The scorer of `model`; MissingEngine when its library is not installed."""
    if model.engine == "micro":
        return MicroWakeWordScorer(model)
    return OpenWakeWordScorer(model)


def _import_error(package: str) -> MissingEngine:
    return MissingEngine(f"the wake word needs {package}: pip install 'voiced[wake]'")


class MicroWakeWordScorer:
    """microWakeWord: a streaming model on 10 ms micro-frontend features, run every 3 steps;
    its score is the mean of the last few model outputs (the manifest's sliding window)."""

    detection_lag_s = 0.2

    def __init__(self, model: WakeModel):
        try:
            from pymicro_wakeword import MicroWakeWord, MicroWakeWordFeatures, Model
        except ImportError:
            raise _import_error("pymicro-wakeword") from None
        if model.path is None:
            self._model = MicroWakeWord.from_builtin(Model(model.name))
        else:
            self._model = MicroWakeWord.from_config(model.path)
        self._features = MicroWakeWordFeatures()
        self.name = model.name
        # the author's threshold (the manifest's probability_cutoff): the bench found the
        # thresholds it tuned on its tuning set did worse on held-out voices (README)
        self.threshold = model.own_threshold or self._model.probability_cutoff
        self._fed = 0

    def scores(self, pcm: bytes) -> list[float]:
        out = []
        for features in self._features.process_streaming(pcm):
            probability = self._model.process_streaming_prob(features)
            self._fed += 1
            # the model only runs every `stride` features; in between it answers 0.0
            if probability is not None and self._fed % self._model.stride == 0:
                out.append(probability)
        return out

    def reset(self) -> None:
        self._model.reset()
        self._features.reset()
        self._fed = 0


class OpenWakeWordScorer:
    """openWakeWord: shared melspectrogram and embedding models every 80 ms, then a small
    classifier over the last embeddings."""

    detection_lag_s = 0.25

    def __init__(self, model: WakeModel):
        try:
            from pyopen_wakeword import Model, OpenWakeWord, OpenWakeWordFeatures
        except ImportError:
            raise _import_error("pyopen-wakeword") from None
        if model.path is None:
            self._model = OpenWakeWord.from_builtin(Model(model.name))
        else:
            self._model = OpenWakeWord.from_model(model.path)
        self._features = OpenWakeWordFeatures.from_builtin()
        self.name = model.name
        threshold = model.own_threshold
        assert threshold is not None  # an openWakeWord model has the library's default at least
        self.threshold = threshold

    def scores(self, pcm: bytes) -> list[float]:
        return [
            score
            for embeddings in self._features.process_streaming(pcm)
            for score in self._model.process_streaming(embeddings)
        ]

    def reset(self) -> None:
        self._model.reset()
        self._features.reset()
