"""Reading raw shards (WARC/WET, JSON Lines, Parquet) into `RawDocument`s.

This module runs inside Spark executors, one whole input file per call of
`iter_documents`, so it is plain Python: no Spark import, and bad input never
raises. Every document given out adds 1 to `counters["docs_read"]`; everything
left out adds 1 to a `skip:<reason>` key, and a page cut to `max_page_bytes`
adds 1 to `truncated:page_too_large` (it is still given out):

    skip:unsupported_format  the file name has no supported ending (`file_kind`)
    skip:unreadable_file     the file cannot be opened, or holds no record of its
                             format at all (garbage, an ARC renamed .warc, a
                             Parquet file without a valid footer)
    skip:empty_file          the file has zero bytes
    skip:truncated_archive   the file ends inside a record or compressed
                             member: the records before it are given out, the
                             cut record is not
    skip:corrupt_archive     undecodable bytes mid-file (bad gzip/zstd data, a
                             Parquet row group that fails to read); counted once
                             per corrupt stretch, reading resumes after it where
                             the format allows (see `_iter_warc`)
    skip:bad_record          a record that is malformed on its own: WARC without
                             Content-Length, HTTP head that does not parse, a
                             JSON line that is not an object, a field of the
                             wrong type
    skip:non_html            a WARC response/resource whose content type is not
                             HTML (HTTP Content-Type; sniffed when absent)
    skip:http_status         an HTTP response whose status is not 2xx (redirects,
                             error pages)
    skip:empty_record        the page or text is empty
    skip:undecodable         text that is not valid UTF-8 (JSONL lines, WET
                             records), or an HTTP Content-Encoding that fails
    skip:bad_json            a JSON line that does not parse
    skip:missing_field       a JSONL/Parquet record with neither `html` nor `text`
    skip:line_too_long       a JSON line longer than `_max_line_bytes`
    skip:reader_error        an unexpected error; logged with its traceback (the
                             tests assert that none of the known bad inputs
                             ends up here)
    repaired:lone_surrogate  JSON text with unpaired \\ud800-\\udfff escapes, which
                             UTF-8 (Arrow, lexbor) cannot hold; replaced by U+FFFD

Each key counts events: records for record-level reasons, files for
file-level ones, corrupt stretches for `skip:corrupt_archive`.

`RawDocument.html` is always given out as `str` here: this is the only place
that sees the HTTP `charset`, so it decodes (see `_decode_html`); any `str`
goes to resiliparse's `HTMLTree.parse`.
"""

from __future__ import annotations

import codecs
import collections
import json
import logging
import re
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from io import BytesIO
from typing import Any, BinaryIO

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
import zstandard
from fastwarc.stream_io import BrotliReader
from fastwarc.warc import ArchiveIterator, WarcRecord, WarcRecordType
from fsspec.implementations.local import LocalFileSystem
from resiliparse.parse.encoding import detect_encoding, map_encoding_to_html5

logger = logging.getLogger(__name__)

DEFAULT_MAX_PAGE_BYTES = 5_000_000


@dataclass(slots=True)
class RawDocument:
    """One page as read from a shard, before any extraction.

    Exactly one of `html` / `text` is usually set (WET records and text-only
    JSONL give `text`); a JSONL/Parquet record that carries both gives both.
    `source_record` locates the record inside `source_file`: the
    WARC-Record-ID (`offset N` when a record has none), `line N` (1-based) for
    JSON Lines, `row N` (0-based) for Parquet.
    """

    url: str
    html: str | bytes | None
    text: str | None
    source_file: str
    source_record: str


# --------------------------------------------------------------------------- file kinds

_KIND_ENDINGS: dict[str, tuple[str, ...]] = {
    "warc": (".warc", ".warc.gz", ".warc.zst", ".warc.lz4", ".wet", ".wet.gz", ".wet.zst"),
    "jsonl": (".jsonl", ".jsonl.gz", ".jsonl.zst", ".json.gz", ".json.zst"),
    "parquet": (".parquet",),
}
_ARC_HINT = (
    "ARC files (the pre-WARC format) are not read; convert them to WARC first (e.g. `warcio recompress`)"
)
_WAT_HINT = "WAT files hold link metadata only, no page content; read the matching WARC or WET files"
_UNSUPPORTED_HINTS = {
    ".arc": _ARC_HINT,
    ".arc.gz": _ARC_HINT,
    ".wat": _WAT_HINT,
    ".wat.gz": _WAT_HINT,
    ".json": "a plain .json file may hold one JSON document, not JSON Lines; name JSON Lines files .jsonl",
}


