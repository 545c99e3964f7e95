"""Convert a promptfoo config (promptfooconfig.yaml) into an orbench suite.

promptfoo's model is prompts x providers x tests{vars, assert}; orbench's is models x
cases{prompt, vars, checks}. So every prompt x test becomes a case (id ``PROMPT.TEST``,
or ``TEST`` when there is one prompt), ``openrouter:MODEL`` providers become models,
``defaultTest`` becomes the suite's vars, checks and pass_threshold, and each assert
maps to a check (the table in README "promptfoo"). What cannot carry over is not
dropped silently: every refused or unknown assert, unsupported provider and template
feature is one line in ``Conversion.notes``. The result is checked by
``bench.suites.parse_suite`` before it is returned, so it always loads.

Templates: promptfoo prompts are Nunjucks; only ``{{ var }}`` has an orbench form
(``{var}``). Literal braces are doubled, and a prompt using anything more (filters,
``{% %}`` tags) is left out with a note rather than sent half-rendered.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bench.errors import ConfigError, SuiteError
from bench.suites.parse import parse_suite
from bench.suites.promptfoo_files import (  # file reading and text rules, kept apart
    VAR,
    csv_test,
    escape,
    extra_checks,
    read_structured,
    read_text,
    render,
    slug,
    unique,
    var_text,
)

OPENROUTER_PREFIX = "openrouter:"
DEFAULT_JUDGE_MODEL = "openai/gpt-4o-mini"  # when an llm-rubric names no openrouter: grader
_SAME = {"equals": "equals", "contains": "contains", "icontains": "icontains",
         "not-contains": "not_contains", "regex": "regex"}  # fmt: skip
_CODE_ASSERTS = ("javascript", "python")
_MODEL_PARAMS = ("temperature", "max_tokens", "top_p", "top_k", "frequency_penalty",
                 "presence_penalty", "repetition_penalty", "seed", "stop", "reasoning")  # fmt: skip
_NUNJUCKS = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.DOTALL)
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass
class Conversion:
    """The suite as a mapping (ready to dump), and one line per thing left behind."""

    suite: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    refused: int = 0  # asserts refused (code) or unknown

    def to_yaml(self, source: str) -> str:
        header = f"# Imported from {source} by `orbench import promptfoo`.\n"
        if self.notes:
            header += "# Left behind:\n" + "".join(f"#   {n}\n" for n in self.notes)
        return header + yaml.dump(self.suite, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)


@dataclass(frozen=True)
class _Prompt:
    key: str  # short id used in case ids
    text: str | None = None
    messages: tuple[dict[str, str], ...] = ()


class _Dumper(yaml.SafeDumper):
    """Multi-line strings as literal blocks and no &anchors, so imported suites read plainly."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _str_block(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str_block)


# ----------------------------------------------------------------- entry point
def convert_config(path: str | Path) -> Conversion:
    """Read promptfooconfig.yaml and return the orbench suite; ConfigError (one line) when
    the config cannot be read or nothing runnable is left."""
    path = Path(path)
    config = read_structured(path, str(path))
    if not isinstance(config, dict):
        raise ConfigError(f"{path}: expected a promptfoo config mapping (prompts, providers, tests)")
    conv = _Converter(path, config)
    suite = conv.build()
    text = yaml.dump(suite, Dumper=_Dumper, sort_keys=False, allow_unicode=True)
    try:
        parse_suite(text, path.with_suffix(".orbench.yaml"))
    except SuiteError as exc:
        raise ConfigError(f"{path}: the converted suite does not load: {exc}") from None
    return Conversion(suite, conv.notes, conv.refused)


