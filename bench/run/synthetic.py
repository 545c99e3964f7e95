"""Synthetic prompts sized in the target model's own tokens: the suite's ``synthetic:`` list.

::

    synthetic:
      - id: long-in
        prompt_tokens: 1000    # as the target model counts them: its server's usage.prompt_tokens
        output_tokens: 200     # max_tokens; plus ignore_eos and min_tokens on generic servers
        count: 20              # distinct prompts per model x provider (and per repeat)

A prompt's token count depends on the model's tokenizer and on the chat template its server
wraps the messages in, and neither is known here. So each model x provider (a *target*) is
calibrated with two probes: the same kind of text at two lengths, sent with ``max_tokens: 1``.
One ``usage.prompt_tokens`` cannot tell the template's fixed overhead from the per-word rate;
two can: tokens = intercept + slope x words, the line through both answers. A synthetic
request of that target then gets round((prompt_tokens - intercept) / slope) words.

The text is real words from ``bench.wordlist`` in sentences, seeded by the suite's ``seed:``
(same seed, same targets -> same prompts). Every prompt of a run, probes included, has its own
lead index ``k``: its first three words are ``k`` written in base len(WORDS) through three
seeded permutations of the list, so no two prompts of a run share their leading text (as
Artificial Analysis does, so a prefix cache never hits), and the rest comes from a seeded
stream of its own. Word lengths follow a fixed pattern by position (the list's own mix, every
50 words) and a prompt of n words has round(n / 10.5) sentences, so a tokenizer that counts
characters (the sandbox: ~4 a token), one that splits long words, and one that keeps common
words whole (a large vocabulary) all count a number linear in the words, which the fit assumes.

In a run, probes are planned as warm-ups (``is_probe`` and ``is_warmup``, so every statistic
leaves them out) with concrete bodies, priced, budgeted and journaled like any request.
Synthetic requests are planned with no messages yet and a worst case that holds whatever the
calibration says (their prompt may be at most ``MAX_BYTES_PER_TOKEN`` bytes per asked token).
The runner sends every warm-up first; ``Synthesizer.prepare`` builds each prompt just before its
request is sent, from its target's probe answers, and re-prices it (never above the planned
worst case). A resume reads the stored probe rows, so it builds the prompts the first session
would have built, and sends no settled probe again. A target whose probes failed or came back
without usage has its synthetic requests ``skipped``, with the reason in ``error``.
"""

from __future__ import annotations

import functools
import itertools
import math
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from bench.errors import ConfigError
from bench.records import RequestRow, is_settled
from bench.run.plan import CaseRequest, PlannedRequest, Target, build_body
from bench.run.wordlist import WORDS, WORDS_DIGEST
from bench.suites.model import SyntheticSpec, estimate_prompt_tokens

PROBE_MAX_TOKENS = 1
PROBE_CASES = ("probe:short", "probe:long")  # the probes' case_id
SHORT_PROBE_WORDS = 16
LONG_PROBE_WORDS = (64, 2048)  # the long probe: half the largest prompt_tokens in words, within these
MAX_BYTES_PER_TOKEN = 16
"""A synthetic prompt has at most this many UTF-8 bytes per asked token (its worst case is priced
on it before the calibration is known); the words here run at about 7 bytes per word."""
GENERATOR = 1  # the text recipe's version, stored with every planned prompt
# Word lengths by position, repeating every 50 words with the list's own mix (1 two-letter word,
# 4 of three letters, 14 of four, ...), each length spread evenly through the 50: every prompt of
# n words has the same lengths, and any first m words have each length in proportion (to within
# one word), so a tokenizer whose count follows word length counts a number linear in the words.
_LENGTH_MIX = {2: 1, 3: 4, 4: 14, 5: 13, 6: 10, 7: 5, 8: 2, 9: 1}
_LEAD_LENGTHS = (4, 5, 6)  # where the spread starts: the largest classes (428 x 421 x 322 triples)
_SENTENCE_WORDS = 10.5  # words per sentence on average; a prompt has round(words / this) sentences
_SENTENCE_SHIFTS = (0.0, -0.25, 0.3, -0.15, 0.2, -0.3, 0.1, 0.25, -0.1)  # of a sentence: uneven lengths
_BY_LENGTH: dict[int, tuple[str, ...]] = {n: tuple(w for w in WORDS if len(w) == n) for n in _LENGTH_MIX}
_PATTERN = tuple(n for _, _, n in sorted(((j + 0.5) / k, -k, n) for n, k in _LENGTH_MIX.items()
                                          for j in range(k)))
