"""`voiced run`: the daemon's composition root, top to bottom.

`run_daemon` puts one pipeline together from a checked configuration: audio source ->
endpointer -> recognition sessions (voiced.listen) -> commands -> actions, with events to the
outputs. A `Worker` (voiced.listen.worker) runs it in a thread of its own; `main` checks the
configuration, starts a worker, and then only waits for signals: SIGHUP reloads (a new worker
once the new configuration checks out), SIGTERM/SIGINT stop within the service's bound.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from functools import partial

from voiced.actions.runner import ActionRunner
from voiced.audio.recording import SessionRecorder
from voiced.audio.sources import open_source
from voiced.audio.vad import Endpointer
from voiced.commands.matching import CommandSet
from voiced.config.loader import ConfigError
from voiced.events import CaptionWriter, EventSink, JsonlWriter, OutputStream, TimelineLog, fan_out
from voiced.listen.confirmation import confirmations_for
from voiced.listen.core import ListeningCore
from voiced.listen.dispatch import CommandHandler
from voiced.listen.earcons import EarconPlayer, feedback_sink
from voiced.listen.loop import BATCH_FINAL_TIMEOUT_S, FINAL_TIMEOUT_S, Listener
from voiced.listen.recognizers import command_completion, recognizer, with_commands
from voiced.listen.worker import Worker
from voiced.ops.metrics import MetricsSink, VoicedMetrics, serve_metrics
from voiced.ops.notify import Notifier, Watchdog
from voiced.ops.signals import RELOAD, STOP, SignalRequests
from voiced.settings import ConfigChoice, DaemonSettings, find_config
from voiced.validation import CheckedConfig, load_checked
from voiced.wake.engines import SAMPLE_RATE as WAKE_RATE
from voiced.wake.gate import WakeWordEndpointer, wake_word_endpointer

log = logging.getLogger(__name__)


def run_daemon(
    settings: DaemonSettings,
    command_set: CommandSet | None,
    input_path: str | None,
    emit: EventSink,
    *,
    realtime: bool = False,
    on_listening: Callable[[Listener], None] = lambda listener: None,
    metrics: VoicedMetrics | None = None,
) -> None:
    """Listen until the input ends (file, stdin) or the listener is stopped (microphone).
    Finals go to the configured commands; their actions finish (within the stop bound)
    before this returns.

    `on_listening` receives the running Listener (to stop it from another thread)."""
    settings = with_commands(settings, command_set)
    source = open_source(input_path, settings.audio, settings.endpointing.frame_ms, realtime, on_error=emit)
    # read --fast, a whole utterance reaches the recognizer at once: allow it to catch up. Its
    # frames outrun the partials, so a session ending early would be a race: it never does
    batch = input_path not in (None, "-") and not realtime
    core = ListeningCore(
        endpointer_for(settings, source.sample_rate),
        final_timeout_s=BATCH_FINAL_TIMEOUT_S if batch else FINAL_TIMEOUT_S,
        completion=None if batch else command_completion(settings, command_set),
        complete_silence_s=settings.endpointing.complete_silence_s,
    )
    recording = settings.audio.debug_recording
    recorder = SessionRecorder(recording, source.sample_rate) if recording else None
    player = EarconPlayer(settings.feedback)
    # every consumer of events on its own: a broken one (stdout gone) must not stop the actions
    prompt = settings.wake.mode == "wake_word" and settings.wake.prompt
    emit = fan_out(emit, *([feedback_sink(player, wake_prompt=prompt)] if settings.feedback.enabled else []))
    runner = on_final = conversation = None
    confirmations = confirmations_for(settings.commands.confirm, command_set, settings.recognition.language)
    if command_set is not None or settings.home_assistant is not None:
        runner = ActionRunner(settings.actions, emit)
        if settings.home_assistant is not None:
            # httpx (~7 MB) is loaded only by a daemon that talks to Home Assistant
            from voiced.homeassistant.client import ConversationClient
            from voiced.homeassistant.fallback import ConversationFallback

            client = ConversationClient(settings.home_assistant, settings.recognition.language)
            conversation = ConversationFallback(client, runner, emit)
        on_final = CommandHandler(
            command_set,
            settings.recognition.language,
            runner,
            emit,
            conversation,
            confirmations,
            player.holding_input,
            await_answer=answer_without_wake_word(core.endpointer, settings.commands.confirm.timeout_s),
        )
    listener = None
    try:
        # the recognizer must be told the rate the audio really has (a WAV input decides it)
        recognition = settings.recognition.model_copy(update={"sample_rate": source.sample_rate})
        commands_model = settings.commands.local_grammar.model
        with recognizer(recognition, settings.server, commands_model, command_set, metrics) as client:
            listener = Listener(
                core,
                client,
                emit,
                recorder=recorder,
                metrics=metrics,
                on_final=on_final,
                on_tick=on_final.tick if on_final is not None else None,
                # earcons and questions said back must not be heard as speech (a file read
                # faster than real time is heard by no loudspeaker: its audio is not masked)
                input_filter=player.mask_input if settings.feedback.enabled or (confirmations and not batch) else None,
                one_session_at_a_time=batch,
            )
            on_listening(listener)
            listener.run(source)
    finally:
        if runner is not None:
            bound = settings.service.stop_timeout_s
            if not runner.shutdown(listener.time_left(bound) if listener else bound):
                log.warning("actions still running after the stop bound were abandoned")
        if conversation is not None:
            conversation.close()
        player.close()


def answer_without_wake_word(endpointer: Endpointer | WakeWordEndpointer, timeout_s: float) -> Callable[[], None]:
    """What lets the answer to a question asked back in: the wake word's gate opens for it."""
    if isinstance(endpointer, WakeWordEndpointer):
        return partial(endpointer.await_answer, timeout_s)
    return lambda: None  # any speech opens a session


