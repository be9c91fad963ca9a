"""Tell systemd how the service is doing: the sd_notify datagram protocol, and a watchdog.

The protocol (sd_notify(3)) is one AF_UNIX datagram of newline-separated KEY=VALUE lines
sent to the socket named in $NOTIFY_SOCKET: a file system path, or an abstract-namespace
name written with a leading "@". It is implemented here directly rather than through a
library: the maintained binding (systemd-python) needs libsystemd headers to build, and
the protocol is a single sendto(). When $NOTIFY_SOCKET is unset (not under systemd, or
Type= is not notify) every call is a no-op, so the daemon calls it unconditionally.

With WatchdogSec= set, systemd passes $WATCHDOG_USEC (and $WATCHDOG_PID, the process it
is meant for) and restarts the service if no WATCHDOG=1 arrives within that time.
`Watchdog` pings at half the interval, as sd_watchdog_enabled(3) recommends, and only
while the daemon's health check passes, so a hung audio loop does get restarted.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping

log = logging.getLogger(__name__)

SERVICE_ENVIRONMENT = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")


def socket_address(notify_socket: str) -> str | bytes | None:
    """The sendto() address for a $NOTIFY_SOCKET value; None if it is not an AF_UNIX one."""
    if notify_socket.startswith("@"):
        return b"\0" + notify_socket[1:].encode()  # abstract namespace
    if notify_socket.startswith("/"):
        return notify_socket
    return None  # e.g. "vsock:..." (systemd >= 254, for VMs): not supported here


def format_message(fields: Mapping[str, str | int]) -> bytes:
    """KEY=VALUE lines; newlines inside a value would start a bogus field, so they become spaces."""
    lines = []
    for key, value in fields.items():
        text = str(value).replace("\n", " ")
        lines.append(f"{key}={text}")
    return "\n".join(lines).encode()


def watchdog_interval(environ: Mapping[str, str], pid: int) -> float | None:
    """Seconds within which systemd expects a ping, or None if the watchdog is off or not ours."""
    usec = environ.get("WATCHDOG_USEC", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    watchdog_pid = environ.get("WATCHDOG_PID", "")
    if watchdog_pid and watchdog_pid != str(pid):
        return None
    return int(usec) / 1_000_000


def stderr_is_journal(environ: Mapping[str, str] = os.environ) -> bool:
    """True if stderr is connected to journald ($JOURNAL_STREAM names its device:inode)."""
    try:
        stat = os.fstat(2)
    except OSError:
        return False
    return environ.get("JOURNAL_STREAM") == f"{stat.st_dev}:{stat.st_ino}"


class JournalFormatter(logging.Formatter):
    """Prefixes each record with its syslog priority ("<4>"), which journald strips and
    stores as the entry's level, so `journalctl -p warning` filters by it."""

    PRIORITIES = {logging.CRITICAL: 2, logging.ERROR: 3, logging.WARNING: 4, logging.INFO: 6, logging.DEBUG: 7}

    def format(self, record: logging.LogRecord) -> str:
        priority = next((p for level, p in self.PRIORITIES.items() if record.levelno >= level), 7)
        # journald takes every line as an entry: keep a traceback's lines at the same level
        return "\n".join(f"<{priority}>{line}" for line in super().format(record).split("\n"))


def monotonic_usec() -> int:
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


class Notifier:
    """Sends state changes to the service manager; every method is a no-op outside systemd."""

    def __init__(self, notify_socket: str | None, watchdog_s: float | None = None):
        self.address = socket_address(notify_socket) if notify_socket else None
        if notify_socket and self.address is None:
            log.warning("NOTIFY_SOCKET=%s is not a unix socket: not notifying systemd", notify_socket)
        self.watchdog_s = watchdog_s
        self._lock = threading.Lock()

    @classmethod
    def from_environment(cls, unset: bool = True) -> Notifier:
        """Read $NOTIFY_SOCKET and the watchdog variables; by default remove them from the
        environment so that child processes (actions, the earcon player) do not inherit them."""
        notifier = cls(os.environ.get("NOTIFY_SOCKET"), watchdog_interval(os.environ, os.getpid()))
        if unset:
            for name in SERVICE_ENVIRONMENT:
                os.environ.pop(name, None)
        return notifier

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, **fields: str | int) -> bool:
        """Send one notification; False if it could not be delivered (never raises)."""
        if self.address is None:
            return False
        message = format_message(fields)
        try:
            with self._lock, socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto(message, self.address)
        except OSError as exc:
            log.warning("cannot notify systemd (%s): %s", ", ".join(fields), exc)
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        return self.send(READY=1, **({"STATUS": status} if status else {}))

    def status(self, text: str) -> bool:
        return self.send(STATUS=text)

    def stopping(self, status: str | None = None) -> bool:
        return self.send(STOPPING=1, **({"STATUS": status} if status else {}))

    def watchdog(self) -> bool:
        return self.send(WATCHDOG=1)

    @contextlib.contextmanager
    def reloading(self, status: str = "reloading configuration") -> Iterator[None]:
        """RELOADING=1 (stamped as systemd >= 253 wants it) around a reload, READY=1 after it,
        also when the reload is rejected: the service keeps running on its old config."""
        self.send(RELOADING=1, MONOTONIC_USEC=monotonic_usec(), STATUS=status)
        try:
            yield
        finally:
            self.ready()


class Watchdog:
    """Pings WATCHDOG=1 every interval/2 from a thread while `healthy()` returns True."""

    def __init__(self, notifier: Notifier, interval_s: float, healthy: Callable[[], bool] = lambda: True):
        self._notifier = notifier
        self._period_s = interval_s / 2
        self._healthy = healthy
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="watchdog", daemon=True)

    @classmethod
    def for_notifier(cls, notifier: Notifier, healthy: Callable[[], bool] = lambda: True) -> Watchdog | None:
        """A watchdog if systemd asked for one (WatchdogSec=), else None."""
        if not notifier.enabled or notifier.watchdog_s is None:
            return None
        return cls(notifier, notifier.watchdog_s, healthy)

    def start(self) -> Watchdog:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        unhealthy_logged = False
        while not self._stopped.wait(self._period_s):
            if self._healthy():
                self._notifier.watchdog()
                unhealthy_logged = False
            elif not unhealthy_logged:
                log.error("health check failed: withholding watchdog pings, systemd will restart voiced")
                unhealthy_logged = True
