"""Suite loading: the example suites, the minimal form, one-line errors with places."""

from __future__ import annotations

import base64
import struct
import textwrap
import zlib
from decimal import Decimal
from pathlib import Path

import pytest

from bench.errors import SuiteError
from bench.suites.model import (
    IMAGE_TOKENS_ESTIMATE,
    OPENROUTER,
    estimate_prompt_tokens,
    expand_cases,
)
from bench.suites.parse import (
    load_suite,
    parse_suite,
    validate_models,
    validate_provider_object,
)

SUITES_DIR = Path(__file__).resolve().parent.parent / "data" / "suites"
CATALOG_IDS = {
    "openai/gpt-4o-mini",
    "openai/gpt-4.1-mini",
    "anthropic/claude-3.5-haiku",
    "google/gemini-2.5-flash",
    "meta-llama/llama-3.3-70b-instruct",
    "mistralai/mistral-small-3.2-24b-instruct",
    "qwen/qwen3-32b",
}

MINIMAL = """\
name: minimal
models: [openai/gpt-4o-mini]
repeats: 2
defaults: {max_tokens: 50, temperature: 0}
cases:
  - id: a
    prompt: Hello
"""


def png_bytes(rgb: tuple[int, int, int], size: int = 2) -> bytes:
    """A solid-colour PNG, written with zlib and struct only."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(tag + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", crc)

    row = b"\x00" + bytes(rgb) * size
    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(row * size)) + chunk(b"IEND", b"")


def write_suite(tmp_path: Path, text: str, name: str = "suite.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def load_text(tmp_path: Path, text: str) -> object:
    return load_suite(write_suite(tmp_path, text))


# ----------------------------------------------------------------- examples
@pytest.mark.parametrize("path", sorted(SUITES_DIR.glob("*.yaml")), ids=lambda p: p.name)
def test_example_suite_loads_and_uses_catalog_models(path: Path) -> None:
    suite = load_suite(path)
    validate_models(suite, CATALOG_IDS)
    assert (suite.cases or suite.synthetic or suite.conversations or suite.synthetic_conversations) and suite.models
    assert len(suite.content_hash) == 64


def test_example_suites_cover_the_brief() -> None:
    names = {p.stem for p in SUITES_DIR.glob("*.yaml")}
    assert {"smoke", "latency", "tools", "json_extraction", "vision", "arithmetic", "classification"} <= names


def test_vision_example_sends_the_png_as_a_data_url() -> None:
    suite = load_suite(SUITES_DIR / "vision.yaml")
    parts = suite.cases[0].messages[-1]["content"]
    assert parts[1]["image_url"]["url"].startswith("data:image/png;base64,iVBOR")


# ----------------------------------------------------------------- minimal form
def test_minimal_suite_parses_with_defaults(tmp_path: Path) -> None:
    suite = load_text(tmp_path, MINIMAL)
    assert suite.name == "minimal" and suite.repeats == 2 and suite.warmup is True
    assert suite.providers == {} and suite.endpoints == {}
    (case,) = suite.cases
    assert case.body() == {"messages": [{"role": "user", "content": "Hello"}], "max_tokens": 50, "temperature": 0.0}
    (model,) = suite.models
    assert (model.id, model.label, model.endpoint, model.api_model, model.params) == (
        "openai/gpt-4o-mini", "openai/gpt-4o-mini", OPENROUTER, "openai/gpt-4o-mini", {},
    )  # fmt: skip


def test_parse_suite_without_optional_sections() -> None:
    suite = parse_suite("name: x\nmodels: [a/b]\ncases: [{id: c, prompt: hi}]\n", "inline.yaml")
    assert suite.repeats == 1 and suite.cases[0].max_tokens is None
    assert "max_tokens" not in suite.cases[0].body()


def test_case_overrides_defaults_and_system_comes_first(tmp_path: Path) -> None:
    suite = load_text(
        tmp_path,
        MINIMAL + "  - id: b\n    system: Be brief.\n    prompt: Hi\n    max_tokens: 7\n    temperature: 1.5\n    tags: [x]\n",
    )
    body = suite.cases[1].body()
    assert body["messages"][0] == {"role": "system", "content": "Be brief."}
    assert (body["max_tokens"], body["temperature"], suite.cases[1].tags) == (7, 1.5, ("x",))


def test_messages_form_keeps_roles_and_tool_history(tmp_path: Path) -> None:
    text = MINIMAL.replace(
        "    prompt: Hello\n",
        """\
    messages:
      - {role: user, content: 'Weather in Oslo?'}
      - role: assistant
        tool_calls: [{id: c1, function: {name: get_weather, arguments: {city: Oslo}}}]
      - {role: tool, tool_call_id: c1, content: '{"temp": 3}'}
      - {role: user, content: [{type: text, text: 'And tomorrow?'}]}
