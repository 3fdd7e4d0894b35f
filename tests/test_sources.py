"""transforms.io.documents: reading WARC/WET, JSON Lines and Parquet shards robustly.

Small fixtures are built in each test (tmp_path); integration tests read the
real third-party files in ../shared/webdata and skip where it is absent.
"""

from __future__ import annotations

import collections
import gzip
import importlib.util
import json
import subprocess
import sys
import textwrap
import uuid
import zlib
from pathlib import Path

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard
from fastwarc.stream_io import BrotliWriter, Lz4Writer
from resiliparse.parse.html import HTMLTree

from tests.conftest import WEBDATA
from transforms.io import documents as sources
from transforms.io.documents import RawDocument, expand_inputs, file_kind, iter_documents
from transforms.io.jsonl import split_lines

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "samples"


# --------------------------------------------------------------------------- fixture builders


def warc_record(
    rtype: str, url: str | None, block: bytes, *, content_type: str, length_delta: int = 0, uri_brackets=False
) -> bytes:
    """One WARC/1.0 record; `length_delta` makes its Content-Length lie."""
    headers = [
        f"WARC-Type: {rtype}",
        f"WARC-Record-ID: <urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, f'{rtype}{url}')}>",
    ]
    headers.append("WARC-Date: 2025-01-01T00:00:00Z")
    if url is not None:
        headers.append(f"WARC-Target-URI: <{url}>" if uri_brackets else f"WARC-Target-URI: {url}")
    headers += [f"Content-Type: {content_type}", f"Content-Length: {len(block) + length_delta}"]
    return ("WARC/1.0\r\n" + "\r\n".join(headers) + "\r\n\r\n").encode() + block + b"\r\n\r\n"


def http_response(
    body: bytes, content_type: str | None = "text/html; charset=utf-8", status=200, headers=()
) -> bytes:
    lines = [f"HTTP/1.1 {status} {'OK' if status == 200 else 'Other'}"]
    if content_type is not None:
        lines.append(f"Content-Type: {content_type}")
    lines += list(headers)
    if not any(h.lower().startswith("transfer-encoding") for h in headers):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def response(url: str, body: bytes, **kwargs) -> bytes:
    length_delta = kwargs.pop("length_delta", 0)
    uri_brackets = kwargs.pop("uri_brackets", False)
    return warc_record(
        "response",
        url,
        http_response(body, **kwargs),
        content_type="application/http; msgtype=response",
        length_delta=length_delta,
        uri_brackets=uri_brackets,
    )


def page(i: int, filler: int = 300) -> bytes:
    return f"<html><body><h1>Page {i}</h1><p>{'lorem ipsum ' * filler}</p></body></html>".encode()


def gz_members(records: list[bytes]) -> list[bytes]:
    return [gzip.compress(r, mtime=0) for r in records]


def five_pages() -> list[bytes]:
    return [response(f"http://e.example/{i}", page(i)) for i in range(5)]


def read_all(path, **kwargs) -> tuple[list[RawDocument], collections.Counter]:
    """All documents and counters; every case in this file must be handled explicitly."""
    counters: collections.Counter = collections.Counter()
    docs = list(iter_documents(str(path), counters, **kwargs))
    assert "skip:reader_error" not in counters, counters
    assert counters["docs_read"] == len(docs)
    for doc in docs:
        if isinstance(doc.html, str):
            HTMLTree.parse(doc.html)  # what the extractor will do with it
    return docs, counters


def skips(counters: collections.Counter) -> dict[str, int]:
    return {k: v for k, v in counters.items() if k != "docs_read"}


def write_zst(path: Path, data: bytes) -> Path:
    path.write_bytes(zstandard.ZstdCompressor().compress(data))
    return path


# --------------------------------------------------------------------------- file_kind


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("a.warc", "warc"),
        ("a.warc.gz", "warc"),
        ("A.WARC.GZ", "warc"),
        ("a.warc.zst", "warc"),
        ("a.warc.lz4", "warc"),
        ("CC-MAIN-1.warc.wet.gz", "warc"),
        ("a.wet", "warc"),
        ("a.jsonl", "jsonl"),
        ("a.jsonl.gz", "jsonl"),
        ("a.jsonl.zst", "jsonl"),
        ("cc_en_head-0001.json.gz", "json"),
        ("s3://bucket/x/part-0.parquet", "parquet"),
    ],
)
def test_file_kind_by_ending(name, kind):
    assert file_kind(name) == kind


@pytest.mark.parametrize(
    ("name", "hint"),
    [
        ("old.arc.gz", "ARC"),
        ("x.warc.wat.gz", "WAT"),
        ("x.json", "JSON Lines"),
        ("notes.txt", "supported endings"),
    ],
)
def test_file_kind_rejects_unsupported_with_a_hint(name, hint):
    with pytest.raises(ValueError, match=hint) as err:
        file_kind(name)
    assert name in str(err.value)


# --------------------------------------------------------------------------- expand_inputs


def touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_expand_directory_recurses_and_leaves_out_hidden_and_unsupported(tmp_path):
    a = touch(tmp_path / "d" / "a.warc.gz")
    b = touch(tmp_path / "d" / "sub" / "b.jsonl.zst")
    c = touch(tmp_path / "d" / "sub" / "deeper" / "c.parquet")
    touch(tmp_path / "d" / "README.md")
    touch(tmp_path / "d" / "_SUCCESS")
    touch(tmp_path / "d" / "_temporary" / "0" / "part-0.parquet")
    touch(tmp_path / "d" / ".part-0.parquet")
    assert expand_inputs([str(tmp_path / "d")]) == sorted(str(p) for p in (a, b, c))


