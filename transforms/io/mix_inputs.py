"""What the mixer reads: pretraining documents and instruction records, one file per call.

Runs inside Spark executors, so plain Python: no Spark import. Bad input is
counted, never raised: everything left out adds 1 to a `skip:<reason>` key
(records for record-level reasons, files for file-level ones), and the good
records around a bad one are still given out. Only skips are counted, so
`counters` is the list of what was lost.

    skip:unsupported_format    the file name has no ending read here (`MIX_ENDINGS`)
    skip:unreadable_file       the file is missing, or holds nothing of its format
                               (not gzip/zstd/Parquet, a JSON array that does not parse)
    skip:empty_file            the file has zero bytes
    skip:truncated_archive     the file ends inside a gzip member / zstd frame; the
                               lines before the cut are given out
    skip:corrupt_archive       undecodable compressed bytes after some good lines, or
                               a Parquet row group that fails to read (the next is read)
    skip:line_too_long         a JSON line longer than `transforms.io.documents._max_line_bytes`
    skip:bad_json              a JSON line (or a whole .json array) that does not parse
    skip:undecodable           a line not in UTF-8, or a binary text cell that is not
    skip:bad_record            a JSON value that is not an object
    pretrain side:
    skip:missing_field         `text_field` absent, null or not a string (or no such column)
    skip:empty_text            `text_field` empty or only whitespace
    instruction side:
    skip:missing_instruction   `instruction` absent, null, not a string or blank
    skip:missing_output        `output` likewise (or a Self-Instruct task with no instance)
    skip:bad_input             `input` present but not a string
    skip:bad_system            `system` present but not a string
    skip:bad_history           `history` not a list of [user, assistant] string pairs
    repaired:lone_surrogate    JSON text with unpaired \\ud800-\\udfff escapes, which UTF-8
                               (Arrow, tokenizers) cannot hold; replaced by U+FFFD

The mixer reads each pretraining file twice (once to count tokens, once to
interleave) and addresses documents by `PretrainDoc.index`, so what a reader
gives out is a pure function of the file's bytes. That is also why only
damaged *data* is counted: an I/O error of the filesystem (a dropped S3
connection) is raised, so Spark retries the task instead of one pass
silently seeing fewer documents. Parquet is the exception: pyarrow reports
corrupt pages as OSError too, so a Parquet OSError counts as corrupt data.

The file helpers (decompressing gzip/zstd members, splitting bounded lines,
the URL fields) are those of `transforms.io.documents`, the mining reader.
"""

from __future__ import annotations

import collections
import json
import logging
import re
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import fsspec
import pyarrow as pa
import zstandard
from fsspec.implementations.local import LocalFileSystem

from transforms.io.documents import (
    DEFAULT_MAX_PAGE_BYTES,
    _decompressed_chunks,
    _max_line_bytes,
    _url_from_fields,
    iter_json_objects,
    iter_parquet_rows,
    url_columns,
)

logger = logging.getLogger(__name__)

JSON_LINES_ENDINGS = (".jsonl", ".jsonl.gz", ".jsonl.zst")
# A `.json` file is a JSON array (Alpaca) or, as BELLE and Self-Instruct
# publish theirs, JSON Lines under a .json name: the first character decides.
# `.json.gz`/`.json.zst` likewise (dolma and CCNet name JSON Lines shards so).
JSON_ENDINGS = (".json", ".json.gz", ".json.zst")
PARQUET_ENDINGS = (".parquet",)
MIX_ENDINGS = JSON_LINES_ENDINGS + JSON_ENDINGS + PARQUET_ENDINGS
# What `expand_paths` should take for pretraining text: the shard formats of
# `transforms.io.documents`, so a glob such as `corpus/*` leaves out stray .json files
# (a tokenizer.json, a manifest) that only the instruction side reads.
PRETRAIN_ENDINGS = JSON_LINES_ENDINGS + (".json.gz", ".json.zst") + PARQUET_ENDINGS

_MAX_LINE_BYTES = _max_line_bytes(DEFAULT_MAX_PAGE_BYTES)
_PARQUET_BATCH_ROWS = 256
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
# Data errors of a compressed stream; other OSErrors are the filesystem's and are raised.
_CORRUPT_STREAM_ERRORS = (zlib.error, zstandard.ZstdError)


