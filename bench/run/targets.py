"""Who is asked: the run's targets (model x provider variant x endpoint), one API client per
endpoint with its key, and whether the base URL speaks OpenRouter's API.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any

from bench.api import keys as keys_mod
from bench.api.catalog import Pricing
from bench.api.client import OpenRouterClient, RetryPolicy
from bench.api.http import build_http_client
from bench.config import Settings
from bench.errors import ConfigError
from bench.run.plan import Target
from bench.run.spec import RunSpec
from bench.suites import parse as suites_mod
from bench.suites.model import OPENROUTER, Suite


# ------------------------------------------------------------------- clients
def endpoint_keys(suite: Suite | None, env: Mapping[str, str]) -> dict[str, str | None]:
    """Resolve each named endpoint's key from the environment variable the suite names.

    Called at the edge (CLI, dashboard) so library code never reads the environment;
    ``bench.api.keys`` decides (and refuses a key over plain http to a remote host).
    """
    return {name: keys_mod.endpoint_key(ep, env)
            for name, ep in (suite.endpoints.items() if suite is not None else [])}


def make_clients(settings: Settings, suite: Suite | None, concurrency: int,
                 keys: Mapping[str, str | None] | None = None, *,
                 openrouter_api: bool = True) -> dict[str, OpenRouterClient]:
    """One client per endpoint. ``openrouter_api=False`` (``Prepared.openrouter_api``): the
    base URL is a generic OpenAI-compatible server, or the run has no OpenRouter model, so
    the main client asks for usage in the stream and makes no OpenRouter-only call."""
    keys_mod.require_safe(settings.base_url, settings.api_key)
    clients = {
        OPENROUTER: OpenRouterClient(
            build_http_client(settings, concurrency), api_key=settings.api_key,
            retry=RetryPolicy(), openai_compatible=not openrouter_api, withheld_key_env=settings.withheld_key_env,
        )
    }
    for name, ep in (suite.endpoints.items() if suite is not None else []):
        key = (keys or {}).get(name)
        keys_mod.require_safe(ep.base_url, key)
        # TLS trust and proxies carry over; attribution headers and the key do not
        ep_settings = dataclasses.replace(settings, base_url=ep.base_url, api_key=key, referer=None,
                                          title=None, sandbox=False, withheld_key_env=None)
        # Keep-alive stays on (a fresh TCP+TLS handshake per request would inflate
        # TTFT on remote servers); a reused connection that the server had closed
        # fails before any byte and is retried by the client as a transport error.
        clients[name] = OpenRouterClient(
            build_http_client(ep_settings, concurrency, fresh_connections=ep.fresh_connections),
            api_key=ep_settings.api_key, retry=RetryPolicy(), openai_compatible=True,
        )
    return clients


async def close_clients(clients: dict[str, OpenRouterClient]) -> None:
    for c in clients.values():
        await c.aclose()


# ------------------------------------------------------------------- targets
def parse_provider_arg(text: str, suite: Suite) -> tuple[str, dict[str, Any] | None]:
    """``--provider NAME`` (a variant of the suite) or ``--provider '{json}'``."""
    text = text.strip()
    if text.startswith("{"):
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"--provider {text!r}: not valid JSON ({exc.msg})") from None
        if not isinstance(obj, dict):
            raise ConfigError(f"--provider {text!r}: expected a JSON object")
        suites_mod.validate_provider_object(obj, f"--provider {text}")
        name = _variant_name(obj)
        return name, obj
    if text == "default":
        return "default", None
    if text not in suite.providers:
        known = ", ".join(sorted(suite.providers)) or "none"
        raise ConfigError(f"--provider {text!r}: not a provider variant of the suite (known: {known})")
    return text, suite.providers[text]


def _variant_name(obj: dict[str, Any]) -> str:
    for key in ("only", "order"):
        if obj.get(key):
            return "+".join(str(x) for x in obj[key])
    if obj.get("sort"):
        s = obj["sort"]
        return f"sort:{s['by'] if isinstance(s, dict) else s}"
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def build_targets(suite: Suite, spec: RunSpec) -> list[Target]:
    model_specs = suite.model_specs(spec.models or None)
    known = {m.id for m in model_specs}
    if spec.add_models:
        model_specs += [m for m in suite.model_specs(spec.add_models) if m.id not in known]
    if spec.providers:
        variants = [parse_provider_arg(p, suite) for p in spec.providers]
    elif suite.providers:
        variants = list(suite.providers.items())
    else:
        variants = [("default", None)]
    targets: list[Target] = []
    for m in model_specs:
        endpoint, api_model = suite.route(m.id)
        if endpoint != OPENROUTER:
            targets.append(Target(m.id, endpoint, api_model, "default", None, dict(m.params)))
            continue
        for name, obj in variants:
            targets.append(Target(m.id, OPENROUTER, api_model, name, obj, dict(m.params)))
    return targets


def endpoint_pricing(suite: Suite, endpoint: str) -> Pricing | None:
    ep = suite.endpoints.get(endpoint)
    if ep is None or ep.prices is None:
        return None
    return Pricing.from_dict(ep.prices)


def uses_openrouter(suite: Suite, targets: list[Target]) -> bool:
    """Does the run send anything to the base URL (a model on it, or a judge)?"""
    return any(t.endpoint == OPENROUTER for t in targets) or bool(suite.judge_models)


def require_key(settings: Settings, suite: Suite, targets: list[Target]) -> None:
    """OpenRouter itself needs a key; the sandbox, another base URL or a run without
    OpenRouter models does not."""
    if (settings.api_key is None and not settings.sandbox and uses_openrouter(suite, targets)
            and keys_mod.is_openrouter_host(settings.base_url)):
        raise ConfigError(f"set {keys_mod.OPENROUTER_KEY_ENV}, or use --sandbox")


def speaks_openrouter(settings: Settings, raw_catalog: Mapping[str, Any]) -> bool:
    """OpenRouter, the sandbox, or a server whose /models carries OpenRouter's ``pricing``
    (tests' fakes, proxies); a vLLM or llama.cpp /v1/models has none."""
    if settings.sandbox or keys_mod.is_openrouter_host(settings.base_url):
        return True
    items = raw_catalog.get("data")
    return isinstance(items, list) and any(isinstance(m, dict) and isinstance(m.get("pricing"), dict)
                                           for m in items)


def generic_endpoint(suite: Suite, target: Target, openrouter_api: bool) -> bool:
    """Is the target served by a generic OpenAI-compatible server (vLLM, llama.cpp), which takes
    ``ignore_eos``/``min_tokens``, rather than by OpenRouter (or the sandbox), which does not?"""
    if target.endpoint == OPENROUTER:
        return not openrouter_api
    endpoint = suite.endpoints.get(target.endpoint)
    return endpoint is None or not keys_mod.is_openrouter_host(endpoint.base_url)
