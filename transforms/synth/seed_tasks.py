"""Seed tasks for Self-Instruct, in the Self-Instruct `seed_tasks.jsonl` format.

Self-Instruct grows a task pool from a few hand-written tasks: each prompt
shows some of them (transforms/synth/prompts.py, `self_instruct_prompt`) and the
model continues the list. The seeds set the range of what comes out, so the
project ships its own, en and zh (templates/seeds/), written to cover many
task types; any file in the same format can be used instead, such as the
original 175 Self-Instruct seeds or BELLE's Chinese ones.

One record per line:
    {"id": "...", "name": "...", "instruction": "...",
     "instances": [{"input": "...", "output": "..."}], "is_classification": false}
`input` may be "". An optional "lang" says the language; otherwise it is "zh"
when the instruction has Chinese characters and "en" if not. A `.json` file
may also hold one JSON array of such records (BELLE's `zh_seed_tasks.json`
is in fact JSON Lines; both read). Other keys are ignored.
"""

from __future__ import annotations

import functools
import json
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from transforms.text import family_of_text

PACKAGED_FOLDER = "seeds"  # inside the `templates` package
SEED_SUFFIXES = (".jsonl", ".json")
REQUIRED_KEYS = ("id", "name", "instruction", "instances", "is_classification")


@dataclass(frozen=True)
class SeedTask:
    """One seed task; `instances` are (input, output) pairs, input "" when the task needs none."""

    id: str
    name: str
    instruction: str
    instances: tuple[tuple[str, str], ...]
    is_classification: bool
    lang: str


class SeedTaskError(ValueError):
    """A seed record that cannot be read; `reason` is a short name for counting ("bad_json")."""

    def __init__(self, where: str, reason: str, message: str):
        super().__init__(f"{where}: {message}")
        self.reason = reason


def load_seed_tasks(
    path: str | Path | None = None, *, skip_bad: bool = False, counters: Counter | None = None
) -> list[SeedTask]:
    """The seed tasks in `path` (a `.jsonl`/`.json` file, or a folder: every
    such file in it, by name), or the packaged templates/seeds/ folder.

    A bad record raises SeedTaskError naming the file and line (or array
    position) and what is wrong. With `skip_bad` it is skipped instead and
    counted in `counters` as `skip:seed_<reason>` (bad_json, not_an_object,
    missing_field, bad_field, no_instances, duplicate_id). Ids must be unique
    within a file; files may reuse each other's ids (the Self-Instruct and
    BELLE seeds both say "seed_task_0").
    """
    counts = counters if counters is not None else Counter()
    if skip_bad:
        return list(_load(path, True, counts))
    return list(_load_cached(None if path is None else str(path)))


@functools.lru_cache(maxsize=8)
def _load_cached(path: str | None) -> tuple[SeedTask, ...]:
    return tuple(_load(path, False, Counter()))


def _load(path: str | Path | None, skip_bad: bool, counters: Counter) -> Iterator[SeedTask]:
    for name, source in _seed_files(path):
        try:
            text = source.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"{name}: cannot read the seed file: {exc}") from None
        seen: dict[str, str] = {}
        for where, record in _records(name, text):
            try:
                if isinstance(record, SeedTaskError):
                    raise record
                task = _parse(record, where)
                if task.id in seen:
                    raise SeedTaskError(
                        where, "duplicate_id", f"duplicate id {task.id!r}, first at {seen[task.id]}"
                    )
                seen[task.id] = where
            except SeedTaskError as exc:
                if not skip_bad:
                    raise
                counters[f"skip:seed_{exc.reason}"] += 1
                continue
            yield task


def _seed_files(path: str | Path | None) -> list[tuple[str, Path | Traversable]]:
    if path is None:
        folder: Path | Traversable = resources.files("templates").joinpath(PACKAGED_FOLDER)
        shown = f"templates/{PACKAGED_FOLDER}"
        files = [(f"{shown}/{f.name}", f) for f in _seed_files_in(folder)]
    else:
        chosen = Path(path)
        if chosen.is_dir():
            shown, files = str(chosen), [(str(f), f) for f in _seed_files_in(chosen)]
        elif chosen.is_file():
            shown, files = str(chosen), [(str(chosen), chosen)]
        else:
            raise ValueError(f"{path}: no such seed file or folder")
    if not files:
        raise ValueError(f"{shown}: no {' or '.join(SEED_SUFFIXES)} seed files in it")
    return files


def _seed_files_in(folder: Path | Traversable) -> list[Path | Traversable]:
    return sorted(
        (f for f in folder.iterdir() if f.is_file() and f.name.endswith(SEED_SUFFIXES)), key=lambda f: f.name
    )


def _records(name: str, text: str) -> Iterator[tuple[str, Any]]:
    """(where, parsed record or SeedTaskError) for each record of a file's text."""
    if text.lstrip().startswith("["):
        try:
            records = json.loads(text)
        except json.JSONDecodeError as exc:
            where = f"{name}:{exc.lineno}"
            yield (
                where,
                SeedTaskError(where, "bad_json", f"not valid JSON (the whole array is lost): {exc.msg}"),
            )
            return
        for position, record in enumerate(records, start=1):
            yield f"{name}: task #{position}", record
        return
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{name}:{number}"
        try:
            yield where, json.loads(line)
        except json.JSONDecodeError as exc:
            yield where, SeedTaskError(where, "bad_json", f"not valid JSON: {exc.msg} (column {exc.colno})")


def _parse(record: Any, where: str) -> SeedTask:
    if not isinstance(record, Mapping):
        raise SeedTaskError(where, "not_an_object", f"expected a JSON object with {', '.join(REQUIRED_KEYS)}")
    missing = [key for key in REQUIRED_KEYS if key not in record]
    if missing:
        raise SeedTaskError(where, "missing_field", f"missing {', '.join(missing)}")
    for key in ("id", "name", "instruction"):
        if not isinstance(record[key], str) or not record[key].strip():
            raise SeedTaskError(
                where, "bad_field", f"`{key}` must be a non-empty string, got {record[key]!r}"
            )
    if not isinstance(record["is_classification"], bool):
        raise SeedTaskError(
            where,
            "bad_field",
            f"`is_classification` must be true or false, got {record['is_classification']!r}",
        )
    instances = record["instances"]
    if not isinstance(instances, list) or not instances:
        raise SeedTaskError(where, "no_instances", "`instances` must be a non-empty list of {input, output}")
    pairs = []
    for position, instance in enumerate(instances, start=1):
        if (
            not isinstance(instance, Mapping)
            or not isinstance(instance.get("input", ""), str)
            or not isinstance(instance.get("output"), str)
            or not instance["output"].strip()
        ):
            raise SeedTaskError(
                where,
                "bad_field",
                f'instance #{position} needs a string `input` (may be "") and a non-empty `output`',
            )
        pairs.append((instance.get("input", "").strip(), instance["output"].strip()))
    lang = record.get("lang")
    if lang is not None and (not isinstance(lang, str) or not lang.strip()):
        raise SeedTaskError(
            where, "bad_field", f"`lang` must be a language code such as en or zh, got {lang!r}"
        )
    instruction = record["instruction"].strip()
    return SeedTask(
        id=record["id"].strip(),
        name=record["name"].strip(),
        instruction=instruction,
        instances=tuple(pairs),
        is_classification=record["is_classification"],
        lang=lang.strip() if lang else family_of_text(instruction),
    )
