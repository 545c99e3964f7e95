"""Conversations: turns planned per target, sent one after another with the history so far.

A chat app sends turn k with the whole conversation before it: the system prompt, user turns
1 ... k-1 with the answers they got, then user turn k. So a turn's body can be built only once
the turn before it has answered. In the plan every turn is a ``PlannedRequest`` whose
``conversation`` holds its conversation id, its turn number and its own user text; its
``body`` has no messages until ``Conversations.prepare`` builds them just before it is sent,
from the answers ``observe`` saw (or, on ``--resume``, the answers stored by earlier sessions,
``load``). With ``replay: recorded`` the history is the dataset's recorded answers instead.

The runner sends the turns of one conversation one after another and conversations in
parallel (``units``). A turn that did not end ``ok`` stops its conversation: the later turns
are recorded ``skipped`` with the reason, and a resume skips them again (the failed turn was
answered, so it is never sent again).

Money: a turn's worst case before the run covers its growing history: every earlier answer at
its max_tokens x ``MAX_BYTES_PER_TOKEN`` bytes (``bound_body``). Once built, the turn is
re-priced on its real body, and that is what the budget reserves when it is sent.

``cache``: ``explicit`` marks the system prompt and the last user message with
``cache_control: {type: ephemeral}`` for model families that cache only at breakpoints
(Anthropic); ``off`` asks for no caching (``cache_prompt: false`` on llama.cpp-style servers);
``auto`` sends nothing special. Synthetic conversations size their shared system prompt and
user turns with the target's calibration (bench.run.synthetic's probes).
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from bench.records import RequestRow, is_settled
from bench.run import synthetic as synthetic_mod
from bench.run.plan import CaseRequest, PlannedRequest, Target, build_body
from bench.run.state import RequestHooks
from bench.run.wordlist import WORDS_DIGEST
from bench.suites.model import Conversation, SyntheticConversationSpec, SyntheticSpec, estimate_prompt_tokens

BREAKPOINT_FAMILIES = ("anthropic",)
"""Model families (the id's author) that cache only at ``cache_control`` breakpoints on OpenRouter."""
WARMUP_TEXT = "Reply with the single word OK."  # shares no prefix with any conversation
WARMUP_MAX_TOKENS = 8
ROW_COLUMNS = ("request_idx", "outcome", "token_source", "output_text")


# ----------------------------------------------------------------- plan
@dataclass(frozen=True)
class _Turn:
    user: str | dict[str, Any]  # the text, or a synthetic recipe {lead, tokens}
    recorded: str | None


def extend_plan(plan: list[PlannedRequest], targets: Sequence[Target], conversations: Sequence[Conversation],
                synthetic: Sequence[SyntheticConversationSpec], *, cache: str, seed: int, repeats: int,
                generic: Callable[[Target], bool], warmup: bool) -> None:
    """Append every turn of every conversation for every target (turns of one conversation next
    to each other, conversations interleaved across targets as ``make_plan`` does), plus a short
    warm-up per target when the plan has none yet."""
    if not conversations and not synthetic:
        return
    if warmup and not any(p.is_warmup for p in plan):
        first = conversations[0].id if conversations else synthetic[0].id
        for target in targets:
            _add(plan, target, first, -1, {"messages": [_message("user", WARMUP_TEXT)],
                                              "max_tokens": WARMUP_MAX_TOKENS}, None, warmup=True)
    leads = itertools.count(1_000_000)  # synthetic text of its own: never a probe's or a prompt's lead
    round_no = 0
    for repeat in range(repeats):
        items: list[tuple[str, str, Conversation | None, SyntheticConversationSpec | None]]
        items = [(c.id, c.id, c, None) for c in conversations]
        items += [(s.id, f"{s.id}:{i + 1}", None, s) for s in synthetic for i in range(s.count)]
        set_leads = {s.id: next(leads) for s in synthetic}
        for case_id, conv_id, conv, spec in items:
            conv_id = conv_id if repeats == 1 else f"{conv_id}#{repeat + 1}"
            turns = _turns(conv, spec, leads)
            shift = round_no % len(targets)
            for target in [*targets[shift:], *targets[:shift]]:
                meta = _meta(conv, spec, cache, seed, generic(target), set_leads)
                for k, turn in enumerate(turns, 1):
                    pieces = {"messages": [], **_limits(conv, spec)}
                    _add(plan, target, case_id, repeat, pieces, {
                        **meta, "id": conv_id, "turn": k, "turns": len(turns), "user": turn.user,
                        "recorded": turn.recorded}, warmup=False)
            round_no += 1
    link_prior_users(plan)


def _turns(conv: Conversation | None, spec: SyntheticConversationSpec | None,
           leads: Iterable[int]) -> list[_Turn]:
    if conv is not None:
        recorded = list(conv.recorded) + [None] * (len(conv.turns) - len(conv.recorded))
        return [_Turn(u, r) for u, r in zip(conv.turns, recorded)]
    assert spec is not None
    it = iter(leads)
    return [_Turn({"lead": next(it), "tokens": spec.user_tokens}, None) for _ in range(spec.turns)]


def _meta(conv: Conversation | None, spec: SyntheticConversationSpec | None, cache: str, seed: int,
          generic: bool, set_leads: Mapping[str, int]) -> dict[str, Any]:
    meta: dict[str, Any] = {"cache": cache, "generic": generic,
                            "replay": conv.replay if conv is not None else "live"}
    if conv is not None:
        meta["system"] = conv.system
    else:
        assert spec is not None
        meta["system"] = {"lead": set_leads[spec.id], "tokens": spec.system_tokens}
        meta["synthetic"] = {"seed": seed, "words": WORDS_DIGEST,
                             "generator": synthetic_mod.GENERATOR}
    return meta


def _limits(conv: Conversation | None, spec: SyntheticConversationSpec | None) -> dict[str, Any]:
    max_tokens = conv.max_tokens if conv is not None else spec.output_tokens if spec is not None else None
    temperature = conv.temperature if conv is not None else spec.temperature if spec is not None else None
    out: dict[str, Any] = {}
    if max_tokens is not None:
        out["max_tokens"] = max_tokens
    if temperature is not None:
        out["temperature"] = temperature
    return out


def _add(plan: list[PlannedRequest], target: Target, case_id: str, repeat: int, pieces: dict[str, Any],
         meta: dict[str, Any] | None, *, warmup: bool) -> None:
    estimate = estimate_prompt_tokens(pieces["messages"])
    body = build_body(CaseRequest(case_id, pieces, estimate), target)
    plan.append(PlannedRequest(
        request_idx=len(plan), target=target, case_id=case_id, repeat=repeat, is_warmup=warmup, body=body,
        prompt_tokens_est=estimate, max_tokens=body.get("max_tokens") or body.get("max_completion_tokens"),
        conversation=meta,
    ))


def plan_lines(plan: Sequence[PlannedRequest], cache: str) -> list[str]:
    """What ``--dry-run`` says of the conversations in a plan."""
    sets: dict[str, set[str]] = {}
    turns: dict[str, int] = {}
    targets: dict[str, set[tuple[str, str]]] = {}
    for item in plan:
        meta = item.conversation
        if meta is None or "id" not in meta:
            continue
        sets.setdefault(item.case_id, set()).add(str(meta["id"]))
        turns[item.case_id] = max(turns.get(item.case_id, 0), int(meta["turn"]))
        targets.setdefault(item.case_id, set()).add(item.target.key)
    lines = [f"  conversation {k!r}: {len(v)} conversation(s) of up to {turns[k]} turns over "
             f"{len(targets[k])} target(s); turn k carries the answers of turns 1..k-1" for k, v in sets.items()]
    if lines:
        lines.append(f"  cache: {cache} (the worst case prices every earlier answer at max_tokens)")
    return lines


def probe_specs(specs: Sequence[SyntheticConversationSpec]) -> list[SyntheticSpec]:
    """What synthetic conversations ask of the calibration: prompts as long as their system prompt
    (no request of their own: ``count`` 0, so only the probes are planned)."""
    return [SyntheticSpec(s.id, s.system_tokens, s.output_tokens, 0) for s in specs]


def is_pending(item: PlannedRequest) -> bool:
    """A conversation turn whose messages are not built yet."""
    return item.conversation is not None and not item.body.get("messages")


def row_fields(item: PlannedRequest) -> dict[str, Any]:
    """The ``conversation_id`` and ``turn`` of a planned request's row (None outside conversations)."""
    conv = item.conversation or {}
    return {"conversation_id": conv.get("id"), "turn": conv.get("turn")}


def units(items: Sequence[PlannedRequest]) -> list[list[PlannedRequest]]:
    """What the runner dispatches: each conversation's turns in order as one unit, every other
    request alone, in plan order (a unit sits where its first turn does)."""
    out: list[list[PlannedRequest]] = []
    open_units: dict[tuple[str, str, str], list[PlannedRequest]] = {}
    for item in items:
        conv = item.conversation
        if conv is None or "id" not in conv:
            out.append([item])
            continue
        key = (*item.target.key, str(conv["id"]))
        if key not in open_units:
            open_units[key] = []
            out.append(open_units[key])
        open_units[key].append(item)
    for unit in out:
        unit.sort(key=lambda i: int((i.conversation or {}).get("turn") or 0))
    return out


# ----------------------------------------------------------------- bodies
def _message(role: str, text: str, breakpoint: bool = False) -> dict[str, Any]:
    if not breakpoint:
        return {"role": role, "content": text}
    return {"role": role, "content": [{"type": "text", "text": text, "cache_control": {"type": "ephemeral"}}]}


def needs_breakpoints(target: Target) -> bool:
    return target.api_model.split("/", 1)[0].lstrip("~") in BREAKPOINT_FAMILIES


def build_messages(system: str | None, history: Sequence[tuple[str, str]], user: str, *,
                   breakpoints: bool) -> list[dict[str, Any]]:
    """system, then (user, answer) pairs, then the new user turn; with ``breakpoints`` the system
    prompt and the new user turn carry ``cache_control`` (the next turn reads up to this one)."""
    messages = [_message("system", system, breakpoints)] if system else []
    for asked, answered in history:
        messages += [_message("user", asked), _message("assistant", answered)]
    messages.append(_message("user", user, breakpoints))
    return messages


def generic_params(meta: Mapping[str, Any], max_tokens: int | None) -> dict[str, Any]:
    """Body fields for llama.cpp-style servers: ``cache_prompt`` from the cache mode, and for synthetic
    conversations ``ignore_eos``/``min_tokens`` (every answer exactly ``output_tokens``, as
    bench.run.synthetic asks). OpenRouter gets none of them."""
    if not meta.get("generic"):
        return {}
    out: dict[str, Any] = {"cache_prompt": meta.get("cache") != "off"}
    if meta.get("synthetic") and max_tokens:
        out.update(ignore_eos=True, min_tokens=max_tokens)
    return out


def bound_body(item: PlannedRequest) -> dict[str, Any]:
    """The body to price a turn's worst case on before it is built: its history with every answer
    at max_tokens x ``MAX_BYTES_PER_TOKEN`` bytes (recorded ones as they are), synthetic text at
    its byte bound. Other requests: ``bench.run.synthetic.bound_body``."""
    if not is_pending(item):
        return synthetic_mod.bound_body(item)
    meta = item.conversation or {}
    filler = _filler(synthetic_mod.MAX_BYTES_PER_TOKEN * int(item.max_tokens or 4096))
    recorded = meta.get("prior_recorded") or []
    history = [(_bound_text(u), recorded[j] if j < len(recorded) and recorded[j] else filler)
               for j, u in enumerate(meta.get("prior_users", []))]
    system = meta.get("system")
    messages = build_messages(None if system is None else _bound_text(system), history, _bound_text(meta["user"]),
                              breakpoints=needs_breakpoints(item.target))
    return {**item.body, "messages": messages}


@functools.lru_cache(maxsize=64)
def _filler(n_bytes: int) -> str:
    return "x" * n_bytes


def _bound_text(value: str | Mapping[str, Any]) -> str:
    if isinstance(value, str):
        return value
    return _filler(synthetic_mod.MAX_BYTES_PER_TOKEN * int(value["tokens"]))


def link_prior_users(plan: Sequence[PlannedRequest]) -> None:
    """Store on each turn the user texts of the turns before it (``prior_users``), and the recorded
    answers (``prior_recorded``) of a recorded replay, so a turn's body and its bound need no
    other plan item (a resume rebuilds turns from the stored plan alone)."""
    for unit in units(plan):
        if unit[0].conversation is None:
            continue
        users: list[Any] = []
        recorded: list[str | None] = []
        for item in unit:
            meta = item.conversation
            assert meta is not None
            meta["prior_users"] = list(users)
            if meta.get("replay") == "recorded":
                meta["prior_recorded"] = list(recorded)
            users.append(meta["user"])
            recorded.append(meta.get("recorded"))


# ----------------------------------------------------------------- run time
class Conversations:
    """Builds each turn's messages just before it is sent (``RequestHooks``), from the answers of
    the turns before it; passes every other request to ``inner`` (the synthetic prompts' hooks)."""

    def __init__(self, reprice: Callable[[PlannedRequest], Decimal | None],
                 inner: RequestHooks | None = None,
                 calibration: Callable[[tuple[str, str]], synthetic_mod.Calibration | str] | None = None) -> None:
        self._reprice = reprice
        self._inner = inner
        self._calibration = calibration
        self._answers: dict[tuple[str, str, str], dict[int, str]] = {}  # conversation -> turn -> answer
        self._stops: dict[tuple[str, str, str], str] = {}  # conversation -> why it stopped

    def load(self, plan: Iterable[PlannedRequest], rows: Iterable[Mapping[str, Any]]) -> None:
        """A resume: the answers (and failures) earlier sessions stored."""
        turns = {p.request_idx: p for p in plan if p.conversation is not None and "id" in p.conversation}
        for row in rows:
            item = turns.get(row["request_idx"])
            if item is not None and is_settled(row["outcome"], row["token_source"]):
                self._record(item, row["outcome"], row["output_text"])

    def observe(self, item: PlannedRequest, row: RequestRow) -> None:
        if item.conversation is not None and "id" in item.conversation:
            self._record(item, row.outcome, row.output_text)
        elif self._inner is not None:
            self._inner.observe(item, row)

    def _record(self, item: PlannedRequest, outcome: str | None, text: str | None) -> None:
        meta = item.conversation
        assert meta is not None
        key = (*item.target.key, str(meta["id"]))
        turn = int(meta["turn"])
        if outcome == "ok" or (outcome == "cancelled" and text):
            self._answers.setdefault(key, {})[turn] = text or ""
        else:
            self._stops.setdefault(key, f"not sent: turn {turn} of the conversation ended {outcome}")

    def prepare(self, item: PlannedRequest) -> str | None:
        if not is_pending(item):
            return self._inner.prepare(item) if self._inner is not None else None
        meta = item.conversation
        assert meta is not None
        key = (*item.target.key, str(meta["id"]))
        if key in self._stops:
            return self._stops[key]
        texts = self._texts(item)
        if isinstance(texts, str):
            return texts
        system, users = texts
        turn = int(meta["turn"])
        history = []
        for j in range(1, turn):
            answer = self._answer(key, meta, j)
            if answer is None:
                return f"not sent: turn {j} of the conversation has no answer"
            history.append((users[j - 1], answer))
        messages = build_messages(system, history, users[turn - 1],
                                  breakpoints=meta.get("cache") == "explicit" and needs_breakpoints(item.target))
        pieces = {k: v for k, v in item.body.items() if k in ("max_tokens", "temperature")}
        pieces.update(generic_params(meta, pieces.get("max_tokens")))
        pieces["messages"] = messages
        item.body = build_body(CaseRequest(item.case_id, pieces, 0), item.target)
        item.prompt_tokens_est = estimate_prompt_tokens(messages)
        item.max_cost_usd = self._reprice(item)
        return None

    def _answer(self, key: tuple[str, str, str], meta: Mapping[str, Any], turn: int) -> str | None:
        if meta.get("replay") == "recorded":
            recorded = meta.get("prior_recorded") or []
            return recorded[turn - 1] if turn - 1 < len(recorded) else None
        return self._answers.get(key, {}).get(turn)

    def _texts(self, item: PlannedRequest) -> tuple[str | None, list[str]] | str:
        """(system prompt, user texts of turns 1..k), synthetic ones written to their calibrated size."""
        meta = item.conversation
        assert meta is not None
        raw_users = [*meta.get("prior_users", []), meta["user"]]
        system = meta.get("system")
        if isinstance(system, str | None) and all(isinstance(u, str) for u in raw_users):
            return system, [str(u) for u in raw_users]
        stamp = meta.get("synthetic") or {}
        if stamp.get("words") != WORDS_DIGEST or stamp.get("generator") != synthetic_mod.GENERATOR:
            return "not sent: planned by an orbench with another word list or text recipe; start a new run"
        fit = self._calibration(item.target.key) if self._calibration is not None else "no calibration"
        if isinstance(fit, str):
            return fit if fit.startswith("not sent") else f"not sent: {fit}"
        seed = int(stamp["seed"])

        def write(recipe: str | Mapping[str, Any]) -> str:
            if isinstance(recipe, str):
                return recipe
            words = max(1, round(int(recipe["tokens"]) / fit.slope))  # the template's overhead counts once
            return synthetic_mod.prompt_text(seed, int(recipe["lead"]), words)

        return (None if system is None else write(system)), [write(u) for u in raw_users]