class _Converter:
    """One conversion: the config, where its files are, and the notes collected."""

    def __init__(self, path: Path, config: Mapping[str, Any]) -> None:
        self.path, self.base, self.config = path, path.parent, config
        self.notes: list[str] = []
        self.refused = 0
        self.judge_model: str | None = None
        self.needs_judge = False

    def note(self, msg: str) -> None:
        if msg not in self.notes:
            self.notes.append(msg)

    def fail(self, where: str, problem: str) -> ConfigError:
        return ConfigError(f"{self.path}: {where}: {problem}")

    # ------------------------------------------------------------- the whole suite
    def build(self) -> dict[str, Any]:
        known = ("description", "prompts", "providers", "tests", "defaultTest", "evaluateOptions",
                 "tags", "outputPath", "sharing", "env", "scenarios", "redteam", "nunjucksFilters")
        for key in self.config:
            if key not in known:
                self.note(f"{key}: not a promptfoo key orbench reads; ignored")
        for key in ("scenarios", "redteam", "nunjucksFilters", "env"):
            if key in self.config:
                self.note(f"{key}: no orbench equivalent; ignored")
        models = self.models(self.config.get("providers"))
        default = self.default_test(self.config.get("defaultTest"))
        prompts = self.prompts(self.config.get("prompts"))
        cases = self.cases(prompts, self.tests(self.config.get("tests")), default["vars"])
        if not cases:
            raise self.fail("tests", "no case could be converted (see the notes above)")
        suite: dict[str, Any] = {"name": self.suite_name()}
        if isinstance(self.config.get("description"), str):
            suite["description"] = self.config["description"]
        suite["models"] = models
        repeat = (self.config.get("evaluateOptions") or {}).get("repeat")
        if isinstance(repeat, int) and repeat > 1:
            suite["repeats"] = repeat
        if default["vars"]:
            suite["vars"] = default["vars"]
        if default["checks"]:
            suite["checks"] = default["checks"]
        if default.get("threshold") is not None:
            suite["pass_threshold"] = default["threshold"]
        if self.needs_judge:
            suite["judge"] = {"model": self.judge_model or DEFAULT_JUDGE_MODEL}
            if self.judge_model is None:
                self.note(f"llm-rubric: no openrouter: grader given; judge.model is {DEFAULT_JUDGE_MODEL}")
        suite["cases"] = cases
        return suite

    def suite_name(self) -> str:
        desc = self.config.get("description")
        return slug(desc if isinstance(desc, str) and desc.strip() else self.path.stem) or "imported"

    # ------------------------------------------------------------- providers -> models
    def models(self, raw: Any) -> list[Any]:
        if raw is None:
            raise self.fail("providers", "missing: expected at least one openrouter:MODEL provider")
        entries = raw if isinstance(raw, list) else [raw]
        models: list[Any] = []
        skipped: list[str] = []
        for i, entry in enumerate(entries):
            model = self.model(entry, f"providers[{i}]", skipped)
            if model is not None:
                models.append(model)
        if skipped:
            self.note(f"providers: unsupported (orbench runs openrouter:MODEL only): {', '.join(skipped)}")
        if not models:
            raise self.fail("providers", f"no openrouter:MODEL provider to run (unsupported: {', '.join(skipped)})")
        return models

    def model(self, entry: Any, where: str, skipped: list[str]) -> Any:
        if isinstance(entry, dict) and "id" not in entry and len(entry) == 1:
            pid, options = next(iter(entry.items()))  # {openrouter:x: {config: ...}}
            entry = {"id": pid, **(options if isinstance(options, dict) else {})}
        pid = entry.get("id") if isinstance(entry, dict) else entry
        if not isinstance(pid, str):
            raise self.fail(where, "expected a provider id string or a mapping with id")
        if not pid.startswith(OPENROUTER_PREFIX) or "/" not in pid:
            skipped.append(pid)
            return None
        model_id = pid[len(OPENROUTER_PREFIX):]
        if not isinstance(entry, dict):
            return model_id
        spec: dict[str, Any] = {"id": model_id}
        if isinstance(entry.get("label"), str):
            spec["label"] = entry["label"]
        params = self.model_params(entry.get("config") or {}, where)
        if params:
            spec["params"] = params
        return spec if len(spec) > 1 else model_id

    def model_params(self, config: Mapping[str, Any], where: str) -> dict[str, Any]:
        params = {k: v for k, v in config.items() if k in _MODEL_PARAMS}
        other = [k for k in config if k not in _MODEL_PARAMS]
        if other:
            self.note(f"{where}.config: not carried over: {', '.join(map(str, other))}")
        return params

    # ------------------------------------------------------------- prompts
    def prompts(self, raw: Any) -> list[_Prompt]:
        if raw is None:
            raise self.fail("prompts", "missing: expected a prompt string, a list, or file:// references")
        if isinstance(raw, dict) and not ({"raw", "id"} & set(raw)):
            raw = [{"id": k, "label": v} for k, v in raw.items()]  # legacy {file://x: label}
        found: list[_Prompt] = []
        for i, entry in enumerate(raw if isinstance(raw, list) else [raw]):
            found.extend(self.prompt_entry(entry, f"prompts[{i}]", i))
        if not found:
            raise self.fail("prompts", "no prompt could be read")
        keys = unique([p.key for p in found]) if len(found) > 1 else [""]
        return [_Prompt(k, p.text, p.messages) for k, p in zip(keys, found)]

    def prompt_entry(self, entry: Any, where: str, index: int) -> list[_Prompt]:
        label = None
        if isinstance(entry, dict):
            label = entry.get("label")
            entry = entry.get("raw", entry.get("id"))
        if not isinstance(entry, str):
            raise self.fail(where, "expected a prompt string, file:// reference or {raw|id, label}")
        key = slug(label) if isinstance(label, str) else f"p{index + 1}"
        if not entry.startswith("file://"):
            return [self.prompt_text(entry, key)]
        ref = entry[len("file://"):]
        paths = sorted(self.base.glob(ref)) if any(c in ref for c in "*?[") else [self.base / ref]
        prompts: list[_Prompt] = []
        for path in paths:
            file_key = key if isinstance(label, str) else slug(path.stem)
            prompts.extend(self.prompt_file(path, file_key, where))
        return prompts

    def prompt_text(self, text: str, key: str) -> _Prompt:
        stripped = text.strip()
        if stripped.startswith("["):  # promptfoo reads a JSON list of messages as a chat prompt
            try:
                return self.chat_prompt(json.loads(stripped), key, "prompt")
            except json.JSONDecodeError:
                pass
        return _Prompt(key, text=text)

    def prompt_file(self, path: Path, key: str, where: str) -> list[_Prompt]:
        suffix = path.suffix.lower()
        if suffix in (".js", ".ts", ".mjs", ".cjs", ".py"):
            self.note(f"{where}: {path.name}: a prompt function; orbench runs no code from suites; left out")
            return []
        data = read_structured(path, f"{self.path}: {where}") if suffix in (".json", ".yaml", ".yml") else None
        if suffix in (".json", ".yaml", ".yml"):
            if isinstance(data, list) and all(isinstance(m, dict) for m in data):
                return [self.chat_prompt(data, key, where)]
            if isinstance(data, list):
                return [_Prompt(f"{key}-{i + 1}", text=str(t)) for i, t in enumerate(data)]
            return [_Prompt(key, text=data if isinstance(data, str) else json.dumps(data))]
        text = read_text(path, f"{self.path}: {where}")
        if suffix == ".jsonl":
            lines = [json.loads(line) for line in text.splitlines() if line.strip()]
            return [self.chat_prompt(m, f"{key}-{i + 1}", where) for i, m in enumerate(lines)]
        parts = [p.strip("\n") for p in re.split(r"^-{3,}$", text, flags=re.MULTILINE) if p.strip()]
        if len(parts) == 1:
            return [_Prompt(key, text=parts[0])]
        return [_Prompt(f"{key}-{i + 1}", text=p) for i, p in enumerate(parts)]

    def chat_prompt(self, messages: Any, key: str, where: str) -> _Prompt:
        ok = isinstance(messages, list) and all(
            isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
            for m in messages
        )
        if not ok or not messages:
            raise self.fail(where, "expected a chat prompt as a list of {role, content} strings")
        return _Prompt(key, messages=tuple({"role": m["role"], "content": m["content"]} for m in messages))

    # ------------------------------------------------------------- tests
    def tests(self, raw: Any) -> list[tuple[str, dict[str, Any]]]:
        """(where, test) pairs, with file:// lists read."""
        if raw is None:
            return [("tests", {})]  # promptfoo runs each prompt once with no vars
        out: list[tuple[str, dict[str, Any]]] = []
        for i, entry in enumerate(raw if isinstance(raw, list) else [raw]):
            where = f"tests[{i}]" if isinstance(raw, list) else "tests"
            if isinstance(entry, str):
                out.extend(self.test_file(entry, where))
            elif isinstance(entry, dict):
                out.append((where, entry))
            else:
                raise self.fail(where, "expected a test mapping or a file:// reference")
        return out

    def test_file(self, ref: str, where: str) -> list[tuple[str, dict[str, Any]]]:
        if not ref.startswith("file://"):
            raise self.fail(where, f"{ref!r}: orbench reads tests from file:// CSV, JSONL, JSON or YAML only")
        path = self.base / ref[len("file://"):]
        label = f"{where} ({path.name})"
        suffix = path.suffix.lower()
        if suffix == ".csv":
            rows = [csv_test(r) for r in csv.DictReader(io.StringIO(read_text(path, f"{self.path}: {where}")))]
        elif suffix == ".jsonl":
            text = read_text(path, f"{self.path}: {where}")
            rows = [json.loads(line) for line in text.splitlines() if line.strip()]
        elif suffix in (".json", ".yaml", ".yml"):
            data = read_structured(path, f"{self.path}: {where}")
            rows = data if isinstance(data, list) else [data]
        else:
            raise self.fail(where, f"{path.name}: expected a .csv, .jsonl, .json or .yaml test file")
        if not all(isinstance(r, dict) for r in rows):
            raise self.fail(label, "expected each test to be a mapping")
        return [(f"{label}[{i}]", r) for i, r in enumerate(rows)]

    def default_test(self, raw: Any) -> dict[str, Any]:
        if isinstance(raw, str):
            raw = read_structured(self.base / raw.removeprefix("file://"), f"{self.path}: defaultTest")
        raw = raw or {}
        if not isinstance(raw, dict):
            raise self.fail("defaultTest", "expected a mapping (vars, assert, threshold, options)")
        self.grader(raw.get("options"), "defaultTest.options")
        variables = {k: v for k, v in (raw.get("vars") or {}).items()}
        flat = {k: var_text(v) for k, v in variables.items() if not isinstance(v, list)}
        for k in set(variables) - set(flat):
            self.note(f"defaultTest.vars.{k}: a list in defaultTest is not expanded; left out")
        checks = self.checks(raw.get("assert") or [], "defaultTest", flat)
        return {"vars": flat, "checks": checks, "threshold": self.threshold(raw, "defaultTest")}

    def grader(self, options: Any, where: str) -> None:
        provider = options.get("provider") if isinstance(options, dict) else None
        if isinstance(provider, dict):
            provider = provider.get("id")
        if isinstance(provider, str):
            if provider.startswith(OPENROUTER_PREFIX):
                self.judge_model = self.judge_model or provider[len(OPENROUTER_PREFIX):]
            else:
                self.note(f"{where}.provider {provider!r}: not an openrouter: grader; not used")

    def threshold(self, test: Mapping[str, Any], where: str) -> float | None:
        value = test.get("threshold")
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1:
            self.note(f"{where}.threshold {value!r}: orbench needs a score above 0 and at most 1; left out")
            return None
        return float(value)

    # ------------------------------------------------------------- cases
    def cases(self, prompts: list[_Prompt], tests: list[tuple[str, dict[str, Any]]],
              defaults: Mapping[str, str]) -> list[dict[str, Any]]:
        test_keys = unique([slug(t.get("description")) or f"t{i + 1}" for i, (_, t) in enumerate(tests)])
        cases: list[dict[str, Any]] = []
        for (where, test), tkey in zip(tests, test_keys):
            self.grader(test.get("options"), f"{where}.options")
            if test.get("providers"):
                self.note(f"{where}.providers: orbench runs every case on every model; filter ignored")
            for ci, variables in enumerate(self.var_sets(test.get("vars"), where)):
                key = tkey if ci == 0 else f"{tkey}-v{ci + 1}"
                checks = self.checks(test.get("assert") or [], where, {**defaults, **variables})
                for prompt in prompts:
                    case = self.case(prompt, key, test, where, variables, defaults, checks)
                    if case is not None:
                        cases.append(case)
        return cases

    def var_sets(self, raw: Any, where: str) -> list[dict[str, str]]:
        """promptfoo runs a test once per combination of its list-valued vars."""
        raw = raw or {}
        if not isinstance(raw, dict):
            raise self.fail(f"{where}.vars", "expected a mapping of name -> value")
        names = [n for n in raw if _IDENT.fullmatch(str(n))]
        for bad in set(raw) - set(names):
            self.note(f"{where}.vars.{bad}: not an identifier orbench can name; left out")
        choices = [raw[n] if isinstance(raw[n], list) else [raw[n]] for n in names]
        return [{n: self.var_value(v, f"{where}.vars.{n}") for n, v in zip(names, combo)}
                for combo in itertools.product(*choices)]

    def var_value(self, value: Any, where: str) -> str:
        if isinstance(value, str) and value.startswith("file://"):
            path = self.base / value[len("file://"):]
            if path.suffix.lower() in (".js", ".py", ".ts"):
                raise self.fail(where, f"{path.name}: a var computed by code; orbench runs no code")
            return read_text(path, f"{self.path}: {where}")
        return var_text(value)

    def case(self, prompt: _Prompt, key: str, test: Mapping[str, Any], where: str,
             variables: dict[str, str], defaults: Mapping[str, str],
             checks: list[Any]) -> dict[str, Any] | None:
        case_id = f"{prompt.key}.{key}" if prompt.key else key
        known = {**defaults, **variables}
        used: set[str] = set()
        texts = [prompt.text] if prompt.text is not None else [m["content"] for m in prompt.messages]
        converted = [self.template(t, known, used, case_id) for t in texts]
        if any(c is None for c in converted):
            return None
        case: dict[str, Any] = {"id": case_id}
        if isinstance(test.get("description"), str) and test["description"].strip():
            case["description"] = test["description"]
        if prompt.text is not None:
            case["prompt"] = converted[0]
        else:
            case["messages"] = [{"role": m["role"], "content": c} for m, c in zip(prompt.messages, converted)]
        own = dict(variables)
        for missing in sorted(used - set(known)):
            self.note(f"{case_id}: the prompt uses {{{{{missing}}}}} but the test has no such var; sent empty")
            own[missing] = ""
        if own:
            case["vars"] = own
        threshold = self.threshold(test, where)
        if threshold is not None:
            case["pass_threshold"] = threshold
        if checks:
            case["checks"] = checks
        return case

    def template(self, text: str, known: Mapping[str, str], used: set[str], case_id: str) -> str | None:
        """Nunjucks ``{{ var }}`` -> ``{var}``, literal braces doubled; None (with a note)
        when the text uses a Nunjucks feature orbench does not have."""
        out, pos = [], 0
        for match in _NUNJUCKS.finditer(text):
            plain = VAR.fullmatch(match.group(0))
            if plain is None:
                self.note(f"{case_id}: {match.group(0)[:40]!r}: Nunjucks beyond {{{{ var }}}}; case left out")
                return None
            out.append(escape(text[pos:match.start()]) + "{" + plain.group(1) + "}")
            used.add(plain.group(1))
            pos = match.end()
        return "".join(out) + escape(text[pos:])

    # ------------------------------------------------------------- asserts -> checks
    def checks(self, asserts: Any, where: str, variables: Mapping[str, str]) -> list[Any]:
        if not isinstance(asserts, list):
            raise self.fail(f"{where}.assert", "expected a list of asserts")
        checks: list[Any] = []
        for i, a in enumerate(asserts):
            checks.extend(self.check(a, f"{where}.assert[{i}]", variables))
        return checks

    def check(self, a: Any, where: str, variables: Mapping[str, str]) -> list[Any]:
        if not isinstance(a, dict) or not isinstance(a.get("type"), str):
            raise self.fail(where, "expected an assert mapping with a type")
        kind, value = a["type"], render(a.get("value"), variables)
        weight = a.get("weight", 1)
        if kind in _CODE_ASSERTS:
            return self.refuse(where, f"{kind} assert refused: orbench runs no code from suites; "
                                      "the case converts without it")
        if a.get("transform"):
            return self.refuse(where, f"{kind} assert refused: its transform is code; the case converts without it")
        if isinstance(weight, bool) or not isinstance(weight, int | float) or weight < 0:
            raise self.fail(f"{where}.weight", f"expected a number >= 0, got {weight!r}")
        if weight == 0:
            return self.refuse(where, f"{kind} assert with weight 0 (informational in promptfoo) left out")
        checks = self.mapped(kind, value, a, where)
        if checks is None:
            return self.refuse(where, f"unknown assert type {kind!r}; left out")
        if weight != 1:  # an assert that became several checks keeps its total weight
            share = weight if len(checks) == 1 else weight / len(checks)
            checks = [{**c, "weight": share} for c in checks]
        return checks

    def refuse(self, where: str, why: str) -> list[Any]:
        msg = f"{where}: {why}"
        self.refused += msg not in self.notes  # once per assert, however many cases share it
        self.note(msg)
        return []

    def mapped(self, kind: str, value: Any, a: Mapping[str, Any], where: str) -> list[dict[str, Any]] | None:
        """The checks for one assert type, or None when orbench has no equivalent."""
        if kind in _SAME:
            if value is None:
                raise self.fail(f"{where}.value", f"a {kind} assert needs a value")
            text = value if isinstance(value, str) else json.dumps(value)
            return [{_SAME[kind]: text}]
        if kind in ("is-json", "contains-json"):
            if kind == "contains-json":
                self.note(f"{where}: contains-json -> json_valid, which wants the whole answer to be JSON "
                          "(one ```json fence allowed), not JSON anywhere in it")
            if value is None:
                return [{"json_valid": True}]
            return [{"json_schema": self.schema(value, where)}]
        if kind == "llm-rubric":
            if not isinstance(value, str) or not value.strip():
                raise self.fail(f"{where}.value", "an llm-rubric assert needs a rubric string")
            self.needs_judge = True
            judge: dict[str, Any] = {"rubric": value}
            provider = a.get("provider")
            if isinstance(provider, str) and provider.startswith(OPENROUTER_PREFIX):
                judge["model"] = provider[len(OPENROUTER_PREFIX):]
            if isinstance(a.get("threshold"), int | float):
                judge["pass_score"] = float(a["threshold"])
            return [{"judge": judge}]
        if kind in ("latency", "cost"):
            limit = a.get("threshold")
            if isinstance(limit, bool) or not isinstance(limit, int | float) or limit <= 0:
                raise self.fail(f"{where}.threshold", f"a {kind} assert needs a positive threshold")
            return [{"max_latency_ms": limit} if kind == "latency" else {"max_cost_usd": limit}]
        return extra_checks(kind, value)

    def schema(self, value: Any, where: str) -> dict[str, Any]:
        if isinstance(value, str) and value.startswith("file://"):
            value = read_structured(self.base / value[len("file://"):], f"{self.path}: {where}.value")
        elif isinstance(value, str):
            value = yaml.safe_load(value)
        if not isinstance(value, dict):
            raise self.fail(f"{where}.value", "expected a JSON schema (mapping or file://)")
        return value


