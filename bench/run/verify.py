"""The plan of ``orbench verify``: one model on each of its providers, pinned, on the conformance probes.

A verify is an ordinary run (suite ``verify:MODEL``): the probes of the built-in conformance
suite (bench/examples/verify/conformance.yaml, package data, versioned by its content hash) plus
the user's ``--suite`` cases become one ``Suite`` value, built here; every provider is a variant
pinned with ``provider: {only: [NAME], allow_fallbacks: false}``; ``--endpoint NAME=URL`` servers
are models on named endpoints. The run then goes through the same plan, budget, runner and store
as ``orbench run`` (``run_suite``), so resume, export, report and the team store work on it.

Each probe is a case whose id says what it probes (``bench.results.conformance.probe_id``):
the dimension, the built-in case, a variant (a reasoning effort), streamed or not, and the repeat.
What the run stored about the verify (model, providers with their names, prices and
``supported_parameters``, the reference rule) goes into the run's settings under ``verify``,
which is all ``bench.results.conformance`` needs to give verdicts later.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from bench.api.catalog import Endpoint as CatalogEndpoint
from bench.api.catalog import Model as CatalogModel
from bench.api.catalog import Pricing, find_model, parse_models
from bench.api.ceiling import request_ceiling
from bench.api.client import OpenRouterClient
from bench.config import Settings
from bench.errors import ConfigError, ProviderError
from bench.results.conformance import DIMENSIONS, probe_id, provider_label
from bench.run import session, synthetic
from bench.run.runner import Runner
from bench.run.spec import Prepared, RunSpec
from bench.run.state import Progress
from bench.run.targets import close_clients, make_clients
from bench.store.store import Store
from bench.suites.model import OPENROUTER, Case, Endpoint, Model, Suite
from bench.suites.parse import load_suite

PROBES_PATH = Path(__file__).resolve().parents[1] / "examples" / "verify" / "conformance.yaml"
AUTHOR_PROVIDERS = {  # model author -> provider tags that are the author's own API
    "openai": ("openai",), "anthropic": ("anthropic",), "google": ("google-vertex", "google-ai-studio"),
    "mistralai": ("mistral",), "deepseek": ("deepseek",), "x-ai": ("xai",), "moonshotai": ("moonshotai",),
    "z-ai": ("z-ai",), "qwen": ("alibaba",), "meta-llama": ("meta",), "cohere": ("cohere",),
    "microsoft": ("azure",), "amazon": ("amazon-bedrock",),
}
PARAMETER_EXTRAS: dict[str, list[tuple[str, dict[str, Any]]]] = {
    # tag of a parameters probe -> (variant, extra body) sent for it; "" is no variant
    "max_tokens": [("", {})],
    "stop": [("", {"stop": ["7"]})],
    "temperature": [("", {"temperature": 0})],
    "seed": [("", {"seed": 42, "temperature": 1.0})],
    "reasoning": [("low", {"reasoning": {"effort": "low"}}), ("high", {"reasoning": {"effort": "high"}})],
}
REPEATS = {"accuracy": 1, "tool_calls": 2, "structured_output": 2, "parameters": 4, "streaming": 1}
MODES = {"accuracy": "s", "tool_calls": "sn", "structured_output": "s", "parameters": "s", "streaming": "sn"}
MIN_PER_DIMENSION = 4


@dataclass
class VerifySpec:
    """What ``orbench verify`` was asked for."""

    model: str
    providers: list[str] | None = None  # None: all of the model's endpoints
    reference: str | None = None
    endpoints: dict[str, str] = field(default_factory=dict)  # --endpoint NAME=URL
    requests: int | None = None  # about this many requests per provider (None: the default set)
    suite_file: Path | None = None
    budget_usd: Decimal | None = None
    seed: int = 0
    concurrency: int = 8
    timeout_s: float = 120.0


@dataclass(frozen=True)
class ProbeCase(Case):
    """A built-in case plus the body keys a probe adds (stream, stop, seed, reasoning)."""

    extra: dict[str, Any] = field(default_factory=dict)

    def body(self) -> dict[str, Any]:
        return {**super().body(), **json.loads(json.dumps(self.extra))}


@dataclass
class VerifyPlan:
    """The run spec of a verify and what the plan text explains."""

    suite: Suite
    spec: RunSpec
    meta: dict[str, Any]  # stored as settings["verify"]
    notes: list[str]


# ------------------------------------------------------------------- probes
def _dimension(case: Case) -> str:
    dims = [t for t in case.tags if t in DIMENSIONS]
    if not dims:
        raise ConfigError(f"{PROBES_PATH}: case {case.id!r} has no dimension tag")
    return dims[0]


def _slots(case: Case, dimension: str, reasoning: bool) -> list[tuple[str, str, dict[str, Any]]]:
    """(variant, mode, extra body) of one round of a case."""
    variants: list[tuple[str, dict[str, Any]]] = [("", {})]
    if dimension == "parameters":
        tag = next(t for t in case.tags if t != "parameters")
        if tag == "reasoning" and not reasoning:
            return []
        variants = PARAMETER_EXTRAS[tag]
    return [(v, m, {**extra, **({"stream": False} if m == "n" else {})})
            for v, extra in variants for m in MODES[dimension]]


def probe_cases(builtin: Suite, user: Suite | None, *, reasoning: bool,
                requests: int | None) -> list[ProbeCase]:
    """Every probe case of a verify, in dimension order, scaled to about ``requests`` per provider."""
    by_dim: dict[str, list[tuple[Case, str, str, dict[str, Any]]]] = {d: [] for d in DIMENSIONS}
    for case in builtin.cases:
        dim = _dimension(case)
        by_dim[dim] += [(case, v, m, e) for v, m, e in _slots(case, dim, reasoning)]
    for case in user.cases if user is not None else ():
        renamed = dataclasses.replace(case, id=f"suite.{case.id}",
                                      temperature=0 if case.temperature is None else case.temperature)
        by_dim["accuracy"].append((renamed, "", "s", {}))
    default = sum(len(slots) * REPEATS.get(d, 1) for d, slots in by_dim.items())
    factor = 1.0 if requests is None else requests / max(1, default)
    out: list[ProbeCase] = []
    for dim, slots in by_dim.items():
        if not slots:
            continue
        want = max(MIN_PER_DIMENSION, round(len(slots) * REPEATS.get(dim, 1) * factor))
        for i in range(want):
            case, variant, mode, extra = slots[i % len(slots)]
            rep = i // len(slots) + 1
            out.append(_probe(case, dim, variant, mode, rep, extra))
    return out


def _probe(case: Case, dim: str, variant: str, mode: str, rep: int, extra: dict[str, Any]) -> ProbeCase:
    values = {f.name: getattr(case, f.name) for f in dataclasses.fields(Case)}
    values["id"] = probe_id(dim, case.id, mode, rep, variant)
    return ProbeCase(**values, extra=extra)


# ------------------------------------------------------------------- providers
def author_provider(model: str, tags: list[str]) -> str | None:
    """The model author's own provider among ``tags``, if it serves the model."""
    author = model.split("/")[0].lstrip("~")
    own = AUTHOR_PROVIDERS.get(author, (author,))
    return next((t for t in tags if t.split("/")[0] in own), None)


