"""Regenerate the bundled sample shards from the page sources in samples/pages/.

    .venv/bin/python samples/build_samples.py [--out DIR]

`pages/manifest.json` lists, per shard, which page goes in, under which URL,
and how it is served. The output is byte-for-byte the same on every run with
the same pyarrow and zstandard versions: record ids are derived from the URL,
dates are fixed and gzip headers carry no timestamp.

- `web-00000.warc.gz`: a warcinfo record, then one HTTP `response` record per
  page, each in its own gzip member as Common Crawl writes them. Manifest keys
  `charset`, `content_encoding` ("gzip"), `transfer_encoding` ("chunked"),
  `content_type` and `status`/`location` shape the HTTP response.
- `web-00001.jsonl.zst`: one `{"url", "html"}` or `{"url", "text"}` object per
  line (`.txt` pages give `text`).
- `web-00002.parquet`: columns `url`, `html`, `text`; the unused one is null.
- `pretrain/pretrain-00000.jsonl.zst`: `{"url", "text"}`, the main-content text
  of every page: the pretraining stream of the demo pipeline (`configs/demo.yaml`).
"""

from __future__ import annotations

import argparse
import base64
import gzip
import hashlib
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import zstandard

HERE = Path(__file__).resolve().parent
PAGES = HERE / "pages"
WARC_NAME = "web-00000.warc.gz"
JSONL_NAME = "web-00001.jsonl.zst"
PARQUET_NAME = "web-00002.parquet"
PRETRAIN_NAME = "pretrain/pretrain-00000.jsonl.zst"

CRAWL_START = datetime(2025, 5, 1, 12, 0, 0, tzinfo=UTC)
RECORD_ID_NAMESPACE = uuid.UUID("6f1c3b0e-3d0a-5c55-9a52-6e1b2a7c9d41")  # fixed, so ids are stable
REASONS = {200: "OK", 301: "Moved Permanently", 404: "Not Found"}


def load_manifest() -> dict[str, list[dict]]:
    manifest = json.loads((PAGES / "manifest.json").read_text(encoding="utf-8"))
    shards = {name: entries for name, entries in manifest.items() if name != "about"}
    for name, entries in shards.items():
        for entry in entries:
            if not (PAGES / entry["page"]).is_file():
                raise FileNotFoundError(f"pages/manifest.json: {name}: page {entry['page']!r} not in {PAGES}")
    return shards


def page_field(entry: dict) -> str:
    return "text" if entry["page"].endswith(".txt") else "html"


def read_page(entry: dict) -> str:
    return (PAGES / entry["page"]).read_text(encoding="utf-8")


# --------------------------------------------------------------------------- WARC


def _sha1_digest(data: bytes) -> str:
    return "sha1:" + base64.b32encode(hashlib.sha1(data).digest()).decode("ascii")


def _record_id(key: str) -> str:
    return f"<urn:uuid:{uuid.uuid5(RECORD_ID_NAMESPACE, key)}>"


def warc_record(headers: list[tuple[str, str]], block: bytes) -> bytes:
    """One WARC/1.1 record; Content-Length and the block digest are added here."""
    lines = ["WARC/1.1", *(f"{k}: {v}" for k, v in headers)]
    lines.append(f"WARC-Block-Digest: {_sha1_digest(block)}")
    lines.append(f"Content-Length: {len(block)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + block + b"\r\n\r\n"


def _chunked(body: bytes, size: int = 1024) -> bytes:
    parts = [
        b"%x\r\n%s\r\n" % (len(body[i : i + size]), body[i : i + size]) for i in range(0, len(body), size)
    ]
    return b"".join(parts) + b"0\r\n\r\n"


def http_response(entry: dict, date: datetime) -> tuple[bytes, bytes]:
    """(HTTP message, its body as stored) for one manifest entry.

    The payload digest covers the body as stored, content and transfer coding
    included, which is what fastwarc's `verify_payload_digest` checks.
    """
    charset = entry.get("charset", "utf-8")
    payload = read_page(entry).encode(charset)
    content_type = entry.get("content_type", "text/html")
    status = entry.get("status", 200)
    head = [
        f"HTTP/1.1 {status} {REASONS[status]}",
        f"Date: {date.strftime('%a, %d %b %Y %H:%M:%S GMT')}",
        "Server: nginx",
        f"Content-Type: {content_type}; charset={charset}",
    ]
    if "location" in entry:
        head.append(f"Location: {entry['location']}")
    body = payload
    if entry.get("content_encoding") == "gzip":
        body = gzip.compress(body, compresslevel=9, mtime=0)
        head.append("Content-Encoding: gzip")
    if entry.get("transfer_encoding") == "chunked":
        body = _chunked(body)
        head.append("Transfer-Encoding: chunked")
    else:
        head.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(head) + "\r\n\r\n").encode("ascii") + body, body


