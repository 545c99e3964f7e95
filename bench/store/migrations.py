"""Ordered, append-only schema steps for the orbench DuckDB file.

Each step is a function ``mNNN_<what>(con)``; ``migrate`` applies the missing ones
in order, each in its own transaction together with its row in
``_orbench_migrations``, so a crash mid-step leaves the step unapplied rather than
half-applied. Applied steps are never edited or renumbered: a schema change is a
new step at the end, registered with ``@STEPS()`` (``bench.store.migrator``). A file
that names a step this code does not know was written by a newer orbench, and
``migrate`` refuses it with ``SchemaTooNew`` instead of guessing.

The ``requests`` columns are spelled out here, not derived from ``RequestRow``:
a migration must mean the same thing forever. A test checks that the table's
columns equal ``REQUEST_COLUMNS``, so adding a field to ``RequestRow`` without a
new step fails loudly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from bench.store.migrator import Migrations

Migration = Callable[[duckdb.DuckDBPyConnection], None]

MIGRATIONS_TABLE = "_orbench_migrations"


class _DuckDBSteps:
    """The bookkeeping of the DuckDB file's steps: ``_orbench_migrations``, one row per step."""

    def applied(self, con: duckdb.DuckDBPyConnection) -> list[str]:
        con.execute(
            f"CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} "
            "(name VARCHAR PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL)"
        )
        rows = con.sql(f"SELECT name FROM {MIGRATIONS_TABLE} ORDER BY name").fetchall()
        return [r[0] for r in rows]

    @contextmanager
    def transaction(self, con: duckdb.DuckDBPyConnection) -> Iterator[None]:
        con.begin()
        try:
            yield
            con.commit()
        except BaseException:
            con.rollback()
            raise

    def record(self, con: duckdb.DuckDBPyConnection, name: str) -> None:
        con.execute(f"INSERT INTO {MIGRATIONS_TABLE} (name, applied_at) VALUES (?, now())", [name])


STEPS: Migrations[duckdb.DuckDBPyConnection] = Migrations("orbench", _DuckDBSteps())
"""The DuckDB file's numbered steps, registered in order by ``@STEPS()`` below."""


@STEPS()
def m001_create_runs(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        """
        CREATE TABLE runs (
            run_id VARCHAR PRIMARY KEY,       -- sortable id, also the journal file name
            name VARCHAR,                     -- the user's label for the run
            suite_name VARCHAR,               -- which prompt suite was run
            suite_path VARCHAR,               -- where it was loaded from (provenance)
            suite_hash VARCHAR,               -- content hash: same name, different prompts?
            tool_version VARCHAR,             -- orbench version that measured it
            settings JSON,                    -- concurrency, rate, repeats, models, providers,
                                              -- budget, timeout, warmup, base_url; never a key
            status VARCHAR NOT NULL,          -- planned|running|finished|stopped|failed|cancelled
                                              -- (checked in Python: a CHECK cannot grow later)
            status_reason VARCHAR,            -- why it stopped/failed, one line for the user
            created_at TIMESTAMPTZ NOT NULL DEFAULT now(),  -- orders runs not yet started
            started_at TIMESTAMPTZ,           -- first request sent
            finished_at TIMESTAMPTZ,          -- reached a terminal status
            catalog_snapshot_id VARCHAR,      -- prices used for list_cost_usd
            simulated BOOLEAN NOT NULL DEFAULT false,  -- sandbox server: numbers are not real
            planned INTEGER,                  -- planned requests, for progress and resume
            plan JSON                         -- the planned requests (request_idx, model,
                                              -- provider_variant, endpoint, case_id, repeat,
                                              -- is_warmup) so a resume replays the same plan
        )
        """
    )


