"""Load and validate prompt suites (YAML) into typed values ready to send.

Validation is hand-written because every problem must come back as ONE line that
names the file, the place and the YAML line, e.g.
``data/suites/x.yaml: cases[2].max_tokens (line 14): expected a positive integer, got 'ten'``.
The file is composed once with PyYAML so each value keeps its line; ``At`` is a
cursor (value + path) whose readers raise SuiteError at that place (bench.suites.cursor).
The records are bench.suites.model's; cases are read by bench.suites.cases.

Everything that can fail is resolved at load time (vars substituted, images read
into data URLs, regexes compiled, schemas checked) so a run never stops halfway
on a typo, and ``content_hash`` covers the bytes that will be sent.

Format (unknown keys are errors everywhere)::

    name: smoke                      # required
    description: ...
    models:                          # required: ids, or {id, label, params}
      - openai/gpt-4o-mini
      - {id: qwen/qwen3-32b, label: qwen-low, params: {reasoning: {effort: low}}}
      - local/gemma3                 # "<endpoint>/<model>" goes to a named endpoint
    providers:                       # named OpenRouter routing variants (the `provider` object)
      fast: {only: [groq]}
      pinned: {order: [together], allow_fallbacks: false}
    endpoints:                       # OpenAI-compatible servers; prices in USD per MILLION tokens
      local: {base_url: "http://127.0.0.1:8080/v1", api_key_env: LOCAL_KEY,
              prices: {prompt: 0, completion: 0}}
    repeats: 2                       # default 1
    warmup: true                     # default true
    defaults: {max_tokens: 256, temperature: 0}
    vars: {company: Acme}            # shared by every case; a case's own vars win
    checks: [...]                    # applied to every case, before the case's own
    pass_threshold: 1.0              # default for cases
    judge: {model: openai/gpt-4o-mini, rubric: "...", pass_score: 0.7}
    seed: 0                          # default 0; seeds dataset sampling
    datasets:                        # rows of CSV/JSONL/Parquet files as cases (bench.suites.datasets)
      - {path: trivia.csv, prompt: "{question}", checks: [{icontains: "{answer}"}], sample: 50}
    synthetic:                       # prompts sized in each model's own tokens (bench.suites.synthetic)
      - {id: long-in, prompt_tokens: 1000, output_tokens: 200, count: 20}
    conversations:                   # multi-turn chats, turns sent in order (bench.suites.conversations)
      - {id: chat, system: "...", turns: ["first question", "a follow-up"]}
      - {dataset: chats.jsonl, turns_field: messages, replay: recorded}
    synthetic_conversations:
      - {id: long-chat, system_tokens: 2000, turns: 8, user_tokens: 100, output_tokens: 150, count: 10}
    cache: auto                      # auto | explicit | off (prompt caching; see the README)
    cases:                           # cases, datasets, synthetic and/or conversations; ids unique across all
      - id: capital
        prompt: "Capital of {country}?"    # or messages: [{role, content}, ...]
        system: "Answer briefly."
        vars: {country: France}            # {name} substituted; {{ and }} are literal braces
                                           # (in prompt, system and message text, with or without vars)
        images: [../images/red.png]        # local (relative to this file) or http(s) URLs
        tools: [...]                        # OpenAI function tools; tool_choice
        response_format: {type: json_schema, json_schema: {name, schema, strict}}
        max_tokens: 64
        temperature: 0.2
        tags: [geo]
        checks: [{contains: Paris}]         # see bench.suites.checks
        pass_threshold: 1.0
"""

from __future__ import annotations

import contextlib
import copy
import gc
import hashlib
import json
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from bench import config
from bench.errors import SuiteError
from bench.suites.cases import Shared, parse_case_checks, parse_cases, parse_vars, read_temperature, read_threshold
from bench.suites.checks import DEFAULT_PASS_SCORE, did_you_mean
from bench.suites.cursor import At, Source, compose, opt
from bench.suites.model import CACHE_MODES, OPENROUTER, Endpoint, JudgeSettings, Model, Suite, route_model

_TOP_KEYS = ("name", "description", "models", "providers", "endpoints", "repeats", "warmup",
             "defaults", "vars", "checks", "pass_threshold", "judge", "seed", "cases",
             "datasets", "synthetic", "conversations", "synthetic_conversations", "cache")  # fmt: skip
_PROVIDER_KEYS = ("order", "only", "ignore", "allow_fallbacks", "require_parameters",
                  "data_collection", "zdr", "quantizations", "sort", "max_price",
                  "preferred_min_throughput", "preferred_max_latency",
                  "enforce_distillable_text", "options")  # fmt: skip
