"""The Spark mining job: raw web shards -> deduplicated instruction-response pairs.

Before any task starts, the driver checks what it can (every input pattern
matches a file, the output is a folder it may write, no other run holds it, it
holds no file another tool or the user put there and overlaps no input), and
holds the output's lock (`jobs.workdir.StageOutput`) for the whole run.

Phases, data flowing one way; every byte is read and written through fsspec
with the config's `storage_options`, by the driver and the tasks alike, so
the same run works on local disk and on object stores (Spark's own Hadoop
filesystems are never used):

1. extract: Spark tasks of one to a few input files (`extract_task_count`) run
   transforms.mine.document over their records and write a checkpoint Parquet per file under
   `OUTPUT/_work/<fingerprint[:16]>/extract/`; a re-run after a kill finds
   finished checkpoints and skips those files.
2. dedup: exact (normalised question+answer) and MinHash-LSH near-duplicate
   removal across the whole job, as Spark shuffles on the keys computed in 1.
3. write: one task per output partition writes its pairs, sorted by id, as a
   Parquet part in the work dir and returns what it wrote (rows per miner, kind
   and language); the driver moves the parts into the output, removes the
   previous run's parts that were not rewritten, and writes `_stats.json`
   (transforms/stats.py) listing exactly the published parts.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from jobs.config import MineConfig
from jobs.decontamination import Benchmarks, load_benchmarks, worker_index
from jobs.errors import UserError
from jobs.workdir import STATS_FILE, WORK_DIR, StageOutput, fingerprint
from transforms.io.documents import expand_inputs, iter_documents
from transforms.records import PAIR_SCHEMA, Provenance
from transforms.stats import counter_name, stats_document

__all__ = [
    "STATS_FILE", "WORK_DIR", "WORK_SCHEMA", "counter_stats_name", "mine_fingerprint", "pair_miner", "run_mine",
    "step_pair_miner", "worker_pair_miner",
]

logger = logging.getLogger("instructmix.mine")

STAGE = "mine"
STATS_METADATA_KEY = b"instructmix.stats"
# Written in the work dir before parts move into the output and removed after
# `_stats.json` lists them: a run killed between the two still recognises the
# parts it published as its own on the re-run.
PUBLISHING_FILE = "publishing.json"

# Checkpoint rows: the pair columns plus the dedup keys the shuffle needs.
WORK_SCHEMA = PAIR_SCHEMA.append(pa.field("exact_key", pa.string(), nullable=False)).append(
    pa.field("band_keys", pa.list_(pa.int64()), nullable=False)
)
STATUS_DDL = "path string, docs long, pairs long, stats string, resumed boolean"
STATUS_SCHEMA = pa.schema(
    [("path", pa.string()), ("docs", pa.int64()), ("pairs", pa.int64()), ("stats", pa.string()), ("resumed", pa.bool_())]
)
PART_DDL = "part string, rows long, groups string"
PART_STATUS_SCHEMA = pa.schema([("part", pa.string()), ("rows", pa.int64()), ("groups", pa.string())])
# Rows buffered before a Parquet row group is flushed; bounds executor memory per file or part.
CHECKPOINT_ROWS_PER_GROUP = 4096
PART_ROWS_PER_GROUP = 65_536
# Config keys that say where bytes live and how Spark is tuned, never which rows come
# out: left out of the fingerprint, so rotating a credential keeps the checkpoints.
_NOT_IN_FINGERPRINT = {"storage_options", "spark_conf"}


def mine_fingerprint(config: MineConfig, benchmarks: Benchmarks | None = None) -> str:
    """The work-dir key of a mining run: the resolved config, the benchmark files' contents
    (decontamination) and the code version."""
    resolved = config.model_dump(mode="json", exclude=_NOT_IN_FINGERPRINT)
    if benchmarks is not None:
        resolved["decontaminate"] = benchmarks.fingerprint_part()
    return fingerprint(STAGE, resolved)


def checkpoint_path(work_dir: str, input_path: str) -> str:
    name = hashlib.sha1(input_path.encode("utf-8")).hexdigest()[:24]
    return f"{work_dir}/extract/{name}.parquet"


def _nullable(schema: pa.Schema) -> pa.Schema:
    # Spark hands Arrow batches back with every column nullable.
    return pa.schema([f.with_nullable(True) for f in schema])


def _spark_schema(schema: pa.Schema):
    from pyspark.sql.pandas.types import from_arrow_schema

    return from_arrow_schema(_nullable(schema))


_WORKER_MINERS: dict[tuple[str, str | None], Any] = {}
# Tasks per core of the extract phase (files differ in size: more tasks than cores balance them).
TASKS_PER_CORE = 4
# A task costs about 0.1 s to schedule and start on one core, a 30 MB shard about a second to
# mine: a few small files share a task (20 shards on local[1]: 0.85 s less). The cap keeps
# many tasks for many files where Spark reports few cores (executors still starting).
MAX_FILES_PER_EXTRACT_TASK = 4


def pair_miner(config: MineConfig, benchmark_index=None):
    """The PairMiner a MineConfig describes (fastText models loaded): the one place the
    config's keys become the miner's arguments, for this job and for the datatrove step."""
    from transforms import filters
    from transforms.mine.document import PairMiner

    return PairMiner(
        languages=tuple(config.languages),
        miners=tuple(config.miners),
        min_lang_score=config.min_lang_score,
        filter_config=filters.FilterConfig(**config.filters.model_dump()),
        classifier_path=config.classifier.model if config.classifier else None,
        classifier_threshold=config.classifier.threshold if config.classifier else 0.5,
        lid_model=config.lid_model,
        benchmark_index=benchmark_index,
    )


def worker_pair_miner(config_json: str, index_url: str | None = None):
    """One PairMiner per Python worker, config and benchmark index (published by the driver at
    `index_url`), reused across tasks: loading the fastText models and the index per document
    or per task would cost more than mining a page."""
    miner = _WORKER_MINERS.get((config_json, index_url))
    if miner is None:
        config = MineConfig.model_validate_json(config_json)
        index = worker_index(index_url, config.storage_options) if index_url else None
        miner = pair_miner(config, index)
        _WORKER_MINERS[(config_json, index_url)] = miner
    return miner


def step_pair_miner(config_json: str):
    """`worker_pair_miner` for a datatrove step, whose workers (Slurm, Ray) share no work dir
    with the driver: each process reads the config's benchmark files and builds the index itself."""
    key = (config_json, "built-in-process")
    miner = _WORKER_MINERS.get(key)
    if miner is None:
        config = MineConfig.model_validate_json(config_json)
        benchmarks = load_benchmarks(config.decontaminate, config.storage_options)
        miner = pair_miner(config, benchmarks.index if benchmarks else None)
        _WORKER_MINERS[key] = miner
    return miner