assert _PATTERN[:len(_LEAD_LENGTHS)] == _LEAD_LENGTHS


# ----------------------------------------------------------------- text
@functools.lru_cache(maxsize=8)
def _permutations(seed: int) -> tuple[tuple[str, ...], ...]:
    rng = random.Random(f"orbench-synthetic-lead:{seed}")
    perms = []
    for length in _LEAD_LENGTHS:
        words = list(_BY_LENGTH[length])
        rng.shuffle(words)
        perms.append(tuple(words))
    return tuple(perms)


def lead_words(seed: int, lead: int) -> list[str]:
    """The first words of prompt ``lead``: ``lead`` in mixed radix through seeded permutations,
    so distinct for every lead below 58 million, and the very first word distinct for any 428
    consecutive leads."""
    out = []
    for perm in _permutations(seed):
        lead, digit = divmod(lead, len(perm))
        out.append(perm[digit])
    return out


def prompt_text(seed: int, lead: int, n_words: int) -> str:
    """``n_words`` words in sentences: the lead words, then a seeded stream of their own, each
    word of the length its position asks (``_PATTERN``)."""
    rng = random.Random(f"orbench-synthetic:{seed}:{lead}")
    words = lead_words(seed, lead)[:n_words]
    while len(words) < n_words:
        pool = _BY_LENGTH[_PATTERN[len(words) % len(_PATTERN)]]
        words.append(pool[rng.randrange(len(pool))])
    return " ".join(_sentences(words))


LEAD_WORDS = 6  # leading words a monitor's tick puts before each case prompt


def with_leads(cases: Sequence[CaseRequest], seed: int) -> list[CaseRequest]:
    """Each case with synthetic leading text of its own before its first user text (as Artificial
    Analysis does): a tick's prompts differ from every earlier tick's, so no prefix or response
    cache answers them. The rest of the prompt (and any ``[[answer: ...]]`` it holds) is kept."""
    out = []
    for i, case in enumerate(cases):
        messages = [dict(m) for m in case.body.get("messages") or []]
        users = [m for m in messages if m.get("role") == "user" and isinstance(m.get("content"), str)]
        if not users:
            out.append(case)
            continue
        lead = " ".join(lead_words(seed, i)[:LEAD_WORDS])
        users[0]["content"] = f"(ref {lead})\n{users[0]['content']}"
        body = {**case.body, "messages": messages}
        out.append(CaseRequest(case.case_id, body, case.prompt_tokens_est + 3 * LEAD_WORDS))
    return out


def _sentences(words: list[str]) -> list[str]:
    """round(len / 10.5) sentences of uneven length: the number of full stops (a token each in
    most tokenizers) follows the word count to within half a sentence, up or down."""
    count = max(1, round(len(words) / _SENTENCE_WORDS))
    step = len(words) / count
    cuts = [0]
    for i in range(1, count):
        shift = _SENTENCE_SHIFTS[i % len(_SENTENCE_SHIFTS)]
        cuts.append(min(len(words) - (count - i), max(cuts[-1] + 1, round((i + shift) * step))))
    cuts.append(len(words))
    out = []
    for start, end in zip(cuts, cuts[1:]):
        chunk = words[start:end]
        out.append(" ".join([chunk[0].capitalize(), *chunk[1:]]) + ".")
    return out


# ----------------------------------------------------------------- calibration
@dataclass(frozen=True)
class Calibration:
    """prompt tokens = intercept + slope x words, for one target."""

    intercept: float  # the chat template's tokens (and the ends of the text)
    slope: float  # tokens per word

    @classmethod
    def fit(cls, points: Mapping[int, int]) -> Calibration:
        """The line through two (words, prompt tokens) answers."""
        (w1, t1), (w2, t2) = sorted(points.items())
        slope = (t2 - t1) / (w2 - w1)
        return cls(t1 - slope * w1, slope)

    def words_for(self, prompt_tokens: int) -> int:
        return max(1, round((prompt_tokens - self.intercept) / self.slope))


def probe_words(specs: Sequence[SyntheticSpec]) -> tuple[int, int]:
    """Word counts of the short and the long probe: the long one near the largest prompt asked
    (half its tokens in words), so the sizes are interpolated rather than extrapolated far."""
    low, high = LONG_PROBE_WORDS
    largest = max(s.prompt_tokens for s in specs)
    return SHORT_PROBE_WORDS, min(high, max(low, math.ceil(largest / 2)))


# ----------------------------------------------------------------- plan
def _user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


