"""Runs started from the dashboard: the CLI's engine code in a background thread.

A ``RunJob`` owns one thread with its own event loop that does what ``orbench
run`` does (``bench.run.session.run_suite`` with the same ``Store``), and publishes
progress under a lock. Jobs live in one ``JobRegistry``
per server process (``registry()``, an ``st.cache_resource``), keyed by run id, not
in a session: any tab, and a reloaded page, finds the same job, sees its progress
and can cancel it. Only ``registry()`` touches Streamlit; the threads never call
into a script run. Errors end the job with a one-line message (``BenchError``
text, or the exception type for anything unexpected).

Runs started elsewhere (the CLI) are read from the database; ``heartbeat_alive``
decides from a run's heartbeat whether its process still seems to be there.
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import streamlit as st

from bench.config import DEFAULT_DB, Settings
from bench.errors import BenchError, ConfigError
from bench.examples import DEMO_CONCURRENCY, DEMO_SUITE
from bench.run import session
from bench.run.runner import Runner
from bench.run.session import SessionHooks
from bench.run.spec import Prepared, RunSpec
from bench.run.state import Progress
from bench.store.store import Store
from bench.suites.parse import load_suite


@dataclass
class JobState:
    """What the page shows; a copy is handed out so readers never see a half-update."""

    phase: str = "preparing"  # preparing | running | finished | stopped | failed | cancelled
    run_id: str | None = None
    total: int = 0
    done: int = 0
    in_flight: int = 0
    ok: int = 0
    errors: int = 0
    rate_limited: int = 0
    spent_usd: Decimal = Decimal(0)
    message: str | None = None
    started_s: float = field(default_factory=time.monotonic)
    ended_s: float | None = None

    @property
    def active(self) -> bool:
        return self.phase in ("preparing", "running")

    @property
    def cancelling(self) -> bool:
        return self.active and self.cancel_requested

    cancel_requested: bool = False

    @property
    def elapsed_s(self) -> float:
        return (self.ended_s or time.monotonic()) - self.started_s


async def estimate_async(settings: Settings, spec: RunSpec) -> Prepared:
    """A dry run of ``spec``'s suite: the plan, its estimate and the key's remaining limit."""
    suite = load_suite(_suite_path(spec))
    # env={}: an estimate sends nothing, so no endpoint key is looked up
    return (await session.run_suite(settings, suite, spec, store=None, env={}, dry_run=True)).prep


def estimate(settings: Settings, spec: RunSpec) -> Prepared:
    """The plan and its worst-case cost, without sending a chat request or writing anything."""
    return asyncio.run(estimate_async(settings, spec))


def _suite_path(spec: RunSpec) -> Path:
    if spec.suite_path is None:
        raise ConfigError("no suite chosen")
    return spec.suite_path


def describe_plan(prep: Prepared) -> dict[str, Any]:
    """What the Run page shows about a prepared plan (plain values, kept in the session)."""
    remaining = prep.key_remaining_usd
    return {
        "requests": prep.measured, "warmups": len(prep.plan) - prep.measured,
        "targets": [f"{t.model} [{t.variant}] via {t.endpoint}" for t in prep.targets],
        "usd": prep.estimate_usd, "unpriced": list(prep.unpriced), "key_remaining_usd": remaining,
        "over_key_limit": remaining is not None and prep.estimate_usd is not None
        and prep.estimate_usd > Decimal(str(remaining)),
    }


class RunJob:
    """One run executing in a daemon thread; ``snapshot()`` and ``cancel()`` are thread-safe."""

    def __init__(self, settings: Settings, spec: RunSpec, *, with_local: bool = False,
                 env: Mapping[str, str] | None = None) -> None:
        self.settings = settings
        self.spec = spec
        # where suite endpoints' api_key_env are looked up (bench.api.keys decides what goes where)
        self.env: Mapping[str, str] = dict(os.environ) if env is None else env
        self.with_local = with_local  # start the real local model (llama.cpp) for this run
        self._state = JobState()
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: Runner | None = None
        self._cancel_requested = False
        self.key = uuid.uuid4().hex  # the registry's handle until the run has an id
        self.label = spec.name or (spec.suite_path.name if spec.suite_path else "suite")
        self.started_at = time.time()
        self.on_run_id: Any = None  # set by the registry: called once with the run id
        self.thread = threading.Thread(target=self._main, name="orbench-dashboard-run", daemon=True)

    def start(self) -> RunJob:
        self.thread.start()
        return self

    def snapshot(self) -> JobState:
        with self._lock:
            return replace(self._state)

    def cancel(self) -> None:
        """Like Ctrl-C: stop dispatching and cancel what is in flight (rows say ``cancelled``)."""
        with self._lock:
            self._cancel_requested = True
            self._state.cancel_requested = True
            loop, runner = self._loop, self._runner
        if loop is not None and runner is not None and loop.is_running():
            loop.call_soon_threadsafe(runner.cancel)

    def wait(self, timeout_s: float) -> JobState:
        self.thread.join(timeout_s)
        return self.snapshot()

    # ----------------------------------------------------------------- thread side
    def _update(self, **values: Any) -> None:
        with self._lock:
            for k, v in values.items():
                setattr(self._state, k, v)

    def _on_progress(self, p: Progress) -> None:
        self._update(total=p.total, done=p.done, in_flight=p.in_flight, ok=p.ok, errors=p.errors,
                     rate_limited=p.rate_limited, spent_usd=p.spent_usd)

    def _on_runner(self, runner: Runner) -> None:
        with self._lock:
            self._runner = runner
            self._state.run_id = runner.run_id
            self._state.phase = "running"
            cancel = self._cancel_requested
            notify = self.on_run_id
        if notify is not None:
            notify(self, runner.run_id)
        if cancel:
            runner.cancel()

    def _main(self) -> None:
        try:
            run_id, state = asyncio.run(self._run())
            self._update(phase=state.status, run_id=run_id, message=state.reason)
        except BenchError as exc:
            self._update(phase="failed", message=str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        except Exception as exc:  # noqa: BLE001 - shown as one line, never a stack trace
            self._update(phase="failed", message=f"unexpected {type(exc).__name__}: {exc}")
        finally:
            self._update(ended_s=time.monotonic(), in_flight=0)

    async def _run(self) -> tuple[str, Any]:
        self._loop = asyncio.get_running_loop()
        suite = await asyncio.to_thread(load_suite, _suite_path(self.spec))
        store = Store(self.settings.db_path)
        hooks = SessionHooks(on_plan=lambda prep: self._update(total=len(prep.plan)),
                             on_progress=self._on_progress, on_runner=self._on_runner)
        try:
            result = await session.run_suite(self.settings, suite, self.spec, store=store, env=self.env,
                                             with_local=self.with_local, hooks=hooks)
        finally:
            store.close()
        assert result.run_id is not None and result.state is not None  # not a dry run
        return result.run_id, result.state


def start_run(settings: Settings, spec: RunSpec, *, with_local: bool = False,
              env: Mapping[str, str] | None = None) -> RunJob:
    return RunJob(settings, spec, with_local=with_local, env=env).start()


class JobRegistry:
    """Every dashboard-started job of this server process, keyed by run id (thread-safe).

    A job is filed under its ``key`` at once (it has no run id while it prepares) and
    also under its run id as soon as the engine has one. Ended jobs are kept, newest
    ``keep_ended`` of them, so a tab opened later still sees how a run ended.
    """

    def __init__(self, keep_ended: int = 5) -> None:
        self.keep_ended = keep_ended
        self._lock = threading.Lock()
        self._jobs: dict[str, RunJob] = {}  # job key -> job, in start order
        self._by_run: dict[str, RunJob] = {}

    def start(self, settings: Settings, spec: RunSpec, *, with_local: bool = False,
              env: Mapping[str, str] | None = None) -> RunJob:
        """Create, file and start a job; returns it."""
        job = RunJob(settings, spec, with_local=with_local, env=env)
        job.on_run_id = self._file_run_id
        with self._lock:
            self._jobs[job.key] = job
            self._prune()
        return job.start()

    def get(self, ref: str) -> RunJob | None:
        """The job with this run id (or job key), if this process started it."""
        with self._lock:
            return self._by_run.get(ref) or self._jobs.get(ref)

    def jobs(self) -> list[RunJob]:
        """All kept jobs, newest first."""
        with self._lock:
            return list(reversed(self._jobs.values()))

    def active(self) -> list[RunJob]:
        return [j for j in self.jobs() if j.snapshot().active]

    def run_ids(self) -> set[str]:
        with self._lock:
            return set(self._by_run)

    def _file_run_id(self, job: RunJob, run_id: str) -> None:
        with self._lock:
            self._by_run[run_id] = job

    def _prune(self) -> None:
        ended = [k for k, j in self._jobs.items() if not j.snapshot().active]
        for key in ended[: max(0, len(ended) - self.keep_ended)]:
            job = self._jobs.pop(key)
            self._by_run = {r: j for r, j in self._by_run.items() if j is not job}


@st.cache_resource(show_spinner=False)
def registry() -> JobRegistry:
    """The one registry of this server process, shared by every session and tab."""
    return JobRegistry()


HOST = socket.gethostname()


def heartbeat_alive(age_s: float | None, pid: int | None, host: str | None, stale_s: float) -> bool:
    """Does a running run's process still seem to be there?

    No beat at all, or none for ``stale_s`` (about three beats), is dead. A beat from
    this machine whose process is gone (``kill -9``) is dead at once, without waiting.
    """
    if age_s is None or age_s > stale_s:
        return False
    if pid is not None and host == HOST:
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True  # it exists, owned by another user
    return True


def resume_command(run: Mapping[str, Any], db: str) -> str:
    """The command that continues a run whose process died (``--db`` unless the default)."""
    import shlex

    parts = ["orbench", "run", "--resume", str(run["run_id"])]
    if run.get("simulated"):
        parts.append("--sandbox")
    if db != str(DEFAULT_DB):
        parts += ["--db", db]
    return shlex.join(parts)


def demo_includes_local(env: dict[str, str]) -> bool:
    """The demo adds the real local model when the orbench[local] extra is installed.

    ``ORBENCH_DEMO_LOCAL=0`` turns that off (``1`` insists, failing clearly without the extra).
    """
    choice = env.get("ORBENCH_DEMO_LOCAL", "auto").strip().lower()
    if choice in ("0", "no", "false", "off"):
        return False
    from bench.local_build import local_extra_status

    return choice in ("1", "yes", "true", "on") or local_extra_status()[0]


def demo_spec(suites_dir: Path) -> RunSpec:
    """The demo suite (checked cases, 40 requests a model: intervals and pass rates to read), ~30 s."""
    path = suites_dir / DEMO_SUITE
    if not path.exists():
        found = sorted(suites_dir.glob("*.yaml"))
        if not found:
            raise ConfigError(f"no suite in {suites_dir} to run a demo with")
        path = found[0]
    return RunSpec(suite_path=path, concurrency=DEMO_CONCURRENCY, timeout_s=30.0,
                          stall_timeout_s=15.0, name="demo (sandbox)")


def run_demo(settings: Settings, suites_dir: Path, timeout_s: float = 90.0,
             with_local: bool = False) -> JobState:
    """Run the demo to the end (the caller shows a spinner) and return its final state."""
    job = registry().start(settings, demo_spec(suites_dir), with_local=with_local)
    state = job.wait(timeout_s)
    if state.active:
        job.cancel()
        state = job.wait(10)
    return state


