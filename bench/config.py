"""Settings resolved once at the edge (CLI entry, dashboard entrypoint) and passed down.

Library code never reads the environment; ``Settings.from_env`` is the one place
that does. The API key is held here and only ever sent in the Authorization header.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

OPENROUTER_BASE_URL = "https://openrouter.ai/api/v1"
DEFAULT_DB = Path("data") / "orbench.duckdb"


@dataclass(frozen=True)
class Settings:
    base_url: str = OPENROUTER_BASE_URL
    api_key: str | None = field(default=None, repr=False)
    db_path: Path = DEFAULT_DB
    referer: str | None = None  # HTTP-Referer attribution header
    title: str | None = "orbench"  # X-OpenRouter-Title (and legacy X-Title)
    sandbox: bool = False  # base_url points at our simulated server

    @property
    def is_openrouter(self) -> bool:
        return self.sandbox or "openrouter.ai" in self.base_url

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **overrides: object) -> "Settings":
        """Flags (overrides that are not None) win over the environment."""
        env = dict(os.environ if env is None else env)
        values: dict[str, object] = {
            "base_url": env.get("OPENROUTER_BASE_URL") or OPENROUTER_BASE_URL,
            "api_key": env.get("OPENROUTER_API_KEY") or None,
            "db_path": Path(env.get("ORBENCH_DB") or DEFAULT_DB),
            "referer": env.get("ORBENCH_REFERER") or None,
            "title": env.get("ORBENCH_TITLE") or "orbench",
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        if isinstance(values["db_path"], str):
            values["db_path"] = Path(values["db_path"])  # type: ignore[arg-type]
        return cls(**values)  # type: ignore[arg-type]