@STEPS()
def m002_create_requests(con: duckdb.DuckDBPyConnection) -> None:
    # No PRIMARY KEY on (run_id, request_idx): an ART index slows bulk inserts and
    # makes a re-run of an unfinished request an error. Uniqueness is kept by the
    # one write path (Store._merge_rows: dedupe + anti-join under the file lock).
    con.execute(
        """
        CREATE TABLE requests (
            run_id VARCHAR NOT NULL,          -- the run this request belongs to
            request_idx BIGINT NOT NULL,      -- position in the run's plan; key with run_id
            model VARCHAR NOT NULL,           -- model id asked for
            provider_variant VARCHAR NOT NULL,  -- routing variant name ("default" when none)
            endpoint VARCHAR NOT NULL,        -- "openrouter" or a named compatible endpoint
            case_id VARCHAR NOT NULL,         -- which suite case was sent
            repeat BIGINT NOT NULL,           -- repeat number; -1 for the warm-up
            is_warmup BOOLEAN NOT NULL,       -- warm-ups are stored but never counted
            outcome VARCHAR,                  -- ok|rate_limited|...; NULL while planned
            served_model VARCHAR,             -- the model that answered (auto, dated slugs)
            provider VARCHAR,                 -- provider that served it
            http_status BIGINT,               -- final HTTP status
            attempts BIGINT,                  -- attempts made (retries included)
            started_at TIMESTAMPTZ,           -- wall clock of t0, for humans
            t_start_ms DOUBLE,                -- t0 relative to run start (timeline)
            ttfb_ms DOUBLE,                   -- first body byte
            ttft_ms DOUBLE,                   -- first generated output
            ttfa_ms DOUBLE,                   -- first visible answer / tool call
            tpot_ms DOUBLE,                   -- (last - first token) / (tokens - 1)
            e2e_ms DOUBLE,                    -- last generated output
            done_ms DOUBLE,                   -- stream closed
            decode_tps DOUBLE,                -- decode speed, excludes the wait
            e2e_tps DOUBLE,                   -- what a user feels
            chunk_gaps_ms DOUBLE[],           -- raw inter-chunk gaps (not ITL)
            prompt_tokens BIGINT,             -- from the server's usage
            completion_tokens BIGINT,
            reasoning_tokens BIGINT,
            cached_tokens BIGINT,
            cache_write_tokens BIGINT,
            token_source VARCHAR,             -- usage|generation|estimate
            cost_usd DECIMAL(38,18),          -- cost OpenRouter reported (money: exact)
            list_cost_usd DECIMAL(38,18),     -- catalog price x tokens, the cross-check
            cost_source VARCHAR,              -- reported|list
            max_cost_usd DECIMAL(38,18),      -- ceiling reserved against the budget
            generation_id VARCHAR,            -- for the /generation lookup
            finish_reason VARCHAR,
            native_finish_reason VARCHAR,
            error VARCHAR,                    -- message of a failed request (failures are data)
            error_code VARCHAR,
            server_latency_ms DOUBLE,         -- server-side latency when reported
            server_generation_ms DOUBLE,      -- server-side generation time when reported
            output_text VARCHAR,              -- the answer, for quality checks
            tool_calls_json VARCHAR,          -- assembled tool calls as JSON text
            passed BOOLEAN,                   -- quality check verdict
            score DOUBLE,                     -- quality score
            check_detail VARCHAR,             -- JSON list of per-check results
            session BIGINT NOT NULL DEFAULT 0  -- 0 = first pass, k = k-th resume: a newer
                                              -- session's result replaces an unfinished row
        )
        """
    )


@STEPS()
def m003_create_catalog(con: duckdb.DuckDBPyConnection) -> None:
    # One snapshot per catalog fetch so price history accumulates and every run
    # can name the prices its list_cost_usd was computed with.
    con.execute(
        """
        CREATE TABLE catalog_snapshots (
            snapshot_id VARCHAR PRIMARY KEY,
            taken_at TIMESTAMPTZ NOT NULL,    -- when the catalog was fetched
            source VARCHAR,                   -- base_url it came from (no credentials)
            simulated BOOLEAN NOT NULL DEFAULT false,  -- sandbox catalog, not real prices
            model_count INTEGER               -- sanity check on the fetch
        )
        """
    )
    con.execute(
        """
        CREATE TABLE catalog_prices (
            snapshot_id VARCHAR NOT NULL,     -- which fetch
            model_id VARCHAR NOT NULL,
            canonical_slug VARCHAR,           -- the dated slug behind an alias
            provider VARCHAR,                 -- NULL: the model-level price
            -- USD per token (request/image: per unit), exact decimals from the API strings
            prompt DECIMAL(38,18),
            completion DECIMAL(38,18),
            request DECIMAL(38,18),
            image DECIMAL(38,18),
            internal_reasoning DECIMAL(38,18),
            input_cache_read DECIMAL(38,18),
            input_cache_write DECIMAL(38,18),
            variable BOOLEAN,                 -- price varies (router models): list cost is a guess
            context_length BIGINT
        )
        """
    )


@STEPS()
def m004_create_credit_snapshots(con: duckdb.DuckDBPyConnection) -> None:
    # Balances over time: what a run really cost from the account's point of view.
    con.execute(
        """
        CREATE TABLE credit_snapshots (
            taken_at TIMESTAMPTZ NOT NULL,
            source VARCHAR NOT NULL,          -- "key" (/key) or "credits" (/credits)
            label VARCHAR,                    -- the key's label, never the key
            limit_usd DECIMAL(38,18),
            limit_remaining_usd DECIMAL(38,18),
            usage_usd DECIMAL(38,18),
            total_credits_usd DECIMAL(38,18),
            total_usage_usd DECIMAL(38,18),
            run_id VARCHAR                    -- taken before/after this run, if any
        )
        """
    )


@STEPS()
def m005_create_journal_offsets(con: duckdb.DuckDBPyConnection) -> None:
    # How far each run's journal (data/journal/<run_id>.jsonl) is known to be in
    # the database, so recovery reads only the tail instead of every old journal.
    # One row per run, kept unique by the store under the file lock (no index:
    # this table is written on every batch).
    con.execute(
        """
        CREATE TABLE _orbench_journal (
            run_id VARCHAR NOT NULL,
            ingested_bytes BIGINT NOT NULL,   -- every complete line before this offset is in
            updated_at TIMESTAMPTZ NOT NULL
        )
        """
    )


