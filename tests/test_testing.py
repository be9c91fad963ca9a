"""The test helpers' own promise: synthesized speech is the same audio every run, so a test on
real speech hears what it heard the run before."""

from __future__ import annotations

import pytest

from voiced.testing import synthesize

pytestmark = pytest.mark.speech  # needs espeak-ng, flite and sox


@pytest.mark.parametrize("voice", ["espeak:ru", "flite:slt,tempo=1.1"])
def test_the_same_text_is_the_same_audio_every_time(tmp_path, voice):
    (tmp_path / "first").mkdir(), (tmp_path / "second").mkdir()
    first = synthesize("включи свет в спальне", voice, 16000, tmp_path / "first")
    second = synthesize("включи свет в спальне", voice, 16000, tmp_path / "second")
    assert first.read_bytes() == second.read_bytes()
