"""`instructmix report RUN_DIR`: one self-contained HTML page (and its PNG plots) about a run.

A run directory holds one folder per stage (`STAGE_DIRS`); any may be missing
(a partial run), and its part of the report then says so. Three layers, each
usable alone:

1. `load_run`: reads `_stats.json` / `manifest.json` and a few Parquet columns.
   Counts over every row are Arrow group-bys; instruction texts are read only
   for a deterministic sample (the rows with the smallest ids: ids are content
   hashes, so this is a stable pseudo-random sample that does not depend on
   part order).
2. Plain functions from those records to the numbers shown (`mining_summary`,
   `drop_reasons`, `task_types`, `language_counts`, `length_distribution`,
   `novelty_histogram`, `mixing_summary`); `summarize_run` gathers them into
   one JSON-able dict, also written as `summary.json`.
3. Drawing (`draw_plots`, matplotlib Agg) and the page (`render_html`,
   templates/report/report.html.jinja in Jinja's sandbox, autoescaped), the
   PNGs embedded as data URIs so `index.html` is one file.

Instruction length is counted in ROUGE tokens (`transforms.synth.rouge.rouge_tokens`):
words for English, one token per Chinese character, the unit the novelty
scores use too.
"""

from __future__ import annotations

import base64
import itertools
import json
import math
import os
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from importlib import resources
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from jobs.config import STAGE_DIRS, STAGE_DONE_FILES
from jobs.progress import log

__all__ = [
    "STAGE_DIRS",
    "draw_plots",
    "drop_reasons",
    "language_counts",
    "length_distribution",
    "load_run",
    "mining_summary",
    "mixing_summary",
    "novelty_histogram",
    "novelty_scores",
    "render_html",
    "run_report",
    "summarize_run",
    "task_types",
]

REPORT_DIR = "report"
INDEX_FILE = "index.html"
SUMMARY_FILE = "summary.json"
TEMPLATE = ("report", "report.html.jinja")  # inside the `templates` package
PLOT_NAMES = ("mining", "drops", "task_types", "lengths", "novelty", "mixing")

# Instructions scored against the seeds per stage: one ROUGE-L search each, so
# the report stays at seconds on a run of millions of pairs.
NOVELTY_SAMPLE = 2000
# Instructions whose length is measured per stage (a regex each, cheap).
LENGTH_SAMPLE = 50_000
NOVELTY_BINS = 10  # width 0.1 over [0, 1], as bench/bench_synth.py and Self-Instruct (fig. 3)
# Self-Instruct (fig. 3) reports the share of generated instructions whose
# highest ROUGE-L against the seeds is below 0.3.
NOVEL_BELOW = 0.3
# Lower edges of the length bins, in ROUGE tokens; the last bin is open.
LENGTH_EDGES = (0, 5, 9, 17, 33, 65, 129, 257)
CLOSEST_SHOWN = 5  # least novel instructions listed with their nearest seed
TEXT_SHOWN = 160  # characters of an instruction shown in a table

# Okabe-Ito: distinguishable with the common colour-vision deficiencies.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
STAGE_COLOURS = {"mine": "#0072B2", "synth": "#E69F00", "mix": "#009E73"}


# --------------------------------------------------------------------------- loading