def choose_reference(spec: VerifySpec, tags: list[str]) -> tuple[str | None, str]:
    """(reference, why); None means "the provider whose answers agree most", decided after the run."""
    names = tags + list(spec.endpoints)
    if spec.reference:
        if spec.reference not in names:
            raise ConfigError(f"--reference {spec.reference}: not a provider of {spec.model} "
                              f"(known: {', '.join(names) or 'none'})")
        return spec.reference, "given with --reference"
    own = author_provider(spec.model, tags)
    if own is not None:
        return own, f"the model author's own provider ({spec.model.split('/')[0]})"
    return None, ("no --reference and the author does not serve the model: the provider whose answers agree "
                  "most with the others', chosen once the answers are in")


def _pick_providers(spec: VerifySpec, endpoints: list[CatalogEndpoint]) -> list[CatalogEndpoint]:
    by_tag = {e.tag: e for e in endpoints if e.tag}
    if spec.providers is None:
        return list(by_tag.values())
    unknown = [p for p in spec.providers if p not in by_tag]
    if unknown:
        raise ConfigError(f"--providers: {', '.join(unknown)} not among {spec.model}'s providers "
                          f"(known: {', '.join(by_tag) or 'none'})")
    chosen = list(dict.fromkeys(spec.providers))
    if spec.reference and spec.reference in by_tag and spec.reference not in chosen:
        chosen.append(spec.reference)  # the reference is always asked the same probes
    return [by_tag[t] for t in chosen]


def _endpoint_meta(e: CatalogEndpoint) -> dict[str, Any]:
    p = e.pricing
    return {"name": e.provider_name, "tag": e.tag, "quantization": e.quantization,
            "supported_parameters": list(e.supported_parameters),
            "pricing": dict(p.raw)}