_QUANTIZATIONS = ("int4", "int8", "fp4", "fp6", "fp8", "fp16", "bf16", "fp32", "unknown")
_SORTS = ("price", "throughput", "latency", "exacto")
_PERCENTILES = ("p50", "p75", "p90", "p99")
# Chat body fields a model's `params` may set (API.md 5.1/5.2); the rest belong to orbench.
_BODY_PARAMS = ("temperature", "top_p", "top_k", "min_p", "top_a", "frequency_penalty",
                "presence_penalty", "repetition_penalty", "seed", "stop", "logit_bias",
                "logprobs", "top_logprobs", "max_tokens", "max_completion_tokens", "reasoning",
                "reasoning_effort", "include_reasoning", "verbosity", "plugins", "transforms",
                "usage", "service_tier", "parallel_tool_calls", "prediction", "modalities",
                "user", "metadata", "session_id", "prompt_cache_key", "prompt_cache_options",
                "cache_control", "debug", "trace", "models", "route")  # fmt: skip
_RESERVED_PARAMS = ("model", "messages", "stream", "stream_options", "provider")
_EFFORTS = ("max", "xhigh", "high", "medium", "low", "minimal", "none")


# ----------------------------------------------------------------- public functions
@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection inside: loading and planning a dataset make objects by the
    100,000 (cases, bodies, planned requests), none of them garbage, and each full collection
    walked them all again (a third of a 100,000-row dry run). Put back after."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def load_suite(path: str | Path, *, seed: int | None = None) -> Suite:
    """Read and validate a suite file; raises SuiteError (one line). ``seed`` replaces the
    file's ``seed:`` (a monitor's tick: dataset samples rotate, synthetic text changes)."""
    with gc_paused():
        return _load_suite(path, seed)


def _load_suite(path: str | Path, seed: int | None = None) -> Suite:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        raise SuiteError(f"{path}: cannot read the suite file: {reason}") from None
    return parse_suite(text, path, seed=seed)


def parse_suite(text: str, path: str | Path = "<suite>", *, seed: int | None = None) -> Suite:
    """Validate suite YAML; files it references are resolved relative to ``path``."""
    src = Source(str(path), Path(path).parent)
    data = compose(text, src)
    if data is None:
        raise src.error((), "the file is empty; expected a mapping with name, models and cases")
    what = "a mapping with name, models and cases (or datasets, synthetic, conversations)"
    root = At(src, (), data)
    f = root.fields(_TOP_KEYS, ("name", "models"), what=what)
    if not {"cases", "datasets", "synthetic", "conversations", "synthetic_conversations"} & set(f):
        raise root.fail("missing required key 'cases' (or 'datasets', 'synthetic', 'conversations' "
                        "or 'synthetic_conversations')")
    name = f["name"].text()
    endpoints: dict[str, Endpoint] = opt(f, "endpoints", _parse_endpoints, {})
    judge = opt(f, "judge", _parse_judge_settings, JudgeSettings())
    defaults: dict[str, At] = opt(f, "defaults", At.fields_of(("max_tokens", "temperature")), {})
    shared = Shared(
        max_tokens=opt(defaults, "max_tokens", At.integer, None),
        temperature=opt(defaults, "temperature", read_temperature, None),
        checks=opt(f, "checks", lambda at: parse_case_checks(at, judge), ()),
        vars=opt(f, "vars", parse_vars, {}),
        pass_threshold=opt(f, "pass_threshold", read_threshold, 1.0),
        judge=judge,
    )
    suite = Suite(
        path=Path(path),
        name=name,
        description=opt(f, "description", At.text, None),
        models=_parse_models(f["models"], endpoints),
        providers=opt(f, "providers", _parse_providers, {}),
        endpoints=endpoints,
        repeats=opt(f, "repeats", At.integer, 1),
        warmup=opt(f, "warmup", At.boolean, True),
        judge=judge,
        cases=(),
        seed=opt(f, "seed", lambda s: s.integer(0), 0) if seed is None else seed,
    )
    suite.cases = parse_cases(f["cases"], shared) if "cases" in f else ()
    taken = {c.id: f"cases[{i}]" for i, c in enumerate(suite.cases)}
    if "datasets" in f:
        from bench.suites.datasets import parse_datasets  # here: it imports polars, which most suites never need

        suite.cases += tuple(parse_datasets(f["datasets"], shared, suite.seed, taken))
    if "synthetic" in f:
        from bench.suites.synthetic import parse_synthetic  # here: it imports bench.suites.cases

        suite.synthetic = parse_synthetic(f["synthetic"], shared, taken)
    _parse_conversation_keys(suite, f, shared, taken)
    suite.files, suite.judge_models = dict(sorted(src.files.items())), src.judge_models
    suite.content_hash = _content_hash(data, suite.files)
    return suite


