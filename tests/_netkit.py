"""Real network pieces for TLS and proxy tests, all on 127.0.0.1, each on its own asyncio loop thread.

- ``make_ca``: a throwaway CA and a server certificate for ``localhost`` / ``127.0.0.1``
  (openssl CLI: the venv has neither ``cryptography`` nor ``trustme``).
- ``TLSFront``: terminates TLS with that certificate and pipes the bytes to a plain
  server (the sandbox), so HTTPS tests talk to the real simulated API.
- ``LoopbackProxy``: an HTTP proxy, forward (absolute-form requests) and ``CONNECT``
  tunnels, counting what went through it.
"""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass
class CA:
    cert: Path  # the CA certificate (what a client trusts)
    server_cert: Path
    server_key: Path

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(self.server_cert, self.server_key)
        return ctx


def make_ca(directory: Path) -> CA:
    """A CA (``ca.pem``) and a server certificate it signed, for localhost and 127.0.0.1."""
    openssl = shutil.which("openssl")
    assert openssl, "these tests need the openssl command (Debian: apt-get install openssl)"
    d = directory

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], check=True, capture_output=True, cwd=d)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
        "-subj", "/CN=orbench test CA", "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
        "-subj", "/CN=localhost")
    (d / "ext.cnf").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
                               "extendedKeyUsage=serverAuth\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "server.pem", "-days", "2", "-extfile", "ext.cnf")
    return CA(d / "ca.pem", d / "server.pem", d / "server.key")


def hashed_dir(ca: CA, directory: Path) -> Path:
    """A directory in SSL_CERT_DIR's layout (``<subject hash>.0``) holding the CA."""
    out = subprocess.run(["openssl", "x509", "-hash", "-noout", "-in", str(ca.cert)], check=True,
                         capture_output=True, text=True).stdout.strip()
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copy(ca.cert, directory / f"{out}.0")
    return directory


class LoopThread:
    """An asyncio server on its own loop thread; ``stop()`` closes it."""

    def __init__(self, handler: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
                 ssl_ctx: ssl.SSLContext | None = None) -> None:
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()

        async def boot() -> None:
            self.server = await asyncio.start_server(handler, "127.0.0.1", 0, ssl=ssl_ctx)
            self.port = int(self.server.sockets[0].getsockname()[1])
            ready.set()

        self.thread = threading.Thread(target=lambda: (self.loop.run_until_complete(boot()),
                                                       self.loop.run_forever()), daemon=True)
        self.thread.start()
        assert ready.wait(5)

    def stop(self) -> None:
        async def close() -> None:
            self.server.close()
            tasks = [t for t in asyncio.all_tasks(self.loop) if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(close(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        try:
            if writer.can_write_eof():
                writer.write_eof()
            else:
                writer.close()
        except (OSError, RuntimeError):
            pass


async def _splice(a_reader: asyncio.StreamReader, a_writer: asyncio.StreamWriter,
                  b_reader: asyncio.StreamReader, b_writer: asyncio.StreamWriter) -> None:
    await asyncio.gather(_pipe(a_reader, b_writer), _pipe(b_reader, a_writer))
    a_writer.close()
    b_writer.close()


class TLSFront(LoopThread):
    """HTTPS on 127.0.0.1 in front of a plain server at ``target_port`` (byte for byte)."""

    def __init__(self, ca: CA, target_port: int) -> None:
        self.connections = 0

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            try:
                up_reader, up_writer = await asyncio.open_connection("127.0.0.1", target_port)
            except OSError:
                writer.close()
                return
            await _splice(reader, writer, up_reader, up_writer)

        super().__init__(handle, ca.server_context())


class LoopbackProxy(LoopThread):
    """An HTTP proxy: ``CONNECT host:port`` tunnels and absolute-form forwarding, counted.

    ``requests`` lists the request lines it forwarded (``GET http://...``); ``tunnels``
    the ``CONNECT`` targets. Forwarded requests go out one per upstream connection
    with ``Connection: close`` so that each one is seen here.
    """

    def __init__(self) -> None:
        self.requests: list[str] = []
        self.tunnels: list[str] = []
        super().__init__(self._handle)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                method, target, _ = head.split(b"\r\n", 1)[0].decode().split(" ", 2)
                if method == "CONNECT":
                    self.tunnels.append(target)
                    host, port = target.rsplit(":", 1)
                    up_reader, up_writer = await asyncio.open_connection(host, int(port))
                    writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    await writer.drain()
                    await _splice(reader, writer, up_reader, up_writer)
                    return
                self.requests.append(f"{method} {target}")
                if not await self._forward(head, method, target, reader, writer):
                    return
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def _forward(self, head: bytes, method: str, target: str, reader: asyncio.StreamReader,
                       writer: asyncio.StreamWriter) -> bool:
        """One forwarded exchange; the response is passed on until the upstream closes."""
        rest = target.split("://", 1)[1]
        hostport, _, path = rest.partition("/")
        host, _, port = hostport.partition(":")
        lines = head.split(b"\r\n")[1:-2]
        length = 0
        kept = []
        for line in lines:
            name = line.split(b":", 1)[0].strip().lower()
            if name == b"content-length":
                length = int(line.split(b":", 1)[1])
            if name not in (b"connection", b"proxy-connection", b"keep-alive", b"proxy-authorization"):
                kept.append(line)
        body = await reader.readexactly(length)
        up_reader, up_writer = await asyncio.open_connection(host, int(port or 80))
        up_writer.write(b"\r\n".join([f"{method} /{path} HTTP/1.1".encode(), *kept, b"Connection: close"])
                        + b"\r\n\r\n" + body)
        await up_writer.drain()
        # Pass the response head on with "Connection: close" so the client does not reuse
        # this proxy connection while we still stream the upstream's body.
        resp_head = await up_reader.readuntil(b"\r\n\r\n")
        writer.write(resp_head)
        await _pipe(up_reader, writer)
        up_writer.close()
        return False