def _pieces(meta: Mapping[str, Any], text: str | None) -> dict[str, Any]:
    """The body pieces of a synthetic request (no messages until its text is known)."""
    pieces: dict[str, Any] = {"messages": [] if text is None else [_user(text)],
                              "max_tokens": meta["output_tokens"]}
    if meta.get("temperature") is not None:
        pieces["temperature"] = meta["temperature"]
    if meta.get("generic"):  # vLLM / llama.cpp: generate exactly output_tokens (OpenRouter has no such knob)
        pieces["ignore_eos"] = True
        pieces["min_tokens"] = meta["output_tokens"]
    return pieces


def extend_plan(plan: list[PlannedRequest], targets: Sequence[Target], specs: Sequence[SyntheticSpec], *,
                seed: int, repeats: int, generic: Callable[[Target], bool]) -> None:
    """Append two probes per target, then ``count`` x ``repeats`` synthetic requests per set and
    target, interleaved across targets as ``bench.plan.make_plan`` does. ``generic(target)``: the
    target is a generic OpenAI-compatible server (it gets ``ignore_eos`` and ``min_tokens``)."""
    if not specs:
        return
    if not targets:
        raise ConfigError("nothing to run: no models selected")
    leads = itertools.count()

    def add(target: Target, case_id: str, repeat: int, pieces: dict[str, Any], estimate: int,
            meta: dict[str, Any], probe: bool) -> None:
        body = build_body(CaseRequest(case_id, pieces, estimate), target)
        plan.append(PlannedRequest(
            request_idx=len(plan), target=target, case_id=case_id, repeat=repeat, is_warmup=probe,
            body=body, prompt_tokens_est=estimate,
            max_tokens=body.get("max_tokens") or body.get("max_completion_tokens"),
            is_probe=probe, synthetic=meta,
        ))

    stamp = {"seed": seed, "words": WORDS_DIGEST, "generator": GENERATOR}
    for target in targets:
        for case_id, words in zip(PROBE_CASES, probe_words(specs)):
            lead = next(leads)
            messages = [_user(prompt_text(seed, lead, words))]
            pieces = {"messages": messages, "max_tokens": PROBE_MAX_TOKENS}
            add(target, case_id, -1, pieces, estimate_prompt_tokens(messages),
                {"probe_words": words, "lead": lead, **stamp}, True)
    round_no = 0
    for repeat in range(repeats):
        for spec in specs:
            for _ in range(spec.count):
                shift = round_no % len(targets)
                for target in [*targets[shift:], *targets[:shift]]:
                    meta = {"set": spec.id, "lead": next(leads), "prompt_tokens": spec.prompt_tokens,
                            "output_tokens": spec.output_tokens, "temperature": spec.temperature,
                            "generic": generic(target), **stamp}
                    add(target, spec.id, repeat, _pieces(meta, None), spec.prompt_tokens, meta, False)
                round_no += 1


def is_pending(item: PlannedRequest) -> bool:
    """A synthetic request whose prompt is not built yet."""
    return item.synthetic is not None and not item.is_probe and not item.body.get("messages")


@functools.lru_cache(maxsize=64)
def _filler(n_bytes: int) -> str:
    return "x" * n_bytes


def bound_body(item: PlannedRequest) -> dict[str, Any]:
    """The body to price a request's worst case on: a pending synthetic request's prompt at its
    byte bound (``MAX_BYTES_PER_TOKEN`` x prompt_tokens); any other request's own body."""
    if not is_pending(item):
        return item.body
    assert item.synthetic is not None
    return {**item.body, "messages": [_user(_filler(MAX_BYTES_PER_TOKEN * item.synthetic["prompt_tokens"]))]}


def plan_lines(plan: Sequence[PlannedRequest]) -> list[str]:
    """What ``--dry-run`` says of the synthetic part of a plan (its sizes are known only at run time)."""
    sets: dict[str, list[PlannedRequest]] = {}
    probes = 0
    for item in plan:
        if item.is_probe:
            probes += 1
        elif item.synthetic is not None:
            sets.setdefault(str(item.synthetic["set"]), []).append(item)
    lines = []
    for set_id, items in sets.items():
        meta = items[0].synthetic or {}
        targets = len({i.target.key for i in items})
        extra = " + ignore_eos/min_tokens on generic servers" if any((i.synthetic or {}).get("generic")
                                                                  for i in items) else ""
        lines.append(f"  synthetic {set_id!r}: {len(items)} prompts over {targets} target(s), "
                     f"{meta.get('prompt_tokens')} prompt tokens each (sized at run time), "
                     f"max_tokens {meta.get('output_tokens')}{extra}")
    if probes:
        lines.append(f"  + {probes} calibration probes (2 per target, max_tokens {PROBE_MAX_TOKENS}, "
                     "counted as warm-ups), sent first")
    return lines