def counter_stats_name(key: str) -> str:
    """The `_stats.json` name (transforms/stats.py) of one per-document counter key of
    PairMiner and the readers (`docs_read`, `skip:<reason>`, `drop:<reason>`,
    `mined:<miner>:<kind>`, ...): `mine.documents.read`, `mine.documents.skip.<reason>`,
    `mine.pairs.drop.<reason>`, `mine.pairs.mined.<miner>/<kind>`."""
    kind, _, rest = key.partition(":")
    if key == "docs_read":
        return counter_name(STAGE, "documents", "read")
    if kind in ("skip", "truncated", "lang") and rest:
        return counter_name(STAGE, "documents", kind, rest.replace(":", "."))
    if kind == "drop" and rest:
        return counter_name(STAGE, "pairs", "drop", rest)
    if kind == "mined" and rest:
        return counter_name(STAGE, "pairs", "mined", rest.replace(":", "/"))
    if key == "pii_scrubbed":
        return counter_name(STAGE, "pairs", "pii_scrubbed")
    # a counter this driver does not know yet still reaches the stats
    return counter_name(STAGE, "other", key.replace(":", "."))


# --- phase 1: a checkpoint per input file, a few small files per task ----------------------------

def extract_file(path: str, config: MineConfig, config_json: str, work_dir: str, index_url: str | None = None) -> dict:
    """Mine one input file into its checkpoint, or reuse the checkpoint a finished run left."""
    target = checkpoint_path(work_dir, path)
    fs, fs_target = fsspec.core.url_to_fs(target, **config.storage_options)
    if fs.exists(fs_target):
        with fs.open(fs_target, "rb") as f:
            pf = pq.ParquetFile(f)
            stats = pf.metadata.metadata[STATS_METADATA_KEY].decode()
            rows = pf.metadata.num_rows
        return {"path": path, "docs": json.loads(stats).get("docs_read", 0), "pairs": rows, "stats": stats, "resumed": True}

    miner = worker_pair_miner(config_json, index_url)
    counters: Counter = Counter()
    parent = fs_target.rsplit("/", 1)[0]
    fs.makedirs(parent, exist_ok=True)
    # A temporary name, renamed when complete: a checkpoint exists only whole.
    tmp = f"{parent}/.tmp-{uuid.uuid4().hex}.parquet"
    buffer: list[dict] = []
    pairs = 0
    with fs.open(tmp, "wb") as f, pq.ParquetWriter(f, WORK_SCHEMA, compression="zstd") as writer:
        for doc in iter_documents(path, counters, max_page_bytes=config.max_page_bytes, storage_options=config.storage_options):
            provenance = Provenance(source_file=doc.source_file, source_record=doc.source_record)
            try:
                buffer.extend(miner.mine(doc.url, doc.html, doc.text, counters, provenance))
            except Exception as err:  # one bad page must not end the file: count it, keep going
                counters[f"skip:mining_error:{type(err).__name__}"] += 1
                if counters[f"skip:mining_error:{type(err).__name__}"] == 1:
                    logger.exception("mining failed on %s (%s)", doc.source_record, path)
            if len(buffer) >= CHECKPOINT_ROWS_PER_GROUP:
                writer.write_table(pa.Table.from_pylist(buffer, schema=WORK_SCHEMA))
                pairs += len(buffer)
                buffer.clear()
        if buffer:
            writer.write_table(pa.Table.from_pylist(buffer, schema=WORK_SCHEMA))
            pairs += len(buffer)
        stats = json.dumps(dict(sorted(counters.items())))
        writer.add_key_value_metadata({STATS_METADATA_KEY: stats.encode()})
    fs.mv(tmp, fs_target)
    return {"path": path, "docs": counters["docs_read"], "pairs": pairs, "stats": stats, "resumed": False}