@dataclass(slots=True)
class PretrainDoc:
    """One pretraining document.

    `index` is its 0-based position among the valid documents of its file,
    the same on every read of the same bytes. `provenance` is
    {"file": path, "record": "line N" (1-based) or "row N" (0-based)}.
    """

    index: int
    text: str
    url: str
    provenance: dict


@dataclass(slots=True)
class InstructionRecord:
    """One instruction-response pair, from mined Parquet or an Alpaca file.

    `key` is stable across runs: the `id` column of mined Parquet, else
    f"{file}#{n}" with n the "row N"/"line N"/"item N" number of
    `provenance["record"]` (f"{file}#{n}.{k}" for the k-th instance of a
    Self-Instruct task). `lang` is "" when the source does not say.
    """

    key: str
    instruction: str
    input: str
    output: str
    system: str
    history: list[tuple[str, str]]
    lang: str
    source_url: str
    provenance: dict


# --------------------------------------------------------------------------- expanding inputs


def expand_paths(
    patterns: list[str], storage_options: dict | None = None, *, endings: tuple[str, ...] = MIX_ENDINGS
) -> list[str]:
    """Input files for `patterns`: sorted, without duplicates.

    As `transforms.io.documents.expand_inputs` (local paths or fsspec URLs; a file, a
    directory read recursively, or a glob; names starting with "." or "_"
    below a directory are left out, so a Spark output folder's `_SUCCESS`
    and `_stats.json` are), but for the files the mixer reads: `endings`,
    by default `MIX_ENDINGS` (`.json` included, WARC not); pass
    `PRETRAIN_ENDINGS` for pretraining sources. Raises ValueError for a
    file named outright with another ending, FileNotFoundError naming a
    pattern that matches no such file.
    """
    if isinstance(patterns, str):
        patterns = [patterns]
    if not patterns:
        raise ValueError("no input patterns given")
    found: set[str] = set()
    for pattern in patterns:
        found.update(_expand_pattern(pattern, storage_options or {}, tuple(endings)))
    return sorted(found)


def _expand_pattern(pattern: str, storage_options: dict, endings: tuple[str, ...]) -> list[str]:
    fs, root = fsspec.core.url_to_fs(pattern, **storage_options)

    def wanted(path: str) -> bool:
        return path.rstrip("/").lower().endswith(endings)

    listed = ", ".join(endings)
    if fsspec.core.has_magic(root):
        files = []
        for path, info in sorted(fs.glob(root, detail=True).items()):
            if info.get("type") == "directory":
                files.extend(_files_below(fs, path, wanted))
            elif wanted(path):
                files.append(path)
        if not files:
            raise FileNotFoundError(f"input {pattern!r}: no file matched with an ending of {listed}")
    elif fs.isdir(root):
        files = _files_below(fs, root, wanted)
        if not files:
            raise FileNotFoundError(f"input {pattern!r}: directory holds no file ending in {listed}")
    elif fs.exists(root):
        if not wanted(root):
            raise ValueError(f"input {pattern!r}: unsupported file type; supported endings: {listed}")
        files = [root]
    else:
        raise FileNotFoundError(f"input {pattern!r} does not exist")
    if isinstance(fs, LocalFileSystem):
        return files
    return [fs.unstrip_protocol(p) for p in files]


def _files_below(fs: fsspec.AbstractFileSystem, root: str, wanted) -> list[str]:
    root = root.rstrip("/")
    out = []
    for path in fs.find(root):
        relative = path[len(root) :].strip("/").split("/")
        if not any(part.startswith((".", "_")) for part in relative) and wanted(path):
            out.append(path)
    return out


# --------------------------------------------------------------------------- pretraining documents