# ----------------------------------------------------------------- run time
PROBE_ROW_COLUMNS = ("request_idx", "outcome", "token_source", "prompt_tokens", "error")


class Synthesizer:
    """Builds synthetic prompts just before they are sent, from their target's probe answers.

    The runner calls ``observe`` with every finished request and ``prepare`` before sending one
    (``bench.run.state.RequestHooks``). ``reprice`` gives a built request's worst case."""

    def __init__(self, reprice: Callable[[PlannedRequest], Decimal | None]) -> None:
        self._reprice = reprice
        self._answers: dict[tuple[str, str], dict[int, int]] = {}  # target -> probe words -> tokens
        self._problems: dict[tuple[str, str], str] = {}
        self._fits: dict[tuple[str, str], Calibration | str] = {}

    def load(self, plan: Iterable[PlannedRequest], rows: Iterable[Mapping[str, Any]]) -> None:
        """A resume: the probe rows earlier sessions settled (the others are sent again)."""
        probes = {p.request_idx: p for p in plan if p.is_probe and p.synthetic is not None}
        for row in rows:
            item = probes.get(row["request_idx"])
            if item is not None and is_settled(row["outcome"], row["token_source"]):
                self._record(item, row["request_idx"], row["outcome"], row["token_source"],
                             row["prompt_tokens"], row["error"])

    def observe(self, item: PlannedRequest, row: RequestRow) -> None:
        if item.is_probe and item.synthetic is not None:
            self._record(item, row.request_idx, row.outcome, row.token_source, row.prompt_tokens, row.error)

    def _record(self, item: PlannedRequest, idx: int, outcome: str | None, source: str | None,
                tokens: int | None, error: str | None) -> None:
        key = item.target.key
        self._fits.pop(key, None)
        words = int(item.synthetic["probe_words"]) if item.synthetic is not None else None
        if outcome in ("ok", "cancelled") and source == "usage" and tokens and words is not None:
            self._answers.setdefault(key, {})[words] = int(tokens)  # cancelled after its usage counts
        elif key not in self._problems:
            why = f": {error}" if outcome != "ok" and error else (
                "" if outcome != "ok" else " with no usage.prompt_tokens from the server")
            self._problems[key] = f"its calibration probe (request {idx}) ended {outcome}{why}"[:500]

    def calibration(self, key: tuple[str, str]) -> Calibration | str:
        """The target's fit, or why there is none."""
        if key not in self._fits:
            self._fits[key] = self._fit(key)
        return self._fits[key]

    def _fit(self, key: tuple[str, str]) -> Calibration | str:
        if key in self._problems:
            return f"not sent: no calibration: {self._problems[key]}"
        answers = self._answers.get(key, {})
        if len(answers) < 2:
            return "not sent: no calibration: its probes were not answered"
        fit = Calibration.fit(answers)
        if fit.slope <= 0:
            counts = ", ".join(f"{w} words -> {t} tokens" for w, t in sorted(answers.items()))
            return f"not sent: no calibration: the server counted no more tokens for a longer prompt ({counts})"
        return fit

    def prepare(self, item: PlannedRequest) -> str | None:
        """Build a pending synthetic request's prompt (and its tighter worst case); returns why
        it cannot be sent, or None. Requests of every other kind pass untouched."""
        if not is_pending(item):
            return None
        meta = item.synthetic
        assert meta is not None
        if meta.get("words") != WORDS_DIGEST or meta.get("generator") != GENERATOR:
            return "not sent: planned by an orbench with another word list or text recipe; start a new run"
        fit = self.calibration(item.target.key)
        if isinstance(fit, str):
            return fit
        asked = int(meta["prompt_tokens"])
        text = prompt_text(int(meta["seed"]), int(meta["lead"]), fit.words_for(asked))
        if len(text.encode()) > MAX_BYTES_PER_TOKEN * asked:
            return (f"not sent: the calibration ({fit.slope:.3f} tokens a word) asks for more than "
                    f"{MAX_BYTES_PER_TOKEN} bytes a token, beyond the worst case planned")
        item.body = build_body(CaseRequest(item.case_id, _pieces(meta, text), asked), item.target)
        item.prompt_tokens_est = asked
        item.max_cost_usd = self._reprice(item)
        return None
