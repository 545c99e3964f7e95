"""The wire: OpenRouter and any OpenAI-compatible server.

Owns the HTTP client (chat, catalog, key, credits), the httpx and lean transports, SSE
framing, stream accumulation into a ``ChatResult``, catalog records and prices, the
worst-case cost of one request, and which API key goes to which URL. The only package
that knows URLs and HTTP.

May import: bench.suites, bench.records, bench.errors, bench.config. Never bench.store,
bench.results, bench.quality, bench.run or bench.cli.
"""

# The public modules (the rest, envelope, http1, sse, stream and transport, serve client and http):
__all__ = ["account", "catalog", "ceiling", "client", "http", "keys", "webhook"]