@STEPS()
def m006_add_judge_costs(con: duckdb.DuckDBPyConnection) -> None:
    # Judge checks call another model; what that costs is kept apart from the
    # benchmarked requests' cost_usd (it is not what the benchmarked model costs).
    for column, kind in (("judge_calls", "BIGINT"), ("judge_prompt_tokens", "BIGINT"),
                         ("judge_completion_tokens", "BIGINT"), ("judge_cost_usd", "DECIMAL(38,18)")):
        con.execute(f"ALTER TABLE runs ADD COLUMN {column} {kind} DEFAULT 0")


@STEPS()
def m007_add_retries_429(con: duckdb.DuckDBPyConnection) -> None:
    # 429s that were retried away still say something about a provider's capacity:
    # counted per request and reported beside latency, never inside it.
    con.execute("ALTER TABLE requests ADD COLUMN retries_429 BIGINT")


@STEPS()
def m008_money_and_wire(con: duckdb.DuckDBPyConnection) -> None:
    # Journal first, enrich later: a request is journaled as soon as its stream ends
    # (and as ``started`` while in flight); checks, the judge and lookups add later
    # revisions of the same row (``rev``). ``spend_usd`` is what the request's attempts
    # count against the budget (worst case while the real cost is unknown). Judge
    # calls are booked on the row they scored. Connection set-up is timed apart.
    for column, kind in (
        ("rev", "BIGINT DEFAULT 0"),
        ("spend_usd", "DECIMAL(38,18)"),
        ("judge_calls", "BIGINT"),
        ("judge_prompt_tokens", "BIGINT"),
        ("judge_completion_tokens", "BIGINT"),
        ("judge_cost_usd", "DECIMAL(38,18)"),
        ("connect_ms", "DOUBLE"),
        ("conn_reused", "BOOLEAN"),
    ):
        con.execute(f"ALTER TABLE requests ADD COLUMN {column} {kind}")
    # A row that a later session replaces (a crashed ``started`` send, a cancelled
    # one) may have been paid for: it is kept here, whole, so its money stays on the run.
    con.execute(
        "CREATE TABLE superseded_requests AS SELECT *, CAST(NULL AS TIMESTAMPTZ) AS superseded_at "
        "FROM requests WHERE false"
    )


# The columns of ``requests`` as of m008, frozen here: the views below must mean the
# same thing forever (a later column reaches them through a later step that replaces them).
_M009_REQUEST_COLUMNS = (
    "run_id", "request_idx", "model", "provider_variant", "endpoint", "case_id", "repeat", "is_warmup",
    "outcome", "served_model", "provider", "http_status", "attempts", "started_at", "t_start_ms",
    "ttfb_ms", "ttft_ms", "ttfa_ms", "tpot_ms", "e2e_ms", "done_ms", "decode_tps", "e2e_tps",
    "chunk_gaps_ms", "prompt_tokens", "completion_tokens", "reasoning_tokens", "cached_tokens",
    "cache_write_tokens", "token_source", "cost_usd", "list_cost_usd", "cost_source", "max_cost_usd",
    "generation_id", "finish_reason", "native_finish_reason", "error", "error_code", "server_latency_ms",
    "server_generation_ms", "output_text", "tool_calls_json", "passed", "score", "check_detail",
    "session", "retries_429", "rev", "spend_usd", "judge_calls", "judge_prompt_tokens",
    "judge_completion_tokens", "judge_cost_usd", "connect_ms", "conn_reused",
)  # fmt: skip
# What the plan JSON knows of a request that has no row yet (both plan shapes: the
# runner's ``target`` object and the flat PLAN_KEYS of Store.create_run).
_M009_PLANNED = {
    "run_id": "p.run_id",
    "request_idx": "CAST(p.e->>'request_idx' AS BIGINT)",
    "model": "coalesce(p.e->>'model', p.e->'target'->>'model')",
    "provider_variant": "coalesce(p.e->>'provider_variant', p.e->'target'->>'variant', 'default')",
    "endpoint": "coalesce(p.e->>'endpoint', p.e->'target'->>'endpoint', 'openrouter')",
    "case_id": "p.e->>'case_id'",
    "repeat": "CAST(p.e->>'repeat' AS BIGINT)",
    "is_warmup": "coalesce(CAST(p.e->>'is_warmup' AS BOOLEAN), false)",
    "max_cost_usd": "CAST(p.e->>'max_cost_usd' AS DECIMAL(38,18))",
}
_M009_FINISHED = "('ok', 'rate_limited', 'insufficient_credits', 'auth', 'timeout', 'provider_error', " \
    "'bad_request', 'network', 'truncated')"
# Store.run_spend's formula: what one stored send put at risk (booking, else known cost,
# else the worst case of a send cut short), judge calls included.
_M009_MONEY = (
    "coalesce(spend_usd, cost_usd, list_cost_usd, "
    "CASE WHEN outcome IN ('started', 'cancelled') THEN max_cost_usd END, 0) + coalesce(judge_cost_usd, 0)"
)


