"""Bytes and strings from shards made safe to store: decoding, lone surrogates, byte bounds.

Every reader turns raw text into `str` through here, so the rules are the same
for a WARC page, a JSON line and a Parquet cell:

- UTF-8 text that does not decode is refused (None), not guessed: in a JSON
  line or a text column it was damaged after it was written.
- HTML is decoded by its evidence (`decode_html`): pages are published in every
  charset, and only the reader that sees the HTTP header knows the declared one.
- JSON `\\udXXX` escapes without their pair survive `json.loads` as lone
  surrogates, which UTF-8 (Arrow, lexbor, tokenizers) cannot hold; they become
  U+FFFD and `repaired:lone_surrogate` counts them.
- A cut to a byte bound never leaves half a character.
"""

from __future__ import annotations

import codecs
import collections
import re
from collections.abc import Iterator

from resiliparse.parse.encoding import detect_encoding, map_encoding_to_html5

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def repair_lone_surrogates(value: str, counters: collections.Counter) -> str:
    """`value` with unpaired surrogates replaced by U+FFFD (json.loads has already joined valid pairs)."""
    if not value.isascii() and _LONE_SURROGATE.search(value):
        counters["repaired:lone_surrogate"] += 1
        return _LONE_SURROGATE.sub("\ufffd", value)
    return value


def cut_to_bytes(value: str, max_bytes: int) -> tuple[str, bool]:
    """(`value` cut to at most `max_bytes` UTF-8 bytes on a character boundary, whether it was cut)."""
    if len(value) * 4 <= max_bytes:  # cannot exceed the limit: skip the encode
        return value, False
    encoded = value.encode("utf-8")
    if len(encoded) <= max_bytes:
        return value, False
    return encoded[:max_bytes].decode("utf-8", "ignore"), True


def decode_utf8(data: bytes, *, complete: bool = True) -> str | None:
    """Strict UTF-8, or None. With `complete=False` (a cut payload) an incomplete
    character at the end is dropped instead of failing the whole text."""
    try:
        return codecs.getincrementaldecoder("utf-8")(errors="strict").decode(data, final=complete)
    except UnicodeDecodeError:
        return None


def decode_html(data: bytes, declared: str | None, *, complete: bool = True) -> str:
    """HTML bytes to str: BOM, then valid UTF-8, then the declared (HTTP) charset, then
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
