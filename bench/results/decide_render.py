"""A ``Decision`` for people: the one-sentence recommendation, a plain-text table, Markdown.

Kept apart from ``bench.results.decide`` so the engine stays about numbers; the CLI prints ``decision_text``
and the dashboard's Decide page shows ``recommendation_sentence`` and offers ``decision_markdown``
("Copy as Markdown") from the very same ``Decision``.
"""

from __future__ import annotations

from typing import Any

from bench.results.decide import Candidate, Decision, format_metric, format_usd

_OBJECTIVE_WORDS = {
    "cost": "the lowest cost per request",
    "latency": "the lowest median end-to-end latency",
    "quality": "the highest pass rate",
}


def _objective_text(d: Decision, c: Candidate) -> str:
    return format_metric(d.objective_field, c.value(d.objective_field))


def _money(c: Candidate) -> str:
    per_correct = c.value("cost_per_correct_usd")
    text = f"{format_usd(c.value('cost_per_1k_requests_usd'))} per 1,000 requests"
    return text + (f", {format_usd(per_correct)} per correct answer" if per_correct is not None else "")


def _closest_uncertain(d: Decision) -> Candidate | None:
    return next((c for c in d.ranking if c.verdict == "uncertain"), None)


def _more_text(c: Candidate) -> str:
    more = [r.more_requests for r in c.results if r.verdict == "uncertain"]
    if any(m is None for m in more) or not more:
        return "more requests may not settle it"
    most = max(m for m in more if m is not None)
    return f"about {most:,} more request{'' if most == 1 else 's'} would settle it"


def recommendation_sentence(d: Decision) -> str:
    """The decision in one or two sentences, with its evidence (the numbers and the noise test)."""
    if not d.ranking:
        return "No requests in the runs given: nothing to decide."
    limits = ", ".join(c.text for c in d.constraints)
    rec = d.recommended
    if rec is None:
        uncertain = sum(c.verdict == "uncertain" for c in d.ranking)
        failing = len(d.ranking) - uncertain
        text = f"Nothing meets every constraint ({limits}): {uncertain} uncertain, {failing} failing."
        closest = _closest_uncertain(d)
        if closest is not None:
            text += f" First of the uncertain by {d.objective}: {closest.label} ({_more_text(closest)})."
        return text
    meeting = sum(c.verdict == "meets" for c in d.ranking)
    pool = (f"among the {meeting} of {len(d.ranking)} candidates that meet every constraint ({limits})"
            if d.constraints else f"among {len(d.ranking)} candidates (no constraints given)")
    text = (f"Recommended: {rec.label}, {_OBJECTIVE_WORDS[d.objective]} ({_objective_text(d, rec)}) {pool}; "
            f"{_money(rec)}.")
    ru = d.runner_up
    if ru is None:
        return text + " No runner-up: no other candidate meets the constraints or is still in doubt."
    status = "" if ru.verdict == "meets" else f", uncertain: {_more_text(ru)}"
    text += f" Runner-up: {ru.label} at {_objective_text(d, ru)}{status}; {_money(ru)}."
    gap = d.gap
    if gap is None or gap.diff is None:
        return text + " The gap between them cannot be tested (too few requests)."
    noise = "beyond" if d.beyond_noise else "within"
    ci = ("" if gap.ci_lo is None or gap.ci_hi is None else
          f", {100 * gap.level:g}% CI {_signed(d, gap.ci_lo)} to {_signed(d, gap.ci_hi)}")
    return text + f" The gap ({_signed(d, gap.diff)}{ci}) is {noise} the noise."


def _signed(d: Decision, v: float) -> str:
    if d.objective == "quality":
        return f"{100 * v:+.1f} points"
    return ("+" if v > 0 else "") + format_metric(d.objective_field, v)


def _rows(d: Decision) -> tuple[list[dict[str, Any]], list[str]]:
    fields = list(dict.fromkeys([d.objective_field, "cost_per_1k_requests_usd", "cost_per_correct_usd",
                                 "pass_rate"]))
    columns = ["rank", "candidate", "verdict", *fields, *(c.text for c in d.constraints)]
    rows = []
    for i, c in enumerate(d.ranking, 1):
        row: dict[str, Any] = {"rank": i, "candidate": c.label, "verdict": c.verdict}
        for field in fields:
            row[field] = format_metric(field, c.value(field))
        for r in c.results:
            row[r.constraint.text] = f"{format_metric(r.constraint.metric, r.value)} {r.verdict}"
        rows.append(row)
    return rows, columns


def _reasons(d: Decision) -> list[str]:
    return [f"{c.label}: {r.reason}" for c in d.ranking for r in c.results if r.verdict != "meets"]


def _heading(d: Decision, simulated: bool) -> str:
    runs = ", ".join(d.runs) or "none"
    head = f"decide over run{'s' if len(d.runs) != 1 else ''} {runs} (pooled per model x provider)"
    head += f"; objective {d.objective} ({d.objective_field}); {100 * d.level:g}% intervals"
    return head + ("  [SIMULATED: sandbox data, not real providers]" if simulated else "")


def decision_text(d: Decision, simulated: bool = False) -> str:
    """What ``orbench decide`` prints: heading, ranked table, why not, the recommendation."""
    from bench.results.render import format_table

    rows, columns = _rows(d)
    lines = [_heading(d, simulated), format_table(rows, columns)]
    reasons = _reasons(d)
    if reasons:
        lines += ["", "why not (uncertain or failing constraints):"] + [f"  {r}" for r in reasons]
    return "\n".join(lines + ["", recommendation_sentence(d)])


def decision_markdown(d: Decision, simulated: bool = False) -> str:
    """The decision for a PR or a design doc: sentence, table, reasons."""
    rows, columns = _rows(d)
    title = f"### orbench decide: {d.objective}" + (" (simulated)" if simulated else "")
    lines = [title, "", recommendation_sentence(d), "", _heading(d, False) + ".", "",
             "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(str(row.get(c, "")).replace("|", "\\|") for c in columns) + " |")
    reasons = _reasons(d)
    if reasons:
        lines += ["", "Why not:", ""] + [f"- {r}" for r in reasons]
    return "\n".join(lines) + "\n"
