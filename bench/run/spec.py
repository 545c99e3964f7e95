"""What a run was asked for (``RunSpec``) and what preparing it found (``Prepared``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from bench.api.catalog import Model
from bench.run.plan import PlannedRequest, Target
from bench.store.journal import RunLock
from bench.suites.model import Suite


@dataclass
class RunSpec:
    """What the user asked for (flags or dashboard widgets), beside the suite itself.

    The suite is a separate value (``bench.suites.parse.load_suite`` reads one from a file,
    or code builds one); ``suite_path`` only says where the caller found it (labels).
    Preparing a run never changes a ``RunSpec``: a resume's stored settings go into a copy.
    """

    suite_path: Path | None = None
    models: list[str] = field(default_factory=list)  # overrides the suite's models
    providers: list[str] = field(default_factory=list)  # names from the suite or JSON objects
    repeats: int | None = None
    concurrency: int = 4
    rate: float | None = None
    timeout_s: float = 120.0
    stall_timeout_s: float | None = 60.0
    warmup: bool = True
    # Connections are opened before the measured phase (METRICS.md "Clocks") unless asked to
    # measure cold starts on purpose; independent of ``warmup``, which sends a (paid) request.
    cold_connections: bool = False
    budget_usd: Decimal | None = None
    allow_partial: bool = False
    lookup_generation: bool = False
    max_consecutive_failures: int = 5
    seed: int = 0
    name: str | None = None
    extra_endpoints: dict[str, Any] = field(default_factory=dict)  # e.g. the --local server
    local_ctx_size: int = 4096  # --local: the model server's context size (llama-server -c)
    add_models: list[str] = field(default_factory=list)  # appended to the suite's (or --model) list
    # A monitor's tick (bench.monitor): replaces the suite's seed and gives every case prompt its own
    # synthetic leading text, so each tick sends fresh prompts and no answer comes from a cache.
    fresh_seed: int | None = None
    # Keep only the first N measured requests of each target (a sweep step); trimmed before
    # pricing, so the worst case (judge calls included) is the trimmed plan's.
    requests_per_target: int | None = None


@dataclass(repr=False)
class Prepared:
    spec: RunSpec
    suite: Suite
    targets: list[Target]
    plan: list[PlannedRequest]
    models: dict[str, Model]  # catalog entries by the id the user wrote
    estimate_usd: Decimal | None  # sum of ceilings; None when some price is unknown
    unpriced: list[str]
    catalog: list[Model]
    key_remaining_usd: float | None = None
    run_id: str | None = None  # set for a resume
    session: int = 0
    suite_changed: bool = False  # resume: the suite file differs from the one the run started with
    lock: RunLock | None = None  # resume: held from the plan until the run ends (one run, one writer)
    bound_lines: list[str] = field(default_factory=list)  # how the worst case was derived, per target
    in_flight_booked: list[str] = field(default_factory=list)  # resume: crashed sends and their cost
    # False when the base URL is a generic OpenAI-compatible server (its /models has no
    # OpenRouter prices) or no model of the run is on it: no key, credits or /generation calls.
    openrouter_api: bool = True

    def __repr__(self) -> str:
        # Short on purpose: asyncio.run (3.11) formats its main task, result included, when it
        # puts the SIGINT handler back, and the field-by-field repr of a 100,000-request plan
        # took seconds of a dry run.
        return (f"Prepared(suite={self.suite.name!r}, targets={len(self.targets)}, "
                f"plan={len(self.plan)} requests, estimate_usd={self.estimate_usd}, run_id={self.run_id!r})")

    @property
    def measured(self) -> int:
        return sum(1 for p in self.plan if not p.is_warmup)
