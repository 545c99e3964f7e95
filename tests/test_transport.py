"""The lean HTTP/1.1 transport against real servers on loopback (plain and TLS)."""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench.api.transport import LeanTransport
from bench.sandbox import start_sandbox


class RawServer:
    """Answers every request with ``respond(request_bytes) -> bytes`` on an asyncio loop thread."""

    def __init__(self, respond: Callable[[bytes], bytes | None], ssl_ctx: ssl.SSLContext | None = None) -> None:
        self.respond = respond
        self.connections = 0
        self.close_after = False  # close every connection after its response, without a word (llama-server)
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
                    if b"connection: close" in out.lower() or self.close_after:
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


def fetch(url: str, transport: LeanTransport, n: int = 1, **kw: Any) -> list[httpx.Response]:
    async def go() -> list[httpx.Response]:
        async with httpx.AsyncClient(transport=transport, timeout=httpx.Timeout(5.0, read=1.0)) as c:
            out = []
            for _ in range(n):
                r = await c.get(url, **kw)
                out.append(r)
            return out

    return asyncio.run(go())


def test_sized_chunked_and_close_delimited_bodies_and_keepalive() -> None:
    bodies = {
        b"/sized": b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
        b"/chunked": (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                      b"3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nX-Trailer: 1\r\n\r\n"),
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


# ------------------------------------------------------------------ strict framing
def numbered(make: Callable[[int], bytes]) -> Callable[[bytes], bytes]:
    """A RawServer responder that passes a running request number (0, 1, ...) to ``make``."""
    count = iter(range(1_000_000))
    return lambda _req: make(next(count))


def test_leftover_bytes_after_content_length_never_reach_the_next_request() -> None:
    """The server sends a stray response after each one: 4 of 4 requests still get their own body."""
    stray = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nstale"
    srv = RawServer(numbered(lambda n: b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nr%d" % n + stray))
    responses = fetch(f"http://127.0.0.1:{srv.port}/", LeanTransport(4), 4)
    assert [r.text for r in responses] == ["r0", "r1", "r2", "r3"]
    assert srv.connections == 4  # each connection with unread bytes was closed, not pooled
    srv.stop()


def test_leftover_bytes_after_a_chunked_body_close_the_connection() -> None:
    srv = RawServer(numbered(lambda n: b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                                       b"2\r\nc%d\r\n0\r\n\r\nJUNK" % n))
    assert [r.text for r in fetch(f"http://127.0.0.1:{srv.port}/", LeanTransport(4), 3)] == ["c0", "c1", "c2"]
    assert srv.connections == 3
    srv.stop()


@pytest.mark.parametrize("length", [b"abc", b"-1", b"+2", b" 2x", b"2, 3", b"99999999999999999999"])
def test_bad_content_length_is_a_protocol_error_and_frees_the_slot(length: bytes) -> None:
    """One connection slot only: after the bad response the next request still gets it."""
    srv = RawServer(lambda req: (b"HTTP/1.1 200 OK\r\nContent-Length: " + length + b"\r\n\r\nok") if b"/bad" in req
                    else b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    base = f"http://127.0.0.1:{srv.port}"

    async def go() -> None:
        async with httpx.AsyncClient(transport=LeanTransport(1), timeout=httpx.Timeout(5.0, pool=0.5)) as c:
            with pytest.raises(httpx.RemoteProtocolError, match="bad Content-Length"):
                await c.get(base + "/bad")
            assert (await c.get(base + "/good")).text == "ok"

    asyncio.run(go())
    srv.stop()


def test_conflicting_content_length_headers_are_refused() -> None:
    srv = RawServer(lambda req: b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nokk")
    with pytest.raises(httpx.RemoteProtocolError, match="bad Content-Length"):
        fetch(f"http://127.0.0.1:{srv.port}/", LeanTransport(2))
    srv.stop()


@pytest.mark.parametrize("chunks", [
    b"-5\r\nhello\r\n0\r\n\r\n",  # negative size
    b"0x5\r\nhello\r\n0\r\n\r\n",  # 0x prefix
    b"+5\r\nhello\r\n0\r\n\r\n",
    b"5_0\r\nhello\r\n0\r\n\r\n",
    b"\r\n",  # empty size line
    b"5\r\nhelloXX0\r\n\r\n",  # no CRLF after the chunk: bytes would be dropped silently
])
def test_bad_chunks_are_protocol_errors(chunks: bytes) -> None:
    srv = RawServer(lambda req: b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks)
    with pytest.raises(httpx.RemoteProtocolError, match="malformed chunked body"):
        fetch(f"http://127.0.0.1:{srv.port}/", LeanTransport(2))
    srv.stop()


def test_big_chunks_arrive_in_pieces_and_whole() -> None:
    blob = bytes(range(256)) * 1024  # 256 KiB in one chunk
    srv = RawServer(lambda req: b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                    + b"%x\r\n" % len(blob) + blob + b"\r\n0\r\n\r\n")
    assert fetch(f"http://127.0.0.1:{srv.port}/", LeanTransport(2))[0].content == blob
    srv.stop()


@pytest.mark.parametrize("head", [
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
    b"HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
    b"ICY 200 OK\r\n\r\n",
])
def test_malformed_heads_are_protocol_errors(head: bytes) -> None:
    srv = RawServer(lambda req: head)
    with pytest.raises(httpx.RemoteProtocolError):
        fetch(f"http://127.0.0.1:{srv.port}/", LeanTransport(2))
    srv.stop()


def test_informational_responses_are_skipped() -> None:
    srv = RawServer(lambda req: b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
                    b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nreal")
    assert fetch(f"http://127.0.0.1:{srv.port}/", LeanTransport(2), 2)[1].text == "real"
    srv.stop()


def test_a_bad_content_length_is_a_network_row_and_the_client_goes_on() -> None:
    """Through OpenRouterClient.chat: NetworkError naming the protocol error, then a normal answer."""
    from bench.api.client import OpenRouterClient, RetryPolicy
    from bench.api.http import build_http_client
    from bench.config import Settings
    from bench.errors import NetworkError

    sse = (b'data: {"choices":[{"delta":{"content":"fine"}}]}\n\n'
           b'data: {"choices":[{"delta":{},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,'
           b'"completion_tokens":1,"total_tokens":2}}\n\ndata: [DONE]\n\n')
    good = (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: %d\r\n\r\n" % len(sse)) + sse
    srv = RawServer(lambda req: b"HTTP/1.1 200 OK\r\nContent-Length: 12abc\r\n\r\n{}" if b"poison" in req else good)

    async def go() -> None:
        http = build_http_client(Settings(base_url=f"http://127.0.0.1:{srv.port}/v1"), 1)
        client = OpenRouterClient(http, retry=RetryPolicy(max_attempts=1), openai_compatible=True)
        async with client:
            body = {"model": "m", "messages": [{"role": "user", "content": "poison"}]}
            with pytest.raises(NetworkError, match="RemoteProtocolError: bad Content-Length") as info:
                await client.chat(body)
            assert info.value.outcome == "network"
            ok = await client.chat({"model": "m", "messages": [{"role": "user", "content": "hello"}]})
            assert ok.content == "fine"

    asyncio.run(go())
    srv.stop()


# ------------------------------------------------------------------ header values
def test_header_injection_through_a_setting_is_refused_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    from bench.config import Settings
    from bench.errors import ConfigError
    from tests.conftest import invoke

    for name, env in (("title", "ORBENCH_TITLE"), ("referer", "ORBENCH_REFERER")):
        with pytest.raises(ConfigError) as info:
            Settings(**{name: "orbench\r\nX-Evil: 1"})  # type: ignore[arg-type]  # name is a str field
        assert str(info.value).startswith(env) and "\n" not in str(info.value)
    with pytest.raises(ConfigError, match="API key"):
        Settings.from_env({"OPENROUTER_API_KEY": "sk-or-v1-abc\n"})
    monkeypatch.setenv("ORBENCH_TITLE", "orbench\nX-Evil: 1")
    code, out, err = invoke("models", "--sandbox", "--json")
    assert code == 1 and out == ""
    assert err.strip().splitlines()[-1].startswith("Error: ORBENCH_TITLE contains a CR, LF or NUL")


def test_the_transport_refuses_header_values_that_would_split_the_request() -> None:
    seen: list[bytes] = []
    srv = RawServer(lambda req: seen.append(req) or b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    for value in ("a\r\nX-Evil: 1", "a\nb", "a\0b"):
        with pytest.raises(httpx.LocalProtocolError, match="Illegal header value for"):
            fetch(f"http://127.0.0.1:{srv.port}/", LeanTransport(2), headers={"X-Note": value})
    assert seen == []
    srv.stop()


# ------------------------------------------------------------------ connection facts and prewarm
def chat_body(i: int = 0) -> dict[str, object]:
    return {"model": "openai/gpt-4o-mini", "max_tokens": 4, "messages": [{"role": "user", "content": f"hi {i}"}]}


def test_connection_facts_cold_first_then_reused() -> None:
    from bench.api.client import OpenRouterClient, RetryPolicy
    from bench.api.http import build_http_client
    from bench.config import Settings

    with start_sandbox(time_scale=0) as sb:
        async def go() -> list[tuple[bool | None, float | None]]:
            client = OpenRouterClient(build_http_client(Settings(base_url=sb.base_url), 1), retry=RetryPolicy())
            async with client:
                return [((r := await client.chat(chat_body(i))).conn_reused, r.connect_ms) for i in range(3)]

        facts = asyncio.run(go())
    assert facts[0][0] is False and facts[0][1] is not None and 0 < facts[0][1] < 1000
    assert facts[1:] == [(True, None), (True, None)]


def test_prewarm_makes_the_next_n_concurrent_requests_reused() -> None:
    from bench.api.client import OpenRouterClient, RetryPolicy
    from bench.api.http import build_http_client
    from bench.config import Settings

    n = 24
    with start_sandbox(time_scale=0.05) as sb:
        async def go() -> tuple[int, int, list[bool | None]]:
            client = OpenRouterClient(build_http_client(Settings(base_url=sb.base_url), n), retry=RetryPolicy())
            async with client:
                warm = await client.prewarm(n)
                again = await client.prewarm(n)  # already there: nothing new to open
                results = await asyncio.gather(*(client.chat(chat_body(i)) for i in range(n)))
                return warm, again, [r.conn_reused for r in results]

        warm, again, reused = asyncio.run(go())
    assert warm == n and again == n
    assert reused == [True] * n


def test_prewarm_counts_only_connections_that_opened() -> None:
    srv = RawServer(lambda req: b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    port = srv.port
    srv.stop()

    async def go() -> int:
        t = LeanTransport(8)
        try:
            return await t.prewarm(httpx.URL(f"http://127.0.0.1:{port}/"), 4, timeout=1.0)
        finally:
            await t.aclose()

    assert asyncio.run(go()) == 0  # refused: nothing pooled, no exception
    assert asyncio.run(_no_prewarm_without_keepalive(port)) == 0


async def _no_prewarm_without_keepalive(port: int) -> int:
    return await LeanTransport(8, keepalive=False).prewarm(httpx.URL(f"http://127.0.0.1:{port}/"), 4)


def test_a_server_that_closes_after_each_answer_is_learned_and_a_probe_notices_it_changed() -> None:
    """3 pooled connections closed by the server in a row: the transport stops pooling to it (no poll,
    no race, no resend: each request opens its own); when the server keeps connections again, the
    next probe (every 32nd response pooled) is reused and pooling resumes."""
    from bench.api.transport import CLOSES_BEFORE_NO_REUSE, REUSE_PROBE_EVERY

    srv = RawServer(lambda req: b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    srv.close_after = True
    url = f"http://127.0.0.1:{srv.port}/"

    async def go() -> list[tuple[bool, int]]:
        out = []
        async with httpx.AsyncClient(transport=LeanTransport(8), timeout=5.0) as c:
            for i in range(6 + 2 * REUSE_PROBE_EVERY):
                if i == 6:
                    srv.close_after = False  # the server keeps its connections from now on
                r = await c.get(url)
                out.append((r.extensions["orbench_conn_reused"], r.extensions["orbench_closed_idle"]))
                await asyncio.sleep(0.005 if i < 6 else 0)  # let the server's FIN arrive before the next poll
        return out

    seen = asyncio.run(go())
    srv.stop()
    # the first request connects; the next 3 find their pooled connection closed; then no pooling at all
    assert seen[:1 + CLOSES_BEFORE_NO_REUSE] == [(False, 0)] + [(False, 1)] * CLOSES_BEFORE_NO_REUSE
    assert seen[1 + CLOSES_BEFORE_NO_REUSE:6] == [(False, 0)] * (5 - CLOSES_BEFORE_NO_REUSE)
    # the server keeps connections now: within one probe period a pooled one is reused, and stays
    first_reuse = next(i for i, (reused, _) in enumerate(seen) if reused)
    assert 6 < first_reuse <= 6 + REUSE_PROBE_EVERY + 1
    assert all(reused for reused, _ in seen[first_reuse:])
