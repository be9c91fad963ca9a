"""`voiced run`: the daemon. Audio source -> endpointer -> recognition sessions -> events.

Three kinds of threads feed one inbox: the capture thread puts audio frames, each open
session's reader puts its recognition results, and the listener loop takes them in order,
lets the pure ListeningCore decide, and carries the decisions out (open/send/half-close/
cancel a session, emit an event). Nothing here may end the daemon: a session error or a
microphone error is logged, reported as an event, and listening goes on. The main thread
only waits for signals: SIGHUP reloads the configuration, SIGTERM/SIGINT stop within a bound.
"""

from __future__ import annotations

import collections
import logging
import queue
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from voiced.actions.runner import ActionRunner
from voiced.capture import AudioSource, open_source
from voiced.commands.handling import CommandHandler
from voiced.commands.matching import CommandSet
from voiced.endpointing import Endpointer
from voiced.events import CaptionWriter, EventSink, FinalEvent, JsonlWriter, OutputStream, TimelineLog, fan_out
from voiced.feedback import EarconPlayer, feedback_sink
from voiced.listening import CancelSession, Emit, FinishSession, ListeningCore, OpenSession, SendAudio
from voiced.metrics import MetricsSink, VoicedMetrics, serve_metrics
from voiced.notify import Notifier, Watchdog
from voiced.recording import SessionRecorder
from voiced.service import RELOAD, STOP, SignalRequests
from voiced.recognition import recognizer
from voiced.settings import ConfigChoice, DaemonSettings, find_config
from voiced.speechkit.events import AudioDelivered, Final, Partial, SessionError
from voiced.validation import CheckedConfig, load_checked, with_commands
from voiced.yamlconfig import ConfigError

log = logging.getLogger(__name__)

INBOX_SIZE = 500  # ~15 s of 30 ms frames: a slow consumer blocks the file reader, not memory
# after the end of speech, counted from when the recognizer has all of the session's audio and
# re-armed by each of its results (it may be working through a backlog: input read faster than
# real time, a busy machine); finals take well under 1 s when audio is live
FINAL_TIMEOUT_S = 5.0
BATCH_FINAL_TIMEOUT_S = 30.0
CAPTURE_STOP_S = 5.0  # for the capture thread to leave the audio library when listening ends


