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
from jobs.report.load import LENGTH_SAMPLE, SECTIONED_STAGE, display_path, load_run
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
# A figure resting on fewer documents or pairs than this gets a caution beside it.
# Below 30 one item moves a share by more than 3 points, and the 95 % interval of a
# share near one half is wider than +-18 points (1.96 * sqrt(0.25 / 30) = 0.18):
# bars that differ by less than that say nothing. 30 is also the usual rule of
# thumb below which a normal approximation of a proportion is not trusted.
FEW_DOCUMENTS = 30
# Counter verbs that remove or shorten something (`<stage>.<what>.<verb>.<reason>`),
# and how the report names the unit they apply to; any reason under them is shown.
DROP_VERBS = {"skip": "", "drop": "", "truncated": " truncated", "cut": " cut"}
# Units whose counter name is terse: (stage, what) -> what the report calls them.
UNIT_NAMES = {("mix", "pretrain"): "pretraining rows", ("synth", "records"): "pairs"}
STAGE_ORDER = ("mine", "synth", "mix")
# Characters of an example's output and input shown (instructions get TEXT_SHOWN).
EXAMPLE_TEXT_SHOWN = 300


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
    """Mode, model, records written and time of the synthesis run (`load_run(...)["synth"]`), and per section.

    Synthesis run as several sections (one per mode, say) gives `sections`, one
    row each; `mode` and `model` then list the distinct ones, comma-separated.
    """
    sections = [_synth_section(s) for s in synth.get("sections") or [synth]]
    present = [s for s in sections if s["present"]]
    modes = list(dict.fromkeys(s["mode"] for s in present if s["mode"]))
    models = list(dict.fromkeys(s["model"] for s in present if s["model"]))
    elapsed = [s["elapsed_seconds"] for s in present if s["elapsed_seconds"] is not None]
    return {"mode": ", ".join(modes) or None, "model": ", ".join(models) or None,
            "written": synth.get("counters", {}).get("synth.records.written", 0),
            "elapsed_seconds": round(sum(elapsed), 2) if elapsed else None,
            "sections": sections}


def synth_quality(counters: Mapping[str, int]) -> dict:
    """How the model's work went in one synthesis section, from its counters: prompts sent, cut
    to fit or too long, generations, and the share of generations that gave a kept pair.

    `accepted_per_generation` can pass 1 (doc_qa keeps several pairs per reply); None
    without generations (template_only)."""
    get = lambda name: counters.get(f"synth.{name}", 0)
    generations = get("generations")
    return {"prompts_sent": get("prompts.sent"), "prompts_cut": get("prompts.cut.passage") + get("prompts.cut.demonstrations"),
            "prompts_too_long": get("prompts.drop.prompt_too_long"), "generations": generations,
            "pairs_parsed": get("records.parsed"), "accepted": get("records.accepted"),
            "accepted_per_generation": round(get("records.accepted") / generations, 3) if generations else None}


def _synth_section(entry: Mapping) -> dict:
    stats = entry.get("stats", {})
    details = stats.get("details") or {}
    inputs = details.get("inputs")
    return {"name": entry.get("name", SECTIONED_STAGE), "folder": display_path(entry.get("folder", "")),
            "present": bool(entry.get("present")), "note": entry.get("note", ""),
            "mode": details.get("mode"), "model": details.get("model"),
            "written": entry.get("counters", {}).get("synth.records.written", 0),
            "rows": entry.get("rows", 0), "elapsed_seconds": stats.get("elapsed_seconds"),
            "inputs": [str(i) for i in inputs] if isinstance(inputs, list) else [],
            "input_files": details.get("input_files"), "prompt_format": details.get("prompt_format") or "",
            "quality": synth_quality(entry.get("counters", {}))}


def mix_sources(counters: Mapping[str, int]) -> dict[str, dict]:
    """Each instruction source's counters: {source: {records, documents_used, tokens_used, skip: {reason: n}}}.

    Parsed from `mix.instructions.<source>.<count>` and `....skip.<reason>`; a
    source name may itself hold dots, so the known endings are cut from the right.
    """
    sources: dict[str, dict] = {}
    for rest, count in group(counters, "mix.instructions").items():
        verb = next((v for v in (".skip.", ".drop.") if v in rest), None)
        if verb:  # unreadable rows (skip) and records left out (drop: contaminated.<benchmark>)
            source, reason = rest.split(verb, 1)
            sources.setdefault(source, {"skip": {}})["skip"][reason] = count
            continue
        source, _, what = rest.rpartition(".")
        if source and what in SOURCE_COUNTS:
            sources.setdefault(source, {"skip": {}})[what] = count
    return sources


