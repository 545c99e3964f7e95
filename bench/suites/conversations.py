"""The suite's ``conversations:``, ``synthetic_conversations:`` and ``cache:``, parsed like cases.

::

    conversations:
      - id: support-chat
        system: "You are a support agent for Acme. {policy}"   # placeholders as in cases
        turns: ["My order #123 has not arrived.", "It was sent on Monday. What now?"]
        checks: [...]              # for the last turn, or a list of lists (one per turn)
      - dataset: chats.jsonl       # or .parquet: one conversation per row (ShareGPT-style)
        turns_field: messages      # the column holding the chat list ({role, content} or {from, value})
        replay: recorded           # send the recorded assistant turns instead of the model's own
    synthetic_conversations:
      - {id: long-chat, system_tokens: 2000, turns: 8, user_tokens: 100, output_tokens: 150, count: 10}
    cache: auto                    # auto | explicit | off

The records are ``bench.suites.model``'s; the turns are sequenced at run time by
``bench.run.conversation``. Every problem is one line naming the file, the place and the line
(a dataset row's problem names the row and the field).
May import: bench.suites (cursor, cases, checks, model), bench.errors; polars only for Parquet.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from bench.suites.cases import Shared, parse_case_checks, parse_vars, read_temperature, substitute
from bench.suites.checks import Check, describe_value
from bench.suites.cursor import At, opt
from bench.suites.model import REPLAY_MODES, Conversation, SyntheticConversationSpec

_INLINE_KEYS = ("id", "system", "turns", "checks", "vars", "max_tokens", "temperature")
_DATASET_KEYS = ("dataset", "turns_field", "replay", "id", "sample", "max_tokens", "temperature", "checks")
_SYNTHETIC_KEYS = ("id", "system_tokens", "turns", "user_tokens", "output_tokens", "count", "temperature")
_ROLE_ALIASES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
                 "model": "assistant", "chatgpt": "assistant", "system": "system"}
MAX_TURNS = 1000
MAX_SYSTEM_TOKENS = 2_000_000


def parse_conversations(at: At, shared: Shared, taken: dict[str, str]) -> tuple[Conversation, ...]:
    """The ``conversations:`` list; ``taken`` (case id -> where) catches an id used twice."""
    out: list[Conversation] = []
    for i, item in enumerate(at.items("conversation")):
        where = f"conversations[{i}]"
        found = _dataset(item, shared) if isinstance(item.value, dict) and "dataset" in item.value \
            else [_inline(item, shared)]
        for conv in found:
            if conv.id in taken:
                raise item.fail(f"duplicate id {conv.id!r} (also {taken[conv.id]})")
            taken[conv.id] = where
            out.append(conv)
    return tuple(out)


def _inline(at: At, shared: Shared) -> Conversation:
    f = at.fields(_INLINE_KEYS, ("id", "turns"), what="a mapping with id and turns (or a dataset)")
    conv_id = f["id"].text()
    variables = {**shared.vars, **opt(f, "vars", parse_vars, {})}
    turns = tuple(substitute(t, conv_id, variables) for t in f["turns"].items("user turn"))
    if len(turns) > MAX_TURNS:
        raise f["turns"].fail(f"expected at most {MAX_TURNS} turns, got {len(turns)}")
    return Conversation(
        id=conv_id, turns=turns, system=substitute(f["system"], conv_id, variables) if "system" in f else None,
        checks=opt(f, "checks", lambda c: _turn_checks(c, len(turns), shared), _last_turn((), len(turns), shared)),
        max_tokens=opt(f, "max_tokens", At.integer, shared.max_tokens),
        temperature=opt(f, "temperature", read_temperature, shared.temperature),
    )


def _last_turn(checks: tuple[Check, ...], n_turns: int, shared: Shared) -> tuple[tuple[Check, ...], ...]:
    """The suite's shared checks on every turn, a conversation's own on its last turn."""
    return tuple(shared.checks + (checks if k == n_turns - 1 else ()) for k in range(n_turns))


def _turn_checks(at: At, n_turns: int, shared: Shared) -> tuple[tuple[Check, ...], ...]:
    """A list of checks (the last turn's), or a list of lists: one per turn."""
    items = at.value if isinstance(at.value, list) else None
    if items and all(isinstance(x, list) for x in items):
        if len(items) != n_turns:
            raise at.fail(f"expected one list of checks per turn ({n_turns}), got {len(items)}")
        return tuple(shared.checks + parse_case_checks(at.at(k), shared.judge) if items[k] else shared.checks
                     for k in range(n_turns))
    return _last_turn(parse_case_checks(at, shared.judge), n_turns, shared)


# ----------------------------------------------------------------- datasets
def _dataset(at: At, shared: Shared) -> list[Conversation]:
    f = at.fields(_DATASET_KEYS, ("dataset",), what="a mapping with dataset and turns_field")
    file = f["dataset"].text()
    path = at.src.base_dir / file
    if path.suffix.lower() not in (".jsonl", ".parquet"):
        raise f["dataset"].fail(f"{file!r}: expected a .jsonl or .parquet file (one conversation per row)")
    if not path.is_file():
        raise f["dataset"].fail(f"cannot read {file!r} ({path}): no such file")
    at.src.files[file] = _digest(path)
    field = opt(f, "turns_field", At.text, "messages")
    replay = opt(f, "replay", lambda r: r.choice(REPLAY_MODES), "live")
    stem = opt(f, "id", At.text, path.stem)
    sample = opt(f, "sample", At.integer, None)
    checks: tuple[Check, ...] = opt(f, "checks", lambda c: parse_case_checks(c, shared.judge), ())
    out = []
    for row, record in enumerate(_read_rows(f["dataset"], path)):
        if sample is not None and row >= sample:
            break
        if not isinstance(record, dict) or field not in record:
            raise f["turns_field"].fail(f"{file!r} row {row + 1}: no field {field!r}") if "turns_field" in f \
                else f["dataset"].fail(f"{file!r} row {row + 1}: no field {field!r} (set turns_field)")
        system, turns, recorded = _split_chat(f["dataset"], f"{file!r} row {row + 1} field {field!r}",
                                              record[field], replay)
        out.append(Conversation(
            id=f"{stem}:{row + 1}", turns=turns, system=system, recorded=recorded, replay=replay,
            checks=_last_turn(checks, len(turns), shared),
            max_tokens=opt(f, "max_tokens", At.integer, shared.max_tokens),
            temperature=opt(f, "temperature", read_temperature, shared.temperature),
        ))
    if not out:
        raise f["dataset"].fail(f"{file!r} has no rows")
    return out


def _read_rows(at: At, path: Path) -> list[Any]:
    try:
        if path.suffix.lower() == ".parquet":
            import polars as pl  # here: most suites never read a Parquet file

            return pl.read_parquet(path).to_dicts()
        lines = path.read_text(encoding="utf-8").splitlines()
    except Exception as exc:  # noqa: BLE001 - any reader failure is one line naming the file
        raise at.fail(f"cannot read {path.name!r}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") \
            from None
    rows = []
    for n, line in enumerate(lines, 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise at.fail(f"{path.name!r} line {n}: not JSON ({exc.msg})") from None
    return rows


def _split_chat(at: At, where: str, value: Any, replay: str) -> tuple[str | None, tuple[str, ...],
                                                                        tuple[str | None, ...]]:
    """(system, user turns, recorded answers) of one chat list."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise at.fail(f"{where}: not a JSON chat list ({exc.msg})") from None
    if not isinstance(value, list) or not value:
        raise at.fail(f"{where}: expected a non-empty list of messages, got {describe_value(value)}")
    system: str | None = None
    turns: list[str] = []
    recorded: list[str | None] = []
    for i, raw in enumerate(value):
        role, text = _role_text(at, f"{where} message {i}", raw)
        if role == "system" and not turns and system is None:
            system = text
        elif role == "user":
            turns.append(text)
            recorded.append(None)
        elif role == "assistant" and turns and recorded[-1] is None:
            recorded[-1] = text
        else:
            raise at.fail(f"{where} message {i}: a {role} message out of order (expected user/assistant turns)")
    if not turns:
        raise at.fail(f"{where}: no user message")
    if replay == "recorded" and any(r is None for r in recorded[:-1]):
        k = recorded.index(None) + 1
        raise at.fail(f"{where}: replay: recorded needs an assistant answer after user turn {k}")
    return system, tuple(turns), tuple(recorded)


def _role_text(at: At, where: str, raw: Any) -> tuple[str, str]:
    if not isinstance(raw, dict):
        raise at.fail(f"{where}: expected a mapping {{role, content}}, got {describe_value(raw)}")
    role = _ROLE_ALIASES.get(str(raw.get("role", raw.get("from", ""))).lower())
    text = raw.get("content", raw.get("value"))
    if role is None:
        raise at.fail(f"{where}: role must be system, user or assistant (or human/gpt), "
                      f"got {describe_value(raw.get('role', raw.get('from')))}")
    if not isinstance(text, str) or not text.strip():
        raise at.fail(f"{where}: content is empty or not text")
    return role, text


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ----------------------------------------------------------------- synthetic
def parse_synthetic_conversations(at: At, shared: Shared, taken: dict[str, str]) \
        -> tuple[SyntheticConversationSpec, ...]:
    specs = []
    what = "a mapping with id, system_tokens, turns, user_tokens and output_tokens"
    for i, item in enumerate(at.items("synthetic conversation set")):
        f = item.fields(_SYNTHETIC_KEYS, ("id", "system_tokens", "turns", "user_tokens", "output_tokens"),
                        what=what)
        spec_id = f["id"].text()
        if spec_id in taken:
            raise f["id"].fail(f"duplicate id {spec_id!r} (also {taken[spec_id]})")
        taken[spec_id] = f"synthetic_conversations[{i}]"
        system_tokens, turns = f["system_tokens"].integer(), f["turns"].integer()
        if system_tokens > MAX_SYSTEM_TOKENS:
            raise f["system_tokens"].fail(f"expected at most {MAX_SYSTEM_TOKENS:,}, got {system_tokens:,}")
        if turns > MAX_TURNS:
            raise f["turns"].fail(f"expected at most {MAX_TURNS}, got {turns}")
        specs.append(SyntheticConversationSpec(
            spec_id, system_tokens, turns, f["user_tokens"].integer(), f["output_tokens"].integer(),
            opt(f, "count", At.integer, 1), opt(f, "temperature", read_temperature, shared.temperature),
        ))
    return tuple(specs)