def load_run(run_dir: str, sample: int = LENGTH_SAMPLE) -> dict[str, dict]:
    """Each stage's outputs as plain records: {"mine": {...}, "synth": {...}, "mix": {...}}.

    Every entry has `folder`, `present` and `note` (why it is missing, or what
    could not be read). Mine and synth add `stats`, `rows`, `groups` (row counts
    per miner/kind/lang or task_type/lang) and `sample` (up to `sample` rows of
    id, instruction, lang, smallest ids first); mine adds distinct source pages
    per miner and per language; mix adds `manifest`.
    """
    out = {}
    for stage, name in STAGE_DIRS.items():
        folder = os.path.join(run_dir, name)
        stats_path = os.path.join(folder, STAGE_DONE_FILES[stage])
        entry: dict[str, Any] = {"folder": folder, "present": False, "note": ""}
        out[stage] = entry
        if not os.path.isdir(folder):
            entry["note"] = f"{folder} does not exist: the {stage} stage has not run"
            continue
        if not os.path.isfile(stats_path):
            entry["note"] = (f"{stats_path} is missing: the {stage} stage did not finish "
                             f"(rerun it, e.g. `instructmix run --from {stage}`)")
            continue
        try:
            with open(stats_path, encoding="utf-8") as f:
                stats = json.load(f)
        except (OSError, ValueError) as exc:
            entry["note"] = f"{stats_path} cannot be read: {exc}"
            continue
        entry["present"] = True
        if stage == "mix":
            entry["manifest"] = stats
            continue
        entry["stats"] = stats
        try:
            entry.update(_load_pairs(folder, stage, sample))
        except (OSError, pa.ArrowException) as exc:
            entry.update(rows=0, groups=[], sample=[], pages_by_miner={}, pages_by_language={})
            entry["note"] = f"the Parquet output in {folder} cannot be read: {exc}"
    return out


def _load_pairs(folder: str, stage: str, sample: int) -> dict:
    dataset = ds.dataset(folder, format="parquet")  # skips `_stats.json` and `_work/`
    names = set(dataset.schema.names)
    keys = ["miner", "kind", "lang"] if stage == "mine" else ["task_type", "lang"]
    keys = [k for k in keys if k in names]
    wanted = ["id", *keys] + (["source_url"] if stage == "mine" and "source_url" in names else [])
    table = dataset.to_table(columns=wanted)
    result: dict[str, Any] = {"rows": table.num_rows, "groups": _count_groups(table, keys)}
    if stage == "mine" and "source_url" in names:
        result["pages_by_miner"] = _distinct_pages(table, "miner")
        result["pages_by_language"] = _distinct_pages(table, "lang")
        result["pages"] = pc.count_distinct(table.column("source_url")).as_py()
    ids = pc.unique(pc.take(table.column("id"), pc.sort_indices(table.column("id"))[:sample]))
    rows = dataset.to_table(columns=["id", "instruction", "lang"], filter=ds.field("id").isin(ids))
    rows = rows.sort_by([("id", "ascending"), ("instruction", "ascending")]).slice(0, sample)
    result["sample"] = rows.to_pylist()
    return result


def _count_groups(table: pa.Table, keys: list[str]) -> list[dict]:
    if not keys or table.num_rows == 0:
        return [{"count": table.num_rows}] if table.num_rows else []
    grouped = table.group_by(keys).aggregate([([], "count_all")]).to_pylist()
    groups = [{**{k: r[k] for k in keys}, "count": r["count_all"]} for r in grouped]
    return sorted(groups, key=lambda g: tuple(str(g[k]) for k in keys))


def _distinct_pages(table: pa.Table, key: str) -> dict[str, int]:
    if key not in table.column_names:
        return {}
    grouped = table.group_by(key).aggregate([("source_url", "count_distinct")]).to_pylist()
    return {str(r[key]): r["source_url_count_distinct"] for r in sorted(grouped, key=lambda r: str(r[key]))}


# --------------------------------------------------------------------------- numbers


def mining_summary(mine: Mapping) -> dict:
    """Documents in and pairs out, per language and per miner, from `load_run(...)["mine"]`.

    `languages`: documents read (all of them, from `_stats.json`), distinct pages
    that gave at least one pair, and pairs written. `miners`: pages and pairs
    per miner, pairs split by language.
    """
    stats = mine.get("stats", {})
    groups = mine.get("groups", [])
    docs_by_lang = stats.get("documents", {}).get("by_language", {})
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
        "documents_read": stats.get("documents", {}).get("read", 0),
        "pages_with_pairs": mine.get("pages", 0),
        "pairs_written": sum(pairs_by_lang.values()),
        "candidates": stats.get("pairs", {}).get("candidates_kept_by_filters", 0),
        "languages": languages,
        "language_codes": langs,
        "miners": miners,
    }