def file_kind(path: str) -> str:
    """The reader for `path` by its name: "warc", "jsonl" or "parquet".

    WET files are WARC files (their `conversion` records carry text). `.json.gz`
    is read as JSON Lines, as dolma and CCNet name their shards. Raises
    ValueError naming the path and the supported endings otherwise.
    """
    name = path.rstrip("/").lower()
    for kind, endings in _KIND_ENDINGS.items():
        if name.endswith(endings):
            return kind
    hint = next((h for end, h in _UNSUPPORTED_HINTS.items() if name.endswith(end)), None)
    supported = ", ".join(e for endings in _KIND_ENDINGS.values() for e in endings)
    raise ValueError(
        f"{path}: unsupported file type; {hint + '; ' if hint else ''}supported endings: {supported}"
    )


def _is_supported(path: str) -> bool:
    try:
        file_kind(path)
    except ValueError:
        return False
    return True


# --------------------------------------------------------------------------- expanding inputs


def expand_inputs(patterns: list[str], *, storage_options: dict | None = None) -> list[str]:
    """Input files for `patterns`: sorted, without duplicates.

    Each pattern is a local path or any fsspec URL (`s3://bucket/crawl/*.warc.gz`,
    `memory://...`), and is one of:

    - a file: it must have a supported ending (ValueError otherwise);
    - a directory: every supported file below it, recursively; names starting
      with "." or "_" are left out, files and folders alike (Spark's
      `_temporary/`, `_SUCCESS`, `.crc` files);
    - a glob: each match is treated as above, except that matched files with an
      unsupported ending are left out, so `samples/*` skips the README.

    `storage_options` go to the filesystem (for anonymous S3 access:
    `{"anon": True}`). Local files come back as absolute paths, remote ones
    as URLs with their protocol. Raises FileNotFoundError naming the pattern
    that matched no supported file.
    """
    if isinstance(patterns, str):
        patterns = [patterns]
    if not patterns:
        raise ValueError("no input patterns given")
    found: set[str] = set()
    for pattern in patterns:
        found.update(_expand_pattern(pattern, storage_options or {}))
    return sorted(found)


def _expand_pattern(pattern: str, storage_options: dict) -> list[str]:
    fs, root = fsspec.core.url_to_fs(pattern, **storage_options)
    if fsspec.core.has_magic(root):
        matches = fs.glob(root, detail=True)
        files, others = [], []
        for path, info in sorted(matches.items()):
            if info.get("type") == "directory":
                files.extend(_supported_below(fs, path))
            elif _is_supported(path):
                files.append(path)
            else:
                others.append(path)
        if not files:
            detail = (
                f"{len(others)} file(s) matched but none has a supported ending (e.g. {others[0]})"
                if others
                else "no file matched"
            )
            raise FileNotFoundError(f"input {pattern!r}: {detail}")
    elif fs.isdir(root):
        files = _supported_below(fs, root)
        if not files:
            raise FileNotFoundError(
                f"input {pattern!r}: directory holds no .warc/.wet/.jsonl/.parquet file (see file_kind)"
            )
    elif fs.exists(root):
        try:
            file_kind(root)
        except ValueError as exc:
            raise ValueError(f"input {pattern!r}: {exc}") from None
        files = [root]
    else:
        raise FileNotFoundError(f"input {pattern!r} does not exist")
    if isinstance(fs, LocalFileSystem):
        return files
    return [fs.unstrip_protocol(p) for p in files]


def _supported_below(fs: fsspec.AbstractFileSystem, root: str) -> list[str]:
    root = root.rstrip("/")
    out = []
    for path in fs.find(root):
        relative = path[len(root) :].strip("/").split("/")
        if any(part.startswith((".", "_")) for part in relative):
            continue
        if _is_supported(path):
            out.append(path)
    return out


