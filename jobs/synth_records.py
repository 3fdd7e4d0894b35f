"""Synthesized pairs as rows: the record every synthesis mode writes, the gate
(PII scrubbing and the mining filters) each one passes before it is kept, and the
checkpoint files a finished batch of them is kept in until the run publishes.

Counter names here and in the modes are the part after `synth.` of the names in
`transforms.stats` (`records.drop.too_short` -> `synth.records.drop.too_short`).
"""

from __future__ import annotations

import json
from collections import Counter

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from transforms.records import SYNTH_SCHEMA, Provenance, pair_row

# The batch's counters travel in the checkpoint's schema metadata, so a resumed
# batch adds the same counts as the run that made it.
COUNTERS_METADATA_KEY = b"instructmix.stats"


def synth_record(instruction: str, input_: str, output: str, *, lang: str, mode: str, task_type: str,
                 template_id: str = "", seed_ids: list[str] | None = None, model: str = "", sampling: str = "",
                 prompt: str = "", provenance: Provenance | None = None, confidence: float = 0.5) -> dict:
    """A row of SYNTH_SCHEMA: the pair columns (records.pair_row) plus how it was made."""
    from jobs.engines.vllm_actors import prompt_hash

    row = pair_row(instruction=instruction, input_=input_, output=output,
                   kind=f"synth_{task_type}" if task_type else f"synth_{mode}", miner=f"synth_{mode}",
                   confidence=confidence, lang=lang, lang_score=0.0, provenance=provenance or Provenance(),
                   id_scope=mode)
    return {**row, "mode": mode, "task_type": task_type, "template_id": template_id, "seed_ids": seed_ids or [],
            "model": model, "sampling": sampling, "prompt_hash": prompt_hash(prompt) if prompt else ""}


def keep_record(record: dict, counters: Counter) -> bool:
    """The mining filters (lengths, boilerplate, harmful content, …) judge synthesized pairs too."""
    from transforms import filters, pii

    for key in ("instruction", "input", "output"):
        record[key], n = pii.scrub_pii(record[key].strip())
        counters["records.pii_scrubbed"] += n
    reason = filters.reject_reason(record["instruction"], record["input"], record["output"], record["lang"])
    if reason:
        counters[f"records.drop.{reason}"] += 1
        return False
    return True


def drop_contaminated(records: list[dict], counters: Counter, index) -> list[dict]:
    """The records sharing no n-gram with a benchmark (`index`, transforms.decontaminate.BenchmarkIndex);
    the others are counted as `records.drop.contaminated.<benchmark>`. None keeps every record."""
    if index is None:
        return records
    kept = []
    for record in records:
        reason = index.contamination(record["instruction"], record["input"], record["output"])
        if reason:
            counters[f"records.drop.{reason}"] += 1
        else:
            kept.append(record)
    return kept


class SeenOutputs:
    """The outputs this run has kept so far, so one answer repeated for many instructions
    (an extractive summary that is the page's lead sentence for four templates, a
    model's stock reply) is kept once; the rest are `records.drop.duplicate_output`.

    Batches are judged in batch order (OrderedBatchWriter settles them in order) and a resumed
    batch's rows are added as they were written, so the result does not depend on
    which batch finished first or whether the run was resumed. Outputs compare as
    mining's exact dedup compares pairs (transforms.mine.dedup.exact_key: case, width,
    punctuation), without the instruction; an input
    makes a different record (Self-Instruct instances share labels such as "Yes").
    """

    def __init__(self) -> None:
        self.keys: set[str] = set()

    @staticmethod
    def key(record: dict) -> str:
        from transforms.mine.dedup import exact_key

        return exact_key("", record["input"], record["output"])  # the instruction left out on purpose

    def add(self, records: list[dict]) -> None:
        self.keys.update(self.key(r) for r in records)

    def keep_new(self, records: list[dict], counters: Counter) -> list[dict]:
        """The records whose output is new (the last gate: counts `records.accepted`)."""
        kept = []
        for record in records:
            key = self.key(record)
            if key in self.keys:
                counters["records.drop.duplicate_output"] += 1
                continue
            self.keys.add(key)
            kept.append(record)
        counters["records.accepted"] += len(kept)
        return kept