def drop_reasons(counters: Mapping[str, int], source_labels: Mapping[str, str] | None = None,
                 stage_label: str | None = None) -> list[dict]:
    """Everything a stage skipped, dropped, truncated or cut, with why: rows of stage, unit, reason, count.

    `counters` are the stages' counters together (their names carry the stage).
    Every counter `<stage>.<what>.<verb>.<reason>` with a verb of `DROP_VERBS`
    is a row, so a reason a stage starts counting shows without a change here:
    mine's skipped and truncated documents and dropped pairs, synth's skipped
    documents, refused Self-Instruct instructions, dropped or cut prompts and
    dropped pairs, mix's unreadable pretraining rows. A mix instruction
    source's skips (`mix.instructions.<source>.skip.<reason>`, the source name
    may hold dots) are named after `source_labels[source]` (its path) when given.
    `stage_label` replaces the stage's name (a synthesis section: `synth/doc_qa`).
    Rows come in the order mine, synth, mix, then by name.
    """
    rows: list[dict] = []
    sources = mix_sources(counters)
    for name, count in sorted(counters.items(), key=lambda kv: (_stage_rank(kv[0]), kv[0])):
        parts = name.split(".", 3)
        if len(parts) < 4 or not count:
            continue
        stage, what, verb, reason = parts
        if stage == "mix" and what == "instructions" and verb not in DROP_VERBS:
            continue  # a source's counters: below
        if verb in DROP_VERBS:
            unit = UNIT_NAMES.get((stage, what), what) + DROP_VERBS[verb]
            rows.append({"stage": stage_label or stage, "unit": unit, "reason": reason, "count": int(count)})
    for source, counts in sources.items():
        label = (source_labels or {}).get(source, source)
        rows.extend({"stage": stage_label or "mix", "unit": f"{label} records", "reason": reason, "count": int(n)}
                    for reason, n in sorted(counts["skip"].items()) if n)
    return rows


def contamination(stages: Sequence[tuple[str, Mapping]]) -> dict | None:
    """Pairs dropped for sharing an n-gram with a benchmark, per benchmark and stage.

    `stages` are (label, load_run entry) in pipeline order. Benchmarks come from each
    stage's `_stats.json` details (so a benchmark checked and never matched shows 0) and
    from its counters `<stage>.<pairs|records>.drop.contaminated.<benchmark>`, or
    mix's `mix.instructions.<source>.drop.contaminated.<benchmark>` summed over sources.
    None when no stage decontaminated.
    """
    from transforms.decontaminate import CONTAMINATED

    table: dict[str, dict[str, int]] = {}
    paths: dict[str, str] = {}
    columns = []
    for label, entry in stages:
        details = ((entry.get("stats") or {}).get("details") or {}).get("decontaminate")
        marker = f".drop.{CONTAMINATED}."
        # Pairs and records only: Self-Instruct's refused instructions (synth.instructions.drop.…) are no pairs.
        counters = {name: n for name, n in (entry.get("counters") or {}).items()
                    if marker in name and not name.startswith("synth.instructions.")}
        if not details and not counters:
            continue
        columns.append(label)
        for bench in (details or {}).get("benchmarks", []):
            table.setdefault(bench["name"], {})[label] = 0
            paths.setdefault(bench["name"], display_path(str(bench.get("path", ""))))
        totals: Counter = Counter()
        for name, n in counters.items():
            totals[name.split(marker, 1)[1]] += int(n)
        for bench, n in totals.items():
            table.setdefault(bench, {})[label] = n
    if not columns:
        return None
    rows = [{"benchmark": b, "path": paths.get(b, ""), "counts": {c: table[b].get(c) for c in columns},
             "total": sum(n for n in table[b].values() if n)} for b in sorted(table)]
    return {"stages": columns, "rows": rows}