# --------------------------------------------------------------------------- iterating documents


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
    try:
        kind = file_kind(path)
    except ValueError as exc:
        counters["skip:unsupported_format"] += 1
        logger.warning("skipping %s", exc)
        return
    try:
        fs, fs_path = fsspec.core.url_to_fs(path, **(storage_options or {}))
        size = fs.size(fs_path)
    except ImportError:
        raise
    except Exception as exc:  # noqa: BLE001 - any filesystem error: this one file is unreadable
        counters["skip:unreadable_file"] += 1
        logger.warning("skipping unreadable file %s: %r", path, exc)
        return
    if size == 0:
        counters["skip:empty_file"] += 1
        return
    read = _READERS[kind]
    try:
        yield from read(fs, fs_path, path, counters, max_page_bytes)
    except Exception:  # one odd file must not fail a whole Spark job
        counters["skip:reader_error"] += 1
        logger.exception("unexpected error reading %s; the rest of the file is skipped", path)


# --------------------------------------------------------------------------- WARC / WET

_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
_PAGE_TYPES = WarcRecordType.response | WarcRecordType.resource | WarcRecordType.conversion

# Where reading can start again after corrupt bytes: the next compressed
# member/frame (files written one record per member, as Common Crawl's are),
# or the next WARC version line in an uncompressed file.
_RESYNC_MARKERS = {
    ".gz": b"\x1f\x8b\x08",
    ".zst": b"\x28\xb5\x2f\xfd",
    ".lz4": b"\x04\x22\x4d\x18",
}
_PLAIN_RESYNC_MARKER = b"WARC/1."
# How fastwarc 2.0.1 reports a zstd frame / lz4 block cut by the end of the file.
_CUT_STREAM_ERROR = re.compile(r"incomplete frame|failed to fill whole buffer|unexpected end", re.IGNORECASE)


def _iter_warc(
    fs: fsspec.AbstractFileSystem,
    fs_path: str,
    source_file: str,
    counters: collections.Counter,
    max_bytes: int,
) -> Iterator[RawDocument]:
    """Pages from a WARC or WET file, through fastwarc's `ArchiveIterator`.

    What fastwarc 2.0.1 does with bad input (measured; tests/test_sources.py
    pins it), and what this reader adds:

    - `quirks_mode=True`: lines that are not a WARC version line are skipped
      until the next one, so a wrong Content-Length (too short or too long)
      or junk between records costs at most the neighbouring record, silently.
      Without it the whole rest of the file is lost to "Invalid WARC header"
      (and ClueWeb-style HTTP heads with bare LF do not parse).
    - A gzip member or plain file that simply ends is not an error for
      fastwarc: the cut record comes out with a short payload, without a
      Content-Length header when cut inside its head, or not at all when cut
      before anything of it could be inflated. The payload length is checked
      here against Content-Length, and at the end the last members are
      inflated once more to see whether the file stops inside one
      (`_tail_is_cut`) -> `skip:truncated_archive`.
    - Corrupt compressed bytes raise OSError ("Gzip decompression error") from
      the iterator or the payload reader, ending its iteration. Reading then
      resumes at the next gzip member / zstd or lz4 frame / `WARC/1.` line
      after the last good record; whole-file gzip has no later member, so the
      rest of such a file is lost.
    - A zstd frame or lz4 block cut by the end of the file raises OSError
      ("incomplete frame", "failed to fill whole buffer") ->
      `skip:truncated_archive` rather than `skip:corrupt_archive`.
    - ARC files and random bytes yield no record at all in quirks mode ->
      `skip:unreadable_file`.
    - HTTP payloads are read raw (`auto_decode="none"`) so the length check
      above holds; chunked transfer coding and gzip/deflate/br/zstd content
      coding are undone here (`_decode_http_payload`), bounded by
      `max_bytes`. fastwarc's own decoder raises on a cut chunked payload.
    """
    marker = next(
        (m for end, m in _RESYNC_MARKERS.items() if fs_path.lower().endswith(end)), _PLAIN_RESYNC_MARKER
    )
    records_seen = 0
    corrupt_stretches = 0
    in_corrupt_stretch = False
    start = 0
    cut_stream = False
    truncated_before = counters["skip:truncated_archive"]
    with fs.open(fs_path, "rb") as f:
        while True:
            f.seek(start)
            last_start = start
            headless = False  # the last record had no Content-Length: cut in its head, or malformed
            try:
                for record in ArchiveIterator(f, quirks_mode=True, auto_decode="none"):
                    records_seen += 1
                    in_corrupt_stretch = False
                    last_start = record.stream_pos
                    if headless:
                        counters["skip:bad_record"] += 1
                    headless = record.headers.get("Content-Length") is None
                    if headless:
                        continue
                    if not record.record_type & _PAGE_TYPES:
                        continue
                    doc = _warc_document(record, source_file, counters, max_bytes)
                    if doc is not None:
                        counters["docs_read"] += 1
                        yield doc
                if headless or (
                    records_seen
                    and truncated_before == counters["skip:truncated_archive"]
                    and _tail_is_cut(f, fs_path, last_start)
                ):
                    counters["skip:truncated_archive"] += 1
                break
            except OSError as exc:
                resume = _find_marker(f, marker, last_start + 1)
                if resume is None and _CUT_STREAM_ERROR.search(str(exc)):
                    # zstd/lz4 raise where a cut gzip member reads as EOF. fastwarc may
                    # first report the cut frame as corrupt: then the stretch was the cut.
                    corrupt_stretches -= in_corrupt_stretch
                    cut_stream = True
                    break
                if not in_corrupt_stretch:
                    corrupt_stretches += 1
                    logger.warning("%s: corrupt data after offset %d: %s", source_file, last_start, exc)
                in_corrupt_stretch = True
                if resume is None:
                    break
                start = resume
    if records_seen == 0:
        counters["skip:unreadable_file"] += 1
        logger.warning("%s: no WARC record found", source_file)
        return
    if corrupt_stretches:
        counters["skip:corrupt_archive"] += corrupt_stretches
    if cut_stream:
        counters["skip:truncated_archive"] += 1


