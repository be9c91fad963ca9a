"""The listening worker: a stop is never lost, even while the pipeline is still starting
(a real daemon pipeline on a real local server, real speech)."""

from __future__ import annotations

from functools import partial

from tests.test_reliability import KITCHEN, RATE, Events, settings_for
from voiced.daemon import run_daemon
from voiced.listen.worker import Worker
from voiced.ops.metrics import VoicedMetrics
from voiced.testing import silence, write_wav


def test_a_stop_while_the_pipeline_starts_still_stops_it(local_server, speech_pcm, tmp_path):
    """A reload (or SIGTERM) can come before the new pipeline is listening: the stop must
    not be lost, or the old pipeline keeps listening beside the new one."""
    wav = write_wav(tmp_path / "long.wav", speech_pcm(KITCHEN) + silence(20.0, RATE), RATE)
    settings = settings_for(local_server.target, service={"stop_timeout_s": 1.0})
    events = Events()
    # realtime: 20+ s of input
    run = partial(run_daemon, settings, None, str(wav), events, realtime=True, metrics=VoicedMetrics())
    worker = Worker(run, settings.service.stop_timeout_s)
    worker.stop()  # at once: the listener is not running yet
    assert not worker.thread.is_alive(), "the stop was lost: the pipeline goes on listening"
    assert worker.failure is None


def test_a_pipeline_that_cannot_start_is_reported_not_waited_for():
    def run(on_listening):
        raise FileNotFoundError("no such input: missing.wav")

    worker = Worker(run, stop_timeout_s=1.0)
    assert worker.started() is False
    assert isinstance(worker.failure, FileNotFoundError) and "missing.wav" in str(worker.failure)
