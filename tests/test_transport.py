"""The lean HTTP/1.1 transport against real servers on loopback (plain and TLS)."""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from bench.sandbox import start_sandbox
from bench.transport import LeanTransport


class RawServer:
    """Answers every request with ``respond(request_bytes) -> bytes`` on an asyncio loop thread."""

    def __init__(self, respond: Callable[[bytes], bytes | None], ssl_ctx: ssl.SSLContext | None = None) -> None:
        self.respond = respond
        self.connections = 0
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            try:
                while True:
                    head = await reader.readuntil(b"\r\n\r\n")
                    length = 0
                    for line in head.split(b"\r\n"):
                        if line.lower().startswith(b"content-length:"):
                            length = int(line.split(b":")[1])
                    body = await reader.readexactly(length)
                    out = self.respond(head + body)
                    if out is None:
                        writer.close()
                        return
                    writer.write(out)
                    await writer.drain()
                    if b"connection: close" in out.lower():
                        writer.close()
                        return
            except (asyncio.IncompleteReadError, ConnectionError):
                writer.close()

        async def boot() -> None:
            self.server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=ssl_ctx)
            self.port = self.server.sockets[0].getsockname()[1]
            ready.set()

        self.thread = threading.Thread(target=lambda: (self.loop.run_until_complete(boot()),
                                                       self.loop.run_forever()), daemon=True)
        self.thread.start()
        ready.wait(5)

    def stop(self) -> None:
        done = threading.Event()

        def close() -> None:
            self.server.close()  # stop listening, so a new connect is refused
            done.set()

        self.loop.call_soon_threadsafe(close)
        done.wait(5)
        self.loop.call_soon_threadsafe(self.loop.stop)


def fetch(url: str, transport: LeanTransport, n: int = 1, **kw: object) -> list[httpx.Response]:
    async def go() -> list[httpx.Response]:
        async with httpx.AsyncClient(transport=transport, timeout=httpx.Timeout(5.0, read=1.0)) as c:
            out = []
            for _ in range(n):
                r = await c.get(url, **kw)  # type: ignore[arg-type]
                out.append(r)
            return out

    return asyncio.run(go())


def test_sized_chunked_and_close_delimited_bodies_and_keepalive() -> None:
    bodies = {
        b"/sized": b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
        b"/chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nX-Trailer: 1\r\n\r\n",
        b"/close": b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end",
    }
    srv = RawServer(lambda req: bodies[req.split(b" ")[1]])
    base = f"http://127.0.0.1:{srv.port}"
    t = LeanTransport(8)
    assert [r.text for r in fetch(base + "/sized", t, 3)] == ["hello"] * 3
    assert srv.connections == 1  # reused
    assert fetch(base + "/chunked", LeanTransport(8))[0].text == "abcde"
    assert fetch(base + "/close", LeanTransport(8))[0].text == "until the end"
    fresh = LeanTransport(8, keepalive=False)
    before = srv.connections
    fetch(base + "/sized", fresh, 3)
    assert srv.connections - before == 3
    srv.stop()


def test_errors_map_to_httpx_exceptions() -> None:
    srv = RawServer(lambda req: None if b"/drop" in req else
                    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n" if b"/bad" in req else
                    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel")
    base = f"http://127.0.0.1:{srv.port}"
    with pytest.raises(httpx.RemoteProtocolError, match="without sending a response"):
        fetch(base + "/drop", LeanTransport(4))
    with pytest.raises(httpx.RemoteProtocolError, match="malformed"):
        fetch(base + "/bad", LeanTransport(4))
    with pytest.raises(httpx.ReadTimeout):  # the body stops mid-chunk and the server stays silent
        fetch(base + "/stall", LeanTransport(4))
    srv.stop()
    with pytest.raises(httpx.ConnectError):
        fetch(f"http://127.0.0.1:{srv.port}/x", LeanTransport(4))


def test_pool_limit_queues_then_times_out() -> None:
    srv = RawServer(lambda req: b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    base = f"http://127.0.0.1:{srv.port}"

    async def go() -> None:
        t = LeanTransport(1)
        async with httpx.AsyncClient(transport=t, timeout=httpx.Timeout(5.0, pool=0.2)) as c:
            async with c.stream("GET", base + "/a") as held:  # holds the only slot
                with pytest.raises(httpx.PoolTimeout):
                    await c.get(base + "/b")
                await held.aread()
            assert (await c.get(base + "/c")).text == "ok"

    asyncio.run(go())
    srv.stop()


def test_300_concurrent_streams_from_the_sandbox() -> None:
    with start_sandbox(time_scale=0.02) as sb:
        async def go() -> list[int]:
            t = LeanTransport(400)
            async with httpx.AsyncClient(transport=t, base_url=sb.base_url, timeout=30) as c:
                async def one(i: int) -> int:
                    body = {"model": "openai/gpt-4o-mini", "stream": True, "max_tokens": 20,
                            "messages": [{"role": "user", "content": f"hi {i}"}]}
                    async with c.stream("POST", "/chat/completions", json=body) as r:
                        return len([line async for line in r.aiter_lines() if line.startswith("data:")])

                return await asyncio.gather(*(one(i) for i in range(300)))

        counts = asyncio.run(go())
    assert len(counts) == 300 and min(counts) >= 10


def test_tls_with_server_hostname_and_a_trusted_self_signed_cert(tmp_path: Path) -> None:
    openssl = shutil.which("openssl")
    assert openssl, "the TLS test needs the openssl command (Debian: apt-get install openssl)"
    key, cert = tmp_path / "k.pem", tmp_path / "c.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
                    "-out", str(cert), "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost"], check=True, capture_output=True)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    srv = RawServer(lambda req: b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecure", ssl_ctx=server_ctx)
    client_ctx = ssl.create_default_context(cafile=str(cert))
    t = LeanTransport(4, ssl_context=client_ctx)
    assert fetch(f"https://localhost:{srv.port}/", t, 2)[1].text == "secure"
    # an untrusted certificate is refused, as httpx's own transport would
    with pytest.raises(httpx.ConnectError):
        fetch(f"https://localhost:{srv.port}/", LeanTransport(4))
    srv.stop()


def test_each_part_carries_the_time_its_bytes_were_read() -> None:
    """Arrival stamps are taken when the socket delivered the bytes, before any parsing."""
    import time as _time

    with start_sandbox(time_scale=0.2) as sb:
        async def go() -> list[tuple[int, int]]:
            async with httpx.AsyncClient(transport=LeanTransport(4), base_url=sb.base_url) as c:
                body = {"model": "openai/gpt-4o-mini", "stream": True, "max_tokens": 8,
                        "messages": [{"role": "user", "content": "hi"}]}
                stamps = []
                async with c.stream("POST", "/chat/completions", json=body) as r:
                    async for _ in r.aiter_raw():
                        arrived = r.extensions["orbench_body"].arrival_ns
                        stamps.append((arrived, _time.perf_counter_ns()))
                        await asyncio.sleep(0.01)  # a slow consumer must not move the stamps
                return stamps

        stamps = asyncio.run(go())
    assert len(stamps) >= 8
    arrived = [a for a, _ in stamps]
    assert arrived == sorted(arrived) and all(a <= seen for a, seen in stamps)
    # the consumer lagged 10 ms per part; the stamps did not (token gaps are ~2 ms here)
    lag = [(seen - a) / 1e6 for a, seen in stamps[2:]]
    assert max(lag) > 10
    assert min(b - a for a, b in zip(arrived[2:], arrived[3:])) < 8e6
