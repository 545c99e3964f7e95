"""Settings resolved once at the edge (CLI entry, dashboard entrypoint) and passed down.

Library code never reads the environment; ``Settings.from_env`` is the one place
that does. The API key is held here and only ever sent in the Authorization header.

TLS and proxies are resolved here too, with httpx's own rules, so every transport
(ours or httpx's) sees the same trust store and the same proxy map:

- CA: ``--ca-bundle`` / ``ORBENCH_CA_BUNDLE``, else ``SSL_CERT_FILE``, else
  ``SSL_CERT_DIR``, else certifi (httpx's order; a file or a directory of hashed
  certificates). ``insecure`` (``--insecure`` only, never an environment variable)
  turns verification off.
- Proxies: ``HTTP_PROXY``, ``HTTPS_PROXY``, ``ALL_PROXY`` and ``NO_PROXY`` (any
  case, lowercase wins, as in urllib), mapped to httpx mount patterns exactly as
  ``httpx._utils.get_environment_proxies`` does.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from bench.errors import ConfigError

OPENROUTER_BASE_URL = "https://openrouter.ai/api/v1"


def parse_usd(value: str | None, what: str) -> Decimal | None:
    """A USD amount a person typed (``--budget 0.50``, the Run page's "$0.50"): None when empty;
    ConfigError naming ``what`` (the flag or field) when it is not a finite, non-negative number."""
    text = None if value is None else value.strip().removeprefix("$").strip()
    if not text:
        return None
    try:
        amount = Decimal(text)
    except InvalidOperation:
        raise ConfigError(f"{what} {value!r}: not a number of USD") from None
    if not amount.is_finite() or amount < 0:
        raise ConfigError(f"{what} must be a non-negative number of USD, not {value!r}")
    return amount
DEFAULT_DB = Path("data") / "orbench.duckdb"
# Where a key may come from: the suite loader and bench.api.keys both hold names to this rule.
KEY_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*_(KEY|TOKEN)")
KEY_NAME_RULE = "an environment variable name ending in _KEY or _TOKEN"
ORIGIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
"""A run's origin (``ci-eu-west``, ``laptop-ana``): shown in tables, used as a filter."""

# Settings that become header values, and the name a user knows each one by.
_HEADER_SETTINGS = {"api_key": "the API key (OPENROUTER_API_KEY / --key)",
                    "referer": "ORBENCH_REFERER", "title": "ORBENCH_TITLE"}


def key_name_ok(name: str) -> bool:
    return bool(KEY_NAME.fullmatch(name))


@dataclass(frozen=True)
class Settings:
    base_url: str = OPENROUTER_BASE_URL
    api_key: str | None = field(default=None, repr=False)
    db_path: Path = DEFAULT_DB
    referer: str | None = None  # HTTP-Referer attribution header
    title: str | None = "orbench"  # X-OpenRouter-Title (and legacy X-Title)
    sandbox: bool = False  # base_url points at our simulated server
    ca_bundle: str | None = None  # CA file or directory to trust instead of certifi's
    ca_source: str | None = None  # where ca_bundle came from (for messages): a flag or variable name
    insecure: bool = False  # no TLS verification at all (--insecure)
    # httpx mount pattern -> proxy URL, or None for "no proxy" (NO_PROXY hosts); sorted
    proxies: tuple[tuple[str, str | None], ...] = ()
    origin: str | None = None  # where runs ran (--origin / ORBENCH_ORIGIN); None: the hostname
    # the team store's libpq URL (--team / ORBENCH_TEAM_DB); it may hold a password: never shown
    team_url: str | None = field(default=None, repr=False)
    team_insecure: bool = False  # --team-insecure: allow sslmode below require to a remote host
    # A key variable that is set but not sent to base_url (bench.api.keys.withheld_key_env): its name only
    withheld_key_env: str | None = None

    def __post_init__(self) -> None:
        if self.origin is not None and not ORIGIN_NAME.fullmatch(self.origin):
            raise ConfigError(f"--origin / ORBENCH_ORIGIN {self.origin!r}: use 1-64 letters, digits, '.', '_' or '-'")
        for name, label in _HEADER_SETTINGS.items():
            value = getattr(self, name)
            if isinstance(value, str) and any(c in value for c in "\r\n\0"):
                raise ConfigError(f"{label} contains a CR, LF or NUL character; it cannot be sent as a header")

    @property
    def is_openrouter(self) -> bool:
        return self.sandbox or "openrouter.ai" in self.base_url

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **overrides: object) -> "Settings":
        """Flags (overrides that are not None) win over the environment."""
        env = dict(os.environ if env is None else env)
        values: dict[str, Any] = {  # Settings field name -> value (of that field's type)
            "base_url": env.get("OPENROUTER_BASE_URL") or OPENROUTER_BASE_URL,
            "api_key": env.get("OPENROUTER_API_KEY") or None,
            "db_path": Path(env.get("ORBENCH_DB") or DEFAULT_DB),
            "referer": env.get("ORBENCH_REFERER") or None,
            "title": env.get("ORBENCH_TITLE") or "orbench",
            "proxies": environment_proxies(env),
            "origin": env.get("ORBENCH_ORIGIN") or None,
            "team_url": env.get("ORBENCH_TEAM_DB") or None,
        }
        for var in ("ORBENCH_CA_BUNDLE", "SSL_CERT_FILE", "SSL_CERT_DIR"):
            if env.get(var):
                values["ca_bundle"], values["ca_source"] = env[var], var
                break
        if overrides.get("ca_bundle") is not None:
            overrides.setdefault("ca_source", "--ca-bundle")
        values.update({k: v for k, v in overrides.items() if v is not None})
        if isinstance(values["db_path"], str):
            values["db_path"] = Path(values["db_path"])
        return cls(**values)


def environment_proxies(env: Mapping[str, str]) -> tuple[tuple[str, str | None], ...]:
    """httpx's proxy mounts for ``env`` (its ``get_environment_proxies``, from a mapping).

    urllib's reading of the variables: any case, a lowercase one wins, an empty
    lowercase one unsets; ``HTTP_PROXY`` is ignored under CGI (``REQUEST_METHOD``).
    """
    info: dict[str, str] = {}
    for name, value in env.items():
        if value and name.lower().endswith("_proxy"):
            info[name.lower()[:-6]] = value
    if "REQUEST_METHOD" in env:
        info.pop("http", None)
    for name, value in env.items():
        if name.endswith("_proxy"):
            if value:
                info[name[:-6].lower()] = value
            else:
                info.pop(name[:-6].lower(), None)
    mounts: dict[str, str | None] = {}
    for scheme in ("http", "https", "all"):
        if info.get(scheme):
            url = info[scheme]
            mounts[f"{scheme}://"] = url if "://" in url else f"http://{url}"
    for host in (h.strip() for h in info.get("no", "").split(",")):
        if host == "*":
            return ()
        if host:
            mounts[_no_proxy_pattern(host)] = None
    return tuple(sorted(mounts.items()))


def _no_proxy_pattern(host: str) -> str:
    if "://" in host:
        return host
    try:
        ip = ipaddress.ip_address(host.split("/")[0])
    except ValueError:
        return f"all://{host}" if host.lower() == "localhost" else f"all://*{host}"
    return f"all://{host}" if ip.version == 4 else f"all://[{host}]"