def drop_reasons(mine_stats: Mapping | None, synth_stats: Mapping | None, manifest: Mapping | None) -> list[dict]:
    """Everything a stage skipped or dropped, with why: rows of stage, unit, reason, count.

    Mine: documents skipped by the readers and truncated, pairs dropped by the
    filters and the two dedup passes. Synth: its `drop:` and `skip:` counters.
    Mix: unreadable pretraining rows and instruction records, per source.
    """
    rows: list[dict] = []

    def add(stage: str, unit: str, counts: Mapping[str, int]) -> None:
        rows.extend({"stage": stage, "unit": unit, "reason": reason, "count": int(n)}
                    for reason, n in sorted(counts.items()) if n)

    if mine_stats:
        documents = mine_stats.get("documents", {})
        add("mine", "documents", documents.get("skipped", {}))
        add("mine", "documents truncated", documents.get("truncated", {}))
        add("mine", "pairs", mine_stats.get("drops", {}))
    if synth_stats:
        counters = synth_stats.get("counters", {})
        add("synth", "pairs", {k.split(":", 1)[1]: v for k, v in counters.items() if k.startswith("drop:")})
        add("synth", "inputs", {k.split(":", 1)[1]: v for k, v in counters.items() if k.startswith("skip:")})
    if manifest:
        add("mix", "pretraining rows", manifest.get("pretrain", {}).get("skipped_rows", {}))
        for source in manifest.get("instructions", []):
            add("mix", f"{source.get('name', '?')} records", source.get("skipped_rows", {}))
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


def language_counts(mine: Mapping, synth: Mapping, manifest: Mapping | None) -> list[dict]:
    """Per language: documents read by the miner, pairs mined, pairs synthesized."""
    docs = mine.get("stats", {}).get("documents", {}).get("by_language", {})
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


def mixing_summary(manifest: Mapping) -> dict:
    """Target and realized instruction-token ratio, per shard and overall, and each source's share.

    A shard's `deviation` is its realized ratio minus the target; a source's
    `token_share` is its share of the instruction tokens used, next to its weight.
    """
    target = float(manifest.get("target_ratio", 0.0))
    shards = [
        {"name": s.get("name", f"#{i}"), "docs": s.get("docs", 0), "tokens": s.get("tokens", 0),
         "instruction_docs": s.get("instruction_docs", 0), "instruction_tokens": s.get("instruction_tokens", 0),
         "ratio": float(s.get("ratio", 0.0)), "deviation": float(s.get("ratio", 0.0)) - target}
        for i, s in enumerate(manifest.get("shards", []))
    ]
    sources = manifest.get("instructions", [])
    used = sum(s.get("tokens_used", 0) for s in sources)
    return {
        "target_ratio": target,
        "realized_ratio": float(manifest.get("realized_ratio", 0.0)),
        "tokens": manifest.get("tokens", 0),
        "docs": manifest.get("docs", 0),
        "formats": list(manifest.get("formats", [])),
        "pretrain": {k: manifest.get("pretrain", {}).get(k, 0) for k in ("files", "docs", "tokens")},
        "shards": shards,
        "max_abs_deviation": max((abs(s["deviation"]) for s in shards), default=0.0),
        "sources": [
            {"name": s.get("name", "?"), "path": s.get("path", ""), "weight": s.get("weight", 0.0),
             "records": s.get("records", 0), "records_used": s.get("records_used", 0),
             "tokens_used": s.get("tokens_used", 0), "repeats": s.get("repeats", 0),
             "token_share": s.get("tokens_used", 0) / used if used else 0.0}
            for s in sources
        ],
    }