def build_warc(entries: list[dict], out: Path) -> None:
    members = []
    info = (
        b"software: instructmix samples/build_samples.py\r\n"
        b"format: WARC File Format 1.1\r\n"
        b"description: sample pages written for instructmix; all hosts use the reserved .example TLD\r\n"
    )
    members.append(
        warc_record(
            [
                ("WARC-Type", "warcinfo"),
                ("WARC-Record-ID", _record_id("warcinfo:" + out.name)),
                ("WARC-Date", CRAWL_START.strftime("%Y-%m-%dT%H:%M:%SZ")),
                ("WARC-Filename", out.name),
                ("Content-Type", "application/warc-fields"),
            ],
            info,
        )
    )
    for i, entry in enumerate(entries, start=1):
        date = CRAWL_START + timedelta(seconds=7 * i)
        message, body = http_response(entry, date)
        members.append(
            warc_record(
                [
                    ("WARC-Type", "response"),
                    ("WARC-Record-ID", _record_id("response:" + entry["url"])),
                    ("WARC-Date", date.strftime("%Y-%m-%dT%H:%M:%SZ")),
                    ("WARC-Target-URI", entry["url"]),
                    ("Content-Type", "application/http; msgtype=response"),
                    ("WARC-Payload-Digest", _sha1_digest(body)),
                ],
                message,
            )
        )
    out.write_bytes(b"".join(gzip.compress(m, compresslevel=9, mtime=0) for m in members))


# --------------------------------------------------------------------------- JSONL, Parquet


def build_jsonl(entries: list[dict], out: Path) -> None:
    lines = [
        json.dumps({"url": entry["url"], page_field(entry): read_page(entry)}, ensure_ascii=False) + "\n"
        for entry in entries
    ]
    data = "".join(lines).encode("utf-8")
    out.write_bytes(zstandard.ZstdCompressor(level=19, write_content_size=True).compress(data))


def build_parquet(entries: list[dict], out: Path) -> None:
    columns: dict[str, list[str | None]] = {"url": [], "html": [], "text": []}
    for entry in entries:
        field = page_field(entry)
        columns["url"].append(entry["url"])
        columns["html"].append(read_page(entry) if field == "html" else None)
        columns["text"].append(read_page(entry) if field == "text" else None)
    schema = pa.schema([("url", pa.string()), ("html", pa.string()), ("text", pa.string())])
    pq.write_table(pa.table(columns, schema=schema), out, compression="zstd")


def build_pretrain(shards: dict[str, list[dict]], out: Path) -> None:
    """Plain text of every page (resiliparse main content): the demo's pretraining stream."""
    from resiliparse.extract.html2text import extract_plain_text

    lines = []
    for entries in shards.values():
        for entry in entries:
            page = read_page(entry)
            text = page if page_field(entry) == "text" else extract_plain_text(page, main_content=True)
            if text.strip():
                lines.append(json.dumps({"url": entry["url"], "text": text}, ensure_ascii=False) + "\n")
    out.parent.mkdir(parents=True, exist_ok=True)
    data = "".join(lines).encode("utf-8")
    out.write_bytes(zstandard.ZstdCompressor(level=19, write_content_size=True).compress(data))


def build(out_dir: Path) -> list[Path]:
    shards = load_manifest()
    out_dir.mkdir(parents=True, exist_ok=True)
    builders = {WARC_NAME: build_warc, JSONL_NAME: build_jsonl, PARQUET_NAME: build_parquet}
    unknown = set(shards) - set(builders)
    if unknown:
        raise ValueError(
            f"pages/manifest.json: unknown shard(s) {sorted(unknown)}; expected {sorted(builders)}"
        )
    written = []
    for name, builder in builders.items():
        builder(shards[name], out_dir / name)
        written.append(out_dir / name)
    build_pretrain(shards, out_dir / PRETRAIN_NAME)
    written.append(out_dir / PRETRAIN_NAME)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=HERE, help="output folder (default: samples/)")
    args = parser.parse_args()
    for path in build(args.out):
        print(f"{path}  {path.stat().st_size:,} bytes")


if __name__ == "__main__":
    main()
