"""The one place that POSTs an alert: a monitor's incident to a Slack, Discord or Teams webhook.

The payload carries ``text`` (what Slack and Teams incoming webhooks display; Discord shows
``content``, so the same line goes there too) plus the structured incident. A failed delivery
(no answer, or a status other than 2xx) is retried a few times with a short backoff; every
attempt is returned for the caller to record. The URL is a secret (it embeds the channel's
token): it never appears in an attempt's error text, and nothing here logs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

DEFAULT_ATTEMPTS = 3
DEFAULT_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Attempt:
    """One POST: its number (from 1), the receiver's status (None: no answer) and why it failed."""

    attempt: int
    status_code: int | None
    error: str | None

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def payload(text: str, incident: Mapping[str, Any]) -> dict[str, Any]:
    """What is POSTed: the display line under the keys chat webhooks read, and the incident."""
    return {"text": text, "content": text, "incident": dict(incident)}


def post_alert(url: str, body: Mapping[str, Any], *, client: httpx.Client | None = None,
               attempts: int = DEFAULT_ATTEMPTS, backoff_s: float = 0.5,
               sleep: Callable[[float], None] = time.sleep) -> list[Attempt]:
    """POST ``body`` as JSON until it is delivered or ``attempts`` are used; every attempt returned."""
    own = client is None
    http = client or httpx.Client(timeout=httpx.Timeout(DEFAULT_TIMEOUT_S), follow_redirects=False)
    done: list[Attempt] = []
    try:
        for n in range(1, attempts + 1):
            done.append(_attempt(http, url, body, n))
            if done[-1].delivered:
                break
            if n < attempts:
                sleep(backoff_s * 2 ** (n - 1))
    finally:
        if own:
            http.close()
    return done


def _attempt(http: httpx.Client, url: str, body: Mapping[str, Any], n: int) -> Attempt:
    try:
        response = http.post(url, json=dict(body))
    except httpx.HTTPError as exc:
        # The exception's text can hold the URL; only its type goes out.
        return Attempt(n, None, f"{type(exc).__name__}: no answer from the webhook")
    if 200 <= response.status_code < 300:
        return Attempt(n, response.status_code, None)
    return Attempt(n, response.status_code, f"HTTP {response.status_code}")
