"""Finding and reading what each stage of a run wrote, through fsspec.

Where: `instructmix run` records the URL it gave each stage in RUN/_pipeline.json
(`stages.<stage>.output`); the mix output in particular may lie anywhere
(`mix.output.path`, e.g. a shared corpus folder). A run directory without that
file (stages run by hand into RUN/mined, RUN/synth, RUN/mixed) falls back to
the standard folders of `STAGE_DIRS`.

Synthesis may have run as several sections (`synth/<name>` entries in
_pipeline.json, each with its own output folder, RUN/synth/<name>): they are
read one by one and merged into one synth entry (counters summed, rows
concatenated) that keeps each section in `sections`.

What: each stage's `_stats.json` in the one shape of transforms/stats.py (only
that shape: its counters are what the numbers are made of), the mix's
`manifest.json` (the per-shard table, which is data, not counts), and a few
Parquet columns of the mined and synthesized pairs. Counts over every row are
Arrow group-bys; instruction texts are read only for a deterministic sample
(the rows with the smallest ids: ids are content hashes, so this is a stable
pseudo-random sample that does not depend on part order), and whole pairs with
their provenance only for the few examples shown per mined kind and per
synthesis mode (again the smallest ids).
"""

from __future__ import annotations

import os
from collections import Counter
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
# Whole pairs shown per mined kind and per synthesis mode: enough to see what a
# kind looks like, few enough that the page stays short.
EXAMPLES_PER_GROUP = 3
# The columns of an example (transforms/records.py PAIR_FIELDS and SYNTH_FIELDS), when present.
EXAMPLE_COLUMNS = ("id", "instruction", "input", "output", "lang", "kind", "miner", "mode", "task_type",
                   "source_url", "source_file", "source_record")
# The stage whose output may come in sections, and the prefix of a section's entry in _pipeline.json.
SECTIONED_STAGE = "synth"
SECTION_PREFIX = SECTIONED_STAGE + "/"


def join(url: str, *parts: str) -> str:
    """`url/part/...` for a local path or an fsspec URL alike."""
    return "/".join([url.rstrip("/"), *[p.strip("/") for p in parts]])


def stage_folders(run_dir: str, storage_options: Mapping | None = None) -> dict[str, dict]:
    """Where each stage wrote: {stage: {"folder": url, "recorded": bool, "note": str}}.

    The folder `_pipeline.json` records for the stage, else the standard one. A
    recorded folder that no longer exists (a run directory copied elsewhere) falls
    back to the standard one when that exists, and says so. Synthesis run as
    several sections (`synth/<name>` entries, or without _pipeline.json a
    RUN/synth holding sub-folders with a `_stats.json` each instead of its own)
    adds `sections`: [{"name", "folder", "recorded", "note"}], in the recorded order.
    """
    state = read_json(join(run_dir, PIPELINE_FILE), dict(storage_options or {}))
    recorded = state.get("stages", {}) if isinstance(state, dict) else {}
    recorded = recorded if isinstance(recorded, dict) else {}
    out = {stage: _where(recorded.get(stage), join(run_dir, name), storage_options)
           for stage, name in STAGE_DIRS.items()}
    parent = join(run_dir, STAGE_DIRS[SECTIONED_STAGE])
    sections = [(key[len(SECTION_PREFIX):], value) for key, value in recorded.items()
                if key.startswith(SECTION_PREFIX) and key != SECTION_PREFIX]
    if sections:
        out[SECTIONED_STAGE] = {"folder": parent, "recorded": True, "note": "", "sections": [
            {"name": name, **_where(value, join(parent, name), storage_options)} for name, value in sections]}
    elif not out[SECTIONED_STAGE]["recorded"] and (found := _section_folders(parent, storage_options)):
        out[SECTIONED_STAGE] = {"folder": parent, "recorded": False, "note": "", "sections": [
            {"name": name, "folder": join(parent, name), "recorded": False, "note": ""} for name in found]}
    return out


def _where(record: Any, standard: str, storage_options: Mapping | None) -> dict:
    output = record.get("output") if isinstance(record, dict) else None
    if not output:
        return {"folder": standard, "recorded": False, "note": ""}
    if _exists(output, storage_options) or not _exists(standard, storage_options):
        return {"folder": output, "recorded": True, "note": ""}
    return {"folder": standard, "recorded": False,
            "note": f"{PIPELINE_FILE} names {output}, which is gone; read {standard} instead"}


