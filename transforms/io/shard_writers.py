"""The mixer's output shard writers: JSONL.zst, Hugging Face Parquet, Megatron, datatrove, OLMo-core, MDS.

The mixer hands every enabled writer the same ordered documents of one output
shard (`add`), then `close()`s it, or `abort()`s it when the task fails. Each
writer is the one home of its format and writes what the trainer reading that
format loads without conversion:

    root/jsonl.zst/part-00000.jsonl.zst                 {"id","text","metadata"} per line
    root/parquet/data/train-00000-of-00002.parquet      id, text, is_instruction
    root/parquet/README.md                              dataset card (`configs:` block)
    root/megatron/part-00000.bin + .idx                 IndexedDataset(prefix) ("MMIDIDX")
    root/datatrove/part-00000.ds + .ds.index + .ds.metadata (+ .ds.loss)
                                                        datatrove's TokenizedFile (nanotron's Nanoset)
    root/olmo/token_ids/part-00000.npy (+ root/olmo/label_mask/part-00000.npy)
                                                        OLMo-core's numpy arrays, EOS after each document
    root/mds/part-00000/shard.00000.mds + index.json    MosaicML streaming's MDSWriter
    root/mds/index.json                                 one index over every shard (StreamingDataset)

Loss masks (the mixer's `loss_mask: instruction_prompt`) travel with each
document as one uint8 per token (0: the prompt of an injected instruction, no
loss; 1: everything else); the datatrove and OLMo writers store them when
opened with `loss_masks=True`, the others ignore them.

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
import shutil
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
    "LOSS_MASK_FORMATS",
    "MDS_INDEX",
    "PARQUET_SCHEMA",
    "DatatroveShardWriter",
    "JsonlZstShardWriter",
    "MdsShardWriter",
    "MegatronShardWriter",
    "OlmoShardWriter",
    "ParquetShardWriter",
    "ShardWriter",
    "StagedFile",
    "WrittenFile",
    "datatrove_token_size",
    "import_streaming",
    "megatron_token_dtype",
    "olmo_token_dtype",
    "shard_file_paths",
    "unsigned_token_dtype",
    "write_mds_index",
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
        self, doc_id: str, text: str, is_instruction: bool, metadata: dict, tokens: np.ndarray,
        loss_mask: np.ndarray | None = None,
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


def _checked_tokens(tokens: np.ndarray, vocab_size: int, where: str, doc_id: str, stored_as: str) -> np.ndarray:
    """`tokens` as a 1-D integer array of ids in [0, vocab_size); a ValueError naming the shard,
    the document and the fix otherwise (a wrong vocab_size would wrap ids silently)."""
    tokens = np.asarray(tokens)
    if tokens.ndim != 1 or not np.issubdtype(tokens.dtype, np.integer):
        raise ValueError(
            f"{where}: document {doc_id!r}: tokens must be a 1-D integer array, "
            f"got dtype {tokens.dtype} with shape {tokens.shape}"
        )
    if tokens.size:
        low, high = int(tokens.min()), int(tokens.max())
        if low < 0 or high >= vocab_size:
            bad = low if low < 0 else high
            raise ValueError(
                f"{where}: document {doc_id!r} has token id {bad}, outside "
                f"[0, {vocab_size}) for vocab_size {vocab_size} ({stored_as}); "
                "set vocab_size to the tokenizer's full vocabulary, added tokens included"
            )
    return tokens


def _checked_mask(loss_mask: np.ndarray | None, length: int, where: str, doc_id: str) -> np.ndarray:
    """The document's loss mask as `length` bytes 0/1; None (a document without a prompt) is all 1."""
    if loss_mask is None:
        return np.ones(length, dtype=np.uint8)
    mask = np.asarray(loss_mask)
    if mask.shape != (length,):
        raise ValueError(
            f"{where}: document {doc_id!r}: loss mask has shape {mask.shape}, its tokens ({length},)"
        )
    return (mask != 0).astype(np.uint8)


