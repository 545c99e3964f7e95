"""The suite's ``synthetic:`` list: what each item asks for (``SyntheticSpec``) and its parser.

``SyntheticSpec`` itself lives with the other suite records in ``bench.suites.model``;
the prompts are built and sized at run time by ``bench.run.synthetic``.
May import: bench.suites (cursor, cases), bench.errors.
"""

from __future__ import annotations

from bench.suites.cases import Shared, read_temperature
from bench.suites.cursor import At, opt
from bench.suites.model import SyntheticSpec

_KEYS = ("id", "prompt_tokens", "output_tokens", "count", "temperature", "description")
MAX_PROMPT_TOKENS = 2_000_000


# ----------------------------------------------------------------- suite
def parse_synthetic(at: At, shared: Shared, taken: dict[str, str]) -> tuple[SyntheticSpec, ...]:
    """The ``synthetic:`` list; ``taken`` (case id -> where) catches an id a case already has."""
    specs = []
    what = "a mapping with id, prompt_tokens, output_tokens and count"
    for i, item in enumerate(at.items("synthetic prompt set")):
        f = item.fields(_KEYS, ("id", "prompt_tokens", "output_tokens"), what=what)
        spec_id = f["id"].text()
        if spec_id in taken:
            raise f["id"].fail(f"duplicate id {spec_id!r} (also {taken[spec_id]})")
        taken[spec_id] = f"synthetic[{i}]"
        prompt_tokens = f["prompt_tokens"].integer()
        if prompt_tokens > MAX_PROMPT_TOKENS:
            raise f["prompt_tokens"].fail(f"expected at most {MAX_PROMPT_TOKENS:,}, got {prompt_tokens:,}")
        specs.append(SyntheticSpec(
            spec_id, prompt_tokens, f["output_tokens"].integer(), opt(f, "count", At.integer, 1),
            opt(f, "temperature", read_temperature, shared.temperature), opt(f, "description", At.text, None),
        ))
    return tuple(specs)
