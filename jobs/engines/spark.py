"""Build the SparkSession: embedded `local[*]` by default, any master when asked.

On a real cluster the executors import `jobs`, `transforms` and `templates`
from a zip shipped with the job (`addPyFile`), the same way `spark-submit
--py-files` would ship them.
"""

from __future__ import annotations

import os
import sys
import tempfile
import zipfile
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parents[2]
SHIPPED_PACKAGES = ("jobs", "transforms", "templates")


def is_local_master(master: str) -> bool:
    return master.startswith("local")


def package_zip(dest_dir: str | None = None) -> str:
    """Zip the project's packages for executors that do not have them installed."""
    dest = Path(dest_dir or tempfile.mkdtemp(prefix="instructmix-pkg-")) / "instructmix_pkg.zip"
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as zf:
        for package in SHIPPED_PACKAGES:
            for path in sorted((PACKAGE_ROOT / package).rglob("*")):
                if path.is_file() and "__pycache__" not in path.parts:
                    zf.write(path, path.relative_to(PACKAGE_ROOT).as_posix())
    return str(dest)


# Embedded Spark logs to a file instead of the terminal: a failed task otherwise prints
# ~150 lines of executor tracebacks before the one-line error the CLI gives for it.
_LOG4J2_TO_FILE = """\
rootLogger.level = warn
rootLogger.appenderRef.file.ref = file
appender.file.type = File
appender.file.name = file
appender.file.fileName = {path}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = %d{{yy/MM/dd HH:mm:ss}} %p %c{{1}}: %m%n%ex
"""


# The embedded JVM only moves Arrow batches and runs small dedup shuffles; the records are
# mined in Python. Its cost is start-up and JIT compilation, which compete with the Python
# workers for the same cores: with the client compiler only and the serial collector, a
# 600 MB mine pinned to one core starts Spark in 8.5 s instead of 15 s and spends 19 s
# instead of 33 s outside the miners (bench/bench_mining.py). Spark's classes come from
# this machine's class-data archive (jobs/engines/jvm_archive.py). Pass your own
# spark.driver.extraJavaOptions in `spark_conf` to replace all of these.
EMBEDDED_JVM_OPTIONS = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"


def _log_to_file_options() -> tuple[str, str]:
    """JVM options pointing log4j2 at a file of this run; returns (options, log path)."""
    from jobs.progress import log_dir

    folder = log_dir()
    log_path = os.path.join(folder, f"instructmix-spark-{os.getpid()}.log")
    config_path = os.path.join(folder, f"instructmix-spark-{os.getpid()}.log4j2.properties")
    with open(config_path, "w", encoding="utf-8") as f:
        f.write(_LOG4J2_TO_FILE.format(path=log_path))
    return f"-Dlog4j2.configurationFile=file:{config_path}", log_path


def spark_session(master: str | None = None, app_name: str = "instructmix", conf: dict | None = None):
    """`master=None` keeps what spark-submit chose (spark-submit's own default is local[*])."""
    from pyspark import SparkConf, SparkContext
    from pyspark.sql import SparkSession

    # Executors must run the interpreter that has our dependencies installed.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    builder = SparkSession.builder.appName(app_name)
    if master:
        builder = builder.master(master)
    builder = (
        builder
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        # A mined record is small; Arrow batches of this size keep executor memory flat.
        .config("spark.sql.execution.arrow.maxRecordsPerBatch", "2048")
        .config("spark.sql.adaptive.enabled", "true")
        # Progress is drawn by jobs.progress (rich), not by Spark's console bar.
        .config("spark.ui.showConsoleProgress", "false")
    )
    effective_master = master or SparkConf().get("spark.master", "local[*]")
    if is_local_master(effective_master):
        # Nothing we start listens beyond loopback; the web UI is not needed embedded.
        builder = (
            builder.config("spark.driver.bindAddress", "127.0.0.1")
            .config("spark.driver.host", "127.0.0.1")
            .config("spark.ui.enabled", "false")
            .config("spark.sql.shuffle.partitions", str(max(2, (os.cpu_count() or 2) * 2)))
        )
    spark_log = None
    archive_options = ""
    starts_jvm = SparkContext._active_spark_context is None
    launches_gateway = SparkContext._gateway is None
    if starts_jvm and is_local_master(effective_master) and "spark.driver.extraJavaOptions" not in (conf or {}):
        java_options, spark_log = _log_to_file_options()
        if launches_gateway:
            from jobs.engines.jvm_archive import archive_options
            archive_options = archive_options()
        builder = builder.config("spark.driver.extraJavaOptions",
                                 f"{java_options} {EMBEDDED_JVM_OPTIONS} {archive_options}".strip())
    for key, value in (conf or {}).items():
        builder = builder.config(key, str(value))
    spark = builder.getOrCreate()
    if archive_options:
        from jobs.engines.jvm_archive import note_writer

        note_writer(archive_options, spark.sparkContext._jvm.java.lang.ProcessHandle.current().pid())
    if spark_log is None:
        spark.sparkContext.setLogLevel("WARN")
    else:
        from jobs.progress import log

        log(f"spark: embedded {effective_master}, its log: {spark_log}")
    running_on = spark.sparkContext.master
    shipped_by_submit = spark.conf.get("spark.submit.pyFiles", "")
    if not is_local_master(running_on) and not shipped_by_submit:
        spark.sparkContext.addPyFile(package_zip())
    return spark


def task_frame(spark, count: int, partitions: int, columns: dict[str, list] | None = None):
    """The driver's task list as a DataFrame: a `task` column (0 … count-1, in order) and
    `columns` (lists of `count` plain values: file paths, JSON payloads), in `partitions`
    partitions (fewer when there are fewer tasks); each task reads only its own rows.

    The JVM makes these rows itself: `spark.range` gives the task numbers in as many
    partitions as asked, and the values, sent as Arrow, join them by broadcast. The same rows
    as a Python RDD (`parallelize(...).toDF`) would need a Python worker just to convert them,
    and one from a daemon of its own, since Spark keys its Python daemons by the runner's
    environment and SQL's Arrow runners set one variable more: about 1 s of a core per job on
    local[1]. Local rows alone (`createDataFrame`) get at most `defaultParallelism` partitions.
    """
    import pyarrow as pa
    from pyspark.sql import functions as F

    numbers = spark.range(0, count, 1, max(1, min(partitions, count))).withColumnRenamed("id", "task")
    if not columns:
        return numbers
    if any(len(values) != count for values in columns.values()):
        raise ValueError(f"task_frame: every column needs {count} values")
    values = spark.createDataFrame(pa.table({"task": pa.array(range(count), pa.int64()), **columns}))
    return numbers.join(F.broadcast(values), "task")
