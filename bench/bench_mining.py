"""Mining throughput benchmark (not a test): MB of WARC per second per core.

Side by side in one run, over the same WARC records:
  * instructmix's whole per-document mining (extract, lang-id, all miners,
    filters, PII, MinHash) on one core, in process;
  * the yardstick: trafilatura main-text extraction of the same records;
  * the Spark job (`run_mine`) in local[1] and local[2] over the same shards.

Inputs are built in a temporary folder from the real pages in ../shared/webdata
(never copied into the project). Run: `make bench` or
`.venv/bin/python bench/bench_mining.py [--copies N]`.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from fastwarc.warc import WarcRecord, WarcRecordType

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
WEBDATA = Path(os.environ.get("INSTRUCTMIX_WEBDATA") or next(
    (p for p in (REPO.parent / "shared" / "webdata", Path("/work/shared/webdata")) if p.is_dir()),
    REPO.parent / "shared" / "webdata"))


def real_pages() -> list[tuple[str, bytes]]:
    pages = []
    for path in sorted(WEBDATA.glob("recipes/*.testhtml.gz")) + sorted(WEBDATA.glob("html/*/*/source.html.gz")) + sorted(
        WEBDATA.glob("zh/*.html.gz")
    ):
        pages.append((f"https://bench.example/{path.parent.name}/{path.name}", gzip.decompress(path.read_bytes())))
    return pages


def write_warc(path: Path, pages: list[tuple[str, bytes]], copy: int) -> int:
    """One gzipped WARC of HTTP responses; returns its uncompressed size."""
    raw = 0
    with open(path, "wb") as f:
        for i, (url, html) in enumerate(pages):
            http = b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n\r\n" + html
            rec = WarcRecord()
            rec.init_headers(WarcRecordType.response, f"uuid:00000000-0000-0000-{copy:04d}-{i:012d}".encode())
            rec.headers["WARC-Target-URI"] = f"{url}?copy={copy}"
            rec.headers["Content-Type"] = "application/http; msgtype=response"
            rec.set_bytes_content(http)
            buf = io.BytesIO()
            raw += rec.write(buf)
            f.write(gzip.compress(buf.getvalue(), compresslevel=6, mtime=0))
    return raw


def bench_in_process(files: list[Path], raw_mb: float) -> dict:
    import trafilatura

    from transforms.io.documents import iter_documents
    from transforms.mine.document import PairMiner

    miner = PairMiner()
    docs = []
    for f in files:
        docs.extend(iter_documents(str(f), Counter()))
    # Warm-up (model loads) outside the timed region.
    list(miner.mine(docs[0].url, docs[0].html, docs[0].text, Counter()))

    t0 = time.perf_counter()
    counters: Counter = Counter()
    pairs = 0
    for f in files:
        for d in iter_documents(str(f), counters):
            pairs += sum(1 for _ in miner.mine(d.url, d.html, d.text, counters))
    mine_s = time.perf_counter() - t0

    from transforms.mine.html_blocks import html_to_page

    t0 = time.perf_counter()
    for d in docs:
        html_to_page(d.html, d.url)
    extract_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    extracted = 0
    for f in files:
        for d in iter_documents(str(f), Counter()):
            html = d.html.decode("utf-8", "replace") if isinstance(d.html, bytes) else d.html
            if trafilatura.extract(html, include_comments=False):
                extracted += 1
    traf_s = time.perf_counter() - t0
    return {
        "documents": counters["docs_read"],
        "pairs_before_dedup": pairs,
        "instructmix_extract_only_MBps_per_core": round(raw_mb / extract_s, 2),
        "instructmix_mine_MBps_per_core": round(raw_mb / mine_s, 2),
        "trafilatura_extract_MBps_per_core": round(raw_mb / traf_s, 2),
        "speedup_vs_trafilatura": round(traf_s / mine_s, 2),
    }


def bench_spark(files: list[Path], raw_mb: float, tmp: Path) -> dict:
    from jobs.engines.spark import spark_session
    from jobs.mine import run_mine

    out = {}
    for cores in (1, 2):
        spark = spark_session(f"local[{cores}]", f"bench-local{cores}")
        # Start one Python worker per core and load the models before timing.
        run_mine([str(f) for f in files[:cores]], str(tmp / f"warm{cores}"), spark=spark)
        t0 = time.perf_counter()
        stats = run_mine([str(f) for f in files], str(tmp / f"out{cores}"), spark=spark)
        secs = time.perf_counter() - t0
        spark.stop()
        out[f"spark_local{cores}_seconds"] = round(secs, 2)
        out[f"spark_local{cores}_MBps"] = round(raw_mb / secs, 2)
        out[f"spark_local{cores}_pairs"] = stats["counters"]["mine.pairs.written"]
    out["local2_speedup_vs_local1"] = round(out["spark_local1_seconds"] / out["spark_local2_seconds"], 2)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--copies", type=int, default=8, help="WARC shards to build (each holds every page once)")
    parser.add_argument("--skip-spark", action="store_true")
    args = parser.parse_args()
    if not WEBDATA.is_dir():
        sys.exit(f"benchmark needs the real pages at {WEBDATA} (set INSTRUCTMIX_WEBDATA)")
    pages = real_pages()
    with tempfile.TemporaryDirectory(prefix="instructmix-bench-") as tmpdir:
        tmp = Path(tmpdir)
        files, raw = [], 0
        for c in range(args.copies):
            f = tmp / f"bench-{c:05d}.warc.gz"
            raw += write_warc(f, pages, c)
            files.append(f)
        raw_mb = raw / 1e6
        result = {"pages_per_shard": len(pages), "shards": len(files), "warc_MB_uncompressed": round(raw_mb, 1),
                  "cpu_count": os.cpu_count()}
        # In-process figures use two shards: enough records, and it keeps the yardstick run short.
        sub = files[:2]
        result.update(bench_in_process(sub, raw_mb * len(sub) / len(files)))
        if not args.skip_spark:
            result.update(bench_spark(files, raw_mb, tmp))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