def _parse_conversation_keys(suite: Suite, f: Mapping[str, At], shared: Shared, taken: dict[str, str]) -> None:
    """``conversations:``, ``synthetic_conversations:`` and ``cache:`` (bench.suites.conversations)."""
    from bench.suites.conversations import parse_conversations, parse_synthetic_conversations

    if "conversations" in f:
        suite.conversations = parse_conversations(f["conversations"], shared, taken)
    if "synthetic_conversations" in f:
        suite.synthetic_conversations = parse_synthetic_conversations(f["synthetic_conversations"], shared, taken)
    suite.cache = opt(f, "cache", _cache_mode, "auto")


def _cache_mode(at: At) -> str:
    # YAML 1.1 reads a bare `off` as false: that is the `off` the suite wrote.
    return "off" if at.value is False else at.choice(CACHE_MODES)


def validate_models(
    suite: Suite,
    known: Collection[str] | Callable[[str], bool],
    *,
    models: Iterable[str] | None = None,
) -> None:
    """Raise SuiteError for the first model id (or judge model) not in the catalog.

    ``models`` replaces the suite's list (e.g. ids given on the command line).
    Models routed to a named endpoint are not checked; ``id:variant`` is accepted
    when the base id is known."""
    is_known = known if callable(known) else known.__contains__
    places = suite.judge_models | {m.id: m.place for m in reversed(suite.models)}
    ids = list(models) if models is not None else [m.id for m in suite.models]
    for model_id in [*ids, *suite.judge_models]:
        if suite.route(model_id)[0] != OPENROUTER:
            continue
        if is_known(model_id) or is_known(model_id.split(":", 1)[0]):
            continue
        hint = "" if callable(known) else did_you_mean(model_id, known, n=3)
        where = places.get(model_id)
        prefix = f"{suite.path}: {where}: " if where else ""
        raise SuiteError(f"{prefix}unknown model id {model_id!r}{hint}")


def validate_provider_object(obj: object, where: str) -> dict[str, Any] | None:
    """Check a provider routing object from elsewhere (a --provider flag); ``where``
    starts the message. Returns the object, or None when it is empty."""
    return _provider_object(At(Source(where, Path("."), root_place=""), (), obj))


def _content_hash(data: Any, files: Mapping[str, str]) -> str:
    canonical = json.dumps({"suite": data, "files": files}, sort_keys=True, ensure_ascii=False,
                           separators=(",", ":"), default=str)  # fmt: skip
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


# ----------------------------------------------------------------- suite-level sections
def _parse_models(at: At, endpoints: Mapping[str, Endpoint]) -> tuple[Model, ...]:
    models: list[Model] = []
    first: dict[str, int] = {}
    for i, item in enumerate(at.items("model")):
        model = _parse_model(item, endpoints)
        if model.label in first:
            also = f"also models[{first[model.label]}]"
            raise item.fail(f"duplicate model {model.label!r} ({also}); give each a distinct label")
        first[model.label] = i
        models.append(model)
    return tuple(models)


def _parse_model(at: At, endpoints: Mapping[str, Endpoint]) -> Model:
    f: dict[str, At] = {}
    id_at = at
    if not isinstance(at.value, str):
        f = at.fields(("id", "label", "params"), ("id",), what="a model id or a mapping {id, params, label}")
        id_at = f["id"]
    model_id = id_at.text()
    if "/" not in model_id.strip("/") or any(c.isspace() for c in model_id):
        raise id_at.fail(f"expected a model id like 'openai/gpt-4o-mini', got {model_id!r}")
    endpoint, api_model = route_model(model_id, endpoints)
    params: dict[str, Any] = opt(f, "params", lambda p: _parse_params(p, endpoint == OPENROUTER), {})
    return Model(model_id, opt(f, "label", At.text, model_id), params, endpoint, api_model, at.place())


def _parse_params(at: At, openrouter: bool) -> dict[str, Any]:
    """Extra body params; checked against the OpenRouter fields unless the model
    goes to a named endpoint (local servers take their own extras)."""
    for key, item in at.entries("expected a request body field name"):
        if key in _RESERVED_PARAMS:
            raise item.fail(f"{key!r} is set by orbench, not by model params", key_line=True)
    f = at.fields(_BODY_PARAMS) if openrouter else {}
    opt(f, "temperature", read_temperature, None)
    opt(f, "max_tokens", At.integer, None)
    opt(f, "max_completion_tokens", At.integer, None)
    opt(f, "reasoning_effort", lambda e: e.choice(_EFFORTS), None)
    opt(f, "reasoning", _check_reasoning, None)
    return copy.deepcopy(dict(at.value))


