"""Run a program without a shell: argv list, data on stdin, capped output, killed on timeout.

Shared by `exec`, `sound` and `say`. The child gets its own process group so a timeout kills
everything it started, not only the direct child.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import IO


class ActionError(Exception):
    """An action failed; the message is safe to log (no secrets)."""


@dataclass(frozen=True)
class ProcessResult:
    returncode: int
    stdout: bytes
    stderr: bytes
    truncated: bool


def _drain(stream: IO[bytes], limit: int, sink: list[bytes], truncated: list[bool]) -> None:
    kept = 0
    # keep reading past the limit: a child blocked on a full pipe would never exit
    for chunk in iter(lambda: stream.read(65536), b""):
        room = limit - kept
        if room > 0:
            sink.append(chunk[:room])
            kept += min(room, len(chunk))
        if len(chunk) > room:
            truncated[0] = True
    stream.close()


def run_process(
    argv: list[str],
    *,
    stdin: bytes = b"",
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout_s: float,
    max_output_bytes: int = 64 * 1024,
) -> ProcessResult:
    try:
        proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=env, cwd=cwd, start_new_session=True,
        )
    except OSError as exc:
        raise ActionError(f"cannot start {argv[0]!r}: {exc.strerror or exc}") from None
    out: list[bytes] = []
    err: list[bytes] = []
    truncated = [False]
    readers = [
        threading.Thread(target=_drain, args=(proc.stdout, max_output_bytes, out, truncated), daemon=True),
        threading.Thread(target=_drain, args=(proc.stderr, max_output_bytes, err, truncated), daemon=True),
    ]
    for reader in readers:
        reader.start()
    try:
        try:
            proc.stdin.write(stdin)
            proc.stdin.close()  # flushes: may find the pipe closed too
        except BrokenPipeError:
            pass  # the program does not read its input (and may have exited): that is its right
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        raise ActionError(f"{argv[0]!r} killed after {timeout_s:g} s timeout") from None
    finally:
        if proc.poll() is None:
            _kill_group(proc)
        for reader in readers:
            reader.join(timeout=5)
    return ProcessResult(proc.returncode, b"".join(out), b"".join(err), truncated[0])


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()