def batch_key(file_index: int, batch_index: int) -> str:
    """The name of a document batch: its input file's place in the sorted inputs and its
    place in that file. Sorting the keys gives the order the run settles batches in."""
    return f"{file_index:06d}-{batch_index:08d}"


class BatchCheckpoints:
    """The finished batches (document batches or self-instruct rounds) of one run.

    Batch k is `WORK/batch-<k>.parquet` on any fsspec filesystem, written once the
    batch is complete (whole-file atomic write), so a re-run after
    a kill finds only finished batches and skips them. `work` is a fingerprinted
    work dir (`jobs.workdir.StageOutput.work_dir`): batches of another config or
    code version live elsewhere and are never read.
    """

    def __init__(self, work: str, storage_options: dict | None = None) -> None:
        self.url = work
        self.fs, self.root = fsspec.core.url_to_fs(work, **(storage_options or {}))
        self.root = self.root.rstrip("/")

    def path(self, k: int | str) -> str:
        """Batch k's file; k is a round number or a batch key (`batch_key`)."""
        return f"{self.root}/batch-{k:06d}.parquet" if isinstance(k, int) else f"{self.root}/batch-{k}.parquet"

    def exists(self, k: int | str) -> bool:
        return self.fs.exists(self.path(k))

    def write(self, k: int | str, records: list[dict], counters: Counter) -> None:
        from jobs.workdir import write_atomic

        table = pa.Table.from_pylist(records, schema=SYNTH_SCHEMA)
        table = table.replace_schema_metadata({COUNTERS_METADATA_KEY: json.dumps(dict(counters)).encode()})
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink, compression="zstd")
        write_atomic(self.fs, self.path(k), sink.getvalue().to_pybytes())

    def keys_through(self, last: int | str) -> list[str]:
        """The keys of the checkpoints up to and including `last`, in batch order: one
        listing of the work folder. Batches are checkpointed in order, so those there are
        always a prefix of the run's batches."""
        last_name = self.path(last).rsplit("/", 1)[-1]
        names = sorted(p.rsplit("/", 1)[-1] for p in self.fs.glob(f"{self.root}/batch-*.parquet"))
        return [n.removeprefix("batch-").removesuffix(".parquet") for n in names if n <= last_name]

    def read(self, k: int | str) -> tuple[pa.Table, Counter]:
        """Batch k's rows (without the counters metadata) and its counters."""
        table = pq.read_table(self.path(k), filesystem=self.fs)
        meta = (table.schema.metadata or {}).get(COUNTERS_METADATA_KEY, b"{}")
        return table.replace_schema_metadata(None), Counter(json.loads(meta))


class OrderedBatchWriter:
    """The one place batches meet: a Ray actor (jobs.synth) that judges each finished
    batch against the outputs kept before it (SeenOutputs) and checkpoints what survives.

    Calls from one caller run in the order they were made, so when the driver hands
    batches over in batch order, the result does not depend on which batch's
    generation finished first or whether the run was resumed. The records go from the
    tasks that built them to this actor and on to the checkpoint: the driver sees only
    each batch's row count and counters.
    """

    def __init__(self, work: str, storage_options: dict | None = None, index_url: str | None = None) -> None:
        from jobs.decontamination import worker_index

        self.checkpoints = BatchCheckpoints(work, storage_options)
        self.seen = SeenOutputs()
        # Decontamination is this gate's too: the index is opened once, in this actor.
        self.benchmarks = worker_index(index_url, storage_options) if index_url else None

    def settle(self, key: str, built: tuple[list[dict], Counter] | None) -> tuple[int, Counter, bool]:
        """Keep the batch's new records and checkpoint them; `built` None means a previous run
        checkpointed the batch (its stages found it), whose outputs now count as seen.
        Returns (rows kept, the batch's counters, whether it was resumed)."""
        if built is None:
            table, counters = self.checkpoints.read(key)
            self.seen.add(table.select(["input", "output"]).to_pylist())
            return table.num_rows, counters, True
        records, counters = built
        records = drop_contaminated(records, counters, self.benchmarks)
        records = self.seen.keep_new(records, counters)
        self.checkpoints.write(key, records, counters)
        return len(records), counters, False
