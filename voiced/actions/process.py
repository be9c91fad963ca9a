"""Run a program without a shell: argv list, data on stdin, capped output, killed on timeout.

Shared by `exec`, `sound` and `say`. Each program runs under voiced.actions.supervisor, which
takes down everything it started (its process group, and `setsid` escapees too) when it
exits, times out, or the daemon stops (RunningPrograms.stop_all). The child gets a minimal environment
(CHILD_VARIABLES of the daemon's, plus what the action names): the daemon's secrets stay home.

A supervisor is a Python process, ~25 ms to start: RunningPrograms(keep_spare=True) keeps one
started ahead, so an action waits only for its own program.
"""

from __future__ import annotations

import marshal
import os
import selectors
import signal
import subprocess
import sys
import threading
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from voiced.actions.errors import ActionError

SUPERVISOR = Path(__file__).resolve().parent / "supervisor.py"
# what a program needs from the daemon's environment to run at all: where programs are, who
# and where it is, its language and time zone, the user's runtime directory (audio servers)
CHILD_VARIABLES = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "XDG_RUNTIME_DIR")
DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"
STOP_GRACE_S = 2.0  # for the supervisor to kill the program's processes before it is killed itself
_CHUNK = 65536


@dataclass(frozen=True)
class ProcessResult:
    returncode: int
    stdout: bytes
    stderr: bytes
    truncated: bool


def child_environment(extra: dict[str, str] | None = None, passed: tuple[str, ...] = ()) -> dict[str, str]:
    """CHILD_VARIABLES (and LC_*) of the daemon's environment, the variables named in `passed`,
    then `extra`."""
    inherited = {
        name: value
        for name, value in os.environ.items()
        if name in CHILD_VARIABLES or name.startswith("LC_") or name in passed
    }
    inherited.setdefault("PATH", DEFAULT_PATH)
    return {**inherited, **(extra or {})}


def failure(program: str, result: ProcessResult) -> ActionError:
    """The error of a program that exited unsuccessfully: its status and its last words."""
    status = (
        f"was killed by signal {-result.returncode}" if result.returncode < 0 else f"exited with {result.returncode}"
    )
    said = tail(result.stderr)
    return ActionError(f"{program!r} {status}{': ' + said if said else ''}")


def tail(output: bytes, limit: int = 300) -> str:
    """The end of a program's output for a message: whole last lines (the conclusion is at the
    end: "aplay: main:831: audio open error: ..."), at most about `limit` characters."""
    lines = [line.strip() for line in output.decode(errors="replace").splitlines() if line.strip()]
    # libasound's own chatter (a player probing devices) says nothing the program does not say
    lines = [line for line in lines if not line.startswith("ALSA lib ")] or lines
    kept: list[str] = []
    while lines and (not kept or sum(map(len, kept)) + len(lines[-1]) <= limit):
        kept.insert(0, lines.pop())
    text = " / ".join(kept)
    return text if len(text) <= limit else "…" + text[-limit:]