def _check_vocab_size(vocab_size: int) -> None:
    if not isinstance(vocab_size, (int, np.integer)) or not 0 < vocab_size <= _INT32_MAX + 1:
        raise ValueError(f"vocab_size must be an integer in [1, 2**31], got {vocab_size!r}")


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
    def relpaths(shard: int, num_shards: int | None = None, loss_masks: bool = False) -> list[str]:
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
        self, doc_id: str, text: str, is_instruction: bool, metadata: dict, tokens: np.ndarray | None = None,
        loss_mask: np.ndarray | None = None,
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
    def relpaths(shard: int, num_shards: int, loss_masks: bool = False) -> list[str]:
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
        self, doc_id: str, text: str, is_instruction: bool, metadata: dict, tokens: np.ndarray | None = None,
        loss_mask: np.ndarray | None = None,
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
    def relpaths(shard: int, num_shards: int | None = None, loss_masks: bool = False) -> list[str]:
        return [f"megatron/part-{shard:05d}.bin", f"megatron/part-{shard:05d}.idx"]

    def __init__(self, root: str, shard: int, vocab_size: int, storage_options: dict | None = None) -> None:
        _check_shard(shard)
        _check_vocab_size(vocab_size)
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

    def add(
        self, doc_id: str, text: str, is_instruction: bool, metadata: dict, tokens: np.ndarray,
        loss_mask: np.ndarray | None = None,
    ) -> None:
        self._require_open("add to")
        tokens = _checked_tokens(tokens, self.vocab_size, f"megatron shard {self.shard}", doc_id,
                                 f"{self.dtype.name} .bin")
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


class _ScratchFolder:
    """A local folder for a library that writes its own files by name (datatrove's TokenizedFile,
    streaming's MDSWriter), beside the staged files so that `move_into` is a rename.

    On local disk it is the hidden `.NAME.scratch.tmp` folder in the final folder, hidden like
    every writer's temporaries (a killed run's is never taken for a finished file, nor for a
    foreign one) and named like them after the shard's file, so the shard's next attempt
    replaces what a killed one left; elsewhere it sits in the local temp folder with the
    staged files.
    """

    def __init__(self, staged: StagedFile) -> None:
        folder, name = os.path.split(staged.temp)
        self.path = os.path.join(folder, f"{name.removesuffix('.tmp')}.scratch.tmp")
        shutil.rmtree(self.path, ignore_errors=True)
        os.makedirs(self.path)

    def move_into(self, pairs: list[tuple[str, StagedFile]]) -> None:
        for name, staged in pairs:
            os.replace(os.path.join(self.path, name), staged.temp)

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def unsigned_token_dtype(vocab_size: int) -> np.dtype:
    """Little-endian uint16 when every id fits (vocab_size <= 65536), else uint32: the rule
    datatrove (.ds), OLMo-core and, through the .ds rule, the MDS `tokens` column share."""
    return np.dtype("<u2") if vocab_size <= np.iinfo(np.uint16).max + 1 else np.dtype("<u4")


def datatrove_token_size(vocab_size: int) -> int:
    """Bytes per token in a .ds file, by datatrove's own rule (`PipelineStepWithTokenizer.token_size`):
    4 when the vocabulary does not fit uint16 (more than 65536 ids), else 2."""
    return unsigned_token_dtype(vocab_size).itemsize


