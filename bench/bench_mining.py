"""Mining throughput benchmark (not a test): MB of WARC per second per core.

Side by side in one run, over the same WARC records:
  * instructmix's whole per-document mining (extract, lang-id, all miners,
    filters, PII, MinHash) on one core, in process;
  * the yardstick: trafilatura main-text extraction of the same records;
  * the Spark job (`run_mine`) in local[1] and local[2] over the same shards;
  * what a user pays: the whole `instructmix mine --master local[1]` command on
    --whole-job-mb of WARC (600 by default), its process tree (Python, the JVM,
    the Python workers) pinned to one core, start-up included, against
    trafilatura pinned to the same core over the same records.

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
import statistics
import subprocess
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


# -- the whole job on one core ---------------------------------------------------------


def _pinned(core: int):
    """preexec_fn pinning a child (and everything it starts) to one core, like `taskset -c`."""
    return lambda: os.sched_setaffinity(0, {core})


def _instructmix_command() -> list[str]:
    script = Path(sys.executable).with_name("instructmix")
    return [str(script)] if script.exists() else [sys.executable, "-m", "jobs.cli"]


def trafilatura_child(folder: str) -> None:
    """Run in a pinned child: trafilatura over every record of the WARCs in `folder`."""
    import trafilatura

    from transforms.io.documents import iter_documents

    files = sorted(Path(folder).glob("*.warc.gz"))
    t0 = time.perf_counter()
    records = 0
    for f in files:
        for d in iter_documents(str(f), Counter()):
            html = d.html.decode("utf-8", "replace") if isinstance(d.html, bytes) else d.html
            trafilatura.extract(html, include_comments=False)
            records += 1
    print(json.dumps({"seconds": time.perf_counter() - t0, "records": records}))


def _wait_for_class_archive(timeout: float = 120) -> None:
    """Wait until no JVM is still writing the class-data archive (it does so after its command
    exited), so the timed run neither competes with it for the core nor misses the archive."""
    from jobs.engines import jvm_archive

    deadline = time.time() + timeout
    while jvm_archive.recording() and time.time() < deadline:
        time.sleep(0.5)


def bench_whole_job(folder: Path, raw_mb: float, tmp: Path, core: int = 0, rounds: int = 3) -> dict:
    """`instructmix mine --master local[1]` as a user runs it, pinned to `core`, timed from the
    command's start to its exit; trafilatura pinned to the same core over the same records
    (timed from its first record, so its interpreter start-up is not counted against it).

    A first, untimed run on one file is what a machine's first command does once: it records
    the JVM's class-data archive (jobs/engines/jvm_archive.py) that every later run maps.
    The job and trafilatura then alternate for `rounds` rounds, so a shared machine's slow
    minutes weigh on both; the figures are the medians, the speed-up their ratio.
    """
    first = [*_instructmix_command(), "mine", "--input", str(min(folder.glob("*.warc.gz"))),
             "--output", str(tmp / "first-run-out"), "--master", "local[1]"]
    t0 = time.perf_counter()
    subprocess.run(first, preexec_fn=_pinned(core), capture_output=True, text=True, check=True)
    first_run_s = time.perf_counter() - t0
    _wait_for_class_archive()
    job_times, traf_times, pairs = [], [], set()
    for round_ in range(rounds):
        out = tmp / f"whole-job-out-{round_}"
        cmd = [*_instructmix_command(), "mine", "--input", str(folder), "--output", str(out), "--master", "local[1]"]
        t0 = time.perf_counter()
        done = subprocess.run(cmd, preexec_fn=_pinned(core), capture_output=True, text=True, check=False)
        job_times.append(time.perf_counter() - t0)
        if done.returncode != 0:
            raise RuntimeError(f"instructmix mine failed ({done.returncode}): {done.stderr[-2000:]}")
        pairs.add(json.loads((out / "_stats.json").read_text())["counters"].get("mine.pairs.written"))
        child = subprocess.run([sys.executable, __file__, "--trafilatura-child", str(folder)],
                               preexec_fn=_pinned(core), capture_output=True, text=True, check=True)
        traf_times.append(json.loads(child.stdout.strip().splitlines()[-1])["seconds"])
    job_s, traf_s = statistics.median(job_times), statistics.median(traf_times)
    return {
        "whole_job_first_run_one_file_seconds": round(first_run_s, 1),
        "whole_job_warc_MB": round(raw_mb, 1),
        "whole_job_rounds": rounds,
        "whole_job_seconds": round(job_s, 1),
        "whole_job_seconds_each": [round(t, 1) for t in job_times],
        "whole_job_MBps_one_core": round(raw_mb / job_s, 2),
        "whole_job_pairs": sorted(pairs),
        "whole_job_trafilatura_seconds_each": [round(t, 1) for t in traf_times],
        "whole_job_trafilatura_MBps_one_core": round(raw_mb / traf_s, 2),
        "whole_job_speedup_vs_trafilatura": round(traf_s / job_s, 2),
        "whole_job_speedup_each_round": [round(t / j, 2) for t, j in zip(traf_times, job_times)],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--copies", type=int, default=8, help="WARC shards to build (each holds every page once)")
    parser.add_argument("--skip-spark", action="store_true")
    parser.add_argument("--whole-job-mb", type=float, default=600,
                        help="MB of WARC for the pinned whole-job measurement (0 skips it)")
    parser.add_argument("--core", type=int, default=0, help="the core the whole job and its yardstick run on")
    parser.add_argument("--rounds", type=int, default=3, help="alternating whole-job/trafilatura rounds (medians)")
    parser.add_argument("--trafilatura-child", metavar="FOLDER", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.trafilatura_child:
        trafilatura_child(args.trafilatura_child)
        return
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
        if args.whole_job_mb > 0:
            folder = tmp / "whole-job-input"
            folder.mkdir()
            whole_raw, copy = 0, 0
            while whole_raw < args.whole_job_mb * 1e6:
                whole_raw += write_warc(folder / f"bench-{copy:05d}.warc.gz", pages, copy)
                copy += 1
            result.update(bench_whole_job(folder, whole_raw / 1e6, tmp, args.core, args.rounds))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
