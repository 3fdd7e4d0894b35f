"""JSON Lines and JSON arrays: ("line N" | "item N", parsed value) for every good record, bad ones counted.

Plain, gzip or zstd (multi-member / multi-frame, `transforms.io.compression`).
What is counted (`counters`), and what happens to the records around it:

    skip:line_too_long      a line longer than `max_line_bytes`; never held in memory
    skip:bad_json           a line (or a whole .json array) that does not parse
    skip:undecodable        a line (or array) that is not UTF-8: it was damaged after
                            it was written, so it is skipped, not repaired
    skip:truncated_archive  the stream ends inside a gzip member / zstd frame;
                            the lines before the cut are given out
    skip:corrupt_archive    undecodable compressed bytes after some good lines;
                            the rest of the file is lost (a JSON line cannot be
                            resynchronised inside compressed data)
    skip:unreadable_file    the same before any line: the file is not of its format

What a parsed value means (a page, a pretraining document, an instruction
record) is for the caller; values that are not objects come out too.
"""

from __future__ import annotations

import collections
import json
import logging
from collections.abc import Iterator

import fsspec

from transforms.io.compression import CORRUPT_STREAM_ERRORS, decompressed_chunks
from transforms.io.paths import JSON_ENDINGS

logger = logging.getLogger(__name__)


def max_line_bytes(max_page_bytes: int) -> int:
    """The longest JSON line parsed. A line is parsed whole and escaping can grow a
    page sixfold (\\uXXXX for each CJK character), so the cap sits well above
    `max_page_bytes`; beyond it a line is skipped without being held in memory."""
    return max(64 << 20, 16 * max_page_bytes)


def iter_json_records(
    fs: fsspec.AbstractFileSystem,
    fs_path: str,
    source_file: str,
    counters: collections.Counter,
    line_limit: int,
) -> Iterator[tuple[str, object]]:
    """The records of a `.jsonl*` file (lines) or a `.json*` file (an array when its
    first character is "[", else lines); `line_limit` bytes per line at most.

    Lines give ("line N" (1-based), value); blank lines are passed over.
    """
    if fs_path.lower().endswith(JSON_ENDINGS) and _starts_an_array(fs, fs_path):
        yield from _iter_json_array(fs, fs_path, source_file, counters)
        return
    lines_read = 0
    with fs.open(fs_path, "rb") as f:
        try:
            for line_no, line in enumerate(split_lines(decompressed_chunks(f, fs_path), line_limit), start=1):
                lines_read += 1
                if line is None:
                    counters["skip:line_too_long"] += 1
                    continue
                if not line.strip():
                    continue
                obj = _parse(line, counters)
                if obj is not _UNPARSED:
                    yield f"line {line_no}", obj
        except (EOFError, *CORRUPT_STREAM_ERRORS) as exc:
            _count_stream_damage(exc, source_file, counters, lines_read)


def _starts_an_array(fs: fsspec.AbstractFileSystem, fs_path: str) -> bool:
    with fs.open(fs_path, "rb") as f:
        try:
            head = next(decompressed_chunks(f, fs_path, size=4096), b"")
        except (EOFError, *CORRUPT_STREAM_ERRORS):
            return False  # read as lines, which counts the damage
    return head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"[")


def _iter_json_array(
    fs: fsspec.AbstractFileSystem, fs_path: str, source_file: str, counters: collections.Counter
) -> Iterator[tuple[str, object]]:
    """("item N" (0-based), value) of a JSON array. It is parsed whole (Alpaca's 52k
    records are 22 MB), so one syntax error loses the file: `skip:bad_json`, once."""
    with fs.open(fs_path, "rb") as f:
        try:
            data = b"".join(decompressed_chunks(f, fs_path))
        except (EOFError, *CORRUPT_STREAM_ERRORS) as exc:
            _count_stream_damage(exc, source_file, counters, 0)
            return
    items = _parse(data, counters)
    if items is _UNPARSED:
        logger.warning("%s: a JSON array that is not UTF-8 or does not parse; nothing read", source_file)
        return
    for n, obj in enumerate(items):
        yield f"item {n}", obj


_UNPARSED = object()


def _parse(data: bytes, counters: collections.Counter) -> object:
    """The JSON value in `data`, or `_UNPARSED` (counted: `skip:undecodable`, `skip:bad_json`)."""
    try:
        return json.loads(data)
    except UnicodeDecodeError:
        counters["skip:undecodable"] += 1
    except ValueError:
        counters["skip:bad_json"] += 1
    return _UNPARSED


def _count_stream_damage(
    exc: BaseException, source_file: str, counters: collections.Counter, records_read: int
) -> None:
    """A compressed stream that stopped: cut (`skip:truncated_archive`), or corrupt after
    some records (`skip:corrupt_archive`) or before any (`skip:unreadable_file`)."""
    if isinstance(exc, EOFError):
        counters["skip:truncated_archive"] += 1
    else:
        counters["skip:corrupt_archive" if records_read else "skip:unreadable_file"] += 1
    logger.warning("%s: unreadable after %d records: %r", source_file, records_read, exc)


def split_lines(chunks: Iterator[bytes], limit: int) -> Iterator[bytes | None]:
    """Lines (without the newline) across chunk boundaries; None for a line longer than `limit`."""
    pending: list[bytes] = []
    pending_len = 0
    too_long = False
    for chunk in chunks:
        start = 0
        while True:
            nl = chunk.find(b"\n", start)
            if nl < 0:
                piece = chunk[start:]
                if not too_long:
                    pending.append(piece)
                    pending_len += len(piece)
                    if pending_len > limit:
                        too_long, pending, pending_len = True, [], 0
                break
            piece = chunk[start:nl]
            if too_long or pending_len + len(piece) > limit:
                yield None
            else:
                pending.append(piece)
                yield b"".join(pending)
            pending, pending_len, too_long = [], 0, False
            start = nl + 1
    if too_long:
        yield None
    elif pending_len:
        yield b"".join(pending)
