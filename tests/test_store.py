"""Store, migrations and journal against real DuckDB files in tmp_path (no mocks)."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import duckdb
import polars as pl
import pytest

from bench.errors import ConfigError, SchemaTooNew, StoreBusy
from bench.records import REQUEST_COLUMNS, RequestRow
from bench.results import summary
from bench.store import journal
from bench.store.migrations import MIGRATIONS_TABLE, migration_names
from bench.store.store import Store
from tests._rows import journal_rows, write_rows

CONFIG = {"autoinstall_known_extensions": False, "autoload_known_extensions": False}



def append_rows(j: journal.Journal, rows: list[RequestRow]) -> None:
    """Journal rows as the runner does (one line each, ``encode_row``), then fsync."""
    for r in rows:
        j.write_line(journal.encode_row(r))
    j.sync()

def row(run_id: str = "run-a", idx: int = 0, **kw: object) -> RequestRow:
    base: dict[str, Any] = dict(
        run_id=run_id, request_idx=idx, model="acme/alpha", provider_variant="default",
        endpoint="openrouter", case_id="c1", repeat=0, is_warmup=False, outcome="ok",
    )  # fmt: skip
    base.update(kw)
    return RequestRow(**base)


def full_row() -> RequestRow:
    """Every field set to a non-default value."""
    return RequestRow(
        run_id="run-full", request_idx=7, model="acme/alpha", provider_variant="fast",
        endpoint="local", case_id="case-9", repeat=2, is_warmup=True, outcome="provider_error",
        served_model="acme/alpha-2026-01", provider="Prov", http_status=200, attempts=3,
        started_at="2026-03-04T05:06:07.123456+00:00", t_start_ms=12.5, ttfb_ms=101.25,
        ttft_ms=150.5, ttfa_ms=175.75, tpot_ms=12.125, e2e_ms=900.0625, done_ms=905.5,
        decode_tps=80.5, e2e_tps=55.25, chunk_gaps_ms=[0.5, 1.25, 30.0], prompt_tokens=123,
        completion_tokens=456, reasoning_tokens=78, cached_tokens=9, cache_write_tokens=10,
        token_source="usage", cost_usd=Decimal("0.000123456789012345"),
        list_cost_usd=Decimal("12345678901234567890.123456789012345678"), cost_source="reported",
        max_cost_usd=Decimal("0.5"), generation_id="gen-1", finish_reason="stop",
        native_finish_reason="end_turn", error="boom", error_code="502",
        server_latency_ms=33.5, server_generation_ms=44.5, output_text="héllo\nworld \"q\"",
        tool_calls_json='[{"name": "f"}]', passed=False, score=0.25, check_detail='[{"ok": false}]',
        session=3,
    )  # fmt: skip


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(tmp_path / "orbench.duckdb", write_timeout_s=5, read_timeout_s=1)
    s.init()
    return s


def count(store: Store, run_id: str) -> int:
    return store.requests_frame(run_id).height


# -- migrations -----------------------------------------------------------------


def test_migrations_from_blank_apply_every_step(tmp_path: Path) -> None:
    s = Store(tmp_path / "db.duckdb")
    assert s.init() == migration_names()
    tables = set(s.query("SELECT table_name FROM information_schema.tables")["table_name"])
    expected = {"runs", "requests", "catalog_snapshots", "catalog_prices", "credit_snapshots"}
    assert expected | {MIGRATIONS_TABLE, "_orbench_journal"} <= tables


def test_init_twice_applies_nothing_and_keeps_data(store: Store) -> None:
    write_rows(store, [row()])
    assert Store(store.path).init() == []
    assert count(store, "run-a") == 1


def test_migration_names_are_unique_and_increasing() -> None:
    names = migration_names()
    assert names == sorted(set(names))
    numbers = [int(n[1:4]) for n in names]
    assert all(n[0] == "m" and n[4] == "_" for n in names)
    assert numbers == list(range(1, len(numbers) + 1))  # no gap: a step is never renumbered once released


def test_init_refuses_a_file_from_a_newer_orbench(store: Store) -> None:
    con = duckdb.connect(str(store.path), config=CONFIG)
    con.execute(f"INSERT INTO {MIGRATIONS_TABLE} VALUES ('m999_future', now())").fetchall()
    con.close()
    with pytest.raises(SchemaTooNew) as err:
        Store(store.path).init()
    message = str(err.value)
    assert "newer orbench (migration m999_future); upgrade orbench" in message
    assert "\n" not in message


def test_requests_table_columns_are_exactly_request_row_fields(store: Store) -> None:
    cols = store.query(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'requests' "
        "ORDER BY ordinal_position"
    )["column_name"].to_list()
    assert cols == REQUEST_COLUMNS


# -- write path ----------------------------------------------------------------------


def test_every_request_column_round_trips(store: Store) -> None:
    original = full_row()
    write_rows(store, [original])
    got = store.requests_frame("run-full").row(0, named=True)
    for name, value in dataclasses.asdict(original).items():
        if name == "started_at":
            assert got[name] == datetime.fromisoformat(value), name
        else:
            assert got[name] == value and type(got[name]) is type(value), name
    assert got["list_cost_usd"] == Decimal("12345678901234567890.123456789012345678")


def test_missing_values_stay_null_not_zero(store: Store) -> None:
    write_rows(store, [row(outcome=None)])
    got = store.requests_frame("run-a").row(0, named=True)
    optional = [f.name for f in dataclasses.fields(RequestRow) if f.default is None]
    assert all(got[name] is None for name in optional)


def test_non_finite_floats_are_stored_as_null(store: Store) -> None:
    write_rows(store, [row(ttft_ms=float("nan"), e2e_ms=float("inf"), tpot_ms=3.0)])
    got = store.requests_frame("run-a").row(0, named=True)
    assert (got["ttft_ms"], got["e2e_ms"], got["tpot_ms"]) == (None, None, 3.0)


def test_money_beyond_18_places_is_rounded_not_floated(store: Store) -> None:
    write_rows(store, [row(cost_usd=Decimal("0.0000001234567890123456789"))])
    got = store.requests_frame("run-a")["cost_usd"].item()
    assert got == Decimal("0.000000123456789012")


def test_journaling_rows_twice_never_duplicates_a_key(store: Store) -> None:
    rows = [row(idx=i) for i in range(5)]
    assert write_rows(store, rows + [row(idx=0)]) == 5  # a duplicate inside the batch too
    assert write_rows(store, rows) == 0
    frame = store.requests_frame("run-a")
    assert frame["request_idx"].to_list() == [0, 1, 2, 3, 4]


def test_resumed_result_replaces_only_an_unfinished_row(store: Store) -> None:
    write_rows(store, [row(idx=0, outcome="cancelled"), row(idx=1, outcome="ok", ttft_ms=1.0)])
    write_rows(store,
        [row(idx=0, outcome="ok", session=1, ttft_ms=2.0), row(idx=1, outcome="timeout", session=1)]
    )
    got = {r["request_idx"]: r for r in store.requests_frame("run-a").to_dicts()}
    assert (got[0]["outcome"], got[0]["session"], got[0]["ttft_ms"]) == ("ok", 1, 2.0)
    assert (got[1]["outcome"], got[1]["session"]) == ("ok", 0)  # a final row is never replaced


def test_ingest_keeps_the_final_row_of_a_resumed_request(tmp_path: Path) -> None:
    db = tmp_path / "orbench.duckdb"
    crashed = journal.Journal(journal.journal_path(db.parent / "journal" / db.stem, "run-a"))
    append_rows(crashed, [row(idx=0, outcome="cancelled"), row(idx=1, outcome="ok", ttft_ms=1.0)])
    append_rows(crashed, [row(idx=0, outcome="ok", session=1), row(idx=1, outcome="not_run", session=1)])
    crashed.close()
    store = Store(db)
    store.init()
    got = {r["request_idx"]: (r["outcome"], r["session"]) for r in store.requests_frame("run-a").to_dicts()}
    assert got == {0: ("ok", 1), 1: ("ok", 0)}


def test_journal_lines_hold_money_as_text_and_lists(store: Store) -> None:
    write_rows(store, [full_row()])
    lines = (store.journal_dir / "run-full.jsonl").read_text().splitlines()
    record = json.loads(lines[0])
    assert record["cost_usd"] == "0.000123456789012345"
    assert record["chunk_gaps_ms"] == [0.5, 1.25, 30.0]
    # the runner's line leaves out what is None; reading it back gives every column
    assert set(record) == {k for k, v in dataclasses.asdict(full_row()).items() if v is not None}
    frame, _, bad = journal.read_journal(store.journal_dir / "run-full.jsonl")
    assert bad == 0 and frame.columns == REQUEST_COLUMNS
    assert frame["cost_usd"].item() == "0.000123456789012345"  # exact text


def test_busy_database_keeps_rows_in_the_journal_until_the_next_ingest(store: Store) -> None:
    writer = Store(store.path, write_timeout_s=0.3)
    holder = duckdb.connect(str(store.path), read_only=True, config=CONFIG)
    try:
        journal_rows(writer, [row(idx=i) for i in range(3)])
        with pytest.raises(StoreBusy):  # the sink keeps going; the rows wait in the journal
            writer.ingest_journal("run-a")
        assert writer.finished_keys("run-a") == {0, 1, 2}  # durable already
    finally:
        holder.close()
    assert writer.ingest_journal("run-a") == 3
    assert count(store, "run-a") == 3


def test_next_ingest_catches_up_rows_left_in_the_journal(store: Store) -> None:
    writer = Store(store.path, write_timeout_s=0.3)
    write_rows(writer, [row(idx=0)])
    holder = duckdb.connect(str(store.path), read_only=True, config=CONFIG)
    try:
        journal_rows(writer, [row(idx=1), row(idx=2)])
        with pytest.raises(StoreBusy):  # busy: journal only
            writer.ingest_journal("run-a")
    finally:
        holder.close()
    assert write_rows(writer, [row(idx=3)]) == 3  # its own row plus the two left behind
    assert store.requests_frame("run-a")["request_idx"].to_list() == [0, 1, 2, 3]


# -- journal recovery ------------------------------------------------------------------


def test_ingest_recovers_rows_journaled_before_a_crash(tmp_path: Path) -> None:
    db = tmp_path / "orbench.duckdb"
    Store(db).init()
    crashed = journal.Journal(journal.journal_path(db.parent / "journal" / db.stem, "run-a"))
    append_rows(crashed, [row(idx=i) for i in range(10)])  # journaled, never inserted
    crashed.close()
    with open(crashed.path, "ab") as fh:  # and a line torn by kill -9
        fh.write(journal.encode_row(row(idx=99))[:40])
    recovered = Store(db)
    recovered.init()  # the next open recovers
    assert sorted(recovered.requests_frame("run-a")["request_idx"]) == list(range(10))
    assert recovered.ingest_journal() == 0
    assert recovered.ingest_journal("run-a") == 0
    assert count(recovered, "run-a") == 10


def test_ingest_twice_from_scratch_does_not_duplicate(store: Store) -> None:
    write_rows(store, [row(idx=i) for i in range(4)])
    con = duckdb.connect(str(store.path), config=CONFIG)
    con.execute("DELETE FROM _orbench_journal").fetchall()  # forget all progress
    con.close()
    assert store.ingest_journal() == 0
    assert store.ingest_journal() == 0
    assert count(store, "run-a") == 4


def test_resumed_journal_drops_the_torn_tail_before_appending(tmp_path: Path) -> None:
    path = journal.journal_path(tmp_path, "run-a")
    first = journal.Journal(path)
    append_rows(first, [row(idx=0)])
    first.close()
    with open(path, "ab") as fh:
        fh.write(b'{"run_id": "run-a", "request_')
    again = journal.Journal(path)
    append_rows(again, [row(idx=1)])
    again.close()
    assert [r.request_idx for r in journal.read_rows(path)] == [0, 1]


def test_two_phase_write_journals_then_inserts(store: Store) -> None:
    rows = [row(idx=i) for i in range(3)]
    journal_rows(store, rows)
    assert store.finished_keys("run-a") == {0, 1, 2}  # from the journal alone
    assert store.insert_rows(rows) == 3
    assert store.insert_rows(rows) == 0
    assert count(store, "run-a") == 3


def test_finished_keys_skip_rerunnable_outcomes(store: Store) -> None:
    outcomes = ["ok", "timeout", "cancelled", "not_run", "budget_skipped", "skipped", None]
    write_rows(store, [row(idx=i, outcome=o) for i, o in enumerate(outcomes)])
    journal_rows(store, [row(idx=20, outcome="rate_limited"), row(idx=21, outcome="cancelled")])
    assert store.finished_keys("run-a") == {0, 1, 20}


def test_run_spend_and_next_session(store: Store) -> None:
    write_rows(store,
        [
            row(idx=0, cost_usd=Decimal("0.1"), list_cost_usd=Decimal("0.2")),
            row(idx=1, list_cost_usd=Decimal("0.02")),
            row(idx=2, is_warmup=True, cost_usd=Decimal("0.003"), session=2),
        ]
    )
    assert store.run_spend("run-a") == Decimal("0.123")
    assert store.next_session("run-a") == 3
    assert store.next_session("other") == 1


# -- runs ------------------------------------------------------------------------------


def test_run_settings_are_stored_without_keys(store: Store) -> None:
    rid = store.create_run(
        "run-x",
        settings={
            "api_key": "sk-or-secret", "base_url": "https://user:pw@example.com/v1?key=zz&v=1",
            "concurrency": 4, "budget": Decimal("1.5"), "nested": {"token": "t", "max_tokens": 9},
        },
    )  # fmt: skip
    run = store.get_run(rid)
    assert run is not None
    assert run.settings == {
        "base_url": "https://example.com/v1?v=1", "concurrency": 4, "budget": "1.5",
        "nested": {"max_tokens": 9},
    }  # fmt: skip
    raw = store.path.read_bytes() + b"".join(p.read_bytes() for p in store.path.parent.glob("*.wal"))
    assert b"sk-or-secret" not in raw and b"pw@" not in raw


def test_create_run_stores_plan_and_rejects_duplicates(store: Store) -> None:
    plan = [
        {"request_idx": i, "model": "m", "provider_variant": "default", "endpoint": "openrouter",
         "case_id": "c", "repeat": i, "is_warmup": i == 0}
        for i in range(3)
    ]  # fmt: skip
    rid = store.create_run(name="n", suite_name="s", plan=plan, simulated=True)
    run = store.get_run(rid)
    assert run is not None and run["plan"] == plan and run.planned == 3 and run.simulated
    assert run.status == "planned" and run.get("suite_name") == "s"
    with pytest.raises(ConfigError):
        store.create_run(rid)


def test_update_run_status_stamps_times(store: Store) -> None:
    rid = store.create_run("run-u")
    store.update_run(rid, status="running")
    store.update_run(rid, status="finished", status_reason="done")
    run = store.get_run(rid)
    assert run is not None and run.status == "finished" and run.status_reason == "done"
    assert run.started_at is not None and run.finished_at is not None
    with pytest.raises(ConfigError):
        store.update_run(rid, status="exploded")
    with pytest.raises(ConfigError):
        store.update_run("nope", status="failed")
    with pytest.raises(TypeError):
        store.update_run(rid, colour="red")


def test_resolve_run_latest_full_id_and_prefix(store: Store) -> None:
    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    for i, rid in enumerate(["abc-1", "abc-2", "xyz-1"]):
        store.create_run(rid, started_at=t0 + timedelta(hours=[2, 1, 0][i]))
    assert store.resolve_run("latest") == "abc-1"
    assert store.latest_run_id() == "abc-1"
    assert store.resolve_run("abc-2") == "abc-2"
    assert store.resolve_run("xy") == "xyz-1"
    with pytest.raises(ConfigError, match="ambiguous"):
        store.resolve_run("abc")
    with pytest.raises(ConfigError, match="no run matches"):
        store.resolve_run("nope")


def test_resolve_latest_without_runs_is_a_config_error(store: Store) -> None:
    with pytest.raises(ConfigError, match="no runs"):
        store.resolve_run("latest")


def test_list_runs_counts_rows(store: Store) -> None:
    store.create_run("run-a")
    write_rows(store, [row(idx=0, cost_usd=Decimal("0.25")), row(idx=1, outcome="timeout")])
    got = store.list_runs().row(0, named=True)
    assert (got["run_id"], got["n_rows"], got["n_ok"], got["cost_usd"]) == ("run-a", 2, 1, Decimal("0.25"))
    assert "plan" not in store.list_runs().columns


# -- readers ------------------------------------------------------------------------


def test_missing_file_reads_as_empty_frames_with_columns(tmp_path: Path) -> None:
    s = Store(tmp_path / "absent.duckdb")
    assert s.requests_frame("x").columns == REQUEST_COLUMNS
    assert s.list_runs().is_empty() and "run_id" in s.list_runs().columns
    assert summary.run_summary(s, "x") == [] and "ttft_p99_ms" in summary.frame([]).columns
    assert s.get_run("x") is None and s.latest_run_id() is None
    assert s.finished_keys("x") == set()
    assert not s.path.exists()


def test_file_not_yet_migrated_reads_as_empty(tmp_path: Path) -> None:
    path = tmp_path / "blank.duckdb"
    duckdb.connect(str(path), config=CONFIG).close()
    assert Store(path).list_runs().is_empty()


def test_reader_maps_a_persistent_lock_to_store_busy(store: Store) -> None:
    holder = duckdb.connect(str(store.path), config=CONFIG)  # a read-write holder
    try:
        with pytest.raises(StoreBusy):
            Store(store.path, read_timeout_s=0.2).list_runs()
    finally:
        holder.close()


def test_query_is_read_only(store: Store) -> None:
    with pytest.raises(duckdb.Error):
        store.query("DELETE FROM runs")
    assert store.query("SELECT ? + 1 AS x", [41])["x"].item() == 42


def test_requests_frame_filters(store: Store) -> None:
    write_rows(store, [row(idx=0), row(idx=1, is_warmup=True), row(idx=2, outcome="timeout")])
    assert store.requests_frame("run-a", include_warmup=False)["request_idx"].to_list() == [0, 2]
    assert store.requests_frame("run-a", outcomes=["timeout"])["request_idx"].to_list() == [2]
    assert store.requests_frame("run-a", columns=["request_idx"]).columns == ["request_idx"]
    with pytest.raises(ConfigError):
        store.requests_frame("run-a", columns=["request_idx; DROP TABLE runs"])


# -- catalog and credits ----------------------------------------------------------------


def test_catalog_snapshot_keeps_exact_prices(store: Store) -> None:
    pricing = SimpleNamespace(
        prompt=Decimal("0.000000075"), completion=Decimal("0.0000003"), request=Decimal("0"),
        image=None, internal_reasoning=Decimal("0.0000003"), input_cache_read=Decimal("0.00000001875"),
        input_cache_write=None,
    )  # fmt: skip
    models = [
        SimpleNamespace(id="acme/alpha", canonical_slug="acme/alpha-2026", pricing=pricing,
                        variable=False, context_length=131072),
        SimpleNamespace(id="openrouter/auto", canonical_slug=None,
                        pricing=SimpleNamespace(prompt=Decimal("-1"), variable=True)),
    ]  # fmt: skip
    sid = store.save_catalog_snapshot(models, "https://k:secret@openrouter.ai/api/v1", simulated=True)
    prices = store.catalog_prices(sid)
    alpha = prices.filter(pl.col("model_id") == "acme/alpha").row(0, named=True)
    assert alpha["prompt"] == Decimal("0.000000075") and alpha["input_cache_read"] == Decimal("0.00000001875")
    assert alpha["image"] is None and alpha["provider"] is None
    assert (alpha["variable"], alpha["context_length"]) == (False, 131072)
    auto = prices.filter(pl.col("model_id") == "openrouter/auto").row(0, named=True)
    assert auto["variable"] is True and auto["completion"] is None
    snap = store.catalog_snapshots().row(0, named=True)
    assert (snap["snapshot_id"], snap["model_count"], snap["simulated"]) == (sid, 2, True)
    assert snap["source"] == "https://openrouter.ai/api/v1"


def test_credit_snapshots_accumulate(store: Store) -> None:
    store.save_credit_snapshot(source="key", label="ci", limit_usd=Decimal("10"),
                               limit_remaining_usd=Decimal("9.123456789"),
                               usage_usd=Decimal("0.876543211"))  # fmt: skip
    store.save_credit_snapshot(source="credits", total_credits_usd=Decimal("50"),
                               total_usage_usd=Decimal("12.5"), run_id="run-a")  # fmt: skip
    frame = store.credit_snapshots()
    assert frame["source"].to_list() == ["key", "credits"]
    assert frame["limit_remaining_usd"][0] == Decimal("9.123456789")
    assert frame["total_usage_usd"][1] == Decimal("12.5") and frame["run_id"][1] == "run-a"
