"""The Trends page under AppTest, on a monitor history seeded by scripts/seed_monitor_history.py
(the store's own migrations; 200 ticks of 30 minutes: a latency step, an outage, a price change
still open). The page opens on "now", draws one chart per metric, and keeps its view in the URL."""

from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "dashboard" / "app.py")
_spec = importlib.util.spec_from_file_location("seed_monitor_history", ROOT / "scripts" / "seed_monitor_history.py")
assert _spec is not None and _spec.loader is not None
seed_history = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(seed_history)


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("trends-page") / "orbench.duckdb"
    seed_history.seed(db, 200, per_target=10)
    return db


@pytest.fixture(autouse=True)
def app_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for k in list(os.environ):
        if k.startswith(("OPENROUTER_", "ORBENCH_")):
            monkeypatch.delenv(k)
    monkeypatch.setenv("ORBENCH_DB", "")  # registered, so the value _page sets is undone
    yield


def _page(db: Path, **params: str | list[str]) -> AppTest:
    os.environ["ORBENCH_DB"] = str(db)  # app_env (autouse) puts the environment back after each test
    at = AppTest.from_file(APP, default_timeout=60)
    for k, v in params.items():
        at.query_params[k] = v
    at.switch_page("app_pages/trends.py")
    return at.run()


def _charts(at: AppTest) -> list[tuple[dict, list[pa.Table]]]:
    """(Vega-Lite spec, its datasets) of each chart on the page."""
    return [(json.loads(e.proto.spec), [pa.ipc.open_stream(d.data.data).read_all() for d in e.proto.datasets])
            for e in at.get("vega_lite_chart")]


def test_trends_page_opens_on_now_with_the_open_incident(history: Path) -> None:
    at = _page(history)
    assert not at.exception, at.exception
    errors = [e.value.replace("\\", "") for e in at.error]  # names are Markdown-escaped (another machine's)
    assert len(errors) == 1 and "**catalog** on meta-llama/llama-3.3-70b-instruct · together" in errors[0]
    assert at.query_params["monitor"] == "watch" and at.query_params["since"] == "7d"
    charts = _charts(at)
    assert len(charts) == 3  # TTFT, e2e, decode speed
    spec, tables = charts[0]
    assert sum(t.num_rows for t in tables) > 0
    assert spec["layer"][0]["mark"]["type"] == "rect"  # incidents shaded under the lines
    marks = [layer["mark"]["type"] for layer in spec["layer"]]
    assert marks.count("line") == 2 and "area" in marks and "rule" in marks  # median, rolling; band; price
    table = at.dataframe[0].value
    assert sorted(table["kind"]) == ["catalog", "latency", "outage"]


def test_trends_page_view_lives_in_the_url(history: Path) -> None:
    """?provider=groq&since=1d shows groq's last day only, and the widgets say so."""
    at = _page(history, provider="groq", since="1d")
    assert not at.exception, at.exception
    assert at.radio[0].value == "1d" and at.multiselect[1].value == ["groq"]
    _, tables = _charts(at)[0]
    (series,) = [t for t in tables if "target" in t.column_names]
    assert set(series["target"].to_pylist()) == {"meta-llama/llama-3.3-70b-instruct · groq"}
    assert 40 <= len(set(series["tick"].to_pylist())) <= 49  # one day of 30-minute ticks


def test_trends_page_without_monitors_says_how_to_start_one(tmp_path: Path) -> None:
    at = _page(tmp_path / "empty.duckdb")
    assert not at.exception
    assert "no monitors yet" in at.info[0].value
    assert "orbench monitor" in at.code[0].value


