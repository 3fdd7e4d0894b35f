"""transforms.io.warc: `response` records whose WARC head does not say `application/http`.

Some archivers leave the WARC `Content-Type` out of response records (or write the
page's own type there). fastwarc then does not parse the HTTP head, and such pages
used to be skipped as `non_html`; they are HTTP messages when their block starts
with a status line, and are read like any other response (issue 9, item 8).
Hand-made WARC bytes, as in tests/test_sources.py.
"""

from __future__ import annotations

import gzip
import uuid

import pytest

from tests.test_sources import gz_members, http_response, page, read_all, response, skips


def unlabelled(url: str, block: bytes, *, content_type: str | None = None) -> bytes:
    """A WARC/1.0 response record without `Content-Type: application/http`."""
    headers = [
        "WARC-Type: response",
        f"WARC-Record-ID: <urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, url)}>",
        "WARC-Date: 2025-01-01T00:00:00Z",
        f"WARC-Target-URI: {url}",
    ]
    if content_type is not None:
        headers.append(f"Content-Type: {content_type}")
    headers.append(f"Content-Length: {len(block)}")
    return ("WARC/1.0\r\n" + "\r\n".join(headers) + "\r\n\r\n").encode() + block + b"\r\n\r\n"


@pytest.mark.parametrize("compressed", [False, True])
def test_response_without_warc_content_type_is_parsed_as_http(tmp_path, compressed):
    html = "<html><body><p>café without a WARC type</p></body></html>"
    bare_lf = b"HTTP/1.0 200 OK\nContent-Type: text/html\n\n<html><p>bare LF head</p></html>"
    chunked_gzip = http_response(
        b"%x\r\n%s\r\n0\r\n\r\n"
        % (len(gz := gzip.compress(page(3).replace(b"Page 3", b"Coded"), mtime=0)), gz),
        headers=["Transfer-Encoding: chunked", "Content-Encoding: gzip"],
    )
    records = [
        unlabelled(
            "http://a.example/", http_response(html.encode("latin-1"), "text/html; charset=ISO-8859-1")
        ),
        unlabelled("http://b.example/", bare_lf),
        unlabelled("http://c.example/", http_response(b"<html>x</html>"), content_type="text/html"),
        unlabelled("http://d.example/", chunked_gzip),
        unlabelled("http://e.example/", http_response(b"<!DOCTYPE html><title>untyped</title>", None)),
        unlabelled("http://f.example/gone", http_response(b"<html>gone</html>", status=404)),
        unlabelled("http://g.example/logo.png", http_response(b"\x89PNG" + bytes(50), "image/png")),
        unlabelled(
            "dns:h.example", b"20250101000000\nh.example. 300 IN A 192.0.2.1\n", content_type="text/dns"
        ),
        unlabelled("http://i.example/empty", b""),
        response("http://j.example/", page(9)),  # a labelled one after them all is still read
    ]
    data = b"".join(gz_members(records)) if compressed else b"".join(records)
    path = tmp_path / ("unlabelled.warc.gz" if compressed else "unlabelled.warc")
    path.write_bytes(data)
    docs, counters = read_all(path)
    assert [d.url for d in docs] == [
        "http://a.example/",
        "http://b.example/",
        "http://c.example/",
        "http://d.example/",
        "http://e.example/",  # no HTTP Content-Type: sniffed, as for labelled records
        "http://j.example/",
    ]
    assert docs[0].html == html  # the HTTP charset was honoured
    assert docs[1].html == "<html><p>bare LF head</p></html>"
    assert docs[2].html == "<html>x</html>"
    assert "<h1>Coded</h1>" in docs[3].html  # chunked and gzip undone
    assert all(d.source_record.startswith("<urn:uuid:") for d in docs)
    assert skips(counters) == {"skip:http_status": 1, "skip:non_html": 3}


def test_unlabelled_page_over_the_limit_is_cut(tmp_path):
    body = b"<html><body>" + b"<p>long page</p>" * 500 + b"</body></html>"
    path = tmp_path / "long.warc"
    path.write_bytes(unlabelled("http://long.example/", http_response(body)))
    (doc,), counters = read_all(path, max_page_bytes=1000)
    assert body.decode().startswith(doc.html) and 0 < len(doc.html) <= 1000
    assert skips(counters) == {"truncated:page_too_large": 1}


@pytest.mark.parametrize("cut_at", [10, 60])
def test_file_cut_inside_an_unlabelled_record(tmp_path, cut_at):
    first = response("http://ok.example/", page(1))
    second = unlabelled("http://cut.example/", http_response(page(2)))
    head_end = second.index(b"\r\n\r\n") + 4
    path = tmp_path / "cut.warc"
    path.write_bytes(first + second[: head_end + cut_at])
    docs, counters = read_all(path)
    assert [d.url for d in docs] == ["http://ok.example/"]
    assert skips(counters) == {"skip:truncated_archive": 1}


def test_unparseable_http_head_is_a_bad_record(tmp_path):
    many_headers = (
        b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(150)) + b"\r\n<html></html>"
    )
    path = tmp_path / "bad.warc"
    path.write_bytes(
        unlabelled("http://bad.example/", many_headers) + response("http://next.example/", page(1))
    )
    docs, counters = read_all(path)
    assert [d.url for d in docs] == ["http://next.example/"]
    assert skips(counters) == {"skip:bad_record": 1}
