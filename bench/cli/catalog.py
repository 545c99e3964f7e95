"""CLI commands that read the API without running anything: models, endpoints, credits, sandbox."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import click

from bench.api.catalog import Model, filter_models
from bench.api.client import OpenRouterClient, RetryPolicy
from bench.api.http import build_http_client
from bench.cli.common import api_options, api_settings, fail, note, output_options, run_async
from bench.config import Settings, parse_usd
from bench.errors import AuthError, ConfigError, KeyWithheld, NetworkError, ProviderError
from bench.results.render import Column, Output, emit, integer, num, usd

PER_M = Decimal(1_000_000)


def _client(settings: Settings) -> OpenRouterClient:
    return OpenRouterClient(build_http_client(settings, 4), api_key=settings.api_key,
                            retry=RetryPolicy(max_attempts=3, max_total_s=20),
                            withheld_key_env=settings.withheld_key_env)


async def _call(settings: Settings, fn: Any) -> Any:
    client = _client(settings)
    try:
        return await fn(client)
    except NetworkError as exc:
        raise ConfigError(f"cannot reach {settings.base_url}: {exc.message}") from None
    except KeyWithheld as exc:
        raise ConfigError(exc.message) from None
    except AuthError as exc:
        raise ConfigError(f"the API key was rejected by {settings.base_url} ({exc.status}): {exc.message}") from None
    finally:
        await client.aclose()


def _per_m(p: Decimal | None, variable: bool) -> str | None:
    if variable or p is None:
        return None
    return format((p * PER_M).normalize(), "f")


def _plain(d: Decimal) -> str:
    """Decimal as positional text ('0.00000015', never '1.5E-7'), as the API sends it."""
    return format(d, "f")


def _usd_text(v: Any) -> str:
    """A per-1M price (exact text in the rows) for the table: '$0.15', 'variable' when unpriced."""
    return "variable" if v is None else usd(Decimal(v))


def _uptime(v: Any) -> str:
    """OpenRouter's uptime is a percentage already (99.5), not a fraction."""
    return "" if v is None else f"{float(v):.1f} %"


def model_row(m: Model) -> dict[str, Any]:
    pr = m.pricing
    return {
        "id": m.id,
        "name": m.name,
        "context_length": m.context_length,
        "input_modalities": ",".join(m.input_modalities or []),
        "output_modalities": ",".join(m.output_modalities or []),
        "prompt_usd_per_token": None if pr.variable else _plain(pr.prompt),
        "completion_usd_per_token": None if pr.variable else _plain(pr.completion),
        "prompt_usd_per_m": _per_m(pr.prompt, pr.variable),
        "completion_usd_per_m": _per_m(pr.completion, pr.variable),
        "variable_price": pr.variable,
        "supported_parameters": ",".join(m.supported_parameters or []),
    }


MODEL_COLUMNS = [
    Column("id", priority=0, min_width=24), Column("context_length", "context", integer, priority=1),
    Column("prompt_usd_per_m", "$/M in", _usd_text, priority=1, align="right"),
    Column("completion_usd_per_m", "$/M out", _usd_text, priority=2, align="right"),
    Column("input_modalities", "input", priority=3, min_width=10),
]
ENDPOINT_COLUMNS = [
    Column("provider", priority=0, min_width=12), Column("tag", priority=6, min_width=10),
    Column("quantization", "quant", priority=5), Column("context_length", "context", integer, priority=4),
    Column("prompt_usd_per_m", "$/M in", _usd_text, priority=1, align="right"),
    Column("completion_usd_per_m", "$/M out", _usd_text, priority=1, align="right"),
    Column("uptime_30m", "uptime 30m", _uptime, priority=3),
    Column("latency_p50_ms", "latency p50 ms", num, priority=2),
    Column("throughput_p50_tps", "tok/s p50", num, priority=2),
]


@click.command("models")
@api_options
@click.option("--search", "text", default=None, help="Substring of the id or name.")
@click.option("--modality", default=None, help="Input or output modality, e.g. image.")
@click.option("--max-price", default=None, help="Maximum prompt price, USD per 1M tokens.")
@click.option("--min-context", type=int, default=None, help="Minimum context length (tokens).")
@click.option("--sort", "sort_by", type=click.Choice(["id", "price", "context"]), default="id")
@output_options
def models_cmd(base_url: str | None, sandbox: bool, text: str | None, modality: str | None,
               max_price: str | None, min_context: int | None, sort_by: str, output: Output) -> None:
    """List the model catalog with per-token prices (public, no key needed)."""
    limit = parse_usd(max_price, "--max-price")
    with api_settings(base_url, sandbox) as settings:
        models = run_async(_call(settings, lambda c: c.models()))
    models = filter_models(models, text=text, modalities=(modality,) if modality else (),
                           max_prompt_usd_per_m=limit, min_context=min_context)
    if sort_by == "price":
        models.sort(key=lambda m: (m.pricing.variable, m.pricing.prompt + m.pricing.completion, m.id))
    elif sort_by == "context":
        models.sort(key=lambda m: (-(m.context_length or 0), m.id))
    else:
        models.sort(key=lambda m: m.id)
    rows = [model_row(m) for m in models]
    emit(rows, MODEL_COLUMNS, output, fields=list(rows[0]) if rows else ["id"])
    note(f"{len(rows)} models; prices in USD (per token in --json/--csv/--nl, per 1M tokens in the table)")