def iter_pretrain_docs(
    path: str, text_field: str, counters: collections.Counter, storage_options: dict | None = None
) -> Iterator[PretrainDoc]:
    """The documents of one file whose `text_field` is a non-empty string.

    JSON Lines (plain, gzip, zstd), `.json` (array or lines) or Parquet,
    local or any fsspec URL. The URL comes from `url`, `metadata.url` or
    `id` (first present; "" when none). See the module docstring for the
    counters and for why filesystem errors are raised.
    """

    def parquet_columns(schema: pa.Schema) -> list[str]:
        wanted = [c for c in dict.fromkeys((text_field, "id")) if c in schema.names]
        return wanted + [c for c in url_columns(schema) if c not in wanted]

    index = 0
    seen = 0
    first_fields = None
    for locator, obj in _iter_objects(path, counters, storage_options, parquet_columns):
        seen += 1
        if first_fields is None:
            first_fields = _fields_of(obj)
        text = _pretrain_text(obj, text_field, counters)
        if text is None:
            continue
        yield PretrainDoc(
            index=index, text=text, url=_url_from_fields(obj), provenance={"file": path, "record": locator}
        )
        index += 1
    if seen and not index:
        logger.warning(
            "%s: none of its %d records has a non-empty string %r; the first record has fields: %s",
            path, seen, text_field, first_fields,
        )  # fmt: skip


def _pretrain_text(obj: Any, text_field: str, counters: collections.Counter) -> str | None:
    if not isinstance(obj, Mapping):
        counters["skip:bad_record"] += 1
        return None
    text = obj.get(text_field)
    if isinstance(text, bytes):  # a Parquet binary column
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            counters["skip:undecodable"] += 1
            return None
    if not isinstance(text, str):
        counters["skip:missing_field"] += 1
        return None
    if not text.strip():
        counters["skip:empty_text"] += 1
        return None
    return _repair(text, counters)


# --------------------------------------------------------------------------- instruction records

_INSTRUCTION_COLUMNS = (
    "id", "instruction", "input", "output", "system", "history", "lang", "source_url", "url",
    "source_file", "source_record",
)  # fmt: skip


def _instruction_parquet_columns(schema: pa.Schema) -> list[str]:
    return [c for c in _INSTRUCTION_COLUMNS if c in schema.names]