def _tail_is_cut(f: BinaryIO, fs_path: str, last_start: int) -> bool:
    """Whether the file ends inside a record that fastwarc never saw start.

    A gzip member cut before any of its record could be inflated, or a plain
    file cut inside a record's first line, reads as a clean end of file. For
    gzip the members from the last record on are inflated again (output
    discarded); a plain WARC must end with a line feed.
    """
    name = fs_path.lower()
    if name.endswith(".gz"):
        f.seek(last_start)
        try:
            for _ in _inflate_members(f, 1 << 16):
                pass
        except EOFError:
            return True
        except zlib.error:  # not at a member start (whole-file gzip): cannot tell
            return False
        return False
    if name.endswith((".zst", ".lz4")):
        return False
    size = f.seek(0, 2)
    f.seek(max(0, size - 1))
    return f.read(1) != b"\n"


def _find_marker(f: BinaryIO, marker: bytes, offset: int, block: int = 1 << 20) -> int | None:
    """Offset of the first `marker` at or after `offset`, or None."""
    f.seek(offset)
    carry = b""
    base = offset
    while True:
        chunk = f.read(block)
        if not chunk:
            return None
        data = carry + chunk
        hit = data.find(marker)
        if hit >= 0:
            return base + hit
        keep = len(marker) - 1
        base += len(data) - keep
        carry = data[-keep:]


def _warc_document(
    record: WarcRecord, source_file: str, counters: collections.Counter, max_bytes: int
) -> RawDocument | None:
    rtype = record.record_type
    url = (record.headers.get("WARC-Target-URI") or "").strip()
    if url.startswith("<") and url.endswith(">"):  # wget writes WARC-Target-URI: <http://...>
        url = url[1:-1].strip()
    locator = record.record_id or f"offset {record.stream_pos}"

    if rtype == WarcRecordType.conversion:
        raw, cut = _read_payload(record, max_bytes, counters)
        if raw is None:
            return None
        text = _decode_utf8(raw, complete=not cut)
        if text is None:
            counters["skip:undecodable"] += 1
            return None
        if not text.strip():
            counters["skip:empty_record"] += 1
            return None
        return RawDocument(url=url, html=None, text=text, source_file=source_file, source_record=locator)

    if rtype == WarcRecordType.response:
        if not record.is_http:  # e.g. dns: records
            counters["skip:non_html"] += 1
            return None
        status = record.http_headers.status_code if record.is_http_parsed else None
        if status is None:
            counters["skip:bad_record"] += 1
            return None
        if not 200 <= status < 300:
            counters["skip:http_status"] += 1
            return None
        content_type = (record.http_content_type or "").lower()
        charset = record.http_charset
    else:  # resource: the block is the document, typed by the WARC Content-Type
        content_type, charset = _split_content_type(record.headers.get("Content-Type") or "")
    if content_type and content_type not in _HTML_TYPES:
        counters["skip:non_html"] += 1
        return None

    raw, cut = _read_payload(record, max_bytes, counters)
    if raw is None:
        return None
    if record.is_http_parsed:
        raw, cut_decoding = _decode_http_payload(raw, record.http_headers, max_bytes)
        if raw is None:
            counters["skip:undecodable"] += 1
            return None
        cut = cut or cut_decoding
    if not content_type and not _looks_like_html(raw):
        counters["skip:non_html"] += 1
        return None
    if not raw.strip():
        counters["skip:empty_record"] += 1
        return None
    if cut:
        counters["truncated:page_too_large"] += 1
    html = _decode_html(raw, charset, complete=not cut)
    return RawDocument(url=url, html=html, text=None, source_file=source_file, source_record=locator)


