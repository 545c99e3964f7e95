"""Read-only data access for the pages: cached functions over plain arguments.

Pages never open the database or call the API themselves; they call these. Each
function takes plain, hashable arguments (the database path as a string, tuples
of ids) so ``st.cache_data`` can key on them, and returns small polars frames or
records. TTLs are short: results may change under a running benchmark (10 s),
the catalog and credits are live API data (5 min / 1 min).

The settings are resolved here, at the dashboard's edge: the API key comes from
``OPENROUTER_API_KEY`` or ``st.secrets`` and is only ever put in the client's
Authorization header; with no key the simulated sandbox is started in-process
(once per server, ``st.cache_resource``) and every page says "simulated".
"""

from __future__ import annotations

import asyncio
import math
import os
import stat
from collections.abc import Awaitable, Callable
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import polars as pl
import streamlit as st

from bench.api import keys
from bench.api.account import Credits, KeyInfo
from bench.api.catalog import Model, ModelEndpoints
from bench.api.client import OpenRouterClient, RetryPolicy
from bench.api.http import build_http_client
from bench.config import OPENROUTER_BASE_URL, Settings
from bench.errors import AuthError, BenchError, ConfigError
from bench.examples import SUITES_DIR as EXAMPLE_SUITES_DIR
from bench.results import analytics, compare, conformance, pass_rates, summary
from bench.results import spend as spend_mod
from bench.results.analytics import Filters
from bench.store.sink import HEARTBEAT_INTERVAL_S
from bench.store.store import Store

T = TypeVar("T")

RESULTS_TTL_S = 10
CATALOG_TTL_S = 300
CREDITS_TTL_S = 60
COMPARE_RESAMPLES = 2000  # bootstrap resamples of run A vs run B (as orbench compare)
READ_TIMEOUT_S = 1.5  # how long a read waits for a writer before StoreBusy
ROOT = Path(__file__).resolve().parent.parent
SUITES_DIR = EXAMPLE_SUITES_DIR  # the bundled examples (package data; data/suites links there)


# ------------------------------------------------------------------- settings
@st.cache_resource(show_spinner="Starting the simulated sandbox...")
def _sandbox(db: str) -> Any:
    """The in-process sandbox for one database, started once per server (thread-safe).

    It starts with the simulated spend that database recorded as its key usage, so the
    simulated key has spent what the runs say it spent, whichever process ran them.
    """
    from bench.sandbox import start_sandbox

    return start_sandbox(port=0, seed=0, initial_usage_usd=_recorded_simulated_usd(db))


def _recorded_simulated_usd(db: str) -> Decimal:
    try:
        return Decimal(store(db).simulated_spend()["usd"])
    except (BenchError, duckdb.Error):  # a busy or damaged file: start at zero, Credits reads the DB
        return Decimal(0)


def key_env() -> dict[str, str]:
    """The environment, with the secrets file's string values under it (the environment wins)."""
    try:
        found = {str(k): str(v) for k, v in st.secrets.items() if isinstance(v, (str, int))}
    except Exception:  # noqa: BLE001 - no secrets file is the normal case
        found = {}
    return found | dict(os.environ)


def current_settings() -> Settings:
    """Settings for this session: real API with a key, else the sandbox (simulated).

    ``bench.api.keys`` decides: the OpenRouter key only goes to openrouter.ai; another
    ``OPENROUTER_BASE_URL`` gets the key ``ORBENCH_BASE_URL_KEY_ENV`` names, or none.
    """
    env = Settings.from_env()
    key = keys.base_url_key(env.base_url, key_env())
    if key:
        return replace(env, api_key=key)
    if env.base_url != OPENROUTER_BASE_URL:  # a sandbox started elsewhere (tests, `orbench sandbox`)
        # a 401 from there says no key was sent, and how to send one (bench.api.keys)
        return replace(env, api_key=None, sandbox=True,
                       withheld_key_env=keys.withheld_key_env(env.base_url, key_env()))
    return replace(env, api_key=None, base_url=_sandbox(str(env.db_path)).base_url, sandbox=True)


