"""A tiny TCP proxy for fault injection in driver tests: forward, or hang the peer on demand.

    with Proxy("127.0.0.1", 5432) as proxy:      # listens on 127.0.0.1:<proxy.port>
        conn = connect(port=proxy.port)
        proxy.blackhole()   # nothing flows any more, either way; every socket stays open
        proxy.resume()      # bytes held back meanwhile are delivered; the session goes on

While blackholed the proxy stops reading, so bytes wait in the kernel's buffers instead of
being lost: to the client the server looks hung (no answer, no reset, no EOF), and after
`resume` the protocol stream is intact. Not tied to any database; threads are daemons.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
from collections.abc import Callable
from types import TracebackType

__all__ = ["Proxy"]

_TICK = 0.02  # seconds a pump waits before looking at the switches again


class Proxy:
    """Forwards every connection made to ``127.0.0.1:port`` to ``target_host:target_port``."""

    def __init__(self, target_host: str, target_port: int, listen_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self._listener = socket.create_server((listen_host, 0))
        self.host = listen_host
        self.port: int = self._listener.getsockname()[1]
        self._flowing = threading.Event()
        self._flowing.set()
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self.accepted = 0
        self._start(self._accept_loop, "proxy-accept")

    # -- switches ----------------------------------------------------------------------------

    def blackhole(self) -> None:
        """Stop forwarding in both directions; keep every socket open."""
        self._flowing.clear()

    def resume(self) -> None:
        """Forward again, including what arrived while blackholed."""
        self._flowing.set()

    @property
    def blackholed(self) -> bool:
        return not self._flowing.is_set()

    def close(self) -> None:
        """Stop accepting, close every socket (both sides see EOF) and join the threads."""
        if self._closed.is_set():
            return
        self._closed.set()
        self._flowing.set()  # wake pumps waiting for the switch
        with self._lock:
            sockets = [self._listener, *self._sockets]
            threads = list(self._threads)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.close()
        for thread in threads:
            if thread is not threading.current_thread():
                thread.join(1.0)

    def __enter__(self) -> Proxy:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- internals ---------------------------------------------------------------------------

    def _start(self, target: Callable[..., None], name: str, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            try:
                ready, _, _ = select.select([self._listener], [], [], _TICK)
                if not ready:
                    continue
                client, _ = self._listener.accept()
            except (OSError, ValueError):
                return  # listener closed
            try:
                upstream = socket.create_connection(self.target, timeout=5.0)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                if self._closed.is_set():
                    client.close()
                    upstream.close()
                    return
                self._sockets += [client, upstream]
                self.accepted += 1
            self._start(self._pump, "proxy-up", client, upstream)
            self._start(self._pump, "proxy-down", upstream, client)

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while not self._closed.is_set():
                if not self._flowing.wait(_TICK):
                    continue  # blackholed: leave the bytes in the kernel's buffer
                ready, _, _ = select.select([source], [], [], _TICK)
                if not ready or not self._flowing.is_set():
                    continue
                data = source.recv(65536)
                if not data:
                    break
                sink.sendall(data)
        except (OSError, ValueError):
            pass
        # One side ended: end the other too, as a plain TCP relay would.
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
