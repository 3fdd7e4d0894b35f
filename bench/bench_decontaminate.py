"""Decontamination benchmark (not a test): index build time and size, pairs checked per second on one core.

Benchmarks: the stand-ins in ../shared/webdata (BELLE's 1,000-item Chinese eval set,
the 175 Alpaca seed tasks, BELLE's 175 Chinese seed tasks) replicated into
`--benchmarks` files (JSONL, JSON, Parquet and CSV in turn) under different names;
each copy has a marker word inserted every 8 characters, so its n-grams are its own
and the index grows with the number of files as it would with that many real
evaluation sets. Pairs: what the miner finds in the real pages of ../shared/webdata,
repeated to `--pairs`.

Measured, in this process pinned to one core (`os.sched_setaffinity`, what
`taskset -c CORE` does): reading the files and building the index on the "driver"
(`jobs.decontamination.load_benchmarks`), writing it and opening it memory-mapped;
pairs checked per second (`BenchmarkIndex.contamination`: normalise, tokenise, hash
every gram length the index holds, look up) with the sorted-array index, and the same
lookups (the bitmap then `np.searchsorted`, as the index does) against `np.searchsorted` alone, a
Python set of the same hashes and one batched `np.isin`.
Run: `.venv/bin/python bench/bench_decontaminate.py [--benchmarks 20] [--pairs 20000] [--core 0]`.
"""

from __future__ import annotations

import argparse
import collections
import gzip
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from jobs.config import DecontaminationSettings
from jobs.decontamination import load_benchmarks
from transforms.decontaminate import BenchmarkIndex
from transforms.io.benchmarks import read_benchmark_file

WEBDATA = Path(os.environ.get("INSTRUCTMIX_WEBDATA", REPO.parent / "shared" / "webdata"))
if not WEBDATA.is_dir():
    WEBDATA = Path("/work/shared/webdata")
STAND_INS = {"belle_eval": "instructions/belle-zh/eval_set.json",
             "alpaca_seed": "instructions/alpaca-self-instruct-seed/seed_tasks.jsonl",
             "belle_seed": "instructions/belle-zh/zh_seed_tasks.json"}


def mined_pairs(webdata: Path) -> list[dict]:
    """Pairs the existing miner finds in the real pages of `webdata` (no language restriction)."""
    from transforms.io.documents import iter_documents
    from transforms.mine.document import PairMiner
    from transforms.records import Provenance

    miner = PairMiner(languages=())
    counters: collections.Counter = collections.Counter()
    pairs: list[dict] = []
    streams = [webdata / "qa-dev" / "pages.warc.gz", *sorted((webdata / "warc").glob("*/*.warc.gz")),
               *sorted((webdata / "text").glob("*/*.jsonl.gz"))]
    for path in streams:
        for doc in iter_documents(str(path), counters):
            pairs.extend(miner.mine(doc.url, doc.html, doc.text, counters, Provenance()))
    pages = [*sorted((webdata / "recipes").glob("*.testhtml.gz")), *sorted((webdata / "zh").glob("*.html.gz")),
             *sorted((webdata / "html" / "readability-testpages").glob("*/source.html"))]
    for path in pages:
        raw = path.read_bytes()
        html = gzip.decompress(raw) if path.suffix == ".gz" else raw
        pairs.extend(miner.mine(f"https://example.org/{path.name}", html, None, counters, Provenance()))
    return pairs


def _marked(value, marker: str):
    """`value` with `marker` inserted every 8 characters of every string in it."""
    if isinstance(value, str):
        return "".join(value[i:i + 8] + marker for i in range(0, len(value), 8))
    if isinstance(value, dict):
        return {k: _marked(v, marker) for k, v in value.items()}
    if isinstance(value, list):
        return [_marked(v, marker) for v in value]
    return value


def write_benchmarks(folder: Path, count: int) -> list[str]:
    """`count` benchmark files: the stand-ins, then marked copies, in turn JSONL, JSON, Parquet, CSV."""
    sources = [read_benchmark_file(str(WEBDATA / rel)).records for rel in STAND_INS.values()]
    paths = []
    for k in range(count):
        records = sources[k % len(sources)]
        if k >= len(sources):
            records = [_marked(r, f" x{k}q ") for r in records]
        flat = [{key: json.dumps(v, ensure_ascii=False) if isinstance(v, (dict, list)) else v
                 for key, v in r.items()} for r in records]
        fmt = ("jsonl", "json", "parquet", "csv")[k % 4]
        path = folder / f"bench{k:02d}.{fmt}"
        if fmt == "jsonl":
            path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in records), encoding="utf-8")
        elif fmt == "json":
            path.write_text(json.dumps({"data": records}, ensure_ascii=False), encoding="utf-8")
        elif fmt == "parquet":
            pq.write_table(pa.Table.from_pylist(flat), path)
        else:
            import csv

            with open(path, "w", newline="", encoding="utf-8") as f:
                writer = csv.DictWriter(f, fieldnames=sorted({key for r in flat for key in r}))
                writer.writeheader()
                writer.writerows(flat)
        paths.append(str(path))
    return paths