""",
    )
    messages = load_text(tmp_path, text).cases[0].messages
    assert [m["role"] for m in messages] == ["user", "assistant", "tool", "user"]
    assert messages[1]["tool_calls"][0]["function"] == {"name": "get_weather", "arguments": '{"city": "Oslo"}'}


# ----------------------------------------------------------------- malformed suites
def case_with(extra: str) -> str:
    """MINIMAL with lines added to the first case (6-space indented YAML)."""
    return MINIMAL + textwrap.indent(textwrap.dedent(extra), "    ")


MALFORMED = [
    ("syntax", "name: x\nmodels: [a/b\n", ["invalid YAML", "line"]),
    ("syntax-colon", "name: x\ncases:\n  - id: a\n    prompt: what: now\n", ["invalid YAML (line 4, column"]),
    ("empty-file", "", ["the file is empty"]),
    ("top-level-list", "- a\n- b\n", ["top level (line 1): expected a mapping", "got a list"]),
    ("top-level-unknown", MINIMAL + "repeat: 3\n", ["repeat (line 8): unknown key 'repeat'", "did you mean 'repeats'"]),
    ("missing-name", MINIMAL.replace("name: minimal\n", ""), ["top level", "missing required key 'name'"]),
    ("missing-cases", MINIMAL.split("cases:")[0], ["missing required key 'cases'"]),
    ("empty-models", MINIMAL.replace("[openai/gpt-4o-mini]", "[]"), ["models (line 2): expected at least one model"]),
    ("models-not-list", MINIMAL.replace("[openai/gpt-4o-mini]", "openai/gpt-4o-mini"), ["models (line 2): expected a list"]),
    ("model-bad-id", MINIMAL.replace("[openai/gpt-4o-mini]", "[gpt-4o-mini]"), ["models[0]", "like 'openai/gpt-4o-mini'"]),
    ("model-not-string", MINIMAL.replace("[openai/gpt-4o-mini]", "[42]"), ["models[0] (line 2)", "got 42"]),
    ("model-unknown-key", MINIMAL.replace("[openai/gpt-4o-mini]", "[{id: a/b, param: {}}]"), ["models[0].param", "did you mean 'params'"]),
    ("model-duplicate", MINIMAL.replace("[openai/gpt-4o-mini]", "[a/b, a/b]"), ["models[1]", "duplicate model 'a/b'"]),
    ("model-param-reserved", MINIMAL.replace("[openai/gpt-4o-mini]", "[{id: a/b, params: {stream: false}}]"), ["models[0].params.stream", "set by orbench"]),
    ("model-param-typo", MINIMAL.replace("[openai/gpt-4o-mini]", "[{id: a/b, params: {reasoning_efort: low}}]"), ["params.reasoning_efort", "did you mean 'reasoning_effort'"]),
    ("model-reasoning-effort", MINIMAL.replace("[openai/gpt-4o-mini]", "[{id: a/b, params: {reasoning: {effort: huge}}}]"), ["params.reasoning.effort", "got 'huge'"]),
    ("repeats-zero", MINIMAL.replace("repeats: 2", "repeats: 0"), ["repeats (line 3): expected a positive integer, got 0"]),
    ("repeats-bool", MINIMAL.replace("repeats: 2", "repeats: true"), ["repeats (line 3)", "got true"]),
    ("defaults-unknown", MINIMAL.replace("temperature: 0}", "temp: 0}"), ["defaults.temp", "did you mean 'temperature'"]),
    ("defaults-max-tokens-text", MINIMAL.replace("max_tokens: 50", "max_tokens: ten"), ["defaults.max_tokens (line 4): expected a positive integer, got 'ten'"]),
    ("temperature-range", MINIMAL.replace("temperature: 0", "temperature: 3"), ["defaults.temperature", "between 0 and 2"]),
    ("warmup-string", MINIMAL + "warmup: maybe\n", ["warmup (line 8): expected true or false"]),
    ("cases-empty", MINIMAL.split("cases:")[0] + "cases: []\n", ["cases (line 5): expected at least one case"]),
    ("case-not-mapping", MINIMAL + "  - just text\n", ["cases[1] (line 8)", "got 'just text'"]),
    ("case-missing-id", MINIMAL + "  - prompt: hi\n", ["cases[1] (line 8): missing required key 'id'"]),
    ("case-duplicate-id", MINIMAL + "  - id: a\n    prompt: again\n", ["cases[1].id (line 8): duplicate case id 'a' (also cases[0])"]),
    ("case-unknown-key", case_with("promt: x\n"), ["cases[0].promt (line 8): unknown key 'promt'", "did you mean 'prompt'"]),
    ("case-prompt-and-messages", case_with("messages: [{role: user, content: x}]\n"), ["cases[0] (line 6): has both 'prompt' and 'messages'"]),
    ("case-neither", MINIMAL + "  - id: b\n    system: x\n", ["cases[1] (line 8): needs 'prompt' or 'messages'"]),
    ("case-prompt-empty", MINIMAL + "  - id: b\n    prompt: ''\n", ["cases[1].prompt (line 9): expected a non-empty string"]),
    ("case-prompt-list", MINIMAL + "  - id: b\n    prompt: [x]\n", ["cases[1].prompt (line 9)", "got a list"]),
    ("case-max-tokens", case_with("max_tokens: ten\n"), ["cases[0].max_tokens (line 8): expected a positive integer, got 'ten'"]),
    ("message-bad-role", MINIMAL + "  - id: b\n    messages: [{role: human, content: x}]\n", ["cases[1].messages[0].role (line 9)", "expected one of system, developer, user, assistant, tool, got 'human'"]),
    ("message-no-content", MINIMAL + "  - id: b\n    messages: [{role: user}]\n", ["cases[1].messages[0]", "needs 'content'"]),
    ("message-tool-no-id", MINIMAL + "  - id: b\n    messages: [{role: tool, content: x}]\n", ["cases[1].messages[0]", "tool_call_id"]),
    ("message-part-type", MINIMAL + "  - id: b\n    messages: [{role: user, content: [{type: audio}]}]\n", ["cases[1].messages[0].content[0].type", "got 'audio'"]),
    ("system-twice", MINIMAL + "  - id: b\n    system: s\n    messages: [{role: system, content: x}, {role: user, content: y}]\n", ["cases[1].system", "already contain a system message"]),
    ("vars-unknown-placeholder", case_with("vars: {city: Oslo}\n").replace("prompt: Hello", "prompt: Hello {town}"), ["cases[0].prompt (line 7): unknown placeholder {town}", "vars: city"]),
    ("vars-bad-value", case_with("vars: {city: [a]}\n"), ["cases[0].vars.city", "expected a string or a number"]),
    ("image-missing", case_with("images: [nowhere.png]\n"), ["cases[0].images[0] (line 8)", "cannot read image 'nowhere.png'"]),
    ("tools-bad-type", case_with("tools: [{type: retrieval, function: {name: f}}]\n"), ["cases[0].tools[0].type", "got 'retrieval'"]),
    ("tools-bad-name", case_with("tools: [{type: function, function: {name: 'get weather'}}]\n"), ["cases[0].tools[0].function.name", "'get weather'"]),
    ("tools-bad-parameters", case_with("tools: [{type: function, function: {name: f, parameters: {type: objekt}}}]\n"), ["cases[0].tools[0].function.parameters", "invalid JSON schema"]),
    ("tool-choice-without-tools", case_with("tool_choice: auto\n"), ["cases[0].tool_choice (line 8): tool_choice needs 'tools'"]),
    ("tool-choice-unknown-tool", case_with("tools: [{type: function, function: {name: f}}]\ntool_choice: {type: function, function: {name: g}}\n"), ["cases[0].tool_choice.function.name", "no tool named 'g'"]),
    ("response-format-type", case_with("response_format: {type: xml}\n"), ["cases[0].response_format.type", "got 'xml'"]),
    ("response-format-no-schema", case_with("response_format: {type: json_schema}\n"), ["cases[0].response_format (line 8)", "needs a 'json_schema' mapping"]),
    ("response-format-bad-schema", case_with("response_format: {type: json_schema, json_schema: {name: p, schema: {type: 5}}}\n"), ["cases[0].response_format.json_schema.schema", "invalid JSON schema"]),
    ("provider-require", MINIMAL + "providers:\n  pinned: {require: [groq]}\n", ["providers.pinned.require (line 9): unknown key 'require' (did you mean 'only'?)"]),
    ("provider-sort", MINIMAL + "providers:\n  best: {sort: fastest}\n", ["providers.best.sort (line 9)", "expected one of price, throughput, latency, exacto"]),
    ("provider-order-type", MINIMAL + "providers:\n  p: {order: groq}\n", ["providers.p.order (line 9): expected a list of strings"]),
    ("provider-max-price", MINIMAL + "providers:\n  p: {max_price: {prompt: cheap}}\n", ["providers.p.max_price.prompt", "non-negative number"]),
    ("provider-name", MINIMAL + "providers:\n  'a b': {}\n", ["providers['a b'] (line 9): invalid name 'a b'"]),
    ("endpoint-url", MINIMAL + "endpoints:\n  local: {base_url: localhost:8080}\n", ["endpoints.local.base_url (line 9): expected an http(s) URL"]),
    ("endpoint-reserved", MINIMAL + "endpoints:\n  openrouter: {base_url: 'http://x'}\n", ["endpoints.openrouter (line 9)", "built-in endpoint"]),
    ("endpoint-prices", MINIMAL + "endpoints:\n  l: {base_url: 'http://x', prices: {prompt: 1}}\n", ["endpoints.l.prices (line 9): missing required key 'completion'"]),
    ("duplicate-yaml-key", MINIMAL.replace("repeats: 2\n", "repeats: 2\nrepeats: 3\n"), ["repeats (line 4): duplicate key 'repeats' (first on line 3)"]),
    ("non-string-key", MINIMAL + "1: x\n", ["top level (line 8): keys must be strings, got 1"]),
    ("pass-threshold", case_with("pass_threshold: 1.5\n"), ["cases[0].pass_threshold (line 8)", "between 0 and 1"]),
    ("tags-not-strings", case_with("tags: [[a]]\n"), ["cases[0].tags[0] (line 8)", "expected a non-empty string"]),
    ("judge-unknown-key", MINIMAL + "judge: {modle: a/b}\n", ["judge.modle (line 8)", "did you mean 'model'"]),
]


@pytest.mark.parametrize(("text", "fragments"), [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED])
def test_malformed_suite_gives_one_line_error_with_file_and_place(tmp_path: Path, text: str, fragments: list[str]) -> None:
    path = write_suite(tmp_path, text, "bad.yaml")
    with pytest.raises(SuiteError) as info:
        load_suite(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message


def test_malformed_catalogue_is_large_and_distinct() -> None:
    assert len(MALFORMED) >= 30
    assert len({name for name, *_ in MALFORMED}) == len(MALFORMED)


def test_load_suite_missing_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(SuiteError, match=r"nope\.yaml: cannot read the suite file"):
        load_suite(tmp_path / "nope.yaml")


# ----------------------------------------------------------------- vars
def test_vars_are_substituted_in_prompt_system_and_messages(tmp_path: Path) -> None:
    text = MINIMAL + (
        "  - id: b\n"
        "    vars: {city: Oslo, n: 3}\n"
        "    system: You know {city}.\n"
        "    messages:\n"
        "      - {role: user, content: 'Top {n} sights in {city}?'}\n"
        "      - {role: assistant, content: [{type: text, text: 'About {city}:'}]}\n"
        "      - {role: user, content: More}\n"
    )
    messages = load_text(tmp_path, text).cases[1].messages
    assert messages[0]["content"] == "You know Oslo."
    assert messages[1]["content"] == "Top 3 sights in Oslo?"
    assert messages[2]["content"][0]["text"] == "About Oslo:"


def test_vars_double_braces_escape_and_other_braces_stay(tmp_path: Path) -> None:
    text = case_with("vars: {city: Oslo}\n").replace(
        "prompt: Hello", """prompt: 'Use {{town}} literally; {city}; {{"a": {{"b": 1}}}}; {"x": 1}'"""
    )
    content = load_text(tmp_path, text).cases[0].messages[0]["content"]
    assert content == '''Use {town} literally; Oslo; {"a": {"b": 1}}; {"x": 1}'''


def test_braces_are_escapes_in_cases_without_vars_too(tmp_path: Path) -> None:
    """Strict placeholders apply everywhere: {{ }} are escapes, other braces (JSON) stay."""
    text = MINIMAL.replace("prompt: Hello", """prompt: 'Return {{"a": {{"b": 1}}}} or {"c": 2} for {{name}}'""")
    assert load_text(tmp_path, text).cases[0].messages[0]["content"] == 'Return {"a": {"b": 1}} or {"c": 2} for {name}'


# ----------------------------------------------------------------- images
def test_local_image_becomes_data_url_after_the_text(tmp_path: Path) -> None:
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "dot.png").write_bytes(png_bytes((0, 0, 255)))
    text = case_with("images: [img/dot.png, 'https://example.com/cat.jpg']\n")
    suite = load_text(tmp_path, text)
    content = suite.cases[0].messages[-1]["content"]
    assert content[0] == {"type": "text", "text": "Hello"}
    url = content[1]["image_url"]["url"]
    assert url.startswith("data:image/png;base64,")
    assert base64.b64decode(url.split(",", 1)[1]) == png_bytes((0, 0, 255))
    assert content[2] == {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}}
    assert list(suite.files) == ["img/dot.png"]


def test_image_with_wrong_content_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "fake.png").write_text("not an image")
    with pytest.raises(SuiteError, match=r"cases\[0\]\.images\[0\] \(line 8\): 'fake.png' is not a PNG"):
        load_text(tmp_path, case_with("images: [fake.png]\n"))


def test_content_hash_changes_when_an_image_changes(tmp_path: Path) -> None:
    image = tmp_path / "dot.png"
    path = write_suite(tmp_path, case_with("images: [dot.png]\n"))
    image.write_bytes(png_bytes((255, 0, 0)))
    first = load_suite(path).content_hash
    assert load_suite(path).content_hash == first
    image.write_bytes(png_bytes((0, 255, 0)))
    assert load_suite(path).content_hash != first


def test_content_hash_ignores_comments_but_not_content(tmp_path: Path) -> None:
    base = load_text(tmp_path, MINIMAL).content_hash
    assert load_text(tmp_path, "# a comment\n" + MINIMAL).content_hash == base
    assert load_text(tmp_path, MINIMAL.replace("Hello", "Hello!")).content_hash != base


# ----------------------------------------------------------------- models, providers, endpoints
ROUTED = MINIMAL.replace(
    "models: [openai/gpt-4o-mini]",
    """\
