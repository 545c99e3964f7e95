"""The one door for running a suite: ``run_suite``.

``orbench run``, ``orbench sweep``, the dashboard's jobs (and ``verify``/``monitor``) call
``run_suite`` and nothing below it. It does, in this order:

1. the local model (``with_local=True``: start llama-server, add endpoint ``local``);
2. the plan (``engine.plan_run``: prepare or prepare a resume, the key's remaining limit);
3. the endpoints' keys (``env``, read by the caller at the edge), then ``on_plan(prep)``;
4. a dry run stops here (``SessionResult.run_id is None``), a resume's lock released;
5. the budget check against ``--budget`` and the key's limit (``BudgetRefused``; not on a
   resume, whose money is already booked and guarded request by request);
6. ``store.init()``, one client per endpoint, ``engine.execute``, and the clients closed.

The suite is a value (``bench.suites.parse.load_suite`` reads one from a file, or code
builds one) and neither it nor the ``RunSpec`` is changed: the plan is built on copies
(``SessionResult.prep.suite``/``.spec`` are what ran). A resume ignores ``suite``: its
plan and suite come from the stored run.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass

from bench.config import Settings
from bench.errors import ConfigError
from bench.run import engine
from bench.run.budget import check_budget
from bench.run.runner import Runner
from bench.run.spec import Prepared, RunSpec
from bench.run.state import Progress, RunState
from bench.run.targets import close_clients, endpoint_keys, make_clients
from bench.store.store import Store
from bench.suites.model import Endpoint, Suite

Note = Callable[[str], None]


@dataclass(frozen=True)
class SessionResult:
    """What ``run_suite`` did: the plan it ran (or only showed), and how the run ended."""

    prep: Prepared
    run_id: str | None = None  # None: a dry run, nothing was sent or written
    state: RunState | None = None


@dataclass(frozen=True)
class SessionHooks:
    """Callbacks of a session, all optional; each runs in the session's event loop."""

    on_plan: Callable[[Prepared], None] | None = None  # the plan, before the budget check
    on_progress: Callable[[Progress], None] | None = None
    on_runner: Callable[[Runner], None] | None = None  # the runner, before its first send
    note: Note | None = None  # progress notes (the local model's start) for stderr


def with_local_endpoint(spec: RunSpec, base_url: str, model_id: str) -> RunSpec:
    """A copy of ``spec`` with endpoint ``local`` at ``base_url`` and its model added."""
    from bench.local import LOCAL_ENDPOINT

    endpoint = Endpoint(name=LOCAL_ENDPOINT, base_url=base_url, fresh_connections=True)
    return dataclasses.replace(spec, extra_endpoints={**spec.extra_endpoints, LOCAL_ENDPOINT: endpoint},
                               add_models=[*spec.add_models, f"{LOCAL_ENDPOINT}/{model_id}"])


@contextlib.asynccontextmanager
async def local_model(spec: RunSpec, note: Note | None = None) -> AsyncIterator[RunSpec]:
    """Start llama-server with the real local model; yields ``spec`` with endpoint ``local``.

    A sweep enters it once around all its steps; ``run_suite(with_local=True)`` around one run.
    """
    from bench import local

    ok, message = local.local_extra_status()
    if not ok:
        if note is None:
            raise ConfigError(f"the local model needs the orbench[local] extra: {message}")
        note(message)
        raise ConfigError("--local needs the orbench[local] extra (see above for the one command)")
    server = local.LocalServer(await asyncio.to_thread(local.ensure_gguf), ctx_size=spec.local_ctx_size)
    await asyncio.to_thread(server.start)
    try:
        if note is not None:
            note(f"local: llama-server ready at {server.base_url} (real, on this machine)")
        yield with_local_endpoint(spec, server.base_url, server.model_id)
    finally:
        await asyncio.to_thread(server.stop)


async def run_suite(settings: Settings, suite: Suite | None, spec: RunSpec, *, store: Store | None,
                    env: Mapping[str, str], resume: str | None = None, dry_run: bool = False,
                    with_local: bool = False, hooks: SessionHooks | None = None) -> SessionResult:
    """Plan ``suite`` as ``spec`` asks, check the budget, run it to the end and close the clients.

    ``store`` may be None only for a dry run that is not a resume. ``env`` is where the suite's
    endpoints find their keys (``api_key_env``); the caller reads it at the edge. Bad input
    raises ``ConfigError`` (``BudgetRefused`` for a worst case over ``--budget`` or the key's
    limit) before anything is sent or the database is touched.
    """
    hooks = hooks or SessionHooks()
    if not with_local:
        return await _run(settings, suite, spec, store, env, resume, dry_run, hooks)
    async with local_model(spec, hooks.note) as local_spec:
        return await _run(settings, suite, local_spec, store, env, resume, dry_run, hooks)


async def _run(settings: Settings, suite: Suite | None, spec: RunSpec, store: Store | None,
               env: Mapping[str, str], resume: str | None, dry_run: bool,
               hooks: SessionHooks) -> SessionResult:
    prep = await engine.plan_run(settings, suite, spec, store=store, resume=resume)
    try:
        keys = endpoint_keys(prep.suite, env)  # refuses a key over plain http before the plan is shown
        if hooks.on_plan is not None:
            hooks.on_plan(prep)
        if not dry_run and resume is None:
            check_budget(prep)
        if dry_run or store is None:
            if not dry_run:
                raise ConfigError("a run needs a database")
            if prep.lock is not None:
                prep.lock.release()
            return SessionResult(prep)
        await asyncio.to_thread(store.init)  # only now: a bad suite or flag leaves the database untouched
    except BaseException:
        if prep.lock is not None:
            prep.lock.release()
            prep.lock = None
        raise
    clients = make_clients(settings, prep.suite, prep.spec.concurrency, keys=keys,
                           openrouter_api=prep.openrouter_api)
    try:
        run_id, state = await engine.execute(settings, store, prep, clients,
                                             on_progress=hooks.on_progress, on_runner=hooks.on_runner)
    finally:
        await close_clients(clients)
    return SessionResult(prep, run_id, state)