def extract_task_count(files: int, parallelism: int) -> int:
    """How many tasks mine `files` input files (each still checkpointed on its own)."""
    by_cores = TASKS_PER_CORE * max(1, parallelism)
    return max(1, min(files, max(by_cores, math.ceil(files / MAX_FILES_PER_EXTRACT_TASK))))


def _extract_partition(batches: Iterator[pa.RecordBatch], config_json: str, work_dir: str,
                       index_url: str | None = None) -> Iterator[pa.RecordBatch]:
    """Mine the input files named in `batches` (jobs.engines.spark.task_frame)."""
    config = MineConfig.model_validate_json(config_json)
    for batch in batches:
        for path in batch.column("path").to_pylist():
            status = extract_file(path, config, config_json, work_dir, index_url)
            yield pa.RecordBatch.from_pylist([status], schema=STATUS_SCHEMA)


def _read_checkpoints(batches: Iterator[pa.RecordBatch], storage_options: dict) -> Iterator[pa.RecordBatch]:
    """The rows of the checkpoints named in `batches`, read through fsspec."""
    schema = _nullable(WORK_SCHEMA)
    for batch in batches:
        for url in batch.column("path").to_pylist():
            fs, path = fsspec.core.url_to_fs(url, **storage_options)
            with fs.open(path, "rb") as f:
                for rows in pq.ParquetFile(f).iter_batches(batch_size=CHECKPOINT_ROWS_PER_GROUP):
                    yield pa.RecordBatch.from_arrays(rows.columns, schema=schema)


# --- phase 2: dedup across the whole job ----------------------------------------------------------