def _stage_rank(name: str) -> int:
    stage = name.split(".", 1)[0]
    return STAGE_ORDER.index(stage) if stage in STAGE_ORDER else len(STAGE_ORDER)


def task_types(mine: Mapping, synth: Mapping) -> dict[str, dict[str, int]]:
    """Pairs per synthesized mode/task type (synth `mode`, `task_type`) and per mined miner/kind.

    An output without a `mode` column (an older synthesis) is keyed by task type alone.
    """
    synth_counts: Counter = Counter()
    for g in synth.get("groups", []):
        task = str(g.get("task_type", "?"))
        synth_counts[f"{g['mode']}/{task}" if g.get("mode") else task] += g["count"]
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
    `deviation` is its realized ratio minus its own `target_ratio` (a ratio
    schedule gives each shard its own; without one, the overall target); a
    source's `token_share` is its share of the instruction tokens used, next to
    its weight. `ratio_schedule` is the manifest's schedule (`{"schedule": [...]}`),
    None for a constant ratio.
    """
    manifest = manifest or {}
    target = float(manifest.get("target_ratio", 0.0))
    shards = []
    for i, s in enumerate(manifest.get("shards", [])):
        tokens = int(s.get("tokens", 0))
        ratio = float(s["ratio"]) if "ratio" in s else (s.get("instruction_tokens", 0) / tokens if tokens else 0.0)
        shard_target = float(s.get("target_ratio", target))
        shards.append({"name": s.get("name", f"#{i}"), "docs": s.get("docs", 0), "tokens": tokens,
                       "instruction_docs": s.get("instruction_docs", 0),
                       "instruction_tokens": s.get("instruction_tokens", 0), "ratio": ratio,
                       "target_ratio": shard_target, "deviation": ratio - shard_target})
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
        "ratio_schedule": manifest.get("ratio_schedule") or None,
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
             "label": source_label(name, described.get(name, {}).get("path", "")),
             "weight": described.get(name, {}).get("weight", 0.0),
             "repeats": described.get(name, {}).get("repeats", 0),
             **{what: counted.get(name, {}).get(what, 0) for what in SOURCE_COUNTS},
             "token_share": counted.get(name, {}).get("tokens_used", 0) / used if used else 0.0}
            for name in names
        ],
    }


def source_label(name: str, path: str) -> str:
    """How the report names an instruction source: its path, or its name when the manifest has no path.

    The mixer names unnamed sources `instructions0`, `instructions1`, ... by
    their place in the config, which says nothing to a reader; the path does.
    """
    return str(path) if path else str(name)


def inputs_summary(run: Mapping) -> dict:
    """What went in, as each stage recorded it.

    Mine: the input files and patterns (`details.inputs` of its `_stats.json`).
    Synth, per section: `details.inputs` when recorded, else only the number of
    input files (`details.input_files`). Mix: each instruction source's name,
    path and records read (manifest.json), and the pretraining sources'
    paths when the manifest records them (`pretrain.sources`), else their
    file, document and token counts only.
    """
    mine, synth, mix = run["mine"], run["synth"], run["mix"]
    mine_inputs = (mine.get("stats", {}).get("details") or {}).get("inputs")
    manifest = mix.get("manifest") or {}
    pretrain = manifest.get("pretrain") if isinstance(manifest.get("pretrain"), Mapping) else {}
    pretrain_sources = [
        {"name": str(p.get("name", "")), "path": str(p.get("path", "")), "files": p.get("files")}
        for p in pretrain.get("sources", []) if isinstance(p, Mapping)]
    return {
        "mine": {"present": mine["present"],
                 "inputs": [str(i) for i in mine_inputs] if isinstance(mine_inputs, list) else []},
        "synth": [{k: sec[k] for k in ("name", "present", "mode", "inputs", "input_files")}
                  for sec in synth_summary(synth)["sections"]] if synth["present"] else [],
        "mix": {"present": mix["present"],
                "pretrain": pretrain_sources,
                "pretrain_files": pretrain.get("files"), "pretrain_docs": pretrain.get("docs"),
                "instructions": [
                    {"name": str(src.get("name", "")), "path": str(src.get("path", "")),
                     "label": source_label(src.get("name", ""), src.get("path", "")),
                     "records": src.get("records"), "weight": src.get("weight")}
                    for src in manifest.get("instructions", []) if isinstance(src, Mapping)]},
    }


def examples(entry: Mapping) -> dict[str, list[dict]]:
    """A stage's example pairs (`load_run`'s `examples`) as shown: texts shortened, provenance kept.

    `href` is the page's URL only when it is http(s), so a `javascript:` URL in
    the data never becomes a link.
    """
    out = {}
    for key, rows in entry.get("examples", {}).items():
        out[key] = [{
            "id": r.get("id", ""), "lang": r.get("lang") or "", "kind": r.get("kind") or "",
            "miner": r.get("miner") or "", "mode": r.get("mode") or "", "task_type": r.get("task_type") or "",
            "instruction": _shorten(r.get("instruction") or ""),
            "input": _shorten(r.get("input") or "", EXAMPLE_TEXT_SHOWN),
            "output": _shorten(r.get("output") or "", EXAMPLE_TEXT_SHOWN),
            "source_url": r.get("source_url") or "", "source_file": r.get("source_file") or "",
            "source_record": r.get("source_record") or "",
            "href": r["source_url"] if str(r.get("source_url") or "").startswith(("http://", "https://")) else "",
        } for r in rows]
    return out


def series_samples(run: Mapping) -> dict[str, list[dict]]:
    """The instruction samples each length and novelty figure is drawn from.

    "mine" and "synth"; with more than one synthesis mode also "synth/<mode>"
    per mode, so the modes can be told apart.
    """
    out: dict[str, list[dict]] = {}
    for stage in ("mine", "synth"):
        if run[stage]["present"]:
            out[stage] = list(run[stage].get("sample", []))
    modes = sorted({str(r["mode"]) for r in out.get("synth", []) if r.get("mode")})
    if len(modes) > 1:
        for mode in modes:
            out[f"{SECTIONED_STAGE}/{mode}"] = [r for r in out["synth"] if r.get("mode") == mode]
    return out


def cautions(summary: Mapping, few: int = FEW_DOCUMENTS) -> dict[str, list[str]]:
    """{figure: sentences}: per figure, one sentence for each of its breakdowns with a part resting on
    fewer than `few` documents or pairs, naming those parts and their counts."""
    out: dict[str, list[str]] = {}

    def note(figure: str, what: str, counts: Iterable[tuple[str, int]], unit: str) -> None:
        small = [(label, n) for label, n in counts if n < few]
        if small:
            listed = ", ".join(f"{label}: {n}" for label, n in small)
            out.setdefault(figure, []).append(
                f"{what} rest on fewer than {few} {unit} ({listed}): read them as examples, not rates.")

    mining = summary.get("mining")
    if mining:
        note("mining", "Documents read", [("in all", mining["documents_read"]),
                                          *((row["lang"], row["documents"]) for row in mining["languages"]
                                            if row["documents"])], "documents")
        note("mining", "Pairs per miner", [(m["miner"], m["pages"]) for m in mining["miners"]], "source pages")
    types = summary.get("task_types", {})
    note("task_types", "The task-type and kind splits",
         [(stage, sum(types[stage].values())) for stage in ("synth", "mined") if types.get(stage)], "pairs")
    note("lengths", "Length distributions",
         [(f"{name} {lang}", d["n"]) for name, data in summary.get("lengths", {}).get("stages", {}).items()
          for lang, d in data["by_language"].items()], "instructions")
    note("novelty", "Novelty histograms",
         [(name, data["n"]) for name, data in summary.get("novelty", {}).get("stages", {}).items() if data["n"]],
         "instructions")
    mixing = summary.get("mixing")
    if mixing and mixing["shards"]:
        note("mixing", "Per-shard ratios", [(sh["name"], sh["instruction_docs"]) for sh in mixing["shards"]],
             "instruction documents")
        note("mixing", "Realized source shares",
             [(src.get("label") or src["name"], src["documents_used"]) for src in mixing["sources"]],
             "documents")
    return out


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
    sections = synth.get("sections", [])
    if len(sections) > 1:
        stages["synth"]["sections"] = [
            {"name": sec["name"], "folder": sec["folder"], "present": sec["present"], "note": sec["note"],
             "rows": sec.get("rows", 0)} for sec in sections]
    manifest = mix.get("manifest") or {}
    labels = {str(src.get("name")): source_label(src.get("name", ""), src.get("path", ""))
              for src in manifest.get("instructions", []) if isinstance(src, Mapping)}
    labels.update({name.replace(".", "_"): label for name, label in labels.items()})
    drops = drop_reasons(mine.get("counters", {}))
    if len(sections) > 1:
        for sec in sections:
            drops += drop_reasons(sec.get("counters", {}), stage_label=f"{SECTIONED_STAGE}/{sec['name']}")
    else:
        drops += drop_reasons(synth.get("counters", {}))
    drops += drop_reasons(mix.get("counters", {}), labels)
    series = series_samples(run)
    stage_entries = [("mine", mine)]
    stage_entries += ([(f"{SECTIONED_STAGE}/{sec['name']}", sec) for sec in sections] if len(sections) > 1
                      else [("synth", synth)])
    stage_entries.append(("mix", mix))
    summary = {
        "run_dir": display_path(run_dir),
        "stages": stages,
        "inputs": inputs_summary(run),
        "mining": mining_summary(mine) if mine["present"] else None,
        "synth": synth_summary(synth) if synth["present"] else None,
        "drops": drops,
        "contamination": contamination(stage_entries),
        "task_types": task_types(mine, synth),
        "languages": language_counts(mine, synth),
        "lengths": {
            "unit": "ROUGE tokens: words for English, one per Chinese character",
            "bins": length_bin_labels(),
            "stages": {name: {"sampled": len(rows),
                              "rows": run[name].get("rows", 0) if name in run else len(rows),
                              "by_language": length_distribution(rows[:LENGTH_SAMPLE])}
                       for name, rows in series.items()},
        },
        "novelty": _novelty(series, seeds, novelty_sample, {s: run[s].get("rows", 0) for s in ("mine", "synth")}),
        "mixing": mixing_summary(mix.get("counters", {}), mix.get("manifest")) if mix["present"] else None,
        "examples": {"mine": examples(mine) if mine["present"] else {},
                     "synth": examples(synth) if synth["present"] else {}},
        "few_documents": FEW_DOCUMENTS,
    }
    summary["cautions"] = cautions(summary)
    return summary


def _novelty(series: Mapping[str, list[dict]], seeds: str | None, sample: int, rows: Mapping[str, int]) -> dict:
    """Each series' sample scored against the seeds: per-mode series reuse the synth scores."""
    from transforms.synth.seed_tasks import load_seed_tasks

    out: dict[str, Any] = {"threshold": NOVEL_BELOW, "sample": sample, "stages": {}, "note": ""}
    if not series:
        return out
    try:
        seed_texts = [s.instruction for s in load_seed_tasks(seeds)]
    except ValueError as exc:
        out["note"] = f"seed tasks cannot be loaded, so nothing was scored: {exc}"
        return out
    out["seeds"] = len(seed_texts)
    out["seed_source"] = seeds or "templates/seeds"
    scored_by_id: dict[str, tuple[float, str | None]] = {}
    for stage in ("mine", "synth"):
        if stage not in series:
            continue
        sampled = series[stage][:sample]
        log(f"report: scoring {len(sampled)} {stage} instructions against {len(seed_texts)} seeds")
        scored_by_id.update(zip((r["id"] for r in sampled), novelty_scores([r["instruction"] for r in sampled],
                                                                           seed_texts)))
    for name, all_rows in series.items():
        sampled = [r for r in all_rows[:sample] if r["id"] in scored_by_id]
        scored = [scored_by_id[r["id"]] for r in sampled]
        closest = sorted(zip(scored, sampled), key=lambda x: (-x[0][0], x[1]["id"]))[:CLOSEST_SHOWN]
        out["stages"][name] = {
            "rows": rows.get(name, len(all_rows)),
            **novelty_histogram([s for s, _ in scored]),
            "closest": [{"score": round(s, 3), "instruction": _shorten(r["instruction"]), "lang": r["lang"],
                         "seed": _shorten(seed or "")} for (s, seed), r in closest],
        }
    return out


def _shorten(text: str, limit: int = TEXT_SHOWN) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
