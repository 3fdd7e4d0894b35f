"""The mixer: inject instruction-like documents into a pretraining stream at a token ratio.

Before any Spark task starts, the driver checks what it can: every source's path or
glob matches files, the surface formats compile and render in the sandbox, the
tokenizer loads, and the output is a folder this run may write (not a file, not an
input, writable, not held by another run, no files of anyone else's unless
`--overwrite`). Each of those fails in one line naming the input and the fix.

Phases (each task is independent, so the output never depends on parallelism; the
driver handles files, chunks and shards, never a document):
A. tokenize (Spark, one task per pretraining file, read once): text and token ids
   into the work cache, one Parquet row group per chunk of about shard_tokens/16
   tokens (transforms/mix/plan.py).
   plan (driver): consecutive chunks grouped into shards, each chunk's target
   ratio from the schedule, each source's cumulative token target per shard.
B. attach (placement: source_document; a Spark join by URL key): pairs appended to
   the page they were mined from, capped at each chunk's share, so the rest of the
   share is standalone.
C. materialize (Spark, one task per instruction chunk and round of epochs): records in a
   seeded two-level order (chunk order per epoch, then records within the chunk),
   rendered in seeded surface formats, packed, tokenized; further epochs (at most
   `max_repeat`) while a source is short. A shortfall stops the job before
   anything is written, naming the missing tokens per source.
C2. cut (Spark tasks reading length columns, then the driver per shard): each
   source's cut at each shard's end, the side of its target that brings the
   instruction total closest (transforms/mix/plan.py: choose_cuts).
D. write (Spark, one task per shard): its chunks' pages, its units between the
   previous shard's cut and its own, interleaved by transforms/mix/interleave.py; every enabled
   format, published whole (transforms/io/shard_writers.py); a finished shard
   leaves a small JSON record with each file's version, so a re-run skips it while
   the file is unchanged.
Then the previous run's files that this run did not write again are removed, and
`manifest.json` (what a trainer reads) and `_stats.json` (the counters every stage
writes, transforms/stats.py) are written.

Everything (inputs, the work cache `OUTPUT/_work/<fingerprint[:16]>/`, shards,
card, manifest) goes through fsspec with the config's `storage_options`, so the
output may be a local folder or `s3://…`, `gs://…`, `hdfs://…`; on a cluster it
must be storage every executor reaches. Executors read the tokenizer and the
surface formats from the driver's copy (the work cache and the task payload),
not from the driver's disk.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import json
import os
import time
from collections import Counter
from dataclasses import asdict

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from jobs.config import MixConfig
from jobs.decontamination import digest_of, load_benchmarks
from jobs.errors import MixError, UserError
from jobs.workdir import STATS_FILE, WORK_DIR, StageOutput, fingerprint, read_json, write_atomic
from transforms.stats import counter_name, stats_document

MANIFEST_FILE = "manifest.json"
# In the work dir: every file the run is about to publish, written before the first
# shard, so a run killed halfway still recognises its own files on the re-run.
PENDING_OUTPUTS = "outputs.json"
TOKENIZER_COPY = "tokenizer.json"
TOKENIZE_BATCH_DOCS = 256
# How the work cache's Parquet files (pages, units, attached pairs; text and token ids) are
# written: no dictionary pages (texts and token lists rarely repeat, and decoding a failed
# dictionary made reading them back 10x slower) and no statistics (nothing filters on them).
CACHE_PARQUET = {"compression": "zstd", "use_dictionary": False, "write_statistics": False}
# Pieces of instruction units (one file's records in one epoch) per task that resolves cuts.
RESOLVE_PIECES_PER_TASK = 64
_FIX_ACCESS = "check that it exists and that this job may read and write there, then re-run (finished work is kept)"


def _source_name(kind: str, index: int, name: str | None) -> str:
    return name or f"{kind}{index}"


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


# --- the work cache, through fsspec --------------------------------------------------


def _fs(url: str, options: dict):
    return fsspec.core.url_to_fs(url, **options)


def _exists(url: str, options: dict) -> bool:
    fs, path = _fs(url, options)
    return fs.exists(path)


def _write_json(url: str, data, options: dict) -> None:
    fs, path = _fs(url, options)
    write_atomic(fs, path, json.dumps(data, ensure_ascii=False, indent=1, sort_keys=True).encode("utf-8"))


def _save_npy(url: str, array: np.ndarray, options: dict) -> None:
    buf = io.BytesIO()
    np.save(buf, array)
    fs, path = _fs(url, options)
    write_atomic(fs, path, buf.getvalue())


def _load_npy(url: str, options: dict) -> np.ndarray:
    fs, path = _fs(url, options)
    return np.load(io.BytesIO(fs.cat_file(path)))


def _staged(url: str, options: dict):
    """A local file to write that appears at `url` whole (a rename on local disk, one upload elsewhere)."""
    from transforms.io.shard_writers import StagedFile

    parent, name = url.rsplit("/", 1)
    return StagedFile(parent, name, options)


def _file_version(fs, path: str) -> str:
    """What changes when anyone rewrites the file (mtime and inode locally, the ETag on S3)."""
    fs.invalidate_cache(path)
    return str(fs.checksum(path))


@functools.lru_cache(maxsize=4)
def _task_tokenizer(url: str, options_json: str):
    """The driver's tokenizer, read from the work cache once per executor process."""
    from tokenizers import Tokenizer

    fs, path = _fs(url, json.loads(options_json))
    return Tokenizer.from_str(fs.cat_file(path).decode("utf-8"))


def _tokenizer_of(task: dict):
    return _task_tokenizer(task["tokenizer"], json.dumps(task["storage_options"], sort_keys=True, default=str))


@contextlib.contextmanager
def _named_errors(what: str):
    """Filesystem errors inside a task reach the user as one line naming `what` and the fix."""
    try:
        yield
    except OSError as err:
        raise MixError(f"{what}: {type(err).__name__}: {_one_line(err)}; {_FIX_ACCESS}") from err


# --- A. tokenize pretraining files, cut into chunks ------------------------------------

PRETRAIN_CACHE_SCHEMA = pa.schema(
    [
        ("doc", pa.int64()),
        ("text", pa.string()),
        ("tokens", pa.list_(pa.uint32())),
        ("length", pa.int64()),
        ("url_key", pa.int64()),
        ("provenance", pa.string()),
    ]
)


def tokenize_pretrain_file(task: dict) -> dict:
    """One pretraining file, read once: text and token ids into the work cache, a row group per chunk."""
    with _named_errors(f"pretraining file {task['path']} (work cache {task['base']})"):
        return _tokenize_pretrain_file(task)


def _tokenize_pretrain_file(task: dict) -> dict:
    from transforms.io.mix_inputs import iter_pretrain_docs
    from transforms.mix.plan import ChunkCutter
    from transforms.records import source_url_key
    from transforms.tokenizer import encode_batch

    base, opts = task["base"], task["storage_options"]
    done = f"{base}.json"
    previous = read_json(done, opts)
    if previous is not None:
        return previous
    tokenizer = _tokenizer_of(task)
    counters: Counter = Counter()
    cutter = ChunkCutter(task["chunk_tokens"])
    chunks: list[list[int]] = []  # [documents, tokens] per chunk
    rows: list[dict] = []
    batch: list[dict] = []
    staged = _staged(f"{base}.parquet", opts)
    try:
        with pq.ParquetWriter(staged.temp, PRETRAIN_CACHE_SCHEMA, **CACHE_PARQUET) as writer:

            def close_chunk() -> None:
                writer.write_table(_rows_table(rows, PRETRAIN_CACHE_SCHEMA), row_group_size=len(rows))
                chunks.append([len(rows), sum(r["length"] for r in rows)])
                rows.clear()

            def flush() -> None:
                for row, ids in zip(batch, encode_batch(tokenizer, [r["text"] for r in batch])):
                    row["tokens"], row["length"] = ids, len(ids)
                    rows.append(row)
                    if cutter.add(len(ids)):
                        close_chunk()
                batch.clear()

            for doc in iter_pretrain_docs(task["path"], task["text_field"], counters, opts):
                batch.append({"doc": doc.index, "text": doc.text,
                              "url_key": source_url_key(doc.url) if doc.url else 0,
                              "provenance": json.dumps(doc.provenance.as_dict(), ensure_ascii=False)})
                if len(batch) >= TOKENIZE_BATCH_DOCS:
                    flush()
            flush()
            if rows:
                close_chunk()
        staged.publish()
    except BaseException:
        staged.discard()
        raise
    result = {"path": task["path"], "docs": sum(c[0] for c in chunks), "tokens": sum(c[1] for c in chunks),
              "chunks": chunks, "counters": dict(counters)}
    _write_json(done, result, opts)
    return result


