"""Run a list of independent tasks on Spark, one partition each, JSON in and out.

The mixer's phases are "one task per input file" and "one task per output
shard"; this is the whole engine glue they need. Results come back in task order.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import pyarrow as pa

RESULT_SCHEMA = pa.schema([("task", pa.int64()), ("result", pa.string())])


def _run_partition(batches: Iterator[pa.RecordBatch], fn: Callable[[dict], dict]) -> Iterator[pa.RecordBatch]:
    for batch in batches:
        for task, payload in zip(batch.column("task").to_pylist(), batch.column("payload").to_pylist()):
            result = fn(json.loads(payload))
            yield pa.RecordBatch.from_pylist([{"task": task, "result": json.dumps(result)}], schema=RESULT_SCHEMA)


def run_tasks(spark, fn: Callable[[dict], dict], payloads: list[dict]) -> list[dict]:
    """`fn(payload)` for every payload on the cluster; `fn` must be a module-level function."""
    if not payloads:
        return []
    rows = [(i, json.dumps(p)) for i, p in enumerate(payloads)]
    df = spark.sparkContext.parallelize(rows, len(rows)).toDF("task long, payload string")
    out = df.mapInArrow(lambda it: _run_partition(it, fn), "task long, result string").collect()
    return [json.loads(r["result"]) for r in sorted(out, key=lambda r: r["task"])]