@STEPS()
def m009_views(con: duckdb.DuckDBPyConnection) -> None:
    # ``requests`` already keeps one row per (run_id, request_idx), the winner of every
    # send of it; but a request the run never reached (a crash, a stop) has no row, and
    # warm-ups sit beside measured rows. ``requests_current`` is one row per planned
    # request: the stored row, or the plan's fields with NULL measurements
    # (``recorded`` = false). Nothing is dropped: warm-ups are flagged (``is_warmup``),
    # and ``in_latency_stats`` says which rows latency statistics use.
    cols = ", ".join(f'r."{c}"' for c in _M009_REQUEST_COLUMNS)
    planned = ", ".join(f'{_M009_PLANNED.get(c, "NULL")} AS "{c}"' for c in _M009_REQUEST_COLUMNS)
    con.execute(
        f"""
        CREATE VIEW requests_current AS
        SELECT {cols},
            true AS recorded,
            -- request_idx is the position in the plan, so no JSON is read for this flag
            coalesce(r.request_idx >= 0 AND r.request_idx < u.planned AND u.plan IS NOT NULL, false) AS in_plan,
            coalesce(s.n, 0) AS superseded_sends,
            (r.outcome IN {_M009_FINISHED} OR (r.outcome = 'cancelled' AND r.token_source = 'usage'))
                AS is_settled,
            NOT r.is_warmup AND r.outcome = 'ok' AS in_latency_stats
        FROM requests AS r
        LEFT JOIN runs AS u ON u.run_id = r.run_id
        LEFT JOIN (SELECT run_id, request_idx, count(*) AS n FROM superseded_requests GROUP BY run_id, request_idx)
            AS s ON s.run_id = r.run_id AND s.request_idx = r.request_idx
        UNION ALL
        SELECT {planned},
            false AS recorded, true AS in_plan, coalesce(s.n, 0) AS superseded_sends,
            false AS is_settled, false AS in_latency_stats
        FROM (
            -- only runs with fewer rows than planned: a complete run's plan JSON is never parsed
            SELECT run_id, unnest(CAST(plan AS JSON[])) AS e FROM runs AS u
            WHERE plan IS NOT NULL
                AND planned > (SELECT count(*) FROM requests AS c WHERE c.run_id = u.run_id)
        ) AS p
        ANTI JOIN requests AS q ON q.run_id = p.run_id AND q.request_idx = CAST(p.e->>'request_idx' AS BIGINT)
        LEFT JOIN (SELECT run_id, request_idx, count(*) AS n FROM superseded_requests GROUP BY run_id, request_idx)
            AS s ON s.run_id = p.run_id AND s.request_idx = CAST(p.e->>'request_idx' AS BIGINT)
        """
    )
    # One row per run: counts over requests_current (warm-ups counted apart), the money
    # of every send (superseded ones and judge calls included, as Store.run_spend adds it).
    con.execute(
        f"""
        CREATE VIEW runs_summary AS
        WITH cur AS (
            SELECT run_id,
                count(*) AS requests,
                count(*) FILTER (WHERE is_warmup) AS warmups,
                count(*) FILTER (WHERE NOT is_warmup AND outcome IN {_M009_FINISHED}) AS sent,
                count(*) FILTER (WHERE NOT is_warmup AND outcome = 'ok') AS ok,
                count(*) FILTER (WHERE NOT is_warmup AND outcome IN {_M009_FINISHED} AND outcome <> 'ok')
                    AS errors,
                count(*) FILTER (WHERE NOT is_warmup AND outcome = 'rate_limited') AS rate_limited,
                count(*) FILTER (WHERE NOT is_warmup AND (outcome IS NULL OR outcome NOT IN {_M009_FINISHED}))
                    AS not_sent,
                count(*) FILTER (WHERE outcome = 'started') AS in_flight,
                sum(cost_usd) AS cost_usd,
                sum(list_cost_usd) AS list_cost_usd,
                sum(cost_usd) FILTER (WHERE is_warmup) AS warmup_cost_usd,
                sum(coalesce(judge_calls, 0)) AS judge_calls,
                sum(coalesce(judge_cost_usd, 0)) AS judge_cost_usd,
                sum({_M009_MONEY}) FILTER (WHERE recorded) AS spend_usd,
                min(started_at) AS first_request_at,
                max(started_at) AS last_request_at
            FROM requests_current GROUP BY run_id
        ), sup AS (
            SELECT run_id, count(*) AS sends, sum(cost_usd) AS cost_usd,
                sum(coalesce(judge_calls, 0)) AS judge_calls, sum(coalesce(judge_cost_usd, 0)) AS judge_cost_usd,
                sum({_M009_MONEY}) AS spend_usd
            FROM superseded_requests GROUP BY run_id
        )
        SELECT r.run_id, r.name, r.suite_name, r.status, r.status_reason, r.simulated, r.tool_version,
            r.suite_hash, r.created_at, r.started_at, r.finished_at,
            r.planned,
            coalesce(c.requests, 0) AS requests,
            coalesce(c.warmups, 0) AS warmups,
            coalesce(c.sent, 0) AS sent,
            coalesce(c.ok, 0) AS ok,
            coalesce(c.errors, 0) AS errors,
            CAST(c.errors AS DOUBLE) / nullif(c.sent, 0) AS error_rate,
            coalesce(c.rate_limited, 0) AS rate_limited,
            coalesce(c.not_sent, 0) AS not_sent,
            coalesce(c.in_flight, 0) AS in_flight,
            CAST(c.cost_usd AS DECIMAL(38,18)) AS cost_usd,
            CAST(c.list_cost_usd AS DECIMAL(38,18)) AS list_cost_usd,
            CAST(c.warmup_cost_usd AS DECIMAL(38,18)) AS warmup_cost_usd,
            coalesce(s.sends, 0) AS superseded_sends,
            CAST(s.cost_usd AS DECIMAL(38,18)) AS superseded_cost_usd,
            CAST(coalesce(r.judge_calls, 0) + coalesce(c.judge_calls, 0) + coalesce(s.judge_calls, 0) AS BIGINT)
                AS judge_calls,
            CAST(coalesce(r.judge_cost_usd, 0) + coalesce(c.judge_cost_usd, 0) + coalesce(s.judge_cost_usd, 0)
                AS DECIMAL(38,18)) AS judge_cost_usd,
            CAST(coalesce(c.spend_usd, 0) + coalesce(s.spend_usd, 0) + coalesce(r.judge_cost_usd, 0)
                AS DECIMAL(38,18)) AS spend_usd,
            c.first_request_at, c.last_request_at
        FROM runs AS r
        LEFT JOIN cur AS c ON c.run_id = r.run_id
        LEFT JOIN sup AS s ON s.run_id = r.run_id
        """
    )


