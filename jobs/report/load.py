"""Finding and reading what each stage of a run wrote, through fsspec.

Where: `instructmix run` records the URL it gave each stage in RUN/_pipeline.json
(`stages.<stage>.output`); the mix output in particular may lie anywhere
(`mix.output.path`, e.g. a shared corpus folder). A run directory without that
file (stages run by hand into RUN/mined, RUN/synth, RUN/mixed) falls back to
the standard folders of `STAGE_DIRS`.

What: each stage's `_stats.json` in the one shape of transforms/stats.py (only
that shape: its counters are what the numbers are made of), the mix's
`manifest.json` (the per-shard table, which is data, not counts), and a few
Parquet columns of the mined and synthesized pairs. Counts over every row are
Arrow group-bys; instruction texts are read only for a deterministic sample
(the rows with the smallest ids: ids are content hashes, so this is a stable
pseudo-random sample that does not depend on part order).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from jobs.config import PIPELINE_FILE, STAGE_DIRS
from jobs.mix import MANIFEST_FILE
from jobs.workdir import read_json
from transforms.stats import STATS_FILE, counters_of

# Instructions whose length is measured per stage (a regex each, cheap).
LENGTH_SAMPLE = 50_000


def join(url: str, *parts: str) -> str:
    """`url/part/...` for a local path or an fsspec URL alike."""
    return "/".join([url.rstrip("/"), *[p.strip("/") for p in parts]])


def stage_folders(run_dir: str, storage_options: Mapping | None = None) -> dict[str, dict]:
    """Where each stage wrote: {stage: {"folder": url, "recorded": bool, "note": str}}.

    The folder `_pipeline.json` records for the stage, else the standard one. A
    recorded folder that no longer exists (a run directory copied elsewhere) falls
    back to the standard one when that exists, and says so.
    """
    state = read_json(join(run_dir, PIPELINE_FILE), dict(storage_options or {}))
    recorded = state.get("stages", {}) if isinstance(state, dict) else {}
    out = {}
    for stage, name in STAGE_DIRS.items():
        standard = join(run_dir, name)
        output = recorded.get(stage, {}).get("output") if isinstance(recorded.get(stage), dict) else None
        if not output:
            out[stage] = {"folder": standard, "recorded": False, "note": ""}
        elif _exists(output, storage_options) or not _exists(standard, storage_options):
            out[stage] = {"folder": output, "recorded": True, "note": ""}
        else:
            out[stage] = {"folder": standard, "recorded": False,
                          "note": f"{PIPELINE_FILE} names {output}, which is gone; read {standard} instead"}
    return out


def _fs(url: str, storage_options: Mapping | None):
    return fsspec.core.url_to_fs(url, **dict(storage_options or {}))


def _exists(url: str, storage_options: Mapping | None) -> bool:
    fs, path = _fs(url, storage_options)
    return fs.exists(path)


def run_dir_exists(run_dir: str, storage_options: Mapping | None = None) -> bool:
    fs, path = _fs(run_dir, storage_options)
    return fs.exists(path) and fs.isdir(path)


def load_run(run_dir: str, sample: int = LENGTH_SAMPLE, storage_options: Mapping | None = None,
             stage_options: Mapping[str, Mapping] | None = None) -> dict[str, dict]:
    """Each stage's outputs as plain records: {"mine": {...}, "synth": {...}, "mix": {...}}.

    Every entry has `folder`, `present` and `note` (why it is missing, or what
    could not be read) and, when present, `stats` (the `_stats.json`) and
    `counters`. Mine and synth add `rows`, `groups` (row counts per
    miner/kind/lang or task_type/lang) and `sample` (up to `sample` rows of id,
    instruction, lang, smallest ids first); mine adds distinct source pages per
    miner and per language; mix adds `manifest`. `stage_options` gives a stage
    whose folder needs other storage options than the run directory its own.
    """
    out = {}
    for stage, where in stage_folders(run_dir, storage_options).items():
        options = dict((stage_options or {}).get(stage) or storage_options or {})
        out[stage] = load_stage(stage, where["folder"], sample, options)
        if where["note"] and not out[stage]["note"]:
            out[stage]["note"] = where["note"]
    return out


def load_stage(stage: str, folder: str, sample: int = LENGTH_SAMPLE,
               storage_options: Mapping | None = None) -> dict[str, Any]:
    """One stage's entry of `load_run`."""
    entry: dict[str, Any] = {"folder": folder, "present": False, "note": ""}
    if not _exists(folder, storage_options):
        entry["note"] = f"{folder} does not exist: the {stage} stage has not run"
        return entry
    stats_url = join(folder, STATS_FILE)
    if not _exists(stats_url, storage_options):
        entry["note"] = (f"{stats_url} is missing: the {stage} stage did not finish "
                         f"(rerun it, e.g. `instructmix run --from {stage}`)")
        return entry
    stats = read_json(stats_url, dict(storage_options or {}))
    if not isinstance(stats, dict) or stats.get("stage") != stage or not isinstance(stats.get("counters"), dict):
        entry["note"] = (f"{stats_url} is not a {stage} stage's statistics in the shape of this version "
                         f"(transforms/stats.py); rerun the stage with this version")
        return entry
    entry.update(present=True, stats=stats, counters=counters_of(stats, stage))
    if stage == "mix":
        manifest_url = join(folder, MANIFEST_FILE)
        manifest = read_json(manifest_url, dict(storage_options or {}))
        entry["manifest"] = manifest if isinstance(manifest, dict) else {}
        if not isinstance(manifest, dict):
            entry["note"] = f"{manifest_url} is missing or unreadable: no per-shard figures"
        return entry
    try:
        entry.update(_load_pairs(folder, stage, sample, storage_options))
    except (OSError, pa.ArrowException) as exc:
        entry.update(rows=0, groups=[], sample=[], pages_by_miner={}, pages_by_language={})
        entry["note"] = f"the Parquet output in {folder} cannot be read: {exc}"
    return entry


def _load_pairs(folder: str, stage: str, sample: int, storage_options: Mapping | None) -> dict:
    fs, path = _fs(folder, storage_options)
    # pyarrow skips names starting with "_" or ".": `_stats.json`, `_work/`, `_lock.json`.
    dataset = ds.dataset(path, format="parquet", filesystem=fs)
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


def display_path(url: str) -> str:
    """A run directory as the page shows it: absolute when local, the URL otherwise."""
    return url if "://" in url else os.path.abspath(url)
