"""What a runner is told (``RunOptions``), what it reports while it runs (``Progress``) and
when it ends (``RunState``), and the shapes of what it talks to: a chat client per endpoint,
a row sink and a price lookup.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

from bench.errors import ProviderError
from bench.records import ChatResult, RequestRow
from bench.run.plan import PlannedRequest, Target


class ChatClient(Protocol):
    async def chat(
        self,
        body: dict[str, Any],
        *,
        stream: bool = True,
        timeout_s: float | None = None,
        stall_timeout_s: float | None = None,
        before_retry: Callable[[ProviderError], bool] | None = None,
        on_started: Callable[[str], None] | None = None,
    ) -> ChatResult: ...


class RequestHooks(Protocol):
    """Per-request hooks (``bench.run.synthetic.Synthesizer``): ``prepare`` may build a request's
    body just before it is sent, or say why it cannot be (it is then ``skipped``); ``observe``
    sees every request that was sent, once it has its outcome."""

    def prepare(self, item: PlannedRequest) -> str | None: ...

    def observe(self, item: PlannedRequest, row: RequestRow) -> None: ...


class RowSink(Protocol):
    def add(self, row: RequestRow) -> None: ...


PriceFn = Callable[[Target, ChatResult], tuple[Decimal | None, str | None]]
"""Returns (list_cost_usd, provider-price note) for a finished result."""


@dataclass
class RunOptions:
    concurrency: int = 4
    rate: float | None = None  # open-loop arrivals per second
    timeout_s: float = 120.0
    stall_timeout_s: float | None = 60.0
    max_consecutive_failures: int = 5
    seed: int = 0
    session: int = 0
    lookup_generation: bool = False
    prewarm_connections: bool = True  # open `concurrency` connections per endpoint before measuring


@dataclass
class Progress:
    total: int
    done: int = 0
    in_flight: int = 0
    ok: int = 0
    errors: int = 0
    rate_limited: int = 0
    spent_usd: Decimal = Decimal(0)
    status: str = "running"
    last: str = ""


@dataclass
class RunState:
    status: str = "running"
    reason: str | None = None
    failures_in_a_row: dict[tuple[str, str], int] = field(default_factory=dict)
    skipped_targets: dict[tuple[str, str], str] = field(default_factory=dict)