class DatatroveShardWriter(_Lifecycle):
    """`root/datatrove/part-{shard:05d}.ds` with `.ds.index`, `.ds.metadata` and, with loss masks, `.ds.loss`.

    Written by datatrove's own `TokenizedFile`, the class its `DocumentTokenizer` writes with, so
    the files are what nanotron's Nanoset (datatrove's `DatatroveFolderDataset`) reads: the .ds is
    the documents' token ids back to back (little-endian uint16 or uint32, `datatrove_token_size`),
    the .index each document's end as a uint64 token offset, the .metadata
    "tokenizer|token size", the token count and its humanized form, and the .loss one bool byte
    per token (1: train on it), TokenizedFile's loss layout. No EOS token is added: the .index
    keeps the boundaries, as for Megatron. TokenizedFile writes into a scratch folder by name;
    its files are then published like every other format's, the .ds last, so a reader that
    finds a .ds finds its index beside it.
    """

    FORMAT = "datatrove"

    @staticmethod
    def relpaths(shard: int, num_shards: int | None = None, loss_masks: bool = False) -> list[str]:
        ds = f"datatrove/part-{shard:05d}.ds"
        return [*([f"{ds}.loss"] if loss_masks else []), f"{ds}.index", f"{ds}.metadata", ds]

    def __init__(
        self, root: str, shard: int, vocab_size: int, tokenizer_name: str, loss_masks: bool = False,
        storage_options: dict | None = None,
    ) -> None:
        from datatrove.pipeline.tokens.tokenizer import TokenizedFile

        _check_shard(shard)
        _check_vocab_size(vocab_size)
        self.shard, self.vocab_size, self.loss_masks = int(shard), int(vocab_size), loss_masks
        self.dtype = unsigned_token_dtype(self.vocab_size)
        paths = self.relpaths(self.shard, loss_masks=loss_masks)
        self._staged = tuple(StagedFile(root, p, storage_options) for p in paths)
        self._scratch = _ScratchFolder(self._staged[-1])
        # Hidden like the scratch folder: a `*.ds` glob never takes the unfinished file.
        self._name = "." + paths[-1].rsplit("/", 1)[1]
        self._file = TokenizedFile(
            self._scratch.path, self._name, save_index=True, save_loss_metadata=loss_masks,
            tokenizer_name_or_path=tokenizer_name, save_final_metadata=True, token_size=self.dtype.itemsize,
        )

    def add(
        self, doc_id: str, text: str, is_instruction: bool, metadata: dict, tokens: np.ndarray,
        loss_mask: np.ndarray | None = None,
    ) -> None:
        self._require_open("add to")
        where = f"datatrove shard {self.shard}"
        tokens = _checked_tokens(tokens, self.vocab_size, where, doc_id, f"{self.dtype.itemsize}-byte .ds")
        self._file.write_bytes(tokens.astype(self.dtype, copy=False).tobytes())
        if self.loss_masks:
            self._file.write_loss_bytes(_checked_mask(loss_mask, tokens.size, where, doc_id).tobytes())

    def _finish(self) -> None:
        self._file.close()  # writes the .index and the .metadata
        ds = self._staged[-1].relpath.rsplit("/", 1)[1]
        self._scratch.move_into([(self._name + p.relpath.rsplit("/", 1)[1][len(ds):], p) for p in self._staged])
        self._scratch.remove()

    def _release(self) -> None:
        for handle in (self._file.tokens_file, self._file.loss_file):
            with contextlib.suppress(OSError, AttributeError):
                handle.close()
        self._scratch.remove()


def olmo_token_dtype(vocab_size: int) -> np.dtype:
    """uint16 when every id fits (vocab_size <= 65536), else uint32: the `dtype` OLMo-core's
    NumpyDatasetConfig infers from the tokenizer's vocab_size, uint8 aside (no real vocabulary
    is that small; set `dtype` in the OLMo config to the one the manifest names)."""
    return unsigned_token_dtype(vocab_size)


class OlmoShardWriter(_Lifecycle):
    """`root/olmo/token_ids/part-{shard:05d}.npy`, and with loss masks `root/olmo/label_mask/part-{shard:05d}.npy`.

    OLMo-core's numpy datasets (`NumpyFSLDataset`, `NumpyDatasetConfig.paths`) read a token
    file as a raw memmap (`np.memmap(path, dtype, mode="r")`: no .npy header, despite the
    name, as dolma's tokenizer writes them) and find documents by the EOS token id, so each
    document is followed by `eos_token_id`. The label mask (`label_mask_paths`) is the same
    length, one bool byte per token, True where the loss counts; the EOS after a document
    counts. Token and mask files sit in two folders so a glob over one never takes the other.
    An empty shard is an empty file, which numpy cannot memmap: leave it out of `paths`.
    """

    FORMAT = "olmo"

    @staticmethod
    def relpaths(shard: int, num_shards: int | None = None, loss_masks: bool = False) -> list[str]:
        return [f"olmo/token_ids/part-{shard:05d}.npy"] + (
            [f"olmo/label_mask/part-{shard:05d}.npy"] if loss_masks else []
        )

    def __init__(
        self, root: str, shard: int, vocab_size: int, eos_token_id: int, loss_masks: bool = False,
        storage_options: dict | None = None,
    ) -> None:
        _check_shard(shard)
        _check_vocab_size(vocab_size)
        if not isinstance(eos_token_id, (int, np.integer)) or not 0 <= eos_token_id < vocab_size:
            raise ValueError(f"eos_token_id must be a token id in [0, {vocab_size}), got {eos_token_id!r}")
        self.shard, self.vocab_size, self.loss_masks = int(shard), int(vocab_size), loss_masks
        self.dtype = olmo_token_dtype(self.vocab_size)
        self._eos = np.array([eos_token_id], dtype=self.dtype).tobytes()
        self._staged = tuple(StagedFile(root, p, storage_options) for p in self.relpaths(self.shard, None, loss_masks))
        self._files = [open(s.temp, "wb") for s in self._staged]  # noqa: SIM115 - open until close()

    def add(
        self, doc_id: str, text: str, is_instruction: bool, metadata: dict, tokens: np.ndarray,
        loss_mask: np.ndarray | None = None,
    ) -> None:
        self._require_open("add to")
        where = f"olmo shard {self.shard}"
        tokens = _checked_tokens(tokens, self.vocab_size, where, doc_id, f"{self.dtype.name} token file")
        self._files[0].write(tokens.astype(self.dtype, copy=False).tobytes() + self._eos)
        if self.loss_masks:
            self._files[1].write(_checked_mask(loss_mask, tokens.size, where, doc_id).tobytes() + b"\x01")

    def _finish(self) -> None:
        for f in self._files:
            f.close()

    def _release(self) -> None:
        for f in self._files:
            with contextlib.suppress(OSError):
                f.close()