def _read_payload(
    record: WarcRecord, max_bytes: int, counters: collections.Counter
) -> tuple[bytes | None, bool]:
    """(payload, cut): at most `max_bytes`; None when the file ends inside it."""
    length = record.content_length
    want = min(length, max_bytes)
    reader = record.reader
    parts = []
    got = 0
    while got < want:
        chunk = reader.read(want - got)
        if not chunk:
            break
        parts.append(chunk)
        got += len(chunk)
    if got < want:
        counters["skip:truncated_archive"] += 1
        return None, False
    # The rest of an oversized payload is skipped by the iterator, never held.
    return b"".join(parts), length > max_bytes


def _split_content_type(value: str) -> tuple[str, str | None]:
    kind, _, params = value.partition(";")
    charset = None
    for param in params.split(";"):
        name, _, val = param.partition("=")
        if name.strip().lower() == "charset":
            charset = val.strip().strip("\"'") or None
    return kind.strip().lower(), charset


_HTML_SNIFF = re.compile(
    rb"^\s*(?:\xef\xbb\xbf)?\s*<(?:!doctype\s+html|html|head|body|!--|meta|title)", re.IGNORECASE
)


def _looks_like_html(data: bytes) -> bool:
    return bool(_HTML_SNIFF.match(data[:1024]))


def _decode_http_payload(raw: bytes, headers: Any, max_bytes: int) -> tuple[bytes | None, bool]:
    """Undo chunked transfer coding and content codings; (body, cut) or (None, False).

    Works on a payload already cut to `max_bytes`, so every step tolerates a
    cut stream; decompressed output is bounded by `max_bytes` too.
    """
    transfer = (headers.get("Transfer-Encoding") or "").lower()
    if "chunked" in transfer:
        raw = _dechunk(raw)
    codings = [c.strip() for c in (headers.get("Content-Encoding") or "").lower().split(",") if c.strip()]
    cut = False
    for coding in reversed(codings):
        # Archivers (wget, some crawlers) often store the decoded body but keep
        # the original Content-Encoding header; compressed data never looks like markup.
        if coding in ("identity", "none") or _looks_like_html(raw):
            continue
        decoder = _CONTENT_DECODERS.get(coding)
        if decoder is None:
            return None, False
        try:
            decoded = decoder(raw, max_bytes + 1)
        except (OSError, zlib.error, zstandard.ZstdError, EOFError):
            return None, False
        if decoded is None:
            return None, False
        raw = decoded
    if len(raw) > max_bytes:
        raw, cut = raw[:max_bytes], True
    return raw, cut


def _dechunk(data: bytes) -> bytes:
    """Undo HTTP chunked transfer coding, keeping what a cut stream holds.

    Bodies that do not start with a chunk-size line are returned unchanged:
    archivers often store the de-chunked body under the original header.
    """
    out = []
    pos = 0
    while pos < len(data):
        eol = data.find(b"\n", pos, pos + 1024)
        try:
            size = int(data[pos : eol if eol >= 0 else pos].split(b";", 1)[0].strip(), 16)
        except ValueError:
            if not out:
                return data
            break
        if size == 0:
            break
        start = eol + 1
        out.append(data[start : start + size])
        pos = start + size
        if data.startswith(b"\r\n", pos):
            pos += 2
        elif data.startswith(b"\n", pos):
            pos += 1
    return b"".join(out)


