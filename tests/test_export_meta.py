"""`orbench export` carries every measured column and the run's metadata; files are read back.

A real sandbox run into a real DuckDB file, exported through the CLI, then read with
polars, pyarrow and DuckDB as another tool would.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import duckdb
import polars as pl
import pyarrow.parquet as pq
import pytest

from bench.records import REQUEST_COLUMNS
from bench.results.export import EXPORT_COLUMNS, META_KEY
from bench.sandbox import start_sandbox
from bench.store.store import Store
from tests.conftest import invoke

MEASURED = ["chunk_gaps_ms", "t_start_ms", "done_ms", "connect_ms", "conn_reused", "ttft_ms", "spend_usd"]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """One sandbox run (2 models x 2 repeats + warm-ups), shared by the tests of this file."""
    tmp = tmp_path_factory.mktemp("export")
    suite = tmp / "e.yaml"
    suite.write_text("name: export-meta\nmodels: [openai/gpt-4o-mini, google/gemini-2.5-flash]\nrepeats: 2\n"
                     "defaults: {max_tokens: 16}\ncases:\n  - {id: a, prompt: Say hello.}\n")
    db = tmp / "o.duckdb"
    with start_sandbox(time_scale=0.05) as sb:
        code, out, err = invoke("run", str(suite), "--base-url", sb.base_url, "--db", str(db), "--json")
    assert code == 0, err
    return db, json.loads(out)["run_id"]


def _export(run: tuple[Path, str], *args: str) -> tuple[int, str, str]:
    db, run_id = run
    return invoke("export", run_id, "--db", str(db), *args)


def _stored(run: tuple[Path, str]) -> pl.DataFrame:
    db, run_id = run
    return Store(db).requests_frame(run_id, include_warmup=False)


def test_export_columns_are_every_request_column_once() -> None:
    assert sorted(EXPORT_COLUMNS) == sorted(REQUEST_COLUMNS)
    assert len(EXPORT_COLUMNS) == len(set(EXPORT_COLUMNS))


def test_parquet_carries_metadata_and_every_measured_column(run: tuple[Path, str], tmp_path: Path) -> None:
    out = tmp_path / "rows.parquet"
    code, _, err = _export(run, "--format", "parquet", "-o", str(out))
    assert code == 0, err
    meta = json.loads(pq.read_metadata(out).metadata[META_KEY.encode()])
    db, run_id = run
    stored_run = Store(db).get_run(run_id)
    assert meta["run_id"] == run_id and meta["suite_hash"] == stored_run.suite_hash
    assert meta["tool_version"] == stored_run.tool_version and meta["simulated"] is True
    assert meta["settings"] == stored_run.settings and meta["export"] == "requests" and meta["rows"] == 4
    assert not (tmp_path / "rows.parquet.meta.json").exists()  # Parquet holds it inside
    back = pl.read_parquet(out)
    assert set(REQUEST_COLUMNS) <= set(back.columns)
    stored = _stored(run)
    for col in MEASURED:
        assert back[col].to_list() == stored[col].to_list(), col
    assert all(g and all(isinstance(x, float) for x in g) for g in back["chunk_gaps_ms"].to_list())
    assert back["cost_usd"].to_list() == stored["cost_usd"].to_list()  # Decimal, exact
    assert isinstance(back["cost_usd"][0], Decimal)


def test_csv_file_gets_a_sidecar_and_reads_back(run: tuple[Path, str], tmp_path: Path) -> None:
    out = tmp_path / "rows.csv"
    code, _, err = _export(run, "--format", "csv", "-o", str(out))
    assert code == 0 and "rows.csv.meta.json" in err, err
    meta = json.loads((tmp_path / "rows.csv.meta.json").read_text())
    assert meta["run_id"] == run[1] and meta["format"] == "csv" and meta["suite_name"] == "export-meta"
    assert not out.read_text().startswith("#")  # no header block unless asked for
    back = pl.read_csv(out, infer_schema_length=None)
    stored = _stored(run)
    assert [json.loads(g) for g in back["chunk_gaps_ms"]] == stored["chunk_gaps_ms"].to_list()
    assert back["t_start_ms"].to_list() == pytest.approx(stored["t_start_ms"].to_list())
    assert back["done_ms"].to_list() == pytest.approx(stored["done_ms"].to_list())
    assert back["conn_reused"].to_list() == stored["conn_reused"].to_list()
    assert [Decimal(v) for v in back.cast({"cost_usd": pl.String})["cost_usd"]] == stored["cost_usd"].to_list()


def test_csv_header_block_holds_the_metadata_and_readers_skip_it(run: tuple[Path, str], tmp_path: Path) -> None:
    out = tmp_path / "h.csv"
    code, _, err = _export(run, "--format", "csv", "--csv-header", "-o", str(out))
    assert code == 0, err
    lines = out.read_text().splitlines()
    head = [line for line in lines if line.startswith("#")]
    assert lines[: len(head)] == head and lines[len(head)].startswith("run_id,")
    parsed = {k: json.loads(v) for k, v in (line[2:].split(": ", 1) for line in head)}
    sidecar = json.loads((tmp_path / "h.csv.meta.json").read_text())
    assert parsed == sidecar and parsed["run_id"] == run[1] and parsed["settings"]
    plain = pl.read_csv(out, comment_prefix="#", infer_schema_length=None)
    assert plain.height == 4 and plain["run_id"].to_list() == [run[1]] * 4
    con = duckdb.connect()
    n = con.execute("SELECT count(*) FROM read_csv(?, comment = '#', header = true)", [str(out)]).fetchone()
    con.close()
    assert n == (4,)


def test_json_and_summary_exports_get_sidecars_and_stdout_stays_pure(run: tuple[Path, str], tmp_path: Path) -> None:
    out = tmp_path / "s.json"
    code, _, err = _export(run, "--format", "json", "--summary", "-o", str(out))
    assert code == 0, err
    meta = json.loads((tmp_path / "s.json.meta.json").read_text())
    assert meta["export"] == "summary" and meta["rows"] == len(json.loads(out.read_text()))
    code, stdout, err = _export(run, "--format", "json")
    assert code == 0, err
    rows = json.loads(stdout)  # stdout is the data only: no metadata mixed in
    assert len(rows) == 4 and {"t_start_ms", "done_ms", "connect_ms", "chunk_gaps_ms"} <= set(rows[0])
    code, stdout, err = _export(run, "--format", "csv", "--csv-header")
    assert code == 0 and stdout.startswith(f"# run_id: \"{run[1]}\"\n"), err


def test_csv_header_with_another_format_is_one_line_naming_the_flag(run: tuple[Path, str]) -> None:
    code, _, err = _export(run, "--format", "json", "--csv-header")
    assert code == 1 and len(err.strip().splitlines()) == 1 and "--csv-header" in err
