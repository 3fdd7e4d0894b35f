"""The report's figures: plain functions from `load_run`'s records to the numbers shown.

Counts come from the stages' counters (the names listed in transforms/stats.py,
read with its `group`/`total`), breakdowns of the written rows from Parquet
group-bys, the per-shard table from the mix manifest. `summarize_run` gathers
everything into one JSON-able dict, also written as `summary.json`.

Instruction length is counted in ROUGE tokens (`transforms.synth.rouge.rouge_tokens`):
words for English, one token per Chinese character, the unit the novelty
scores use too.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from jobs.progress import log
from jobs.report.load import LENGTH_SAMPLE, display_path, load_run
from transforms.stats import group

# Instructions scored against the seeds per stage: one ROUGE-L search each, so
# the report stays at seconds on a run of millions of pairs.
NOVELTY_SAMPLE = 2000
NOVELTY_BINS = 10  # width 0.1 over [0, 1], as bench/bench_synth.py and Self-Instruct (fig. 3)
# Self-Instruct (fig. 3) reports the share of generated instructions whose
# highest ROUGE-L against the seeds is below 0.3.
NOVEL_BELOW = 0.3
# Lower edges of the length bins, in ROUGE tokens; the last bin is open.
LENGTH_EDGES = (0, 5, 9, 17, 33, 65, 129, 257)
CLOSEST_SHOWN = 5  # least novel instructions listed with their nearest seed
TEXT_SHOWN = 160  # characters of an instruction shown in a table
# What follows `mix.instructions.<source>.` in a source's counters (transforms/stats.py).
SOURCE_COUNTS = ("records", "documents_used", "tokens_used")


def mining_summary(mine: Mapping) -> dict:
    """Documents in and pairs out, per language and per miner, from `load_run(...)["mine"]`.

    `languages`: documents read (all of them, `mine.documents.lang.*`), distinct
    pages that gave at least one pair, and pairs written. `miners`: pages and
    pairs per miner, pairs split by language.
    """
    counters = mine.get("counters", {})
    groups = mine.get("groups", [])
    docs_by_lang = group(counters, "mine.documents.lang")
    pairs_by_lang: Counter = Counter()
    pairs_by_miner: dict[str, Counter] = {}
    for g in groups:
        lang, miner = str(g.get("lang", "?")), str(g.get("miner", "?"))
        pairs_by_lang[lang] += g["count"]
        pairs_by_miner.setdefault(miner, Counter())[lang] += g["count"]
    langs = sorted(set(docs_by_lang) | set(pairs_by_lang))
    pages_by_lang = mine.get("pages_by_language", {})
    languages = [
        {"lang": lang, "documents": docs_by_lang.get(lang, 0), "pages_with_pairs": pages_by_lang.get(lang, 0),
         "pairs": pairs_by_lang.get(lang, 0)}
        for lang in langs
    ]
    miners = [
        {"miner": miner, "pages": mine.get("pages_by_miner", {}).get(miner, 0), "pairs": sum(by_lang.values()),
         "by_language": {lang: by_lang.get(lang, 0) for lang in langs}}
        for miner, by_lang in sorted(pairs_by_miner.items())
    ]
    return {
        "documents_read": counters.get("mine.documents.read", 0),
        "pages_with_pairs": mine.get("pages", 0),
        "pairs_written": sum(pairs_by_lang.values()),
        "candidates": counters.get("mine.pairs.candidates", 0),
        "languages": languages,
        "language_codes": langs,
        "miners": miners,
    }


def synth_summary(synth: Mapping) -> dict:
    """Mode, model, records written and time of the synthesis run (`load_run(...)["synth"]`)."""
    stats = synth.get("stats", {})
    details = stats.get("details") or {}
    return {"mode": details.get("mode"), "model": details.get("model"),
            "written": synth.get("counters", {}).get("synth.records.written", 0),
            "elapsed_seconds": stats.get("elapsed_seconds")}


def mix_sources(counters: Mapping[str, int]) -> dict[str, dict]:
    """Each instruction source's counters: {source: {records, documents_used, tokens_used, skip: {reason: n}}}.

    Parsed from `mix.instructions.<source>.<count>` and `....skip.<reason>`; a
    source name may itself hold dots, so the known endings are cut from the right.
    """
    sources: dict[str, dict] = {}
    for rest, count in group(counters, "mix.instructions").items():
        if ".skip." in rest:
            source, reason = rest.split(".skip.", 1)
            sources.setdefault(source, {"skip": {}})["skip"][reason] = count
            continue
        source, _, what = rest.rpartition(".")
        if source and what in SOURCE_COUNTS:
            sources.setdefault(source, {"skip": {}})[what] = count
    return sources


def drop_reasons(counters: Mapping[str, int]) -> list[dict]:
    """Everything a stage skipped or dropped, with why: rows of stage, unit, reason, count.

    `counters` are the stages' counters together (their names carry the stage).
    Mine: documents skipped by the readers and truncated, pairs dropped by the
    filters and the two dedup passes. Synth: documents skipped, Self-Instruct
    instructions refused before any instance, records dropped by its gate.
    Mix: unreadable pretraining rows and instruction records, per source.
    """
    rows: list[dict] = []

    def add(stage: str, unit: str, counts: Mapping[str, int]) -> None:
        rows.extend({"stage": stage, "unit": unit, "reason": reason, "count": int(n)}
                    for reason, n in sorted(counts.items()) if n)

    add("mine", "documents", group(counters, "mine.documents.skip"))
    add("mine", "documents truncated", group(counters, "mine.documents.truncated"))
    add("mine", "pairs", group(counters, "mine.pairs.drop"))
    add("synth", "documents", group(counters, "synth.documents.skip"))
    add("synth", "instructions", group(counters, "synth.instructions.drop"))
    add("synth", "pairs", group(counters, "synth.records.drop"))
    add("mix", "pretraining rows", group(counters, "mix.pretrain.skip"))
    for source, counts in mix_sources(counters).items():
        add("mix", f"{source} records", counts["skip"])
    return rows


def task_types(mine: Mapping, synth: Mapping) -> dict[str, dict[str, int]]:
    """Pairs per synthesized task type (synth `task_type`) and per mined miner/kind."""
    synth_counts: Counter = Counter()
    for g in synth.get("groups", []):
        synth_counts[str(g.get("task_type", "?"))] += g["count"]
    mined_counts: Counter = Counter()
    for g in mine.get("groups", []):
        mined_counts[f"{g.get('miner', '?')}/{g.get('kind', '?')}"] += g["count"]
    return {"synth": dict(sorted(synth_counts.items())), "mined": dict(sorted(mined_counts.items()))}


def language_counts(mine: Mapping, synth: Mapping) -> list[dict]:
    """Per language: documents read by the miner, pairs mined, pairs synthesized."""
    docs = group(mine.get("counters", {}), "mine.documents.lang")
    mined: Counter = Counter()
    for g in mine.get("groups", []):
        mined[str(g.get("lang", "?"))] += g["count"]
    synthesized: Counter = Counter()
    for g in synth.get("groups", []):
        synthesized[str(g.get("lang", "?"))] += g["count"]
    langs = sorted(set(docs) | set(mined) | set(synthesized))
    return [{"lang": lang, "documents": docs.get(lang, 0), "mined": mined.get(lang, 0),
             "synth": synthesized.get(lang, 0)} for lang in langs]


def length_bin_labels(edges: Sequence[int] = LENGTH_EDGES) -> list[str]:
    labels = [f"{lo}-{hi - 1}" for lo, hi in itertools.pairwise(edges)]
    return [*labels, f"{edges[-1]}+"]


def length_distribution(rows: Iterable[Mapping], edges: Sequence[int] = LENGTH_EDGES) -> dict[str, dict]:
    """Instruction length in ROUGE tokens (English words, Chinese characters) per language.

    Per language: n, the count in each bin of `edges` (lower edges, last bin
    open), median, 90th percentile (nearest rank) and max.
    """
    from transforms.synth.rouge import rouge_tokens

    by_lang: dict[str, list[int]] = {}
    for r in rows:
        by_lang.setdefault(str(r.get("lang") or "?"), []).append(len(rouge_tokens(r["instruction"])))
    labels = length_bin_labels(edges)
    out = {}
    for lang, lengths in sorted(by_lang.items()):
        bins = [0] * len(labels)
        for n in lengths:
            bins[_bin_of(n, edges)] += 1
        lengths.sort()
        out[lang] = {"n": len(lengths), "bins": dict(zip(labels, bins)), "median": _nearest_rank(lengths, 0.5),
                     "p90": _nearest_rank(lengths, 0.9), "max": lengths[-1]}
    return out


def _bin_of(n: int, edges: Sequence[int]) -> int:
    for i in range(len(edges) - 1, -1, -1):
        if n >= edges[i]:
            return i
    return 0


def _nearest_rank(sorted_values: Sequence[int], q: float) -> int:
    return sorted_values[max(0, math.ceil(q * len(sorted_values)) - 1)]


def novelty_scores(texts: Sequence[str], seed_texts: Sequence[str]) -> list[tuple[float, str | None]]:
    """Each text's highest ROUGE-L against the seeds and that seed (`NoveltyIndex.max_similarity`)."""
    from transforms.synth.novelty_index import NoveltyIndex

    index = NoveltyIndex(texts=seed_texts)
    return [index.max_similarity(t) for t in texts]


