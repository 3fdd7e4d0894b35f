"""WARC and WET files, and the HTTP messages inside them: one `WarcPage` per page record.

Read with fastwarc's `ArchiveIterator` (lenient mode). Only page records come
out: `response` (an HTTP response carrying HTML), `resource` (an HTML document
as is) and WET `conversion` (extracted text). What is counted (`counters`):

    skip:truncated_archive  the file ends inside a record or compressed member:
                            the records before it are given out, the cut one is not
    skip:corrupt_archive    undecodable bytes mid-file; once per corrupt stretch,
                            reading resumes after it where the format allows
    skip:unreadable_file    the file holds no WARC record at all (garbage, an ARC
                            file renamed .warc)
    skip:bad_record         a record without Content-Length, an HTTP head that
                            does not parse
    skip:non_html           a response/resource whose content type is not HTML
                            (HTTP Content-Type; sniffed when absent), or a response
                            whose block is not an HTTP message (dns: records)
    skip:http_status        an HTTP response whose status is not 2xx
    skip:empty_record       the page or text is empty
    skip:undecodable        WET text that is not UTF-8, or an HTTP
                            Content-Encoding that fails
    truncated:page_too_large  a page cut to `max_bytes` (still given out)

A response record is an HTTP message when its WARC `Content-Type` says
`application/http`, or, since some archivers leave that header out, when its
block starts with an HTTP status line (`HTTP/1.1 200 OK`).

`WarcPage.html` is always `str`: this is the only place that sees the HTTP
`charset`, so it decodes (`transforms.io.text_repair.decode_html`).
"""

from __future__ import annotations

import collections
import http.client
import logging
import re
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from io import BytesIO
from typing import Any, BinaryIO

import fsspec
import zstandard
from fastwarc.stream_io import BrotliReader
from fastwarc.warc import ArchiveIterator, WarcRecord, WarcRecordType

from transforms.io.compression import inflate_members
from transforms.io.text_repair import decode_html, decode_utf8

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class WarcPage:
    """One page record: `html` (response, resource) or `text` (WET conversion).

    `record` is the WARC-Record-ID, or `offset N` when the record has none.
    """

    url: str
    html: str | None
    text: str | None
    record: str


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


def iter_warc_pages(
    fs: fsspec.AbstractFileSystem,
    fs_path: str,
    source_file: str,
    counters: collections.Counter,
    max_bytes: int,
) -> Iterator[WarcPage]:
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
                    page = _warc_page(record, counters, max_bytes)
                    if page is not None:
                        yield page
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
            for _ in inflate_members(f, 1 << 16):
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


def _warc_page(record: WarcRecord, counters: collections.Counter, max_bytes: int) -> WarcPage | None:
    rtype = record.record_type
    url = (record.headers.get("WARC-Target-URI") or "").strip()
    if url.startswith("<") and url.endswith(">"):  # wget writes WARC-Target-URI: <http://...>
        url = url[1:-1].strip()
    locator = record.record_id or f"offset {record.stream_pos}"

    if rtype == WarcRecordType.conversion:
        raw, cut = _read_payload(record, max_bytes, counters)
        if raw is None:
            return None
        text = decode_utf8(raw, complete=not cut)
        if text is None:
            counters["skip:undecodable"] += 1
            return None
        if not text.strip():
            counters["skip:empty_record"] += 1
            return None
        return WarcPage(url=url, html=None, text=text, record=locator)

    raw: bytes | None = None
    cut = False
    http_headers: Any = None
    if rtype == WarcRecordType.response:
        if record.is_http:  # the WARC Content-Type says application/http: fastwarc parsed the head
            status = record.http_headers.status_code if record.is_http_parsed else None
            http_headers = record.http_headers if record.is_http_parsed else None
            content_type, charset = (record.http_content_type or "").lower(), record.http_charset
        else:
            message = _unlabelled_http_message(record, max_bytes, counters)
            if message is None:
                return None
            status, http_headers, raw, cut = message
            content_type, charset = _split_content_type(http_headers.get("Content-Type") or "")
        if status is None:
            counters["skip:bad_record"] += 1
            return None
        if not 200 <= status < 300:
            counters["skip:http_status"] += 1
            return None
    else:  # resource: the block is the document, typed by the WARC Content-Type
        content_type, charset = _split_content_type(record.headers.get("Content-Type") or "")
    if content_type and content_type not in _HTML_TYPES:
        counters["skip:non_html"] += 1
        return None

    if raw is None:
        raw, cut = _read_payload(record, max_bytes, counters)
        if raw is None:
            return None
    if http_headers is not None:
        raw, cut_decoding = _decode_http_payload(raw, http_headers, max_bytes)
        if raw is None:
            counters["skip:undecodable"] += 1
            return None
        cut = cut or cut_decoding
    if not content_type and not looks_like_html(raw):
        counters["skip:non_html"] += 1
        return None
    if not raw.strip():
        counters["skip:empty_record"] += 1
        return None
    if cut:
        counters["truncated:page_too_large"] += 1
    html = decode_html(raw, charset, complete=not cut)
    return WarcPage(url=url, html=html, text=None, record=locator)