class Listener:
    """Runs the listening loop and carries out the core's decisions against real sessions."""

    def __init__(self, core: ListeningCore, client: Any, emit: EventSink, *,
                 recorder: SessionRecorder | None = None, on_final: Callable[[FinalEvent], None] | None = None,
                 input_filter: Callable[[bytes], bytes] | None = None, metrics: VoicedMetrics | None = None,
                 one_session_at_a_time: bool = False):
        self.core = core
        self.client = client
        self.emit = emit
        self.recorder = recorder
        self.on_final = on_final
        self.input_filter = input_filter
        self.metrics = metrics
        self.inbox: queue.Queue[tuple[Any, ...]] = queue.Queue(maxsize=INBOX_SIZE)
        self.sessions: dict[int, Any] = {}
        self._stop_requested = threading.Event()
        self._done = threading.Event()  # run() has returned: nobody takes from the inbox any more
        self._give_up_at = float("inf")
        # a file read as fast as possible would otherwise open sessions faster than the
        # recognizer answers them: hold the reader while a final is awaited (the order of
        # events and the memory use then match live audio; only the pauses are skipped)
        self._one_at_a_time = one_session_at_a_time
        self._may_read = threading.Event()
        self._may_read.set()
        # input already queued when a final came to be awaited (up to INBOX_SIZE frames):
        # it waits here, in order, instead of opening the next sessions meanwhile
        self._held: collections.deque[tuple[Any, ...]] = collections.deque()

    def stop(self, within_s: float) -> None:
        """Stop listening; sessions in flight get `within_s` to deliver their finals."""
        self._give_up_at = time.monotonic() + within_s
        self._stop_requested.set()

    def time_left(self, default: float) -> float:
        """Seconds left of the stop bound (`default` when no stop was asked for)."""
        return max(0.0, self._give_up_at - time.monotonic()) if self._stop_requested.is_set() else default

    def run(self, source: AudioSource) -> None:
        capture = threading.Thread(target=self._capture, args=(source,), name="capture", daemon=True)
        capture.start()
        try:
            self._listen(source)
        finally:
            self._done.set()
            source.close()
            # the capture thread may be inside PortAudio (reopening a device): it must leave
            # before the interpreter may exit, or a C library calling back then aborts it
            capture.join(CAPTURE_STOP_S)

    def _listen(self, source: AudioSource) -> None:
        input_ended = False
        while not (input_ended and self.core.idle):
            if self._stop_requested.is_set():
                if not input_ended:  # as if the input ended: half-close, then await the finals
                    source.close()
                    input_ended = True
                    self._carry_out(self.core.end_of_input(time.monotonic()))
                if time.monotonic() >= self._give_up_at:
                    for session in list(self.sessions):
                        self._close(session, cancel=True)
                    return
            item = self._next_item()
            now = time.monotonic()
            kind = item[0]
            if kind == "frame" and not input_ended:
                frame = item[1]
                if self.input_filter is not None and self.core.streaming is None:
                    frame = self.input_filter(frame)  # e.g. muted while our own earcon plays
                self._carry_out(self.core.feed_frame(frame, now))
            elif kind == "result":
                self._carry_out(self._on_result(item[1], item[2], now))
            elif kind == "closed":
                self._close(item[1])
                self._carry_out(self.core.on_closed(item[1]))
            elif kind == "end" and not input_ended:
                input_ended = True
                self._carry_out(self.core.end_of_input(now))
            self._carry_out(self.core.tick(now))
            if self._one_at_a_time:
                if self.core.awaiting_final:
                    self._may_read.clear()
                else:
                    self._may_read.set()

    def _next_item(self) -> tuple[Any, ...]:
        if self._held and not self.core.awaiting_final:
            return self._held.popleft()
        try:
            item = self.inbox.get(timeout=0.05)
        except queue.Empty:
            return ("tick",)
        if self._one_at_a_time and item[0] in ("frame", "end") and (self.core.awaiting_final or self._held):
            self._held.append(item)
            return ("tick",)
        return item

    def _capture(self, source: AudioSource) -> None:
        try:
            for frame in source.frames():
                while not self._may_read.wait(0.1):
                    if self._stop_requested.is_set():
                        return
                if not self._put(("frame", frame)):
                    return
        except Exception:  # a source bug must still end the loop cleanly
            log.exception("audio source failed")
        finally:
            self._put(("end",))

    def _put(self, item: tuple[Any, ...]) -> bool:
        """Into the inbox, unless the loop has ended (then nothing would ever take it)."""
        while not self._done.is_set():
            try:
                self.inbox.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _on_result(self, session: int, result: Any, now: float) -> list:
        if isinstance(result, Partial):
            return self.core.on_partial(session, result.text, now)
        if isinstance(result, Final):
            return self.core.on_final(session, result.text, result.confidence, result.end_of_utterance, now,
                                      result.reason)
        if isinstance(result, AudioDelivered):
            log.debug("session %d: the recognizer has received all of its audio", session)
            return self.core.on_delivered(session, now)
        if isinstance(result, SessionError):
            log.warning("session %d: %s %s", session, result.code, result.details)
            return self.core.on_error(session, result.code, result.details)
        return []

    def _read_results(self, session: int, handle: Any) -> None:
        try:
            for result in handle.events():
                self.inbox.put(("result", session, result))
        except Exception as exc:  # the client reports errors as events; this is a last resort
            log.exception("session %d reader failed", session)
            self.inbox.put(("result", session, SessionError("INTERNAL", str(exc))))
        finally:
            self.inbox.put(("closed", session))

    def _carry_out(self, decisions: list) -> None:
        for decision in decisions:
            try:
                self._carry_out_one(decision)
            except Exception as exc:
                session = getattr(decision, "session", 0)
                log.warning("session %d: %s failed: %s", session, type(decision).__name__, exc)
                self._carry_out(self.core.on_error(session, "UNAVAILABLE", str(exc)))
                self._close(session, cancel=True)

    def _carry_out_one(self, decision) -> None:
        if isinstance(decision, Emit):
            self.emit(decision.event)
            if isinstance(decision.event, FinalEvent) and self.on_final:
                self.on_final(decision.event)
        elif isinstance(decision, OpenSession):
            handle = self.client.session()
            self.sessions[decision.session] = handle
            threading.Thread(target=self._read_results, args=(decision.session, handle),
                             name=f"session-{decision.session}", daemon=True).start()
            self._send(decision.session, decision.audio)
        elif isinstance(decision, SendAudio):
            self._send(decision.session, decision.audio)
        elif isinstance(decision, FinishSession):
            if handle := self.sessions.get(decision.session):
                handle.finish()
        elif isinstance(decision, CancelSession):
            self._close(decision.session, cancel=True)

    def _send(self, session: int, audio: bytes) -> None:
        if handle := self.sessions.get(session):
            handle.send(audio)
            if self.recorder:
                self.recorder.add(session, audio)
            if self.metrics:
                self.metrics.bytes_sent(len(audio))

    def _close(self, session: int, cancel: bool = False) -> None:
        handle = self.sessions.pop(session, None)
        if handle is not None and cancel:
            handle.cancel()
        if self.recorder:
            self.recorder.save(session)


