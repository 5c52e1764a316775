"""
A TCP pass-through on 127.0.0.1 that acts on one chosen client chunk (moved here from
tests/harness/celery.py, which re-exports it, so the fault injectors can use it too).

The Celery test holds a PostgreSQL COPY in flight with it while it SIGKILLs the worker running it;
tests/harness/injectors.py SIGKILLs a MongoDB server while a write is in flight through it.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field


def accept_loop(
    listener: socket.socket, upstream_port: int, relay: Callable[[socket.socket, socket.socket], None]
) -> None:
    """
    Accept clients until ``listener`` is closed; each one is connected to the upstream on 127.0.0.1
    and handed to ``relay(client, upstream)``. A client that connects while the upstream is down (a
    server being restarted) is closed at once, as the server's refused connection would be.
    """
    while True:
        try:
            client, _ = listener.accept()
        except OSError:
            return
        try:
            upstream = socket.create_connection(("127.0.0.1", upstream_port), timeout=5)
            upstream.settimeout(None)
        except OSError:
            client.close()
            continue
        relay(client, upstream)


def close_both(*sockets: socket.socket) -> None:
    """Shut down and close a relayed pair (either may already be gone)."""
    for sock in sockets:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()


@dataclass
class TcpGate:
    """
    A TCP proxy on 127.0.0.1 in front of a server (PostgreSQL, MongoDB...). Once :meth:`arm` is
    called, the first client chunk for which ``match`` is true is forwarded and then that connection
    is held: the client's further bytes are not read, so its statement stays in flight inside its
    transaction. ``held`` is set then and ``on_match`` (if any) is called with the chunk, in the
    connection's thread; after :meth:`release` the held connection is closed on both sides (the
    server sees the client gone and rolls back). One-shot: later connections pass untouched.

    A client that connects while the upstream is down (a server being restarted) is closed at once,
    as the server's refused connection would be; the gate keeps accepting.

    Written here rather than taken from a library: the fault proxies in tests/harness speak HTTP, and
    holding one connection on a byte pattern is a few lines over sockets.
    """

    upstream_port: int
    match: Callable[[bytes], bool]
    port: int = 0
    on_match: Callable[[bytes], None] | None = None
    held: threading.Event = field(default_factory=threading.Event)
    held_chunk: bytes = b""
    _armed: threading.Event = field(default_factory=threading.Event)
    _released: threading.Event = field(default_factory=threading.Event)
    _listener: socket.socket | None = None

    def arm(self) -> None:
        self._armed.set()

    def disarm(self) -> None:
        """Stop looking for the chunk (nothing is held if it has not come yet)."""
        self._armed.clear()

    def release(self) -> None:
        self._released.set()

    def start(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, name=f"tcp-gate-{self.port}", daemon=True).start()

    def stop(self) -> None:
        self._released.set()
        if self._listener is not None:
            self._listener.close()

    def _accept(self) -> None:
        assert self._listener is not None

        def relay(client: socket.socket, upstream: socket.socket) -> None:
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

        accept_loop(self._listener, self.upstream_port, relay)

    def _pump(self, src: socket.socket, dst: socket.socket, from_client: bool) -> None:
        try:
            while chunk := src.recv(65536):
                dst.sendall(chunk)
                if from_client and self._armed.is_set() and not self.held.is_set() and self.match(chunk):
                    self._armed.clear()
                    self.held_chunk = chunk
                    self.held.set()
                    if self.on_match is not None:
                        self.on_match(chunk)
                    self._released.wait()
                    break
        except OSError:
            pass
        close_both(src, dst)


@contextlib.contextmanager
def tcp_gate(upstream_port: int, match: Callable[[bytes], bool]) -> Iterator[TcpGate]:
    gate = TcpGate(upstream_port, match)
    gate.start()
    try:
        yield gate
    finally:
        gate.stop()
