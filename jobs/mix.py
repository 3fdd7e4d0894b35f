"""The mixer: inject instruction-like documents into a pretraining stream at a token ratio.

Phases (each task is independent, so the output never depends on parallelism):
A. tokenize (Spark, one task per pretraining file): token ids and per-document
   lengths into a work cache.
B. materialize (Spark, one task per instruction source): records rendered in
   seeded surface formats, packed, tokenized, in a seeded order per epoch
   (at most `max_repeat` epochs), until the source's share of the needed
   instruction tokens is covered; a shortfall stops the job before anything is
   written, naming the missing tokens per source.
C. plan (driver): `transforms.mix.interleave` over the lengths alone, streaming,
   cut into shards of `shard_tokens`.
D. write (Spark, one task per shard): every enabled format, temporary names then
   rename; a finished shard leaves a small JSON record, so a re-run skips it.
Then `manifest.json` is written from those records.

The work cache (`OUTPUT/_work/<config hash>/`) and the output folder must be on a
filesystem every executor can reach (local disk embedded, shared storage on a cluster).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections import Counter

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from jobs.config import MixConfig
from jobs.errors import MixError
from transforms.mix.plan import plan_shards

MANIFEST_FILE = "manifest.json"
WORK_DIR = "_work"
TOKENIZE_BATCH_DOCS = 256
# Instruction tokens materialized beyond a source's computed need (when max_repeat
# allows): the realized mix can run a little past the estimate, by about one
# document per shard, and a source that runs dry would skew the last shards.
UNIT_SLACK_TOKENS = 4096
UNITS_SCHEMA = pa.schema(
    [
        ("unit", pa.int64()),
        ("epoch", pa.int32()),
        ("text", pa.string()),
        ("tokens", pa.list_(pa.uint32())),
        ("length", pa.int64()),
        ("records", pa.int32()),
        ("provenance", pa.string()),
    ]
)


def config_sha256(config: MixConfig) -> str:
    return hashlib.sha256(config.model_dump_json().encode()).hexdigest()


def _source_name(kind: str, index: int, name: str | None) -> str:
    return name or f"{kind}{index}"


def _atomic_write_json(path: str, data) -> None:
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, ensure_ascii=False, indent=1, sort_keys=True)
    os.replace(tmp, path)


def _read_json(path: str):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


# --- A. tokenize pretraining files ---------------------------------------------------


def tokenize_pretrain_file(task: dict) -> dict:
    """Token ids (uint32, concatenated) and document lengths of one pretraining file."""
    from transforms.io.mix_inputs import iter_pretrain_docs
    from transforms.records import source_url_key
    from transforms.tokenizer import encode_batch, load_tokenizer

    base = task["base"]
    done = f"{base}.json"
    if os.path.exists(done):
        return _read_json(done)
    tokenizer = load_tokenizer(task["tokenizer"])
    counters: Counter = Counter()
    lengths: list[int] = []
    url_keys: list[int] = []
    os.makedirs(os.path.dirname(base), exist_ok=True)
    tmp_tokens = f"{base}.tokens.tmp"
    with open(tmp_tokens, "wb") as out:
        batch: list[str] = []

        def flush() -> None:
            for ids in encode_batch(tokenizer, batch):
                out.write(ids.astype(np.uint32, copy=False).tobytes())
                lengths.append(len(ids))
            batch.clear()

        for doc in iter_pretrain_docs(task["path"], task["text_field"], counters, task["storage_options"]):
            batch.append(doc.text)
            url_keys.append(source_url_key(doc.url) if doc.url else 0)
            if len(batch) >= TOKENIZE_BATCH_DOCS:
                flush()
        if batch:
            flush()
    os.replace(tmp_tokens, f"{base}.tokens")
    np.save(f"{base}.lengths.npy", np.asarray(lengths, dtype=np.int64))
    np.save(f"{base}.urls.npy", np.asarray(url_keys, dtype=np.int64))
    result = {"path": task["path"], "docs": len(lengths), "tokens": int(sum(lengths)), "counters": dict(counters)}
    _atomic_write_json(done, result)
    return result


# --- B. materialize instruction units -------------------------------------------------


def materialize_instruction_units(task: dict) -> dict:
    """Render, pack and tokenize one instruction source, epoch by epoch, until its need is covered."""
    from transforms.io.mix_inputs import iter_instruction_records
    from transforms.langid import get_language_identifier
    from transforms.mix.render import choose_format, load_formats, pack, render
    from transforms.tokenizer import encode_batch, load_tokenizer

    base = task["base"]
    done = f"{base}.json"
    if os.path.exists(done):
        return _read_json(done)
    counters: Counter = Counter()
    records = list(iter_instruction_records(task["path"], counters, task["storage_options"]))
    # Surface formats are chosen by (source name, position, epoch), not by a key
    # holding an absolute path, so two checkouts of the same data mix identically.
    lid = get_language_identifier()
    langs = [r.lang or lid.identify(f"{r.instruction} {r.output}")[0] for r in records]
    formats = load_formats(task["formats_file"])
    tokenizer = load_tokenizer(task["tokenizer"])
    seed, source, need, size = task["seed"], task["source"], task["need_tokens"], task["pack"]

    def render_record(i: int, key: str) -> str:
        r = records[i]
        fmt = choose_format(formats, f"{task['name']}:{i}:{key}", langs[i], seed)
        format_counts[fmt.id] += 1
        return render(fmt, {"instruction": r.instruction, "input": r.input, "output": r.output,
                            "system": r.system, "history": r.history})

    format_counts: Counter = Counter()
    os.makedirs(os.path.dirname(base), exist_ok=True)
    attached = _attach_to_source_pages(task, records, render_record, tokenizer) if task["placement"] == "source_document" else {}
    attached_tokens = sum(a["length"] for a in attached.values())
    pool = np.array([i for i in range(len(records)) if i not in attached], dtype=np.int64)
    # The plan may leave a page's pairs off where they would push a shard past the
    # ratio, so the standalone stream is prepared for the whole share regardless.
    standalone_need = need

    produced = units = epochs_used = 0
    with pq.ParquetWriter(f"{base}.units.tmp", UNITS_SCHEMA, compression="zstd") as writer:
        for epoch in range(task["max_repeat"]):
            if produced >= standalone_need + task["slack_tokens"] or not len(pool):
                break
            epochs_used = epoch + 1
            order = pool[np.random.default_rng([seed, source, epoch]).permutation(len(pool))]
            rows: list[dict] = []
            for start in range(0, len(order), size):
                group = [int(i) for i in order[start : start + size]]
                texts = [render_record(i, str(epoch)) for i in group]
                text = texts[0] if size == 1 else pack(texts, seed, f"{source}:{epoch}:{start}")
                first = records[group[0]].provenance
                provenance = {"file": first.get("file", ""), "record": first.get("record", ""),
                              "key": records[group[0]].key}
                if size > 1:
                    provenance["packed"] = [dict(records[i].provenance, key=records[i].key) for i in group]
                rows.append({"unit": units, "epoch": epoch, "text": text, "records": len(group),
                             "provenance": json.dumps(provenance, ensure_ascii=False)})
                units += 1
                if len(rows) >= TOKENIZE_BATCH_DOCS or start + size >= len(order):
                    for row, ids in zip(rows, encode_batch(tokenizer, [r["text"] for r in rows])):
                        row["tokens"] = ids
                        row["length"] = len(ids)
                        produced += len(ids)
                    writer.write_table(pa.Table.from_pylist(rows, schema=UNITS_SCHEMA))
                    rows = []
                    if produced >= standalone_need + task["slack_tokens"]:
                        break
    os.replace(f"{base}.units.tmp", f"{base}.units.parquet")
    result = {
        "path": task["path"], "records": len(records), "units": units, "tokens": produced,
        "epochs_materialized": epochs_used, "need_tokens": need, "standalone_need_tokens": standalone_need,
        "attached_pairs": len(attached), "attached_tokens": attached_tokens, "counters": dict(counters),
        "formats": dict(sorted(format_counts.items())),
    }
    _atomic_write_json(done, result)
    return result


ATTACHED_SCHEMA = pa.schema(
    [
        ("file", pa.int64()),
        ("doc", pa.int64()),
        ("record", pa.int64()),
        ("text", pa.string()),
        ("tokens", pa.list_(pa.uint32())),
        ("length", pa.int64()),
        ("provenance", pa.string()),
    ]
)
# Rendered pairs start a new paragraph of the page they are appended to.
ATTACHED_SEPARATOR = "\n\n"


def _attach_to_source_pages(task: dict, records: list, render_record, tokenizer) -> dict[int, dict]:
    """Records whose source_url is a page in the stream, rendered for appending to that page.

    Matches are taken in a seeded order while they fit the source's share of the
    instruction tokens (the ratio is the contract; a page keeps fewer of its pairs
    rather than the stream going over it). Writes `<base>.attached.parquet`
    (file, doc, record, text, tokens) and returns {record index: row}. A page
    that appears twice gets its pairs once, at its first occurrence.
    """
    from transforms.records import source_url_key
    from transforms.tokenizer import encode_batch

    keys = [np.load(f"{b}.urls.npy") for b in task["pretrain_bases"]]
    all_keys = np.concatenate(keys) if keys else np.zeros(0, np.int64)
    file_of = np.concatenate([np.full(len(k), f, np.int64) for f, k in enumerate(keys)]) if keys else all_keys
    doc_of = np.concatenate([np.arange(len(k), dtype=np.int64) for k in keys]) if keys else all_keys
    order = np.argsort(all_keys, kind="stable")
    sorted_keys = all_keys[order]
    rows: dict[int, dict] = {}
    for i, r in enumerate(records):
        if not r.source_url:
            continue
        key = source_url_key(r.source_url)
        pos = int(np.searchsorted(sorted_keys, key))
        if pos < len(sorted_keys) and sorted_keys[pos] == key:
            target = order[pos]
            provenance = dict(r.provenance, key=r.key)
            rows[i] = {"file": int(file_of[target]), "doc": int(doc_of[target]), "record": i,
                       "text": ATTACHED_SEPARATOR + render_record(i, "attached"),
                       "provenance": json.dumps(provenance, ensure_ascii=False)}
    matched = sorted(rows)
    for row, ids in zip((rows[i] for i in matched), encode_batch(tokenizer, [rows[i]["text"] for i in matched])):
        row["tokens"] = ids
        row["length"] = len(ids)
    kept, budget = {}, task["need_tokens"]
    for j in np.random.default_rng([task["seed"], task["source"], 1 << 20]).permutation(len(matched)):
        row = rows[matched[j]]
        if row["length"] <= budget:
            kept[matched[j]] = row
            budget -= row["length"]
    rows = kept
    ordered = [rows[i] for i in sorted(rows)]
    table = pa.Table.from_pylist(ordered, schema=ATTACHED_SCHEMA)
    pq.write_table(table, f"{task['base']}.attached.tmp", compression="zstd")
    os.replace(f"{task['base']}.attached.tmp", f"{task['base']}.attached.parquet")
    return rows


# --- C. plan -----------------------------------------------------------------------

# The rule lives in transforms.mix.plan (plan_shards, ShardPlan).


# --- D. write shards ---------------------------------------------------------------


def write_shard(task: dict) -> dict:
    """Write one planned shard in every enabled format; skip it if a previous run finished it."""
    from transforms.io.mix_inputs import iter_pretrain_docs
    from transforms.io.shard_writers import JsonlZstShardWriter, MegatronShardWriter, ParquetShardWriter

    done = task["done"]
    if os.path.exists(done):
        result = _read_json(done)
        if all(os.path.exists(os.path.join(task["root"], f["path"])) for f in result["files"]):
            return result
    root, shard, n = task["root"], task["shard"], task["num_shards"]
    writers = []
    if "jsonl.zst" in task["formats"]:
        writers.append(JsonlZstShardWriter(root, shard))
    if "parquet" in task["formats"]:
        writers.append(ParquetShardWriter(root, shard, n))
    if "megatron" in task["formats"]:
        writers.append(MegatronShardWriter(root, shard, task["vocab_size"]))
    try:
        readers: dict[int, tuple] = {}
        cursors: dict[int, _UnitCursor] = {}
        for kind, which, start, end in task["runs"]:
            if kind == 0:
                _write_pretrain_run(task, readers, which, start, end, writers, iter_pretrain_docs)
            else:
                _write_instruction_run(task, cursors, which, start, end, writers)
        files = [f.as_dict() for w in writers for f in w.close()]
    except BaseException:
        for w in writers:
            w.abort()
        raise
    result = {"shard": shard, "files": files, **task["counts"]}
    _atomic_write_json(done, result)
    return result


def _write_pretrain_run(task, readers, file_index, start, end, writers, iter_pretrain_docs) -> None:
    source = task["pretrain"][file_index]
    if file_index not in readers:
        base = source["base"]
        lengths = np.load(f"{base}.lengths.npy")
        offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        tokens = np.memmap(f"{base}.tokens", dtype=np.uint32, mode="r") if offsets[-1] else np.zeros(0, np.uint32)
        docs = iter_pretrain_docs(source["path"], source["text_field"], Counter(), task["storage_options"])
        detached = {doc for f, doc in task["detached"] if f == file_index}
        readers[file_index] = (docs, offsets, tokens, _attachments_of(task, file_index, detached))
    docs, offsets, tokens, attachments = readers[file_index]
    for doc in docs:
        if doc.index < start:
            continue
        ids = tokens[offsets[doc.index] : offsets[doc.index + 1]]
        text = doc.text
        meta = {"source": f"pretrain:{source['name']}", "is_instruction": False, "provenance": doc.provenance}
        if doc.index in attachments:
            rows = attachments[doc.index]
            text += "".join(r["text"] for r in rows)
            ids = np.concatenate([ids, *(np.asarray(r["tokens"], dtype=np.uint32) for r in rows)])
            meta["attached_instructions"] = [{"source": f"instructions:{r['source']}", "tokens": r["length"],
                                              "provenance": json.loads(r["provenance"])} for r in rows]
        doc_id = f"{source['name']}-{file_index:05d}-{doc.index:09d}"
        for w in writers:
            w.add(doc_id, text, False, meta, ids)
        if doc.index + 1 >= end:
            return
    raise MixError(f"{source['path']}: document {end - 1} is missing on the second read; the file changed during the job")


def _attachments_of(task: dict, file_index: int, detached: set[int]) -> dict[int, list[dict]]:
    """Rendered pairs to append to documents of one pretraining file: {doc index: rows}, by source order."""
    out: dict[int, list[dict]] = {}
    for src in task["instructions"]:
        path = f"{src['base']}.attached.parquet"
        if not os.path.exists(path):
            continue
        for row in pq.read_table(path, filters=[("file", "=", file_index)]).to_pylist():
            if row["doc"] not in detached:
                out.setdefault(row["doc"], []).append({**row, "source": src["name"]})
    return out


class _UnitCursor:
    """Reads one source's instruction units forward only: a shard asks for increasing ranges,
    so each unit file is scanned once per shard, not once per run."""

    def __init__(self, path: str):
        self._batches = pq.ParquetFile(path).iter_batches(batch_size=1024)
        self._rows: list[dict] = []
        self._first = 0  # unit index of self._rows[0]

    def take(self, start: int, end: int):
        while start < end:
            while start >= self._first + len(self._rows):
                self._first += len(self._rows)
                batch = next(self._batches)
                if start >= self._first + batch.num_rows:  # skipped without turning it into rows
                    self._first += batch.num_rows
                    self._rows = []
                else:
                    self._rows = batch.to_pylist()
            yield self._rows[start - self._first]
            start += 1


def _write_instruction_run(task, cursors, source_index, start, end, writers) -> None:
    source = task["instructions"][source_index]
    if source_index not in cursors:
        cursors[source_index] = _UnitCursor(f"{source['base']}.units.parquet")
    for row in cursors[source_index].take(start, end):
        ids = np.asarray(row["tokens"], dtype=np.uint32)
        meta = {"source": f"instructions:{source['name']}", "is_instruction": True,
                "provenance": json.loads(row["provenance"])}
        doc_id = f"{source['name']}-e{row['epoch']}-{row['unit']:09d}"
        for w in writers:
            w.add(doc_id, row["text"], True, meta, ids)


# --- the job -----------------------------------------------------------------------


def run_mix(config: MixConfig, master: str | None = None, spark=None, keep_work: bool = False) -> dict:
    """Run the whole mix; returns the manifest (also written to OUTPUT/manifest.json)."""
    from transforms.io.mix_inputs import PRETRAIN_ENDINGS, expand_paths
    from jobs.progress import log, spark_task_progress
    from transforms.io.shard_writers import write_parquet_dataset_card
    from jobs.engines.spark import spark_session
    from jobs.engines.spark_tasks import run_tasks
    from transforms.tokenizer import load_tokenizer, vocab_size

    started = time.time()
    if warning := config.ratio_warning():
        log(f"[yellow]mix: warning: {warning}")
    tokenizer = load_tokenizer(config.tokenizer)  # fail early, on the driver, with a clear message
    digest = config_sha256(config)
    root = os.path.abspath(config.output.path)
    work = os.path.join(root, WORK_DIR, digest[:16])
    os.makedirs(work, exist_ok=True)
    opts = config.storage_options

    pretrain_files = []
    for i, src in enumerate(config.pretrain):
        name = _source_name("pretrain", i, src.name)
        for path in expand_paths([src.path], storage_options=opts, endings=PRETRAIN_ENDINGS):
            pretrain_files.append({"path": path, "text_field": src.text_field, "name": name})
    for k, f in enumerate(pretrain_files):
        f["base"] = os.path.join(work, "pretrain", f"{k:05d}")
    spark = spark or spark_session(master, "instructmix-mix", config.spark_conf)

    with spark_task_progress(spark, "tokenize pretraining files"):
        tokenized = run_tasks(spark, tokenize_pretrain_file, [
            {**f, "tokenizer": config.tokenizer, "storage_options": opts} for f in pretrain_files])
    pretrain_tokens = sum(t["tokens"] for t in tokenized)
    if pretrain_tokens == 0:
        raise MixError(f"no pretraining text found in {[s.path for s in config.pretrain]}")
    needed = int(np.ceil(config.ratio / (1 - config.ratio) * pretrain_tokens))
    total_weight = sum(s.weight for s in config.instructions)
    instructions = []
    for s, src in enumerate(config.instructions):
        need = int(np.ceil(needed * src.weight / total_weight))
        instructions.append({
            "path": src.path, "name": _source_name("instructions", s, src.name), "source": s,
            "base": os.path.join(work, "instructions", f"{s:03d}-{need}"), "need_tokens": need,
        })
    log(f"mix: {pretrain_tokens:,} pretraining tokens in {len(pretrain_files)} file(s); "
        f"{needed:,} instruction tokens needed for ratio {config.ratio}")

    with spark_task_progress(spark, "render + tokenize instructions"):
        materialized = run_tasks(spark, materialize_instruction_units, [
            {**src, "tokenizer": config.tokenizer, "seed": config.seed, "pack": config.pack,
             "max_repeat": config.max_repeat, "formats_file": config.formats_file, "storage_options": opts,
             "placement": config.placement, "pretrain_bases": [f["base"] for f in pretrain_files],
             "slack_tokens": max(UNIT_SLACK_TOKENS, src["need_tokens"] // 100)} for src in instructions])
    for m in materialized:
        m["available_tokens"] = m["tokens"] + m["attached_tokens"]
    short = [(src, m) for src, m in zip(instructions, materialized) if m["available_tokens"] < src["need_tokens"]]
    if short:
        lines = [f"{src['name']} ({src['path']}): needs {src['need_tokens']:,} tokens, has {m['available_tokens']:,} "
                 f"from {m['records']:,} usable record(s) with max_repeat={config.max_repeat} -> missing "
                 f"{src['need_tokens'] - m['available_tokens']:,}" + (f" (skipped rows: {m['counters']})" if m["counters"] else "")
                 for src, m in short]
        raise MixError("instruction sources cannot fill ratio "
                       f"{config.ratio} of {pretrain_tokens:,} pretraining tokens; nothing was written:\n  "
                       + "\n  ".join(lines))

    pretrain_lengths = [np.load(f"{f['base']}.lengths.npy") for f in pretrain_files]
    unit_lengths = [pq.read_table(f"{src['base']}.units.parquet", columns=["length"]).column("length").to_numpy()
                    for src in instructions]
    attached_lengths = [np.zeros(len(lengths), dtype=np.int64) for lengths in pretrain_lengths]
    for src in instructions:
        if os.path.exists(f"{src['base']}.attached.parquet"):
            t = pq.read_table(f"{src['base']}.attached.parquet", columns=["file", "doc", "length"])
            for f, d, n in zip(*(t.column(c).to_numpy() for c in ("file", "doc", "length"))):
                attached_lengths[f][d] += n
    weights = [s.weight for s in config.instructions]
    shards, units_used = plan_shards(pretrain_lengths, unit_lengths, weights, config.ratio,
                                     config.output.shard_tokens, attached_lengths)
    log(f"mix: {len(shards)} shard(s) planned")

    vocab = vocab_size(tokenizer)
    tasks = []
    for i, shard in enumerate(shards):
        tasks.append({
            "root": root, "shard": i, "num_shards": len(shards), "runs": shard.runs, "detached": shard.detached,
            "formats": config.output.formats, "vocab_size": vocab, "storage_options": opts,
            "pretrain": pretrain_files, "instructions": instructions,
            "done": os.path.join(work, "shards", f"{i:05d}.json"),
            "counts": {"docs": shard.docs, "tokens": shard.tokens, "instruction_docs": shard.instruction_docs,
                       "instruction_tokens": shard.instruction_tokens, "attached_tokens": shard.attached_tokens},
        })
    os.makedirs(os.path.join(work, "shards"), exist_ok=True)
    with spark_task_progress(spark, "write shards"):
        written = run_tasks(spark, write_shard, tasks)

    total = sum(s.tokens for s in shards)
    instruction_total = sum(s.instruction_tokens for s in shards)
    summary = {"target_ratio": config.ratio, "realized_ratio": instruction_total / total if total else 0.0,
               "docs": sum(s.docs for s in shards), "tokens": total, "shards": len(shards)}
    card = write_parquet_dataset_card(root, len(shards), summary).as_dict() if "parquet" in config.output.formats else None
    manifest = _manifest(config, digest, shards, written, pretrain_files, tokenized, instructions, materialized,
                         units_used, card, summary)
    _atomic_write_json(os.path.join(root, MANIFEST_FILE), manifest)
    if not keep_work:
        shutil.rmtree(os.path.join(root, WORK_DIR), ignore_errors=True)
    log(f"mix: wrote {len(shards)} shard(s), {total:,} tokens, realized ratio "
        f"{summary['realized_ratio']:.4f} (target {config.ratio}) -> {root} [{time.time() - started:.1f}s]")
    return manifest


def _manifest(config, digest, shards, written, pretrain_files, tokenized, instructions, materialized, units_used,
              card, summary) -> dict:
    skipped: Counter = Counter()
    for t in tokenized:
        skipped.update(t["counters"])
    detached = {(f, d) for shard in shards for f, d in shard.detached}
    sources = []
    for src, m, used in zip(instructions, materialized, units_used):
        attached_pairs = attached_tokens = 0
        if os.path.exists(f"{src['base']}.attached.parquet"):
            t = pq.read_table(f"{src['base']}.attached.parquet", columns=["file", "doc", "length"])
            for f, d, n in zip(*(t.column(c).to_numpy() for c in ("file", "doc", "length"))):
                if (int(f), int(d)) not in detached:
                    attached_pairs += 1
                    attached_tokens += int(n)
        units = pq.read_table(f"{src['base']}.units.parquet", columns=["epoch", "length", "records"]).slice(0, used)
        epochs = units.column("epoch").to_numpy()
        sources.append({
            "name": src["name"], "path": src["path"], "weight": config.instructions[src["source"]].weight,
            "records": m["records"], "documents_used": int(used),
            "records_used": int(units.column("records").to_numpy().sum()) + attached_pairs,
            "tokens_used": int(units.column("length").to_numpy().sum()) + attached_tokens,
            "attached_pairs": attached_pairs, "attached_tokens": attached_tokens,
            "repeats": int(epochs.max()) + 1 if len(epochs) else 0, "skipped_rows": m["counters"],
            "formats_rendered": m["formats"],
        })
    shard_entries = []
    for shard, result in zip(shards, written):
        shard_entries.append({
            "name": f"part-{result['shard']:05d}", "docs": shard.docs, "tokens": shard.tokens,
            "instruction_docs": shard.instruction_docs, "instruction_tokens": shard.instruction_tokens,
            "attached_instruction_tokens": shard.attached_tokens,
            "ratio": shard.instruction_tokens / shard.tokens if shard.tokens else 0.0,
            "files": result["files"],
        })
    return {
        "config_sha256": digest,
        "seed": config.seed,
        "target_ratio": config.ratio,
        "realized_ratio": summary["realized_ratio"],
        "tokenizer": config.tokenizer,
        "formats": config.output.formats,
        "docs": summary["docs"],
        "tokens": summary["tokens"],
        "pretrain": {
            "files": len(pretrain_files),
            "docs": sum(t["docs"] for t in tokenized),
            "tokens": sum(t["tokens"] for t in tokenized),
            "skipped_rows": dict(sorted(skipped.items())),
        },
        "instructions": sources,
        "dataset_card": card,
        "shards": shard_entries,
    }
