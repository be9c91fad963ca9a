"""The `wake:` section: whether sessions open on any speech (`vad`) or on a wake word, and which.

The model is a shipped name or a path to a user's own model:
- a microWakeWord model: the `.json` manifest its training writes (naming its `.tflite`
  beside it), or that `.tflite` itself when the manifest sits beside it with the same stem;
- an openWakeWord model: a `.tflite` file with no manifest beside it (pyopen-wakeword runs
  TFLite only, so an `.onnx` model has to be converted first).

Everything here is checked when the settings load, so a bad path is reported as
file:line:col by `voiced check-config`, never as a crash when listening starts. Nothing is
ever downloaded: shipped names are the models inside the pymicro-wakeword and
pyopen-wakeword wheels.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pydantic

from voiced.config.loader import FrozenModel

Engine = Literal["micro", "open"]
# the models inside the wheels (pymicro_wakeword.Model, pyopen_wakeword.Model; a test checks)
SHIPPED_MODELS: dict[Engine, tuple[str, ...]] = {
    "micro": ("alexa", "hey_jarvis", "hey_mycroft", "okay_nabu"),
    "open": ("alexa", "hey_jarvis", "hey_mycroft", "hey_rhasspy", "okay_nabu"),
}
# openWakeWord's models come with no threshold of their own; 0.5 is openWakeWord's default
OPEN_DEFAULT_THRESHOLD = 0.5
TFLITE_MAGIC = b"TFL3"  # bytes 4-8 of a TFLite flatbuffer


@dataclass(frozen=True)
class WakeModel:
    """A wake model resolved to its engine and files."""

    engine: Engine
    name: str  # reported in WakeDetected: the shipped name or the file's stem
    path: Path | None  # None: shipped in the engine's wheel; microWakeWord: its .json manifest
    manifest: dict | None = None  # microWakeWord's JSON (for a user's model)

    @property
    def own_threshold(self) -> float | None:
        """The threshold the model's author chose (microWakeWord manifests carry one)."""
        if self.manifest is not None:
            return float(self.manifest["micro"]["probability_cutoff"])
        return None if self.engine == "micro" else OPEN_DEFAULT_THRESHOLD


class WakeSettings(FrozenModel):
    """The `wake:` section."""

    # vad: a session opens on any speech (as before); wake_word: only after the wake word
    mode: Literal["vad", "wake_word"] = "vad"
    # which library runs a shipped name; a path decides by its files. microWakeWord was
    # chosen by measurement (README, bench/bench_wake.py): cheaper and more accurate here
    engine: Engine = "micro"
    # a shipped name (see SHIPPED_MODELS) or the path of a model file
    model: str = "alexa"
    # score at or above which the wake word counts; null: the model's own (a microWakeWord
    # manifest's probability_cutoff, 0.5 for openWakeWord); higher misses more, fires less
    threshold: float | None = pydantic.Field(None, gt=0, lt=1)
    # after a detection, further detections are ignored this long
    refractory_s: float = pydantic.Field(2.0, ge=0, le=60)
    # how long to wait for the command to start after the wake word before giving up
    command_timeout_s: float = pydantic.Field(5.0, gt=0, le=60)
    # play the `listening` earcon on the wake word, for a command said after the prompt. Off
    # by default: with feedback.mute_input the earcon's mute would blank a command said in
    # the same breath ("alexa, turn on the light"), which works without a prompt
    prompt: bool = False
    # run the wake model only around speech the VAD hears (costs less on silence and noise)
    vad_gate: bool = True
    # audio kept while the gate is shut and scored when it opens: must hold the whole wake
    # phrase, whose first sounds ("h" of "hey") the VAD often does not take for speech
    gate_history_s: float = pydantic.Field(1.5, ge=0.3, le=5)
    # the gate stays open this long after the last speech frame (the model decides late)
    gate_hangover_s: float = pydantic.Field(1.0, ge=0.1, le=5)

    @pydantic.field_validator("model")
    @classmethod
    def _model_exists(cls, model: str, info: pydantic.ValidationInfo) -> str:
        if "engine" in info.data:  # else the engine is wrong, and reported
            resolve_model(model, info.data["engine"])
        return model

    @property
    def wake_model(self) -> WakeModel:
        return resolve_model(self.model, self.engine)


def resolve_model(model: str, engine: Engine = "micro") -> WakeModel:
    """The engine and files of `model`; ValueError naming the path when it cannot be used."""
    if model in SHIPPED_MODELS[engine]:
        return WakeModel(engine, model, None)
    if "/" not in model and "." not in model:
        names = ", ".join(SHIPPED_MODELS[engine])
        also = [e for e, shipped in SHIPPED_MODELS.items() if model in shipped]
        hint = f" (engine {also[0]!r} ships it)" if also else ""
        raise ValueError(f"no shipped {engine} wake model {model!r}{hint}: one of {names}, or the path of a model file")
    path = Path(model).expanduser()
    if not path.is_file():
        raise ValueError(f"wake model {str(path)!r}: no such file")
    if path.suffix == ".json":
        return _micro_model(path)
    if path.suffix != ".tflite":
        raise ValueError(
            f"wake model {str(path)!r}: expected a microWakeWord .json manifest or a .tflite "
            "model (convert an openWakeWord .onnx model to .tflite first)"
        )
    _check_tflite(path)
    manifest = path.with_suffix(".json")
    if manifest.is_file():
        return _micro_model(manifest)
    return WakeModel("open", path.stem, path)


def _micro_model(path: Path) -> WakeModel:
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"wake model manifest {str(path)!r} is not readable JSON: {exc}") from None
    micro = manifest.get("micro") if isinstance(manifest, dict) else None
    if not isinstance(micro, dict) or not isinstance(manifest.get("model"), str):
        raise ValueError(
            f'wake model manifest {str(path)!r} is not a microWakeWord manifest (needs "model" and a "micro" section)'
        )
    for key in ("probability_cutoff", "sliding_window_size"):
        if not isinstance(micro.get(key), int | float):
            raise ValueError(f"wake model manifest {str(path)!r}: micro.{key} must be a number")
    tflite = path.parent / manifest["model"]
    if not tflite.is_file():
        raise ValueError(
            f"wake model manifest {str(path)!r} names {manifest['model']!r}, which is not there ({tflite})"
        )
    _check_tflite(tflite)
    return WakeModel("micro", tflite.stem, path, manifest)


def _check_tflite(path: Path) -> None:
    # TFLite takes a wrong file for a model and fails deep in C; say what is wrong instead
    with path.open("rb") as file:
        if file.read(8)[4:] != TFLITE_MAGIC:
            raise ValueError(f"wake model {str(path)!r} is not a TFLite model")