def _inflate(data: bytes, limit: int) -> bytes | None:
    for wbits in (47, -15):  # gzip or zlib header (auto), then raw deflate
        try:
            return zlib.decompressobj(wbits).decompress(data, limit)
        except zlib.error:
            continue
    return None


def _read_bounded(stream: Any, limit: int) -> bytes:
    parts, got = [], 0
    while got < limit and (chunk := stream.read(limit - got)):
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


def _unbrotli(data: bytes, limit: int) -> bytes:
    return _read_bounded(BrotliReader(BytesIO(data)), limit)


def _unzstd(data: bytes, limit: int) -> bytes:
    return _read_bounded(
        zstandard.ZstdDecompressor().stream_reader(BytesIO(data), read_across_frames=True), limit
    )


_CONTENT_DECODERS: dict[str, Callable[[bytes, int], bytes | None]] = {
    "gzip": _inflate,
    "x-gzip": _inflate,
    "deflate": _inflate,
    "br": _unbrotli,
    "zstd": _unzstd,
}


def _decode_html(data: bytes, declared: str | None, *, complete: bool) -> str:
    """HTML bytes to str: BOM, then valid UTF-8, then the HTTP charset, then
    resiliparse's detector (which reads <meta charset>), then cp1252.

    Valid UTF-8 goes first because it is almost never an accident, while HTTP
    charsets are often wrong (servers default to ISO-8859-1). An incomplete
    character at the end of a cut page is dropped, not turned into a fallback.
    """
    tried = set()
    for name in _encoding_candidates(data, declared):
        if not name or name in tried:
            continue
        tried.add(name)
        try:
            decoder = codecs.getincrementaldecoder(name)(errors="strict")
            return decoder.decode(data, final=complete)
        except (LookupError, UnicodeDecodeError):
            continue
    return data.decode("utf-8", errors="replace")


def _encoding_candidates(data: bytes, declared: str | None) -> Iterator[str]:
    if data.startswith(codecs.BOM_UTF8):
        yield "utf-8-sig"
    elif data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        yield "utf-16"
    yield "utf-8"
    if declared:
        yield map_encoding_to_html5(declared, fallback_utf8=False) or ""
    yield detect_encoding(data, from_html_meta=True) or ""  # scans up to 128 KiB: only when needed
    yield "cp1252"


def _decode_utf8(data: bytes, *, complete: bool) -> str | None:
    try:
        return codecs.getincrementaldecoder("utf-8")(errors="strict").decode(data, final=complete)
    except UnicodeDecodeError:
        return None


# --------------------------------------------------------------------------- JSON Lines


def _max_line_bytes(max_page_bytes: int) -> int:
    # A JSON line is parsed whole. Escaping can grow a page sixfold (\uXXXX for
    # each CJK character), so the cap sits well above max_page_bytes; beyond
    # it a line is skipped without being held in memory.
    return max(64 << 20, 16 * max_page_bytes)


def _iter_jsonl(
    fs: fsspec.AbstractFileSystem,
    fs_path: str,
    source_file: str,
    counters: collections.Counter,
    max_bytes: int,
) -> Iterator[RawDocument]:
    """Records from JSON Lines (plain, gzip, zstd; multi-member/multi-frame).

    Each line is an object with `html` and/or `text` and a URL in `url`,
    `metadata.url` or `id` (first present; "" when none). A line that is not
    valid UTF-8 is skipped (`skip:undecodable`), not repaired: such a line
    was damaged after it was written. A stream that ends inside a compressed
    member/frame gives `skip:truncated_archive`; corrupt compressed bytes give
    `skip:corrupt_archive`. Neither can be resynchronised inside a JSON line,
    so the rest of the file is dropped.
    """
    for locator, obj in iter_json_objects(fs, fs_path, source_file, counters, _max_line_bytes(max_bytes)):
        doc = _document_from_fields(obj, source_file, locator, counters, max_bytes)
        if doc is not None:
            counters["docs_read"] += 1
            yield doc


