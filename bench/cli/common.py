"""What the command modules share: notes and failures, the API, database and output options,
settings from flags, money flags.

Data goes to stdout, progress and notes to stderr.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import click

from bench.api import keys
from bench.config import Settings
from bench.results.render import Output, emit

EXIT_GATE = 3


# ------------------------------------------------------------------- helpers
def note(msg: str) -> None:
    click.echo(msg, err=True)


def fail(msg: str) -> None:
    raise click.ClickException(msg)


def api_options(f: Any) -> Any:
    f = click.option("--sandbox", is_flag=True, help="Start the simulated sandbox in-process and use it.")(f)
    f = click.option("--base-url", default=None, help="API base URL (default OPENROUTER_BASE_URL or OpenRouter).")(f)
    # TLS options go to ctx.meta (read by api_settings), so no command's signature changes.
    f = click.option("--ca-bundle", type=click.Path(exists=True), expose_value=False, callback=_tls_meta,
                     help="CA file or directory to trust (default ORBENCH_CA_BUNDLE, SSL_CERT_FILE, "
                          "SSL_CERT_DIR, then certifi).")(f)
    f = click.option("--insecure", is_flag=True, expose_value=False, callback=_tls_meta,
                     help="Do not verify TLS certificates (unsafe; for debugging a proxy only).")(f)
    return f


def _tls_meta(ctx: click.Context, param: click.Parameter, value: Any) -> None:
    if value:
        ctx.meta[f"orbench.{param.name}"] = value


def _tls_overrides() -> dict[str, Any]:
    """--ca-bundle / --insecure of the running command, as Settings overrides; warns once on --insecure."""
    ctx = click.get_current_context(silent=True)
    meta = ctx.meta if ctx is not None else {}
    if meta.get("orbench.insecure"):
        note("WARNING: --insecure: TLS certificates are NOT verified; anyone on the path can read the key")
    return {"ca_bundle": meta.get("orbench.ca_bundle"), "insecure": bool(meta.get("orbench.insecure")) or None}


def team_options(f: Any, origin: bool = False) -> Any:
    """--team URL and --team-insecure (and --origin for commands that run suites), kept in ctx.meta
    (read by ``api_settings`` and ``team_overrides``), so no command's signature changes."""
    if origin:
        f = click.option("--origin", expose_value=False, callback=_tls_meta, metavar="NAME",
                         help="Where this run runs, e.g. ci-eu-west (default ORBENCH_ORIGIN, else the hostname).")(f)
    f = click.option("--team-insecure", is_flag=True, expose_value=False, callback=_tls_meta,
                     help="Allow an sslmode weaker than require to a team store that is not on loopback.")(f)
    f = click.option("--team", "team", expose_value=False, callback=_tls_meta, metavar="URL",
                     help="Team store, a libpq URL (default ORBENCH_TEAM_DB); see docs/team.md.")(f)
    return f


def origin_option(f: Any) -> Any:
    return team_options(f, origin=True)


def origin_filter_option(f: Any) -> Any:
    """--origin NAME on a read command: only that origin's runs (``latest`` is its newest run)."""
    return click.option("--origin", "origin_filter", expose_value=False, callback=_tls_meta, metavar="NAME",
                        help="Only runs measured at this origin (see `orbench runs`).")(f)


def origin_filter() -> str | None:
    ctx = click.get_current_context(silent=True)
    return None if ctx is None else ctx.meta.get("orbench.origin_filter")


def team_overrides() -> dict[str, Any]:
    """--team / --team-insecure / --origin of the running command, as Settings overrides."""
    ctx = click.get_current_context(silent=True)
    meta = ctx.meta if ctx is not None else {}
    return {"team_url": meta.get("orbench.team"), "team_insecure": bool(meta.get("orbench.team_insecure")) or None,
            "origin": meta.get("orbench.origin")}


def db_option(f: Any) -> Any:
    return click.option("--db", "db_path", default=None, type=click.Path(dir_okay=False),
                        help="DuckDB file (default ORBENCH_DB or data/orbench.duckdb).")(f)


@contextlib.contextmanager
def api_settings(base_url: str | None, sandbox: bool, db_path: str | None = None,
                 need_key: bool = False) -> Iterator[Settings]:
    """Resolve settings; with --sandbox start the simulated server for the duration."""
    if sandbox and base_url:
        fail("use either --sandbox or --base-url, not both")
    if sandbox:
        from bench.sandbox import start_sandbox

        with start_sandbox() as sb:
            note(f"sandbox: simulated OpenRouter at {sb.base_url} (no key, no network, not real data)")
            # from_env ignores None overrides, so the key is dropped after: the sandbox never sees it
            # and the sandbox on loopback is never reached through a proxy
            yield replace(Settings.from_env(base_url=sb.base_url, sandbox=True, db_path=db_path,
                                            **team_overrides()),
                          api_key=None, proxies=())
        return
    settings = Settings.from_env(base_url=base_url, db_path=db_path, **_tls_overrides(), **team_overrides())
    settings = replace(settings, api_key=keys.base_url_key(settings.base_url, os.environ),
                       withheld_key_env=keys.withheld_key_env(settings.base_url, os.environ))
    if need_key and settings.api_key is None and keys.is_openrouter_host(settings.base_url):
        fail("set OPENROUTER_API_KEY, or use --sandbox")
    yield settings


def run_async(coro: Any) -> Any:
    return asyncio.run(coro)


def emit_table(rows: list[dict[str, Any]], columns: list[str], fmt: str) -> None:
    """Older entry point: ``fmt`` "table", "json", "csv" or "nl"; see bench.results.render.emit."""
    fields = None if fmt == "json" else columns
    emit(rows, columns, Output(fmt), fields=fields)


def note_gates(results: Any) -> bool:
    """CI gate results on stderr: the tally, then one FAIL line per failed gate; True when any failed
    (the caller exits ``EXIT_GATE`` once its output is written)."""
    if not results:
        return False
    failed = [r for r in results if r.failed]
    note(f"gates: {len(results) - len(failed)} passed, {len(failed)} failed")
    for r in failed:
        obs = "unmeasured" if r.observed is None else f"{r.observed:g}"
        note(f"  FAIL {r.group}: {r.gate.metric} = {obs} ({r.gate.text})")
    return bool(failed)


# ----------------------------------------------------------------- the options
def output_options(f: Any) -> Any:
    """Add --json/--csv/--nl/--wide; the command receives one ``output: Output`` argument."""

    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        chosen = [name for name in ("json", "csv", "nl") if kwargs.pop(f"output_{name}")]
        if len(chosen) > 1:
            raise click.UsageError(f"choose one output format, not {' and '.join('--' + c for c in chosen)}")
        kwargs["output"] = Output(chosen[0] if chosen else "table", kwargs.pop("output_wide"))
        return f(*args, **kwargs)

    wrapper = click.option("--wide", "output_wide", is_flag=True,
                           help="Show every table column, however wide the terminal.")(wrapper)
    wrapper = click.option("--nl", "output_nl", is_flag=True,
                           help="Print JSON lines: one object per row, exact values.")(wrapper)
    wrapper = click.option("--csv", "output_csv", is_flag=True,
                           help="Print CSV with every field, exact values.")(wrapper)
    wrapper = click.option("--json", "output_json", is_flag=True,
                           help="Print a JSON array with every field, exact values.")(wrapper)
    return wrapper


def wide_option(f: Any) -> Any:
    """--wide alone, for commands whose --json is not a listing (``orbench run``)."""
    return click.option("--wide", is_flag=True, help="Show every table column, however wide the terminal.")(f)