def _token_lists(ids: list[np.ndarray]) -> pa.ListArray:
    """Token id arrays as one Arrow list column, without a Python step per token."""
    offsets = np.zeros(len(ids) + 1, dtype=np.int32)
    np.cumsum([len(a) for a in ids], out=offsets[1:])
    values = np.concatenate(ids).astype(np.uint32, copy=False) if ids else np.zeros(0, np.uint32)
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(values, pa.uint32()))


def _rows_table(rows: list[dict], schema: pa.Schema) -> pa.Table:
    """Rows as a table of `schema`, token id columns built by `_token_lists`: the cache, unit and
    attached-pair files all carry token ids, and a per-row conversion of them is slow."""
    token_ids = pa.list_(pa.uint32())
    return pa.Table.from_arrays(
        [_token_lists([r[f.name] for r in rows]) if f.type == token_ids else pa.array([r[f.name] for r in rows], f.type)
         for f in schema], schema=schema)


# --- B. attach pairs to the pages they were mined from (placement: source_document) ----

ATTACHED_SCHEMA = pa.schema(
    [
        ("doc", pa.int64()),
        ("source", pa.int32()),
        ("chunk", pa.int32()),
        ("record", pa.int64()),
        ("text", pa.string()),
        ("tokens", pa.list_(pa.uint32())),
        ("length", pa.int64()),
        ("provenance", pa.string()),
        # Token spans of the prompt, flat [start, end, ...] (transforms/mix/loss_mask.py); empty
        # unless output.loss_mask asks for them.
        ("prompt_spans", pa.list_(pa.uint32())),
    ]
)
# Rendered pairs start a new paragraph of the page they are appended to.
ATTACHED_SEPARATOR = "\n\n"
_PAGE_KEYS = pa.schema([("url_key", pa.int64()), ("file", pa.int32()), ("chunk", pa.int32()), ("doc", pa.int64())])
_RECORD_KEYS = pa.schema([("url_key", pa.int64()), ("source", pa.int32()), ("rchunk", pa.int32()),
                          ("record", pa.int64()), ("payload", pa.string())])
# kind 0: tokens and pairs (in `record`) kept per page chunk and source; 1: one kept record; 2: an error.
_MATCHES = pa.schema([("kind", pa.int32()), ("file", pa.int32()), ("chunk", pa.int32()), ("source", pa.int32()),
                      ("rchunk", pa.int32()), ("record", pa.int64()), ("tokens", pa.int64()), ("message", pa.string())])
_ID_FILES = pa.schema([("source", pa.int32()), ("rchunk", pa.int32())])


def _ddl(schema: pa.Schema) -> str:
    """A Spark DDL string for a flat Arrow schema of the types used here."""
    names = {pa.int32(): "int", pa.int64(): "long", pa.string(): "string"}
    return ", ".join(f"{f.name} {names[f.type]}" for f in schema)


def _page_keys(batches, task_of: dict):
    """(url key, file, chunk, document) of every page with a URL in the pretraining files of these tasks."""
    for batch in batches:
        for k in batch.column("task").to_pylist():
            task = task_of[k]
            fs, path = _fs(f"{task['base']}.parquet", task["storage_options"])
            with fs.open(path, "rb") as f:
                parquet = pq.ParquetFile(f)
                for chunk in range(parquet.num_row_groups):
                    t = parquet.read_row_group(chunk, columns=["url_key", "doc"])
                    keys = t.column("url_key").to_numpy()
                    keep = keys != 0
                    if keep.any():
                        yield pa.RecordBatch.from_pydict({
                            "url_key": keys[keep], "file": np.full(int(keep.sum()), k, np.int32),
                            "chunk": np.full(int(keep.sum()), chunk, np.int32), "doc": t.column("doc").to_numpy()[keep]},
                            schema=_PAGE_KEYS)


def _record_keys(batches, task_of: dict):
    """(url key, source, chunk, record, the record itself) of every instruction record that names
    the page it came from: the record rides through the join, so no task reads its file again."""
    from dataclasses import asdict as as_dict

    from transforms.records import source_url_key

    for batch in batches:
        for k in batch.column("task").to_pylist():
            task = task_of[k]
            rows = [{"url_key": source_url_key(r.source_url), "source": task["source"], "rchunk": task["chunk"],
                     "record": i, "payload": json.dumps(as_dict(r), ensure_ascii=False)}
                    for i, r in enumerate(_chunk_records(task, Counter())) if r.source_url]
            if rows:
                yield pa.RecordBatch.from_pylist(rows, schema=_RECORD_KEYS)


def _record_of(payload: str):
    from transforms.io.mix_inputs import InstructionRecord
    from transforms.records import Provenance

    data = json.loads(payload)
    data["provenance"] = Provenance(**data["provenance"])
    data["history"] = [tuple(turn) for turn in data["history"]]
    return InstructionRecord(**data)


def _chunk_records(task: dict, counters: Counter) -> list:
    """The usable records of one chunk (a file, or row groups of a Parquet file) of an instruction
    source, in file order; skipped rows are counted in `counters`, and so are records sharing an
    n-gram with a benchmark (`drop:contaminated.<benchmark>`), left out before anything renders them."""
    from jobs.decontamination import worker_index
    from transforms.io.mix_inputs import iter_instruction_records

    groups = task.get("row_groups")
    records = iter_instruction_records(task["file"], counters, task["storage_options"],
                                       tuple(groups) if groups else None)
    if not task.get("benchmark_index"):
        return list(records)
    index = worker_index(task["benchmark_index"], task["storage_options"])
    kept = []
    for r in records:
        reason = index.contamination(r.instruction, r.input, r.output, r.system or "",
                                     *(turn for pair in r.history for turn in pair))
        if reason:
            counters[f"drop:{reason}"] += 1
        else:
            kept.append(r)
    return kept


def attach_to_pages(batches, ctx: dict):
    """Matches of one page chunk (sorted, contiguous in the partition): rendered, tokenized, capped
    at each source's share of the chunk's target, written to `attached/<file>-<chunk>.parquet`.

    Yields kind 0 rows (tokens kept per page chunk and source) and kind 1 rows (a kept record,
    so its chunk's materialize task leaves it out of the standalone stream).
    """
    import itertools

    rows = [r for b in batches for r in b.to_pylist()]
    for (file, chunk), group in itertools.groupby(rows, key=lambda r: (r["file"], r["chunk"])):
        try:
            yield from _attach_chunk(ctx, file, chunk, list(group))
        except UserError as err:  # raised again on the driver, as one line
            yield pa.RecordBatch.from_pylist([{"kind": 2, "file": file, "chunk": chunk, "source": -1, "rchunk": -1,
                                               "record": -1, "tokens": 0, "message": str(err)}], schema=_MATCHES)


def _attach_chunk(ctx: dict, file: int, chunk: int, matches: list[dict]):
    opts = ctx["storage_options"]
    renderers: dict[tuple[int, int], _Renderer] = {}
    rendered = []
    for m in matches:
        key = (m["source"], m["rchunk"])
        record = _record_of(m["payload"])
        renderer = renderers.setdefault(key, _Renderer(ctx, m["source"], m["rchunk"]))
        text, prompt = renderer.render(record, m["record"], "attached")
        rendered.append({"doc": m["doc"], "source": m["source"], "chunk": m["rchunk"], "record": m["record"],
                         "text": ATTACHED_SEPARATOR + text,
                         # The separator is masked with the prompt: the page's loss ends with the page.
                         "char_spans": [(0, len(ATTACHED_SEPARATOR) + prompt)] if prompt is not None else [],
                         "provenance": json.dumps(dict(record.provenance.as_dict(), key=record.key),
                                                  ensure_ascii=False)})
    _tokenize_rows(_tokenizer_of(ctx), rendered)
    budget = [w * ctx["chunk_targets"][file][chunk] for w in ctx["weights"]]
    kept = []
    # A seeded order decides which of a page chunk's pairs fit its share.
    for j in np.random.default_rng([ctx["seed"], file, chunk, 1 << 20]).permutation(len(rendered)):
        row = rendered[j]
        if row["length"] <= budget[row["source"]]:
            budget[row["source"]] -= row["length"]
            kept.append(row)
    kept.sort(key=lambda r: (r["doc"], r["source"], r["chunk"], r["record"]))
    if kept:
        staged = _staged(_attached_url(ctx["work"], file, chunk), opts)
        try:
            pq.write_table(_rows_table(kept, ATTACHED_SCHEMA), staged.temp, **CACHE_PARQUET)
            staged.publish()
        except BaseException:
            staged.discard()
            raise
    out = []
    tokens, pairs = Counter(), Counter()
    for r in kept:
        tokens[r["source"]] += r["length"]
        pairs[r["source"]] += 1
        out.append({"kind": 1, "file": file, "chunk": chunk, "source": r["source"], "rchunk": r["chunk"],
                    "record": r["record"], "tokens": r["length"], "message": None})
    out += [{"kind": 0, "file": file, "chunk": chunk, "source": s, "rchunk": -1, "record": pairs[s], "tokens": n,
             "message": None} for s, n in sorted(tokens.items())]
    if out:
        yield pa.RecordBatch.from_pylist(out, schema=_MATCHES)


