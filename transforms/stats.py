"""One shape for every stage's counters and its `_stats.json`.

A counter is a flat name `<stage>.<what>[.<reason or key>]` and an integer, as
datatrove's `stat_update` keeps them: `mine.documents.read`,
`mine.documents.skip.non_html`, `mine.pairs.drop.too_short`,
`synth.generations`, `mix.instructions.skip.bad_json`. Tasks return plain
Counters of such names; the driver sums them; the report reads them back with
`group` and `total`. Names are built only by `counter_name`, so the dots mean the
same everywhere.

`_stats.json` (written by each stage beside its output) is:

    {"stage": "mine", "run_id": ..., "fingerprint": ..., "elapsed_seconds": ...,
     "counters": {name: count, ...}, "outputs": [relative paths it published],
     "details": {stage-specific figures that are not counts}}

The names each stage writes (the report reads exactly these):

    mine.files.read / mine.files.resumed
    mine.documents.read / .skip.<reason> / .truncated.<reason> / .lang.<lang>
    mine.pairs.candidates (kept by the filters) / .written / .drop.<reason>
        (filters' reasons plus exact_duplicate, near_duplicate) / .pii_scrubbed
    <stage>.pairs|records.drop.contaminated.<benchmark>  (mine, synth: a pair sharing an n-gram with a
        benchmark of `decontaminate:`, transforms/decontaminate.py, counted under the first it matches)
    mine.pairs.mined.<miner>/<kind>  (before dedup)   mine.pairs.miner.<miner>  mine.pairs.kind.<kind>
    mine.pairs.miner_kind.<miner>/<kind>  mine.pairs.lang.<lang>  (written)
    synth.documents.read / .skip.<reason> / .repaired.<what>   synth.instructions.filled
    synth.instructions.novel (Self-Instruct instructions past the filters and the novelty index)
    synth.instructions.drop.<reason>  (Self-Instruct instructions refused before any instance;
        contaminated.<benchmark> among them)
    synth.prompts.sent / .cut.passage / .cut.demonstrations / .drop.prompt_too_long / .skip.no_passage
    synth.generations / .no_instructions (self_instruct replies without a task list)
    synth.records.parsed (doc_qa pairs read from replies)
    synth.records.accepted (new after every gate) / .pii_scrubbed
    synth.records.written / .drop.<reason> (filters', parsers', duplicate_output)
        / .task_type.<type or none> / .lang.<lang>
    synth.batches.done / synth.batches.resumed
    mix.pretrain.files / .documents / .tokens / .skip.<reason>
    mix.instructions.<source>.records / .documents_used / .tokens_used / .skip.<reason>
        / .drop.contaminated.<benchmark>
    mix.output.shards / .documents / .tokens / .instruction_tokens
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

STATS_FILE = "_stats.json"


def counter_name(stage: str, what: str, *key: str) -> str:
    """`counter_name("mine", "documents", "skip", "non_html")` -> "mine.documents.skip.non_html"."""
    parts = [stage, what, *key]
    for part in parts:
        if not part:
            raise ValueError(f"counter name parts must be non-empty, got {parts!r}")
    return ".".join(str(p).replace(".", "_") if i < 2 else str(p) for i, p in enumerate(parts))


def prefixed(stage: str, counters: Mapping[str, int]) -> dict[str, int]:
    """Counters a transform keeps by short name (`drop:too_short`, `documents_read`) under the stage's prefix.

    `reason:detail` becomes `reason.detail` (so `drop:too_short` -> `<stage>.drop.too_short`).
    """
    out: dict[str, int] = {}
    for name, count in counters.items():
        key = name if name.startswith(stage + ".") else f"{stage}.{name.replace(':', '.')}"
        out[key] = out.get(key, 0) + int(count)
    return out


def group(counters: Mapping[str, int], prefix: str) -> dict[str, int]:
    """The counters under `prefix.`, keyed by the rest of their name."""
    start = prefix.rstrip(".") + "."
    return {name[len(start):]: int(count) for name, count in sorted(counters.items()) if name.startswith(start)}


def total(counters: Mapping[str, int], prefix: str) -> int:
    """The sum of every counter at or under `prefix`."""
    exact = prefix.rstrip(".")
    return sum(int(c) for n, c in counters.items() if n == exact or n.startswith(exact + "."))


def stats_document(stage: str, counters: Mapping[str, int], *, run_id: str, fingerprint: str,
                   elapsed_seconds: float, outputs: list[str], details: dict[str, Any] | None = None) -> dict:
    """The `_stats.json` of one stage run (see the module docstring)."""
    return {
        "stage": stage,
        "run_id": run_id,
        "fingerprint": fingerprint,
        "elapsed_seconds": round(float(elapsed_seconds), 2),
        "counters": dict(sorted(Counter({k: int(v) for k, v in counters.items()}).items())),
        "outputs": sorted(outputs),
        "details": details or {},
    }


def counters_of(stats: Any, stage: str) -> dict[str, int]:
    """The counters of a `_stats.json` written by `stage`; {} for anything else (missing, other shape)."""
    if not isinstance(stats, dict) or stats.get("stage") != stage or not isinstance(stats.get("counters"), dict):
        return {}
    return {str(k): int(v) for k, v in stats["counters"].items() if isinstance(v, (int, float))}