def _per_second(n: int, seconds: float) -> float:
    return round(n / seconds, 1) if seconds else float("inf")


def measure(benchmarks: int, pairs: list[dict], folder: Path) -> dict:
    paths = write_benchmarks(folder, benchmarks)
    started = time.perf_counter()
    loaded = load_benchmarks(DecontaminationSettings(benchmarks=paths), {})
    build_s = time.perf_counter() - started
    index = loaded.index
    started = time.perf_counter()
    index.save(folder / "index")
    save_s = time.perf_counter() - started
    started = time.perf_counter()
    opened = BenchmarkIndex.open(folder / "index")
    open_s = time.perf_counter() - started
    bytes_on_disk = sum(p.stat().st_size for p in (folder / "index").iterdir())

    texts = [(p["instruction"], p["input"], p["output"]) for p in pairs]
    started = time.perf_counter()
    flagged = sum(opened.contamination(*t) is not None for t in texts)
    check_s = time.perf_counter() - started
    # Where the time goes: the grams alone (normalise, tokenise, hash), without any lookup.
    started = time.perf_counter()
    grams = [opened.text_grams(f) for t in texts for f in t if f]
    grams_s = time.perf_counter() - started
    # The same lookups against other structures holding the same hashes.
    started = time.perf_counter()
    as_set = frozenset(opened.hashes.tolist())
    set_build_s = time.perf_counter() - started
    started = time.perf_counter()
    set_hits = sum(any(h in as_set for h in q.tolist()) for q in grams)
    set_lookup_s = time.perf_counter() - started
    hashes = np.asarray(opened.hashes)
    # np.isin sorts the index on every call (266 s for 2,000 pairs one call each): timed once, batched.
    started = time.perf_counter()
    flat = np.isin(np.concatenate(grams), hashes)
    isin_lookup_s = time.perf_counter() - started
    ends = np.cumsum([len(q) for q in grams])
    isin_hits = sum(bool(part.any()) for part in np.split(flat, ends[:-1]))
    started = time.perf_counter()
    sorted_hits = 0
    for q in grams:
        sorted_hits += bool(len(opened.lookup(q)))
    sorted_lookup_s = time.perf_counter() - started
    started = time.perf_counter()
    plain_hits = 0
    for q in grams:  # the same without the bitmap in front
        q = np.sort(q)
        pos = np.searchsorted(hashes, q)
        pos[pos == len(hashes)] = 0
        plain_hits += bool((hashes[pos] == q).any())
    plain_lookup_s = time.perf_counter() - started
    assert set_hits == isin_hits == sorted_hits == plain_hits
    return {
        "benchmark_files": benchmarks,
        "grams_indexed": len(index), "gram_lengths": list(index.lengths),
        "index_bytes": bytes_on_disk, "index_MB": round(bytes_on_disk / 1e6, 2),
        "build_seconds": round(build_s, 3), "save_seconds": round(save_s, 3), "open_seconds": round(open_s, 4),
        "pairs_checked": len(texts), "pairs_flagged": flagged,
        "mean_pair_chars": round(sum(len("".join(t)) for t in texts) / len(texts)),
        "pairs_per_second_per_core": _per_second(len(texts), check_s),
        "grams_only_pairs_per_second": _per_second(len(texts), grams_s),
        "lookup_seconds": {"bitmap_then_searchsorted": round(sorted_lookup_s, 3),
                           "searchsorted_alone": round(plain_lookup_s, 3), "python_set": round(set_lookup_s, 3),
                           "np_isin_all_at_once": round(isin_lookup_s, 3)},
        "python_set_build_seconds": round(set_build_s, 3),
        "python_set_MB_approx": round((sys.getsizeof(as_set) + 32 * len(as_set)) / 1e6, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--benchmarks", type=int, nargs="+", default=[1, 10, 30],
                        help="numbers of benchmark files to index, one measurement each")
    parser.add_argument("--pairs", type=int, default=20_000, help="pairs checked per measurement")
    parser.add_argument("--core", type=int, default=0, help="the core this process is pinned to")
    parser.add_argument("--json-out", help="write the figures here as JSON too")
    args = parser.parse_args()
    if not WEBDATA.is_dir():
        sys.exit(f"bench_decontaminate: needs the real data in {WEBDATA} (set INSTRUCTMIX_WEBDATA)")
    os.sched_setaffinity(0, {args.core})
    real = mined_pairs(WEBDATA)
    pairs = [real[i % len(real)] for i in random.Random(0).sample(range(args.pairs), args.pairs)]
    results = {"core": args.core, "real_pairs": len(real), "runs": []}
    for count in args.benchmarks:
        with tempfile.TemporaryDirectory(prefix="bench-decontaminate-") as tmp:
            run = measure(count, pairs, Path(tmp))
        results["runs"].append(run)
        print(json.dumps(run), flush=True)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
