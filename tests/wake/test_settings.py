"""The `wake:` section: shipped names, a user's own models, and clear errors for bad ones."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pydantic
import pymicro_wakeword
import pyopen_wakeword
import pytest

from voiced.audio.vad import EndpointerSettings
from voiced.config.loader import ConfigError
from voiced.settings import load_settings
from voiced.testing import mix, noise, read_pcm, silence
from voiced.wake.detector import WakeDetector
from voiced.wake.engines import load_scorer
from voiced.wake.settings import SHIPPED_MODELS, WakeSettings, resolve_model

MICRO_MODELS = Path(pymicro_wakeword.__file__).parent / "models"
OPEN_MODELS = Path(pyopen_wakeword.__file__).parent / "models"


def test_defaults_keep_todays_behaviour():
    wake = load_settings(None).wake
    assert wake.mode == "vad"
    assert wake.wake_model.engine == "micro" and wake.wake_model.path is None


def test_shipped_names_are_what_the_wheels_ship():
    assert set(SHIPPED_MODELS["micro"]) == {model.value for model in pymicro_wakeword.Model}
    assert set(SHIPPED_MODELS["open"]) == {model.value for model in pyopen_wakeword.Model}
    for name in SHIPPED_MODELS["micro"]:
        assert (MICRO_MODELS / f"{name}.json").is_file()


def test_unknown_name_lists_the_shipped_ones():
    with pytest.raises(pydantic.ValidationError, match=r"no shipped micro wake model 'alisa'.*alexa, hey_jarvis"):
        WakeSettings(model="alisa")
    with pytest.raises(pydantic.ValidationError, match="engine 'open' ships it"):
        WakeSettings(model="hey_rhasspy")
    assert WakeSettings(model="hey_rhasspy", engine="open").wake_model.engine == "open"


def test_a_bad_model_path_is_a_located_error_naming_it(tmp_path):
    config = tmp_path / "voiced.yaml"
    config.write_text("wake:\n  mode: wake_word\n  model: /nowhere/alisa.tflite\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(config)
    assert str(caught.value) == f"{config}:3:10: wake.model: wake model '/nowhere/alisa.tflite': no such file"


def test_a_manifest_naming_a_missing_model_says_which(tmp_path):
    manifest = tmp_path / "alisa.json"
    manifest.write_text(
        json.dumps({"model": "alisa.tflite", "micro": {"probability_cutoff": 0.9, "sliding_window_size": 5}})
    )
    with pytest.raises(ValueError, match=r"names 'alisa\.tflite', which is not there"):
        resolve_model(str(manifest))


@pytest.mark.parametrize(
    "name, content, expected",
    [
        ("alisa.json", "{not json", "not readable JSON"),
        ("alisa.json", '{"model": "alisa.tflite"}', "not a microWakeWord manifest"),
        ("alisa.tflite", "this is text, not a model", "is not a TFLite model"),
        ("alisa.onnx", "onnx", "convert an openWakeWord .onnx model to .tflite"),
    ],
)
def test_unusable_model_files_are_refused_with_the_reason(tmp_path, name, content, expected):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(ValueError, match=expected) as caught:
        resolve_model(str(path))
    assert str(path) in str(caught.value)


def detections(wake: WakeSettings, pcm: bytes) -> list:
    endpointing = EndpointerSettings()
    detector = WakeDetector(wake, endpointing, load_scorer(wake.wake_model))
    size = endpointing.frame_bytes(16000)
    return [event for i in range(0, len(pcm) - size + 1, size) for event in detector.process(pcm[i : i + size])]


@pytest.fixture(scope="module")
def alexa_pcm(speech):
    pcm, _ = read_pcm(speech("alexa", "flite:kal16"))
    return mix(silence(1.5, 16000) + pcm + silence(1.5, 16000), noise(5, 16000, "pinknoise", 0.008))


def test_a_users_microwakeword_pair_loads_and_detects(tmp_path, alexa_pcm):
    # a trained model as microWakeWord's notebook writes it: a .tflite and its .json manifest
    shutil.copy(MICRO_MODELS / "alexa.tflite", tmp_path / "my_name.tflite")
    manifest = json.loads((MICRO_MODELS / "alexa.json").read_text())
    (tmp_path / "my_name.json").write_text(json.dumps({**manifest, "model": "my_name.tflite"}))
    for given in ("my_name.json", "my_name.tflite"):
        wake = WakeSettings(mode="wake_word", model=str(tmp_path / given))
        assert wake.wake_model.engine == "micro" and wake.wake_model.name == "my_name"
        assert wake.wake_model.own_threshold == manifest["micro"]["probability_cutoff"]
        assert [event.model for event in detections(wake, alexa_pcm)] == ["my_name"]


def test_a_users_openwakeword_model_loads_and_detects(tmp_path, alexa_pcm):
    shutil.copy(OPEN_MODELS / "alexa.tflite", tmp_path / "my_open_name.tflite")
    wake = WakeSettings(mode="wake_word", model=str(tmp_path / "my_open_name.tflite"))
    assert wake.wake_model.engine == "open"
    assert [event.model for event in detections(wake, alexa_pcm)] == ["my_open_name"]
