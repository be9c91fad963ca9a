"""Run a program without a shell: argv list, data on stdin, capped output, killed on timeout.

Shared by `exec`, `sound` and `say`. Each program runs under voiced.actions.supervisor, which
takes down everything it started (its process group, and `setsid` escapees too) when it
exits, times out, or the daemon stops (RunningPrograms.stop_all). The child gets a minimal environment
(CHILD_VARIABLES of the daemon's, plus what the action names): the daemon's secrets stay home.
"""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
import threading
import time
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


class RunningPrograms:
    """The programs one ActionRunner has running, so that they can all be stopped at once."""

    def __init__(self) -> None:
        self._running: set[subprocess.Popen] = set()
        self._lock = threading.Lock()
        self._stopping = False

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
        for proc in running:
            _stop(proc)


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
    status_read, status_write = os.pipe()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-I", "-S", str(SUPERVISOR), str(status_write), str(os.getpid()), "--", *argv],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            pass_fds=(status_write,),
            env=child_environment() if env is None else env,
            cwd=cwd,
            start_new_session=True,
        )
    except OSError as exc:
        os.close(status_read)
        raise ActionError(f"cannot start {argv[0]!r}: {exc.strerror or exc}") from None
    finally:
        os.close(status_write)
    programs = RunningPrograms() if programs is None else programs
    try:
        programs.add(proc)
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
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
        with os.fdopen(status_read, "rb") as status:
            report = status.read().split()
    if report[:1] == [b"error"]:
        raise ActionError(f"cannot start {argv[0]!r}: {os.strerror(int(report[1]))}")
    returncode = int(report[1]) if report[:1] == [b"exit"] else proc.returncode
    return ProcessResult(returncode, stdout, stderr, truncated)