def _tokenize_rows(tokenizer, rows: list[dict]) -> int:
    """`tokens`, `length` and `prompt_spans` (from `char_spans`) of rendered rows; their tokens in all."""
    from transforms.mix.loss_mask import token_spans
    from transforms.tokenizer import encode_batch, encode_batch_with_offsets

    texts = [r["text"] for r in rows]
    if any(r["char_spans"] for r in rows):  # offsets cost time: only for loss masks
        encoded = encode_batch_with_offsets(tokenizer, texts)
    else:
        encoded = [(ids, None) for ids in encode_batch(tokenizer, texts)]
    for row, (ids, offsets) in zip(rows, encoded):
        spans = row.pop("char_spans")
        row["tokens"], row["length"] = ids, len(ids)
        row["prompt_spans"] = np.asarray(token_spans(offsets, spans) if spans else [], dtype=np.uint32)
    return sum(len(ids) for ids, _ in encoded)


def write_attached_ids(batches, ctx: dict):
    """The kept records of each instruction chunk, as one sorted .npy the materialize task reads."""
    import itertools

    rows = sorted((r for b in batches for r in b.to_pylist()), key=lambda r: (r["source"], r["rchunk"], r["record"]))
    for (source, rchunk), group in itertools.groupby(rows, key=lambda r: (r["source"], r["rchunk"])):
        _save_npy(_attached_ids_url(ctx["work"], source, rchunk),
                  np.asarray(sorted(r["record"] for r in group), dtype=np.int64), ctx["storage_options"])
        yield pa.RecordBatch.from_pylist([{"source": source, "rchunk": rchunk}], schema=_ID_FILES)


def _attached_url(work: str, file: int, chunk: int) -> str:
    return f"{work}/attached/{file:05d}-{chunk:05d}.parquet"


def _piece_base(units_dir: str, epoch: int, chunk: int) -> str:
    """Where one instruction chunk's units of one epoch live (`.parquet`, and `.json` once done)."""
    return f"{units_dir}/e{epoch:03d}-{chunk:05d}"


def _attached_ids_url(work: str, source: int, chunk: int) -> str:
    return f"{work}/attached-ids/{source:03d}-{chunk:05d}.npy"


# --- C. materialize instruction units, one source chunk (its epochs of a round) per task ---

UNITS_SCHEMA = pa.schema(
    [
        ("unit", pa.int64()),
        ("text", pa.string()),
        ("tokens", pa.list_(pa.uint32())),
        ("length", pa.int64()),
        ("records", pa.int32()),
        ("provenance", pa.string()),
        ("prompt_spans", pa.list_(pa.uint32())),  # as in ATTACHED_SCHEMA
    ]
)


def _identified_langs(records: list) -> dict[int, str]:
    """Language ID of the records (by index) that carry no `lang`, in one fastText call: one
    call per record costs more than rendering it."""
    from transforms.langid import get_language_identifier

    todo = [i for i, r in enumerate(records) if not r.lang]
    if not todo:
        return {}
    found = get_language_identifier().identify_many([f"{records[i].instruction} {records[i].output}" for i in todo])
    return {i: lang for i, (lang, _) in zip(todo, found)}


class _Renderer:
    """Surface formats of one instruction chunk, chosen by (source name, chunk, record, epoch):
    never by a key holding an absolute path, so two checkouts of the same data mix identically."""

    def __init__(self, task: dict, source: int, chunk: int, langs: dict[int, str] | None = None):
        from transforms.mix.render import SurfaceFormat

        self.task, self.source, self.chunk = task, source, chunk
        # Language ID of the records (by index) without a `lang`, found once per chunk
        # (`_identified_langs`) or here, one record at a time, when not given.
        self.langs = {} if langs is None else langs
        self.name = task["source_names"][source]
        self.formats = [SurfaceFormat(id=f["id"], langs=tuple(f["langs"]), template=f["template"])
                        for f in task["formats"]]
        self.counts: Counter = Counter()
        self.prompts = _loss_masks(task)

    def render(self, record, index: int, key: str) -> tuple[str, int | None]:
        """The record's text, and the length of its prompt when loss masks are asked for (else None)."""
        from jinja2.exceptions import SecurityError

        from transforms.langid import get_language_identifier
        from transforms.mix.render import choose_format, render, render_with_prompt

        lang = record.lang
        if not lang:
            if index not in self.langs:
                self.langs[index] = get_language_identifier().identify(f"{record.instruction} {record.output}")[0]
            lang = self.langs[index]
        fmt = choose_format(self.formats, f"{self.name}:{self.chunk}:{index}:{key}", lang, self.task["seed"])
        self.counts[fmt.id] += 1
        fields = {"instruction": record.instruction, "input": record.input, "output": record.output,
                  "system": record.system, "history": record.history}
        try:
            return render_with_prompt(fmt, fields) if self.prompts else (render(fmt, fields), None)
        except (ValueError, SecurityError) as err:  # a limit or a refusal of the sandbox on this record
            where = f"{record.provenance.source_file} {record.provenance.source_record}"
            raise MixError(f"{self.task['formats_name']}: {_one_line(err)} (record {where} of source "
                           f"{self.name}); fix or remove that format") from err


def materialize_units(task: dict) -> dict:
    """One chunk of one instruction source in each of `epochs`: its records (read once) in a
    seeded order per epoch, rendered, packed and tokenized into `units/<source>/e<epoch>-<chunk>.parquet`."""
    with _named_errors(f"instruction source {task['name']} ({task['file']}; work cache {task['units_dir']})"):
        loaded: dict = {}
        return {"pieces": [_materialize_units({**task, "epoch": e, "base": _piece_base(task["units_dir"], e,
                                                                                      task["chunk"])}, loaded)
                           for e in task["epochs"]]}


def _materialize_units(task: dict, loaded: dict) -> dict:
    from transforms.mix.render import pack, packed_prompt_spans

    base, opts = task["base"], task["storage_options"]
    done = f"{base}.json"
    previous = read_json(done, opts)
    if previous is not None:
        return previous
    if not loaded:  # the chunk's records, once for all the task's epochs
        loaded["counters"] = Counter()
        loaded["records"] = _chunk_records(task, loaded["counters"])
        loaded["langs"] = _identified_langs(loaded["records"])
        ids = task["attached_ids"]
        loaded["attached"] = set(_load_npy(ids, opts).tolist()) if ids and _exists(ids, opts) else set()
    records, counters, attached = loaded["records"], loaded["counters"], loaded["attached"]
    pool = np.array([i for i in range(len(records)) if i not in attached], dtype=np.int64)
    seed, source, epoch, chunk, size = task["seed"], task["source"], task["epoch"], task["chunk"], task["pack"]
    order = pool[np.random.default_rng([seed, source, epoch, chunk]).permutation(len(pool))]
    renderer = _Renderer(task, source, chunk, loaded["langs"])
    tokenizer = _tokenizer_of(task)
    tokens = units = 0
    staged = _staged(f"{base}.parquet", opts)
    try:
        with pq.ParquetWriter(staged.temp, UNITS_SCHEMA, **CACHE_PARQUET) as writer:
            rows: list[dict] = []
            for start in range(0, len(order), size):
                group = [int(i) for i in order[start : start + size]]
                texts, prompts = zip(*(renderer.render(records[i], i, str(epoch)) for i in group))
                key = f"{source}:{epoch}:{chunk}:{start}"
                text = texts[0] if size == 1 else pack(texts, seed, key)
                spans = packed_prompt_spans(texts, prompts, seed, key) if renderer.prompts else []
                provenance = dict(records[group[0]].provenance.as_dict(), key=records[group[0]].key)
                if size > 1:
                    provenance["packed"] = [dict(records[i].provenance.as_dict(), key=records[i].key) for i in group]
                rows.append({"unit": units, "text": text, "records": len(group), "char_spans": spans,
                             "provenance": json.dumps(provenance, ensure_ascii=False)})
                units += 1
                if len(rows) >= TOKENIZE_BATCH_DOCS or start + size >= len(order):
                    tokens += _tokenize_rows(tokenizer, rows)
                    writer.write_table(_rows_table(rows, UNITS_SCHEMA))
                    rows = []
        staged.publish()
    except BaseException:
        staged.discard()
        raise
    result = {"source": source, "chunk": chunk, "epoch": epoch, "file": task["file"], "records": len(records),
              "attached": len(attached), "units": units, "tokens": tokens,
              "counters": dict(counters), "formats": dict(sorted(renderer.counts.items()))}
    _write_json(done, result, opts)
    return result


# --- C2. resolve each source's cuts to unit boundaries ---------------------------------


