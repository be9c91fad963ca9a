"""A loopback TCP proxy for fault injection: forward, drop, blackhole, heal.

- forward: every accepted connection is joined to a new connection to the target.
- drop(): every connection is closed at once and new ones are closed on accept, as when the
  server host dies or a NAT forgets the flows (the client sees resets / EOF).
- blackhole(): connections stay open but nothing more is forwarded in either direction
  (bytes are read and thrown away, so the sender sees no back-pressure); new connections are
  accepted and go nowhere. A stalled Wi-Fi link or a hung server looks like this.
- heal(): forward again. Connections that were blackholed lost bytes in the middle of their
  stream, so they are closed (as their peers would eventually find out): clients reconnect.
- throttle(bytes_per_s): forward what clients send no faster than that (a slow uplink), so
  what a client has sent reaches the server later, whatever the machine's load.

Used as a context manager; `target` is "127.0.0.1:<port>" for clients.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
import time

FORWARD, DROP, BLACKHOLE = "forward", "drop", "blackhole"


class _Link:
    """One client connection and (unless blackholed from the start) its upstream."""

    def __init__(self, client: socket.socket, upstream: socket.socket | None):
        self.client = client
        self.upstream = upstream
        self.stalled = upstream is None
        self.closed = threading.Event()

    def close(self) -> None:
        self.closed.set()
        for sock in (self.client, self.upstream):
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                with contextlib.suppress(OSError):
                    sock.close()


class TcpProxy:
    def __init__(self, target_port: int, target_host: str = "127.0.0.1"):
        self._upstream = (target_host, target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.target = f"127.0.0.1:{self.port}"
        self.mode = FORWARD
        self.rate: float | None = None  # bytes per second from clients; None = as fast as it goes
        self.accepted = 0  # connections accepted so far (any mode)
        self._links: list[_Link] = []
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        threading.Thread(target=self._accept_loop, name="proxy-accept", daemon=True).start()

    # -- control --------------------------------------------------------------------------

    def retarget(self, port: int, host: str = "127.0.0.1") -> None:
        """New connections go to another port (e.g. a restarted server)."""
        self._upstream = (host, port)

    def drop(self) -> None:
        with self._lock:
            self.mode = DROP
            links, self._links = self._links, []
        for link in links:
            link.close()

    def blackhole(self) -> None:
        with self._lock:
            self.mode = BLACKHOLE
            for link in self._links:
                link.stalled = True

    def throttle(self, bytes_per_s: float | None) -> None:
        self.rate = bytes_per_s

    def heal(self) -> None:
        with self._lock:
            self.mode = FORWARD
            stalled = [link for link in self._links if link.stalled]
            self._links = [link for link in self._links if not link.stalled]
        for link in stalled:
            link.close()

    def close(self) -> None:
        self._stopped.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        self.drop()

    def __enter__(self) -> TcpProxy:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # -- inside ---------------------------------------------------------------------------

    def _accept_loop(self) -> None:
        while not self._stopped.is_set():
            try:
                ready, _, _ = select.select([self._listener], [], [], 0.1)
                if not ready:
                    continue
                client, _ = self._listener.accept()
            except OSError:
                return
            self.accepted += 1
            mode = self.mode
            if mode == DROP:
                _Link(client, None).close()
                continue
            upstream = None
            if mode == FORWARD:
                try:
                    upstream = socket.create_connection(self._upstream, timeout=2)
                    upstream.settimeout(None)
                except OSError:  # nobody there: the client sees its connection closed
                    _Link(client, None).close()
                    continue
            link = _Link(client, upstream)
            with self._lock:
                if self.mode != mode:  # the mode changed while connecting: start over cleanly
                    link.close()
                    continue
                self._links.append(link)
            threading.Thread(target=self._pump, args=(link,), name="proxy-pump", daemon=True).start()

    def _pump(self, link: _Link) -> None:
        """Both directions of one link, in one thread."""
        peers = {link.client: link.upstream}
        if link.upstream is not None:
            peers[link.upstream] = link.client
        try:
            while not link.closed.is_set():
                ready, _, _ = select.select(list(peers), [], [], 0.1)
                for sock in ready:
                    data = sock.recv(65536)
                    if not data:
                        raise ConnectionError("peer closed")
                    if not link.stalled:
                        peers[sock].sendall(data)
                        if sock is link.client and self.rate:
                            time.sleep(len(data) / self.rate)  # the link's pace, not a wait for luck
        except (OSError, ValueError):
            pass
        finally:
            with self._lock:
                if link in self._links:
                    self._links.remove(link)
            link.close()
