"""The mixer's output shard writers: JSONL.zst, Hugging Face Parquet, Megatron .bin/.idx.

The mixer hands every enabled writer the same ordered documents of one output
shard (`add`), then `close()`s it, or `abort()`s it when the task fails. Each
writer is the one home of its format and writes what the trainer reading that
format loads without conversion:

    root/jsonl.zst/part-00000.jsonl.zst                 {"id","text","metadata"} per line
    root/parquet/data/train-00000-of-00002.parquet      id, text, is_instruction
    root/parquet/README.md                              dataset card (`configs:` block)
    root/megatron/part-00000.bin + .idx                 IndexedDataset(prefix) ("MMIDIDX")

`root` is a local folder or any fsspec URL (`s3://bucket/mix`, `gs://…`,
`hdfs://…`; `storage_options` as the config gives them). Every format is
written as a local file first (Parquet's footer and Megatron's index are
written after the data, and zstd streams best to a local file), then
published by `StagedFile`: on local disk it is written under a hidden
temporary name in its final folder (`.part-00000.jsonl.zst.tmp`: a leading
"." so Hugging Face, pyarrow and Spark skip it, and no glob for final names
matches it) and renamed in `close()`; on an object store it is written in the
local temp folder and uploaded in one `put_file`, which makes the object
appear whole or not at all. Either way a final name always means a complete
file. Nothing time- or host-dependent goes into a file: the same documents
give byte-identical shards, which is what the mixer's sha256 manifest promises.
"""

from __future__ import annotations

import array
import contextlib
import hashlib
import json
import os
import struct
import tempfile
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import zstandard
from fsspec.implementations.local import LocalFileSystem

from transforms.records import MIXED_DOC_SCHEMA

__all__ = [
    "PARQUET_SCHEMA",
    "JsonlZstShardWriter",
    "MegatronShardWriter",
    "ParquetShardWriter",
    "ShardWriter",
    "StagedFile",
    "WrittenFile",
    "megatron_token_dtype",
    "shard_file_paths",
    "write_parquet_dataset_card",
]

DATASET_CARD = "parquet/README.md"


@dataclass
class WrittenFile:
    """One finished output file, as the mixer's manifest lists it."""

    path: str  # relative to the output root, "/"-separated
    bytes: int
    sha256: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class ShardWriter(Protocol):
    """What the mixer calls on every enabled writer of one output shard."""

    def add(
        self, doc_id: str, text: str, is_instruction: bool, metadata: dict, tokens: np.ndarray
    ) -> None: ...

    def close(self) -> list[WrittenFile]: ...

    def abort(self) -> None: ...