@STEPS()
def m010_run_heartbeat(con: duckdb.DuckDBPyConnection) -> None:
    # A run in progress says it is alive: its writer thread stamps the time every few
    # seconds (never per request), with the pid and host of the process doing it, so the
    # dashboard can list runs started elsewhere (the CLI) and tell a live one from one
    # whose process died without ending it (kill -9, a crash, a reboot).
    for column, kind in (("heartbeat_at", "TIMESTAMPTZ"), ("heartbeat_pid", "BIGINT"),
                         ("heartbeat_host", "VARCHAR")):
        con.execute(f"ALTER TABLE runs ADD COLUMN {column} {kind}")


@STEPS()
def m011_run_aggregates(con: duckdb.DuckDBPyConnection) -> None:
    # Per-run aggregates, written once when a run ends (and lazily for runs without one),
    # so the dashboard reads a few thousand rows instead of every request of every run.
    # Counts, token and money sums are exact; latency distributions are DDSketch-style
    # log-bucket counts (relative error <= sketch_alpha), mergeable across runs by adding.
    # Any write to a run's request rows deletes its aggregates (bench.store).
    con.execute(
        """
        CREATE TABLE run_aggregate_builds (
            run_id VARCHAR PRIMARY KEY,      -- the run these aggregates summarize
            built_at TIMESTAMPTZ NOT NULL,   -- when they were computed
            rows BIGINT NOT NULL,            -- non-warm-up request rows summarized
            sketch_alpha DOUBLE NOT NULL,    -- relative error bound of the latency sketches
            version INTEGER NOT NULL         -- definition version; another one is rebuilt
        )
        """
    )
    con.execute(
        """
        CREATE TABLE run_aggregates (
            run_id VARCHAR NOT NULL,
            model VARCHAR,
            provider_variant VARCHAR,
            endpoint VARCHAR,
            provider VARCHAR,                -- served provider, as in requests
            outcome VARCHAR,                 -- one row per outcome class
            n BIGINT NOT NULL,               -- non-warm-up rows
            n_billed BIGINT NOT NULL,        -- rows with cost_usd
            billed_usd DECIMAL(38,18),       -- sum(cost_usd), NULL when none
            n_list BIGINT NOT NULL,          -- rows with list_cost_usd
            list_usd DECIMAL(38,18),         -- sum(list_cost_usd), NULL when none
            prompt_tokens BIGINT,            -- sum, NULL when none
            completion_tokens BIGINT,        -- sum, NULL when none
            n_checked BIGINT NOT NULL,       -- ok rows with a check verdict
            n_passed BIGINT NOT NULL,        -- ok rows that passed
            token_sources VARCHAR[],         -- distinct token_source values
            case_ids VARCHAR[]               -- distinct case ids
        )
        """
    )
    con.execute(
        """
        CREATE TABLE run_aggregate_bins (
            run_id VARCHAR NOT NULL,
            model VARCHAR,
            provider_variant VARCHAR,
            endpoint VARCHAR,
            provider VARCHAR,
            metric VARCHAR NOT NULL,         -- ttft_ms | e2e_ms | decode_tps | tpot_ms
            bin INTEGER,                     -- ceil(ln(x) / ln(gamma)); NULL for x <= 0
            n BIGINT NOT NULL                -- ok, non-warm-up rows whose value fell in the bin
        )
        """
    )


@STEPS()
def m012_sweeps(con: duckdb.DuckDBPyConnection) -> None:
    # A sweep (``orbench sweep``) runs one suite at several load levels, one run per level.
    # The runs keep their own rows and money; the sweep row keeps what a resume needs (the
    # levels, SLOs and step size as asked) and each run says which sweep and level it was.
    con.execute(
        """
        CREATE TABLE sweeps (
            sweep_id VARCHAR PRIMARY KEY,
            created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
            finished_at TIMESTAMPTZ,
            suite_path VARCHAR,
            axis VARCHAR NOT NULL,
            levels DOUBLE[] NOT NULL,
            settings VARCHAR,
            status VARCHAR NOT NULL DEFAULT 'running',
            status_reason VARCHAR
        )
        """
    )
    con.execute("ALTER TABLE runs ADD COLUMN sweep_id VARCHAR")
    con.execute("ALTER TABLE runs ADD COLUMN sweep_level DOUBLE")