def resolve_cuts(task: dict) -> dict:
    """The unit boundaries either side of each cumulative target that falls in these pieces of
    one source: [shard, piece, below: (unit, tokens), above: (unit, tokens)], from length columns."""
    from transforms.mix.plan import unit_bounds

    out = []
    with _named_errors(f"instruction source {task['name']} (work cache {task['base']})"):
        for piece, (epoch, chunk, _units, start, _end), targets in task["pieces"]:
            fs, path = _fs(f"{_piece_base(task['base'], epoch, chunk)}.parquet", task["storage_options"])
            lengths = pq.read_table(path, columns=["length"], filesystem=fs).column("length").to_numpy()
            cum = np.concatenate([[0], np.cumsum(lengths)])
            for shard, target in targets:
                lo, hi = unit_bounds(lengths, target - start)
                out.append([shard, piece, lo, int(start + cum[lo]), hi, int(start + cum[hi])])
    return {"cuts": out}


# --- D. write shards ---------------------------------------------------------------


def write_shard(task: dict) -> dict:
    """Write one planned shard in every enabled format; skip it if a previous run finished it."""
    with _named_errors(f"output {task['root']} (shard {task['shard']})"):
        return _write_shard(task)


def _open_writers(task: dict) -> list:
    from transforms.io import shard_writers as sw

    root, shard, n, opts = task["root"], task["shard"], task["num_shards"], task["storage_options"]
    vocab, masks = task["vocab_size"], _loss_masks(task)
    opened = {
        "jsonl.zst": lambda: sw.JsonlZstShardWriter(root, shard, storage_options=opts),
        "parquet": lambda: sw.ParquetShardWriter(root, shard, n, storage_options=opts),
        "megatron": lambda: sw.MegatronShardWriter(root, shard, vocab, storage_options=opts),
        "datatrove": lambda: sw.DatatroveShardWriter(root, shard, vocab, task["tokenizer_name"], masks,
                                                     storage_options=opts),
        "olmo": lambda: sw.OlmoShardWriter(root, shard, vocab, task["eos_token_id"], masks, storage_options=opts),
        "mds": lambda: sw.MdsShardWriter(root, shard, vocab, storage_options=opts),
    }
    writers = []
    try:
        for fmt in task["formats"]:
            writers.append(opened[fmt]())
    except BaseException:
        for w in writers:
            w.abort()
        raise
    return writers


def _loss_masks(task: dict) -> bool:
    """Whether this task's documents carry prompt spans (output.loss_mask other than none)."""
    return task.get("loss_mask", "none") != "none"


def _write_shard(task: dict) -> dict:
    from transforms.mix.interleave import interleave_shard

    opts = task["storage_options"]
    fs, root = _fs(task["root"], opts)
    done = read_json(task["done"], opts)
    if done is not None and all(
        fs.exists(f"{root}/{f['path']}")
        and _file_version(fs, f"{root}/{f['path']}") == done.get("versions", {}).get(f["path"])
        for f in done["files"]
    ):
        return {k: v for k, v in done.items() if k != "versions"}
    ranges = [_UnitRange(task, s) for s in range(len(task["sources"]))]
    unit_tokens = [r.tokens for r in ranges]
    pretrain, attached = task["pretrain_tokens"], task["attached_tokens"]
    instruction = sum(unit_tokens) + attached
    share = instruction / (pretrain + instruction) if pretrain + instruction else 0.0
    counts = Counter()
    writers = _open_writers(task)
    try:
        with contextlib.ExitStack() as open_files:
            pages = _shard_pages(task, open_files)
            units = [r.documents(open_files) for r in ranges]
            for doc in interleave_shard(pages, units, unit_tokens, share):
                for w in writers:
                    w.add(*doc)
                counts["docs"] += 1
                counts["tokens"] += len(doc[4])
                if doc[2]:
                    counts["instruction_docs"] += 1
                    counts["instruction_tokens"] += len(doc[4])
                elif "attached_instructions" in doc[3]:
                    n = sum(a["tokens"] for a in doc[3]["attached_instructions"])
                    counts["instruction_tokens"] += n
                    counts["attached_tokens"] += n
        files = [f.as_dict() for w in writers for f in w.close()]
    except BaseException:
        for w in writers:
            w.abort()
        raise
    result = {"shard": task["shard"], "files": files,
              **{k: int(counts[k]) for k in ("docs", "tokens", "instruction_docs", "instruction_tokens",
                                               "attached_tokens")},
              "sources": [r.summary() for r in ranges]}
    versions = {f["path"]: _file_version(fs, f"{root}/{f['path']}") for f in files}
    _write_json(task["done"], {**result, "versions": versions}, opts)
    return result


def _shard_pages(task: dict, open_files: contextlib.ExitStack):
    """(writer arguments, pretraining tokens, attached tokens) of the shard's pages, chunk by chunk."""
    from transforms.mix.loss_mask import loss_mask, shifted

    opts = task["storage_options"]
    files = {f: {"name": name, "base": base} for f, name, base in task["pretrain"]}
    caches: dict[int, pq.ParquetFile] = {}
    for file, chunk, has_attached in task["chunks"]:
        source = files[file]
        if file not in caches:
            fs, path = _fs(f"{source['base']}.parquet", opts)
            caches[file] = pq.ParquetFile(open_files.enter_context(fs.open(path, "rb")))
        rows = caches[file].read_row_group(chunk, columns=["doc", "text", "tokens", "provenance"])
        riders: dict[int, list[dict]] = {}
        if has_attached:
            afs, apath = _fs(_attached_url(task["work"], file, chunk), opts)
            for r in pq.read_table(apath, filesystem=afs).to_pylist():
                riders.setdefault(r["doc"], []).append(r)
        docs, texts, provenances = (rows.column(c).to_pylist() for c in ("doc", "text", "provenance"))
        tokens = rows.column("tokens")
        for j, doc in enumerate(docs):
            ids = tokens[j].values.to_numpy(zero_copy_only=False)
            text = texts[j]
            meta = {"source": f"pretrain:{source['name']}", "is_instruction": False,
                    "provenance": json.loads(provenances[j])}
            extra, spans = 0, []
            if doc in riders:
                rows_of = riders[doc]
                text += "".join(r["text"] for r in rows_of)
                for r in rows_of:  # each pair's prompt, where its tokens follow the page's
                    spans += shifted(r["prompt_spans"], len(ids) + extra)
                    extra += r["length"]
                ids = np.concatenate([ids, *(np.asarray(r["tokens"], dtype=np.uint32) for r in rows_of)])
                meta["attached_instructions"] = [
                    {"source": f"instructions:{task['sources'][r['source']]['name']}", "tokens": r["length"],
                     "provenance": json.loads(r["provenance"])} for r in rows_of]
            doc_id = f"{source['name']}-{file:05d}-{doc:09d}"
            mask = loss_mask(len(ids), spans) if spans else None  # None: every token counts
            yield (doc_id, text, False, meta, ids, mask), len(ids) - extra, extra


class _UnitRange:
    """One source's units in one shard: from the previous shard's cut to this one's (resolved
    before any shard is written: `resolve_cuts`)."""

    def __init__(self, task: dict, source: int):
        spec = task["sources"][source]
        self.task, self.source, self.name = task, source, spec["name"]
        self.pieces = spec["pieces"]  # [epoch, chunk, units, first token, end token], lo's piece to hi's
        self.lo, self.hi = tuple(spec["lo"]), tuple(spec["hi"])  # (piece in self.pieces, unit in it)
        self.tokens = int(spec["tokens"])
        self.units = self.records = 0
        self.epochs: set[int] = set()

    def _url(self, p: int) -> str:
        epoch, chunk = self.pieces[p][0], self.pieces[p][1]
        return f"{_piece_base(self.task['sources'][self.source]['base'], epoch, chunk)}.parquet"

    def _span(self, p: int) -> tuple[int, int]:
        start = self.lo[1] if p == self.lo[0] else 0
        end = self.hi[1] if p == self.hi[0] else self.pieces[p][2]
        return start, end

    def documents(self, open_files: contextlib.ExitStack):
        """(writer arguments, tokens) of the range's units, in stream order."""
        from transforms.mix.loss_mask import loss_mask

        for p in range(self.lo[0], self.hi[0] + 1 if self.pieces else 0):
            start, end = self._span(p)
            if end <= start:
                continue
            epoch, chunk = self.pieces[p][0], self.pieces[p][1]
            fs, path = _fs(self._url(p), self.task["storage_options"])
            seen = 0
            for batch in pq.ParquetFile(open_files.enter_context(fs.open(path, "rb"))).iter_batches(batch_size=512):
                if seen + batch.num_rows <= start:
                    seen += batch.num_rows
                    continue
                for row in batch.to_pylist():
                    if start <= seen < end:
                        ids = np.asarray(row["tokens"], dtype=np.uint32)
                        meta = {"source": f"instructions:{self.name}", "is_instruction": True,
                                "provenance": json.loads(row["provenance"])}
                        mask = loss_mask(len(ids), row["prompt_spans"]) if row["prompt_spans"] else None
                        self.units += 1
                        self.records += row["records"]
                        self.epochs.add(epoch)
                        yield (f"{self.name}-e{epoch}-{chunk:05d}-{row['unit']:07d}", row["text"], True, meta,
                               ids, mask), len(ids)
                    seen += 1
                if seen >= end:
                    break

    def summary(self) -> dict:
        return {"units": self.units, "records": self.records, "tokens": self.tokens,
                "last_epoch": max(self.epochs) if self.epochs else -1}