# ------------------------------------------------------------------- the plan
async def build_plan(settings: Settings, spec: VerifySpec) -> VerifyPlan:
    """Look the model and its providers up, and build the verify's run spec (nothing is sent)."""
    boot = make_clients(settings, None, 1)
    try:
        catalog_model, endpoints = await _lookup(spec, boot[OPENROUTER])
    finally:
        await close_clients(boot)
    if catalog_model is None and not spec.endpoints:
        raise ConfigError(f"{spec.model}: not in the catalog of {settings.base_url}; "
                          "give --endpoint NAME=URL to verify your own servers")
    chosen = _pick_providers(spec, endpoints) if catalog_model is not None else []
    tags = [e.tag for e in chosen if e.tag]
    if len(tags) + len(spec.endpoints) < 2:
        raise ConfigError(f"{spec.model}: a verify needs at least two providers or endpoints "
                          f"(found {', '.join(tags + list(spec.endpoints)) or 'none'})")
    reference, why = choose_reference(spec, tags)
    builtin = load_suite(PROBES_PATH)
    user = load_suite(spec.suite_file) if spec.suite_file is not None else None
    reasoning = catalog_model is not None and "reasoning" in catalog_model.supported_parameters
    cases = probe_cases(builtin, user, reasoning=reasoning, requests=spec.requests)
    suite = _suite(spec, builtin, user, cases, tags)
    meta = {
        "model": spec.model, "reference": reference, "reference_reason": why,
        "providers": {e.tag: _endpoint_meta(e) for e in chosen if e.tag},
        "endpoints": dict(spec.endpoints), "conformance_suite": builtin.name,
        "conformance_hash": builtin.content_hash,
        "user_suite": None if user is None else {"path": str(spec.suite_file), "hash": user.content_hash},
        "requests": spec.requests, "seed": spec.seed, "reasoning": reasoning,
        "tools": {t["function"]["name"]: t["function"].get("parameters") or {}
                  for c in builtin.cases for t in c.tools or []},
        "max_tokens": {c.id: c.max_tokens for c in builtin.cases if "parameters" in c.tags},
    }
    run_spec = RunSpec(
        suite_path=PROBES_PATH, models=[m.id for m in suite.models], providers=tags or ["default"],
        concurrency=spec.concurrency, timeout_s=spec.timeout_s, stall_timeout_s=min(60.0, spec.timeout_s),
        warmup=False, budget_usd=spec.budget_usd, seed=spec.seed,
        # A provider that refuses one dimension (llama.cpp without --jinja answers every tools
        # request 500) must still be measured on the others: skip it only when it looks dead.
        max_consecutive_failures=1 + max(sum(1 for c in cases if c.id.startswith(d + ":")) for d in DIMENSIONS),
        name=suite.name, extra_settings={"verify": meta},
    )
    notes = [f"reference: {reference or '(chosen after the answers)'}: {why}"]
    return VerifyPlan(suite, run_spec, meta, notes)


async def _lookup(spec: VerifySpec, client: OpenRouterClient) -> tuple[CatalogModel | None, list[CatalogEndpoint]]:
    """The model and its providers from the catalog; with ``--endpoint`` servers only, a catalog
    that cannot be read (no network, a llama.cpp base URL without /endpoints) means no providers."""
    try:
        raw = await client.models_raw()
    except ProviderError as exc:  # NetworkError included
        if spec.endpoints:
            return None, []
        raise ConfigError(f"cannot read the model catalog: {exc.message}") from None
    found = find_model(parse_models(raw), spec.model)
    if found is None:
        return None, []
    try:
        listed = await client.endpoints(found.id)
    except ProviderError as exc:  # NetworkError included
        if spec.endpoints:
            return None, []
        raise ConfigError(f"{spec.model}: cannot list its providers ({exc.message})") from None
    return found, listed.endpoints


def _suite(spec: VerifySpec, builtin: Suite, user: Suite | None, cases: list[ProbeCase], tags: list[str]) -> Suite:
    models: list[Model] = []
    if tags:
        models.append(Model(spec.model, spec.model, {}, "openrouter", spec.model))
    endpoints = {name: Endpoint(name=name, base_url=url) for name, url in spec.endpoints.items()}
    for name in spec.endpoints:
        models.append(Model(f"{name}/{spec.model}", f"{name}/{spec.model}", {}, name, spec.model))
    digest = hashlib.sha256()
    for part in (builtin.content_hash, user.content_hash if user else "", str(spec.requests)):
        digest.update(part.encode() + b"\n")
    return Suite(
        path=PROBES_PATH, name=f"verify:{spec.model}", models=tuple(models), cases=tuple(cases),
        description=builtin.description, repeats=1, warmup=False,
        providers={t: {"only": [t], "allow_fallbacks": False} for t in tags},
        endpoints=endpoints, content_hash=digest.hexdigest(), seed=spec.seed,
    )