def sandbox_settings(db_path: Path) -> Settings:
    """Settings for the one-click demo: always the sandbox, never a real key."""
    env = Settings.from_env()
    if env.base_url != OPENROUTER_BASE_URL and keys.base_url_key(env.base_url, key_env()) is None:
        return replace(env, api_key=None, db_path=db_path, sandbox=True)
    return Settings(base_url=_sandbox(str(db_path)).base_url, db_path=db_path, sandbox=True)


def store(db: str) -> Store:
    return Store(db, read_timeout_s=READ_TIMEOUT_S)


def db_exists(db: str) -> bool:
    return Path(db).exists()


# ------------------------------------------------------------------- results
@st.cache_data(ttl=RESULTS_TTL_S, show_spinner=False)
def runs(db: str) -> pl.DataFrame:
    return analytics.runs(store(db))


@st.cache_data(ttl=RESULTS_TTL_S, show_spinner=False)
def filter_options(db: str, run_ids: tuple[str, ...]) -> dict[str, list[str]]:
    return analytics.filter_options(store(db), run_ids)


def _filters(run_ids: tuple[str, ...], models: tuple[str, ...], providers: tuple[str, ...],
             cases: tuple[str, ...], provider_by: str) -> Filters:
    return Filters(run_ids, models, providers, cases, provider_by)


@st.cache_data(ttl=RESULTS_TTL_S, show_spinner=False)
def group_stats(db: str, run_ids: tuple[str, ...], models: tuple[str, ...] = (),
                providers: tuple[str, ...] = (), cases: tuple[str, ...] = (),
                provider_by: str = "variant") -> pl.DataFrame:
    """``bench.results.summary`` per model x provider (the one summary ``orbench show`` prints)."""
    f = _filters(run_ids, models, providers, cases, provider_by)
    return summary.frame(summary.summarize(store(db), f, by="provider"))


@st.cache_data(ttl=RESULTS_TTL_S, show_spinner=False)
def percentile_table(db: str, metric: str, run_ids: tuple[str, ...], models: tuple[str, ...] = (),
                     providers: tuple[str, ...] = (), cases: tuple[str, ...] = (),
                     provider_by: str = "variant") -> pl.DataFrame:
    """p50..p99 of ``metric`` with 95 % intervals per group (``summary.add_cis`` on the cached groups)."""
    rows = group_stats(db, run_ids, models, providers, cases, provider_by).to_dicts()
    f = _filters(run_ids, models, providers, cases, provider_by)
    summary.add_cis(store(db), f, rows, metric)
    return analytics.percentile_view(summary.frame(rows), metric)


TIMELINE_WINDOW = 2000  # requests drawn at once; a slider moves the window along bigger runs


@st.cache_data(ttl=RESULTS_TTL_S, show_spinner=False)
def timeline(db: str, run_id: str, first: int, models: tuple[str, ...] = (), providers: tuple[str, ...] = (),
             cases: tuple[str, ...] = (), provider_by: str = "variant") -> tuple[pl.DataFrame, int]:
    f = _filters((run_id,), models, providers, cases, provider_by)
    return analytics.timeline(store(db), f, run_id, first, TIMELINE_WINDOW)


@st.cache_data(ttl=RESULTS_TTL_S, show_spinner=False)
def drift(db: str, run_id: str, models: tuple[str, ...] = (), providers: tuple[str, ...] = (),
          cases: tuple[str, ...] = (), provider_by: str = "variant") -> pl.DataFrame:
    f = _filters((run_id,), models, providers, cases, provider_by)
    return analytics.drift(store(db), f, run_id)


@st.cache_data(ttl=RESULTS_TTL_S, show_spinner=False)
def outputs(db: str, run_ids: tuple[str, ...], models: tuple[str, ...] = (),
            providers: tuple[str, ...] = (), cases: tuple[str, ...] = (),
            provider_by: str = "variant", limit: int = 200) -> pl.DataFrame:
    """A few responses (text as stored) to read; shown as plain text only."""
    cols = ["run_id", "request_idx", "model", "provider_variant", "provider", "case_id", "outcome",
            "passed", "ttft_ms", "e2e_ms", "output_text", "error"]
    f = _filters(run_ids, models, providers, cases, provider_by)
    return analytics.request_rows(store(db), f, cols, limit=limit)


