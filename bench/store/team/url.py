"""The team store's address: a libpq URL, shown only redacted, checked for TLS.

The password comes from libpq's usual places (the URL, ``PGPASSWORD``, ``~/.pgpass``, a
service file) and only ever reaches the drivers: ``TeamDB.redacted`` and ``TeamDB.key`` are
what orbench prints and stores. To a host that is not loopback, an ``sslmode`` weaker than
``require`` is refused unless the user says ``--team-insecure``.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote, urlsplit

from bench.errors import ConfigError

_STRONG_SSL = ("require", "verify-ca", "verify-full")
_SECRET_PARAMS = ("password", "sslpassword", "passfile")


@dataclass(frozen=True)
class TeamDB:
    """A parsed team store URL. ``url`` (which may hold the password) goes to drivers only."""

    url: str = field(repr=False)
    host: str
    port: int
    dbname: str
    user: str | None

    @property
    def key(self) -> str:
        """How bookkeeping names this team store: ``host:port/db`` (no user, no password)."""
        return f"{self.host}:{self.port}/{self.dbname}"

    @property
    def label(self) -> str:
        """For headers: ``HOST/DB``."""
        return f"{self.host}/{self.dbname}"

    @property
    def redacted(self) -> str:
        """The URL as printed: user kept, password and secret parameters replaced by ``***``."""
        return redact(self.url)

    def __str__(self) -> str:
        return self.redacted


def redact(url: str) -> str:
    """A libpq URL without its password (``postgresql://bench:***@host/db``), whatever its shape."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "postgresql://***"
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:***@{hostport}" if ":" in userinfo else f"{user}@{hostport}"
    query = "&".join(
        f"{k}={'***' if k.lower() in _SECRET_PARAMS else v}" for k, v in parse_qsl(parts.query, keep_blank_values=True)
    )
    return f"{parts.scheme}://{netloc}{parts.path}" + (f"?{query}" if query else "")


def _is_loopback(host: str) -> bool:
    if host in ("localhost", "") or host.startswith("/"):  # a Unix socket never leaves the machine
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_team_url(url: str, *, insecure: bool = False, what: str = "--team / ORBENCH_TEAM_DB") -> TeamDB:
    """Check and parse a team store URL; ConfigError (one line, password redacted) when it is bad."""
    text = url.strip()
    try:
        parts = urlsplit(text)
        port = parts.port or 5432
    except ValueError:
        raise ConfigError(f"{what} {redact(text)}: not a postgresql:// URL") from None
    if parts.scheme not in ("postgresql", "postgres"):
        raise ConfigError(f"{what} {redact(text)}: not a postgresql:// URL")
    params = dict(parse_qsl(parts.query))
    host = params.get("host") or parts.hostname or "localhost"
    dbname = unquote(parts.path.lstrip("/")) or params.get("dbname") or (parts.username or "postgres")
    sslmode = params.get("sslmode", "prefer")
    if not _is_loopback(host) and sslmode not in _STRONG_SSL and not insecure:
        raise ConfigError(
            f"{what} {redact(text)}: sslmode={sslmode} to {host} could send the password and results in clear; "
            "add sslmode=require (or verify-full), or pass --team-insecure"
        )
    return TeamDB(url=text, host=host, port=port, dbname=dbname,
                  user=unquote(parts.username) if parts.username else None)