def _section_folders(parent: str, storage_options: Mapping | None) -> list[str]:
    """Sub-folders of `parent` with a `_stats.json` when `parent` has none of its own, sorted by name."""
    fs, path = _fs(parent, storage_options)
    if not fs.isdir(path) or fs.exists(f"{path.rstrip('/')}/{STATS_FILE}"):
        return []
    names = []
    for info in fs.ls(path, detail=True):
        name = info["name"].rstrip("/").rsplit("/", 1)[-1]
        if info.get("type") == "directory" and not name.startswith(("_", ".")) \
                and fs.exists(f"{info['name'].rstrip('/')}/{STATS_FILE}"):
            names.append(name)
    return sorted(names)


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
    miner/kind/lang or mode/task_type/lang), `sample` (up to `sample` rows of
    id, instruction, lang (and mode), smallest ids first) and `examples` (whole
    pairs with their provenance, `EXAMPLES_PER_GROUP` per kind or mode); mine
    adds distinct source pages per miner and per language; mix adds
    `manifest`. Synth always has `sections`: one entry like the above per
    section (one section, named after the folder, when synthesis ran as one),
    and the merged figures of all of them. `stage_options` gives a stage
    whose folder needs other storage options than the run directory its own.
    """
    out = {}
    for stage, where in stage_folders(run_dir, storage_options).items():
        options = dict((stage_options or {}).get(stage) or storage_options or {})
        if stage == SECTIONED_STAGE:
            parts = where.get("sections") or [{"name": SECTIONED_STAGE, **where}]
            sections = []
            for part in parts:
                entry = load_stage(stage, part["folder"], sample, options)
                entry["name"] = part["name"]
                if part["note"] and not entry["note"]:
                    entry["note"] = part["note"]
                sections.append(entry)
            out[stage] = merge_sections(where["folder"], sections, sample)
        else:
            out[stage] = load_stage(stage, where["folder"], sample, options)
            if where["note"] and not out[stage]["note"]:
                out[stage]["note"] = where["note"]
    return out


def merge_sections(folder: str, sections: list[dict], sample: int = LENGTH_SAMPLE) -> dict[str, Any]:
    """One synth entry from its sections' entries: counters and group counts summed, rows concatenated.

    A single section is returned as it is (plus `sections`). Present when any
    section is; the note names each section that is missing or unreadable.
    """
    if len(sections) == 1:
        return {**sections[0], "sections": sections}
    present = [s for s in sections if s["present"]]
    notes = [f"{s['name']}: {s['note']}" for s in sections if s["note"]]
    entry: dict[str, Any] = {"folder": folder, "present": bool(present), "note": "; ".join(notes),
                             "sections": sections}
    if not present:
        return entry
    counters: Counter = Counter()
    groups: Counter = Counter()
    for s in present:
        counters.update(s.get("counters", {}))
        for g in s.get("groups", []):
            groups[tuple(sorted((k, v) for k, v in g.items() if k != "count"))] += g["count"]
    rows = sorted((r for s in present for r in s.get("sample", [])), key=lambda r: (r["id"], r["instruction"]))
    examples: dict[str, list] = {}
    for s in present:
        for key, pairs in s.get("examples", {}).items():
            examples.setdefault(key, []).extend(pairs)
    entry.update(counters=dict(sorted(counters.items())), rows=sum(s.get("rows", 0) for s in present),
                 groups=sorted(({**dict(k), "count": n} for k, n in groups.items()),
                               key=lambda g: tuple(str(v) for k, v in sorted(g.items()) if k != "count")),
                 sample=rows[:sample],
                 examples={k: sorted(v, key=lambda r: r["id"])[:EXAMPLES_PER_GROUP]
                           for k, v in sorted(examples.items())})
    return entry


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
        entry.update(rows=0, groups=[], sample=[], examples={}, pages_by_miner={}, pages_by_language={})
        entry["note"] = f"the Parquet output in {folder} cannot be read: {exc}"
    return entry


def _load_pairs(folder: str, stage: str, sample: int, storage_options: Mapping | None) -> dict:
    fs, path = _fs(folder, storage_options)
    # pyarrow skips names starting with "_" or ".": `_stats.json`, `_work/`, `_lock.json`.
    dataset = ds.dataset(path, format="parquet", filesystem=fs)
    names = set(dataset.schema.names)
    keys = ["miner", "kind", "lang"] if stage == "mine" else ["mode", "task_type", "lang"]
    keys = [k for k in keys if k in names]
    wanted = ["id", *keys] + (["source_url"] if stage == "mine" and "source_url" in names else [])
    table = dataset.to_table(columns=wanted)
    result: dict[str, Any] = {"rows": table.num_rows, "groups": _count_groups(table, keys)}
    if stage == "mine" and "source_url" in names:
        result["pages_by_miner"] = _distinct_pages(table, "miner")
        result["pages_by_language"] = _distinct_pages(table, "lang")
        result["pages"] = pc.count_distinct(table.column("source_url")).as_py()
    ids = pc.unique(pc.take(table.column("id"), pc.sort_indices(table.column("id"))[:sample]))
    columns = ["id", "instruction", "lang"] + (["mode"] if "mode" in names else [])
    rows = dataset.to_table(columns=columns, filter=ds.field("id").isin(ids))
    rows = rows.sort_by([("id", "ascending"), ("instruction", "ascending")]).slice(0, sample)
    result["sample"] = rows.to_pylist()
    result["examples"] = _examples(dataset, table, "kind" if stage == "mine" else "mode", names)
    return result


def _examples(dataset: ds.Dataset, table: pa.Table, key: str, names: set[str]) -> dict[str, list[dict]]:
    """{value of `key`: the `EXAMPLES_PER_GROUP` rows with the smallest ids, whole, with their provenance}."""
    if key not in names or table.num_rows == 0:
        return {}
    picked = []
    for value in sorted(v for v in pc.unique(table.column(key)).to_pylist() if v is not None):
        ids = pc.filter(table.column("id"), pc.equal(table.column(key), value))
        picked.extend(pc.take(ids, pc.sort_indices(ids)[:EXAMPLES_PER_GROUP]).to_pylist())
    columns = [c for c in EXAMPLE_COLUMNS if c in names]
    rows = dataset.to_table(columns=columns, filter=ds.field("id").isin(picked))
    out: dict[str, list[dict]] = {}
    for row in rows.sort_by([(key, "ascending"), ("id", "ascending")]).to_pylist():
        group = out.setdefault(str(row[key]), [])
        if len(group) < EXAMPLES_PER_GROUP and all(r["id"] != row["id"] for r in group):
            group.append(row)
    return out


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