# --- checks on the driver, before any task ------------------------------------------


def _output_of(config: MixConfig) -> StageOutput:
    """The output folder; refused at once when it is a file."""
    url = config.output.path
    if fsspec.utils.get_protocol(url) in ("file", "local"):
        url = os.path.abspath(os.path.expanduser(url.split("://", 1)[-1]))  # tasks may run in another folder
    out = StageOutput("mix", url, config.storage_options)
    if out.fs.isfile(out.root):
        raise MixError(f"output.path {config.output.path} is a file, not a folder; give a folder path "
                       "(it is created when missing)")
    return out


def _expand_sources(config: MixConfig) -> tuple[list[dict], list[dict]]:
    """Every source's files, so a path or glob that matches nothing stops the job before Spark starts."""
    from transforms.io.mix_inputs import MIX_ENDINGS, PRETRAIN_ENDINGS, expand_paths

    def expand(kind: str, index: int, name: str, path: str, endings) -> list[str]:
        try:
            return expand_paths([path], storage_options=config.storage_options, endings=endings)
        except (OSError, ValueError) as err:
            raise MixError(f"{kind}[{index}] ({name}): {_one_line(err)}; fix its path or glob in the config") from err

    pretrain_files = []
    for i, src in enumerate(config.pretrain):
        name = _source_name("pretrain", i, src.name)
        for path in expand("pretrain", i, name, src.path, PRETRAIN_ENDINGS):
            pretrain_files.append({"path": path, "text_field": src.text_field, "name": name})
    instructions = []
    for s, src in enumerate(config.instructions):
        name = _source_name("instructions", s, src.name)
        expand("instructions", s, name, src.path, MIX_ENDINGS)
        instructions.append({"path": src.path, "name": name, "source": s})
    return pretrain_files, instructions


def _surface_formats(config: MixConfig) -> tuple[str, list]:
    """The surface formats, compiled and probed in the sandbox on the driver: (file named in errors, formats)."""
    import yaml
    from jinja2.exceptions import TemplateError

    from templates import read_user_yaml
    from transforms.mix.render import PACKAGED_FORMATS, load_formats, parse_formats

    path = config.formats_file
    name = path or f"templates/{PACKAGED_FORMATS}"
    try:
        if path is None or fsspec.utils.get_protocol(path) in ("file", "local"):
            return name, load_formats(path)
        return name, parse_formats(read_user_yaml(path, path, "formats file", config.storage_options), path)
    except (ValueError, TemplateError, yaml.YAMLError) as err:
        raise MixError(f"formats_file: {_one_line(err)}; fix the file or leave formats_file out for the "
                       "packaged formats") from err


# The package each optional format is written with, and the extra that installs it.
_FORMAT_PACKAGES = {"datatrove": ("datatrove", "datatrove"), "mds": ("streaming", "mds")}


def _check_output_formats(config: MixConfig, tokenizer) -> int | None:
    """Each chosen format's package is installed and, for olmo, the tokenizer has the EOS token;
    returns that token's id (None without olmo). Checked here so a task never fails on it."""
    import importlib.util

    for fmt in config.output.formats:
        if fmt in _FORMAT_PACKAGES:
            module, extra = _FORMAT_PACKAGES[fmt]
            if importlib.util.find_spec(module) is None:
                raise MixError(f"output.formats: {fmt!r} is written with the {module!r} package, which is not "
                               f"installed; pip install 'instructmix[{extra}]' or leave {fmt!r} out")
    if "olmo" not in config.output.formats:
        return None
    eos = tokenizer.token_to_id(config.output.eos_token)
    if eos is None:
        raise MixError(f"output.eos_token: {config.output.eos_token!r} is not a token of {config.tokenizer}; "
                       "set output.eos_token to the tokenizer's end-of-text token (OLMo-core finds documents by it)")
    return int(eos)


def _fingerprinted(config: MixConfig) -> dict:
    """What decides the output: the config without where to read from and how to run Spark."""
    return config.model_dump(mode="json", exclude={"storage_options", "spark_conf"})


def _clean_relpaths(paths) -> set[str]:
    """Relative paths inside the output from a file we read back (never absolute, never `..`)."""
    out = set()
    for p in paths or []:
        if isinstance(p, str) and p and not p.startswith("/") and ".." not in p.split("/") \
                and not p.startswith(("_", ".")):
            out.add(p)
    return out


def _previous_outputs(out: StageOutput) -> set[str]:
    """Files earlier mix runs into this folder published or were about to publish.

    `_stats.json`'s `outputs`; the shards and card a `manifest.json` lists (a run
    killed before its `_stats.json`, or one of a version without it; only a
    manifest of the mixer's own shape counts); and the planned outputs of a run
    killed while writing (`_work/*/outputs.json`).
    """
    known = _clean_relpaths(out.previous_outputs())
    manifest = out.read_json(MANIFEST_FILE)
    if isinstance(manifest, dict) and "target_ratio" in manifest and isinstance(manifest.get("shards"), list):
        listed = [f.get("path") for s in manifest["shards"] if isinstance(s, dict)
                  for f in s.get("files") or [] if isinstance(f, dict)]
        for single in (manifest.get("dataset_card"), manifest.get("mds_index")):
            listed += [single.get("path")] if isinstance(single, dict) else []
        known |= _clean_relpaths(listed) | {MANIFEST_FILE}
    for pending in out.fs.glob(out.path(WORK_DIR, "*", PENDING_OUTPUTS)):
        known |= _clean_relpaths(out.read_json(pending[len(out.root):].lstrip("/")))
    return known


@contextlib.contextmanager
def _held(out: StageOutput):
    """`out.lock()`, with an output this job cannot write refused in one line."""
    try:
        out.acquire()
    except OSError as err:
        raise MixError(f"output.path {out.url} is not writable ({type(err).__name__}: {_one_line(err)}); "
                       "choose a folder this job may write to, or fix its permissions") from err
    try:
        yield out
    finally:
        out.release()


# --- the job -----------------------------------------------------------------------


def run_mix(config: MixConfig, master: str | None = None, spark=None, keep_work: bool = False,
            overwrite: bool = False) -> dict:
    """Run the whole mix; returns the manifest (also written to OUTPUT/manifest.json).

    `overwrite`: replace whatever the output holds (files this stage did not write
    included) instead of refusing; an output that overlaps an input is refused anyway.
    """
    from jobs.progress import log
    from transforms.tokenizer import load_tokenizer

    started = time.time()
    if warning := config.ratio_warning():
        log(f"[yellow]mix: warning: {warning}")
    out = _output_of(config)
    pretrain_files, instructions = _expand_sources(config)
    formats_name, formats = _surface_formats(config)
    tokenizer = load_tokenizer(config.tokenizer)
    eos_token_id = _check_output_formats(config, tokenizer)
    tokenizer_json = tokenizer.to_str()
    formats_data = [asdict(f) for f in formats]
    benchmarks = load_benchmarks(config.decontaminate, config.storage_options)
    digest = fingerprint("mix", _fingerprinted(config), hashlib.sha256(tokenizer_json.encode()).hexdigest(),
                         hashlib.sha256(json.dumps(formats_data, sort_keys=True).encode()).hexdigest(),
                         *([digest_of(benchmarks)] if benchmarks else []))
    with _held(out):
        previous = _previous_outputs(out)
        out.claim(inputs=[s.path for s in config.pretrain] + [s.path for s in config.instructions],
                  overwrite=overwrite, own=sorted(previous))
        if overwrite:  # as every stage's --overwrite: what the folder holds is replaced by this run's files
            previous |= set(out.listing())
        context = {"out": out, "digest": digest, "previous": previous, "formats_name": formats_name,
                   "formats": formats_data, "tokenizer": tokenizer, "tokenizer_json": tokenizer_json,
                   "eos_token_id": eos_token_id, "started": started, "benchmarks": benchmarks}
        return _run(config, context, pretrain_files, instructions, master, spark, keep_work)


