"""Suites: YAML (and promptfoo configs, data files) -> a typed, validated ``Suite``.

Owns the suite model, the line-aware YAML cursor, the parser, the check specs a suite
declares, datasets, the suite JSON schema and the promptfoo importer. Every problem is one
line naming the file, the place and the YAML line.

May import: bench.errors, bench.records, bench.config. Nothing above (no api, store, run,
results, quality or cli): everything else reads suites, suites read nothing of theirs.
"""

# The public modules (cases, cursor, datasets, synthetic and promptfoo_files serve parse and promptfoo):
__all__ = ["checks", "model", "parse", "promptfoo", "schema"]
