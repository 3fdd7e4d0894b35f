"""What the mixer (and synthesis) reads: pretraining documents and instruction records, one file per call.

Runs inside Spark executors and Ray tasks, so plain Python: no Spark import. Bad
input is counted, never raised, exactly as for mining (`transforms.io.documents`
lists the reasons of the layers underneath: unsupported_format, unreadable_file,
empty_file, reader_error, truncated_archive, corrupt_archive, line_too_long,
bad_json, undecodable, bad_record); the good records around a bad one are still
given out. Only skips are counted, so `counters` is the list of what was lost.
The reasons decided here:

    pretrain side:
    skip:missing_field         `text_field` absent, null or not a string (or no such column)
    skip:empty_text            `text_field` empty or only whitespace
    skip:undecodable           a binary `text_field` cell that is not UTF-8
    instruction side:
    skip:missing_instruction   `instruction` absent, null, not a string or blank
    skip:missing_output        `output` likewise (or a Self-Instruct task with no instance)
    skip:bad_input             `input` present but not a string
    skip:bad_system            `system` present but not a string
    skip:bad_history           `history` not a list of [user, assistant] string pairs
    repaired:lone_surrogate    (transforms.io.text_repair)

The mixer reads each pretraining file twice (once to count tokens, once to
interleave) and addresses documents by `PretrainDoc.index`, so what a reader
gives out is a pure function of the file's bytes; a file that fails on the
second read is caught there (jobs/mix.py: a document missing on the second read
stops the job naming the file).
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any

import pyarrow as pa

from transforms.io.documents import iter_field_records, url_columns, url_from_fields
from transforms.io.paths import (  # noqa: F401 - re-exported: the names jobs/mix.py and jobs/synth.py import
    INSTRUCTION_ENDINGS,
    JSON_ENDINGS,
    JSON_LINES_ENDINGS,
    PARQUET_ENDINGS,
    PRETRAIN_ENDINGS,
)
from transforms.io.paths import expand_paths as _expand_paths
from transforms.io.text_repair import decode_utf8, repair_lone_surrogates
from transforms.records import Provenance

logger = logging.getLogger(__name__)

# What the mixer's readers take when a file is named to them: every JSON and Parquet
# form. `PRETRAIN_ENDINGS` (no plain .json) only decides what a glob or folder yields.
MIX_ENDINGS = INSTRUCTION_ENDINGS


@dataclass(slots=True)
class PretrainDoc:
    """One pretraining document.

    `index` is its 0-based position among the valid documents of its file,
    the same on every read of the same bytes. Its `provenance` names the file and
    "line N" (1-based) or "row N" (0-based), and the page URL when the record has one.
    """

    index: int
    text: str
    provenance: Provenance

    @property
    def url(self) -> str:
        return self.provenance.source_url


@dataclass(slots=True)
class InstructionRecord:
    """One instruction-response pair, from mined Parquet or an Alpaca file.

    `key` is stable across runs: the `id` column of mined Parquet, else
    f"{file}#{n}" with n the "row N"/"line N"/"item N" number of the record
    (f"{file}#{n}.{k}" for the k-th instance of a Self-Instruct task). `lang` is
    "" when the source does not say. `provenance` is the page's for a mined pair,
    else this file and record.
    """

    key: str
    instruction: str
    input: str
    output: str
    system: str
    history: list[tuple[str, str]]
    lang: str
    provenance: Provenance

    @property
    def source_url(self) -> str:
        return self.provenance.source_url


# --------------------------------------------------------------------------- expanding inputs


def expand_paths(
    patterns: list[str],
    storage_options: dict | None = None,
    *,
    endings: tuple[str, ...] = INSTRUCTION_ENDINGS,
) -> list[str]:
    """`transforms.io.paths.expand_paths`, by default over the instruction side's endings
    (`.json` included, WARC not); pass `PRETRAIN_ENDINGS` for pretraining sources."""
    return _expand_paths(patterns, storage_options, endings=endings)


# --------------------------------------------------------------------------- pretraining documents


def iter_pretrain_docs(
    path: str, text_field: str, counters: collections.Counter, storage_options: dict | None = None
) -> Iterator[PretrainDoc]:
    """The documents of one file whose `text_field` is a non-empty string.

    JSON Lines (plain, gzip, zstd), `.json` (array or lines) or Parquet,
    local or any fsspec URL. The URL comes from `url`, `metadata.url` or
    `id` (first present; "" when none). See the module docstring for the
    counters.
    """

    def parquet_columns(schema: pa.Schema) -> list[str]:
        wanted = [c for c in dict.fromkeys((text_field, "id")) if c in schema.names]
        return wanted + [c for c in url_columns(schema) if c not in wanted]

    index = 0

    def build(locator: str, obj: Any) -> list[PretrainDoc]:
        nonlocal index
        text = _pretrain_text(obj, text_field, counters)
        if text is None:
            return []
        index += 1
        return [
            PretrainDoc(
                index=index - 1,
                text=text,
                provenance=Provenance(source_url=url_from_fields(obj), source_file=path, source_record=locator),
            )
        ]

    records = iter_field_records(
        path, counters, parquet_columns, endings=MIX_ENDINGS, storage_options=storage_options
    )
    yield from _built_or_explained(path, records, build, f"has a non-empty string {text_field!r}")


def _pretrain_text(obj: Any, text_field: str, counters: collections.Counter) -> str | None:
    if not isinstance(obj, Mapping):
        counters["skip:bad_record"] += 1
        return None
    text = obj.get(text_field)
    if isinstance(text, bytes):  # a Parquet binary column
        text = decode_utf8(text)
        if text is None:
            counters["skip:undecodable"] += 1
            return None
    if not isinstance(text, str):
        counters["skip:missing_field"] += 1
        return None
    if not text.strip():
        counters["skip:empty_text"] += 1
        return None
    return repair_lone_surrogates(text, counters)


# --------------------------------------------------------------------------- instruction records

_INSTRUCTION_COLUMNS = (
    "id", "instruction", "input", "output", "system", "history", "lang", "source_url", "url",
    "source_file", "source_record",
)  # fmt: skip


def _instruction_parquet_columns(schema: pa.Schema) -> list[str]:
    return [c for c in _INSTRUCTION_COLUMNS if c in schema.names]


def iter_instruction_records(
    path: str, counters: collections.Counter, storage_options: dict | None = None,
    row_groups: tuple[int, int] | None = None,
) -> Iterator[InstructionRecord]:
    """The instruction records under `path`: a file, a directory or a glob.

    Reads mined/synth Parquet (the columns of `transforms/records.py`; others
    ignored), Alpaca JSON (`.json`: an array of objects with `instruction`,
    `input`, `output`, optional `system` and `history` = [[user, assistant],
    ...]) and Alpaca JSON Lines (`.json` holding lines, `.jsonl`, `.jsonl.gz`,
    `.jsonl.zst`). A Self-Instruct task (`instruction` plus `instances`
    [{input, output}], as in its seed_tasks.jsonl) gives one record per
    instance. Files in sorted order (`expand_paths`), records in file order.
    Raises NoInputError (a FileNotFoundError) or UnsupportedInputError (a
    ValueError) only for a `path` that names no readable kind of file; bad
    records and unreadable files are counted (module docstring). `row_groups`
    (first, end) limits a Parquet file to those row groups (one chunk of it).
    """
    for file in expand_paths([path], storage_options):
        records = iter_field_records(
            file, counters, _instruction_parquet_columns, endings=MIX_ENDINGS, storage_options=storage_options,
            row_groups=row_groups,
        )
        yield from _built_or_explained(
            file,
            records,
            lambda locator, obj, file=file: _instruction_records(obj, file, locator, counters),
            "is an instruction record; expected Alpaca fields instruction, input, output (optional "
            "system, history) or the mined Parquet columns of transforms/records.py",
        )


def _built_or_explained(
    path: str, records: Iterator[tuple[str, Any]], build: Callable[[str, Any], list], expected: str
) -> Iterator:
    """What `build(locator, value)` makes of each record of `path`.

    When it makes nothing of any record, one warning says what was expected and
    which fields the first record has: most likely a wrong field name in the
    config, or a file of another kind altogether.
    """
    seen = given = 0
    first_fields = None
    for locator, obj in records:
        seen += 1
        if first_fields is None:
            first_fields = _fields_of(obj)
        for built in build(locator, obj):
            given += 1
            yield built
    if seen and not given:
        logger.warning("%s: none of its %d records %s; the first record has fields: %s",
                       path, seen, expected, first_fields)  # fmt: skip


def _fields_of(obj: Any) -> str:
    if not isinstance(obj, Mapping):
        return f"(not an object: {type(obj).__name__})"
    return ", ".join(sorted(map(str, obj))) or "(none)"


def _instruction_records(
    obj: Any, file: str, locator: str, counters: collections.Counter
) -> list[InstructionRecord]:
    """The records in one parsed object: none when it is bad (counted), several for a Self-Instruct task."""
    if not isinstance(obj, Mapping):
        counters["skip:bad_record"] += 1
        return []
    number = locator.split(" ", 1)[1]
    instruction = _text_field(obj, "instruction", counters)
    if instruction is None:
        counters["skip:missing_instruction"] += 1
        return []
    system = _optional_text(obj, "system", counters)
    if system is None:
        counters["skip:bad_system"] += 1
        return []
    history = _history(obj.get("history"), counters)
    if history is None:
        counters["skip:bad_history"] += 1
        return []
    record_id = obj.get("id")
    key = record_id if locator.startswith("row ") and isinstance(record_id, str) and record_id else None
    lang = obj.get("lang")
    url = obj.get("source_url") or obj.get("url")
    # A pair mined from a page keeps that page's provenance; other records point at this file.
    origin = {name: obj.get(name) for name in ("source_file", "source_record")}
    provenance = Provenance(
        source_url=url if isinstance(url, str) else "",
        source_file=origin["source_file"] if isinstance(origin["source_file"], str) and origin["source_file"] else file,
        source_record=origin["source_record"] if isinstance(origin["source_record"], str) and origin["source_record"]
        else locator,
    )
    common = {
        "instruction": instruction,
        "system": system,
        "history": history,
        "lang": lang.strip().lower() if isinstance(lang, str) else "",
    }

    instances = obj.get("instances")
    if "output" not in obj and isinstance(instances, list):
        return _self_instruct_records(instances, f"{file}#{number}", provenance, common, counters)
    pair = _input_output(obj, counters)
    if pair is None:
        return []
    return [
        InstructionRecord(
            key=key or f"{file}#{number}", input=pair[0], output=pair[1], provenance=provenance, **common
        )
    ]


def _self_instruct_records(
    instances: list, key: str, provenance: Provenance, common: dict, counters: collections.Counter
) -> list[InstructionRecord]:
    """A Self-Instruct task: one instruction, `instances` of {input, output}; one record each."""
    if not instances:
        counters["skip:missing_output"] += 1
    records = []
    for k, instance in enumerate(instances):
        if not isinstance(instance, Mapping):
            counters["skip:bad_record"] += 1
            continue
        pair = _input_output(instance, counters)
        if pair is not None:
            records.append(
                InstructionRecord(
                    key=f"{key}.{k}",
                    input=pair[0],
                    output=pair[1],
                    provenance=replace(provenance, source_record=f"{provenance.source_record} instance {k}"),
                    **common,
                )
            )
    return records


def _input_output(obj: Mapping, counters: collections.Counter) -> tuple[str, str] | None:
    output = _text_field(obj, "output", counters)
    if output is None:
        counters["skip:missing_output"] += 1
        return None
    input_ = _optional_text(obj, "input", counters)
    if input_ is None:
        counters["skip:bad_input"] += 1
        return None
    return input_, output


def _text_field(obj: Mapping, name: str, counters: collections.Counter) -> str | None:
    """A required text: a string with something besides whitespace, else None."""
    value = obj.get(name)
    if not isinstance(value, str) or not value.strip():
        return None
    return repair_lone_surrogates(value, counters)


def _optional_text(obj: Mapping, name: str, counters: collections.Counter) -> str | None:
    """An optional text: "" when absent or null, None when of another type."""
    value = obj.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        return None
    return repair_lone_surrogates(value, counters)


def _history(value: Any, counters: collections.Counter) -> list[tuple[str, str]] | None:
    if value is None:
        return []
    if not isinstance(value, list):
        return None
    turns = []
    for turn in value:
        if (
            not isinstance(turn, list | tuple)
            or len(turn) != 2
            or not all(isinstance(t, str) and t.strip() for t in turn)
        ):
            return None
        turns.append((repair_lone_surrogates(turn[0], counters), repair_lone_surrogates(turn[1], counters)))
    return turns