def iter_json_objects(
    fs: fsspec.AbstractFileSystem,
    fs_path: str,
    source_file: str,
    counters: collections.Counter,
    max_line_bytes: int,
    corrupt_errors: tuple[type[BaseException], ...] = (zlib.error, zstandard.ZstdError, OSError),
) -> Iterator[tuple[str, object]]:
    """("line N", parsed object) for every good line of a JSON Lines file, bad ones counted.

    Shared by the mining and mixing readers. `corrupt_errors` are the
    exceptions that mean damaged compressed data (counted, the rest of the
    file dropped); anything else propagates so the task is retried.
    """
    lines_read = 0
    with fs.open(fs_path, "rb") as f:
        chunks = _decompressed_chunks(f, fs_path)
        try:
            for line_no, line in enumerate(_split_lines(chunks, max_line_bytes), start=1):
                lines_read += 1
                if line is None:
                    counters["skip:line_too_long"] += 1
                    continue
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except UnicodeDecodeError:
                    counters["skip:undecodable"] += 1
                    continue
                except ValueError:
                    counters["skip:bad_json"] += 1
                    continue
                yield f"line {line_no}", obj
        except EOFError as exc:
            counters["skip:truncated_archive"] += 1
            logger.warning("%s: truncated after %d lines: %s", source_file, lines_read, exc)
        except corrupt_errors as exc:
            counters["skip:corrupt_archive" if lines_read else "skip:unreadable_file"] += 1
            logger.warning("%s: unreadable after %d lines: %r", source_file, lines_read, exc)


def _decompressed_chunks(f: BinaryIO, fs_path: str, size: int = 1 << 16) -> Iterator[bytes]:
    """The file's bytes, decompressed by its ending; members/frames back to back.

    Raises EOFError when the stream ends inside a gzip member or zstd frame
    (the standard library and zstandard's stream reader return a silent EOF
    or lose the last decoded block), zlib.error / ZstdError on corrupt data.
    Everything decoded before the error has been given out.
    """
    name = fs_path.lower()
    if name.endswith(".gz"):
        yield from _inflate_members(f, size)
    elif name.endswith(".zst"):
        yield from _zstd_frames(f, size)
    else:
        while chunk := f.read(size):
            yield chunk


def _inflate_members(f: BinaryIO, size: int) -> Iterator[bytes]:
    inflater = zlib.decompressobj(31)
    in_member = False
    while chunk := f.read(size):
        while chunk:
            if not in_member and not chunk.strip(b"\x00"):
                break  # zero padding after the last member, as gzip(1) allows
            in_member = True
            out = inflater.decompress(chunk, size)  # bounded output: safe against gzip bombs
            if out:
                yield out
            if inflater.eof:
                chunk = inflater.unused_data
                inflater = zlib.decompressobj(31)
                in_member = False
            else:
                chunk = inflater.unconsumed_tail
    while in_member:  # zlib may hold output back when `size` was reached
        out = inflater.decompress(b"", size)
        if out:
            yield out
        if inflater.eof:
            break
        if not out:
            raise EOFError("gzip stream ended inside a member")


def _zstd_frames(f: BinaryIO, size: int) -> Iterator[bytes]:
    # decompressobj has no output bound; small input chunks keep each output modest.
    dctx = zstandard.ZstdDecompressor()
    dobj = dctx.decompressobj()
    in_frame = False
    while chunk := f.read(size):
        while chunk:
            in_frame = True
            out = dobj.decompress(chunk)
            if out:
                yield out
            if dobj.eof:
                chunk = dobj.unused_data
                dobj = dctx.decompressobj()
                in_frame = False
            else:
                chunk = b""
    if in_frame:
        raise EOFError("zstd stream ended inside a frame")


def _split_lines(chunks: Iterator[bytes], limit: int) -> Iterator[bytes | None]:
    """Lines (without the newline); None for a line longer than `limit`."""
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


# --------------------------------------------------------------------------- records with fields (JSONL, Parquet)

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


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
        html = _decode_html(html[:max_bytes], None, complete=not cut)
    if isinstance(text, bytes):
        text_cut = len(text) > max_bytes
        text = _decode_utf8(text[:max_bytes], complete=not text_cut)
        if text is None:
            counters["skip:undecodable"] += 1
            return None
        cut = cut or text_cut
    html, html_cut = _cut_str(html, max_bytes, counters)
    text, text_cut = _cut_str(text, max_bytes, counters)
    cut = cut or html_cut or text_cut
    if not (html and html.strip()) and not (text and text.strip()):
        counters["skip:empty_record"] += 1
        return None
    if cut:
        counters["truncated:page_too_large"] += 1
    return RawDocument(
        url=_url_from_fields(obj), html=html, text=text, source_file=source_file, source_record=locator
    )