def test_expand_glob_sorts_dedups_and_skips_unsupported_matches(tmp_path):
    b = touch(tmp_path / "b.warc.gz")
    a = touch(tmp_path / "a.jsonl")
    touch(tmp_path / "README.md")
    touch(tmp_path / "pages" / "x.html")  # a matched folder without shards adds nothing
    got = expand_inputs([str(tmp_path / "*"), str(b), str(tmp_path / "*.warc.gz")])
    assert got == [str(a), str(b)]


def test_expand_relative_paths_become_absolute(tmp_path, monkeypatch):
    touch(tmp_path / "shards" / "x.warc")
    monkeypatch.chdir(tmp_path)
    assert expand_inputs(["shards/*.warc"]) == [str(tmp_path / "shards" / "x.warc")]


def test_expand_errors_name_the_pattern(tmp_path):
    touch(tmp_path / "notes.txt")
    (tmp_path / "emptydir").mkdir()
    touch(tmp_path / "emptydir" / "readme.md")
    with pytest.raises(FileNotFoundError, match="missing.warc.gz"):
        expand_inputs([str(tmp_path / "missing.warc.gz")])
    with pytest.raises(FileNotFoundError, match=r"no file matched"):
        expand_inputs([str(tmp_path / "*.parquet")])
    with pytest.raises(FileNotFoundError, match=r"no file matched with an ending of .*notes.txt"):
        expand_inputs([str(tmp_path / "*.txt")])
    with pytest.raises(FileNotFoundError, match="emptydir"):
        expand_inputs([str(tmp_path / "emptydir")])
    with pytest.raises(ValueError, match="notes.txt"):
        expand_inputs([str(tmp_path / "notes.txt")])
    with pytest.raises(FileNotFoundError, match="no input patterns"):
        expand_inputs([])


def test_expand_and_read_fsspec_memory_urls():
    fs = fsspec.filesystem("memory")
    root = f"/instructmix-test-{uuid.uuid4().hex}"
    try:
        fs.pipe(f"{root}/crawl/a.warc.gz", b"".join(gz_members(five_pages()[:2])))
        fs.pipe(f"{root}/crawl/b.jsonl", b'{"url": "http://m.example/", "text": "hello"}\n')
        fs.pipe(f"{root}/crawl/notes.txt", b"not a shard")
        urls = expand_inputs([f"memory://{root}/crawl/*"])
        assert urls == [f"memory://{root}/crawl/a.warc.gz", f"memory://{root}/crawl/b.jsonl"]
        docs, _ = read_all(urls[0])
        assert [d.url for d in docs] == ["http://e.example/0", "http://e.example/1"]
        assert docs[0].source_file == urls[0]
        docs, _ = read_all(urls[1])
        assert docs[0].text == "hello"
    finally:
        fs.rm(root, recursive=True)


def test_storage_options_reach_the_filesystem(tmp_path, monkeypatch):
    touch(tmp_path / "a.warc.gz", b"".join(gz_members(five_pages()[:1])))
    seen = []
    real = fsspec.core.url_to_fs

    def spy(url, **options):
        seen.append(options)
        return real(url)

    monkeypatch.setattr(fsspec.core, "url_to_fs", spy)
    (path,) = expand_inputs([str(tmp_path / "*.warc.gz")], storage_options={"anon": True})
    read_all(path, storage_options={"anon": True})
    assert seen == [{"anon": True}, {"anon": True}]


# --------------------------------------------------------------------------- WARC and WET


def test_warc_gz_gives_html_responses_only(tmp_path):
    records = [
        warc_record("warcinfo", None, b"software: test\r\n", content_type="application/warc-fields"),
        warc_record(
            "request",
            "http://a.example/",
            b"GET / HTTP/1.1\r\nHost: a.example\r\n\r\n",
            content_type="application/http; msgtype=request",
        ),
        response("http://a.example/", b"<html><body><p>caf\xc3\xa9</p></body></html>", uri_brackets=True),
        response(
            "http://b.example/",
            "<html><p>café</p></html>".encode("latin-1"),
            content_type="text/html; charset=ISO-8859-1",
        ),
        response(
            "http://c.example/",
            b"<?xml version='1.0'?><html xmlns='http://www.w3.org/1999/xhtml'/>",
            content_type="application/xhtml+xml",
        ),
        response("http://d.example/", b"<!DOCTYPE html><title>no type</title>", content_type=None),
        response("http://e.example/logo.png", b"\x89PNG\r\n\x1a\n" + bytes(200), content_type="image/png"),
        response("http://f.example/gone", b"<html>gone</html>", status=404),
        response("http://g.example/", b"", content_type="text/html"),
        warc_record(
            "resource", "file:///notes.html", b"<html><p>resource</p></html>", content_type="text/html"
        ),
        warc_record("resource", "file:///notes.txt", b"plain notes", content_type="text/plain"),
        warc_record(
            "metadata", "http://a.example/", b"fetchTimeMs: 12\r\n", content_type="application/warc-fields"
        ),
        warc_record("revisit", "http://a.example/", b"", content_type="application/http; msgtype=response"),
    ]
    path = tmp_path / "mixed.warc.gz"
    path.write_bytes(b"".join(gz_members(records)))
    docs, counters = read_all(path)
    assert [d.url for d in docs] == [
        "http://a.example/",  # <...> stripped
        "http://b.example/",
        "http://c.example/",
        "http://d.example/",  # no Content-Type: sniffed
        "file:///notes.html",
    ]
    assert docs[0].html == "<html><body><p>café</p></body></html>"
    assert docs[1].html == "<html><p>café</p></html>"
    assert all(d.text is None and isinstance(d.html, str) for d in docs)
    assert docs[0].source_record.startswith("<urn:uuid:")
    assert len({d.source_record for d in docs}) == 5
    assert skips(counters) == {"skip:non_html": 2, "skip:http_status": 1, "skip:empty_record": 1}