def endpointer_for(settings: DaemonSettings, sample_rate: int) -> Endpointer | WakeWordEndpointer:
    """What opens sessions: any speech (wake.mode: vad), or only speech after the wake word."""
    if settings.wake.mode == "vad":
        return Endpointer(settings.endpointing, sample_rate)
    if sample_rate != WAKE_RATE:
        raise ValueError(f"the wake word listens at {WAKE_RATE} Hz, the audio input is at {sample_rate} Hz")
    return wake_word_endpointer(settings.wake, settings.endpointing, sample_rate)


def _report(checked: CheckedConfig) -> None:
    for warning in checked.warnings:
        log.warning("%s", warning)


def _reload(choice: ConfigChoice, worker: Worker, start: Callable[[CheckedConfig], Worker]) -> Worker:
    """The worker of the re-read configuration, or the running one if it is invalid."""
    try:
        # validate everything first: a broken file leaves the running pipeline alone
        checked = load_checked(choice)
    except ConfigError as exc:
        log.error("reload rejected, keeping the running configuration:\n%s", exc)
        return worker
    except Exception as exc:  # whatever it is, a reload must not end a running daemon
        log.error("reload rejected, keeping the running configuration: %s: %s", type(exc).__name__, exc)
        return worker
    _report(checked)
    worker.stop()
    worker = start(checked)
    worker.started()  # the RELOADING state lasts until the new pipeline listens
    log.info("configuration reloaded from %s", choice.describe())
    return worker


def main(args) -> int:
    choice = find_config(args.config)
    print(f"voiced: config {choice.describe()}", file=sys.stderr, flush=True)
    try:
        checked = load_checked(choice)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 2
    print(f"voiced: {checked.describe_commands()}", file=sys.stderr, flush=True)
    _report(checked)
    output = OutputStream(sys.stdout)
    writer = JsonlWriter(output) if args.events == "jsonl" else CaptionWriter(output)
    # only an enabled endpoint loads prometheus_client (~4 MB of a ~60 MB daemon)
    metrics = VoicedMetrics() if checked.settings.metrics.enabled else None
    metrics_server = serve_metrics(metrics, checked.settings.metrics) if metrics else None
    emit = fan_out(writer, *([MetricsSink(metrics)] if metrics else []), TimelineLog(log))
    notifier = Notifier.from_environment()
    # a file plays at real-time pace by default, so it behaves like a microphone (and demos live)
    realtime = args.input not in (None, "-") and not args.fast

    def start(config: CheckedConfig) -> Worker:
        settings = config.settings
        run = partial(run_daemon, settings, config.commands, args.input, emit, realtime=realtime, metrics=metrics)
        return Worker(run, settings.service.stop_timeout_s)

    with SignalRequests() as signals:
        worker = start(checked)
        watchdog = Watchdog.for_notifier(notifier, healthy=lambda: worker.thread.is_alive())
        if worker.started():  # READY only once audio is really being listened to
            notifier.ready("listening")
        if watchdog:
            watchdog.start()
        while worker.thread.is_alive():
            request = signals.next(timeout=0.2)
            if request == STOP:
                notifier.stopping("finishing sessions in flight")
                worker.stop()
                break
            elif request == RELOAD and choice.path is not None:
                with notifier.reloading():
                    worker = _reload(choice, worker, start)
        if watchdog:
            watchdog.stop()
    if metrics_server:
        metrics_server.stop()
    output.close()
    if worker.failure is not None:
        print(f"voiced run: {worker.failure}", file=sys.stderr)
        return 1
    return 0