def deduplicate(df, exact: bool, near: bool):
    """Keep one pair per exact key and per LSH bucket, preferring (confidence desc, id asc).

    Both rules keep the best-ranked member of every group, so the best-ranked pair
    of any cluster of near-duplicates always survives, whatever the partitioning.
    `transforms.mine.dedup.kept_pair_indexes` is the same rule over pairs in memory
    (the datatrove step's dedup within a task).
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    if exact:
        rank = Window.partitionBy("exact_key").orderBy(F.desc("confidence"), F.asc("id"))
        df = df.withColumn("_rank", F.row_number().over(rank)).filter("_rank = 1").drop("_rank")
    if near:
        members = df.select(
            F.struct((-F.col("confidence")).alias("neg_confidence"), F.col("id").alias("id")).alias("m"),
            F.posexplode("band_keys").alias("band", "key"),
        )
        losers = (
            members.groupBy("band", "key")
            .agg(F.array_sort(F.collect_list("m")).alias("members"))
            .filter(F.size("members") > 1)
            .select(F.explode(F.expr("slice(members, 2, size(members))")).alias("m"))
            .select(F.col("m.id").alias("id"))
        )
        df = df.join(losers, "id", "left_anti")
    return df


# --- phase 3: one task per output part --------------------------------------------------------------

def _write_part(batches: Iterator[pa.RecordBatch], parts_dir: str, storage_options: dict) -> Iterator[pa.RecordBatch]:
    """Write this partition's pairs (already sorted by id) as one Parquet part through fsspec.

    Returns one row: the part's URL, its row count and its rows per miner/kind/lang,
    so the driver's stats count what was written, never what it later finds in a
    folder another process may also be writing into. An empty partition writes nothing.
    """
    from pyspark import TaskContext

    fs, parent = fsspec.core.url_to_fs(parts_dir, **storage_options)
    name = f"part-{TaskContext.get().partitionId():05d}.parquet"
    tmp = f"{parent}/.tmp-{uuid.uuid4().hex}.parquet"
    groups: Counter = Counter()
    rows = 0
    writer = f = None
    buffer: list[pa.RecordBatch] = []

    def flush() -> None:
        nonlocal writer, f
        table = pa.Table.from_batches(buffer).select(PAIR_SCHEMA.names).cast(PAIR_SCHEMA)
        buffer.clear()
        if writer is None:
            fs.makedirs(parent, exist_ok=True)
            f = fs.open(tmp, "wb")
            writer = pq.ParquetWriter(f, PAIR_SCHEMA, compression="zstd")
        writer.write_table(table)
        for row in table.group_by(["miner", "kind", "lang"]).aggregate([("id", "count")]).to_pylist():
            groups["\t".join((row["miner"], row["kind"], row["lang"]))] += row["id_count"]

    try:
        buffered = 0
        for batch in batches:
            if batch.num_rows:
                buffer.append(batch)
                rows += batch.num_rows
                buffered += batch.num_rows
                if buffered >= PART_ROWS_PER_GROUP:
                    flush()
                    buffered = 0
        if buffer:
            flush()
    finally:
        if writer is not None:
            writer.close()
            f.close()
    if rows:
        fs.mv(tmp, f"{parent}/{name}")
        yield pa.RecordBatch.from_pylist(
            [{"part": f"{parts_dir}/{name}", "rows": rows, "groups": json.dumps(dict(groups))}],
            schema=PART_STATUS_SCHEMA)


def _publish(out: StageOutput, parts: list[str], previous: set[str]) -> list[str]:
    """Move the new parts into the output as part-00000.parquet …, then remove the previous
    run's parts that were not rewritten. Only files in `previous` are ever deleted."""
    names = [f"part-{i:05d}.parquet" for i in range(len(parts))]
    out.write_json(f"{WORK_DIR}/{PUBLISHING_FILE}", names)
    for src, name in zip(parts, names):
        _, src_path = fsspec.core.url_to_fs(src, **out.storage_options)
        out.fs.mv(src_path, out.path(name))
    if not parts:
        # No pair survived: one empty part still tells every reader the columns.
        buf = pa.BufferOutputStream()
        pq.write_table(PAIR_SCHEMA.empty_table(), buf)
        names = ["part-00000.parquet"]
        out.write_bytes(names[0], buf.getvalue().to_pybytes())
    removed = out.remove_stale(names, previous)
    if removed:
        logger.info("mine: removed %d part(s) of the previous run: %s", len(removed), removed)
    return names


# --- the driver ----------------------------------------------------------------------------------