# ------------------------------------------------------------------- compare
@st.cache_data(ttl=RESULTS_TTL_S, show_spinner=False)
def run_comparison(db: str, run_a: str, run_b: str, provider_by: str) -> pl.DataFrame:
    """Median change per group from run A to run B, TTFT and e2e, with bootstrap CIs over every
    ok value (``bench.results.compare``, the implementation ``orbench compare`` uses)."""
    rows = compare.compare_runs(store(db), run_a, run_b, by=provider_by, metrics=("ttft_ms", "e2e_ms"),
                                labels=analytics.METRIC_LABELS, error_rates=False, n_resamples=COMPARE_RESAMPLES)
    schema = {"group": pl.String, "metric": pl.String, "n_a": pl.Int64, "n_b": pl.Int64,
              "p50_a": pl.Float64, "p50_b": pl.Float64, "change": pl.Float64,
              "change_pct": pl.Float64, "ci_lo_pct": pl.Float64, "ci_hi_pct": pl.Float64,
              "verdict": pl.String}
    return pl.DataFrame([{k: r.get(k) for k in schema} for r in rows], schema=schema)


# ------------------------------------------------------------------- catalog, credits (API)
def _run(make: Callable[[OpenRouterClient], Awaitable[T]], base_url: str) -> T:
    """One API call on a short-lived client (the script thread has no event loop of its own)."""
    settings = current_settings()
    settings = replace(settings, base_url=base_url)

    async def go() -> T:
        client = OpenRouterClient(build_http_client(settings, 2), api_key=settings.api_key,
                                  withheld_key_env=settings.withheld_key_env,
                                  retry=RetryPolicy(max_attempts=2, max_total_s=10))
        try:
            return await make(client)
        finally:
            await client.aclose()

    return asyncio.run(go())


@st.cache_data(ttl=CATALOG_TTL_S, show_spinner="Loading the model catalog...")
def catalog(base_url: str) -> list[Model]:
    return _run(lambda c: c.models(output_modalities="all"), base_url)


@st.cache_data(ttl=CATALOG_TTL_S, show_spinner=False)
def endpoints(base_url: str, model_id: str) -> ModelEndpoints:
    return _run(lambda c: c.endpoints(model_id), base_url)


@st.cache_data(ttl=CREDITS_TTL_S, show_spinner=False)
def key_info(base_url: str) -> KeyInfo:
    return _run(lambda c: c.key_info(), base_url)


@st.cache_data(ttl=CREDITS_TTL_S, show_spinner=False)
def account_credits(base_url: str) -> tuple[Credits | None, str | None]:
    """Account credits, or (None, why) when the key may not read them (401/403)."""
    try:
        return _run(lambda c: c.credits(), base_url), None
    except AuthError as exc:
        return None, f"Account credits are not available to this key: {exc.message}"


@st.cache_data(ttl=RESULTS_TTL_S, show_spinner=False)
def price_history(db: str, model_id: str) -> pl.DataFrame:
    return spend_mod.price_history(store(db), model_id)


@st.cache_data(ttl=RESULTS_TTL_S, show_spinner=False)
def spend(db: str, key: str) -> pl.DataFrame:
    return spend_mod.spend_by(store(db), key)


@st.cache_data(ttl=RESULTS_TTL_S, show_spinner=False)
def simulated_spend(db: str) -> dict[str, Any]:
    """The sandbox's key usage: the simulated spend this database recorded (``Store.simulated_spend``)."""
    return store(db).simulated_spend()


def simulated_key(key: KeyInfo, spent: dict[str, Any]) -> KeyInfo:
    """The sandbox's /key answer with its usage taken from the database's simulated spend.

    The sandbox process may have started before some of the runs (a CLI run since), so the
    runs are the source; the limit is the sandbox's, and what remains follows from both.
    """
    usage = Decimal(spent["usd"])
    remaining = None if key.limit is None else max(Decimal(0), Decimal(str(key.limit)) - usage)
    return replace(key, usage=usage, usage_daily=usage, usage_weekly=usage, usage_monthly=usage,
                   limit_remaining=remaining)


# ------------------------------------------------------------------- runs in progress
HEARTBEAT_STALE_S = 3 * HEARTBEAT_INTERVAL_S  # three missed beats: 15 s