def novelty_histogram(scores: Sequence[float]) -> dict:
    """Counts in ten bins of 0.1 over [0, 1] (1.0 in the last), the share below `NOVEL_BELOW`, the mean.

    The binning of bench/bench_synth.py's `rouge_histogram`, so report and benchmark agree.
    """
    bins = [0] * NOVELTY_BINS
    for s in scores:
        bins[min(int(s * NOVELTY_BINS), NOVELTY_BINS - 1)] += 1
    n = len(scores)
    return {
        "n": n,
        "bins": {f"{i / NOVELTY_BINS:.1f}-{(i + 1) / NOVELTY_BINS:.1f}": b for i, b in enumerate(bins)},
        "share_below_0.3": round(sum(1 for s in scores if s < NOVEL_BELOW) / n, 3) if n else 0.0,
        "mean": round(sum(scores) / n, 3) if n else 0.0,
    }


def mixing_summary(counters: Mapping[str, int], manifest: Mapping | None = None) -> dict:
    """Target and realized instruction-token ratio, per shard and overall, and each source's share.

    Totals come from the `mix.*` counters; the target, the formats, each shard's
    row and each source's weight and repeats from `manifest.json`. A shard's
    `deviation` is its realized ratio minus the target; a source's
    `token_share` is its share of the instruction tokens used, next to its weight.
    """
    manifest = manifest or {}
    target = float(manifest.get("target_ratio", 0.0))
    shards = []
    for i, s in enumerate(manifest.get("shards", [])):
        tokens = int(s.get("tokens", 0))
        ratio = float(s["ratio"]) if "ratio" in s else (s.get("instruction_tokens", 0) / tokens if tokens else 0.0)
        shards.append({"name": s.get("name", f"#{i}"), "docs": s.get("docs", 0), "tokens": tokens,
                       "instruction_docs": s.get("instruction_docs", 0),
                       "instruction_tokens": s.get("instruction_tokens", 0), "ratio": ratio,
                       "deviation": ratio - target})
    counted = mix_sources(counters)
    described = {str(s.get("name")): s for s in manifest.get("instructions", []) if isinstance(s, Mapping)}
    # The mixer writes a source named "alpaca.v2" as `mix.instructions.alpaca_v2.*`.
    counted.update({name: counted[name.replace(".", "_")] for name in described
                    if name not in counted and name.replace(".", "_") in counted})
    names = [*described, *(n for n in counted if n not in described and n not in
                           {d.replace(".", "_") for d in described})]  # the config's order first
    used = sum(c.get("tokens_used", 0) for c in counted.values())
    tokens = counters.get("mix.output.tokens", 0)
    instruction_tokens = counters.get("mix.output.instruction_tokens", 0)
    return {
        "target_ratio": target,
        "realized_ratio": instruction_tokens / tokens if tokens else 0.0,
        "tokens": tokens,
        "instruction_tokens": instruction_tokens,
        "docs": counters.get("mix.output.documents", 0),
        "formats": list(manifest.get("formats", [])),
        "pretrain": {"files": counters.get("mix.pretrain.files", 0), "docs": counters.get("mix.pretrain.documents", 0),
                     "tokens": counters.get("mix.pretrain.tokens", 0)},
        "shards": shards,
        "max_abs_deviation": max((abs(s["deviation"]) for s in shards), default=0.0),
        "sources": [
            {"name": name, "path": described.get(name, {}).get("path", ""),
             "weight": described.get(name, {}).get("weight", 0.0),
             "repeats": described.get(name, {}).get("repeats", 0),
             **{what: counted.get(name, {}).get(what, 0) for what in SOURCE_COUNTS},
             "token_share": counted.get(name, {}).get("tokens_used", 0) / used if used else 0.0}
            for name in names
        ],
    }