# The start of an HTTP/1.x status line (RFC 9112 section 4), or of the "HTTP/2 200"
# some archivers write for HTTP/2 fetches: what tells an HTTP message from a dns:
# record or a bare document. 16 bytes hold "HTTP/1.1 200 OK".
_HTTP_STATUS = re.compile(rb"HTTP/\d(?:\.\d)? (\d{3})(?![0-9])")
_STATUS_SNIFF_BYTES = 16


def _unlabelled_http_message(
    record: WarcRecord, max_bytes: int, counters: collections.Counter
) -> tuple[int | None, http.client.HTTPMessage, bytes, bool] | None:
    """(status, headers, body, cut) of a response record whose WARC Content-Type does
    not say `application/http`, when its block is an HTTP message anyway; None (counted)
    when it is not (`skip:non_html`, e.g. dns: records) or the file ends inside it.

    Some archivers leave the WARC Content-Type out, so fastwarc does not parse the
    HTTP head; it is parsed here from the payload, which is read (at most
    `max_bytes`) only when its first bytes are an HTTP status line. A head that
    does not parse gives status None (`skip:bad_record`).
    """
    length = record.content_length
    head = _read_bounded(record.reader, min(length, _STATUS_SNIFF_BYTES))
    if len(head) < min(length, _STATUS_SNIFF_BYTES):
        counters["skip:truncated_archive"] += 1
        return None
    status_line = _HTTP_STATUS.match(head)
    if status_line is None:
        counters["skip:non_html"] += 1
        return None
    raw, cut = _read_payload(record, max_bytes, counters, head=head)
    if raw is None:
        return None
    stream = BytesIO(raw)
    stream.readline()
    try:
        headers = http.client.parse_headers(stream)  # bare-LF heads included
    except http.client.HTTPException:  # more than 100 headers, a line over 64 KiB
        return None, http.client.HTTPMessage(), b"", cut
    return int(status_line.group(1)), headers, raw[stream.tell() :], cut


def _read_payload(
    record: WarcRecord, max_bytes: int, counters: collections.Counter, head: bytes = b""
) -> tuple[bytes | None, bool]:
    """(payload, cut): at most `max_bytes`, `head` being what was already read of it;
    None when the file ends inside it."""
    length = record.content_length
    want = min(length, max_bytes)
    payload = head[:want] + _read_bounded(record.reader, want - len(head[:want]))
    if len(payload) < want:
        counters["skip:truncated_archive"] += 1
        return None, False
    # The rest of an oversized payload is skipped by the iterator, never held.
    return payload, length > max_bytes


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


def looks_like_html(data: bytes | str) -> bool:
    """Whether a payload opens like an HTML page (a doctype, `<html>`, `<head>`, `<body>`, a
    comment, `<meta>` or `<title>` first): how a record without a Content-Type, or a
    datatrove Document whose `text` may hold either, is told apart from plain text."""
    if isinstance(data, str):
        data = data[:1024].encode("utf-8", "surrogatepass")
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
        if coding in ("identity", "none") or looks_like_html(raw):
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
    """Up to `limit` bytes of `stream`; fewer only at its end."""
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