def iter_instruction_records(
    path: str, counters: collections.Counter, storage_options: dict | None = None
) -> Iterator[InstructionRecord]:
    """The instruction records under `path`: a file, a directory or a glob.

    Reads mined/synth Parquet (the columns of `transforms/records.py`; others
    ignored), Alpaca JSON (`.json`: an array of objects with `instruction`,
    `input`, `output`, optional `system` and `history` = [[user, assistant],
    ...]) and Alpaca JSON Lines (`.json` holding lines, `.jsonl`, `.jsonl.gz`,
    `.jsonl.zst`). A Self-Instruct task (`instruction` plus `instances`
    [{input, output}], as in its seed_tasks.jsonl) gives one record per
    instance. Files in sorted order (`expand_paths`), records in file order.
    Raises FileNotFoundError/ValueError only for a `path` that names no
    readable kind of file; bad records are counted (module docstring).
    """
    for file in expand_paths([path], storage_options):
        given = 0
        seen = 0
        first_fields = None
        for locator, obj in _iter_objects(file, counters, storage_options, _instruction_parquet_columns):
            seen += 1
            if first_fields is None:
                first_fields = _fields_of(obj)
            for record in _instruction_records(obj, file, locator, counters):
                given += 1
                yield record
        if seen and not given:  # most likely not Alpaca at all: say what it holds
            logger.warning(
                "%s: none of its %d records is an instruction record; expected Alpaca fields "
                "instruction, input, output (optional system, history) or the mined Parquet columns "
                "of transforms/records.py; the first record has fields: %s",
                file,
                seen,
                first_fields,
            )


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
    provenance = {"file": file, "record": locator}
    for origin in ("source_file", "source_record"):
        if isinstance(obj.get(origin), str) and obj[origin]:
            provenance[origin] = obj[origin]
    common = {
        "instruction": instruction,
        "system": system,
        "history": history,
        "lang": lang.strip().lower() if isinstance(lang, str) else "",
        "source_url": url if isinstance(url, str) else "",
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
    instances: list, key: str, provenance: dict, common: dict, counters: collections.Counter
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
                    provenance={**provenance, "instance": k},
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
    return _repair(value, counters)


def _optional_text(obj: Mapping, name: str, counters: collections.Counter) -> str | None:
    """An optional text: "" when absent or null, None when of another type."""
    value = obj.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        return None
    return _repair(value, counters)


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
        turns.append((_repair(turn[0], counters), _repair(turn[1], counters)))
    return turns


# --------------------------------------------------------------------------- JSON and Parquet objects


def _iter_objects(
    path: str, counters: collections.Counter, storage_options: dict | None, parquet_columns
) -> Iterator[tuple[str, Any]]:
    """(locator, parsed object) for each record of one file, by its ending.

    Locators: "line N" (1-based) for JSON Lines, "item N" (0-based) for a
    JSON array, "row N" (0-based) for Parquet. `parquet_columns(schema)`
    names the columns to read; a row lacks those the file lacks, which the
    caller counts under its own reason.
    """
    name = path.rstrip("/").lower()
    if not name.endswith(MIX_ENDINGS):
        counters["skip:unsupported_format"] += 1
        logger.warning("%s: unsupported file type; supported endings: %s", path, ", ".join(MIX_ENDINGS))
        return
    try:
        fs, fs_path = fsspec.core.url_to_fs(path, **(storage_options or {}))
        size = fs.size(fs_path)
    except (FileNotFoundError, PermissionError, IsADirectoryError) as exc:
        counters["skip:unreadable_file"] += 1
        logger.warning("skipping unreadable file %s: %r", path, exc)
        return
    if size == 0:
        counters["skip:empty_file"] += 1
        return
    if name.endswith(PARQUET_ENDINGS):
        yield from _iter_parquet_rows(fs, fs_path, path, counters, parquet_columns)
    elif name.endswith(JSON_ENDINGS):
        yield from _iter_json_file(fs, fs_path, path, counters)
    else:
        yield from _iter_json_lines(fs, fs_path, path, counters)


def _iter_json_lines(
    fs: fsspec.AbstractFileSystem, fs_path: str, path: str, counters: collections.Counter
) -> Iterator[tuple[str, Any]]:
    # Filesystem errors propagate (Spark retries the task) rather than being
    # counted: the mixer reads each file twice and both reads must agree.
    yield from iter_json_objects(fs, fs_path, path, counters, _MAX_LINE_BYTES, _CORRUPT_STREAM_ERRORS)


def _iter_json_file(
    fs: fsspec.AbstractFileSystem, fs_path: str, path: str, counters: collections.Counter
) -> Iterator[tuple[str, Any]]:
    """A `.json` file: a JSON array when its first character is "[", else JSON Lines.

    An array is parsed whole (Alpaca's 52k records are 22 MB), so one syntax
    error loses the file: `skip:bad_json`, once.
    """
    with fs.open(fs_path, "rb") as f:
        try:
            head = next(_decompressed_chunks(f, fs_path, size=4096), b"")
        except (EOFError, *_CORRUPT_STREAM_ERRORS):
            head = b""  # _iter_json_lines will count it
    if not head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"["):
        yield from _iter_json_lines(fs, fs_path, path, counters)
        return
    with fs.open(fs_path, "rb") as f:
        try:
            data = b"".join(_decompressed_chunks(f, fs_path))
        except EOFError:
            counters["skip:truncated_archive"] += 1
            return
        except _CORRUPT_STREAM_ERRORS:
            counters["skip:unreadable_file"] += 1
            return
    try:
        items = json.loads(data)
    except UnicodeDecodeError:
        counters["skip:undecodable"] += 1
        logger.warning("%s: a JSON array that is not UTF-8; nothing read", path)
        return
    except ValueError as exc:
        counters["skip:bad_json"] += 1
        logger.warning("%s: a JSON array that does not parse (%s); nothing read", path, exc)
        return
    for n, obj in enumerate(items):
        yield f"item {n}", obj


def _iter_parquet_rows(
    fs: fsspec.AbstractFileSystem, fs_path: str, path: str, counters: collections.Counter, parquet_columns
) -> Iterator[tuple[str, Any]]:
    yield from iter_parquet_rows(fs, fs_path, path, counters, lambda parquet: parquet_columns(parquet.schema_arrow))


def _repair(value: str, counters: collections.Counter) -> str:
    if not value.isascii() and _LONE_SURROGATE.search(value):
        counters["repaired:lone_surrogate"] += 1
        return _LONE_SURROGATE.sub("\ufffd", value)  # json.loads has already joined valid pairs
    return value