def run_daemon(settings: DaemonSettings, command_set: CommandSet | None, input_path: str | None,
               emit: EventSink, *, realtime: bool = False,
               on_listening: Callable[[Listener], None] = lambda listener: None,
               metrics: VoicedMetrics | None = None) -> None:
    """Listen until the input ends (file, stdin) or the listener is stopped (microphone).
    Finals go to the configured commands; their actions finish (within the stop bound)
    before this returns.

    `on_listening` receives the running Listener (to stop it from another thread)."""
    settings = with_commands(settings, command_set)
    source = open_source(input_path, settings.audio, settings.endpointing.frame_ms, realtime, on_error=emit)
    # read --fast, a whole utterance reaches the recognizer at once: allow it to catch up
    batch = input_path not in (None, "-") and not realtime
    core = ListeningCore(Endpointer(settings.endpointing, source.sample_rate),
                         final_timeout_s=BATCH_FINAL_TIMEOUT_S if batch else FINAL_TIMEOUT_S)
    recording = settings.audio.debug_recording
    recorder = SessionRecorder(recording, source.sample_rate) if recording else None
    player = EarconPlayer(settings.feedback)
    # every consumer of events on its own: a broken one (stdout gone) must not stop the actions
    emit = fan_out(emit, *([feedback_sink(player)] if settings.feedback.enabled else []))
    runner = ActionRunner(settings.actions, emit) if command_set else None
    on_final = CommandHandler(command_set, settings.recognition.language, runner, emit) if runner else None
    listener = None
    try:
        with recognizer(settings.with_sample_rate(source.sample_rate), metrics, command_set) as client:
            listener = Listener(core, client, emit, recorder=recorder, metrics=metrics, on_final=on_final,
                                input_filter=player.mask_input if settings.feedback.enabled else None,
                                one_session_at_a_time=batch)
            on_listening(listener)
            listener.run(source)
    finally:
        if runner is not None:
            bound = settings.service.stop_timeout_s
            if not runner.shutdown(listener.time_left(bound) if listener else bound):
                log.warning("actions still running after the stop bound were abandoned")
        player.close()


class Worker:
    """One configured pipeline listening in its own thread (the main thread waits for signals)."""

    def __init__(self, settings: DaemonSettings, command_set: CommandSet | None, input_path: str | None,
                 emit: EventSink, realtime: bool, metrics: VoicedMetrics):
        self.settings = settings
        self.command_set = command_set
        self.failure: Exception | None = None
        self._listeners: list[Listener] = []
        self._lock = threading.Lock()  # a stop may come while the pipeline is still starting
        self._stopping = False
        self._listening_started = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(input_path, emit, realtime, metrics),
                                       name="listener", daemon=True)
        self.thread.start()

    def _run(self, input_path, emit, realtime, metrics) -> None:
        try:
            run_daemon(self.settings, self.command_set, input_path, emit, realtime=realtime,
                       on_listening=self._listening, metrics=metrics)
        except Exception as exc:  # cannot start at all (bad input file, server cannot start)
            log.debug("listener failed", exc_info=True)
            self.failure = exc

    def started(self) -> bool:
        """Wait until the pipeline listens (recognizer up, source open); False if it failed."""
        while not self._listening_started.wait(0.1):
            if not self.thread.is_alive():
                return False
        return True

    def _listening(self, listener: Listener) -> None:
        self._listening_started.set()
        with self._lock:
            self._listeners.append(listener)
            if self._stopping:  # stop() came before the listener ran: not to be lost
                listener.stop(self.settings.service.stop_timeout_s)

    def stop(self) -> None:
        """Finish sessions in flight within the service's stop bound, then return."""
        bound = self.settings.service.stop_timeout_s
        with self._lock:
            self._stopping = True
            listeners = list(self._listeners)
        for listener in listeners:
            listener.stop(bound)
        self.thread.join(bound + 2)


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
    emit = JsonlWriter(output) if args.events == "jsonl" else CaptionWriter(output)
    metrics = VoicedMetrics()
    metrics_server = serve_metrics(metrics, checked.settings.metrics)
    emit = fan_out(emit, MetricsSink(metrics), TimelineLog(log))
    notifier = Notifier.from_environment()
    # a file plays at real-time pace by default, so it behaves like a microphone (and demos live)
    realtime = args.input not in (None, "-") and not args.fast

    def start(config: CheckedConfig) -> Worker:
        return Worker(config.settings, config.commands, args.input, emit, realtime, metrics)

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