class StagedFile:
    """A final output path under `root` (local or fsspec URL) and the local file it is written to until published.

    `temp` is a local path the caller writes with ordinary file APIs. On local
    disk it is the hidden `.NAME.tmp` beside the final file, renamed in
    `publish()`; elsewhere it is a file in the local temp folder, uploaded in
    `publish()` (an object store's PUT is atomic) and then deleted. The mixer's
    work cache uses the same class for its token and unit files.
    """

    def __init__(self, root: str, relpath: str, storage_options: dict | None = None) -> None:
        self.relpath = relpath
        self.fs, base = fsspec.core.url_to_fs(root, **(storage_options or {}))
        self.final = "/".join([base.rstrip("/"), *relpath.split("/")])
        folder, name = self.final.rsplit("/", 1)
        self.local = isinstance(self.fs, LocalFileSystem)
        if self.local:
            self.temp = f"{folder}/.{name}.tmp"
            os.makedirs(folder, exist_ok=True)
        else:
            fd, self.temp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp")
            os.close(fd)

    def publish(self) -> WrittenFile:
        """Hash and fsync the finished temp file, then rename or upload it to its final name."""
        digest = hashlib.sha256()
        size = 0
        with open(self.temp, "rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
                size += len(chunk)
            # Without this, a crash soon after the rename can leave a truncated file
            # under the final name, which a re-run would then take as finished.
            os.fsync(f.fileno())
        if self.local:
            os.replace(self.temp, self.final)
        else:
            try:
                self.fs.makedirs(self.final.rsplit("/", 1)[0], exist_ok=True)  # a no-op on object stores
                self.fs.put_file(self.temp, self.final)
            finally:
                self.discard()
        return WrittenFile(path=self.relpath, bytes=size, sha256=digest.hexdigest())

    def discard(self) -> None:
        try:
            os.remove(self.temp)
        except FileNotFoundError:
            pass


def _check_shard(shard: int, num_shards: int | None = None) -> None:
    if (
        not isinstance(shard, (int, np.integer))
        or shard < 0
        or (num_shards is not None and shard >= num_shards)
    ):
        bound = f"in [0, {num_shards})" if num_shards is not None else ">= 0"
        raise ValueError(f"shard must be an integer {bound}, got {shard!r}")


class _Lifecycle:
    """open -> closed | aborted; `add`/`close` on a finished writer is a bug in the caller.

    A writer names its files in `_staged` (in publish order) and says how to finish
    them (`_finish`) and how to let go of them after a failure (`_release`); closing
    publishes every staged file, aborting discards them.
    """

    _state = "open"
    _staged: tuple[StagedFile, ...] = ()

    def _require_open(self, action: str) -> None:
        if self._state != "open":
            raise RuntimeError(
                f"{type(self).__name__}: cannot {action} a writer that is already {self._state}"
            )

    def _finish(self) -> None:
        """Flush and close the open handles; the staged files are then complete."""
        raise NotImplementedError

    def _release(self) -> None:
        """Close the open handles after a failure; the task is already failing, so a close
        error must not hide that, and the files are deleted anyway."""
        raise NotImplementedError

    def close(self) -> list[WrittenFile]:
        self._require_open("close")
        self._finish()
        written = [staged.publish() for staged in self._staged]
        self._state = "closed"
        return written

    def abort(self) -> None:
        if self._state != "open":
            return
        self._state = "aborted"
        self._release()
        for staged in self._staged:
            staged.discard()


class JsonlZstShardWriter(_Lifecycle):
    """`root/jsonl.zst/part-{shard:05d}.jsonl.zst`: one compact JSON object per line.

    Lines are `{"id", "text", "metadata"}` in that key order, UTF-8 (not
    \\u-escaped), the layout dolma and datatrove readers expect. Compressed as one
    streaming zstd frame with a content checksum, so memory stays flat whatever
    the shard size and a truncated copy fails loudly on read. A shard with no
    documents is one valid empty frame.
    """

    FORMAT = "jsonl.zst"

    @staticmethod
    def relpaths(shard: int, num_shards: int | None = None) -> list[str]:
        return [f"jsonl.zst/part-{shard:05d}.jsonl.zst"]

    def __init__(self, root: str, shard: int, level: int = 3, storage_options: dict | None = None) -> None:
        _check_shard(shard)
        self.shard = int(shard)
        self._out = StagedFile(root, self.relpaths(self.shard)[0], storage_options)
        self._staged = (self._out,)
        self._raw = open(self._out.temp, "wb")  # noqa: SIM115 - open across add() calls until close()
        compressor = zstandard.ZstdCompressor(level=level, write_checksum=True)
        self._zst = compressor.stream_writer(self._raw, closefd=False)

    def add(
        self, doc_id: str, text: str, is_instruction: bool, metadata: dict, tokens: np.ndarray | None = None
    ) -> None:
        self._require_open("add to")
        line = json.dumps(
            {"id": doc_id, "text": text, "metadata": metadata}, ensure_ascii=False, separators=(",", ":")
        )
        self._zst.write(line.encode("utf-8") + b"\n")

    def _finish(self) -> None:
        self._zst.close()  # ends the frame; closefd=False leaves self._raw open
        self._raw.close()

    def _release(self) -> None:
        # The frame is left unfinished: the file is deleted.
        with contextlib.suppress(OSError):
            self._raw.close()


# The Parquet shard's columns. `is_instruction` lets a trainer or an analysis
# recount the realized mix ratio straight from the published files.
# The mixed corpus's Parquet columns are defined with every other record schema.
PARQUET_SCHEMA = MIXED_DOC_SCHEMA


class ParquetShardWriter(_Lifecycle):
    """`root/parquet/data/train-{shard:05d}-of-{num_shards:05d}.parquet`, Hugging Face's shard naming.

    Rows are buffered up to `row_group_rows` and flushed as one zstd row group,
    so memory is bounded by one row group. pyarrow puts no timestamp or uuid in
    the file (only `created_by`, its version, and the Arrow schema), so output
    is byte-identical for the same documents and pyarrow version. A shard with
    no documents is a valid file with the schema and 0 rows.
    """

    FORMAT = "parquet"

    @staticmethod
    def relpaths(shard: int, num_shards: int) -> list[str]:
        return [f"parquet/data/train-{shard:05d}-of-{num_shards:05d}.parquet"]

    def __init__(
        self, root: str, shard: int, num_shards: int, row_group_rows: int = 10_000,
        storage_options: dict | None = None,
    ) -> None:
        _check_shard(shard, num_shards)
        if row_group_rows < 1:
            raise ValueError(f"row_group_rows must be >= 1, got {row_group_rows}")
        self.shard = int(shard)
        self.row_group_rows = row_group_rows
        self._out = StagedFile(root, self.relpaths(self.shard, num_shards)[0], storage_options)
        self._staged = (self._out,)
        # No dictionary pages: ids and texts do not repeat, and a dictionary that fails costs
        # time to write and to read.
        self._writer = pq.ParquetWriter(self._out.temp, PARQUET_SCHEMA, compression="zstd", use_dictionary=False)
        self._ids: list[str] = []
        self._texts: list[str] = []
        self._flags: list[bool] = []

    def add(
        self, doc_id: str, text: str, is_instruction: bool, metadata: dict, tokens: np.ndarray | None = None
    ) -> None:
        self._require_open("add to")
        self._ids.append(doc_id)
        self._texts.append(text)
        self._flags.append(bool(is_instruction))
        if len(self._ids) >= self.row_group_rows:
            self._flush()

    def _flush(self) -> None:
        if not self._ids:
            return
        batch = pa.record_batch([self._ids, self._texts, self._flags], schema=PARQUET_SCHEMA)
        self._writer.write_batch(batch, row_group_size=self.row_group_rows)
        self._ids, self._texts, self._flags = [], [], []

    def _finish(self) -> None:
        self._flush()
        self._writer.close()

    def _release(self) -> None:
        with contextlib.suppress(OSError, pa.ArrowException):
            self._writer.close()


def _card_cell(value: Any) -> str:
    """A summary value as given, made safe for one Markdown table cell."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text.replace("|", "\\|").replace("\n", " ")


def write_parquet_dataset_card(
    root: str, num_shards: int, summary: dict, storage_options: dict | None = None
) -> WrittenFile:
    """Write `root/parquet/README.md`, the dataset card `datasets.load_dataset(root/parquet)` reads.

    Its `configs:` block maps split `train` to `data/train-*`, so the Hub and
    `load_dataset` take exactly the shards and never a stray file beside them.
    The summary (target and realized ratio, documents, tokens, ...) is
    rendered as given, in the given order; nothing is computed here.
    """
    staged = StagedFile(root, DATASET_CARD, storage_options)
    lines = [
        "---",
        "configs:",
        "- config_name: default",
        "  data_files:",
        "  - split: train",
        "    path: data/train-*",
        "---",
        "",
        "# instructmix mixture",
        "",
        "A pretraining text stream with instruction–response documents mixed in by instructmix.",
        (
            f"Split `train`: {num_shards} Parquet shard{'s' if num_shards != 1 else ''}, "
            f"`data/train-NNNNN-of-{num_shards:05d}.parquet`."
        ),
        "",
        "| column | type | meaning |",
        "|---|---|---|",
        "| `id` | string | document id |",
        "| `text` | string | document text |",
        "| `is_instruction` | bool | true for the instruction–response documents the mixer added |",
        "",
        "## Mixture",
        "",
        "| | |",
        "|---|---|",
        *(f"| {_card_cell(key)} | {_card_cell(value)} |" for key, value in summary.items()),
        "",
    ]
    try:
        with open(staged.temp, "w", encoding="utf-8", newline="\n") as f:
            f.write("\n".join(lines))
        return staged.publish()
    except BaseException:
        staged.discard()
        raise


# Megatron's .idx layout (megatron/core/datasets/indexed_dataset.py, _IndexWriter).
_MEGATRON_INDEX_HEADER = b"MMIDIDX\x00\x00"
_MEGATRON_INDEX_VERSION = 1
# Megatron's DType enum codes, for the two token dtypes its optimal_dtype picks.
_MEGATRON_DTYPE_CODES = {"uint16": 8, "int32": 4}
_INT32_MAX = 2**31 - 1


def megatron_token_dtype(vocab_size: int) -> np.dtype:
    """The .bin token dtype Megatron's own preprocessing picks for this vocabulary.

    Mirrors `DType.optimal_dtype(vocab_size)`: uint16 below 65500 (Megatron's
    threshold, not 65536), else int32.
    """
    return np.dtype(np.uint16) if vocab_size < 65500 else np.dtype(np.int32)


class MegatronShardWriter(_Lifecycle):
    """`root/megatron/part-{shard:05d}.bin` and `.idx`, read by Megatron's `IndexedDataset(prefix)`.

    One sequence per document. Token ids are streamed to the .bin as they come;
    only the per-document lengths (4 bytes each) are kept for the .idx, written
    in `close()`. Files match what Megatron's `IndexedDatasetBuilder` writes for
    the same documents byte for byte. A shard with no documents is an empty .bin
    and an .idx with 0 sequences; numpy cannot mmap an empty file, so that
    prefix opens only with `IndexedDataset(prefix, mmap=False)` and must not be
    passed to a trainer's `--data-path`.
    """

    FORMAT = "megatron"

    @staticmethod
    def relpaths(shard: int, num_shards: int | None = None) -> list[str]:
        return [f"megatron/part-{shard:05d}.bin", f"megatron/part-{shard:05d}.idx"]

    def __init__(self, root: str, shard: int, vocab_size: int, storage_options: dict | None = None) -> None:
        _check_shard(shard)
        if not isinstance(vocab_size, (int, np.integer)) or not 0 < vocab_size <= _INT32_MAX + 1:
            raise ValueError(f"vocab_size must be an integer in [1, 2**31], got {vocab_size!r}")
        self.shard = int(shard)
        self.vocab_size = int(vocab_size)
        self.dtype = megatron_token_dtype(self.vocab_size).newbyteorder("<")
        bin_path, idx_path = self.relpaths(self.shard)
        self._bin = StagedFile(root, bin_path, storage_options)
        self._idx = StagedFile(root, idx_path, storage_options)
        # .idx last: a reader that sees the index can trust the .bin beside it.
        self._staged = (self._bin, self._idx)
        self._bin_file = open(self._bin.temp, "wb")  # noqa: SIM115 - open across add() calls until close()
        self._lengths = array.array("i")
        assert self._lengths.itemsize == 4, "array('i') must be int32 for the .idx sequence lengths"

    def add(self, doc_id: str, text: str, is_instruction: bool, metadata: dict, tokens: np.ndarray) -> None:
        self._require_open("add to")
        tokens = np.asarray(tokens)
        if tokens.ndim != 1 or not np.issubdtype(tokens.dtype, np.integer):
            raise ValueError(
                f"megatron shard {self.shard}: document {doc_id!r}: tokens must be a 1-D integer array, "
                f"got dtype {tokens.dtype} with shape {tokens.shape}"
            )
        if tokens.size:
            low, high = int(tokens.min()), int(tokens.max())
            if low < 0 or high >= self.vocab_size:
                bad = low if low < 0 else high
                raise ValueError(
                    f"megatron shard {self.shard}: document {doc_id!r} has token id {bad}, outside "
                    f"[0, {self.vocab_size}) for vocab_size {self.vocab_size} ({self.dtype.name} .bin); "
                    "set vocab_size to the tokenizer's full vocabulary, added tokens included"
                )
        self._bin_file.write(tokens.astype(self.dtype, copy=False).tobytes())
        self._lengths.append(tokens.size)

    def _index_bytes(self) -> list[bytes]:
        lengths = np.frombuffer(self._lengths, dtype=np.int32)
        count = len(lengths)
        # Pointers are byte offsets of each sequence in the .bin: the running sum of
        # the lengths before it, times the token size; int64 so large shards don't wrap.
        pointers = np.zeros(count, dtype="<i8")
        if count > 1:
            np.cumsum(lengths[:-1], dtype="<i8", out=pointers[1:])
        pointers *= self.dtype.itemsize
        document_indices = np.arange(count + 1, dtype="<i8")
        return [
            _MEGATRON_INDEX_HEADER,
            struct.pack("<Q", _MEGATRON_INDEX_VERSION),
            struct.pack("<B", _MEGATRON_DTYPE_CODES[self.dtype.name]),
            struct.pack("<Q", count),
            # Megatron's "document count" is len(document_indices), one more than
            # the number of documents: the indices are fence posts [0, 1, ..., n].
            struct.pack("<Q", len(document_indices)),
            lengths.astype("<i4", copy=False).tobytes(),
            pointers.tobytes(),
            document_indices.tobytes(),
        ]

    def _finish(self) -> None:
        self._bin_file.close()
        with open(self._idx.temp, "wb") as f:
            f.writelines(self._index_bytes())

    def _release(self) -> None:
        with contextlib.suppress(OSError):
            self._bin_file.close()


_WRITERS = {w.FORMAT: w for w in (JsonlZstShardWriter, ParquetShardWriter, MegatronShardWriter)}


def shard_file_paths(formats: list[str], num_shards: int) -> list[str]:
    """Every file the writers of `formats` publish for `num_shards` shards, the card included.

    The mixer records this list before it writes, so a run killed halfway
    still knows which files in its output are its own.
    """
    paths = [p for shard in range(num_shards) for fmt in formats for p in _WRITERS[fmt].relpaths(shard, num_shards)]
    return paths + ([DATASET_CARD] if "parquet" in formats else [])
