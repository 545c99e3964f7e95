"""Execute a plan: bounded concurrency, budget, stop rules, one row per planned request.

The runner owns the life of a run and nothing about storage or HTTP details: it
gets a client per endpoint (``clients``), a price lookup and a ``RowSink`` to hand
finished rows to. Rules it enforces (issue "Bench engine", METRICS.md "Outcomes"):

- every planned request ends in exactly one row; requests never sent get
  ``not_run`` (run stopped), ``skipped`` (target dropped) or ``budget_skipped``;
- 401 stops the run, 402 stops it cleanly; the rest are recorded ``not_run``;
- a target that fails ``max_consecutive_failures`` times in a row is skipped;
- ``cancel()`` (Ctrl-C) cancels in-flight requests, which are recorded ``cancelled``;
- closed-loop concurrency (``concurrency`` workers) or open loop (``rate`` req/s,
  Poisson arrivals, still capped at ``concurrency`` in flight).
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from bench.api.ceiling import maybe_billed
from bench.errors import AuthError, BenchError, InsufficientCredits, KeyWithheld, ProviderError
from bench.records import FINISHED_OUTCOMES, ChatResult, RequestRow, derive_times
from bench.run.budget import AttemptBook, Budget
from bench.run.conversation import row_fields as conversation_row_fields
from bench.run.conversation import units as conversation_units
from bench.run.plan import PlannedRequest, Target
from bench.run.state import ChatClient, PriceFn, Progress, RequestHooks, RowSink, RunOptions, RunState
from bench.suites.model import CHARS_PER_TOKEN, OPENROUTER

__all__ = ["Runner", "RowMoney"]

TRUNCATED_MESSAGE = "the stream ended with no [DONE], finish_reason or usage (truncated)"


@dataclass
class RowMoney:
    """What a check may spend for one row (the judge): reserved and booked like any request.

    Each judge call reserves its worst case (retries again) and, when it ends, its
    cost is booked on the row (``judge_*`` columns) and journaled at once.

    Like a benchmarked send's ``started`` line, the worst case is journaled *before*
    the judge request goes out (its first attempt and every retry): the row's next
    revision carries ``judge_cost_usd`` = booked judges + the worst case of the call on
    the wire, and a ``check_detail`` that says so. A ``kill -9`` while the call is on the
    wire (the provider bills it all the same) leaves that money on record; the row is
    settled, so a resume neither judges it again nor loses it. When the call ends, the
    next revision replaces the worst case with what it cost: booked once.
    """

    runner: Runner
    row: RequestRow
    _booked_usd: Decimal | None = field(init=False)
    _detail: str | None = field(init=False)
    _open: dict[int, Decimal] = field(init=False, default_factory=dict)  # id(book) -> worst case on the wire

    def __post_init__(self) -> None:
        self._booked_usd = self.row.judge_cost_usd
        self._detail = self.row.check_detail

    def reserve(self, ceiling_usd: Decimal | None) -> AttemptBook | None:
        """Reserve a judge call's first attempt and journal its worst case; None if the budget says no."""
        self._refuse_without_journal()
        book = AttemptBook(self.runner.budget, ceiling_usd)
        if not book.reserve():
            return None
        self._journal_sent(book)
        return book

    def reserve_retry(self, book: AttemptBook) -> bool:
        """Reserve a judge call's next attempt and journal it before it is sent; False if it does not fit."""
        if self.runner.sink_failure() or not book.reserve():
            return False
        self._journal_sent(book)
        return True

    def book(self, book: AttemptBook, cost_usd: Decimal | None, prompt_tokens: int | None,
             completion_tokens: int | None, *, billed: bool = True) -> None:
        spend = book.close(cost_usd, billed)
        self._open.pop(id(book), None)
        row = self.row
        row.judge_calls = (row.judge_calls or 0) + 1
        row.judge_prompt_tokens = (row.judge_prompt_tokens or 0) + (prompt_tokens or 0)
        row.judge_completion_tokens = (row.judge_completion_tokens or 0) + (completion_tokens or 0)
        self._booked_usd = (self._booked_usd or Decimal(0)) + spend
        if cost_usd is None and spend:  # flagged until the checks' results replace it (a Ctrl-C keeps it)
            self._detail = _judge_note(f"a judge call ended with no answer: its cost is booked at its "
                                       f"worst case ${spend}")
        self._show()
        self.runner.progress.spent_usd = self.runner.budget.spent_usd
        self.runner._revise(row)

    def _refuse_without_journal(self) -> None:
        failure = self.runner.sink_failure()
        if failure:  # its worst case could not be made durable first: not sent
            raise BenchError(f"judge not called: {failure}")

    def _journal_sent(self, book: AttemptBook) -> None:
        """The revision that puts the call's worst case on record before the call is sent."""
        self._open[id(book)] = book.reserved_usd  # every attempt so far at its worst case
        self._show()
        self.runner._revise(self.row)

    def _show(self) -> None:
        """The row as it stands: booked judges, plus (flagged) the worst case of calls on the wire."""
        row = self.row
        if not self._open:
            row.judge_cost_usd, row.check_detail = self._booked_usd, self._detail
            return
        at_risk = sum(self._open.values(), Decimal(0))
        row.judge_cost_usd = (self._booked_usd or Decimal(0)) + at_risk
        row.check_detail = _judge_note(
            f"a judge call was sent and its answer not recorded: its cost is booked at its worst case ${at_risk}"
            if at_risk else "a judge call was sent and its answer not recorded: its cost is unknown (no price)")


