"""Mining's input: raw shards (WARC/WET, JSON Lines, Parquet) as `RawDocument`s, and the field
conventions every reader of web documents shares.

Runs inside Spark executors, one whole input file per call of `iter_documents`, so
it is plain Python: no Spark import, and bad input never raises. Every document
given out adds 1 to `counters["docs_read"]`; everything left out adds 1 to a
`skip:<reason>` key, and a page cut to `max_page_bytes` adds 1 to
`truncated:page_too_large` (it is still given out). The reasons are those of the
layers underneath, each documented where it is decided:

    transforms.io.paths     unsupported_format, unreadable_file, empty_file, reader_error
    transforms.io.warc      truncated_archive, corrupt_archive, bad_record, non_html,
                            http_status, empty_record, undecodable
    transforms.io.jsonl     line_too_long, bad_json, undecodable, truncated_archive,
                            corrupt_archive
    transforms.io.parquet   unreadable_file, corrupt_archive
    here (JSON, Parquet)    bad_record (not an object, a field of the wrong type),
                            missing_field (neither `html` nor `text`), empty_record,
                            undecodable (a binary `text` that is not UTF-8)
    transforms.io.text_repair  repaired:lone_surrogate

Each key counts events: records for record-level reasons, files for file-level
ones, corrupt stretches for `skip:corrupt_archive`.

The field conventions (`url_from_fields`, `url_columns`, `iter_field_records`)
serve the mixer's readers too (`transforms.io.mix_inputs`): a document's URL is
`url`, `metadata.url` or `id`, as dolma and CCNet write them.
"""

from __future__ import annotations

import collections
import json
import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from transforms.io.jsonl import iter_json_records, max_line_bytes
from transforms.io.parquet import iter_parquet_rows
from transforms.io.paths import DOCUMENT_ENDINGS, expand_paths, file_format, read_input
from transforms.io.text_repair import cut_to_bytes, decode_html, decode_utf8, repair_lone_surrogates
from transforms.io.warc import iter_warc_pages

logger = logging.getLogger(__name__)

DEFAULT_MAX_PAGE_BYTES = 5_000_000


@dataclass(slots=True)
class RawDocument:
    """One page as read from a shard, before any extraction.

    Exactly one of `html` / `text` is usually set (WET records and text-only
    JSONL give `text`); a JSONL/Parquet record that carries both gives both.
    `html` is always `str` (decoded by its charset where it is read).
    `source_record` locates the record inside `source_file`: the
    WARC-Record-ID (`offset N` when a record has none), `line N` (1-based) for
    JSON Lines, `item N` (0-based) for a JSON array, `row N` (0-based) for Parquet.
    """

    url: str
    html: str | None
    text: str | None
    source_file: str
    source_record: str


def file_kind(path: str) -> str:
    """The reader mining uses for `path` by its name: "warc" (WET included), "jsonl",
    "json" (`.json.gz`/`.json.zst` shards: JSON Lines, or an array) or "parquet".

    Raises ValueError naming the path and the supported endings otherwise.
    """
    return file_format(path, DOCUMENT_ENDINGS)


def expand_inputs(patterns: list[str], *, storage_options: dict | None = None) -> list[str]:
    """Mining's input files for `patterns` (`transforms.io.paths.expand_paths` over `DOCUMENT_ENDINGS`)."""
    return expand_paths(patterns, storage_options, endings=DOCUMENT_ENDINGS)


def iter_documents(
    path: str,
    counters: collections.Counter,
    *,
    max_page_bytes: int = DEFAULT_MAX_PAGE_BYTES,
    storage_options: dict | None = None,
) -> Iterator[RawDocument]:
    """Every page in one input file, by its kind (`file_kind`).

    Never raises on bad input: what cannot be read is counted in `counters`
    (see the module docstring for the keys) and the good records around it
    are still given out. Pages over `max_page_bytes` (bytes of the raw HTML,
    or of the UTF-8 text) are cut to that size, not dropped; a WARC payload is
    read no further than that, so a 50 MB page costs about `max_page_bytes`
    of memory. Only a missing optional package (e.g. s3fs) raises.
    """
    if max_page_bytes <= 0:
        raise ValueError(f"max_page_bytes must be positive, got {max_page_bytes}")

    def read(fmt: str, fs: fsspec.AbstractFileSystem, fs_path: str) -> Iterator[RawDocument]:
        if fmt == "warc":
            for page in iter_warc_pages(fs, fs_path, path, counters, max_page_bytes):
                yield RawDocument(page.url, page.html, page.text, path, page.record)
            return
        records = _read_field_records(
            fmt, fs, fs_path, path, counters, _page_columns(counters, path), max_line_bytes(max_page_bytes)
        )
        for locator, obj in records:
            doc = _document_from_fields(obj, path, locator, counters, max_page_bytes)
            if doc is not None:
                yield doc

    for doc in read_input(path, counters, read, endings=DOCUMENT_ENDINGS, storage_options=storage_options):
        counters["docs_read"] += 1
        yield doc