# requests_current as of m013: m009's view with the is_probe column (frozen like m009's).
_M013_REQUEST_COLUMNS = (*_M009_REQUEST_COLUMNS, "is_probe")
_M013_PLANNED = {**_M009_PLANNED, "is_probe": "coalesce(CAST(p.e->>'is_probe' AS BOOLEAN), false)"}


@STEPS()
def m013_request_is_probe(con: duckdb.DuckDBPyConnection) -> None:
    # Synthetic prompts are sized per model x provider by two cheap probe requests
    # (bench.run.synthetic). Probes are real, paid sends, so they are rows like any other; they
    # are also flagged is_warmup (every statistic already leaves warm-ups out), and this
    # says which warm-ups were probes. superseded_requests keeps every requests column, and
    # requests_current (m009) is replaced by the same view with the new column.
    for table in ("requests", "superseded_requests"):
        con.execute(f"ALTER TABLE {table} ADD COLUMN is_probe BOOLEAN DEFAULT false")
    cols = ", ".join(f'r."{c}"' for c in _M013_REQUEST_COLUMNS)
    planned = ", ".join(f'{_M013_PLANNED.get(c, "NULL")} AS "{c}"' for c in _M013_REQUEST_COLUMNS)
    con.execute(
        f"""
        CREATE OR REPLACE VIEW requests_current AS
        SELECT {cols},
            true AS recorded,
            coalesce(r.request_idx >= 0 AND r.request_idx < u.planned AND u.plan IS NOT NULL, false) AS in_plan,
            coalesce(s.n, 0) AS superseded_sends,
            (r.outcome IN {_M009_FINISHED} OR (r.outcome = 'cancelled' AND r.token_source = 'usage'))
                AS is_settled,
            NOT r.is_warmup AND r.outcome = 'ok' AS in_latency_stats
        FROM requests AS r
        LEFT JOIN runs AS u ON u.run_id = r.run_id
        LEFT JOIN (SELECT run_id, request_idx, count(*) AS n FROM superseded_requests GROUP BY run_id, request_idx)
            AS s ON s.run_id = r.run_id AND s.request_idx = r.request_idx
        UNION ALL
        SELECT {planned},
            false AS recorded, true AS in_plan, coalesce(s.n, 0) AS superseded_sends,
            false AS is_settled, false AS in_latency_stats
        FROM (
            SELECT run_id, unnest(CAST(plan AS JSON[])) AS e FROM runs AS u
            WHERE plan IS NOT NULL
                AND planned > (SELECT count(*) FROM requests AS c WHERE c.run_id = u.run_id)
        ) AS p
        ANTI JOIN requests AS q ON q.run_id = p.run_id AND q.request_idx = CAST(p.e->>'request_idx' AS BIGINT)
        LEFT JOIN (SELECT run_id, request_idx, count(*) AS n FROM superseded_requests GROUP BY run_id, request_idx)
            AS s ON s.run_id = p.run_id AND s.request_idx = CAST(p.e->>'request_idx' AS BIGINT)
        """
    )


@STEPS()
def m014_aggregate_summary_fields(con: duckdb.DuckDBPyConnection) -> None:
    # The one summary (bench.results.summary) reads every field from the per-run aggregates too, so a
    # large dashboard selection shows what `orbench show` shows for the same rows: billed cached
    # tokens, 429s retried away and ok requests that paid a connect, per outcome class. Older
    # aggregates carry another definition version and are rebuilt on the next big read.
    for column in ("cached_tokens", "retries_429", "n_cold"):
        con.execute(f"ALTER TABLE run_aggregates ADD COLUMN {column} BIGINT")


def _requests_current_view(con: duckdb.DuckDBPyConnection, columns: tuple[str, ...], planned: dict[str, str],
                           cache_hit: bool) -> None:
    """requests_current over ``columns`` (m015, m017): m013's view, frozen here so later steps
    never change what an applied step built. ``cache_hit`` adds m017's derived flag."""
    cols = ", ".join(f'r."{c}"' for c in columns)
    from_plan = ", ".join(f'{planned.get(c, "NULL")} AS "{c}"' for c in columns)
    hit = ", r.cached_tokens > 0 AS cache_hit" if cache_hit else ""
    no_hit = ", CAST(NULL AS BOOLEAN) AS cache_hit" if cache_hit else ""
    con.execute(
        f"""
        CREATE OR REPLACE VIEW requests_current AS
        SELECT {cols},
            true AS recorded,
            coalesce(r.request_idx >= 0 AND r.request_idx < u.planned AND u.plan IS NOT NULL, false) AS in_plan,
            coalesce(s.n, 0) AS superseded_sends,
            (r.outcome IN {_M009_FINISHED} OR (r.outcome = 'cancelled' AND r.token_source = 'usage'))
                AS is_settled,
            NOT r.is_warmup AND r.outcome = 'ok' AS in_latency_stats{hit}
        FROM requests AS r
        LEFT JOIN runs AS u ON u.run_id = r.run_id
        LEFT JOIN (SELECT run_id, request_idx, count(*) AS n FROM superseded_requests GROUP BY run_id, request_idx)
            AS s ON s.run_id = r.run_id AND s.request_idx = r.request_idx
        UNION ALL
        SELECT {from_plan},
            false AS recorded, true AS in_plan, coalesce(s.n, 0) AS superseded_sends,
            false AS is_settled, false AS in_latency_stats{no_hit}
        FROM (
            SELECT run_id, unnest(CAST(plan AS JSON[])) AS e FROM runs AS u
            WHERE plan IS NOT NULL
                AND planned > (SELECT count(*) FROM requests AS c WHERE c.run_id = u.run_id)
        ) AS p
        ANTI JOIN requests AS q ON q.run_id = p.run_id AND q.request_idx = CAST(p.e->>'request_idx' AS BIGINT)
        LEFT JOIN (SELECT run_id, request_idx, count(*) AS n FROM superseded_requests GROUP BY run_id, request_idx)
            AS s ON s.run_id = p.run_id AND s.request_idx = CAST(p.e->>'request_idx' AS BIGINT)
        """
    )