def _run(config: MixConfig, ctx: dict, pretrain_files: list[dict], instructions: list[dict], master, spark,
         keep_work: bool) -> dict:
    from jobs.engines.spark import spark_session
    from jobs.engines.spark_tasks import run_tasks
    from jobs.progress import log, spark_task_progress
    from transforms.io.shard_writers import (
        LOSS_MASK_FORMATS,
        shard_file_paths,
        write_mds_index,
        write_parquet_dataset_card,
    )
    from transforms.mix.plan import chunk_tokens_for, layout_shards, standalone_targets
    from transforms.tokenizer import vocab_size

    out: StageOutput = ctx["out"]
    opts = config.storage_options
    work = out.work_dir(ctx["digest"])
    tokenizer_url = f"{work}/{TOKENIZER_COPY}"
    fs, path = _fs(tokenizer_url, opts)
    write_atomic(fs, path, ctx["tokenizer_json"].encode("utf-8"))
    for k, f in enumerate(pretrain_files):
        f["base"] = f"{work}/pretrain/{k:05d}"
    benchmarks = ctx.get("benchmarks")
    common = {"tokenizer": tokenizer_url, "storage_options": opts,
              "benchmark_index": benchmarks.publish(work, opts) if benchmarks else None}
    spark = spark or spark_session(master, "instructmix-mix", config.spark_conf)

    # A. Every pretraining file read once: token ids and chunk totals.
    chunk_tokens = chunk_tokens_for(config.output.shard_tokens)
    with spark_task_progress(spark, "tokenize pretraining files"):
        tokenized = run_tasks(spark, tokenize_pretrain_file,
                              [{**f, **common, "chunk_tokens": chunk_tokens} for f in pretrain_files])
    pretrain_tokens = sum(t["tokens"] for t in tokenized)
    if pretrain_tokens == 0:
        raise MixError(f"no pretraining text found in {[s.path for s in config.pretrain]}; check each "
                       "source's text_field and that its files hold text")

    # Plan: shards as ranges of chunks, from chunk totals alone (transforms/mix/plan.py).
    chunks = _ChunkIndex.of(tokenized)
    schedule = config.ratio_schedule()
    layout = layout_shards(chunks.tokens, schedule.at_many, config.output.shard_tokens)
    needed = float(layout.instruction_target.sum())
    total_weight = sum(s.weight for s in config.instructions)
    weights = [s.weight / total_weight for s in config.instructions]
    log(f"mix: {pretrain_tokens:,} pretraining tokens in {len(pretrain_files)} file(s), {len(chunks.tokens):,} "
        f"chunk(s), {layout.shards} shard(s); {needed:,.0f} instruction tokens needed for ratio "
        f"{_ratio_text(config)}")
    source_chunks = _instruction_chunks(config, instructions, ctx, work, common)

    # B. Pairs appended to the pages they came from, capped at each chunk's share.
    attached = np.zeros((len(instructions), len(chunks.tokens)), dtype=np.int64)
    attached_pairs = [0] * len(instructions)
    if config.placement == "source_document":
        attach_ctx = {**common, "work": work, "seed": config.seed, "weights": weights,
                      "chunk_targets": chunks.per_file(layout.chunk_instruction_target),
                      "source_names": [s["name"] for s in instructions],
                      "formats": ctx["formats"], "formats_name": ctx["formats_name"],
                      "loss_mask": config.output.loss_mask}
        with spark_task_progress(spark, "attach pairs to their pages"):
            summary = _attach(spark, attach_ctx, pretrain_files, source_chunks)
        for file, chunk, source, pairs, tokens in summary:
            attached[source, chunks.index(file, chunk)] += tokens
            attached_pairs[source] += pairs
    attached_per_shard = np.add.reduceat(attached, layout.starts[:-1], axis=1) if attached.size else attached
    targets = standalone_targets(layout, weights, attached_per_shard)

    # C. Instruction units, epoch by epoch, until each source covers its cumulative target.
    pieces = _materialize(spark, config, source_chunks, targets[:, -1], run_tasks, spark_task_progress)
    short = [(src, p) for src, p in zip(instructions, pieces) if p.tokens < targets[src["source"], -1]]
    if short:
        parts = []
        for src, p in short:
            need = int(np.ceil(targets[src["source"], -1] + attached[src["source"]].sum()))
            have = p.tokens + int(attached[src["source"]].sum())
            parts.append(f"{src['name']} ({src['path']}) needs {need:,} tokens, has {have:,} from {p.records:,} "
                         f"usable record(s) with max_repeat={config.max_repeat}, missing {need - have:,}"
                         + (f" (skipped rows: {dict(p.counters)})" if p.counters else ""))
        raise MixError(f"instruction sources cannot fill ratio {_ratio_text(config)} of {pretrain_tokens:,} "
                       f"pretraining tokens; nothing was written: {'; '.join(parts)}; add instruction data, "
                       "raise max_repeat or lower ratio")

    # C2. Each shard's end in each source's units, before anything is written.
    cuts = _resolve_cuts(spark, pieces, targets, opts, run_tasks, spark_task_progress)
    start = np.zeros(3, dtype=np.int64)

    # D. One task per shard: its chunks, its pages' pairs, its units between two cuts.
    loss_masks = config.output.loss_mask != "none"
    planned = shard_file_paths(config.output.formats, layout.shards, loss_masks) + [MANIFEST_FILE]
    _write_json(f"{work}/{PENDING_OUTPUTS}", planned, opts)
    vocab = vocab_size(ctx["tokenizer"])
    tasks = []
    for k in range(layout.shards):
        span = range(int(layout.starts[k]), int(layout.starts[k + 1]))
        files = sorted({int(chunks.file[j]) for j in span})
        tasks.append({
            "root": out.url, "shard": k, "num_shards": layout.shards, "formats": config.output.formats,
            "vocab_size": vocab, "loss_mask": config.output.loss_mask, "tokenizer_name": config.tokenizer,
            "eos_token_id": ctx["eos_token_id"], "storage_options": opts, "work": work, "done": f"{work}/shards/{k:05d}.json",
            "pretrain": [[f, pretrain_files[f]["name"], pretrain_files[f]["base"]] for f in files],
            "chunks": [[int(chunks.file[j]), int(chunks.chunk[j]), bool(attached[:, j].any())] for j in span],
            "pretrain_tokens": int(layout.pretrain_tokens[k]),
            "attached_tokens": int(attached_per_shard[:, k].sum()) if attached.size else 0,
            "sources": [p.view(cuts[s][k - 1] if k else start, cuts[s][k]) for s, p in enumerate(pieces)],
        })
    with spark_task_progress(spark, "write shards"):
        written = run_tasks(spark, write_shard, tasks)
    # The tasks wrote from other processes: listings this process cached (object stores) are stale.
    out.fs.invalidate_cache()

    total = sum(w["tokens"] for w in written)
    instruction_total = sum(w["instruction_tokens"] for w in written)
    summary = {"target_ratio": _overall_target(config, layout),
               "realized_ratio": instruction_total / total if total else 0.0,
               "docs": sum(w["docs"] for w in written), "tokens": total, "shards": layout.shards}
    card = mds_index = None
    with _named_errors(f"output {out.url}"):
        if "parquet" in config.output.formats:
            card = write_parquet_dataset_card(out.url, layout.shards, summary, opts).as_dict()
        if "mds" in config.output.formats:
            mds_index = write_mds_index(out.url, layout.shards, opts).as_dict()
    manifest, counters = _manifest(config, ctx["digest"], layout, written, pretrain_files, tokenized, instructions,
                                   pieces, attached, attached_pairs, card, summary)
    manifest["mds_index"] = mds_index
    manifest["loss_mask"] = {"kind": config.output.loss_mask,
                             "formats": [f for f in config.output.formats if f in LOSS_MASK_FORMATS] if loss_masks
                             else []}
    manifest["token_files"] = _token_files(config, vocab, ctx["eos_token_id"])
    outputs = [f["path"] for s in manifest["shards"] for f in s["files"]] + ([card["path"]] if card else [])
    outputs += [mds_index["path"]] if mds_index else []
    outputs.append(MANIFEST_FILE)
    # Before the new manifest names the new files: every reader then sees exactly those.
    removed = out.remove_stale(outputs, sorted(ctx["previous"]))
    if removed:
        log(f"mix: removed {len(removed)} file(s) of the previous run that this run did not write again")
    out.write_json(MANIFEST_FILE, manifest)
    elapsed = time.time() - ctx["started"]
    out.write_json(STATS_FILE, stats_document(
        "mix", counters, run_id=out.run_id, fingerprint=ctx["digest"], elapsed_seconds=elapsed, outputs=outputs,
        details={"target_ratio": summary["target_ratio"], "realized_ratio": summary["realized_ratio"],
                 "manifest": MANIFEST_FILE, "removed_stale": removed,
                 **({"decontaminate": benchmarks.details()} if benchmarks else {})}))
    if not keep_work:
        out.remove_work()
    log(f"mix: wrote {layout.shards} shard(s), {total:,} tokens, realized ratio "
        f"{summary['realized_ratio']:.4f} (target {_ratio_text(config)}) -> {out.url} [{elapsed:.1f}s]")
    return manifest