def summarize_run(run_dir: str, seeds: str | None = None, novelty_sample: int = NOVELTY_SAMPLE) -> dict:
    """Every number of the report, as one JSON-able dict (see the module docstring)."""
    run = load_run(run_dir, sample=max(novelty_sample, LENGTH_SAMPLE))
    mine, synth, mix = run["mine"], run["synth"], run["mix"]
    stages = {
        stage: {"folder": entry["folder"], "present": entry["present"], "note": entry["note"]}
        for stage, entry in run.items()
    }
    stages["mine"]["rows"] = mine.get("rows", 0)
    stages["synth"]["rows"] = synth.get("rows", 0)
    summary: dict[str, Any] = {
        "run_dir": os.path.abspath(run_dir),
        "stages": stages,
        "mining": mining_summary(mine) if mine["present"] else None,
        "synth": ({k: synth["stats"].get(k) for k in ("mode", "model", "written", "elapsed_seconds")}
                  if synth["present"] else None),
        "drops": drop_reasons(mine.get("stats"), synth.get("stats"), mix.get("manifest")),
        "task_types": task_types(mine, synth),
        "languages": language_counts(mine, synth, mix.get("manifest")),
        "lengths": {
            "unit": "ROUGE tokens: words for English, one per Chinese character",
            "bins": length_bin_labels(),
            "stages": {stage: {"sampled": len(run[stage].get("sample", [])), "rows": run[stage].get("rows", 0),
                               "by_language": length_distribution(run[stage].get("sample", [])[:LENGTH_SAMPLE])}
                       for stage in ("mine", "synth") if run[stage]["present"]},
        },
        "novelty": _novelty(run, seeds, novelty_sample),
        "mixing": mixing_summary(mix["manifest"]) if mix["present"] else None,
    }
    return summary


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


# --------------------------------------------------------------------------- plots


def draw_plots(summary: Mapping, out_dir: str) -> dict[str, str]:
    """Write one PNG per plot that has data into `out_dir`; returns {plot name: file name}."""
    import matplotlib as mpl
    import matplotlib.style

    # Figures are made with matplotlib.figure.Figure and saved through the Agg
    # canvas, never through pyplot: no global backend switch and no GUI, which
    # matplotlib recommends for servers and which keeps the calling CLI untouched.
    drawers = {"mining": _plot_mining, "drops": _plot_drops, "task_types": _plot_task_types,
               "lengths": _plot_lengths, "novelty": _plot_novelty, "mixing": _plot_mixing}
    assert set(drawers) == set(PLOT_NAMES)
    written = {}
    with mpl.style.context("default"), mpl.rc_context(_RC):
        for name, draw in drawers.items():
            fig = draw(summary)
            if fig is None:
                continue
            path = os.path.join(out_dir, f"{name}.png")
            # No "Software" chunk: the bytes depend only on the data and the fonts.
            fig.savefig(path, format="png", dpi=100, metadata={"Software": None})
            written[name] = os.path.basename(path)
    return written


# DejaVu Sans ships with matplotlib, so every machine draws the same glyphs;
# labels are ASCII (language codes, miner and task names), see `_label`.
_RC = {"font.family": "DejaVu Sans", "font.size": 9, "axes.titlesize": 10, "axes.spines.top": False,
       "axes.spines.right": False, "axes.grid": True, "axes.grid.axis": "y", "grid.alpha": 0.3,
       "figure.constrained_layout.use": True, "savefig.facecolor": "white", "figure.facecolor": "white"}


def _label(text: Any) -> str:
    """ASCII for plot labels: DejaVu Sans has no Chinese glyphs, and a user-chosen name may be Chinese."""
    text = str(text)
    return text if text.isascii() else text.encode("ascii", "backslashreplace").decode("ascii")


def _figure(width: float, height: float, ncols: int = 1):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    return fig, list(axes)


def _plot_mining(summary: Mapping):
    mining = summary.get("mining")
    if not mining or not (mining["languages"] or mining["miners"]):
        return None
    fig, (left, right) = _figure(9, 3.4, 2)
    langs = [row["lang"] for row in mining["languages"]]
    x = range(len(langs))
    for offset, key, colour, label in ((-0.2, "documents", PALETTE[0], "documents read"),
                                       (0.2, "pages_with_pairs", PALETTE[1], "pages with pairs")):
        left.bar([i + offset for i in x], [row[key] for row in mining["languages"]], width=0.4, color=colour,
                 label=label)
    left.set_xticks(list(x), [_label(lang) for lang in langs])
    left.set_title("Documents in, per language")
    left.legend(frameon=False)
    miners = [m["miner"] for m in mining["miners"]]
    bottom = [0] * len(miners)
    for i, lang in enumerate(mining["language_codes"]):
        values = [m["by_language"].get(lang, 0) for m in mining["miners"]]
        right.barh([_label(m) for m in miners], values, left=bottom, color=PALETTE[i % len(PALETTE)],
                   label=_label(lang))
        bottom = [b + v for b, v in zip(bottom, values)]
    right.invert_yaxis()
    right.grid(axis="x", alpha=0.3)
    right.grid(axis="y", visible=False)
    right.set_title("Pairs out, per miner and language")
    right.legend(frameon=False, title="lang")
    return fig


