"""The ``orbench`` command line: one click group, verbs as commands.

Data goes to stdout, progress and notes to stderr. Expected failures (BenchError)
are one line on stderr and exit 1; a run whose CI gates fail exits 3. Set
``ORBENCH_RAISE_ERRORS=1`` to see tracebacks instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Iterator
from dataclasses import replace
from decimal import Decimal
from typing import Any

import click

from bench import __version__, keys
# the shared output helpers, importable from here too (they live in bench.cli_output)
from bench.cli_output import Column, Output, emit, fit_table, output_options, wide_option  # noqa: F401
from bench.config import Settings
from bench.errors import BenchError

EXIT_GATE = 3


# ------------------------------------------------------------------- helpers
def note(msg: str) -> None:
    click.echo(msg, err=True)


def fail(msg: str) -> None:
    raise click.ClickException(msg)


class OrbenchGroup(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BenchError as exc:
            if os.environ.get("ORBENCH_RAISE_ERRORS"):
                raise
            raise click.ClickException(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None


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
            yield replace(Settings.from_env(base_url=sb.base_url, sandbox=True, db_path=db_path),
                          api_key=None, proxies=())
        return
    settings = Settings.from_env(base_url=base_url, db_path=db_path, **_tls_overrides())
    settings = replace(settings, api_key=keys.base_url_key(settings.base_url, os.environ))
    if need_key and settings.api_key is None and keys.is_openrouter_host(settings.base_url):
        fail("set OPENROUTER_API_KEY, or use --sandbox")
    yield settings


def run_async(coro: Any) -> Any:
    return asyncio.run(coro)


def emit_table(rows: list[dict[str, Any]], columns: list[str], fmt: str) -> None:
    """Older entry point: ``fmt`` "table", "json", "csv" or "nl"; see bench.cli_output.emit."""
    fields = None if fmt == "json" else columns
    emit(rows, columns, Output(fmt), fields=fields)


def format_table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """Every column, unfitted (Markdown-like contexts and callers that fit on their own)."""
    return fit_table(rows, columns, None)[0]


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1e6 else f"{v:.0f}"
    if isinstance(v, Decimal):
        return format(v.normalize(), "f")
    if isinstance(v, (list, tuple)):
        return ",".join(str(x) for x in v)
    return str(v)


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


# --------------------------------------------------------------------- group
@click.group(cls=OrbenchGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="orbench")
def cli() -> None:
    """Benchmark LLMs and providers on your own prompts: latency, tokens, cost, quality."""


def main() -> None:
    try:
        cli(prog_name="orbench")
    except KeyboardInterrupt:  # Ctrl-C outside a run (a run records it and exits 130 itself)
        click.echo("interrupted", err=True)
        raise SystemExit(130) from None


# Commands live in their own modules to keep this one small; importing them
# registers them on the group.
from bench import cli_catalog as _cli_catalog  # noqa: E402,F401
from bench import cli_run as _cli_run  # noqa: E402,F401
from bench import cli_results as _cli_results  # noqa: E402,F401
from bench import cli_local as _cli_local  # noqa: E402,F401
from bench import cli_suite as _cli_suite  # noqa: E402,F401
from bench import cli_report as _cli_report  # noqa: E402,F401
from bench import cli_import as _cli_import  # noqa: E402,F401
from bench import cli_examples as _cli_examples  # noqa: E402,F401
from bench import cli_decide as _cli_decide  # noqa: E402,F401
from bench import cli_sweep as _cli_sweep  # noqa: E402,F401