def running_runs(db: str) -> list[dict[str, Any]]:
    """Runs the database says are ``running``, each with ``alive`` from its heartbeat.

    Not cached: the Run page polls it every few seconds and a stale answer would show a
    finished run as running. A missing file is no run; a busy one raises StoreBusy.
    """
    from dashboard.jobs import heartbeat_alive

    rows = store(db).running_runs().to_dicts()
    for row in rows:
        row["alive"] = heartbeat_alive(row["heartbeat_age_s"], row["heartbeat_pid"],
                                       row["heartbeat_host"], HEARTBEAT_STALE_S)
    return rows


# ------------------------------------------------------------------- export
def export_rows(db: str, run_ids: tuple[str, ...], models: tuple[str, ...], providers: tuple[str, ...],
                cases: tuple[str, ...], provider_by: str) -> pl.DataFrame:
    """All filtered per-request rows in the export column order (not cached: built on click)."""
    from bench.results.export import EXTRA_COLUMNS, REQUIRED_COLUMNS

    f = _filters(run_ids, models, providers, cases, provider_by)
    return analytics.request_rows(store(db), f, REQUIRED_COLUMNS + EXTRA_COLUMNS)


@st.cache_data(ttl=RESULTS_TTL_S, show_spinner=False)
def count_rows(db: str, run_ids: tuple[str, ...], models: tuple[str, ...], providers: tuple[str, ...],
               cases: tuple[str, ...], provider_by: str) -> int:
    return analytics.count_rows(store(db), _filters(run_ids, models, providers, cases, provider_by))


def list_suites() -> list[Path]:
    return sorted(SUITES_DIR.glob("*.yaml")) + sorted(SUITES_DIR.glob("*.yml"))


# ------------------------------------------------------------------- the team store (--team)
TEAM_SYNC_S = 10  # the cache pulls at least this often (and on Refresh)
TEAM_TICK_S = 5  # the header checks this often; a pull older than TEAM_SYNC_S - 1 s is redone then


def team() -> Any:
    """The team store this dashboard reads through its local cache (``--team`` / ORBENCH_TEAM_DB), or None.

    A bad URL or a weak sslmode to a remote host is a BenchError (one line, password redacted)."""
    from bench.store.team.hooks import team_of

    env = Settings.from_env()
    return team_of(replace(env, team_insecure=os.environ.get("ORBENCH_TEAM_INSECURE") == "1"))


@st.cache_data(ttl=TEAM_SYNC_S - 1, show_spinner=False)
def team_pull(db: str, team_key: str) -> dict[str, Any]:
    """Pull the team's new log entries into the local DuckDB (``team_key`` keys the cache, never the URL).

    Returns {"entries": new entries, "synced_at": UTC time, "error": one line or None, "skipped": lines}."""
    from datetime import UTC, datetime

    from bench.store.team.pull import pull

    found = team()
    skipped: list[str] = []
    if found is None or found.key != team_key:
        return {"entries": 0, "synced_at": None, "error": "no team store", "skipped": skipped}
    try:
        res = pull(Store(db), found, on_skip=skipped.append)
    except BenchError as exc:
        return {"entries": 0, "synced_at": None, "error": str(exc).splitlines()[0], "skipped": skipped}
    return {"entries": res.entries, "synced_at": datetime.now(UTC), "error": None, "skipped": skipped}


@st.cache_data(ttl=TEAM_SYNC_S, show_spinner=False)
def team_counts(db: str) -> tuple[int, int]:
    """(runs, origins) in the local cache."""
    frame = store(db).query("SELECT count(*) AS n, count(DISTINCT origin) AS k FROM runs")
    return (int(frame["n"][0]), int(frame["k"][0])) if frame.height else (0, 0)


def clear_caches() -> None:
    """Forget cached reads (after a run finished, or on the user's Refresh)."""
    st.cache_data.clear()


# ------------------------------------------------------------------- suites for the Run page
def load_suite(path: Path) -> Any:
    """A validated suite (``bench.suites.Suite``); SuiteError carries the one-line problem.

    Parsed once per content (every widget change reruns the page); the page only reads it,
    and the engine loads its own copy when a run starts.
    """
    import hashlib

    try:
        digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        digest = ""  # load() says why, in one line
    return _parsed_suite(str(path), digest)