def _plot_drops(summary: Mapping):
    drops = summary.get("drops") or []
    if not drops:
        return None
    fig, (ax,) = _figure(9, 0.6 + 0.28 * len(drops))
    labels = [_label(f"{d['stage']}: {d['unit']}: {d['reason']}") for d in drops]
    ax.barh(labels, [d["count"] for d in drops], color=[STAGE_COLOURS.get(d["stage"], PALETTE[7]) for d in drops])
    ax.invert_yaxis()
    ax.grid(axis="x", alpha=0.3)
    ax.grid(axis="y", visible=False)
    ax.set_title("Skipped and dropped, by stage and reason")
    return fig


def _plot_task_types(summary: Mapping):
    types = summary.get("task_types", {})
    panels = [(title, counts) for title, counts in (("Synthesized pairs per task type", types.get("synth")),
                                                     ("Mined pairs per miner/kind", types.get("mined"))) if counts]
    if not panels:
        return None
    rows = max(len(counts) for _, counts in panels)
    fig, axes = _figure(9 if len(panels) == 2 else 6, 0.8 + 0.28 * rows, len(panels))
    for ax, (title, counts), colour in zip(axes, panels, (PALETTE[1], PALETTE[0])):
        ax.barh([_label(k) for k in counts], list(counts.values()), color=colour)
        ax.invert_yaxis()
        ax.grid(axis="x", alpha=0.3)
        ax.grid(axis="y", visible=False)
        ax.set_title(title)
    return fig


def _plot_lengths(summary: Mapping):
    lengths = summary.get("lengths", {})
    series = [(f"{stage} {lang}", dist) for stage, data in lengths.get("stages", {}).items()
              for lang, dist in data["by_language"].items()]
    if not series:
        return None
    labels = lengths["bins"]
    fig, (ax,) = _figure(9, 3.4)
    width = 0.8 / len(series)
    for i, (name, dist) in enumerate(series):
        shares = [100 * dist["bins"][b] / dist["n"] for b in labels]
        ax.bar([j - 0.4 + width * (i + 0.5) for j in range(len(labels))], shares, width=width,
               color=PALETTE[i % len(PALETTE)], label=f"{_label(name)} (n={dist['n']})")
    ax.set_xticks(range(len(labels)), labels)
    ax.set_xlabel("instruction length (ROUGE tokens: en words, zh characters)")
    ax.set_ylabel("% of instructions")
    ax.set_title("Instruction length, per stage and language")
    ax.legend(frameon=False)
    return fig


def _plot_novelty(summary: Mapping):
    stages = summary.get("novelty", {}).get("stages", {})
    series = [(stage, data) for stage, data in stages.items() if data["n"]]
    if not series:
        return None
    fig, (ax,) = _figure(9, 3.4)
    step = 1 / NOVELTY_BINS
    width = step * 0.8 / len(series)
    for i, (stage, data) in enumerate(series):
        shares = [100 * b / data["n"] for b in data["bins"].values()]
        ax.bar([j * step + step * 0.1 + width * (i + 0.5) for j in range(NOVELTY_BINS)], shares, width=width,
               color=STAGE_COLOURS.get(stage, PALETTE[i]),
               label=f"{_label(stage)} (n={data['n']}, {100 * data['share_below_0.3']:.0f}% < {NOVEL_BELOW})")
    ax.axvline(NOVEL_BELOW, color="#444444", linestyle="--", linewidth=1)
    ax.set_xlim(0, 1)
    ax.set_xticks([j * step for j in range(NOVELTY_BINS + 1)])
    ax.set_xlabel("highest ROUGE-L against the seed instructions")
    ax.set_ylabel("% of instructions")
    ax.set_title("Novelty against the seed tasks")
    ax.legend(frameon=False)
    return fig


