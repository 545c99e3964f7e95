"""A tiny scripted HTTP/1.1 server on 127.0.0.1 for clock, timeout and keep-alive tests.

Real sockets, real delays: each request is answered by a script of ``(delay_s, bytes)``
steps sent as chunks of a chunked body, so the client's clocks can be checked
against sleeps we control. A script of ``None`` closes the connection without a
response (what llama.cpp sometimes does to a reused keep-alive connection).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import BinaryIO

Step = tuple[float, bytes]
Script = list[Step] | None


class LoopbackServer:
    """Serve ``script(n)`` (n = 0, 1, ... per request) on an ephemeral port, in threads."""

    def __init__(
        self,
        script: Callable[[int], Script] | list[Step],
        *,
        status: str = "200 OK",
        content_type: str = "text/event-stream",
        keep_alive: bool = True,
        drop_reused: str | None = None,
    ) -> None:
        self._script = script if callable(script) else (lambda _n: script)
        self._status = status
        self._content_type = content_type
        self._keep_alive = keep_alive  # False: close after every response, without saying so (llama.cpp)
        # A second request on a connection is dropped with no response: "unread" closes with it
        # unread in the socket (the kernel answers with a reset), "read" reads it first (a plain close).
        self._drop_reused = drop_reused
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.05)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.connections = 0
        self.bodies: list[bytes] = []
        self.sent_ns: list[list[int]] = []  # per request: perf_counter_ns just before each step's send
        self.received_ns: list[int] = []  # per request: perf_counter_ns when its body had been read
        self._threads: list[threading.Thread] = []
        self._conns: list[socket.socket] = []
        self._acceptor = threading.Thread(target=self._accept_loop, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._sock.getsockname()[1]}/api/v1"

    def __enter__(self) -> LoopbackServer:
        self._acceptor.start()
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self._stop.set()
        self._acceptor.join(2)
        for conn in self._conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)  # wakes a thread blocked on a kept-alive read
            except OSError:
                pass
        for t in self._threads:
            t.join(5)
        self._sock.close()

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except (TimeoutError, OSError):
                continue
            with self._lock:
                self.connections += 1
                self._conns.append(conn)
            t = threading.Thread(target=self._serve_connection, args=(conn,), daemon=True)
            self._threads.append(t)
            t.start()

    def _serve_connection(self, conn: socket.socket) -> None:
        conn.settimeout(10)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as real servers do: no Nagle delay
        with conn, conn.makefile("rb") as reader:
            try:
                served = 0
                while not self._stop.is_set():
                    if served and self._drop_reused == "unread":
                        conn.recv(1, socket.MSG_PEEK)  # the request is there: close without reading it
                        return
                    if served and self._drop_reused == "read":
                        _read_request(reader)
                        return
                    if not self._serve_one(conn, reader):
                        break
                    served += 1
            except OSError:
                pass  # the client went away (a timeout test): nothing to do

    def _serve_one(self, conn: socket.socket, reader: BinaryIO) -> bool:
        body = _read_request(reader)
        if body is None:
            return False
        received = time.perf_counter_ns()
        with self._lock:
            n = len(self.bodies)
            self.bodies.append(body)
            self.received_ns.append(received)
            stamps: list[int] = []
            self.sent_ns.append(stamps)
        steps = self._script(n)
        if steps is None:
            return False  # close without a response
        head = (f"HTTP/1.1 {self._status}\r\nContent-Type: {self._content_type}\r\n"
                "Transfer-Encoding: chunked\r\nX-Generation-Id: gen-loopback\r\n\r\n")
        conn.sendall(head.encode())
        for delay, data in steps:
            if delay and self._stop.wait(delay):
                return False
            stamps.append(time.perf_counter_ns())  # same monotonic clock as the client's
            conn.sendall(b"%x\r\n%s\r\n" % (len(data), data))
        conn.sendall(b"0\r\n\r\n")
        return self._keep_alive


def _read_request(reader: BinaryIO) -> bytes | None:
    """The body of the next request on the connection, or None when it closed."""
    readline = reader.readline
    line = readline()
    if not line:
        return None
    length = 0
    while True:
        header = readline()
        if header in (b"\r\n", b"\n", b""):
            break
        name, _, value = header.decode("latin-1").partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    return reader.read(length) if length else b""


def sse(payload: str) -> bytes:
    return f"data: {payload}\n\n".encode()


def wait_until(predicate: Callable[[], bool], timeout_s: float = 2.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()
