"""The exception tree of orbench. Every message is safe to show a user (no keys).

    BenchError                      message safe to show a user
      ConfigError                   missing key, bad flag, bad suite, unknown model
        SuiteError                  a suite file that does not validate
        BudgetRefused               a plan whose worst case --budget or the key's limit cannot cover
      ProviderError                 an HTTP/stream failure: status, code, retry_after
        BadRequest          400 (also 404/413/422: the request cannot succeed as sent)
        AuthError           401/403
        InsufficientCredits 402
        RequestTimeout      408 from the server
        RateLimited         429
        ProviderUnavailable 5xx (502/503/504/524/529 are transient, 500 too)
        StreamError         an ``error`` object inside an HTTP 200 stream
        DeadlineExceeded    our own per-request timeout or a stall
        NetworkError        reset, refused, closed without a response
      StoreError
        StoreBusy           the DuckDB file is locked by another process
        SchemaTooNew        the database was written by a newer orbench

``outcome`` on each ProviderError is the METRICS.md outcome class the runner records.
"""

from __future__ import annotations

from typing import TypedDict, Unpack


class BenchError(Exception):
    """Base class; ``str(exc)`` is one line a user can read."""


class ConfigError(BenchError):
    pass


class SuiteError(ConfigError):
    pass


class BudgetRefused(ConfigError):
    """The plan's worst case does not fit --budget or the key's remaining limit (nothing was sent)."""


class ProviderError(BenchError):
    outcome = "provider_error"

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: object = None,
        retry_after_s: float | None = None,
        body: object = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.retry_after_s = retry_after_s
        self.body = body
        # Filled by the client: attempts made in total, and whatever the failed
        # exchange produced (an in-stream error may come with billed usage).
        self.attempts = 1
        self.failed_attempts: list[str] = []  # outcome of each earlier, retried attempt
        self.retry_reasons: list[str] = []  # why each earlier send was repeated (records.RETRY_REASONS)
        # "unsent" / "maybe_read": a reused connection the server had closed (bench.api.transport)
        self.dropped: str | None = None
        self.hopeless: str | None = None  # why a retry cannot help (a certificate failure, a refused header)
        self.result: object = None  # bench.records.ChatResult | None


class BadRequest(ProviderError):
    outcome = "bad_request"


class AuthError(ProviderError):
    outcome = "auth"


class KeyWithheld(AuthError):
    """401 from a URL to which orbench sent no key on purpose (the key set goes only to openrouter.ai).

    Its message says so and how to send one: "the key was rejected" would be wrong.
    """


class InsufficientCredits(ProviderError):
    outcome = "insufficient_credits"


class RequestTimeout(ProviderError):
    outcome = "timeout"


class RateLimited(ProviderError):
    outcome = "rate_limited"


class ProviderUnavailable(ProviderError):
    outcome = "provider_error"


class StreamError(ProviderError):
    outcome = "provider_error"


class DeadlineExceeded(ProviderError):
    """Our own per-request deadline (``--timeout``) or a stall passed; not the server's 408."""

    outcome = "timeout"


class NetworkError(ProviderError):
    outcome = "network"


class StoreError(BenchError):
    pass


class StoreBusy(StoreError):
    pass


class SchemaTooNew(StoreError):
    pass


class _ProviderErrorFields(TypedDict, total=False):
    """The keywords of ProviderError.__init__ that error_for_status passes through."""

    code: object
    retry_after_s: float | None
    body: object


def error_for_status(status: int, message: str, **kw: Unpack[_ProviderErrorFields]) -> ProviderError:
    """Map an HTTP status to its typed error (API.md section 6.2)."""
    if status in (401, 403):
        return AuthError(message, status=status, **kw)
    if status == 402:
        return InsufficientCredits(message, status=status, **kw)
    if status == 408:
        return RequestTimeout(message, status=status, **kw)
    if status == 429:
        return RateLimited(message, status=status, **kw)
    if status >= 500:
        return ProviderUnavailable(message, status=status, **kw)
    return BadRequest(message, status=status, **kw)
