"""Which key goes to which host: the one place that decides (CLI, engine, dashboard).

A key is a bearer secret: whoever receives it can spend the account. So:

- The OpenRouter key (``OPENROUTER_API_KEY``; in the dashboard also ``st.secrets``) goes
  only to an openrouter.ai host: the default base URL, or ``OPENROUTER_BASE_URL`` when it
  is one. ``--base-url`` to anything else (a vLLM, a proxy, the sandbox) gets no
  OpenRouter key.
- Such a base URL gets a key only when ``ORBENCH_BASE_URL_KEY_ENV`` names the variable
  that holds it (``ORBENCH_BASE_URL_KEY_ENV=VLLM_API_KEY``).
- A suite endpoint gets the key named by its ``api_key_env``, nothing else.
- Only variables whose names end in ``_KEY`` or ``_TOKEN`` may be named, so a suite
  cannot send ``$HOME`` or ``$DATABASE_URL`` to its URL; the run's plan lists each one.
- No key ever goes over plain http, except to loopback (127.0.0.0/8, ::1, localhost).

Library code never reads the environment: callers pass it in (``env``).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Protocol
from urllib.parse import urlsplit

from bench.config import KEY_NAME_RULE, key_name_ok
from bench.errors import ConfigError

OPENROUTER_KEY_ENV = "OPENROUTER_API_KEY"
BASE_URL_KEY_ENV = "ORBENCH_BASE_URL_KEY_ENV"


class _Endpoint(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def base_url(self) -> str: ...
    @property
    def api_key_env(self) -> str | None: ...


def _host(url: str) -> str:
    try:
        return (urlsplit(url).hostname or "").lower().rstrip(".")
    except ValueError:
        return ""


def is_loopback(url: str) -> bool:
    """True for 127.0.0.0/8, ::1 and localhost: traffic that never leaves this machine."""
    host = _host(url)
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_openrouter_host(url: str) -> bool:
    """openrouter.ai or a subdomain of it (not ``openrouter.ai.example.com``, not a path)."""
    host = _host(url)
    return host == "openrouter.ai" or host.endswith(".openrouter.ai")


def require_safe(url: str, key: str | None) -> None:
    """Refuse to put ``key`` on the wire to ``url`` in clear text (loopback excepted)."""
    if key and urlsplit(url).scheme.lower() != "https" and not is_loopback(url):
        raise ConfigError(f"refusing to send an API key over plain http to {_shown(url)}: "
                          "use https (or a loopback address)")


def base_url_key_env(base_url: str, env: Mapping[str, str]) -> str | None:
    """The name of the variable whose value is sent to ``base_url`` (None: send no key)."""
    if is_openrouter_host(base_url):
        return OPENROUTER_KEY_ENV
    name = (env.get(BASE_URL_KEY_ENV) or "").strip()
    if not name:
        return None
    if not key_name_ok(name):
        raise ConfigError(f"{BASE_URL_KEY_ENV}={name!r}: expected {KEY_NAME_RULE}")
    return name


def base_url_key(base_url: str, env: Mapping[str, str]) -> str | None:
    """The key for the run's base URL (OpenRouter, or whatever ``--base-url`` names).

    ``env`` is the environment (the dashboard passes the environment over ``st.secrets``).
    """
    name = base_url_key_env(base_url, env)
    if name is None:
        return None
    key = env.get(name) or None
    if key is None and name != OPENROUTER_KEY_ENV:
        raise ConfigError(f"{BASE_URL_KEY_ENV} names ${name}, which is not set")
    require_safe(base_url, key)
    return key


def withheld_key_env(base_url: str, env: Mapping[str, str]) -> str | None:
    """``OPENROUTER_API_KEY`` when it is set but ``base_url`` gets no key (not openrouter.ai, and
    ``ORBENCH_BASE_URL_KEY_ENV`` names nothing): a 401 from there is then explained, not blamed on the key."""
    if is_openrouter_host(base_url) or not env.get(OPENROUTER_KEY_ENV):
        return None
    return None if (env.get(BASE_URL_KEY_ENV) or "").strip() else OPENROUTER_KEY_ENV


def withheld_message(url: str, name: str) -> str:
    """The one line for a 401 from a URL orbench sent no key to while ``name`` is set."""
    return (f"{_shown(url).rstrip('/')} answered 401: orbench sent no key there, because {name} goes only to "
            f"openrouter.ai; to send it, set {BASE_URL_KEY_ENV}={name}")


def endpoint_key(endpoint: _Endpoint, env: Mapping[str, str]) -> str | None:
    """The key for one suite endpoint: the value of its ``api_key_env`` (None when unset)."""
    name = endpoint.api_key_env
    if not name:
        return None
    if not key_name_ok(name):  # the suite loader refuses these; this guards other callers
        raise ConfigError(f"endpoint {endpoint.name}: api_key_env {name!r}: expected {KEY_NAME_RULE}")
    key = env.get(name) or None
    require_safe(endpoint.base_url, key)
    return key


def plan_lines(base_url: str, endpoints: Mapping[str, _Endpoint], env: Mapping[str, str],
               used: set[str] | None = None) -> list[str]:
    """One line per key that the run would send, naming the variable and the URL (never the key)."""
    lines = []
    name = base_url_key_env(base_url, env)
    if used is None or "openrouter" in used:
        if name and env.get(name):
            lines.append(f"openrouter: key from ${name} → {_shown(base_url)}")
        else:
            lines.append(f"openrouter: no key → {_shown(base_url)}")
    for ep_name, ep in sorted(endpoints.items()):
        if used is not None and ep_name not in used:
            continue
        if ep.api_key_env:
            missing = "" if env.get(ep.api_key_env) else " (not set: no key sent)"
            lines.append(f"endpoint {ep_name}: key from ${ep.api_key_env}{missing} → {_shown(ep.base_url)}")
        else:
            lines.append(f"endpoint {ep_name}: no key → {_shown(ep.base_url)}")
    return lines


def _shown(url: str) -> str:
    """The URL without user:password or query (either may carry a secret)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<bad URL>"
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    return f"{parts.scheme}://{host}{port}{parts.path}"