@st.cache_resource(max_entries=16, show_spinner=False)
def _parsed_suite(path: str, content_sha256: str) -> Any:
    from bench.suites.parse import load_suite as load

    return load(path)


@st.cache_resource(show_spinner=False)
def _upload_folder() -> Path:
    """A folder only this process's user can read (0700), made fresh once per dashboard process.

    Not a fixed name in the shared temp folder: another user could create that first, or plant
    a symlink at a predictable file name in it, and the dashboard would write through it.
    """
    import tempfile

    return Path(tempfile.mkdtemp(prefix="orbench-uploads-"))


def _private_folder() -> Path:
    folder = _upload_folder()
    try:
        st_ = os.lstat(folder)
        ours = stat.S_ISDIR(st_.st_mode) and st_.st_uid == os.getuid() and not st_.st_mode & 0o077
    except FileNotFoundError:  # a temp cleaner removed it: make another
        ours = False
    if not ours:
        _upload_folder.clear()
        folder = _upload_folder()
    return folder


def save_upload(name: str, content: bytes) -> Path:
    """Keep an uploaded suite (named by its hash) where the engine can read it and no one else can.

    The file is created in the process's private folder with ``O_NOFOLLOW``: a symlink planted at
    its name is refused (ConfigError), never written through.
    """
    import hashlib

    stem = Path(name).stem.replace(" ", "_") or "suite"
    path = _private_folder() / f"{stem}-{hashlib.sha256(content).hexdigest()[:10]}.yaml"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot save the uploaded suite there ({exc.strerror or exc}); "
                          "a symlink or another user's file is in the way") from None
    with os.fdopen(fd, "wb") as fh:
        fh.write(content)
    return path


@st.cache_data(ttl=RESULTS_TTL_S, show_spinner=False)
def quality_groups(db: str, run_ids: tuple[str, ...], provider_by: str = "variant") -> pl.DataFrame:
    return pass_rates.quality_groups(group_stats(db, run_ids, provider_by=provider_by))


@st.cache_data(ttl=RESULTS_TTL_S, show_spinner=False)
def cases_with_failures(db: str, run_ids: tuple[str, ...]) -> list[str]:
    return pass_rates.cases_with_failures(store(db), _filters(run_ids, (), (), (), "variant"))


@st.cache_data(ttl=RESULTS_TTL_S, show_spinner=False)
def case_answers(db: str, run_ids: tuple[str, ...], case_id: str, provider_by: str = "variant") -> pl.DataFrame:
    return pass_rates.case_answers(store(db), _filters(run_ids, (), (), (), provider_by), case_id)