def _judge_note(reason: str) -> str:
    """``check_detail`` of a row whose judge cost is a worst case, not a measurement (METRICS: flagged)."""
    return json.dumps([{"kind": "judge", "passed": None, "score": None, "reason": reason}])


CheckFn = Callable[[PlannedRequest, RequestRow, ChatResult | None, RowMoney], Awaitable[None]]
"""Fills passed/score/check_detail on a row (quality checks); may call a judge through RowMoney."""


class Runner:
    def __init__(
        self,
        run_id: str,
        clients: Mapping[str, ChatClient],  # read only, so a dict of OpenRouterClient fits
        sink: RowSink,
        *,
        options: RunOptions,
        budget: Budget | None = None,
        price_fn: PriceFn | None = None,
        check_fn: CheckFn | None = None,
        generation_fn: Callable[[str], Awaitable[dict[str, Any]]] | None = None,
        on_progress: Callable[[Progress], None] | None = None,
        hooks: RequestHooks | None = None,
    ) -> None:
        self.run_id = run_id
        self.clients = clients
        self.sink = sink
        self.opt = options
        self.budget = budget or Budget(None)
        self.price_fn = price_fn
        self.check_fn = check_fn
        self.generation_fn = generation_fn
        self.on_progress = on_progress
        self.hooks = hooks
        self.state = RunState()
        self._tasks: set[asyncio.Task[None]] = set()
        self._cancelled = False
        self._run_t0 = time.perf_counter_ns()
        self.progress = Progress(total=0)
        self.prewarmed: dict[str, int] = {}  # endpoint -> idle connections opened before measuring

    # ----------------------------------------------------------------- control
    def cancel(self) -> None:
        """Ctrl-C: stop dispatching and cancel everything in flight."""
        if self._cancelled:
            return
        self._cancelled = True
        self._stop("cancelled", "cancelled by the user (Ctrl-C); resume with --resume")
        for task in list(self._tasks):
            task.cancel()

    def _stop(self, status: str, reason: str) -> None:
        if self.state.status == "running":
            self.state.status = status
            self.state.reason = reason

    @property
    def stopping(self) -> bool:
        return self.state.status != "running"

    # --------------------------------------------------------------- execution
    async def run(self, plan: list[PlannedRequest]) -> RunState:
        """Warm-ups first, then the measured requests; returns the final state."""
        self.progress = Progress(total=len(plan))
        self._run_t0 = time.perf_counter_ns()
        warm = [p for p in plan if p.is_warmup]
        rest = [p for p in plan if not p.is_warmup]
        for batch in (warm, rest):
            if batch is rest and self.opt.prewarm_connections and not self.stopping:
                await self._prewarm(rest)
            if self.opt.rate and batch is rest:
                await self._open_loop(batch)
            else:
                await self._closed_loop(batch)
        if self.state.status == "running":
            self.state.status = "finished"
        self.progress.status = self.state.status
        self._report()
        return self.state

    async def _prewarm(self, items: list[PlannedRequest]) -> None:
        """Open as many connections per endpoint as the run keeps in flight (METRICS.md "Clocks"),
        so no measured request carries a connect in its TTFT unless the server closed one."""
        for endpoint in sorted({item.target.endpoint for item in items}):
            client = self.clients[endpoint]
            prewarm = getattr(client, "prewarm", None)
            if prewarm is None:
                continue
            wanted = min(self.opt.concurrency, sum(1 for i in items if i.target.endpoint == endpoint))
            try:
                self.prewarmed[endpoint] = await prewarm(wanted)
            except Exception:  # noqa: BLE001 - a failed warm-up connect is no reason to stop; rows say more
                self.prewarmed[endpoint] = 0

    async def _closed_loop(self, items: list[PlannedRequest]) -> None:
        # A conversation's turns are one unit, sent one after another (bench.run.conversation).
        queue: asyncio.Queue[list[PlannedRequest]] = asyncio.Queue()
        for unit in conversation_units(items):
            queue.put_nowait(unit)

        async def worker() -> None:
            while True:
                try:
                    unit = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                for item in unit:
                    await self._guarded(item)

        workers = [asyncio.ensure_future(worker()) for _ in range(max(1, self.opt.concurrency))]
        await asyncio.gather(*workers, return_exceptions=False)

    async def _open_loop(self, items: list[PlannedRequest]) -> None:
        rng = random.Random(self.opt.seed)
        sem = asyncio.Semaphore(max(1, self.opt.concurrency))
        pending: list[asyncio.Future[None]] = []
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        for unit in conversation_units(items):  # a conversation arrives once; its turns follow each other
            next_at += rng.expovariate(self.opt.rate or 1.0)
            delay = next_at - loop.time()
            if delay > 0 and not self.stopping:
                await asyncio.sleep(delay)

            async def go(its: list[PlannedRequest] = unit) -> None:
                async with sem:
                    for it in its:
                        await self._guarded(it)

            pending.append(asyncio.ensure_future(go()))
        await asyncio.gather(*pending)

    async def _guarded(self, item: PlannedRequest) -> None:
        """Run one request in its own task so cancel() can reach it."""
        task = asyncio.ensure_future(self._one(item))
        self._tasks.add(task)
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            # The worker itself was cancelled (shutdown): make sure the request
            # still ends in a row before we go.
            if not task.done():
                task.cancel()
                try:
                    await task
                except BaseException:
                    pass
        finally:
            self._tasks.discard(task)

    async def _one(self, item: PlannedRequest) -> None:
        row = self._base_row(item)
        target = item.target
        if self.stopping:
            return self._finish(row, "cancelled" if self._cancelled else "not_run",
                                error=self.state.reason)
        if target.key in self.state.skipped_targets:
            return self._finish(row, "skipped", error=self.state.skipped_targets[target.key])
        if self.hooks is not None:
            why = self.hooks.prepare(item)
            if why is not None:
                return self._finish(row, "skipped", error=why)
            row.max_cost_usd = item.max_cost_usd  # a body built just now has its own worst case
        ceiling = item.max_cost_usd
        book = AttemptBook(self.budget, ceiling)
        if not book.reserve():
            why = ("no price known for this model, so the budget cannot be guaranteed"
                   if ceiling is None else
                   f"its worst-case cost ${ceiling} would cross the budget ${self.budget.limit_usd}")
            return self._finish(row, "budget_skipped", error=why)
        self.progress.in_flight += 1
        self._report()
        result: ChatResult | None = None
        try:
            result, final_cost, billed = await self._send(item, row, book)
        except asyncio.CancelledError:
            row.spend_usd = book.close(None)  # unknown: its worst case until known
            self.progress.in_flight -= 1
            self.progress.spent_usd = self.budget.spent_usd
            self._finish(row, "cancelled", error="cancelled while in flight")
            raise
        self.progress.in_flight -= 1
        row.spend_usd = book.close(final_cost, billed)
        self.progress.spent_usd = self.budget.spent_usd
        self._track_failures(target, row)
        # Journal first: the paid result is durable before any check, judge or lookup runs.
        self._finish(row, row.outcome or "provider_error")
        if self.hooks is not None:
            self.hooks.observe(item, row)
        await self._enrich(item, row, result)

    async def _enrich(self, item: PlannedRequest, row: RequestRow, result: ChatResult | None) -> None:
        """Later revisions of a journaled row: the /generation lookup, then the checks."""
        if (self.opt.lookup_generation and self.generation_fn and row.generation_id
                and row.endpoint == OPENROUTER):  # /generation is OpenRouter's alone
            if await self._lookup_generation(row):
                self._revise(row)
        if self.check_fn is not None and row.outcome == "ok" and not item.is_warmup:
            try:
                await self.check_fn(item, row, result, RowMoney(self, row))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - a paid answer is recorded even if scoring breaks
                row.check_detail = json.dumps([{"kind": "error", "passed": None, "score": None,
                                                "reason": f"checks failed to run: {exc}"[:500]}])
            self._revise(row)

    async def _send(
        self, item: PlannedRequest, row: RequestRow, book: AttemptBook
    ) -> tuple[ChatResult | None, Decimal | None, bool]:
        """Send with retries, each attempt reserved; returns (result, final attempt's cost, billable)."""
        client = self.clients[item.target.endpoint]
        row.started_at = datetime.now(UTC).isoformat()
        t_start = time.perf_counter_ns()
        row.t_start_ms = (t_start - self._run_t0) / 1e6
        row.spend_usd = book.reserved_usd
        self._journal_started(row)
        refused: list[bool] = []

        def before_retry(err: ProviderError) -> bool:
            # A refused retry leaves ``err`` as the final attempt: close() books it once.
            if self.stopping:
                return False
            if not book.reserve():
                refused.append(True)
                return False
            book.failed_attempt(maybe_billed(err))
            return True

        def on_started(generation_id: str) -> None:
            if row.generation_id is None:
                row.generation_id = generation_id
                self._journal_started(row)

        try:
            result = await client.chat(
                item.body, stream=item.body.get("stream") is not False, timeout_s=self.opt.timeout_s,
                stall_timeout_s=self.opt.stall_timeout_s, before_retry=before_retry,
                on_started=on_started,
            )
        except ProviderError as exc:
            partial = self._record_error(item, row, exc)
            if refused:
                row.error = f"{row.error or exc.outcome} (not retried: the budget cannot cover another attempt)"
            return partial, self._actual_cost(row), maybe_billed(exc)
        except BenchError as exc:  # e.g. a configuration problem found mid-run: data, not a crash
            row.outcome, row.error = "bad_request", str(exc)[:2000]
            return None, Decimal(0), False
        self._fill_from_result(row, item, result)
        if result.terminated:
            row.outcome = "ok"
        else:
            row.outcome, row.error = "truncated", TRUNCATED_MESSAGE
        return result, self._actual_cost(row), True

    def _journal_started(self, row: RequestRow) -> None:
        """Journal an in-flight request (``started``): a crash now leaves its money on record."""
        outcome, row.outcome = row.outcome, "started"
        self.sink.add(row)
        row.outcome = outcome
        row.rev += 1

    def _revise(self, row: RequestRow) -> None:
        """Journal a later revision of a finished row (checks, judge cost, lookups)."""
        self.sink.add(row)
        row.rev += 1
        self._check_sink()

    def _record_error(
        self, item: PlannedRequest, row: RequestRow, exc: ProviderError
    ) -> ChatResult | None:
        partial = exc.result if isinstance(exc.result, ChatResult) else None
        if partial is not None:
            self._fill_from_result(row, item, partial)
        row.outcome = exc.outcome
        row.http_status = exc.status if exc.status is not None else row.http_status
        row.attempts = exc.attempts
        row.retries_429 = exc.failed_attempts.count("rate_limited")
        row.retry_reasons = ",".join(exc.retry_reasons) or None
        row.error = exc.message[:2000]
        row.error_code = None if exc.code is None else str(exc.code)
        self._react_to_error(exc)
        return partial

    def _react_to_error(self, exc: ProviderError) -> None:
        if isinstance(exc, KeyWithheld):
            self._stop("failed", exc.message)
        elif isinstance(exc, AuthError) and exc.status == 401:
            self._stop("failed", f"the API key was rejected (401): {exc.message}")
        elif isinstance(exc, InsufficientCredits):
            self._stop("stopped", f"insufficient credits (402): {exc.message}")

    @staticmethod
    def _actual_cost(row: RequestRow) -> Decimal | None:
        if row.cost_usd is not None:
            return row.cost_usd
        return row.list_cost_usd

    def _fill_from_result(self, row: RequestRow, item: PlannedRequest, res: ChatResult) -> None:
        usage = res.usage
        out_tokens = usage.completion_tokens if usage else None
        times = derive_times(res.clocks, out_tokens)
        row.ttfb_ms, row.ttft_ms, row.ttfa_ms = times["ttfb_ms"], times["ttft_ms"], times["ttfa_ms"]
        row.e2e_ms, row.tpot_ms = times["e2e_ms"], times["tpot_ms"]
        row.decode_tps, row.e2e_tps = times["decode_tps"], times["e2e_tps"]
        row.done_ms = res.clocks.ms(res.clocks.t_done)
        row.chunk_gaps_ms = list(res.clocks.chunk_gaps_ms) or None
        row.http_status = res.http_status
        row.connect_ms, row.conn_reused = res.connect_ms, res.conn_reused
        row.attempts = res.attempts
        row.retries_429 = res.failed_attempts.count("rate_limited")
        row.retry_reasons = ",".join(res.retry_reasons) or None
        row.generation_id = res.generation_id
        row.served_model = res.served_model
        row.provider = res.provider
        row.finish_reason = res.finish_reason
        row.native_finish_reason = res.native_finish_reason
        row.output_text = res.content
        if res.tool_calls:
            row.tool_calls_json = json.dumps(
                [{"id": c.id, "name": c.name, "arguments": c.arguments} for c in res.tool_calls]
            )
        if usage is not None and usage.completion_tokens is not None:
            row.prompt_tokens = usage.prompt_tokens
            row.completion_tokens = usage.completion_tokens
            row.reasoning_tokens = usage.reasoning_tokens
            row.cached_tokens = usage.cached_tokens
            row.cache_write_tokens = usage.cache_write_tokens
            row.token_source = "usage"
        else:
            # No usage sent: estimate on the client and say so (METRICS.md).
            row.prompt_tokens = item.prompt_tokens_est
            row.completion_tokens = _estimate_tokens(res.content + res.reasoning)
            row.token_source = "estimate"
        if usage is not None and usage.cost_usd is not None:
            row.cost_usd = usage.cost_usd
            row.cost_source = "reported"
        if self.price_fn is not None:
            row.list_cost_usd, _ = self.price_fn(item.target, res)
            if row.cost_source is None and row.list_cost_usd is not None:
                row.cost_source = "list"
        timings = res.server_timings or {}
        if timings:
            row.server_latency_ms = _as_float(timings.get("prompt_ms"))
            row.server_generation_ms = _as_float(timings.get("predicted_ms"))

    async def _lookup_generation(self, row: RequestRow) -> bool:
        assert self.generation_fn is not None and row.generation_id is not None
        try:
            gen = await self.generation_fn(row.generation_id)
        except (ProviderError, BenchError):
            return False  # the lookup is an extra; the request itself is fine
        row.provider = gen.get("provider_name") or row.provider
        row.server_latency_ms = _as_float(gen.get("latency"))
        row.server_generation_ms = _as_float(gen.get("generation_time"))
        if row.token_source != "usage" and gen.get("native_tokens_completion") is not None:
            row.prompt_tokens = gen.get("native_tokens_prompt")
            row.completion_tokens = gen.get("native_tokens_completion")
            row.reasoning_tokens = gen.get("native_tokens_reasoning")
            row.cached_tokens = gen.get("native_tokens_cached")
            row.token_source = "generation"
        return True

    def _track_failures(self, target: Target, row: RequestRow) -> None:
        key = target.key
        if row.outcome == "ok":
            self.state.failures_in_a_row[key] = 0
            return
        n = self.state.failures_in_a_row.get(key, 0) + 1
        self.state.failures_in_a_row[key] = n
        limit = self.opt.max_consecutive_failures
        if limit and n >= limit and key not in self.state.skipped_targets:
            self.state.skipped_targets[key] = (
                f"skipped: {target.model} [{target.variant}] failed {n} times in a row "
                f"(last: {row.outcome}: {row.error or ''})"[:500]
            )

    # -------------------------------------------------------------- bookkeeping
    def _base_row(self, item: PlannedRequest) -> RequestRow:
        t = item.target
        return RequestRow(
            run_id=self.run_id,
            request_idx=item.request_idx,
            model=t.model,
            provider_variant=t.variant,
            endpoint=t.endpoint,
            case_id=item.case_id,
            repeat=item.repeat,
            is_warmup=item.is_warmup,
            max_cost_usd=item.max_cost_usd,
            is_probe=item.is_probe,
            session=self.opt.session,
            **conversation_row_fields(item),
        )

    def _finish(self, row: RequestRow, outcome: str, error: str | None = None) -> None:
        row.outcome = outcome
        if error and not row.error:
            row.error = error
        p = self.progress
        p.done += 1
        if outcome == "ok":
            p.ok += 1
        elif outcome == "rate_limited":
            p.rate_limited += 1
            p.errors += 1
        elif outcome in FINISHED_OUTCOMES:
            p.errors += 1
        p.last = f"{row.model} [{row.provider_variant}] {row.case_id}: {outcome}"
        self.sink.add(row)
        row.rev += 1
        self._check_sink()
        self._report()

    def sink_failure(self) -> str | None:
        """Why the journal cannot be written (a full disk), or None."""
        failure = getattr(self.sink, "failure", None)
        return str(failure) if failure else None

    def _check_sink(self) -> None:
        """The journal could not be written (a full disk): take no new requests."""
        failure = self.sink_failure()
        if failure:
            self._stop("failed", f"{failure}; resume with --resume once there is space")

    def _report(self) -> None:
        if self.on_progress is not None:
            self.on_progress(self.progress)


def _estimate_tokens(text: str) -> int:
    return max(1, round(len(text) / CHARS_PER_TOKEN)) if text else 0


def _as_float(v: object) -> float | None:
    if v is None:
        return None
    try:
        return float(v)  # type: ignore[arg-type]  # any object: float() decides, its errors are caught
    except (TypeError, ValueError):
        return None
