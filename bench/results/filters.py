"""The selection the dashboard's queries share: which runs, models, providers and cases.

Kept apart from ``bench.results.analytics`` so the per-run aggregates
(``bench.results.aggregates``), which analytics calls, can take the same selection
without importing analytics back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

PROVIDER_COLUMNS = {
    # Results from a named OpenAI-compatible endpoint are real even in a sandbox run:
    # the label says so, so no chart can mix them up with simulated providers.
    "variant": ("CASE WHEN endpoint = 'local' THEN 'local (real, on this machine)' "
                "WHEN endpoint <> 'openrouter' THEN endpoint || ' (real)' ELSE provider_variant END"),
    "served": ("CASE WHEN endpoint = 'local' THEN 'llama.cpp (real, on this machine)' "
               "WHEN endpoint <> 'openrouter' THEN coalesce(provider, endpoint) || ' (real)' "
               "ELSE coalesce(provider, '(not reported)') END"),
}
"""How "provider" is read: the routing variant asked for, or the provider that served."""

_FILTERS = """
    list_contains($run_ids, run_id) AND NOT is_warmup
    AND (len($models) = 0 OR list_contains($models, model))
    AND (len($providers) = 0 OR list_contains($providers, {prov}))
    AND (len($cases) = 0 OR list_contains($cases, case_id))
"""


@dataclass(frozen=True)
class Filters:
    """What the user picked; empty tuples mean "all"."""

    run_ids: tuple[str, ...]
    models: tuple[str, ...] = ()
    providers: tuple[str, ...] = ()
    cases: tuple[str, ...] = ()
    provider_by: str = "variant"

    def __post_init__(self) -> None:
        if self.provider_by not in PROVIDER_COLUMNS:
            raise ValueError(f"provider_by must be one of {sorted(PROVIDER_COLUMNS)}")

    @property
    def prov(self) -> str:
        return PROVIDER_COLUMNS[self.provider_by]

    def where(self) -> str:
        return _FILTERS.format(prov=self.prov)

    def params(self) -> dict[str, Any]:
        return {
            "run_ids": list(self.run_ids),
            "models": list(self.models),
            "providers": list(self.providers),
            "cases": list(self.cases),
        }