@click.command("endpoints")
@click.argument("model")
@api_options
@output_options
def endpoints_cmd(model: str, base_url: str | None, sandbox: bool, output: Output) -> None:
    """The providers serving MODEL, with prices, quantization, uptime and advertised latency."""
    with api_settings(base_url, sandbox) as settings:
        try:
            eps = run_async(_call(settings, lambda c: c.endpoints(model)))
        except ProviderError as exc:
            if exc.status == 404:
                fail(f"unknown model {model!r} at {settings.base_url}")
            raise
    rows = []
    for e in eps.endpoints:
        lat = e.latency_last_30m or {}
        thr = e.throughput_last_30m or {}
        rows.append({
            "provider": e.provider_name, "tag": e.tag, "quantization": e.quantization,
            "context_length": e.context_length,
            "prompt_usd_per_m": _per_m(e.pricing.prompt, e.pricing.variable),
            "completion_usd_per_m": _per_m(e.pricing.completion, e.pricing.variable),
            "uptime_30m": e.uptime_last_30m, "latency_p50_ms": lat.get("p50"),
            "throughput_p50_tps": thr.get("p50"),
        })
    emit(rows, ENDPOINT_COLUMNS, output, fields=list(rows[0]) if rows else ["provider"])


@click.command("credits")
@api_options
@output_options
def credits_cmd(base_url: str | None, sandbox: bool, output: Output) -> None:
    """Key usage, limit and remaining; account credits where the key allows it."""
    with api_settings(base_url, sandbox, need_key=not sandbox) as settings:
        async def both(c: OpenRouterClient) -> tuple[Any, Any, str | None]:
            key = await c.key_info()
            try:
                credits = await c.credits()
                why = None
            except AuthError as exc:
                credits, why = None, f"account credits need a management key ({exc.status})"
            return key, credits, why

        key, credits, why = run_async(_call(settings, both))
    row: dict[str, Any] = {
        "label": key.label, "usage_usd": key.usage, "limit_usd": key.limit,
        "limit_remaining_usd": key.limit_remaining, "limit_reset": key.limit_reset,
        "usage_daily_usd": key.usage_daily, "usage_monthly_usd": key.usage_monthly,
        "is_free_tier": key.is_free_tier,
        "total_credits_usd": getattr(credits, "total_credits", None),
        "total_usage_usd": getattr(credits, "total_usage", None),
        "balance_usd": getattr(credits, "balance", None),
    }
    if output.fmt != "table":
        emit([row], list(row), output)
    else:
        for k, v in row.items():
            click.echo(f"{k:22} {'' if v is None else v}")
    if why:
        note(why)
    if settings.sandbox:
        note("simulated: these are the sandbox's numbers, not a real account")


@click.command("sandbox")
@click.option("--port", type=int, default=8765, show_default=True, help="Port on 127.0.0.1 (0 = any).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--time-scale", type=float, default=1.0, show_default=True,
              help="Multiply every simulated delay (0 = no delays).")
@click.option("--catalog", "catalog_path", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Another sandbox catalog file (default: the bundled bench/sandbox/catalog.json).")
@click.option("--tls-cert", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Serve HTTPS with this certificate chain (PEM); needs --tls-key.")
@click.option("--tls-key", type=click.Path(exists=True, dir_okay=False), default=None,
              help="The private key of --tls-cert (PEM).")
@click.option("--capacity", type=click.IntRange(min=1), default=None,
              help="Serve at most N chat requests at once (the rest queue): a server that saturates.")
@click.option("--scenario", "scenario_path", type=click.Path(dir_okay=False), default=None,
              help="YAML list of scripted changes {at_s, until_s, model, provider, latency_factor, "
                   "error_rate, quality_drop, price_factor}, timed from the sandbox's start.")
def sandbox_cmd(port: int, seed: int, time_scale: float, catalog_path: str | None,
                tls_cert: str | None, tls_key: str | None, capacity: int | None,
                scenario_path: str | None) -> None:
    """Serve the simulated OpenRouter-compatible API on 127.0.0.1 until Ctrl-C."""
    import ssl

    from bench.sandbox import load_scenario, start_sandbox

    try:
        scenario = load_scenario(scenario_path) if scenario_path else None
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None

    if bool(tls_cert) != bool(tls_key):
        raise click.UsageError("--tls-cert and --tls-key go together")
    context = None
    if tls_cert and tls_key:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            context.load_cert_chain(tls_cert, tls_key)
        except (ssl.SSLError, OSError) as exc:
            raise click.ClickException(f"--tls-cert/--tls-key: {exc}") from None
    sb = start_sandbox(port=port, seed=seed, time_scale=time_scale, catalog_path=catalog_path,
                       ssl_context=context, max_concurrent=capacity, scenario=scenario)
    note(f"sandbox (simulated) listening: {sb.base_url}" + (f" (capacity {capacity})" if capacity else ""))
    note(f"use it with: orbench models --base-url {sb.base_url}")
    import threading

    forever = threading.Event()
    try:
        while not forever.wait(0.5):  # short waits so Ctrl-C (SIGINT) is seen promptly
            pass
    except KeyboardInterrupt:
        pass
    finally:
        sb.stop()