models:
  - openai/gpt-4o-mini
  - {id: qwen/qwen3-32b, label: qwen-low, params: {reasoning: {effort: low}}}
  - {id: local/gemma3-270m, params: {cache_prompt: false}}
providers:
  fast: {only: [groq]}
  pinned: {order: [together], allow_fallbacks: false}
  best: {sort: {by: throughput, partition: none}, max_price: {prompt: 1, completion: '2'}}
  plain: {}
endpoints:
  local: {base_url: 'http://127.0.0.1:8080/v1/', api_key_env: LOCAL_KEY, prices: {prompt: 0.15, completion: 0.6}}""",
)


def test_models_params_and_endpoint_routing(tmp_path: Path) -> None:
    suite = load_text(tmp_path, ROUTED)
    qwen, local = suite.models[1], suite.models[2]
    assert (qwen.label, qwen.params) == ("qwen-low", {"reasoning": {"effort": "low"}})
    assert (local.endpoint, local.api_model, local.params) == ("local", "gemma3-270m", {"cache_prompt": False})
    endpoint = suite.endpoints["local"]
    assert endpoint.base_url == "http://127.0.0.1:8080/v1" and endpoint.api_key_env == "LOCAL_KEY"
    assert endpoint.prices is not None and Decimal(endpoint.prices["prompt"]) == Decimal("0.00000015")
    assert suite.route("openai/gpt-4o-mini") == (OPENROUTER, "openai/gpt-4o-mini")


def test_provider_variants_pass_through_as_written(tmp_path: Path) -> None:
    providers = load_text(tmp_path, ROUTED).providers
    assert providers["pinned"] == {"order": ["together"], "allow_fallbacks": False}
    assert providers["best"]["sort"] == {"by": "throughput", "partition": "none"}
    assert providers["plain"] is None


def test_validate_provider_object_for_flags() -> None:
    assert validate_provider_object({"only": ["groq"]}, "--provider") == {"only": ["groq"]}
    with pytest.raises(SuiteError) as info:
        validate_provider_object({"require": ["groq"]}, "--provider")
    assert str(info.value) == "--provider: require: unknown key 'require' (did you mean 'only'?)"


def test_model_specs_selects_by_label_or_adds_new_ids(tmp_path: Path) -> None:
    suite = load_text(tmp_path, ROUTED)
    specs = suite.model_specs(["qwen-low", "x-ai/grok-4"])
    assert specs[0].params == {"reasoning": {"effort": "low"}}
    assert (specs[1].id, specs[1].endpoint) == ("x-ai/grok-4", OPENROUTER)


def test_validate_models_reports_place_and_suggestion(tmp_path: Path) -> None:
    path = write_suite(tmp_path, MINIMAL.replace("[openai/gpt-4o-mini]", "[openai/gpt-4o-mini, openai/gpt-4o-mni]"))
    suite = load_suite(path)
    with pytest.raises(SuiteError) as info:
        validate_models(suite, CATALOG_IDS)
    assert str(info.value).startswith(
        f"{path}: models[1] (line 2): unknown model id 'openai/gpt-4o-mni' (did you mean 'openai/gpt-4o-mini'"
    )


def test_validate_models_skips_endpoints_and_accepts_variants(tmp_path: Path) -> None:
    suite = load_text(tmp_path, ROUTED.replace("- openai/gpt-4o-mini\n", "- openai/gpt-4o-mini:nitro\n"))
    validate_models(suite, CATALOG_IDS)
    validate_models(suite, lambda model_id: model_id in CATALOG_IDS)
    with pytest.raises(SuiteError, match="unknown model id 'x/y'$"):
        validate_models(suite, CATALOG_IDS, models=["x/y"])


def test_validate_models_checks_judge_models(tmp_path: Path) -> None:
    suite = load_text(tmp_path, MINIMAL + "judge: {model: judge/unknown, rubric: be fair}\n" + "checks: [{judge: {}}]\n")
    assert suite.cases[0].checks[0].arg.model == "judge/unknown"
    with pytest.raises(SuiteError, match=r"checks\[0\]\.judge \(line 9\): unknown model id 'judge/unknown'"):
        validate_models(suite, CATALOG_IDS)


# ----------------------------------------------------------------- expansion and estimates
def test_expand_cases_gives_body_pieces_and_estimates(tmp_path: Path) -> None:
    text = case_with(
        "tools: [{type: function, function: {name: f, parameters: {type: object}}}]\n"
        "tool_choice: required\n"
        "response_format: {type: json_object}\n"
    )
    (expanded,) = expand_cases(load_text(tmp_path, text))
    assert expanded.case_id == "a"
    assert set(expanded.body) == {"messages", "tools", "tool_choice", "response_format", "max_tokens", "temperature"}
    assert expanded.body["tools"][0] == {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    assert expanded.prompt_tokens_est > estimate_prompt_tokens(expanded.body["messages"])


def test_estimate_prompt_tokens_counts_text_and_images() -> None:
    text_only = [{"role": "user", "content": "x" * 400}]
    assert estimate_prompt_tokens(text_only) == 100 + 4
    with_image = [{"role": "user", "content": [{"type": "text", "text": "x" * 400},
                                               {"type": "image_url", "image_url": {"url": "data:" + "A" * 9999}}]}]  # fmt: skip
    assert estimate_prompt_tokens(with_image) == 104 + IMAGE_TOKENS_ESTIMATE


def test_case_body_is_a_copy(tmp_path: Path) -> None:
    case = load_text(tmp_path, MINIMAL).cases[0]
    case.body()["messages"][0]["content"] = "changed"
    assert case.messages[0]["content"] == "Hello"


def test_yaml_anchors_and_merge_keys_work(tmp_path: Path) -> None:
    text = MINIMAL + (
        "  - &base {id: b, prompt: Hi, max_tokens: 5}\n"
        "  - <<: *base\n"
        "    id: c\n"
        "    max_tokenz: 9\n"
    )
    with pytest.raises(SuiteError, match=r"cases\[2\]\.max_tokenz \(line 11\): unknown key 'max_tokenz'"):
        load_text(tmp_path, text)
    suite = load_text(tmp_path, text.replace("max_tokenz", "max_tokens"))
    assert [c.max_tokens for c in suite.cases] == [50, 5, 9]
