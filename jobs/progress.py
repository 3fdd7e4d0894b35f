"""A rich progress bar over the tasks of whatever Spark job is running.

Spark's own console bar interleaves badly with our log lines; polling the
status tracker from a thread gives one clean bar per phase instead.
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

console = Console(stderr=True)


def log(message: str) -> None:
    console.log(message)


def log_dir() -> str:
    """Where tracebacks and engine logs go, so the terminal shows progress and one-line errors only:
    $INSTRUCTMIX_LOG_DIR, else the system's temporary folder."""
    path = os.environ.get("INSTRUCTMIX_LOG_DIR") or tempfile.gettempdir()
    os.makedirs(path, exist_ok=True)
    return path


@contextmanager
def spark_task_progress(spark, description: str, poll_seconds: float = 0.5):
    """Show completed/total tasks of the active Spark stages until the block ends."""
    tracker = spark.sparkContext.statusTracker()
    stop = threading.Event()
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("tasks"),
        TimeElapsedColumn(),
        console=console,
        transient=not sys.stderr.isatty(),
        disable=False,
    )
    task = progress.add_task(description, total=None)

    def poll() -> None:
        while not stop.wait(poll_seconds):
            done = total = 0
            for stage_id in tracker.getActiveStageIds():
                info = tracker.getStageInfo(stage_id)
                if info is not None:
                    done += info.numCompletedTasks
                    total += info.numTasks
            if total:
                progress.update(task, completed=done, total=total)

    with progress:
        thread = threading.Thread(target=poll, daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()
            t = progress.tasks[0]
            if t.total:
                progress.update(task, completed=t.total)
