"""The Spark mining job: raw web shards -> deduplicated instruction-response pairs.

Phases, data flowing one way:
1. extract: one Spark task per input file runs transforms.mine.document over
   its records (mapInArrow) and writes a checkpoint Parquet per file; a re-run
   after a kill finds finished checkpoints and skips those files.
2. dedup: exact (normalised question+answer) and MinHash-LSH near-duplicate
   removal across the whole job, as Spark shuffles on the keys computed in 1.
3. write: the surviving pairs, sorted by id within each part, as Parquet under the output
   directory, plus `_stats.json`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
from fsspec.implementations.local import LocalFileSystem

from jobs.config import MineConfig
from transforms.io.documents import expand_inputs, iter_documents
from transforms.records import PAIR_COLUMNS, PAIR_SCHEMA

__all__ = ["STATS_FILE", "WORK_SCHEMA", "run_mine"]

logger = logging.getLogger("instructmix.mine")

# Written next to the Parquet parts. Its name starts with "_" because
# pyarrow.dataset.dataset(DIR, format="parquet") opens every other file in DIR
# as Parquet (and fails on a .json); "_" files are skipped by pyarrow and Spark.
STATS_FILE = "_stats.json"
WORK_DIR = "_work"
STATS_METADATA_KEY = b"instructmix.stats"

# Checkpoint rows: the pair columns plus the dedup keys the shuffle needs.
WORK_SCHEMA = PAIR_SCHEMA.append(pa.field("exact_key", pa.string(), nullable=False)).append(
    pa.field("band_keys", pa.list_(pa.int64()), nullable=False)
)
STATUS_DDL = "path string, docs long, pairs long, stats string, resumed boolean"
STATUS_SCHEMA = pa.schema(
    [("path", pa.string()), ("docs", pa.int64()), ("pairs", pa.int64()), ("stats", pa.string()), ("resumed", pa.bool_())]
)
# Rows buffered before a checkpoint row group is flushed; bounds executor memory per file.
CHECKPOINT_ROWS_PER_GROUP = 4096


def config_fingerprint(config: MineConfig) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        code_version = version("instructmix")
    except PackageNotFoundError:
        code_version = "unknown"
    payload = json.dumps({"config": config.model_dump(mode="json"), "version": code_version}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def checkpoint_path(work_dir: str, input_path: str) -> str:
    name = hashlib.sha1(input_path.encode("utf-8")).hexdigest()[:24]
    return f"{work_dir}/extract/{name}.parquet"


_WORKER_MINERS: dict[str, Any] = {}


def _worker_miner(config_json: str):
    """One PairMiner (fastText models loaded) per Python worker, reused across tasks."""
    miner = _WORKER_MINERS.get(config_json)
    if miner is None:
        from transforms import filters
        from transforms.mine.document import PairMiner

        cfg = MineConfig.model_validate_json(config_json)
        miner = PairMiner(
            languages=tuple(cfg.languages),
            miners=tuple(cfg.miners),
            min_lang_score=cfg.min_lang_score,
            filter_config=filters.FilterConfig(**cfg.filters.model_dump()),
            classifier_path=cfg.classifier.model if cfg.classifier else None,
            classifier_threshold=cfg.classifier.threshold if cfg.classifier else 0.5,
            lid_model=cfg.lid_model,
        )
        _WORKER_MINERS[config_json] = miner
    return miner


def extract_file(path: str, config: MineConfig, config_json: str, work_dir: str) -> dict:
    """Mine one input file into its checkpoint, or reuse the checkpoint a finished run left."""
    target = checkpoint_path(work_dir, path)
    fs, fs_target = fsspec.core.url_to_fs(target, **config.storage_options)
    if fs.exists(fs_target):
        with fs.open(fs_target, "rb") as f:
            pf = pq.ParquetFile(f)
            stats = pf.metadata.metadata[STATS_METADATA_KEY].decode()
            rows = pf.metadata.num_rows
        return {"path": path, "docs": json.loads(stats).get("docs_read", 0), "pairs": rows, "stats": stats, "resumed": True}

    miner = _worker_miner(config_json)
    counters: Counter = Counter()
    parent = fs_target.rsplit("/", 1)[0]
    fs.makedirs(parent, exist_ok=True)
    tmp = f"{parent}/.tmp-{uuid.uuid4().hex}.parquet"
    buffer: list[dict] = []
    pairs = 0
    with fs.open(tmp, "wb") as f, pq.ParquetWriter(f, WORK_SCHEMA, compression="zstd") as writer:
        for doc in iter_documents(path, counters, max_page_bytes=config.max_page_bytes, storage_options=config.storage_options):
            provenance = {"source_file": doc.source_file, "source_record": doc.source_record}
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


def _extract_partition(batches: Iterator[pa.RecordBatch], config_json: str, work_dir: str) -> Iterator[pa.RecordBatch]:
    config = MineConfig.model_validate_json(config_json)
    for batch in batches:
        for path in batch.column("path").to_pylist():
            status = extract_file(path, config, config_json, work_dir)
            yield pa.RecordBatch.from_pylist([status], schema=STATUS_SCHEMA)


def deduplicate(df, exact: bool, near: bool):
    """Keep one pair per exact key and per LSH bucket, preferring (confidence desc, id asc).

    Both rules keep the best-ranked member of every group, so the best-ranked pair
    of any cluster of near-duplicates always survives, whatever the partitioning.
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
            .distinct()
        )
        df = df.join(losers, "id", "left_anti")
    return df


