"""`voiced serve --workers N`: one server, its decoding spread over N decoder processes.

pocketsphinx keeps the GIL while it decodes: one process decodes on one core. So the server
itself (gRPC, Wyoming, limits, the sessions' logic) stays one process, and each session's
decoder lives in one of N processes forked from it once the models are loaded (their model
data shared copy-on-write): the one with the fewest sessions when the session opens, and the
next if that one's memory budget is used up. Streams are spread one by one, however clients
share connections. (Workers that each served the port with SO_REUSEPORT got connections by
the kernel's hash, not by load: 2 of them held 1.5x one's real-time streams, not 2x.)

The server talks to a decoder process over a local socket per session: the same Recognizer
interface as an in-process decoder (voiced.server.decoding), so the sessions cannot tell the
difference. Audio goes one way (a 30 ms frame is no round trip: a failure to decode it is
reported at the next call that answers); the other calls are one round trip each.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import tempfile
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Client, Connection, Listener

from voiced.server.decoding import Hypothesis
from voiced.server.engine import Engine
from voiced.server.pool import PoolExhausted

log = logging.getLogger(__name__)

READY_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 10.0
ANSWERED_CALLS = ("start", "partial", "end", "abort")  # of the Recognizer; "process" is one way
MAX_SOCKET_PATH = 107  # bytes of sun_path on Linux, less its terminating NUL


def socket_path(directory: str, index: int) -> str:
    """Where decoder process `index` listens."""
    return os.path.join(directory, f"decoder-{index}.sock")


class DecoderProcessGone(RuntimeError):
    """The decoder process of a session ended (killed, crashed): that session cannot go on."""


class DecoderProcess:
    """One forked process that hosts decoders for the server's sessions."""

    def __init__(self, engine: Engine, index: int, context, directory: str):
        # in a directory only this user can enter (no abstract socket: any local process could
        # connect to one, and hold up the accept loop with a handshake it never finishes)
        self.address = socket_path(directory, index)
        self.authkey = secrets.token_bytes(32)
        self.sessions = 0  # the server's count, under DecoderProcesses' lock
        ready_reader, ready_writer = context.Pipe(duplex=False)
        self.process = context.Process(
            target=_serve_decoders,
            args=(engine, self.address, self.authkey, ready_writer, os.getpid()),
            name=f"voiced-decoder-{index}",
            daemon=True,
        )
        self.process.start()
        ready_writer.close()
        self._ready = ready_reader

    def wait_ready(self, timeout: float) -> str | None:
        """None once it listens, else what went wrong."""
        died = "a decoder process died before it was ready"
        try:
            if not self._ready.poll(timeout):
                return "a decoder process did not get ready in time" if self.process.is_alive() else died
            return self._ready.recv()
        except EOFError:
            return died
        finally:
            self._ready.close()

    def connect(self) -> Connection:
        return Client(self.address, family="AF_UNIX", authkey=self.authkey)

    def stop(self, timeout: float) -> bool:
        if self.process.is_alive():
            self.process.terminate()
        self.process.join(timeout)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        return self.process.exitcode in (0, -signal.SIGTERM)


class DecoderProcesses:
    """The engine's face (languages, grammars, lend, give_back) over N decoder processes."""

    def __init__(self, engine: Engine, count: int, context):
        self._engine = engine
        self.languages = engine.languages
        self.grammars = engine.grammars
        self._lock = threading.Lock()
        self._sockets = tempfile.TemporaryDirectory(prefix="voiced-decoders-")  # mode 0700
        longest = socket_path(self._sockets.name, count - 1)
        if len(os.fsencode(longest)) > MAX_SOCKET_PATH:
            self._sockets.cleanup()
            raise RuntimeError(
                f"the decoder processes' socket {longest} is longer than a UNIX socket's path may be "
                f"({MAX_SOCKET_PATH} bytes): set TMPDIR to a shorter directory"
            )
        self.processes = [DecoderProcess(engine, index, context, self._sockets.name) for index in range(count)]
        deadline = time.monotonic() + READY_TIMEOUT_S
        for process in self.processes:
            error = process.wait_ready(max(0.0, deadline - time.monotonic()))
            if error is not None:
                for started in self.processes:
                    started.stop(STOP_TIMEOUT_S)
                self._sockets.cleanup()
                raise RuntimeError(error)

    def alive(self) -> bool:
        return all(process.process.is_alive() for process in self.processes)

    def lend(self, language: str, model: str) -> RemoteRecognizer:
        """A decoder in the process with the fewest sessions; in the next if that one's memory
        budget is used up. Raises PoolExhausted when none has room."""
        tried: list[DecoderProcess] = []
        refusal: PoolExhausted | None = None
        while True:
            with self._lock:
                untried = [process for process in self.processes if process not in tried]
                if not untried:
                    break
                process = min(untried, key=lambda candidate: candidate.sessions)
                process.sessions += 1
            tried.append(process)
            try:
                return RemoteRecognizer(process, language, model, self._done)
            except PoolExhausted as exc:
                refusal = exc
                self._done(process)
            except BaseException:
                self._done(process)
                raise
        assert refusal is not None
        raise refusal

    def _done(self, process: DecoderProcess) -> None:
        with self._lock:
            process.sessions -= 1

    def give_back(self, language: str, model: str, recognizer: RemoteRecognizer) -> None:
        recognizer.give_back()

    def close(self) -> None:
        """Stop the decoder processes (once the server's calls have ended)."""
        for process in self.processes:
            if not process.stop(STOP_TIMEOUT_S):
                log.warning("decoder process %s ended with exit code %s", process.process.pid, process.process.exitcode)
        self._sockets.cleanup()
        self._engine.close()