def rebuild_suite(meta: dict[str, Any]) -> Suite:
    """The verify's Suite again from the run's stored ``settings.verify`` (a resume)."""
    spec = VerifySpec(model=meta["model"], providers=list(meta.get("providers") or {}),
                      endpoints=dict(meta.get("endpoints") or {}), requests=meta.get("requests"),
                      suite_file=Path(meta["user_suite"]["path"]) if meta.get("user_suite") else None,
                      seed=int(meta.get("seed") or 0))
    builtin = load_suite(PROBES_PATH)
    user = load_suite(spec.suite_file) if spec.suite_file is not None else None
    cases = probe_cases(builtin, user, reasoning=bool(meta.get("reasoning")), requests=spec.requests)
    return _suite(spec, builtin, user, cases, list(meta.get("providers") or {}))


# ------------------------------------------------------------------- money
def price_per_provider(prep: Prepared, meta: dict[str, Any]) -> None:
    """Each request's worst case at its pinned provider's own price (providers of one model charge
    differently), the plan's estimate re-summed; endpoints of your own cost nothing."""
    total, unknown = Decimal(0), False
    for item in prep.plan:
        info = (meta.get("providers") or {}).get(item.target.variant) if item.target.endpoint == "openrouter" else None
        if info is not None:
            pricing = _pricing(info)
            item.max_cost_usd = None if pricing is None else request_ceiling(
                pricing, synthetic.bound_body(item), item.max_tokens)
        if item.max_cost_usd is None:
            unknown = unknown or item.target.endpoint == "openrouter"
        else:
            total += item.max_cost_usd
    prep.estimate_usd = None if unknown else total


def _pricing(info: dict[str, Any]) -> Pricing | None:
    raw = {k: v for k, v in (info.get("pricing") or {}).items() if v is not None}
    return Pricing.from_dict(raw) if raw else None


def per_provider(prep: Prepared) -> list[tuple[str, int, Decimal | None]]:
    """(provider, requests, worst case) per target, in plan order."""
    rows: dict[str, tuple[int, Decimal | None]] = {}
    for item in prep.plan:
        name = provider_label(item.target.endpoint, item.target.variant)
        n, cost = rows.get(name, (0, Decimal(0)))
        rows[name] = (n + 1, None if cost is None or item.max_cost_usd is None else cost + item.max_cost_usd)
    return [(name, n, cost) for name, (n, cost) in rows.items()]


def plan_lines(plan: VerifyPlan, prep: Prepared) -> list[str]:
    """The verify's plan for stderr: probes per dimension, requests and worst case per provider."""
    per_dim: dict[str, int] = {}
    for c in prep.suite.cases:
        dim = c.id.split(":", 1)[0]
        per_dim[dim] = per_dim.get(dim, 0) + 1
    lines = [f"verify {plan.meta['model']}: {len(per_provider(prep))} providers x {len(prep.suite.cases)} "
             f"probes = {len(prep.plan)} requests",
             "  probes per provider: " + ", ".join(f"{d} {per_dim.get(d, 0)}" for d in DIMENSIONS if d != "usage")
             + " (usage is measured on all of them)"]
    lines += plan.notes
    for name, n, cost in per_provider(prep):
        shown = "unknown (no price)" if cost is None else f"${cost:.6f}"
        lines.append(f"  {name}: {n} requests, worst case {shown}")
    total = "unknown" if prep.estimate_usd is None else f"${prep.estimate_usd:.6f}"
    lines.append(f"worst case in all (an upper bound at list price): {total}")
    return lines


# ------------------------------------------------------------------- running it
async def run_verify(settings: Settings, plan: VerifyPlan, store: Store, *, dry_run: bool,
                     show: Callable[[Prepared], None] | None = None,
                     on_progress: Callable[[Progress], None] | None = None,
                     on_runner: Callable[[Runner], None] | None = None) -> tuple[str | None, Prepared]:
    """Run the verify's Suite through the one door (``bench.run.session.run_suite``): each request's
    worst case is re-priced at its provider's own price before the budget check."""
    def on_plan(prep: Prepared) -> None:
        price_per_provider(prep, plan.meta)
        if show is not None:
            show(prep)

    hooks = session.SessionHooks(on_plan=on_plan, on_progress=on_progress, on_runner=on_runner)
    result = await session.run_suite(settings, plan.suite, plan.spec, store=store, env={}, dry_run=dry_run,
                                     hooks=hooks)
    return result.run_id, result.prep


def parse_endpoint_flag(text: str) -> tuple[str, str]:
    """``--endpoint NAME=URL``."""
    name, sep, url = text.partition("=")
    if not sep or not name.strip() or not url.strip().startswith(("http://", "https://")):
        raise ConfigError(f"--endpoint {text!r}: expected NAME=URL (an http(s) OpenAI-compatible base URL)")
    if "/" in name or name.strip() == "openrouter":
        raise ConfigError(f"--endpoint {text!r}: NAME may not contain '/' or be 'openrouter'")
    return name.strip(), url.strip()

