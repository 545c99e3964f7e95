"""The run plan: models x provider variants x cases x repeats, interleaved, plus warm-ups.

A plan is a list of ``PlannedRequest`` with stable ``request_idx`` values; it is
stored with the run so that ``--resume`` re-creates exactly the same requests.
Order matters for fairness: requests are interleaved across targets (round robin,
with the target order rotated every round) so slow drift over the run's wall time
(provider load, our own machine) does not favour whichever model went first.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any

from bench.errors import ConfigError
from bench.suites.model import json_copy


@dataclass(frozen=True)
class Target:
    """One model on one endpoint under one routing variant."""

    model: str  # the id as the user wrote it (e.g. "local/gemma3-270m")
    endpoint: str  # "openrouter" or a named OpenAI-compatible endpoint
    api_model: str  # the id sent in the request body
    variant: str  # provider variant name, "default" when none
    provider: dict[str, Any] | None = None  # OpenRouter provider object, passed as is
    params: dict[str, Any] = field(default_factory=dict)  # per-model extra body params

    @property
    def key(self) -> tuple[str, str]:
        return (self.model, self.variant)


@dataclass
class PlannedRequest:
    request_idx: int
    target: Target
    case_id: str
    repeat: int  # -1 for a warm-up
    is_warmup: bool
    body: dict[str, Any]
    prompt_tokens_est: int
    max_tokens: int | None
    max_cost_usd: Decimal | None = None  # filled from the catalog snapshot
    is_probe: bool = False  # a calibration probe of synthetic prompts (also a warm-up)
    # A synthetic request (bench.run.synthetic): how to build its prompt once its target's probes
    # have answered; ``body`` holds no messages until then. Probes carry their word count here.
    synthetic: dict[str, Any] | None = None
    # A turn of a conversation (bench.run.conversation): its conversation id, turn number (1-based)
    # and what builds its messages from the turns before it; ``body`` has no messages until then.
    conversation: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        t = asdict(self.target)
        return {
            "request_idx": self.request_idx,
            "target": t,
            "case_id": self.case_id,
            "repeat": self.repeat,
            "is_warmup": self.is_warmup,
            "body": self.body,
            "prompt_tokens_est": self.prompt_tokens_est,
            "max_tokens": self.max_tokens,
            "max_cost_usd": None if self.max_cost_usd is None else str(self.max_cost_usd),
            "is_probe": self.is_probe,
            "synthetic": self.synthetic,
            "conversation": self.conversation,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "PlannedRequest":
        t = d["target"]
        target = Target(
            model=t["model"],
            endpoint=t["endpoint"],
            api_model=t["api_model"],
            variant=t["variant"],
            provider=t.get("provider"),
            params=t.get("params") or {},
        )
        mc = d.get("max_cost_usd")
        return cls(
            request_idx=int(d["request_idx"]),
            target=target,
            case_id=d["case_id"],
            repeat=int(d["repeat"]),
            is_warmup=bool(d["is_warmup"]),
            body=d["body"],
            prompt_tokens_est=int(d["prompt_tokens_est"]),
            max_tokens=d.get("max_tokens"),
            max_cost_usd=None if mc is None else Decimal(mc),
            is_probe=bool(d.get("is_probe", False)),
            synthetic=d.get("synthetic"),
            conversation=d.get("conversation"),
        )


@dataclass(frozen=True)
class CaseRequest:
    """What the suite module expands one case into (independent of the model)."""

    case_id: str
    body: dict[str, Any]  # messages, max_tokens, temperature, tools, ...
    prompt_tokens_est: int


def build_body(case: CaseRequest, target: Target, stream: bool = True) -> dict[str, Any]:
    body: dict[str, Any] = json_copy(case.body)  # a body of its own per request
    body.update(target.params)
    body["model"] = target.api_model
    body.setdefault("stream", stream)  # a case may ask for a non-streamed answer (verify's probes)
    if target.provider is not None:
        body["provider"] = target.provider
    return body


def make_plan(
    targets: list[Target], cases: list[CaseRequest], repeats: int, warmup: bool
) -> list[PlannedRequest]:
    """Warm-ups first (one per target), then rounds interleaved across targets."""
    if not targets:
        raise ConfigError("nothing to run: no models selected")
    if not cases:
        raise ConfigError("nothing to run: the suite has no cases")
    plan: list[PlannedRequest] = []

    def add(target: Target, case: CaseRequest, repeat: int, is_warmup: bool) -> None:
        body = build_body(case, target)
        plan.append(
            PlannedRequest(
                request_idx=len(plan),
                target=target,
                case_id=case.case_id,
                repeat=repeat,
                is_warmup=is_warmup,
                body=body,
                prompt_tokens_est=case.prompt_tokens_est,
                max_tokens=body.get("max_tokens") or body.get("max_completion_tokens"),
            )
        )

    if warmup:
        for target in targets:
            add(target, cases[0], -1, True)
    n = len(targets)
    round_no = 0
    for repeat in range(repeats):
        for case in cases:
            shift = round_no % n
            for target in targets[shift:] + targets[:shift]:
                add(target, case, repeat, False)
            round_no += 1
    return plan