def _token_files(config: MixConfig, vocab: int, eos_token_id: int | None) -> dict:
    """What a trainer's data config must say to read the token-id formats written (dtypes, EOS)."""
    from transforms.io.shard_writers import (
        datatrove_token_size,
        megatron_token_dtype,
        olmo_token_dtype,
        unsigned_token_dtype,
    )

    formats = config.output.formats
    out: dict = {"vocab_size": vocab}
    if "megatron" in formats:
        out["megatron"] = {"dtype": megatron_token_dtype(vocab).name}
    if "datatrove" in formats:
        out["datatrove"] = {"token_size": datatrove_token_size(vocab)}
    if "olmo" in formats:
        out["olmo"] = {"dtype": olmo_token_dtype(vocab).name, "eos_token": config.output.eos_token,
                       "eos_token_id": eos_token_id}
    if "mds" in formats:
        out["mds"] = {"tokens": f"ndarray:{unsigned_token_dtype(vocab).name}"}
    return out


def _ratio_text(config: MixConfig) -> str:
    schedule = config.ratio_schedule()
    if schedule.is_constant:
        return f"{schedule.steps[0].ratio}"
    return " -> ".join(f"{s.ratio}{' (ramp)' if s.ramp else ''} until {s.until}" for s in schedule.steps)


def _overall_target(config: MixConfig, layout) -> float:
    """The configured ratio; for a schedule, its token-weighted mean over the planned shards."""
    schedule = config.ratio_schedule()
    if schedule.is_constant:
        return schedule.steps[0].ratio
    total = float(layout.pretrain_tokens.sum() + layout.instruction_target.sum())
    return float(layout.instruction_target.sum()) / total if total else 0.0


class _ChunkIndex:
    """The pretraining chunks in stream order (file order, then chunk order), as flat arrays."""

    def __init__(self, file: np.ndarray, tokens: np.ndarray, files: int):
        self.file = np.asarray(file, dtype=np.int64)
        self.tokens = np.asarray(tokens, dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(np.bincount(self.file, minlength=files))]).astype(np.int64)
        self.chunk = np.arange(len(self.tokens)) - self.offsets[self.file]

    @classmethod
    def of(cls, tokenized: list[dict]) -> _ChunkIndex:
        """From the tokenize tasks' results ([documents, tokens] per chunk of each file)."""
        counts = [len(t["chunks"]) for t in tokenized]
        tokens = [c[1] for t in tokenized for c in t["chunks"]]
        return cls(np.repeat(np.arange(len(tokenized)), counts), np.asarray(tokens, dtype=np.int64), len(tokenized))

    def index(self, file: int, chunk: int) -> int:
        return int(self.offsets[file] + chunk)

    def per_file(self, values: np.ndarray) -> list[list[float]]:
        return [values[self.offsets[f]: self.offsets[f + 1]].tolist() for f in range(len(self.offsets) - 1)]


def _instruction_chunks(config: MixConfig, instructions: list[dict], ctx: dict, work: str,
                        common: dict) -> list[list[dict]]:
    """Each source's chunks (its files, in sorted order) as materialize tasks for epoch 0."""
    from transforms.io.mix_inputs import expand_paths

    out = []
    for src in instructions:
        parts = [(file, groups) for file in expand_paths([src["path"]], config.storage_options)
                 for groups in _parquet_chunks(file, config.storage_options)]
        out.append([{
            **common, "file": file, "row_groups": groups, "source": src["source"], "chunk": c, "name": src["name"],
            "source_names": [s["name"] for s in instructions], "formats": ctx["formats"],
            "formats_name": ctx["formats_name"], "seed": config.seed, "pack": config.pack,
            "loss_mask": config.output.loss_mask,
            "attached_ids": _attached_ids_url(work, src["source"], c) if config.placement == "source_document" else None,
            "units_dir": f"{work}/units/{src['source']:03d}",
        } for c, (file, groups) in enumerate(parts)])
    return out


def _parquet_chunks(file: str, options: dict) -> list[list[int] | None]:
    """A Parquet file's chunks as [first, end) row groups (its footer alone is read); [None] for
    any other file, which is one chunk (a JSON Lines file cannot be split without reading it)."""
    from transforms.io.paths import file_format
    from transforms.mix.plan import row_group_chunks

    try:
        if file_format(file, (".parquet",)) != "parquet":
            return [None]
        fs, path = _fs(file, options)
        with fs.open(path, "rb") as f:
            meta = pq.ParquetFile(f).metadata
    except (OSError, ValueError, pa.ArrowException):
        return [None]  # unreadable: the materialize task counts it as its reader does
    return [list(g) for g in row_group_chunks([meta.row_group(i).num_rows for i in range(meta.num_row_groups)])]


def _attach(spark, ctx: dict, pretrain_files: list[dict], source_chunks: list[list[dict]]) -> list[list[int]]:
    """The Spark join of pages and pairs by URL key; [file, chunk, source, pairs, tokens] kept per page chunk."""
    opts, work = ctx["storage_options"], ctx["work"]
    done = f"{work}/attached.json"
    previous = read_json(done, opts)
    if previous is not None:
        return previous
    from pyspark.sql import functions as F

    from jobs.engines.spark import task_frame

    sc = spark.sparkContext
    files = {k: {"base": f["base"], "storage_options": opts} for k, f in enumerate(pretrain_files)}
    record_tasks = {n: c for n, c in enumerate(c for chunks in source_chunks for c in chunks)}
    pages = task_frame(spark, len(files), len(files)) \
        .mapInArrow(lambda it: _page_keys(it, files), _ddl(_PAGE_KEYS))
    # A page that appears twice gets its pairs once, at its first occurrence.
    first = pages.groupBy("url_key").agg(F.min(F.struct("file", "doc", "chunk")).alias("page"))
    records = task_frame(spark, len(record_tasks), len(record_tasks)) \
        .mapInArrow(lambda it: _record_keys(it, record_tasks), _ddl(_RECORD_KEYS))
    partitions = max(1, min(len(files), sc.defaultParallelism * 4))
    matches = first.join(records, "url_key").select(
        F.col("page.file").alias("file"), F.col("page.chunk").alias("chunk"), F.col("page.doc").alias("doc"),
        "source", "rchunk", "record", "payload")
    kept = matches.repartition(partitions, "file", "chunk") \
        .sortWithinPartitions("file", "chunk", "doc", "source", "rchunk", "record") \
        .mapInArrow(lambda it: attach_to_pages(it, ctx), _ddl(_MATCHES)).persist()
    try:
        rows = kept.filter("kind != 1").collect()
        errors = sorted((r["file"], r["chunk"], r["message"]) for r in rows if r["kind"] == 2)
        if errors:
            raise MixError(errors[0][2])
        kept.filter("kind = 1").repartition(partitions, "source", "rchunk") \
            .mapInArrow(lambda it: write_attached_ids(it, ctx), _ddl(_ID_FILES)).count()
    finally:
        kept.unpersist()
    summary = sorted([r["file"], r["chunk"], r["source"], r["record"], r["tokens"]] for r in rows)
    _write_json(done, summary, opts)
    return summary


class _SourcePieces:
    """One source's unit stream: pieces (a chunk in an epoch) in the seeded two-level order."""

    def __init__(self, name: str, units_dir: str):
        self.name, self.units_dir = name, units_dir
        self.rows: list[list] = []  # [epoch, chunk, units, first token, end token]
        self.records = 0
        self.counters: Counter = Counter()
        self.formats: Counter = Counter()
        self._ends: np.ndarray | None = None  # cumulative end tokens of each piece

    @property
    def tokens(self) -> int:
        return int(self.rows[-1][4]) if self.rows else 0

    def add_epoch(self, epoch: int, results: list[dict], order: np.ndarray) -> None:
        for c in order:
            r = results[int(c)]
            start = self.tokens
            self.rows.append([epoch, int(c), r["units"], start, start + r["tokens"]])
            self.formats.update(r["formats"])
            if epoch == 0:
                self.records += r["records"]
                self.counters.update(r["counters"])

    @property
    def ends(self) -> np.ndarray:
        if self._ends is None or len(self._ends) != len(self.rows):
            self._ends = np.asarray([r[4] for r in self.rows], dtype=np.float64)
        return self._ends

    def view(self, lo: np.ndarray, hi: np.ndarray) -> dict:
        """A write task's view of the units between two cuts, each (piece, unit, tokens before it)."""
        first, last = (int(lo[0]), int(hi[0])) if self.rows else (0, -1)
        return {"name": self.name, "base": self.units_dir, "pieces": self.rows[first: last + 1],
                "lo": [0, int(lo[1])], "hi": [last - first, int(hi[1])], "tokens": int(hi[2] - lo[2])}


