"""sd_notify messages arrive on a real AF_UNIX datagram socket, in order; watchdog pacing."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid

import pytest

from voiced.ops.notify import Notifier, Watchdog, monotonic_usec, watchdog_interval


def _fields(datagram: bytes) -> list[tuple[str, str]]:
    return [tuple(line.split("=", 1)) for line in datagram.decode().split("\n")]


@pytest.fixture
def notify_socket(tmp_path):
    """A bound datagram socket like systemd's, and its $NOTIFY_SOCKET value (path form)."""
    path = tmp_path / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(10)
    yield sock, str(path)
    sock.close()


def _drain(sock: socket.socket, quiet_s: float = 0.05) -> list[bytes]:
    messages = []
    sock.settimeout(quiet_s)
    try:
        while True:
            messages.append(sock.recv(4096))
    except TimeoutError:
        return messages
    finally:
        sock.settimeout(10)


def test_lifecycle_messages_arrive_in_order(notify_socket):
    sock, address = notify_socket
    notifier = Notifier(address)
    assert notifier.enabled
    notifier.ready("listening")
    notifier.status("session 1: turn on the light")
    before = monotonic_usec()
    with notifier.reloading():
        pass
    notifier.stopping("finishing 1 action")

    got = [_fields(sock.recv(4096)) for _ in range(5)]
    assert got[0] == [("READY", "1"), ("STATUS", "listening")]
    assert got[1] == [("STATUS", "session 1: turn on the light")]
    assert [key for key, _ in got[2]] == ["RELOADING", "MONOTONIC_USEC", "STATUS"]
    stamped = int(dict(got[2])["MONOTONIC_USEC"])
    assert before <= stamped <= monotonic_usec()
    assert got[3] == [("READY", "1")]
    assert got[4] == [("STOPPING", "1"), ("STATUS", "finishing 1 action")]
    assert _drain(sock) == []


def test_rejected_reload_still_reports_ready(notify_socket):
    sock, address = notify_socket
    notifier = Notifier(address)
    with pytest.raises(ValueError), notifier.reloading():
        raise ValueError("config.yaml:3:5: bad value")
    assert _fields(sock.recv(4096))[0][0] == "RELOADING"
    assert _fields(sock.recv(4096)) == [("READY", "1")]


def test_a_newline_in_status_cannot_inject_a_field(notify_socket):
    sock, address = notify_socket
    Notifier(address).status("heard: stop\nREADY=1")
    assert _fields(sock.recv(4096)) == [("STATUS", "heard: stop READY=1")]


def test_abstract_namespace_socket():
    name = f"voiced-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(b"\0" + name.encode())
        sock.settimeout(10)
        assert Notifier("@" + name).ready()
        assert sock.recv(4096) == b"READY=1"


def test_without_notify_socket_everything_is_a_no_op():
    notifier = Notifier(None)
    assert not notifier.enabled
    assert notifier.ready() is False
    assert notifier.watchdog() is False
    assert Watchdog.for_notifier(notifier) is None


def test_unreachable_socket_is_reported_not_raised(tmp_path):
    assert Notifier(str(tmp_path / "nobody-listens")).ready() is False


def test_child_process_reads_environment_and_hides_it_from_its_children(notify_socket):
    sock, address = notify_socket
    script = (
        "import os, subprocess, sys\n"
        "from voiced.ops.notify import Notifier\n"
        "n = Notifier.from_environment()\n"
        "n.ready(f'watchdog {n.watchdog_s}')\n"
        "print(subprocess.run([sys.executable, '-c', 'import os; print(os.environ.get(\"NOTIFY_SOCKET\"))'],"
        " capture_output=True, text=True, check=True).stdout.strip())\n"
    )
    env = {**os.environ, "NOTIFY_SOCKET": address, "WATCHDOG_USEC": "3000000"}
    env.pop("WATCHDOG_PID", None)
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True, timeout=60
    )
    assert _fields(sock.recv(4096)) == [("READY", "1"), ("STATUS", "watchdog 3.0")]
    assert result.stdout.strip() == "None"


def test_watchdog_interval_from_environment():
    assert watchdog_interval({"WATCHDOG_USEC": "30000000"}, pid=42) == 30.0
    assert watchdog_interval({"WATCHDOG_USEC": "500000", "WATCHDOG_PID": "42"}, pid=42) == 0.5
    assert watchdog_interval({"WATCHDOG_USEC": "500000", "WATCHDOG_PID": "7"}, pid=42) is None
    assert watchdog_interval({"WATCHDOG_USEC": "0"}, pid=42) is None
    assert watchdog_interval({}, pid=42) is None


def test_watchdog_pings_at_half_the_interval(notify_socket):
    sock, address = notify_socket
    notifier = Notifier(address, watchdog_s=0.2)  # pings every 0.1 s
    watchdog = Watchdog.for_notifier(notifier).start()
    time.sleep(1.0)
    watchdog.stop()
    pings = _drain(sock)
    assert set(pings) == {b"WATCHDOG=1"}
    # ~10 expected; loose bounds because the machine is shared
    assert 4 <= len(pings) <= 12, len(pings)


def test_watchdog_withholds_pings_while_unhealthy(notify_socket):
    sock, address = notify_socket
    healthy = False
    watchdog = Watchdog(Notifier(address), interval_s=0.1, healthy=lambda: healthy).start()
    time.sleep(0.5)
    assert _drain(sock) == []
    healthy = True
    time.sleep(0.5)
    watchdog.stop()
    assert len(_drain(sock)) >= 2


JOURNAL_CHILD = """\
import logging, sys
from voiced.ops.notify import JournalFormatter, stderr_is_journal
handler = logging.StreamHandler(sys.stderr)
if stderr_is_journal():
    handler.setFormatter(JournalFormatter("%(name)s: %(message)s"))
log = logging.getLogger("voiced.test")
log.addHandler(handler)
log.setLevel(logging.DEBUG)
log.warning("device gone")
log.info("two\\nlines")
log.debug("detail")
"""


@pytest.mark.parametrize("journal", [True, False])
def test_levels_reach_journald_as_priority_prefixes(tmp_path, journal):
    stderr_path = tmp_path / "stderr"
    with open(stderr_path, "w") as stderr:
        stat = os.fstat(stderr.fileno())
        env = {**os.environ, "JOURNAL_STREAM": f"{stat.st_dev}:{stat.st_ino}" if journal else "0:0"}
        subprocess.run([sys.executable, "-c", JOURNAL_CHILD], stderr=stderr, env=env, check=True, timeout=60)
    lines = stderr_path.read_text().splitlines()
    if journal:
        assert lines == ["<4>voiced.test: device gone", "<6>voiced.test: two", "<6>lines", "<7>voiced.test: detail"]
    else:
        assert lines == ["device gone", "two", "lines", "detail"]