def _check_output(out: StageOutput) -> None:
    """The output is a folder this process can write; one line naming the fix otherwise."""
    if out.fs.isfile(out.root):
        raise UserError(f"output {out.url} is a file, not a folder; give a folder path for --output")
    marker = f".instructmix-write-check-{out.run_id}"
    try:
        out.write_bytes(marker, b"")
        out.fs.rm(out.path(marker))
    except OSError as err:
        raise UserError(f"output {out.url} is not writable ({type(err).__name__}: {err}); "
                        "choose a folder you can write to, or fix its permissions") from None


def _journal(out: StageOutput) -> list[str]:
    """The parts a run killed while publishing had moved into the output (see PUBLISHING_FILE)."""
    names = out.read_json(WORK_DIR, PUBLISHING_FILE)
    return [str(n) for n in names] if isinstance(names, list) else []


def _legacy_parts(out: StageOutput) -> list[str]:
    """The parts an instructmix before the one-shape `_stats.json` published: its stats had
    `config_sha256` and nested `pairs` and no `outputs`, and its parts were always named
    `part-NNNNN.parquet`. Recognised so an upgrade can re-run into its old output."""
    stats = out.read_json(STATS_FILE)
    if not isinstance(stats, dict) or "stage" in stats or not {"config_sha256", "pairs"} <= stats.keys():
        return []
    return [p for p in out.listing() if re.fullmatch(r"part-\d{5}\.parquet", p)]


def _check_models(config: MineConfig) -> None:
    """Load the classifier once on the driver when it can see the file, so a wrong or corrupt
    model stops the run before any task. A path the driver cannot see is left to the tasks:
    on a cluster it names a file on the executors (in local mode the first task fails with
    one line naming the path)."""
    if config.classifier is None or not Path(config.classifier.model).is_file():
        return
    from transforms.mine.instruction_classifier import InstructionClassifier

    try:
        InstructionClassifier(config.classifier.model)
    except ValueError as err:
        raise UserError(f"classifier.model: {err}; train one with `instructmix train-classifier`") from None


def _counters(statuses: list[dict], written_groups: Counter, totals: dict, files: list[str]) -> Counter:
    """The per-file counters of the miner and the readers, named as transforms/stats.py lists."""
    out: Counter = Counter()
    for s in statuses:
        for key, count in json.loads(s["stats"]).items():
            out[counter_stats_name(key)] += count
    out[counter_name(STAGE, "files", "read")] = len(files)
    out[counter_name(STAGE, "files", "resumed")] = sum(1 for s in statuses if s["resumed"])
    out[counter_name(STAGE, "pairs", "candidates")] = totals["candidates"]
    out[counter_name(STAGE, "pairs", "written")] = totals["written"]
    out[counter_name(STAGE, "pairs", "drop", "exact_duplicate")] = totals["candidates"] - totals["after_exact"]
    out[counter_name(STAGE, "pairs", "drop", "near_duplicate")] = totals["after_exact"] - totals["written"]
    for key, count in written_groups.items():
        miner, kind, lang = key.split("\t")
        out[counter_name(STAGE, "pairs", "miner", miner)] += count
        out[counter_name(STAGE, "pairs", "kind", kind)] += count
        out[counter_name(STAGE, "pairs", "miner_kind", f"{miner}/{kind}")] += count
        out[counter_name(STAGE, "pairs", "lang", lang)] += count
    return out


