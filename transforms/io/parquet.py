"""Parquet rows: ("row N", {column: value}) one row group at a time, a bad row group counted.

    skip:unreadable_file   not a Parquet file (no valid footer)
    skip:corrupt_archive   a row group that fails to decode; the next one is still read

pyarrow reports corrupt pages as OSError, ArrowException or ValueError alike, so
all three count as damaged data of that row group.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Callable, Iterator

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

logger = logging.getLogger(__name__)

# Pages can be MBs each: keep a batch's Python objects small.
BATCH_ROWS = 64
_PARQUET_ERRORS = (pa.ArrowException, OSError, ValueError)


def iter_parquet_rows(
    fs: fsspec.AbstractFileSystem,
    fs_path: str,
    source_file: str,
    counters: collections.Counter,
    columns_of: Callable[[pq.ParquetFile], list[str] | None],
    row_groups: tuple[int, int] | None = None,
) -> Iterator[tuple[str, dict]]:
    """("row N" (0-based, counted across row groups), row) of a Parquet file.

    `columns_of` picks the columns to read, so a reader of one text column
    never decodes the others; it returns None to skip the file (and counts why).
    `row_groups` (first, end) reads only those row groups, with the same locators
    as a whole read: one task's share of a large file.
    """
    with fs.open(fs_path, "rb") as f:
        try:
            parquet = pq.ParquetFile(f)
        except _PARQUET_ERRORS as exc:
            counters["skip:unreadable_file"] += 1
            logger.warning("%s: not a readable Parquet file: %r", source_file, exc)
            return
        columns = columns_of(parquet)
        if columns is None:
            return
        first_row = 0
        for group in range(parquet.num_row_groups):
            row = first_row
            first_row += parquet.metadata.row_group(group).num_rows
            if row_groups is not None and not row_groups[0] <= group < row_groups[1]:
                continue
            try:
                for batch in parquet.iter_batches(
                    batch_size=BATCH_ROWS, row_groups=[group], columns=columns, use_threads=False
                ):
                    for obj in batch.to_pylist():
                        yield f"row {row}", obj
                        row += 1
            except _PARQUET_ERRORS as exc:
                counters["skip:corrupt_archive"] += 1
                logger.warning("%s: row group %d unreadable from row %d: %r", source_file, group, row, exc)