def _plot_mixing(summary: Mapping):
    mixing = summary.get("mixing")
    if not mixing or not mixing["shards"]:
        return None
    fig, (left, right) = _figure(9, 3.4, 2)
    shards = mixing["shards"]
    ratios = [s["ratio"] for s in shards]
    x = list(range(len(shards)))
    if len(shards) <= 60:
        left.bar(x, ratios, color=PALETTE[2], label="realized, per shard")
        left.set_xticks(x, [_label(s["name"]) for s in shards], rotation=45 if len(shards) > 6 else 0,
                        ha="right" if len(shards) > 6 else "center")
    else:
        left.plot(x, ratios, color=PALETTE[2], marker=".", linewidth=0.8, label="realized, per shard")
        left.set_xlabel("shard")
    left.axhline(mixing["target_ratio"], color=PALETTE[3], linestyle="--", label=f"target {mixing['target_ratio']}")
    left.axhline(mixing["realized_ratio"], color="#444444", linestyle=":",
                 label=f"realized overall {mixing['realized_ratio']:.4f}")
    left.set_ylim(0, max([*ratios, mixing["target_ratio"]]) * 1.35 or 1)
    left.set_title("Instruction-token ratio per shard")
    left.legend(frameon=False, loc="upper right")
    sources = mixing["sources"]
    if sources:
        xs = range(len(sources))
        right.bar([i - 0.2 for i in xs], [s["weight"] for s in sources], width=0.4, color=PALETTE[5], label="weight")
        right.bar([i + 0.2 for i in xs], [s["token_share"] for s in sources], width=0.4, color=PALETTE[0],
                  label="realized token share")
        right.set_xticks(list(xs), [_label(s["name"]) for s in sources])
        right.set_title("Instruction sources: weight vs realized share")
        right.legend(frameon=False)
    else:
        right.set_visible(False)
    return fig


# --------------------------------------------------------------------------- page


def render_html(summary: Mapping, images: Mapping[str, bytes]) -> str:
    """The report page: `summary` in tables, `images` ({plot name: PNG bytes}) embedded as data URIs."""
    import jinja2
    from jinja2.sandbox import SandboxedEnvironment

    env = SandboxedEnvironment(autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True,
                               lstrip_blocks=True)
    source = resources.files("templates").joinpath(*TEMPLATE).read_text(encoding="utf-8")
    uris = dict.fromkeys(PLOT_NAMES, "")  # a plot without data is left out of the page
    uris.update({name: "data:image/png;base64," + base64.b64encode(png).decode("ascii")
                 for name, png in images.items()})
    return env.from_string(source).render(s=summary, images=uris)


def run_report(run_dir: str, out_dir: str | None = None, seeds: str | None = None,
               novelty_sample: int = NOVELTY_SAMPLE) -> str:
    """Write `index.html`, `summary.json` and the PNG plots of the run in `run_dir`; returns index.html's path.

    `out_dir` defaults to RUN_DIR/report; `seeds` is a seed-task file or folder
    (default: the packaged templates/seeds/).
    """
    if not os.path.isdir(run_dir):
        raise FileNotFoundError(f"{run_dir}: no such run directory (the output folder of `instructmix run`)")
    out_dir = out_dir or os.path.join(run_dir, REPORT_DIR)
    os.makedirs(out_dir, exist_ok=True)
    log(f"report: reading {run_dir}")
    summary = summarize_run(run_dir, seeds=seeds, novelty_sample=novelty_sample)
    for stage, info in summary["stages"].items():
        if not info["present"]:
            log(f"[yellow]report: {stage}: {info['note']}")
    log("report: drawing plots")
    plots = draw_plots(summary, out_dir)
    images = {}
    for name, file_name in plots.items():
        with open(os.path.join(out_dir, file_name), "rb") as f:
            images[name] = f.read()
    summary_path = os.path.join(out_dir, SUMMARY_FILE)
    with open(summary_path, "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=2, ensure_ascii=False, sort_keys=True)
    index = os.path.join(out_dir, INDEX_FILE)
    tmp = index + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(render_html(summary, images))
    os.replace(tmp, index)
    log(f"report: wrote {index} ({len(plots)} plot(s))")
    return index