# One MDS file per shard: its offsets are uint32, so a shard must stay under 4 GiB.
_MDS_MAX_BYTES = 2**32 - 1
MDS_INDEX = "mds/index.json"


class MdsShardWriter(_Lifecycle):
    """`root/mds/part-{shard:05d}/shard.00000.mds` and its `index.json`, written by MosaicML
    streaming's own `MDSWriter` (the format llm-foundry's text datasets read).

    Columns: `id` and `text` (str), `is_instruction` (uint8: MDS has no bool), `tokens`
    (`ndarray:uint16` or `ndarray:uint32` by vocabulary size, as in the datatrove files).
    Uncompressed, so `StreamingDataset(local=...)` reads the published files in place, and one
    .mds file per shard (no size limit), so the file names are known before writing; MDS's
    offsets are uint32, so a shard past 4 GiB is refused (lower `shard_tokens`). After the
    shards the mixer writes `root/mds/index.json` over all of them (`write_mds_index`). An empty
    shard is a 0-sample .mds, read through that index only (streaming refuses a folder with no
    samples). A document with no tokens is left out (MDS cannot encode an empty array; the
    mixer never writes one: it skips empty texts).
    """

    FORMAT = "mds"
    SHARD_FILE = "shard.00000.mds"

    @staticmethod
    def relpaths(shard: int, num_shards: int | None = None, loss_masks: bool = False) -> list[str]:
        return [f"mds/part-{shard:05d}/{MdsShardWriter.SHARD_FILE}", f"mds/part-{shard:05d}/index.json"]

    def __init__(self, root: str, shard: int, vocab_size: int, storage_options: dict | None = None) -> None:
        streaming = import_streaming()
        _check_shard(shard)
        _check_vocab_size(vocab_size)
        self.shard, self.vocab_size = int(shard), int(vocab_size)
        self.dtype = unsigned_token_dtype(self.vocab_size)
        # index.json last: a reader that sees the index can trust the shard beside it.
        self._staged = tuple(StagedFile(root, p, storage_options) for p in self.relpaths(self.shard))
        self._scratch = _ScratchFolder(self._staged[0])
        columns = {"id": "str", "text": "str", "is_instruction": "uint8", "tokens": f"ndarray:{self.dtype.name}"}
        # A folder MDSWriter creates itself: it warns about (and empties) any that exists.
        self._out = "mds"
        self._writer = streaming.MDSWriter(out=os.path.join(self._scratch.path, self._out), columns=columns,
                                           compression=None, size_limit=None)
        self._bytes = self._docs = 0

    def add(
        self, doc_id: str, text: str, is_instruction: bool, metadata: dict, tokens: np.ndarray,
        loss_mask: np.ndarray | None = None,
    ) -> None:
        self._require_open("add to")
        tokens = _checked_tokens(tokens, self.vocab_size, f"mds shard {self.shard}", doc_id, f"{self.dtype.name} MDS")
        if not tokens.size:
            return  # MDS cannot encode an empty array; a document without tokens has nothing to train on
        sample = {"id": doc_id, "text": text, "is_instruction": int(bool(is_instruction)),
                  "tokens": tokens.astype(self.dtype, copy=False)}
        self._bytes += len(self._writer.encode_sample(sample)) + 4
        if self._bytes > _MDS_MAX_BYTES:
            raise ValueError(f"mds shard {self.shard}: over 4 GiB, more than one MDS file holds (its offsets "
                             "are uint32); lower output.shard_tokens")
        self._writer.write(sample)
        self._docs += 1

    def _finish(self) -> None:
        if not self._docs:
            # MDSWriter writes no .mds for no samples; a 0-sample one keeps the shard's files the
            # same. The merged mds/index.json reads it; streaming refuses the folder alone.
            self._writer.flush_shard()
        self._writer.finish()
        self._scratch.move_into([(f"{self._out}/{p.relpath.rsplit('/', 1)[1]}", p) for p in self._staged])
        self._scratch.remove()

    def _release(self) -> None:
        with contextlib.suppress(Exception):  # the task is failing already; the folder goes anyway
            self._writer.cancel_future_jobs()
        self._scratch.remove()