# requests_current as of m015: m013's view with the retry_reasons column (frozen like m009's).
_M015_REQUEST_COLUMNS = (*_M013_REQUEST_COLUMNS, "retry_reasons")


@STEPS()
def m015_request_retry_reasons(con: duckdb.DuckDBPyConnection) -> None:
    # ``attempts = 2`` said a request was sent twice but not why. Each row now says why each
    # earlier send was repeated (bench.records.RETRY_REASONS): a 429, a 5xx, or a pooled
    # connection the server had closed (resent at once, no backoff; not a retry when the
    # server cannot have read it). The summary counts the requests that needed a fresh
    # connection from it (``n_fresh`` in the per-run aggregates, so both paths agree).
    # requests_current (m013) is replaced by the same view with it.
    for table in ("requests", "superseded_requests"):
        con.execute(f"ALTER TABLE {table} ADD COLUMN retry_reasons VARCHAR")
    con.execute("ALTER TABLE run_aggregates ADD COLUMN n_fresh BIGINT")
    # The catalog's web_search price was parsed but never snapshotted: one list of price fields now
    # (bench.records.PRICE_KEYS) for the parser and the snapshot.
    con.execute("ALTER TABLE catalog_prices ADD COLUMN web_search DECIMAL(38,18)")
    _requests_current_view(con, _M015_REQUEST_COLUMNS, _M013_PLANNED, cache_hit=False)


@STEPS()
def m016_team_store(con: duckdb.DuckDBPyConnection) -> None:
    # The team store (bench.store.team). Every run says where it ran (``--origin`` /
    # ORBENCH_ORIGIN / the hostname) so the same model measured from two regions can be told
    # apart. ``team_seq`` marks a run pulled from a team's log (the sequence of its newest
    # state entry): NULL is a run measured here, the only kind this machine pushes and the
    # kind a pull never overwrites. The two tables are the push and pull bookkeeping per team
    # ("host:port/db", never a user or password): how much of each run's journal and which
    # other entries are on the server, and the last log sequence pulled.
    con.execute("ALTER TABLE runs ADD COLUMN origin VARCHAR")
    con.execute("ALTER TABLE runs ADD COLUMN team_seq BIGINT")
    con.execute(
        """
        CREATE TABLE _orbench_team_pushed (
            team VARCHAR NOT NULL,            -- host:port/db of the team store
            run_id VARCHAR NOT NULL,
            journal_bytes BIGINT NOT NULL,    -- every complete journal line before this offset is on the server
            pushed_at TIMESTAMPTZ NOT NULL
        )
        """
    )
    con.execute(
        """
        CREATE TABLE _orbench_team_sent (
            team VARCHAR NOT NULL,
            entry_key VARCHAR NOT NULL,       -- a run state, sweep, catalog or credit entry on the server
            sent_at TIMESTAMPTZ NOT NULL
        )
        """
    )
    con.execute(
        """
        CREATE TABLE _orbench_team_pulled (
            team VARCHAR NOT NULL,
            last_seq BIGINT NOT NULL,         -- every log entry up to this sequence is merged here
            pulled_at TIMESTAMPTZ NOT NULL
        )
        """
    )


# requests_current as of m017: m015's view with the conversation columns and the cache-hit flag.
_M017_REQUEST_COLUMNS = (*_M015_REQUEST_COLUMNS, "conversation_id", "turn")
_M017_PLANNED = {**_M013_PLANNED, "conversation_id": "p.e->'conversation'->>'id'",
                 "turn": "CAST(p.e->'conversation'->>'turn' AS BIGINT)"}