def _page_columns(
    counters: collections.Counter, source_file: str
) -> Callable[[pq.ParquetFile], list[str] | None]:
    def columns_of(parquet: pq.ParquetFile) -> list[str] | None:
        schema = parquet.schema_arrow
        names = set(schema.names)
        if not names & {"html", "text"}:
            counters["skip:missing_field"] += parquet.metadata.num_rows
            logger.warning("%s: no html or text column (columns: %s)", source_file, sorted(names))
            return None
        return [c for c in ("id", "html", "text") if c in names] + url_columns(schema)

    return columns_of


def _document_from_fields(
    obj: Any, source_file: str, locator: str, counters: collections.Counter, max_bytes: int
) -> RawDocument | None:
    if not isinstance(obj, Mapping):
        counters["skip:bad_record"] += 1
        return None
    html, text = obj.get("html"), obj.get("text")
    if html is None and text is None:
        counters["skip:missing_field"] += 1
        return None
    if not isinstance(html, str | bytes | None) or not isinstance(text, str | bytes | None):
        counters["skip:bad_record"] += 1
        return None
    cut = False
    if isinstance(html, bytes):  # a Parquet binary column
        cut = len(html) > max_bytes
        html = decode_html(html[:max_bytes], None, complete=not cut)
    if isinstance(text, bytes):
        text_cut = len(text) > max_bytes
        text = decode_utf8(text[:max_bytes], complete=not text_cut)
        if text is None:
            counters["skip:undecodable"] += 1
            return None
        cut = cut or text_cut
    if html is not None:
        html, html_cut = cut_to_bytes(repair_lone_surrogates(html, counters), max_bytes)
        cut = cut or html_cut
    if text is not None:
        text, text_cut = cut_to_bytes(repair_lone_surrogates(text, counters), max_bytes)
        cut = cut or text_cut
    if not (html and html.strip()) and not (text and text.strip()):
        counters["skip:empty_record"] += 1
        return None
    if cut:
        counters["truncated:page_too_large"] += 1
    return RawDocument(
        url=url_from_fields(obj), html=html, text=text, source_file=source_file, source_record=locator
    )


# --------------------------------------------------------------------------- field conventions (JSON, Parquet)


def iter_field_records(
    path: str,
    counters: collections.Counter,
    parquet_columns: Callable[[pa.Schema], list[str]],
    *,
    endings: tuple[str, ...],
    storage_options: dict | None = None,
    max_page_bytes: int = DEFAULT_MAX_PAGE_BYTES,
    row_groups: tuple[int, int] | None = None,
) -> Iterator[tuple[str, Any]]:
    """(locator, parsed value) for each record of one JSON Lines / JSON / Parquet file
    (of its row groups [first, end) only, for Parquet, when `row_groups` is given).

    Locators: "line N" (1-based), "item N" (0-based, a JSON array), "row N"
    (0-based). `parquet_columns(schema)` names the columns to read; a row lacks
    those the file lacks, which the caller counts under its own reason. Every
    failure is a counted skip (`transforms.io.paths.read_input`).
    """

    def read(fmt: str, fs: fsspec.AbstractFileSystem, fs_path: str) -> Iterator[tuple[str, Any]]:
        return _read_field_records(
            fmt, fs, fs_path, path, counters, lambda parquet: parquet_columns(parquet.schema_arrow),
            max_line_bytes(max_page_bytes), row_groups,
        )  # fmt: skip

    return read_input(path, counters, read, endings=endings, storage_options=storage_options)


def _read_field_records(
    fmt: str,
    fs: fsspec.AbstractFileSystem,
    fs_path: str,
    source_file: str,
    counters: collections.Counter,
    columns_of: Callable[[pq.ParquetFile], list[str] | None],
    line_limit: int,
    row_groups: tuple[int, int] | None = None,
) -> Iterator[tuple[str, Any]]:
    if fmt == "parquet":
        return iter_parquet_rows(fs, fs_path, source_file, counters, columns_of, row_groups)
    return iter_json_records(fs, fs_path, source_file, counters, line_limit)


def url_from_fields(obj: Mapping) -> str:
    """A record's URL: `url`, else `metadata.url` (an object or a JSON string), else `id`; "" when none."""
    metadata = obj.get("metadata")
    if isinstance(metadata, str):  # some writers store metadata as a JSON string
        try:
            metadata = json.loads(metadata)
        except ValueError:
            metadata = None
    candidates = [
        obj.get("url"),
        metadata.get("url") if isinstance(metadata, Mapping) else None,
        obj.get("id"),
    ]
    for value in candidates:
        if isinstance(value, str) and value.strip():
            return value.strip()
    return ""


def url_columns(schema: pa.Schema) -> list[str]:
    """The Parquet columns `url_from_fields` needs: `url`, else `metadata.url`
    (a struct field) or `metadata` (a JSON string)."""
    names = schema.names
    if "url" in names:
        return ["url"]
    if "metadata" in names:
        metadata_type = schema.field("metadata").type
        if pa.types.is_struct(metadata_type):
            if metadata_type.get_field_index("url") >= 0:
                return ["metadata.url"]
        elif pa.types.is_string(metadata_type) or pa.types.is_large_string(metadata_type):
            return ["metadata"]
    return []