def _merge_stats(statuses: list, written: dict, totals: dict, files: list[str], elapsed: float, fingerprint: str) -> dict:
    counters: Counter = Counter()
    for s in statuses:
        counters.update(json.loads(s["stats"]))
    skipped = {k.split(":", 1)[1]: v for k, v in counters.items() if k.startswith("skip:")}
    truncated = {k.split(":", 1)[1]: v for k, v in counters.items() if k.startswith("truncated:")}
    drops = {k.split(":", 1)[1]: v for k, v in counters.items() if k.startswith("drop:")}
    drops["exact_duplicate"] = totals["mined"] - totals["after_exact"]
    drops["near_duplicate"] = totals["after_exact"] - totals["written"]
    mined_by = Counter()
    for k, v in counters.items():
        if k.startswith("mined:"):
            mined_by[k.split(":", 1)[1].replace(":", "/")] += v
    return {
        "config_sha256": fingerprint,
        "inputs": {"files": len(files), "files_resumed": sum(1 for s in statuses if s["resumed"])},
        "documents": {
            "read": counters["docs_read"],
            "by_language": {k.split(":", 1)[1]: v for k, v in sorted(counters.items()) if k.startswith("lang:")},
            "skipped": dict(sorted(skipped.items())),
            "truncated": dict(sorted(truncated.items())),
        },
        "pairs": {
            "candidates_kept_by_filters": totals["mined"],
            "written": totals["written"],
            "before_dedup_by_miner_kind": dict(sorted(mined_by.items())),
            **written,
        },
        "drops": dict(sorted(drops.items())),
        "pii_scrubbed": counters["pii_scrubbed"],
        "elapsed_seconds": round(elapsed, 2),
    }


def _publish(work_output: str, output: str, storage_options: dict) -> list[str]:
    """Replace the Parquet parts in `output` with the new ones from `work_output`."""
    fs, out = fsspec.core.url_to_fs(output, **storage_options)
    _, src = fsspec.core.url_to_fs(work_output, **storage_options)
    for old in fs.glob(f"{out}/part-*.parquet"):
        fs.rm(old)
    published = []
    for i, part in enumerate(sorted(fs.glob(f"{src}/part-*.parquet"))):
        dest = f"{out}/part-{i:05d}.parquet"
        fs.mv(part, dest)
        # fsspec strips the protocol ("s3a://b/k" -> "b/k"); Spark needs it back to read the part.
        published.append(dest if isinstance(fs, LocalFileSystem) else fs.unstrip_protocol(dest))
    return published


def run_mine(
    inputs: list[str],
    output: str,
    master: str | None = None,
    config: MineConfig | None = None,
    keep_work: bool = False,
    spark=None,
) -> dict:
    """Mine `inputs` into Parquet under `output`; returns the stats also written to `_stats.json`."""
    from jobs.progress import log, spark_task_progress
    from jobs.engines.spark import spark_session

    config = config or MineConfig()
    started = time.time()
    files = expand_inputs(inputs, storage_options=config.storage_options)
    log(f"mine: {len(files)} input file(s) -> {output}")
    fingerprint = config_fingerprint(config)
    output = output.rstrip("/")
    work_dir = f"{output}/{WORK_DIR}/{fingerprint[:16]}"
    spark = spark or spark_session(master, "instructmix-mine", config.spark_conf)
    config_json = config.model_dump_json()

    paths = spark.sparkContext.parallelize([(f,) for f in files], max(1, min(len(files), 10_000))).toDF("path string")
    with spark_task_progress(spark, "extract + mine"):
        statuses = [
            r.asDict()
            for r in paths.mapInArrow(
                lambda it: _extract_partition(it, config_json, work_dir), STATUS_DDL
            ).collect()
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

    candidates = spark.read.parquet(*[checkpoint_path(work_dir, f) for f in files])
    with spark_task_progress(spark, "dedup + write"):
        exact_kept = deduplicate(candidates, exact=config.dedup.exact, near=False).persist()
        kept = deduplicate(exact_kept, exact=False, near=config.dedup.near)
        work_output = f"{work_dir}/output"
        out_partitions = max(1, spark.sparkContext.defaultParallelism)
        (kept.select(*PAIR_COLUMNS).repartition(out_partitions, "id").sortWithinPartitions("id")
         .write.mode("overwrite").parquet(work_output))
        totals = {"mined": sum(s["pairs"] for s in statuses), "after_exact": exact_kept.count()}
        exact_kept.unpersist()
    published = _publish(work_output, output, config.storage_options)
    # One aggregation over what was written gives every breakdown in the stats.
    groups = (
        spark.read.parquet(*published).groupBy("miner", "kind", "lang").count().collect() if published else []
    )
    totals["written"] = sum(r["count"] for r in groups)

    def breakdown(*cols: str) -> dict:
        counts: Counter = Counter()
        for r in groups:
            counts["/".join(str(r[c]) for c in cols)] += r["count"]
        return dict(sorted(counts.items()))

    written = {"by_miner": breakdown("miner"), "by_kind": breakdown("kind"),
               "by_miner_kind": breakdown("miner", "kind"), "by_language": breakdown("lang")}
    stats = _merge_stats(statuses, written, totals, files, time.time() - started, fingerprint)
    fs, out = fsspec.core.url_to_fs(output, **config.storage_options)
    with fs.open(f"{out}/{STATS_FILE}", "w") as f:
        json.dump(stats, f, indent=2, ensure_ascii=False)
    if not keep_work:
        fs.rm(f"{out}/{WORK_DIR}", recursive=True)
    log(f"mine: wrote {totals['written']} pairs to {output} (stats: {output}/{STATS_FILE})")
    return stats