def test_trends_page_shows_a_pulled_monitor_per_origin(history: Path, tmp_path: Path) -> None:
    """A team store's cache: monitor "fleet" has no row in ``monitors`` here (it runs elsewhere) and its
    ticks come from two origins. It is listed from its runs, each origin is its own line, ?origin= keeps
    one, and the page does not claim "nothing is degraded" for incidents it cannot see."""
    import shutil

    import duckdb

    db = tmp_path / "team-cache.duckdb"
    shutil.copy(history, db)
    with duckdb.connect(str(db)) as con:
        for origin in ("ci-eu-west", "ci-us-east"):
            con.execute("INSERT INTO requests SELECT * REPLACE (run_id || $o AS run_id) FROM requests "
                        "WHERE run_id IN (SELECT run_id FROM runs WHERE monitor = 'watch')", {"o": origin})
            con.execute("INSERT INTO runs SELECT * REPLACE (run_id || $o AS run_id, 'fleet' AS monitor, $o AS origin) "
                        "FROM runs WHERE monitor = 'watch'", {"o": origin})
    at = _page(db, monitor="fleet")
    assert not at.exception, at.exception
    assert at.selectbox[0].options == ["fleet", "watch"] and at.selectbox[0].value == "fleet"
    assert "runs on another machine" in at.text[0].value
    assert [s.value for s in at.success] == ["Nothing is degraded or down: no open incident on the team store."]
    origins = at.multiselect(key="trends-origins")
    assert origins.options == ["ci-eu-west", "ci-us-east"] and origins.value == []
    _, tables = _charts(at)[0]
    (series,) = [t for t in tables if "target" in t.column_names]
    targets = set(series["target"].to_pylist())
    assert "meta-llama/llama-3.3-70b-instruct · groq @ ci-us-east" in targets
    assert {t.rsplit(" @ ", 1)[1] for t in targets} == {"ci-eu-west", "ci-us-east"}

    at = _page(db, monitor="fleet", origin="ci-us-east")
    assert not at.exception, at.exception
    assert at.multiselect(key="trends-origins").value == ["ci-us-east"]
    _, tables = _charts(at)[0]
    (series,) = [t for t in tables if "target" in t.column_names]
    assert {t.rsplit(" @ ", 1)[1] for t in series["target"].to_pylist()} == {"ci-us-east"}


def test_trends_page_long_span_draws_buckets_of_ticks(tmp_path: Path) -> None:
    """800 ticks (400 h) on a 30d span: more than a chart draws, so each line has at most TREND_POINTS
    points, each a bucket of consecutive ticks (tooltip: how many), and the caption says so; on 7d
    (336 ticks) every tick is a point."""
    from dashboard.data import TREND_POINTS

    db = tmp_path / "long.duckdb"
    seed_history.seed(db, 800, per_target=2)
    at = _page(db, since="30d")
    assert not at.exception, at.exception
    _, tables = _charts(at)[0]
    (series,) = [t for t in tables if "target" in t.column_names]
    per_target = {t: series["target"].to_pylist().count(t) for t in set(series["target"].to_pylist())}
    assert per_target and max(per_target.values()) <= TREND_POINTS
    assert max(series["ticks"].to_pylist()) == 2 and sum(series["ticks"].to_pylist()) == 800 * len(per_target)
    assert any("each point is a bucket of up to 2 consecutive ticks" in c.value for c in at.caption)
    at = _page(db, since="7d")
    _, tables = _charts(at)[0]
    (series,) = [t for t in tables if "target" in t.column_names]
    assert set(series["ticks"].to_pylist()) == {1}
    assert not any("bucket" in c.value for c in at.caption)


def test_trends_page_reads_a_file_from_before_m019(history: Path, tmp_path: Path) -> None:
    """The dashboard reads, it does not migrate: on a file written before pulled incidents had an origin
    (m019), the page shows its incidents as before instead of a database error."""
    import shutil

    import duckdb

    old = tmp_path / "old.duckdb"
    shutil.copy(history, old)
    with duckdb.connect(str(old)) as con:
        con.execute("ALTER TABLE monitor_incidents DROP COLUMN origin")
    at = _page(old)
    assert not at.exception, at.exception
    errors = [e.value.replace("\\", "") for e in at.error]
    assert len(errors) == 1 and "**catalog** on meta-llama/llama-3.3-70b-instruct · together" in errors[0]