@STEPS()
def m017_conversations(con: duckdb.DuckDBPyConnection) -> None:
    # Conversations (bench.run.conversation): every turn is a request row, and the conversation
    # metrics (cost per conversation, cache hit rate and TTFT by turn, served-by switches) group
    # them by conversation and order them by turn. A planned turn with no row yet gets both from
    # the plan JSON. ``cache_hit`` (cached_tokens > 0, METRICS.md) is derived in the view, never
    # stored, so it cannot disagree with the usage it comes from; NULL when usage had no count.
    for table in ("requests", "superseded_requests"):
        con.execute(f"ALTER TABLE {table} ADD COLUMN conversation_id VARCHAR")
        con.execute(f"ALTER TABLE {table} ADD COLUMN turn BIGINT")
    _requests_current_view(con, _M017_REQUEST_COLUMNS, _M017_PLANNED, cache_hit=True)


@STEPS()
def m018_monitors(con: duckdb.DuckDBPyConnection) -> None:
    # A monitor (``orbench monitor``) runs one suite on a schedule; each tick is an ordinary run
    # tagged with the monitor's name and tick number (runs.monitor, runs.monitor_tick), so every
    # view of runs still works. The schedule and the incidents live here, not in the process, so
    # a restart neither repeats nor skips a tick and an incident opens and recovers once.
    # The alert webhook URL is a secret: no column holds it.
    con.execute(
        """
        CREATE TABLE monitors (
            name VARCHAR PRIMARY KEY,         -- the monitor's name (also on its runs)
            suite_path VARCHAR NOT NULL,      -- the suite each tick runs
            options JSON,                     -- run options (models, providers, concurrency, ...)
            every_s DOUBLE NOT NULL,          -- the period between ticks
            jitter DOUBLE NOT NULL,           -- +- share of the period, drawn per tick
            budget_per_day_usd DECIMAL(38,18),  -- a tick that would exceed it is skipped
            created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
            next_tick_at TIMESTAMPTZ          -- when the next tick is due (what a restart waits for)
        )
        """
    )
    con.execute(
        """
        CREATE TABLE monitor_ticks (
            monitor VARCHAR NOT NULL,
            tick INTEGER NOT NULL,            -- numbered from 1 within a monitor
            status VARCHAR NOT NULL,          -- running | finished | skipped | failed | cancelled
            run_id VARCHAR,                   -- the tick's run (NULL when skipped)
            started_at TIMESTAMPTZ NOT NULL DEFAULT now(),
            finished_at TIMESTAMPTZ,
            note VARCHAR,                     -- why it was skipped or failed
            PRIMARY KEY (monitor, tick)
        )
        """
    )
    con.execute(
        """
        CREATE TABLE monitor_incidents (
            incident_id VARCHAR PRIMARY KEY,
            monitor VARCHAR NOT NULL,
            kind VARCHAR NOT NULL,            -- latency | outage | quality | catalog | routing
            model VARCHAR,
            provider VARCHAR,
            metric VARCHAR,                   -- which figure (ttft_ms, error_rate, prompt price, ...)
            opened_tick INTEGER NOT NULL,
            recovered_tick INTEGER,           -- NULL while open
            opened_at TIMESTAMPTZ NOT NULL,
            recovered_at TIMESTAMPTZ,
            evidence JSON,                    -- the numbers that opened it
            recovery_evidence JSON            -- the numbers that closed it
        )
        """
    )
    con.execute(
        """
        CREATE TABLE alert_deliveries (
            incident_id VARCHAR NOT NULL,
            event VARCHAR NOT NULL,           -- open | recovery
            attempt INTEGER NOT NULL,         -- 1, 2, ...: retries are recorded too
            sent_at TIMESTAMPTZ NOT NULL,   -- when the attempt was made
            status_code INTEGER,              -- the receiver's HTTP status (NULL: no answer)
            error VARCHAR,                    -- why it failed (never the URL)
            delivered BOOLEAN NOT NULL
        )
        """
    )
    con.execute(
        """
        CREATE TABLE monitor_catalog (
            monitor VARCHAR NOT NULL,
            tick INTEGER NOT NULL,
            model VARCHAR NOT NULL,
            provider VARCHAR NOT NULL,        -- the endpoint's provider name
            prompt DECIMAL(38,18),            -- USD per token, from the API's strings
            completion DECIMAL(38,18),
            expiration_date VARCHAR           -- the model's announced deprecation date, if any
        )
        """
    )
    con.execute("ALTER TABLE runs ADD COLUMN monitor VARCHAR")
    con.execute("ALTER TABLE runs ADD COLUMN monitor_tick INTEGER")


@STEPS()
def m019_pulled_incidents(con: duckdb.DuckDBPyConnection) -> None:
    """Incidents pulled from the team store, next to this machine's own: ``origin`` names the machine
    whose monitor recorded them (NULL: this machine's; its monitors decide on those only)."""
    con.execute("ALTER TABLE monitor_incidents ADD COLUMN origin VARCHAR")


MIGRATIONS: list[Migration] = STEPS.steps


def migration_names() -> list[str]:
    return STEPS.names()


def applied_migrations(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Names recorded in the file, in order; [] for a blank file."""
    return STEPS.backend.applied(con)


def check_not_newer(applied: list[str], where: Path | str) -> None:
    """Refuse a file that names steps this code does not know."""
    STEPS.check_not_newer(applied, where)


def migrate(con: duckdb.DuckDBPyConnection, where: Path | str = "database") -> list[str]:
    """Apply the missing steps in order; return the names applied now."""
    return STEPS.apply(con, where)