def run_mine(
    inputs: list[str],
    output: str,
    master: str | None = None,
    config: MineConfig | None = None,
    keep_work: bool = False,
    spark=None,
    overwrite: bool = False,
) -> dict:
    """Mine `inputs` into Parquet under `output`; returns the `_stats.json` document it wrote.

    `overwrite`: replace whatever the output holds (files this stage did not write
    included) instead of refusing; an output that overlaps an input is refused anyway.
    """
    from jobs.progress import log, spark_task_progress

    config = config or MineConfig()
    started = time.time()
    out = StageOutput(STAGE, output, config.storage_options)
    files = expand_inputs(inputs, storage_options=config.storage_options)
    _check_models(config)
    benchmarks = load_benchmarks(config.decontaminate, config.storage_options)
    # Overlap with an input is refused before anything is written (an output inside an
    # input folder must not even be created); foreign files are judged under the lock,
    # where a run publishing into the folder right now cannot be mistaken for a stranger.
    out.claim(inputs, overwrite=True)
    _check_output(out)
    with out.lock():
        own = _journal(out) + _legacy_parts(out)
        out.claim(inputs, overwrite=overwrite, own=own)
        previous = set(out.previous_outputs() or []) | set(own)
        if overwrite:
            previous |= set(out.listing())
        log(f"mine: {len(files)} input file(s) -> {out.url}")
        digest = mine_fingerprint(config, benchmarks)
        work_dir = out.work_dir(digest)
        index_url = benchmarks.publish(work_dir, config.storage_options) if benchmarks else None

        from jobs.engines.spark import spark_session, task_frame

        spark = spark or spark_session(master, "instructmix-mine", config.spark_conf)
        config_json = config.model_dump_json()
        storage_options = dict(config.storage_options)

        parallelism = spark.sparkContext.defaultParallelism
        tasks = task_frame(spark, len(files), extract_task_count(len(files), parallelism), {"path": files})
        with spark_task_progress(spark, "extract + mine"):
            statuses = [
                r.asDict()
                for r in tasks.mapInArrow(lambda it: _extract_partition(it, config_json, work_dir, index_url), STATUS_DDL).collect()
            ]
        errors = Counter()
        for s in statuses:
            errors.update({k: v for k, v in json.loads(s["stats"]).items() if k.startswith("skip:mining_error")})
        if errors:
            log(f"[yellow]mine: {sum(errors.values())} document(s) failed inside the miner and were skipped: "
                f"{dict(errors)} (executor logs have the tracebacks)")
        resumed = sum(1 for s in statuses if s["resumed"])
        log(f"mine: {sum(s['docs'] for s in statuses)} documents, {sum(s['pairs'] for s in statuses)} candidate pairs"
            + (f" ({resumed} file(s) resumed from checkpoints)" if resumed else ""))

        checkpoints = [checkpoint_path(work_dir, f) for f in files]
        # A checkpoint is small next to its input and reads in a blink, so one task per core
        # reads them: each more task costs its start-up here and in every dedup stage after it
        # (620 MB pinned to one core: 20 checkpoints in 4 tasks took 0.7 s more than in 1).
        read_tasks = max(1, min(len(checkpoints), parallelism))
        candidates = (
            task_frame(spark, len(checkpoints), read_tasks, {"path": checkpoints})
            .mapInArrow(lambda it: _read_checkpoints(it, storage_options), _spark_schema(WORK_SCHEMA))
        )
        parts_dir = f"{work_dir}/output"
        fs_work, parts_path = fsspec.core.url_to_fs(parts_dir, **storage_options)
        if fs_work.exists(parts_path):  # parts of an attempt killed before it published
            fs_work.rm(parts_path, recursive=True)
        with spark_task_progress(spark, "dedup + write"):
            exact_kept = deduplicate(candidates, exact=config.dedup.exact, near=False).persist()
            kept = deduplicate(exact_kept, exact=False, near=config.dedup.near)
            out_partitions = max(1, spark.sparkContext.defaultParallelism)
            written = (
                kept.select(*PAIR_SCHEMA.names).repartition(out_partitions, "id").sortWithinPartitions("id")
                .mapInArrow(lambda it: _write_part(it, parts_dir, storage_options), PART_DDL).collect()
            )
            totals = {"candidates": sum(s["pairs"] for s in statuses), "after_exact": exact_kept.count()}
            exact_kept.unpersist()
        written = sorted((r.asDict() for r in written), key=lambda r: r["part"])
        totals["written"] = sum(r["rows"] for r in written)
        groups: Counter = Counter()
        for r in written:
            groups.update(json.loads(r["groups"]))

        published = _publish(out, [r["part"] for r in written], previous)
        stats = stats_document(
            STAGE, _counters(statuses, groups, totals, files), run_id=out.run_id, fingerprint=digest,
            elapsed_seconds=time.time() - started, outputs=published,
            details={"inputs": list(inputs), "dedup": config.dedup.model_dump(mode="json"),
                     **({"decontaminate": benchmarks.details()} if benchmarks else {})},
        )
        out.write_json(STATS_FILE, stats)
        if keep_work:
            out.fs.rm(out.path(WORK_DIR, PUBLISHING_FILE))
        else:
            out.remove_work()
    log(f"mine: wrote {totals['written']} pairs to {out.url} (stats: {out.url}/{STATS_FILE})")
    return stats