def summarize_run(run_dir: str, seeds: str | None = None, novelty_sample: int = NOVELTY_SAMPLE,
                  storage_options: Mapping | None = None, stage_options: Mapping | None = None) -> dict:
    """Every number of the report, as one JSON-able dict."""
    run = load_run(run_dir, sample=max(novelty_sample, LENGTH_SAMPLE), storage_options=storage_options,
                   stage_options=stage_options)
    mine, synth, mix = run["mine"], run["synth"], run["mix"]
    stages = {
        stage: {"folder": entry["folder"], "present": entry["present"], "note": entry["note"]}
        for stage, entry in run.items()
    }
    stages["mine"]["rows"] = mine.get("rows", 0)
    stages["synth"]["rows"] = synth.get("rows", 0)
    counters: dict[str, int] = {}
    for entry in run.values():
        counters.update(entry.get("counters", {}))
    return {
        "run_dir": display_path(run_dir),
        "stages": stages,
        "mining": mining_summary(mine) if mine["present"] else None,
        "synth": synth_summary(synth) if synth["present"] else None,
        "drops": drop_reasons(counters),
        "task_types": task_types(mine, synth),
        "languages": language_counts(mine, synth),
        "lengths": {
            "unit": "ROUGE tokens: words for English, one per Chinese character",
            "bins": length_bin_labels(),
            "stages": {stage: {"sampled": len(run[stage].get("sample", [])), "rows": run[stage].get("rows", 0),
                               "by_language": length_distribution(run[stage].get("sample", [])[:LENGTH_SAMPLE])}
                       for stage in ("mine", "synth") if run[stage]["present"]},
        },
        "novelty": _novelty(run, seeds, novelty_sample),
        "mixing": mixing_summary(mix.get("counters", {}), mix.get("manifest")) if mix["present"] else None,
    }