def _url_from_fields(obj: Mapping) -> str:
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


def _cut_str(value: str | None, max_bytes: int, counters: collections.Counter) -> tuple[str | None, bool]:
    """Repair lone surrogates and cut to `max_bytes` UTF-8 bytes."""
    if value is None:
        return None, False
    if not value.isascii() and _LONE_SURROGATE.search(value):
        counters["repaired:lone_surrogate"] += 1
        value = _LONE_SURROGATE.sub("\ufffd", value)  # json.loads has already joined valid pairs
    if len(value) * 4 <= max_bytes:  # cannot exceed the limit: skip the encode
        return value, False
    encoded = value.encode("utf-8")
    if len(encoded) <= max_bytes:
        return value, False
    return encoded[:max_bytes].decode("utf-8", "ignore"), True


# --------------------------------------------------------------------------- Parquet

_PARQUET_BATCH_ROWS = 64  # pages can be MBs each; keep a batch's Python objects small


def _iter_parquet(
    fs: fsspec.AbstractFileSystem,
    fs_path: str,
    source_file: str,
    counters: collections.Counter,
    max_bytes: int,
) -> Iterator[RawDocument]:
    """Rows from a Parquet file, one row group and `_PARQUET_BATCH_ROWS` at a time.

    Same fields as JSON Lines (`html`/`text` as string or binary; URL from
    `url`, `metadata.url` (struct or JSON string) or `id`); only those
    columns are read. Null `html` and `text` -> `skip:missing_field`. A row
    group that fails to decode is one `skip:corrupt_archive`; the next row
    group is still read.
    """

    def columns_of(parquet: pq.ParquetFile) -> list[str] | None:
        schema = parquet.schema_arrow
        names = set(schema.names)
        if not names & {"html", "text"}:
            counters["skip:missing_field"] += parquet.metadata.num_rows
            logger.warning("%s: no html or text column (columns: %s)", source_file, sorted(names))
            return None
        return [c for c in ("id", "html", "text") if c in names] + url_columns(schema)

    for locator, obj in iter_parquet_rows(fs, fs_path, source_file, counters, columns_of):
        doc = _document_from_fields(obj, source_file, locator, counters, max_bytes)
        if doc is not None:
            counters["docs_read"] += 1
            yield doc


def url_columns(schema: pa.Schema) -> list[str]:
    """The Parquet columns a record's URL is read from: `url`, else `metadata.url`
    (a struct field) or `metadata` (a JSON string); shared by the mining and mixing readers."""
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


def iter_parquet_rows(
    fs: fsspec.AbstractFileSystem,
    fs_path: str,
    source_file: str,
    counters: collections.Counter,
    columns_of: Callable[[pq.ParquetFile], list[str] | None],
) -> Iterator[tuple[str, dict]]:
    """("row N", row) of a Parquet file, one row group at a time; shared by the mining and mixing readers.

    `columns_of` picks the columns to read (None: skip the file; it counts why).
    An unreadable file is one `skip:unreadable_file`; a row group that fails to
    decode is one `skip:corrupt_archive` and the next row group is still read.
    """
    with fs.open(fs_path, "rb") as f:
        try:
            parquet = pq.ParquetFile(f)
        except (pa.ArrowException, OSError, ValueError) as exc:
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
            try:
                for batch in parquet.iter_batches(
                    batch_size=_PARQUET_BATCH_ROWS, row_groups=[group], columns=columns, use_threads=False
                ):
                    for obj in batch.to_pylist():
                        yield f"row {row}", obj
                        row += 1
            except (pa.ArrowException, OSError, ValueError) as exc:
                counters["skip:corrupt_archive"] += 1
                logger.warning("%s: row group %d unreadable from row %d: %r", source_file, group, row, exc)


_READERS = {"warc": _iter_warc, "jsonl": _iter_jsonl, "parquet": _iter_parquet}