def import_streaming():
    """MosaicML `streaming`'s package of MDS writers and readers (`streaming.base`).

    `import streaming` also imports its vision datasets, which import torchvision at once;
    MDS needs none of it, and on a CPU-only torch (`+cpu` builds) no torchvision from PyPI
    loads (its CUDA build fails with "operator torchvision::nms does not exist"). So when
    torchvision is missing the package is entered without its `__init__`, and its public
    names (`streaming.MDSWriter`, `streaming.StreamingDataset`, ...) are set from
    `streaming.base`, which is what they are anyway.
    """
    import importlib
    import importlib.util
    import sys
    import types

    try:
        return importlib.import_module("streaming")
    except ModuleNotFoundError as err:
        if err.name != "torchvision" or importlib.util.find_spec("streaming") is None:
            raise
    sys.modules.pop("streaming", None)
    spec = importlib.util.find_spec("streaming")
    package = types.ModuleType("streaming")
    package.__path__ = list(spec.submodule_search_locations)
    package.__spec__ = spec
    package.__file__ = spec.origin
    sys.modules["streaming"] = package
    base = importlib.import_module("streaming.base")
    for name in getattr(base, "__all__", ()):
        setattr(package, name, getattr(base, name))
    return package


def write_mds_index(root: str, num_shards: int, storage_options: dict | None = None) -> WrittenFile:
    """`root/mds/index.json`: every shard's MDS index entries in shard order, each basename
    prefixed by its folder (`part-00000/shard.00000.mds`), what streaming's `merge_index`
    writes; `StreamingDataset(local=root/mds)` and llm-foundry's `remote: root/mds` read it."""
    fs, base = fsspec.core.url_to_fs(root, **(storage_options or {}))
    shards = []
    for shard in range(num_shards):
        folder = f"part-{shard:05d}"
        index = json.loads(fs.cat_file(f"{base.rstrip('/')}/mds/{folder}/index.json"))
        for entry in index["shards"]:
            for key in ("raw_data", "zip_data"):
                if entry.get(key):
                    entry[key]["basename"] = f"{folder}/{entry[key]['basename']}"
            shards.append(entry)
    staged = StagedFile(root, MDS_INDEX, storage_options)
    try:
        with open(staged.temp, "w", encoding="utf-8") as f:
            json.dump({"version": 2, "shards": shards}, f, sort_keys=True)
        return staged.publish()
    except BaseException:
        staged.discard()
        raise


_WRITERS = {
    w.FORMAT: w
    for w in (JsonlZstShardWriter, ParquetShardWriter, MegatronShardWriter, DatatroveShardWriter, OlmoShardWriter,
              MdsShardWriter)
}
# The formats whose files carry loss masks when the mixer is asked for them.
LOSS_MASK_FORMATS = ("datatrove", "olmo")


def shard_file_paths(formats: list[str], num_shards: int, loss_masks: bool = False) -> list[str]:
    """Every file the writers of `formats` publish for `num_shards` shards, the card and MDS index included.

    The mixer records this list before it writes, so a run killed halfway
    still knows which files in its output are its own.
    """
    paths = [p for shard in range(num_shards) for fmt in formats
             for p in _WRITERS[fmt].relpaths(shard, num_shards, loss_masks)]
    return paths + ([DATASET_CARD] if "parquet" in formats else []) + ([MDS_INDEX] if "mds" in formats else [])