def _novelty(run: Mapping, seeds: str | None, sample: int) -> dict:
    from transforms.synth.seed_tasks import load_seed_tasks

    out: dict[str, Any] = {"threshold": NOVEL_BELOW, "sample": sample, "stages": {}, "note": ""}
    if not any(run[stage]["present"] for stage in ("mine", "synth")):
        return out
    try:
        seed_texts = [s.instruction for s in load_seed_tasks(seeds)]
    except ValueError as exc:
        out["note"] = f"seed tasks cannot be loaded, so nothing was scored: {exc}"
        return out
    out["seeds"] = len(seed_texts)
    out["seed_source"] = seeds or "templates/seeds"
    for stage in ("mine", "synth"):
        if not run[stage]["present"]:
            continue
        rows = run[stage].get("sample", [])[:sample]
        log(f"report: scoring {len(rows)} {stage} instructions against {len(seed_texts)} seeds")
        scored = novelty_scores([r["instruction"] for r in rows], seed_texts)
        closest = sorted(zip(scored, rows), key=lambda x: (-x[0][0], x[1]["id"]))[:CLOSEST_SHOWN]
        out["stages"][stage] = {
            "rows": run[stage].get("rows", 0),
            **novelty_histogram([s for s, _ in scored]),
            "closest": [{"score": round(s, 3), "instruction": _shorten(r["instruction"]), "lang": r["lang"],
                         "seed": _shorten(seed or "")} for (s, seed), r in closest],
        }
    return out


def _shorten(text: str, limit: int = TEXT_SHOWN) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