def _check_reasoning(at: At) -> None:
    f = at.fields(("effort", "max_tokens", "exclude", "enabled", "summary"))
    if "effort" in f and "max_tokens" in f:
        raise at.fail("give reasoning.effort or reasoning.max_tokens, not both")
    opt(f, "effort", lambda e: e.choice(_EFFORTS), None)
    opt(f, "max_tokens", At.integer, None)
    opt(f, "exclude", At.boolean, None)
    opt(f, "enabled", At.boolean, None)
    opt(f, "summary", lambda s: s.choice(("auto", "concise", "detailed")), None)


def _parse_providers(at: At) -> dict[str, dict[str, Any] | None]:
    rule = "use letters, digits, '_', '-' or '.'"
    return {name: _provider_object(item) for name, item in at.entries(rule)}


def _provider_object(at: At) -> dict[str, Any] | None:
    """An OpenRouter ``provider`` object (API.md 5.3), validated and passed as is."""
    if at.value is None:
        return None
    what = "a provider routing object like {only: [groq]}"
    f = at.fields(_PROVIDER_KEYS, what=what, hints={"require": "only", "providers": "only"})
    for key, item in f.items():
        if item.value is not None:
            _PROVIDER_FIELDS[key](item)
    return copy.deepcopy(at.value) or None


def _check_sort(at: At) -> None:
    if not isinstance(at.value, dict):
        at.choice(_SORTS)
        return
    f = at.fields(("by", "partition"), ("by",))
    f["by"].choice(_SORTS)
    opt(f, "partition", lambda p: p.choice(("model", "none")), None)


def _check_percentiles(at: At) -> None:
    if isinstance(at.value, dict):
        for item in at.fields(_PERCENTILES).values():
            item.number(0)
    else:
        at.number(0)


def _check_max_price(at: At) -> None:
    for item in at.fields(("prompt", "completion", "request", "image", "audio")).values():
        item.money()


def _check_options(at: At) -> None:
    if not isinstance(at.value, dict):  # keyed by provider slug; contents are the provider's
        raise at.expected("a mapping of provider slug -> options")


_PROVIDER_FIELDS: dict[str, Callable[[At], object]] = {
    "order": At.strings, "only": At.strings, "ignore": At.strings,
    "allow_fallbacks": At.boolean, "require_parameters": At.boolean, "zdr": At.boolean,
    "enforce_distillable_text": At.boolean,
    "data_collection": lambda at: at.choice(("allow", "deny")),
    "quantizations": lambda at: [q.choice(_QUANTIZATIONS) for q in at.items("quantization")],
    "sort": _check_sort, "max_price": _check_max_price, "options": _check_options,
    "preferred_min_throughput": _check_percentiles, "preferred_max_latency": _check_percentiles,
}  # fmt: skip


def _parse_endpoints(at: At) -> dict[str, Endpoint]:
    endpoints = {}
    for name, item in at.entries("use letters, digits, '_', '-' or '.'"):
        if name == OPENROUTER:
            raise item.fail("'openrouter' is the built-in endpoint; choose another name", key_line=True)
        f = item.fields(("base_url", "api_key_env", "prices"), ("base_url",))
        url = f["base_url"].text()
        if not url.startswith(("http://", "https://")):
            raise f["base_url"].fail(f"expected an http(s) URL, got {url!r}")
        key_env, prices = opt(f, "api_key_env", _env_name, None), opt(f, "prices", _prices, None)
        endpoints[name] = Endpoint(name, url.rstrip("/"), key_env, prices)
    return endpoints


def _env_name(at: At) -> str:
    # Only key-like names: any other variable ($HOME, $DATABASE_URL) would be sent to the URL.
    if not isinstance(at.value, str) or not config.key_name_ok(at.value):
        raise at.expected(config.KEY_NAME_RULE)
    return at.value


def _prices(at: At) -> dict[str, str]:
    """USD per million tokens in the suite -> OpenRouter's per-token strings."""
    f = at.fields(("prompt", "completion"), ("prompt", "completion"))
    return {key: format(item.money() / 1_000_000, "f") for key, item in f.items()}


def _parse_judge_settings(at: At) -> JudgeSettings:
    f = at.fields(("model", "rubric", "pass_score"))
    return JudgeSettings(
        model=opt(f, "model", At.text, None),
        rubric=opt(f, "rubric", At.text, None),
        pass_score=opt(f, "pass_score", lambda p: p.number(0, 1), DEFAULT_PASS_SCORE),
    )
