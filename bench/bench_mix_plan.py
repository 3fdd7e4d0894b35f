"""Mixer planning at web scale (not a test): driver time and memory for a simulated stream.

The mixer's driver plans from chunk totals only (transforms/mix/plan.py). This
bench runs the same driver code as `jobs/mix.py` on a simulated stream of
`--files` pretraining files of `--docs-per-file` documents each (10^5 x 10^4 =
10^9 documents by default):

* Spark tasks (`local[*]`) generate each file's document lengths (seeded,
  200–3,000 tokens, as the issue's measurement of the old planner) and cut them
  into chunks with `chunk_ends`, the rule the tokenize task applies; only the
  chunk totals come back, as the tokenize tasks' results do;
* the driver indexes the chunks (`_ChunkIndex`), lays out the shards, sets each
  source's cumulative targets, groups them into the tasks that bracket them
  (`_cut_tasks`), picks every shard's cuts from those tasks' answers
  (`_pick_cuts`; the answers are made up on a 1,000-token unit grid, since
  reading unit lengths is executor work) and builds every write task's view
  of the unit stream (`_SourcePieces.view`), for `--sources` instruction
  sources of `--source-files` files each.

Reported: the driver's wall time for the planning (results in hand -> write
tasks built), the whole run's wall time, and the driver's peak memory: Python
heap allocated by the planning (tracemalloc) and the process's peak RSS
(pyspark and the results included; the JVM is a separate process). Target:
planning < 60 s and < 1 GB on the driver, flat in the number of documents
(compare `--files 10000` with `--files 100000`).

Run: `.venv/bin/python bench/bench_mix_plan.py [--files 100000] [--docs-per-file 10000] [--json-out F]`.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

MIN_LENGTH, MAX_LENGTH = 200, 3000


def chunk_files(task: dict) -> dict:
    """Chunk totals of a run of simulated files: [file, documents, tokens] per chunk, flattened."""
    from transforms.mix.plan import chunk_ends

    out = []
    for f in range(task["first"], task["first"] + task["files"]):
        lengths = np.random.default_rng([task["seed"], f]).integers(MIN_LENGTH, MAX_LENGTH, size=task["docs"])
        start = 0
        for end, tokens in chunk_ends(lengths, task["chunk_tokens"]):
            out += [f, end - start, tokens]
            start = end
    return {"chunks": out}


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--docs-per-file", type=int, default=10_000)
    parser.add_argument("--files-per-task", type=int, default=1000)
    parser.add_argument("--shard-tokens", type=int, default=1 << 30, help="output tokens per shard")
    parser.add_argument("--ratio", type=float, default=0.05)
    parser.add_argument("--sources", type=int, default=3)
    parser.add_argument("--source-files", type=int, default=1000, help="files (chunks) per instruction source")
    parser.add_argument("--master", default="local[*]")
    parser.add_argument("--json-out")
    args = parser.parse_args()

    from jobs.engines.spark import spark_session
    from jobs.engines.spark_tasks import run_tasks
    from jobs.mix import _ChunkIndex, _cut_tasks, _pick_cuts, _SourcePieces
    from transforms.mix.plan import chunk_tokens_for, layout_shards, standalone_targets
    from transforms.mix.schedule import RatioSchedule

    started = time.perf_counter()
    spark = spark_session(args.master, "bench-mix-plan", {})
    chunk_tokens = chunk_tokens_for(args.shard_tokens)
    tasks = [{"first": first, "files": min(args.files_per_task, args.files - first), "docs": args.docs_per_file,
              "seed": 0, "chunk_tokens": chunk_tokens} for first in range(0, args.files, args.files_per_task)]
    results = run_tasks(spark, chunk_files, tasks)
    generated = time.perf_counter()
    rss_before = peak_rss_mb()

    tracemalloc.start()
    plan_started = time.perf_counter()
    flat = np.concatenate([np.asarray(r["chunks"], dtype=np.int64) for r in results]).reshape(-1, 3)
    del results
    index = _ChunkIndex(flat[:, 0], flat[:, 2], args.files)
    schedule = RatioSchedule.constant(args.ratio)
    layout = layout_shards(index.tokens, schedule.at_many, args.shard_tokens)
    weights = [1.0 / args.sources] * args.sources
    targets = standalone_targets(layout, weights)
    rng = np.random.default_rng(1)
    pieces = []
    for s in range(args.sources):
        p = _SourcePieces(f"source{s}", "units")
        per_file = targets[s, -1] / args.source_files * 1.01
        p.add_epoch(0, [{"units": 1000, "tokens": int(per_file * rng.uniform(0.9, 1.1)), "records": 1000,
                          "counters": {}, "formats": {}} for _ in range(args.source_files)],
                    rng.permutation(args.source_files))
        pieces.append(p)
    tasks, want = _cut_tasks(pieces, targets, {})
    # The executors' answer (resolve_cuts), here from a grid of 1,000-token units: not driver work.
    plan_seconds = time.perf_counter() - plan_started
    results = [{"cuts": [[k, piece, 0, int(t // 1000 * 1000), 1, int(t // 1000 * 1000 + 1000)]
                         for piece, _, ts in task["pieces"] for k, t in ts]} for task in tasks]
    plan_started = time.perf_counter()
    cuts = _pick_cuts(tasks, results, want)
    for k in range(layout.shards):
        for s, p in enumerate(pieces):
            p.view(cuts[s][k - 1] if k else np.zeros(3, np.int64), cuts[s][k])
    plan_seconds += time.perf_counter() - plan_started
    _, heap_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    result = {
        "files": args.files, "documents": args.files * args.docs_per_file, "chunks": len(index.tokens),
        "shards": layout.shards, "sources": args.sources, "pretrain_tokens": int(index.tokens.sum()),
        "chunk_tokens": chunk_tokens, "shard_tokens": args.shard_tokens,
        "executor_seconds": round(generated - started, 1), "driver_plan_seconds": round(plan_seconds, 2),
        "driver_plan_heap_mb": round(heap_peak / 2**20, 1), "driver_peak_rss_mb": round(peak_rss_mb(), 1),
        "driver_rss_before_plan_mb": round(rss_before, 1), "total_seconds": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(result, indent=1))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(result, indent=1) + "\n")
    spark.stop()


if __name__ == "__main__":
    main()