def test_wet_conversion_records_give_text(tmp_path):
    records = [
        warc_record("warcinfo", None, b"software: test\r\n", content_type="application/warc-fields"),
        warc_record(
            "conversion", "http://a.example/", b"First page.\nQ: why? A: because.", content_type="text/plain"
        ),
        warc_record("conversion", "http://b.example/", "第二页".encode(), content_type="text/plain"),
        warc_record("conversion", "http://c.example/", b"caf\xe9 is not UTF-8", content_type="text/plain"),
    ]
    for name, data in (("x.warc.wet", b"".join(records)), ("x.warc.wet.gz", b"".join(gz_members(records)))):
        path = tmp_path / name
        path.write_bytes(data)
        docs, counters = read_all(path)
        assert [(d.url, d.text, d.html) for d in docs] == [
            ("http://a.example/", "First page.\nQ: why? A: because.", None),
            ("http://b.example/", "第二页", None),
        ]
        assert skips(counters) == {"skip:undecodable": 1}


@pytest.mark.parametrize("where", ["warc_head", "http_head", "body"])
@pytest.mark.parametrize("compressed", [True, False])
def test_truncated_archive_keeps_the_records_before_the_cut(tmp_path, where, compressed):
    records = five_pages()
    third = records[2]
    cut_in_record = {"warc_head": 40, "http_head": third.index(b"HTTP/1.1") + 20, "body": len(third) // 2}[
        where
    ]
    if compressed:
        members = gz_members(records)
        # Cutting the gzip stream of member 3 at the same fraction cuts the record at about that point.
        cut = len(members[0]) + len(members[1]) + max(12, len(members[2]) * cut_in_record // len(third))
        data = b"".join(members)[:cut]
    else:
        data = b"".join(records[:2]) + third[:cut_in_record]
    path = tmp_path / ("cut.warc.gz" if compressed else "cut.warc")
    path.write_bytes(data)
    docs, counters = read_all(path)
    assert [d.url for d in docs] == ["http://e.example/0", "http://e.example/1"]
    assert skips(counters) == {"skip:truncated_archive": 1}


@pytest.mark.parametrize("compressed", [True, False])
def test_wrong_content_length_costs_at_most_the_next_record(tmp_path, compressed):
    """fastwarc's quirks mode skips to the next `WARC/1.x` line after a bad length."""
    records = five_pages()
    short = response("http://e.example/short", page(7), length_delta=-40)
    long = response("http://e.example/long", page(8), length_delta=+40)
    for name, bad, expected in (
        # Too short: the page loses its last 40 bytes; every other record survives.
        ("short", short, ["0", "short", "1", "2", "3", "4"]),
        # Too long: the record swallows the head of the next one, which is lost.
        ("long", long, ["0", "long", "2", "3", "4"]),
    ):
        sequence = [records[0], bad, *records[1:]]
        path = tmp_path / (f"{name}.warc.gz" if compressed else f"{name}.warc")
        path.write_bytes(b"".join(gz_members(sequence)) if compressed else b"".join(sequence))
        docs, counters = read_all(path)
        assert [d.url.rsplit("/", 1)[1] for d in docs] == expected
        assert skips(counters) == {}


def test_corrupt_gzip_member_is_skipped_and_reading_resumes(tmp_path):
    members = gz_members(five_pages())
    broken = bytearray(members[2])
    broken[20:60] = b"\xaa" * 40
    path = tmp_path / "corrupt.warc.gz"
    path.write_bytes(b"".join([*members[:2], bytes(broken), *members[3:]]))
    docs, counters = read_all(path)
    assert [d.url for d in docs] == [f"http://e.example/{i}" for i in (0, 1, 3, 4)]
    assert skips(counters) == {"skip:corrupt_archive": 1}

    path.write_bytes(b"".join([*members[:2], b"GARBAGE" * 50, *members[2:]]))
    docs, counters = read_all(path)
    assert len(docs) == 5
    assert skips(counters) == {"skip:corrupt_archive": 1}


def test_garbage_between_plain_records_is_skipped_silently(tmp_path):
    records = five_pages()
    path = tmp_path / "junk.warc"
    path.write_bytes(b"".join([*records[:2], b"junk line\r\n" * 20, *records[2:]]))
    docs, counters = read_all(path)
    assert len(docs) == 5
    assert skips(counters) == {}


def test_whole_file_gzip_truncated(tmp_path):
    data = gzip.compress(b"".join(five_pages()), mtime=0)
    path = tmp_path / "whole.warc.gz"
    path.write_bytes(data[: len(data) * 3 // 4])
    docs, counters = read_all(path)
    assert 1 <= len(docs) < 5
    assert skips(counters) == {"skip:truncated_archive": 1}


def test_zstd_and_lz4_warcs_resume_after_a_corrupt_frame_and_count_a_cut_one(tmp_path):
    records = five_pages()
    frames = [zstandard.ZstdCompressor().compress(r) for r in records]
    broken = bytearray(frames[2])
    broken[30:60] = b"\xaa" * 30
    path = tmp_path / "a.warc.zst"
    for data, urls, expected in (
        (b"".join(frames), "01234", {}),
        (b"".join([*frames[:2], bytes(broken), *frames[3:]]), "0134", {"skip:corrupt_archive": 1}),
        (b"".join(frames)[: len(frames[0]) + len(frames[1]) + 40], "01", {"skip:truncated_archive": 1}),
    ):
        path.write_bytes(data)
        docs, counters = read_all(path)
        assert "".join(d.url[-1] for d in docs) == urls
        assert skips(counters) == expected

    lz4_frames = []
    for i, record in enumerate(records):
        writer = Lz4Writer(str(tmp_path / f"{i}.lz4"))
        writer.write(record)
        writer.close()
        lz4_frames.append((tmp_path / f"{i}.lz4").read_bytes())
    path = tmp_path / "a.warc.lz4"
    path.write_bytes(b"".join(lz4_frames))
    docs, counters = read_all(path)
    assert len(docs) == 5 and skips(counters) == {}
    path.write_bytes(b"".join(lz4_frames)[:-100])
    docs, counters = read_all(path)
    assert len(docs) == 4 and skips(counters) == {"skip:truncated_archive": 1}


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("random.warc.gz", bytes(range(256)) * 40, "skip:unreadable_file"),
        ("text.warc", b"hello world\n" * 100, "skip:unreadable_file"),
        ("gzipped-text.warc.gz", gzip.compress(b"no warc here\n" * 50), "skip:unreadable_file"),
        ("bad-gzip.warc.gz", b"\x1f\x8b\x08\x00" + b"\xff" * 500, "skip:unreadable_file"),
        ("empty.warc.gz", b"", "skip:empty_file"),
        ("empty.warc", b"", "skip:empty_file"),
    ],
)
def test_garbage_and_empty_warcs_are_counted_not_raised(tmp_path, name, data, reason):
    """JSON Lines and Parquet files: tests/test_io_paths.py, for every reader at once."""
    path = tmp_path / name
    path.write_bytes(data)
    docs, counters = read_all(path)
    assert docs == []
    assert skips(counters) == {reason: 1}


def test_missing_and_unsupported_files_are_counted(tmp_path):
    docs, counters = read_all(tmp_path / "nope.warc.gz")
    assert docs == [] and skips(counters) == {"skip:unreadable_file": 1}
    touch(tmp_path / "old.arc")
    docs, counters = read_all(tmp_path / "old.arc")
    assert docs == [] and skips(counters) == {"skip:unsupported_format": 1}
    with pytest.raises(ValueError, match="max_page_bytes"):
        read_all(tmp_path / "old.arc", max_page_bytes=0)


def test_http_codings_are_undone(tmp_path):
    html = ("<html><body>" + "<p>decoded body</p>" * 200 + "</body></html>").encode()
    chunked = b"".join(
        b"%x\r\n%s\r\n" % (len(html[i : i + 500]), html[i : i + 500]) for i in range(0, len(html), 500)
    )
    chunked += b"0\r\n\r\n"
    deflater = zlib.compressobj(wbits=-15)
    raw_deflate = deflater.compress(html) + deflater.flush()
    br = tmp_path / "body.br"
    writer = BrotliWriter(str(br))
    writer.write(html)
    writer.close()
    cases = [
        ("chunked", chunked, ["Transfer-Encoding: chunked"]),
        ("gzip", gzip.compress(html), ["Content-Encoding: gzip"]),
        ("zlib", zlib.compress(html), ["Content-Encoding: deflate"]),
        ("deflate", raw_deflate, ["Content-Encoding: deflate"]),
        ("br", br.read_bytes(), ["Content-Encoding: br"]),
        ("zstd", zstandard.ZstdCompressor().compress(html), ["Content-Encoding: zstd"]),
        ("chunked-gzip", gzip.compress(html), ["Content-Encoding: gzip", "Transfer-Encoding: chunked"]),
        # Archivers often store the decoded body under the original headers.
        ("stored-decoded", html, ["Content-Encoding: gzip", "Transfer-Encoding: chunked"]),
        ("unknown", b"\x00\x01compressed", ["Content-Encoding: compress"]),
    ]
    records = []
    for name, body, headers in cases:
        if name == "chunked-gzip":
            body = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
        records.append(response(f"http://codings.example/{name}", body, headers=headers))
    path = tmp_path / "codings.warc.gz"
    path.write_bytes(b"".join(gz_members(records)))
    docs, counters = read_all(path)
    assert [d.url.rsplit("/", 1)[1] for d in docs] == [name for name, _, _ in cases[:-1]]
    assert all(d.html == html.decode() for d in docs)
    assert skips(counters) == {"skip:undecodable": 1}


def test_html_charsets(tmp_path):
    zh = "<html><head><meta charset='gbk'></head><body><p>第1步：把牛奶加热。</p></body></html>"
    records = [
        response("http://x.example/gbk-header", zh.encode("gbk"), content_type="text/html; charset=GBK"),
        response("http://x.example/gbk-meta", zh.encode("gbk"), content_type="text/html"),
        # A wrong ISO-8859-1 header on a UTF-8 page: valid UTF-8 wins.
        response(
            "http://x.example/utf8-lying-header",
            zh.encode("utf-8"),
            content_type="text/html; charset=iso-8859-1",
        ),
        response("http://x.example/bom", b"\xef\xbb\xbf" + zh.encode("utf-8"), content_type="text/html"),
        response(
            "http://x.example/cp1252",
            "<p>“smart quotes” – naïve</p>".encode("cp1252"),
            content_type="text/html",
        ),
        # Undecodable in any candidate: still given out, never raised.
        response(
            "http://x.example/junk", b"<html>\x81\x8d\x8f\x90\x9d\xff\xfe</html>", content_type="text/html"
        ),
    ]
    path = tmp_path / "charsets.warc.gz"
    path.write_bytes(b"".join(gz_members(records)))
    docs, counters = read_all(path)
    by_name = {d.url.rsplit("/", 1)[1]: d.html for d in docs}
    assert by_name["gbk-header"] == zh
    assert by_name["gbk-meta"] == zh
    assert by_name["utf8-lying-header"] == zh
    assert by_name["bom"] == zh
    assert by_name["cp1252"] == "<p>“smart quotes” – naïve</p>"
    assert by_name["junk"].startswith("<html>")
    assert skips(counters) == {}


def test_page_over_the_limit_is_cut_not_dropped_and_read_in_bounded_memory(tmp_path):
    """A 50 MB page costs about max_page_bytes: checked in a fresh process (peak RSS)."""
    big = b"<html><body>" + b"<p>lorem ipsum dolor sit amet</p>\n" * 1_500_000 + b"</body></html>"
    assert len(big) > 50_000_000
    path = tmp_path / "big.warc.gz"
    with open(path, "wb") as f:
        f.write(gzip.compress(response("http://big.example/before", page(1)), compresslevel=1))
        f.write(gzip.compress(response("http://big.example/huge", big), compresslevel=1))
        f.write(gzip.compress(response("http://big.example/after", page(2)), compresslevel=1))
    script = textwrap.dedent(
        f"""
        import collections, json, resource
        from transforms.io.documents import iter_documents
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        counters = collections.Counter()
        sizes = [(d.url, len(d.html.encode())) for d in iter_documents({str(path)!r}, counters)]
        grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024
        print(json.dumps({{"sizes": sizes, "counters": counters, "grown": grown}}))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, check=True
    )
    out = json.loads(result.stdout)
    assert out["sizes"] == [
        ["http://big.example/before", len(page(1))],
        ["http://big.example/huge", 5_000_000],
        ["http://big.example/after", len(page(2))],
    ]
    assert out["counters"] == {"docs_read": 3, "truncated:page_too_large": 1}
    # Reading the whole payload would need > 100 MB (bytes + str); the cut page needs ~10 MB.
    assert out["grown"] < 40_000_000, out["grown"]


def test_cut_inside_a_multibyte_character_drops_only_that_character(tmp_path):
    text = "常见问题：如何在家制作酸奶？" * 50
    html = f"<html><body><p>{text}</p></body></html>"
    records = [
        response("http://cut.example/utf8", html.encode("utf-8")),
        response("http://cut.example/gbk", html.encode("gbk"), content_type="text/html; charset=gbk"),
    ]
    path = tmp_path / "cut.warc.gz"
    path.write_bytes(b"".join(gz_members(records)))
    docs, counters = read_all(path, max_page_bytes=1001)
    for doc in docs:
        assert html.startswith(doc.html) and len(doc.html) > 300, doc.url
    assert counters["truncated:page_too_large"] == 2

    jsonl = tmp_path / "cut.jsonl"
    jsonl.write_text(
        json.dumps({"url": "u", "html": html, "text": text}, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    (doc,), counters = read_all(jsonl, max_page_bytes=1001)
    assert html.startswith(doc.html) and len(doc.html.encode()) <= 1001
    assert text.startswith(doc.text) and len(doc.text.encode()) <= 1001
    assert counters["truncated:page_too_large"] == 1


# --------------------------------------------------------------------------- JSON Lines


def jsonl_lines() -> list[bytes]:
    lines = [
        {"url": "http://j.example/1", "html": "<p>one</p>"},
        {"metadata": {"url": "http://j.example/2"}, "text": "two"},
        {"id": "http://j.example/3", "text": "three"},
        {"text": "four, no url"},
        {"url": "http://j.example/5", "html": None, "text": None},
        {"url": "http://j.example/6"},
        {"url": "http://j.example/7", "html": 7},
        {"url": "http://j.example/8", "text": "   "},
    ]
    encoded = [json.dumps(obj).encode() for obj in lines]
    encoded.insert(3, b'{"url": "http://j.example/broken", "text": "unterminated')
    encoded.insert(4, b"[1, 2, 3]")
    encoded.insert(5, b"")
    encoded.insert(6, b'{"url": "http://j.example/latin1", "text": "caf\xe9"}')
    encoded.insert(7, b'{"url": "http://j.example/surrogate", "text": "a\\ud800b"}')
    return encoded


def check_jsonl_result(docs, counters):
    assert [(d.url, d.html, d.text, d.source_record) for d in docs] == [
        ("http://j.example/1", "<p>one</p>", None, "line 1"),
        ("http://j.example/2", None, "two", "line 2"),
        ("http://j.example/3", None, "three", "line 3"),
        ("http://j.example/surrogate", None, "a\ufffdb", "line 8"),
        ("", None, "four, no url", "line 9"),
    ]
    assert skips(counters) == {
        "skip:bad_json": 1,
        "skip:bad_record": 2,  # a list, and html of the wrong type
        "skip:undecodable": 1,
        "skip:missing_field": 2,
        "skip:empty_record": 1,
        "repaired:lone_surrogate": 1,
    }
    for doc in docs:
        (doc.text or doc.html).encode("utf-8")  # storable in Arrow


@pytest.mark.parametrize("name", ["x.jsonl", "x.jsonl.gz", "x.jsonl.zst", "x.json.gz"])
def test_jsonl_broken_lines_do_not_lose_their_neighbours(tmp_path, name):
    data = b"\n".join(jsonl_lines()) + b"\n"
    path = tmp_path / name
    if name.endswith(".gz"):
        data = gzip.compress(data)
    elif name.endswith(".zst"):
        data = zstandard.ZstdCompressor().compress(data)
    path.write_bytes(data)
    check_jsonl_result(*read_all(path))


def test_jsonl_multi_member_and_multi_frame(tmp_path):
    lines = [json.dumps({"url": f"u{i}", "text": f"t{i}"}).encode() + b"\n" for i in range(6)]
    gz = tmp_path / "m.jsonl.gz"
    gz.write_bytes(b"".join(gzip.compress(line) for line in lines))
    zst = tmp_path / "m.jsonl.zst"
    zst.write_bytes(
        b"".join(zstandard.ZstdCompressor().compress(b"".join(lines[i : i + 2])) for i in (0, 2, 4))
    )
    for path in (gz, zst):
        docs, counters = read_all(path)
        assert [d.text for d in docs] == [f"t{i}" for i in range(6)]
        assert skips(counters) == {}


@pytest.mark.parametrize("name", ["t.jsonl.gz", "t.jsonl.zst"])
def test_jsonl_truncated_stream_keeps_the_lines_before(tmp_path, name):
    lines = b"".join(
        json.dumps({"url": f"u{i}", "text": "x" * 2000 + str(i)}).encode() + b"\n" for i in range(200)
    )
    if name.endswith(".gz"):
        data = gzip.compress(lines)
    else:
        # zstd blocks hold up to 128 KiB: several frames, so the cut leaves whole frames before it.
        cctx = zstandard.ZstdCompressor()
        data = b"".join(cctx.compress(lines[i : i + 100_000]) for i in range(0, len(lines), 100_000))
    path = tmp_path / name
    path.write_bytes(data[: len(data) * 2 // 3])
    docs, counters = read_all(path)
    assert 0 < len(docs) < 200
    assert [d.url for d in docs] == [f"u{i}" for i in range(len(docs))]
    assert counters["skip:truncated_archive"] == 1
    assert set(skips(counters)) <= {"skip:truncated_archive", "skip:bad_json"}  # the cut line, if it surfaced


def test_jsonl_corrupt_gzip_after_good_data(tmp_path):
    good = gzip.compress(
        b"".join(json.dumps({"url": f"u{i}", "text": "t"}).encode() + b"\n" for i in range(5))
    )
    path = tmp_path / "c.jsonl.gz"
    path.write_bytes(good + b"\x1f\x8b\x08\x00" + b"\xff" * 200)
    docs, counters = read_all(path)
    assert len(docs) == 5
    assert skips(counters) == {"skip:corrupt_archive": 1}


def test_jsonl_overlong_line_is_skipped_without_holding_it(tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "max_line_bytes", lambda max_page_bytes: 100)
    lines = [
        json.dumps({"url": "a", "text": "short"}),
        json.dumps({"url": "b", "text": "x" * 5000}),
        json.dumps({"url": "c", "text": "short too"}),
    ]
    path = tmp_path / "long.jsonl"
    path.write_text("\n".join(lines))  # no final newline
    docs, counters = read_all(path)
    assert [d.url for d in docs] == ["a", "c"]
    assert [d.source_record for d in docs] == ["line 1", "line 3"]
    assert skips(counters) == {"skip:line_too_long": 1}


def test_split_lines_handles_chunk_boundaries():
    chunks = [b"ab", b"c\nde", b"f\n\n", b"x" * 10, b"y\nlast"]
    assert list(split_lines(iter(chunks), limit=8)) == [b"abc", b"def", b"", None, b"last"]


# --------------------------------------------------------------------------- Parquet


def test_parquet_html_text_and_nulls_across_row_groups(tmp_path):
    table = pa.table(
        {
            "url": [
                "http://p.example/0",
                None,
                "http://p.example/2",
                "http://p.example/3",
                "http://p.example/4",
            ],
            "id": ["id0", "http://p.example/1", "id2", "id3", "id4"],
            "html": ["<p>zero</p>", None, None, "<p>three</p>", None],
            "text": [None, "one", None, "three as text", "   "],
        }
    )
    path = tmp_path / "pages.parquet"
    pq.write_table(table, path, row_group_size=2)
    docs, counters = read_all(path)
    assert [(d.url, d.html, d.text, d.source_record) for d in docs] == [
        ("http://p.example/0", "<p>zero</p>", None, "row 0"),
        ("http://p.example/1", None, "one", "row 1"),
        ("http://p.example/3", "<p>three</p>", "three as text", "row 3"),
    ]
    assert skips(counters) == {"skip:missing_field": 1, "skip:empty_record": 1}


def test_parquet_binary_html_and_metadata_url(tmp_path):
    struct_meta = pa.table(
        {
            "html": pa.array(
                ["<p>é</p>".encode(), "<meta charset='gbk'><p>问</p>".encode("gbk")], pa.binary()
            ),
            "metadata": [{"url": "http://m.example/a", "lang": "en"}, {"url": None, "lang": "zh"}],
            "id": ["ida", "idb"],
        }
    )
    pq.write_table(struct_meta, tmp_path / "a.parquet")
    docs, _ = read_all(tmp_path / "a.parquet")
    assert [(d.url, d.html) for d in docs] == [
        ("http://m.example/a", "<p>é</p>"),
        ("idb", "<meta charset='gbk'><p>问</p>"),
    ]
    json_meta = pa.table({"text": ["t"], "metadata": [json.dumps({"url": "http://m.example/json"})]})
    pq.write_table(json_meta, tmp_path / "b.parquet")
    docs, _ = read_all(tmp_path / "b.parquet")
    assert docs[0].url == "http://m.example/json"


def test_parquet_without_page_columns(tmp_path):
    pq.write_table(pa.table({"url": ["a", "b", "c"], "body": ["x", "y", "z"]}), tmp_path / "x.parquet")
    docs, counters = read_all(tmp_path / "x.parquet")
    assert docs == [] and skips(counters) == {"skip:missing_field": 3}


def test_parquet_corrupt_row_group_is_skipped(tmp_path):
    table = pa.table(
        {"url": [f"u{i}" for i in range(6)], "html": [f"<p>{i}</p>" + "x" * 3000 for i in range(6)]}
    )
    path = tmp_path / "rg.parquet"
    pq.write_table(table, path, row_group_size=2)
    column = pq.ParquetFile(path).metadata.row_group(1).column(1)
    start = column.dictionary_page_offset or column.data_page_offset
    data = bytearray(path.read_bytes())
    data[start : start + column.total_compressed_size] = b"\xab" * column.total_compressed_size
    path.write_bytes(bytes(data))
    docs, counters = read_all(path)
    assert [d.source_record for d in docs] == ["row 0", "row 1", "row 4", "row 5"]
    assert skips(counters) == {"skip:corrupt_archive": 1}


# --------------------------------------------------------------------------- real files (../shared/webdata)


def webdata(relative: str) -> Path:
    path = WEBDATA / relative
    if not path.exists():
        pytest.skip(f"{path} not present (set INSTRUCTMIX_WEBDATA)")
    return path


def test_commoncrawl_whirlwind():
    folder = webdata("warc/commoncrawl-whirlwind")
    files = expand_inputs([str(folder / "*")])
    assert [Path(f).name for f in files] == [
        "whirlwind.warc",
        "whirlwind.warc.gz",
        "whirlwind.warc.wet",
        "whirlwind.warc.wet.gz",
    ]  # the WAT files are left out
    (plain,), _ = read_all(folder / "whirlwind.warc")
    (gz,), _ = read_all(folder / "whirlwind.warc.gz")
    assert plain == RawDocument(
        url="https://an.wikipedia.org/wiki/Escopete",
        html=gz.html,
        text=None,
        source_file=str(folder / "whirlwind.warc"),
        source_record=gz.source_record,
    )
    assert "Escopete" in HTMLTree.parse(plain.html).title
    (wet,), _ = read_all(folder / "whirlwind.warc.wet")
    (wet_gz,), _ = read_all(folder / "whirlwind.warc.wet.gz")
    assert wet.text == wet_gz.text and wet.html is None
    assert wet.text.startswith("Escopete")
    assert wet.url == plain.url


def test_dolma_wget_samples():
    files = expand_inputs([str(webdata("warc/dolma-wget-samples") / "*.warc.gz")])
    docs, counters = [], collections.Counter()
    for path in files:
        d, c = read_all(path)
        docs += d
        counters += c
    assert len(docs) == 37
    assert all(d.url.startswith("https://") and not d.url.endswith(">") for d in docs)
    assert skips(counters) == {"skip:non_html": 4}  # wget's own log/argument `resource` records
    faq = [d for d in docs if d.url.rstrip("/").endswith("commoncrawl.org/faq")]
    assert faq and '"FAQPage"' in faq[0].html


def test_ccnet_jsonl():
    files = expand_inputs([str(webdata("text/dolma-ccnet-cc_en_head"))])
    assert len(files) == 2
    docs = [d for path in files for d in read_all(path)[0]]
    assert len(docs) == 20
    assert all(d.text and d.html is None and d.url.startswith("http") for d in docs)
    assert docs[0].source_record == "line 1"


# What fastwarc 2.0.1 plus this reader make of each WARC edge case:
# (documents, counters other than docs_read).
WARC_EDGE = {
    "resiliparse/block-sized-records.warc.gz": (0, {}),  # records of WARC-Type "unknown"
    "resiliparse/block-sized-records.warc.lz4": (0, {}),
    "resiliparse/clipped.warc.gz": (0, {"skip:truncated_archive": 1}),  # its one response is cut
    "resiliparse/clueweb-quirk.warc.gz": (29, {}),  # bare-LF HTTP heads parse only in quirks mode
    "resiliparse/warcfile.warc.gz": (16, {}),
    "warcio/bad.arc": (0, {"skip:unsupported_format": 1}),
    "warcio/example-bad-non-chunked.warc.gz": (1, {}),  # whole-file gzip, gzip Content-Encoding
    "warcio/example-bad.warc.gz.bad": (0, {"skip:unsupported_format": 1}),
    "warcio/example-digest.warc": (0, {}),  # request records only
    "warcio/example-iana.org-chunked.warc": (1, {}),
    "warcio/example-resource.warc.gz": (1, {}),  # an HTML `resource` record
    "warcio/example-space-in-target-uri.warc.gz": (0, {"skip:non_html": 1}),  # a PNG resource
    "warcio/example-space-in-url.arc": (0, {"skip:unsupported_format": 1}),
    "warcio/example-trunc.warc": (1, {}),  # the cut record is a request
    "warcio/example-wget-bad-target-uri.warc.gz": (1, {"skip:non_html": 2}),
    "warcio/example-wrong-chunks.warc.gz": (1, {}),
    "warcio/example.arc": (0, {"skip:unsupported_format": 1}),
    "warcio/example.arc.gz": (0, {"skip:unsupported_format": 1}),
    "warcio/example.warc": (1, {}),
    "warcio/example.warc.gz": (1, {}),
    "warcio/post-test.warc.gz": (0, {"skip:non_html": 3}),  # JSON responses
}


def test_every_warc_edge_file_is_known():
    folder = webdata("warc-edge")
    present = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    assert present == sorted(WARC_EDGE)


@pytest.mark.parametrize("name", sorted(WARC_EDGE))
def test_warc_edge_files(name):
    docs, counters = read_all(webdata("warc-edge") / name)
    assert (len(docs), skips(counters)) == WARC_EDGE[name]


def test_warc_edge_misnamed_gzip_reads_once_renamed(tmp_path):
    renamed = tmp_path / "example-bad.warc.gz"
    renamed.write_bytes(webdata("warc-edge/warcio/example-bad.warc.gz.bad").read_bytes())
    docs, counters = read_all(renamed)
    assert [d.url for d in docs] == ["http://example.com?example=1"]
    assert skips(counters) == {"skip:http_status": 1}  # a 302 to iana.org


# --------------------------------------------------------------------------- bundled samples


def load_build_samples():
    spec = importlib.util.spec_from_file_location("build_samples", SAMPLES / "build_samples.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def read_shards(folder: Path) -> tuple[list[RawDocument], collections.Counter]:
    docs, counters = [], collections.Counter()
    for path in expand_inputs([str(folder / "web-*")]):
        d, c = read_all(path)
        docs += d
        counters += c
    return docs, counters


def test_samples_read_back_as_written():
    docs, counters = read_shards(SAMPLES)
    manifest = load_build_samples().load_manifest()
    pages = [
        e
        for entries in manifest.values()
        for e in entries
        if e["page"] not in ("robots.txt", "redirect-301.html")
    ]
    assert 20 <= len(pages) <= 40
    assert [d.url for d in docs] == [e["url"] for e in pages]
    assert skips(counters) == {"skip:non_html": 1, "skip:http_status": 1}
    for doc, entry in zip(docs, pages, strict=True):
        source = (SAMPLES / "pages" / entry["page"]).read_text(encoding="utf-8")
        assert (doc.text if entry["page"].endswith(".txt") else doc.html) == source, entry["page"]
    assert sum(p.stat().st_size for p in SAMPLES.rglob("*") if p.is_file()) < 320_000


def test_build_samples_is_deterministic_and_matches_the_committed_shards(tmp_path):
    build = load_build_samples().build
    first = build(tmp_path / "one")
    second = build(tmp_path / "two")
    assert [p.name for p in first] == [
        "web-00000.warc.gz", "web-00001.jsonl.zst", "web-00002.parquet", "pretrain-00000.jsonl.zst"]
    for a, b in zip(first, second, strict=True):
        assert a.read_bytes() == b.read_bytes(), a.name
    # Compared by content: byte layout may differ with another pyarrow or zstandard version.
    built, _ = read_shards(tmp_path / "one")
    committed, _ = read_shards(SAMPLES)
    key = lambda d: (d.url, d.html, d.text, d.source_record)
    assert [key(d) for d in built] == [key(d) for d in committed]
    # The demo's pretraining stream: one text document per page with text, not mined.
    built_pre, _ = read_all(str(tmp_path / "one" / "pretrain" / "pretrain-00000.jsonl.zst"))
    committed_pre, _ = read_all(str(SAMPLES / "pretrain" / "pretrain-00000.jsonl.zst"))
    assert [(d.url, d.text) for d in built_pre] == [(d.url, d.text) for d in committed_pre]
    assert len(built_pre) >= 20 and all(d.text.strip() for d in built_pre)