class _Supervisor:
    """A started supervisor process, waiting for the one program it is to run."""

    def __init__(self) -> None:
        status_read, status_write = os.pipe()
        request_read, self._request = os.pipe()
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-I", "-S", str(SUPERVISOR), str(status_write), str(request_read), str(os.getpid())],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                pass_fds=(status_write, request_read),
                env=child_environment(),
                start_new_session=True,
            )
        except BaseException:
            os.close(status_read)
            os.close(self._request)
            raise
        finally:
            os.close(status_write)
            os.close(request_read)
        self._status = status_read

    def waiting(self) -> bool:
        return self._request >= 0 and self.proc.poll() is None

    def run(self, argv: list[str], env: dict[str, str], cwd: Path | None) -> None:
        """Hand it its program (raises BrokenPipeError if it is gone)."""
        pending = memoryview(marshal.dumps((argv, env, None if cwd is None else str(cwd))))
        try:
            while pending:
                pending = pending[os.write(self._request, pending) :]
        finally:
            os.close(self._request)
            self._request = -1

    def report(self) -> list[bytes]:
        """Its status report, once it has exited: [b"exit", code], [b"error", errno] or [] (it
        never ran the program); closes its pipes."""
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()
        with os.fdopen(self._status, "rb") as status:
            return status.read().split()

    def dismiss(self) -> None:
        """End it unused (its request pipe closes empty) and release it."""
        if self._request >= 0:
            os.close(self._request)
            self._request = -1
        try:
            self.proc.wait(STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.report()


class _SpareSupervisor:
    """One supervisor kept started for the next program, by a thread of its own: a
    supervisor's PR_SET_PDEATHSIG fires when the *thread* that started it ends, and the spare
    may run a program for any worker thread, after the one that happened to want it has ended
    (a daemon stopping: its idle workers end while another still runs its action)."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._spare: _Supervisor | None = None
        self._open = True
        self._thread = threading.Thread(target=self._keep, name="voiced-spare-supervisor", daemon=True)
        self._thread.start()

    def take(self) -> _Supervisor | None:
        """The spare, if one is waiting; another is started for the program after."""
        with self._changed:
            spare, self._spare = self._spare, None
            self._changed.notify_all()
        if spare is not None and not spare.waiting():  # killed from outside
            spare.dismiss()
            return None
        return spare

    def ready(self, timeout_s: float) -> int | None:
        """The pid of the spare once it waits, or None after `timeout_s`."""
        with self._changed:
            self._changed.wait_for(lambda: self._spare is not None or not self._open, timeout_s)
            return self._spare.proc.pid if self._spare is not None else None

    def close(self) -> None:
        """End the spare and the thread; the supervisors it started end with it (their
        programs must have ended: ActionRunner.shutdown waits for them, or stops them)."""
        with self._changed:
            self._open, spare, self._spare = False, self._spare, None
            self._changed.notify_all()
        if spare is not None:
            spare.dismiss()
        if threading.current_thread() is not self._thread:  # (a finalizer may run in any thread)
            self._thread.join()  # it dismisses the spare it may have been starting

    def _keep(self) -> None:
        while True:
            with self._changed:
                self._changed.wait_for(lambda: not self._open or self._spare is None)
                if not self._open:
                    return
            try:
                spare: _Supervisor | None = _Supervisor()
            except OSError:  # none to be had now: programs start their own; try after the next
                with self._changed:
                    self._changed.wait()
                continue
            with self._changed:
                if self._open:
                    self._spare, spare = spare, None
                    self._changed.notify_all()
            if spare is not None:
                spare.dismiss()


class RunningPrograms:
    """The programs one ActionRunner has running, so that they can all be stopped at once;
    with `keep_spare`, a supervisor is kept started for the next program."""

    def __init__(self, keep_spare: bool = False) -> None:
        self._running: set[subprocess.Popen] = set()
        self._lock = threading.Lock()
        self._stopping = False
        self._spare = _SpareSupervisor() if keep_spare else None
        if self._spare is not None:
            weakref.finalize(self, self._spare.close)  # a runner dropped without close()

    def supervisor(self) -> _Supervisor:
        """A supervisor for the next program: the spare if one is waiting, else one started
        now. Raises OSError if none can start, ActionError after stop_all."""
        with self._lock:
            if self._stopping:
                raise ActionError("not started: the actions are being stopped")
        spare = self._spare.take() if self._spare is not None else None
        return spare or _Supervisor()

    def spare_ready(self, timeout_s: float) -> int | None:
        """(tests, benchmarks) The pid of the spare supervisor once it waits; None without
        keep_spare, after close() or after `timeout_s`."""
        return self._spare.ready(timeout_s) if self._spare is not None else None

    def add(self, proc: subprocess.Popen) -> None:
        with self._lock:
            self._running.add(proc)
            stopping = self._stopping
        if stopping:  # started after stop_all: it must not outlive the daemon either
            _stop(proc)

    def __len__(self) -> int:
        with self._lock:
            return len(self._running)

    def discard(self, proc: subprocess.Popen) -> None:
        with self._lock:
            self._running.discard(proc)

    def stop_all(self) -> None:
        """Stop every program still running (the daemon is exiting), and any started later."""
        with self._lock:
            self._stopping = True
            running = list(self._running)
        self.close()
        for proc in running:
            _stop(proc)

    def close(self) -> None:
        """End the spare supervisor (and the thread that keeps it); programs started later
        start their own."""
        if self._spare is not None:
            self._spare.close()


def _stop(proc: subprocess.Popen) -> None:
    try:
        proc.send_signal(signal.SIGTERM)  # the supervisor: it kills the program's processes
        proc.wait(STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
    except ProcessLookupError:
        pass


def _exchange(proc: subprocess.Popen, stdin: bytes, limit: int, deadline: float) -> tuple[bytes, bytes, bool, bool]:
    """Write stdin, read stdout and stderr (kept up to `limit` each, the rest read and dropped,
    so a chatty program is never blocked on a full pipe) until both end or the deadline passes.
    (stdout, stderr, truncated, timed out)."""
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None  # all piped
    selector = selectors.DefaultSelector()
    pending = memoryview(stdin)
    if pending:
        os.set_blocking(proc.stdin.fileno(), False)
        selector.register(proc.stdin, selectors.EVENT_WRITE)
    else:
        proc.stdin.close()
    kept: dict[Any, bytearray] = {proc.stdout: bytearray(), proc.stderr: bytearray()}
    for pipe in kept:
        selector.register(pipe, selectors.EVENT_READ)
    truncated = False
    try:
        while selector.get_map():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return bytes(kept[proc.stdout]), bytes(kept[proc.stderr]), truncated, True
            for key, _ in selector.select(remaining):
                stream: Any = key.fileobj
                if stream is proc.stdin:
                    try:
                        pending = pending[os.write(stream.fileno(), pending[:_CHUNK]) :]
                    except BrokenPipeError:  # the program does not read its input: that is its right
                        pending = pending[:0]
                    if not pending:
                        selector.unregister(stream)
                        stream.close()
                    continue
                data = os.read(stream.fileno(), _CHUNK)
                if not data:
                    selector.unregister(stream)
                    continue
                buffer = kept[stream]
                room = max(0, limit - len(buffer))
                buffer += data[:room]
                truncated = truncated or len(data) > room
    finally:
        selector.close()
    return bytes(kept[proc.stdout]), bytes(kept[proc.stderr]), truncated, False


def run_process(
    argv: list[str],
    *,
    stdin: bytes = b"",
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout_s: float,
    max_output_bytes: int = 64 * 1024,
    programs: RunningPrograms | None = None,
) -> ProcessResult:
    """Run `argv` (under the supervisor) with child_environment(); `env`: its environment
    instead; `programs`: where it is registered while it runs. Raises ActionError when it
    cannot start or runs past `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    env = child_environment() if env is None else env
    # what exec cannot pass, refused here with the reason (the supervisor could not say why)
    if any("\0" in item for item in (*argv, *env, *env.values())):
        raise ActionError(f"cannot start {argv[0]!r}: a NUL byte in its arguments or environment")
    if bad := [name for name in env if not name or "=" in name]:
        raise ActionError(f"cannot start {argv[0]!r}: bad environment variable name {bad[0]!r}")
    programs = RunningPrograms() if programs is None else programs
    try:
        supervisor = programs.supervisor()
    except OSError as exc:
        raise ActionError(f"cannot start {argv[0]!r}: {exc.strerror or exc}") from None
    proc = supervisor.proc
    try:
        programs.add(proc)
        try:
            supervisor.run(argv, env, cwd)
        except BrokenPipeError:  # it was stopped (the daemon is stopping) or killed: the report says
            pass
        stdout, stderr, truncated, timed_out = _exchange(proc, stdin, max_output_bytes, deadline)
        if not timed_out:
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                timed_out = True
        if timed_out:
            _stop(proc)
            raise ActionError(f"{argv[0]!r} killed after {timeout_s:g} s timeout")
    finally:
        if proc.poll() is None:
            _stop(proc)
        programs.discard(proc)
        report = supervisor.report()
    if report[:1] == [b"error"]:
        raise ActionError(f"cannot start {argv[0]!r}: {os.strerror(int(report[1]))}")
    if report[:1] == [b"exit"]:
        return ProcessResult(int(report[1]), stdout, stderr, truncated)
    if proc.returncode < 0:  # the supervisor itself was killed
        return ProcessResult(proc.returncode, stdout, stderr, truncated)
    raise ActionError(f"{argv[0]!r} was stopped before it started")