def _resolve_cuts(spark, pieces: list[_SourcePieces], targets: np.ndarray, opts: dict, run_tasks,
                  progress) -> list[np.ndarray]:
    """Every shard's end cut in every source: [shards, 3] arrays of (piece, unit, tokens before it).

    Tasks bracket each source's targets by the unit boundaries below and above them, reading
    only the length columns of the pieces they fall in (`_cut_tasks`); the driver then picks
    the cuts from their answers (`_pick_cuts`).
    """
    tasks, want = _cut_tasks(pieces, targets, opts)
    with progress(spark, "cut instruction units at each shard's end"):
        results = run_tasks(spark, resolve_cuts, tasks)
    return _pick_cuts(tasks, results, want)


def _cut_tasks(pieces: list[_SourcePieces], targets: np.ndarray, opts: dict) -> tuple[list[dict], np.ndarray]:
    """`resolve_cuts` tasks, each source's targets grouped by the piece they fall in, and the
    targets kept within what each source has."""
    from transforms.mix.plan import locate

    want = np.zeros(targets.shape)
    tasks = []
    for s, p in enumerate(pieces):
        want[s] = np.clip(targets[s], 0.0, float(p.tokens))
        if not p.rows:
            continue
        by_piece: dict[int, list] = {}
        for k, (piece, target) in enumerate(zip(locate(p.ends, want[s]).tolist(), want[s].tolist())):
            by_piece.setdefault(piece, []).append([k, target])
        groups = sorted(by_piece.items())
        tasks += [{"source": s, "name": p.name, "base": p.units_dir, "storage_options": opts,
                   "pieces": [[piece, p.rows[piece], ts] for piece, ts in groups[i: i + RESOLVE_PIECES_PER_TASK]]}
                  for i in range(0, len(groups), RESOLVE_PIECES_PER_TASK)]
    return tasks, want


def _pick_cuts(tasks: list[dict], results: list[dict], want: np.ndarray) -> list[np.ndarray]:
    """Per cut, each source's side that brings the instruction total closest to its target
    (transforms.mix.plan.choose_cuts); each source's cuts kept from going back."""
    from transforms.mix.plan import choose_cuts, monotone_cuts

    sources, shards = want.shape
    below = np.zeros((sources, shards, 3), dtype=np.int64)  # (piece, unit, tokens)
    above = np.zeros_like(below)
    for task, result in zip(tasks, results):
        for k, piece, lo, lo_tokens, hi, hi_tokens in result["cuts"]:
            below[task["source"], k] = (piece, lo, lo_tokens)
            above[task["source"], k] = (piece, hi, hi_tokens)
    chosen = np.empty_like(below)
    for k in range(shards):
        up = choose_cuts(below[:, k, 2], above[:, k, 2], want[:, k])
        chosen[:, k] = np.where(up[:, None], above[:, k], below[:, k])
    return [chosen[s][monotone_cuts(chosen[s, :, 2])] for s in range(sources)]


def _materialize(spark, config: MixConfig, source_chunks: list[list[dict]], needs: np.ndarray, run_tasks,
                 progress) -> list[_SourcePieces]:
    """Epoch 0 of every source chunk; then, for a source still short, as many further epochs
    (at most max_repeat in all) as epoch 0's tokens say it needs, in one round, and one more
    epoch per round while it is still short (surface formats change lengths a little).

    Chunk order within an epoch is a seeded permutation per (source, epoch), record
    order within a chunk one per (source, epoch, chunk): the same whatever the parallelism.
    """
    pieces = [_SourcePieces(chunks[0]["name"] if chunks else "", chunks[0]["units_dir"] if chunks else "")
              for chunks in source_chunks]
    epochs_done = [0] * len(pieces)
    while True:
        rounds: dict[int, list[int]] = {}
        for s, p in enumerate(pieces):
            done = epochs_done[s]
            if not source_chunks[s] or done >= config.max_repeat or (done and (p.tokens >= needs[s] or not p.tokens)):
                continue
            more = 1 if not done else max(1, int(np.ceil((needs[s] - p.tokens) / (p.tokens / done))))
            rounds[s] = list(range(done, min(config.max_repeat, done + more)))
        if not rounds:
            return pieces
        tasks = [{**c, "epochs": epochs} for s, epochs in rounds.items() for c in source_chunks[s]]
        first, last = min(min(e) for e in rounds.values()) + 1, max(max(e) for e in rounds.values()) + 1
        with progress(spark, f"render + tokenize instructions (epoch {first}{f'-{last}' if last > first else ''})"):
            results = [piece for r in run_tasks(spark, materialize_units, tasks) for piece in r["pieces"]]
        by_epoch: dict[tuple[int, int], list[dict]] = {}
        for r in results:  # task order: chunk order within each (source, epoch)
            by_epoch.setdefault((r["source"], r["epoch"]), []).append(r)
        for s, epochs in rounds.items():
            for e in epochs:
                mine = by_epoch[(s, e)]
                pieces[s].add_epoch(e, mine, np.random.default_rng([config.seed, s, e, 1 << 21]).permutation(len(mine)))
            epochs_done[s] = epochs[-1] + 1


def _skip_counters(counters: Counter, what: str, *key: str) -> Counter:
    """A reader's `reason:detail` counts as `mix.<what>[.<key>].reason.detail` (transforms/stats.py)."""
    out: Counter = Counter()
    for name, count in counters.items():
        out[counter_name("mix", what, *key, *str(name).split(":", 1))] += int(count)
    return out


def _manifest(config, digest, layout, written, pretrain_files, tokenized, instructions, pieces, attached,
              attached_pairs, card, summary) -> tuple[dict, Counter]:
    """The trainer-facing manifest, and the stage's counters for `_stats.json`."""
    counters: Counter = Counter()
    for t in tokenized:
        counters.update(_skip_counters(Counter(t["counters"]), "pretrain"))
    counters[counter_name("mix", "pretrain", "files")] = len(pretrain_files)
    counters[counter_name("mix", "pretrain", "documents")] = sum(t["docs"] for t in tokenized)
    counters[counter_name("mix", "pretrain", "tokens")] = sum(t["tokens"] for t in tokenized)
    counters[counter_name("mix", "pretrain", "chunks")] = len(layout.chunk_instruction_target)
    sources = []
    for s, (src, p) in enumerate(zip(instructions, pieces)):
        used = [w["sources"][s] for w in written]
        attached_tokens = int(attached[s].sum())
        entry = {
            "name": src["name"], "path": src["path"], "weight": config.instructions[src["source"]].weight,
            "records": p.records, "chunks": len({r[1] for r in p.rows}),
            "documents_used": sum(u["units"] for u in used),
            "records_used": sum(u["records"] for u in used) + attached_pairs[s],
            "tokens_used": sum(u["tokens"] for u in used) + attached_tokens,
            "attached_pairs": attached_pairs[s], "attached_tokens": attached_tokens,
            "repeats": max((u["last_epoch"] for u in used), default=-1) + 1, "formats_rendered": dict(p.formats),
        }
        sources.append(entry)
        key = src["name"].replace(".", "_")
        counters.update(_skip_counters(p.counters, "instructions", key))
        for what in ("records", "documents_used", "tokens_used"):
            counters[counter_name("mix", "instructions", key, what)] = entry[what]
    targets = layout.target_ratio()
    shard_entries = []
    for result, target in zip(written, targets):
        shard_entries.append({
            "name": f"part-{result['shard']:05d}", "docs": result["docs"], "tokens": result["tokens"],
            "instruction_docs": result["instruction_docs"], "instruction_tokens": result["instruction_tokens"],
            "attached_instruction_tokens": result["attached_tokens"],
            "ratio": result["instruction_tokens"] / result["tokens"] if result["tokens"] else 0.0,
            "target_ratio": round(float(target), 6),
            "files": result["files"],
        })
    counters[counter_name("mix", "output", "shards")] = len(written)
    counters[counter_name("mix", "output", "documents")] = summary["docs"]
    counters[counter_name("mix", "output", "tokens")] = summary["tokens"]
    counters[counter_name("mix", "output", "instruction_tokens")] = sum(w["instruction_tokens"] for w in written)
    schedule = config.ratio_schedule()
    manifest = {
        "fingerprint": digest,
        "seed": config.seed,
        "target_ratio": summary["target_ratio"],
        "ratio_schedule": None if schedule.is_constant else schedule.as_dict(),
        "realized_ratio": summary["realized_ratio"],
        "tokenizer": config.tokenizer,
        "formats": config.output.formats,
        "docs": summary["docs"],
        "tokens": summary["tokens"],
        "pretrain": {
            "files": len(pretrain_files),
            "docs": sum(t["docs"] for t in tokenized),
            "tokens": sum(t["tokens"] for t in tokenized),
            # Each configured source by the path the user gave, so a reader (the report)
            # can say what went in.
            "sources": [{"name": _source_name("pretrain", i, src.name), "path": src.path,
                         "files": sum(f["name"] == _source_name("pretrain", i, src.name) for f in pretrain_files)}
                        for i, src in enumerate(config.pretrain)],
        },
        "instructions": sources,
        "dataset_card": card,
        "shards": shard_entries,
        "stats": STATS_FILE,
    }
    return manifest, counters
