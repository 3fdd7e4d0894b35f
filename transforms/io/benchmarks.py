"""Benchmark files for decontamination: read whole, or refused with an error naming the file.

Unlike the stages' inputs (where a bad record is a counted skip), a benchmark file
is read completely or not at all: a half-read evaluation set would leave part of
it in the training data without a word. Formats, by the name's ending (a `.gz` or
`.zst` after it is decompressed): JSON Lines (`.jsonl`), JSON (`.json`: a list of
records, a dict holding one such list, e.g. `{"data": [...]}`, any other object as one
record, or JSON Lines under a `.json` name as BELLE's eval set has), Parquet, CSV (a header row). Local
paths and fsspec URLs (`storage_options`).
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
from collections.abc import Mapping
from dataclasses import dataclass

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

BENCHMARK_ENDINGS = (".jsonl", ".json", ".parquet", ".csv")
_COMPRESSIONS = (".gz", ".zst")


class BenchmarkFileError(ValueError):
    """A benchmark file that cannot be used; the message names the file and the fix."""


@dataclass
class BenchmarkFile:
    """A benchmark file's records and the sha256 of its bytes (what the fingerprint keeps)."""

    path: str
    sha256: str
    records: list


def _format_of(path: str) -> tuple[str, str]:
    name = path.lower()
    compression = next((c for c in _COMPRESSIONS if name.endswith(c)), "")
    name = name[: len(name) - len(compression)]
    for ending in BENCHMARK_ENDINGS:
        if name.endswith(ending):
            return ending[1:], compression
    raise BenchmarkFileError(f"benchmark {path}: unknown format; name it .jsonl, .json, .parquet or .csv "
                             "(optionally .gz or .zst)")


def _decompressed(data: bytes, compression: str, path: str) -> bytes:
    try:
        if compression == ".gz":
            return gzip.decompress(data)
        if compression == ".zst":
            import zstandard

            return zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data)).read()
    except (OSError, EOFError, ValueError, ImportError) as err:  # gzip's, zstandard's (ZstdError is a ValueError)
        raise BenchmarkFileError(f"benchmark {path}: cannot decompress ({type(err).__name__}: {err})") from None
    return data


def _json_records(text: str, path: str, lines_only: bool) -> list:
    stripped = text.lstrip()
    if not lines_only and stripped[:1] in ("[", "{"):
        try:
            data = json.loads(stripped)
        except json.JSONDecodeError:
            data = None  # perhaps JSON Lines under a .json name
        if isinstance(data, list):
            return data
        if isinstance(data, Mapping):
            lists = [v for v in data.values() if isinstance(v, list)]
            # {"data": [...]} holds the records; any other object is one record (its strings, recursively).
            return lists[0] if len(lists) == 1 else [data]
    records = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as err:
            raise BenchmarkFileError(f"benchmark {path}: line {number} is not JSON ({err.msg}); fix the file "
                                     "or remove it from decontaminate.benchmarks") from None
    return records


def read_benchmark_file(path: str, storage_options: dict | None = None) -> BenchmarkFile:
    """Every record of one benchmark file; BenchmarkFileError naming the file if it cannot be read."""
    fmt, compression = _format_of(path)
    try:
        fs, fs_path = fsspec.core.url_to_fs(path, **(storage_options or {}))
        with fs.open(fs_path, "rb") as f:
            raw = f.read()
    except (OSError, ValueError) as err:
        raise BenchmarkFileError(f"benchmark {path}: cannot read it ({type(err).__name__}: {err}); check the path "
                                 "in decontaminate.benchmarks") from None
    digest = hashlib.sha256(raw).hexdigest()
    data = _decompressed(raw, compression, path)
    try:
        if fmt == "parquet":
            records = pq.read_table(io.BytesIO(data)).to_pylist()
        else:
            text = data.decode("utf-8-sig")
            if fmt == "csv":
                records = list(csv.DictReader(io.StringIO(text)))
            else:
                records = _json_records(text, path, lines_only=fmt == "jsonl")
    except UnicodeDecodeError:
        raise BenchmarkFileError(f"benchmark {path}: not UTF-8 text; convert it to UTF-8") from None
    except BenchmarkFileError:
        raise
    except (pa.ArrowException, csv.Error, ValueError, OSError) as err:  # pyarrow's and csv's own error types
        raise BenchmarkFileError(f"benchmark {path}: cannot parse it as {fmt} ({type(err).__name__}: {err})") from None
    if not records:
        raise BenchmarkFileError(f"benchmark {path}: holds no records")
    return BenchmarkFile(path, digest, records)
