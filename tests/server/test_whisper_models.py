"""Where the Whisper engine finds its model: the multilingual one joined from its two wheels
into a cache directory once (whole or not at all), or read from memory where none can be written."""

from __future__ import annotations

import pytest

from voiced.server.decoding import ModelError
from voiced.server.whisper_models import check_model_dir, is_installed, joined, split_model


def test_the_split_model_is_joined_once_into_the_cache(tmp_path):
    split = split_model("ru")
    first = joined(split, tmp_path)
    assert first is not None and (first / "model.bin").stat().st_size == split.size
    assert {path.name for path in first.iterdir()} == {"model.bin", "config.json", "tokenizer.json", "vocabulary.json"}
    modified = (first / "model.bin").stat().st_mtime_ns
    assert joined(split, tmp_path) == first and (first / "model.bin").stat().st_mtime_ns == modified
    assert [path.name for path in tmp_path.iterdir()] == [first.name]  # no work directory left behind
    with (first / "model.bin").open("r+b") as model:  # a copy cut short is made again
        model.truncate(1000)
    assert joined(split, tmp_path) == first and (first / "model.bin").stat().st_size == split.size


def test_an_unwritable_cache_means_loading_from_memory(tmp_path):
    # a cache path under a file: no directory can be made there, not even by root
    (tmp_path / "not-a-directory").write_text("")
    assert joined(split_model("ru"), tmp_path / "not-a-directory" / "voiced") is None


def test_each_language_has_its_default_model():
    assert is_installed("en") and is_installed("ru")
    assert check_model_dir(None, "en").name  # tiny.en's directory
    assert check_model_dir(None, "ru").size > 100_000_000


def test_a_directory_without_a_model_is_refused(tmp_path):
    with pytest.raises(ModelError, match=r"no model\.bin"):
        check_model_dir(tmp_path, "ru")