@st.cache_data(ttl=RESULTS_TTL_S, show_spinner=False)
def conversation_stats(db: str, run_ids: tuple[str, ...]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(per model x provider, per turn) of the runs' conversations (bench.results.conversations);
    two empty frames when the runs have none."""
    from bench.results import conversations

    turns = conversations.turn_rows(store(db), run_ids)
    return conversations.summary_frame(turns), conversations.turn_frame(turns)


# ------------------------------------------------------------------- decide (the Decide page)
# Kept apart from the credits and running-runs readers above: everything here calls bench.results.decide.
@st.cache_data(ttl=RESULTS_TTL_S, show_spinner="Deciding...")
def decision(db: str, run_ids: tuple[str, ...], models: tuple[str, ...], providers: tuple[str, ...],
             cases: tuple[str, ...], provider_by: str, constraints: tuple[Any, ...],
             objective: str, skip_failed_verify: bool = False, by_origin: bool = False) -> Any:
    """``bench.results.decide.decide`` over the runs, narrowed to the picked models, providers and cases.

    ``constraints``: ``bench.results.decide.Constraint`` values. Candidates are always model x provider
    variant (as in ``orbench decide``); ``provider_by="served"`` only changes what the provider
    filter matches; ``by_origin``: model x provider x origin (``orbench decide --by-origin``). Returns a
    ``bench.results.decide.Decision``.
    """
    from bench.results import decide

    frame = decide.pooled_frame(store(db), run_ids, by_origin)
    if frame.height:
        column = "provider_variant" if provider_by == "variant" else "provider"
        for col, picks in (("model", models), (column, providers), ("case_id", cases)):
            if picks:
                frame = frame.filter(pl.col(col).is_in(list(picks)))
    if frame.height and skip_failed_verify:
        frame = _without_failed_providers(db, frame)
    return decide.decide(frame, constraints, objective, seed=0)


def _without_failed_providers(db: str, frame: pl.DataFrame) -> pl.DataFrame:
    """Rows of providers that deviated in the last verify of their model left out."""
    keep = pl.lit(True)
    for model in frame["model"].unique().to_list():
        failed = sorted(failed_verify_providers(db, model))
        if failed:
            bad = (pl.col("provider_variant").is_in(failed) | pl.col("provider").is_in(failed))
            keep = keep & ~((pl.col("model") == model) & bad.fill_null(False))
    return frame.filter(keep)


# ------------------------------------------------------------------- verify (the Providers page)
@st.cache_data(ttl=RESULTS_TTL_S, show_spinner=False)
def failed_verify_providers(db: str, model: str) -> set[str]:
    return conformance.failed_providers(store(db), model)


@st.cache_data(ttl=RESULTS_TTL_S, show_spinner=False)
def verify_runs(db: str) -> pl.DataFrame:
    return conformance.verify_runs(store(db))


@st.cache_data(ttl=RESULTS_TTL_S, show_spinner="Computing the verdicts...")
def verify_result(db: str, run_id: str) -> conformance.VerifyResult:
    return conformance.verify_run(store(db), run_id)


@st.cache_data(ttl=RESULTS_TTL_S, show_spinner=False)
def verify_matrix(db: str, run_id: str) -> pl.DataFrame:
    """One row per provider: verdict and value per dimension (for the coloured matrix)."""
    return pl.DataFrame(conformance.matrix_rows(verify_result(db, run_id)))


@st.cache_data(ttl=RESULTS_TTL_S, show_spinner=False)
def failing_answers(db: str, run_id: str, provider: str, dimension: str) -> pl.DataFrame:
    return conformance.failing_answers(store(db), run_id, verify_result(db, run_id), provider, dimension)


def frontier_points(decision: Any, latency_field: str) -> pl.DataFrame:
    """One point per candidate: ``latency_field`` (a summary field in ms) and cost per request,
    with ``analytics.pareto_points``' frontier flag, the verdict and the why (for the tooltip)."""
    def num(v: Any) -> float | None:
        return None if v is None else float(v)  # money to float for drawing only

    rows = [{"group": c.label, "model": c.model, "provider": c.provider, "ok": c.value("ok"),
             "pass_rate": num(c.value("pass_rate")), "e2e_p50_ms": num(c.value(latency_field)),
             "cost_per_request_usd": num(c.value("cost_per_request_usd")), "verdict": c.verdict}
            for c in decision.ranking]
    schema = {"group": pl.String, "model": pl.String, "provider": pl.String, "ok": pl.Int64,
              "pass_rate": pl.Float64, "e2e_p50_ms": pl.Float64, "cost_per_request_usd": pl.Float64,
              "verdict": pl.String}
    groups = pl.DataFrame(rows, schema=schema)
    points = analytics.pareto_points(groups, "e2e_ms")
    return points.join(groups.select("group", "verdict"), on="group", how="left") if groups.height else points


# ------------------------------------------------------------------- load (the Load page)
# Every figure is bench.sweep.sweep_json's (what ``orbench sweep --json`` prints); the helpers
# below only pick and rename its fields for the charts.
LOAD_THROUGHPUT = {"req_per_s": "req/s", "output_tok_per_s": "output tok/s"}
LOAD_LATENCY = {"ttft_p95_ms": "TTFT p95 (ms)", "e2e_p95_ms": "e2e p95 (ms)", "tpot_p50_ms": "TPOT p50 (ms)"}


@st.cache_data(ttl=RESULTS_TTL_S, show_spinner=False)
def sweeps(db: str) -> pl.DataFrame:
    """Stored sweeps, newest first (``Store.list_sweeps``: steps, simulated)."""
    return store(db).list_sweeps()


@st.cache_data(ttl=RESULTS_TTL_S, show_spinner="Reading the sweep...")
def sweep_result(db: str, sweep_id: str) -> dict[str, Any]:
    """``bench.sweep.sweep_json`` of one sweep: steps, knee, max_goodput, SLOs."""
    from bench.run import sweep

    return sweep.sweep_json(store(db), sweep_id)


def level_label(axis: str, level: Any) -> str:
    """How a step is named on the charts: 'c=4' (concurrency) or '2.5/s' (rate)."""
    return f"c={level:g}" if axis == "concurrency" else f"{level:g}/s"


def load_points(result: dict[str, Any], throughput: str, latency: str) -> pl.DataFrame:
    """One row per step and model x provider: ``throughput`` and ``latency`` (fields of
    ``LOAD_THROUGHPUT``/``LOAD_LATENCY``) with the latency's 95 % interval, goodput and req/s,
    and whether the step is the target's knee or its max goodput."""
    from bench.run.sweep import target_key

    axis = result["axis"]
    lo, hi = latency.replace("_ms", "_ci_lo_ms"), latency.replace("_ms", "_ci_hi_ms")
    rows = []
    for s in result["steps"]:
        group = target_key(s["model"], s["provider"])
        rows.append({"group": group, "level": float(s[axis]), "label": level_label(axis, s[axis]), "n": s["n"],
                     "throughput": s[throughput], "latency": s[latency], "latency_lo": s.get(lo),
                     "latency_hi": s.get(hi), "goodput_req_per_s": s["goodput_req_per_s"],
                     "req_per_s": s["req_per_s"], "error_rate": s["error_rate"],
                     "is_knee": result["knee"].get(group) == s[axis],
                     "is_max_goodput": result["max_goodput"].get(group) == s[axis]})
    schema = {"group": pl.String, "level": pl.Float64, "label": pl.String, "n": pl.Int64,
              "throughput": pl.Float64, "latency": pl.Float64, "latency_lo": pl.Float64,
              "latency_hi": pl.Float64, "goodput_req_per_s": pl.Float64, "req_per_s": pl.Float64,
              "error_rate": pl.Float64, "is_knee": pl.Boolean, "is_max_goodput": pl.Boolean}
    return pl.DataFrame(rows, schema=schema).sort("group", "level")


def slo_lines(result: dict[str, Any], latency: str) -> list[tuple[float, str]]:
    """The sweep's stored SLOs on ``latency`` (the metric the chart draws): (limit, text)."""
    from bench.run.sweep import parse_slo

    return [(float(g.value), g.text) for g in map(parse_slo, result["slos"]) if g.metric == latency]


STEP_COLUMNS = ("model", "provider", "n", "req_per_s", "output_tok_per_s", "goodput_req_per_s",
                "ttft_p50_ms", "ttft_p95_ms", "tpot_p50_ms", "e2e_p95_ms", "error_rate",
                "rate_limited_rate", "run_id", "run_status")


def step_table(result: dict[str, Any]) -> pl.DataFrame:
    """The steps as ``sweep_json`` has them (the level first), for ``st.dataframe``."""
    cols = (result["axis"], *STEP_COLUMNS)
    types = {result["axis"]: pl.Float64 if result["axis"] == "rate" else pl.Int64, "model": pl.String,
             "provider": pl.String, "n": pl.Int64, "run_id": pl.String, "run_status": pl.String}
    schema = {c: types.get(c, pl.Float64) for c in cols}
    return pl.DataFrame([{c: s.get(c) for c in cols} for s in result["steps"]], schema=schema)


# ------------------------------------------------------------------- trends (the Trends page)
# Every figure is bench.results.trends' (the per-tick medians with their intervals, the rolling
# median, the incidents the monitor recorded); nothing is computed here.
TREND_SPANS = {"1d": 86400.0, "7d": 7 * 86400.0, "30d": 30 * 86400.0, "365d": 365 * 86400.0}
TREND_METRICS = {"ttft_ms": "TTFT p50 (ms)", "e2e_ms": "e2e p50 (ms)", "decode_tps": "decode tok/s p50"}


@st.cache_data(ttl=RESULTS_TTL_S, show_spinner=False)
def monitors(db: str) -> pl.DataFrame:
    """Every monitor: name, suite, period, next tick, ticks, last tick. Monitors run on other machines
    (their ticks pulled from the team store, no row in ``monitors`` here) are listed from their runs,
    with no period or next tick."""
    local = store(db).list_monitors()
    remote = store(db).query(
        "SELECT r.monitor AS name, any_value(r.suite_path) AS suite_path, CAST(NULL AS DOUBLE) AS every_s, "
        "CAST(NULL AS TIMESTAMPTZ) AS next_tick_at, count(*) AS ticks, "
        "max(coalesce(r.started_at, r.created_at)) AS last_tick_at FROM runs AS r "
        "WHERE r.monitor IS NOT NULL AND list_contains($local, r.monitor) = false GROUP BY r.monitor",
        {"local": local["name"].to_list()})
    if remote.is_empty():
        return local
    return pl.concat([local, remote.select(local.columns)], how="vertical_relaxed").sort("name")


@st.cache_data(ttl=RESULTS_TTL_S, show_spinner="Reading the monitor's ticks...")
def trend_series(db: str, monitor: str, span_s: float) -> pl.DataFrame:
    """``trend_series.tick_series``: one row per tick x model x provider x metric over the last ``span_s``
    (plus the 72 h before it, so the rolling median starts full), newest tick last."""
    from datetime import UTC, datetime, timedelta

    from bench.results import trend_series

    now = datetime.now(UTC)
    frame = trend_series.tick_series(store(db), monitor, now - timedelta(seconds=span_s + 72 * 3600))
    return bucketed(frame.filter(pl.col("started_at") >= now - timedelta(seconds=span_s)), span_s)


TREND_POINTS = 720
"""Most points per line a Trends chart draws: a year of 30-minute ticks is 17,520 per line, more than
a browser draws smoothly and more than a chart 1,000 pixels wide can show."""
_TREND_KEYS = ("monitor", "origin", "model", "provider", "metric")


def bucketed(series: pl.DataFrame, span_s: float, points: int = TREND_POINTS) -> pl.DataFrame:
    """``series`` with at most ``points`` rows per line: consecutive ticks in time buckets of
    ``span_s / points`` (rounded up to a minute) when there are more. A bucket's point is the median of
    its per-tick medians; its band runs from the lowest to the highest per-tick interval bound; ``n``
    sums the requests, error and pass rates are weighted by them; ``ticks`` counts the ticks (1: none)."""
    series = series.with_columns(pl.lit(1, dtype=pl.UInt32).alias("ticks"))
    if series.is_empty() or series.group_by(_TREND_KEYS).len()["len"].max() <= points:  # type: ignore[operator]
        return series
    every = f"{max(60, math.ceil(span_s / points / 60) * 60)}s"
    n = pl.col("n").cast(pl.Float64)
    out = series.sort([*_TREND_KEYS, "started_at"]).group_by_dynamic(
        "started_at", every=every, group_by=list(_TREND_KEYS), start_by="datapoint").agg(
        pl.col("tick").first(), pl.col("p50").median(), pl.col("lo").min(), pl.col("hi").max(),
        pl.col("rolling_p50").median(), pl.col("n").sum(),
        ((pl.col("error_rate") * n).sum() / n.sum()).alias("error_rate"),
        ((pl.col("pass_rate") * n).sum() / n.sum()).alias("pass_rate"),
        pl.len().cast(pl.UInt32).alias("ticks"))
    return out.select(series.columns)


@st.cache_data(ttl=RESULTS_TTL_S, show_spinner=False)
def monitor_incidents(db: str, monitor: str) -> pl.DataFrame:
    """The monitor's incidents as stored (open ones have no recovered_at), with those pulled from the team
    store (``origin`` set: another machine's monitor recorded them)."""
    return store(db).incidents(monitor, pulled=True)


@st.cache_data(ttl=RESULTS_TTL_S, show_spinner=False)
def price_marks(db: str, monitor: str) -> pl.DataFrame:
    """Ticks at which a monitored provider's listed price changed."""
    from bench.results import trend_series

    return trend_series.price_changes(store(db), monitor)
