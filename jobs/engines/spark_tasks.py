"""Run a list of independent tasks on Spark, one partition each, JSON in and out.

The mixer's phases are "one task per input file" and "one task per output
shard"; this is the whole engine glue they need. Results come back in task order.

A task that raises a `UserError` (the input or the configuration is wrong, and
the message names it and the fix) does not fail its Spark task: the error comes
back as that task's result and is raised again on the driver, after the other
tasks of the phase finished (their work stays cached for the re-run). Retrying
such a task could only fail again, and a failed Spark task is logged by Spark
itself as a Python traceback inside a Java one on stderr; the user is owed one
line (jobs/cli.py prints it, exit 2), with the task's traceback in a log file the
line names. Any other exception is a bug or a lost executor and fails the task
as usual, so Spark retries it.
"""

from __future__ import annotations

import json
import os
import tempfile
import traceback
from collections.abc import Callable, Iterator

import pyarrow as pa

from jobs.errors import MixError, UserError

RESULT_SCHEMA = pa.schema([("task", pa.int64()), ("result", pa.string())])
_USER_ERROR_KEY = "__user_error__"
_ERROR_CLASSES = {"MixError": MixError, "UserError": UserError}


def _run_partition(batches: Iterator[pa.RecordBatch], fn: Callable[[dict], dict]) -> Iterator[pa.RecordBatch]:
    for batch in batches:
        for task, payload in zip(batch.column("task").to_pylist(), batch.column("payload").to_pylist()):
            try:
                result = fn(json.loads(payload))
            except UserError as err:
                result = {_USER_ERROR_KEY: {"type": type(err).__name__, "message": str(err),
                                            "traceback": traceback.format_exc()}}
            yield pa.RecordBatch.from_pylist([{"task": task, "result": json.dumps(result)}], schema=RESULT_SCHEMA)


def _log_task_traceback(fn_name: str, text: str) -> str:
    """The task's traceback in a log file (beside the CLI's own); returns its path."""
    log_dir = os.environ.get("INSTRUCTMIX_LOG_DIR") or tempfile.gettempdir()
    os.makedirs(log_dir, exist_ok=True)
    fd, path = tempfile.mkstemp(prefix=f"instructmix-{fn_name}-", suffix=".log", dir=log_dir)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    return path


def run_tasks(spark, fn: Callable[[dict], dict], payloads: list[dict]) -> list[dict]:
    """`fn(payload)` for every payload on the cluster; `fn` must be a module-level function.

    Raises the first (in task order) `UserError` a task raised, as the same
    class when it is one of ours, with the path of its traceback appended.
    """
    if not payloads:
        return []
    from jobs.engines.spark import task_frame

    tasks = task_frame(spark, len(payloads), len(payloads), {"payload": [json.dumps(p) for p in payloads]})
    out = tasks.mapInArrow(lambda it: _run_partition(it, fn), "task long, result string").collect()
    results = [json.loads(r["result"]) for r in sorted(out, key=lambda r: r["task"])]
    for result in results:
        if isinstance(result, dict) and _USER_ERROR_KEY in result:
            error = result[_USER_ERROR_KEY]
            log = _log_task_traceback(getattr(fn, "__name__", "task"), error["traceback"])
            raise _ERROR_CLASSES.get(error["type"], UserError)(f"{error['message']} (task traceback: {log})")
    return results