class RemoteRecognizer:
    """A decoder in a decoder process, with the Recognizer interface of an in-process one."""

    def __init__(self, process: DecoderProcess, language: str, model: str, done: Callable[[DecoderProcess], None]):
        self._process = process
        self._done = done
        self._lock = threading.Lock()
        self._in_utterance = False
        try:
            self._connection = process.connect()
        except OSError as exc:
            raise DecoderProcessGone(f"the decoder process is gone: {exc}") from None
        try:
            self._call("lend", language, model)
        except BaseException:
            self._connection.close()
            raise

    @property
    def in_utterance(self) -> bool:
        return self._in_utterance

    def start(self) -> None:
        self._call("start")

    def process(self, pcm: bytes) -> None:
        with self._lock:
            try:
                self._connection.send(("process", (pcm,)))
            except OSError as exc:
                raise DecoderProcessGone(f"the decoder process of this session ended ({exc})") from None

    def partial(self) -> str:
        return self._call("partial")

    def end(self) -> Hypothesis:
        return self._call("end")

    def abort(self) -> None:
        self._call("abort")

    def give_back(self) -> None:
        """The decoder back to its process's pool; this object is done."""
        try:
            self._call("give_back")
        except DecoderProcessGone:
            pass  # nothing left to give back to
        finally:
            self._connection.close()
            self._done(self._process)

    def _call(self, method: str, *args):
        with self._lock:
            try:
                self._connection.send((method, args))
                outcome, value, self._in_utterance = self._connection.recv()
            except (EOFError, OSError) as exc:
                raise DecoderProcessGone(f"the decoder process of this session ended ({exc or 'EOF'})") from None
        if outcome == "error":
            raise value
        return value


# --- in the decoder process -------------------------------------------------------------------


def _serve_decoders(engine: Engine, address: str, authkey: bytes, ready: Connection, parent: int) -> None:
    # the server's signal handlers came with the fork: SIGTERM ends this process (the server
    # sends it once its calls have ended), Ctrl-C and SIGHUP are the server's to act on
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        listener = Listener(address, family="AF_UNIX", authkey=authkey)
    except OSError as exc:
        ready.send(str(exc))
        return
    ready.send(None)
    ready.close()
    threading.Thread(target=_end_with, args=(parent,), daemon=True).start()
    while True:
        try:
            connection = listener.accept()
        except Exception:  # a client without the key (AuthenticationError), or one gone at once
            log.debug("decoder connection refused", exc_info=True)
            continue
        threading.Thread(target=_serve_session, args=(engine, connection), daemon=True).start()


def _end_with(parent: int) -> None:
    """A server that was SIGKILLed cannot stop its decoder processes: they notice and end."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(0)


def _serve_session(engine: Engine, connection: Connection) -> None:
    recognizer = None
    key: tuple[str, str] | None = None
    failed: Exception | None = None  # by audio, which is not answered: told at the next call
    try:
        while True:
            method, args = connection.recv()
            if method == "process":
                if failed is None and recognizer is not None:
                    try:
                        recognizer.process(*args)
                    except Exception as exc:
                        failed = exc
                continue
            try:
                if failed is not None and method != "give_back":
                    error, failed = failed, None
                    raise error
                if method == "lend":
                    key = (args[0], args[1])
                    recognizer, value = engine.lend(*key), None
                elif method == "give_back":
                    if recognizer is not None and key is not None:
                        engine.give_back(*key, recognizer)
                    connection.send(("ok", None, False))
                    return
                elif method in ANSWERED_CALLS and recognizer is not None:
                    value = getattr(recognizer, method)(*args)
                else:
                    raise ValueError(f"decoder call {method!r} out of turn")
                connection.send(("ok", value, bool(recognizer and recognizer.in_utterance)))
            except Exception as exc:  # the session's to handle, as it would in-process
                in_utterance = bool(recognizer and recognizer.in_utterance)
                try:
                    connection.send(("error", exc, in_utterance))
                except Exception:  # an exception that does not pickle: its words do
                    connection.send(("error", RuntimeError(f"{type(exc).__name__}: {exc}"), in_utterance))
    except (EOFError, OSError):  # the server went away mid-session: the decoder goes back
        if recognizer is not None and key is not None:
            engine.give_back(*key, recognizer)
    finally:
        connection.close()
