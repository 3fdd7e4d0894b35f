"""Decompressing a shard's byte stream: gzip members and zstd frames back to back, cuts detected.

Shards are written one record (or a few lines) per gzip member / zstd frame, as
Common Crawl and dolma do, so a stream is a sequence of them. The standard
library and zstandard's stream reader treat a stream that stops inside a member
as a silent end of file; here that is an EOFError, so the readers can count
`skip:truncated_archive` instead of losing the cut quietly.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from typing import BinaryIO

import zstandard

# Errors that mean damaged compressed data. An OSError is the filesystem's (a
# dropped connection) and is left to `transforms.io.paths.read_input` to count.
CORRUPT_STREAM_ERRORS: tuple[type[BaseException], ...] = (zlib.error, zstandard.ZstdError)


def decompressed_chunks(f: BinaryIO, fs_path: str, size: int = 1 << 16) -> Iterator[bytes]:
    """The file's bytes, decompressed by its ending (.gz, .zst, else as is).

    Raises EOFError when the stream ends inside a gzip member or zstd frame,
    zlib.error / ZstdError on corrupt data. Everything decoded before the
    error has been given out.
    """
    name = fs_path.lower()
    if name.endswith(".gz"):
        yield from inflate_members(f, size)
    elif name.endswith(".zst"):
        yield from zstd_frames(f, size)
    else:
        while chunk := f.read(size):
            yield chunk


def inflate_members(f: BinaryIO, size: int = 1 << 16) -> Iterator[bytes]:
    """Every gzip member of `f` inflated, `size` bytes of output at most per step (safe against bombs)."""
    inflater = zlib.decompressobj(31)
    in_member = False
    while chunk := f.read(size):
        while chunk:
            if not in_member and not chunk.strip(b"\x00"):
                break  # zero padding after the last member, as gzip(1) allows
            in_member = True
            out = inflater.decompress(chunk, size)
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


def zstd_frames(f: BinaryIO, size: int = 1 << 16) -> Iterator[bytes]:
    """Every zstd frame of `f` decompressed; small input chunks keep each output modest
    (decompressobj has no output bound)."""
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
