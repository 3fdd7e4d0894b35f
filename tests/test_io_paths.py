"""transforms.io.paths: one expansion rule and one error handling for every stage's reader.

Mining (`transforms.io.documents`), the mixer and synthesis (`transforms.io.mix_inputs`)
used to expand globs twice and handle failures differently (a filesystem error was a
counted skip when mining and an exception when mixing). These tests hold all three
readers to the same rules: the same files from a folder or glob, the same error for an
input that names nothing, and a filesystem failure in one file counted with a reason
while the records read before it are kept.
"""

from __future__ import annotations

import collections
import io
import json
import uuid
from typing import ClassVar

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fsspec.implementations.memory import MemoryFileSystem

from transforms.io.documents import expand_inputs, iter_documents
from transforms.io.mix_inputs import (
    PRETRAIN_ENDINGS,
    expand_paths,
    iter_instruction_records,
    iter_pretrain_docs,
)
from transforms.io.paths import NoInputError, UnsupportedInputError, read_input

# --------------------------------------------------------------------------- one expansion rule


def touch(path, data: bytes = b"x"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return str(path)


def test_every_stage_expands_a_folder_by_the_same_rule(tmp_path):
    shared = [
        touch(tmp_path / "d" / n) for n in ("a.jsonl", "sub/b.jsonl.zst", "c.json.gz", "sub/deep/d.parquet")
    ]
    warc = touch(tmp_path / "d" / "e.warc.gz")
    alpaca = touch(tmp_path / "d" / "f.json")
    for left_out in ("_SUCCESS", "_stats.json", "_temporary/0/part-0.parquet", ".part-0.parquet.crc",
                     ".hidden/g.jsonl", "README.md", "tokenizer.txt"):  # fmt: skip
        touch(tmp_path / "d" / left_out)
    folder = str(tmp_path / "d")
    assert expand_inputs([folder]) == sorted([*shared, warc])
    assert expand_paths([folder], endings=PRETRAIN_ENDINGS) == sorted(shared)
    assert expand_paths([folder]) == sorted([*shared, alpaca])
    # A glob over the folder's children gives what the folder gives.
    assert expand_inputs([str(tmp_path / "d" / "*")]) == expand_inputs([folder])
    assert expand_paths([str(tmp_path / "d" / "*")]) == expand_paths([folder])


@pytest.mark.parametrize(
    "expand",
    [
        lambda patterns: expand_inputs(patterns),
        lambda patterns: expand_paths(patterns, endings=PRETRAIN_ENDINGS),
        lambda patterns: expand_paths(patterns),
    ],
    ids=["mining", "pretrain", "instructions"],
)
def test_an_input_that_names_nothing_is_one_error_naming_it(tmp_path, expand):
    touch(tmp_path / "notes.md")
    (tmp_path / "empty").mkdir()
    for pattern, detail in (
        (str(tmp_path / "*.parquet"), "no file matched"),
        (str(tmp_path / "*.md"), "notes.md"),  # what did match is named
        (str(tmp_path / "empty"), "directory holds no file"),
        (str(tmp_path / "gone.jsonl"), "does not exist"),
    ):
        with pytest.raises(NoInputError, match=detail) as err:
            expand([pattern])
        assert isinstance(err.value, FileNotFoundError)  # the CLI's one-line user error
        assert repr(pattern) in str(err.value)
    with pytest.raises(NoInputError, match="no input patterns"):
        expand([])
    with pytest.raises(UnsupportedInputError, match=r"notes\.md: unsupported file type; supported endings"):
        expand([str(tmp_path / "notes.md")])


# --------------------------------------------------------------------------- one error handling


class FlakyFileSystem(MemoryFileSystem):
    """An in-memory filesystem whose reads fail like a dropped connection.

    `FAIL_AT[path] = (start, end)`: a read that touches bytes start..end-1 raises
    ConnectionResetError (an OSError), as s3fs/gcsfs do when the peer goes away.
    `SIZE_FAILS`: paths whose `size()` (the first request) fails the same way.
    """

    protocol = ("flaky",)
    FAIL_AT: ClassVar[dict[str, tuple[int, int]]] = {}
    SIZE_FAILS: ClassVar[set[str]] = set()

    @classmethod
    def _strip_protocol(cls, path):
        return super()._strip_protocol(path.removeprefix("flaky://"))

    def size(self, path):
        if self._strip_protocol(path) in self.SIZE_FAILS:
            raise ConnectionResetError("connection reset by peer")
        return super().size(path)

    def _open(self, path, mode="rb", **kwargs):
        f = super()._open(path, mode, **kwargs)
        failing = self.FAIL_AT.get(self._strip_protocol(path))
        if "r" not in mode or failing is None:
            return f
        return _FailingReader(f.getvalue(), failing)


class _FailingReader(io.BytesIO):
    def __init__(self, data: bytes, failing: tuple[int, int]):
        super().__init__(data)
        self.failing = failing

    def read(self, size=-1):
        end = len(self.getbuffer()) if size is None or size < 0 else self.tell() + size
        if self.tell() < self.failing[1] and end > self.failing[0]:
            raise ConnectionResetError("connection reset by peer")
        return super().read(size)


@pytest.fixture
def flaky_root():
    fsspec.register_implementation("flaky", FlakyFileSystem, clobber=True)
    root = f"/flaky-{uuid.uuid4().hex}"
    yield root
    fs = FlakyFileSystem()
    FlakyFileSystem.FAIL_AT.clear()
    FlakyFileSystem.SIZE_FAILS.clear()
    if fs.exists(root):
        fs.rm(root, recursive=True)


def jsonl_file(root: str, name: str, records: list[dict]) -> tuple[str, list[int]]:
    """The file's URL and the byte offset of each line."""
    lines = [json.dumps(r).encode() + b"\n" for r in records]
    FlakyFileSystem().pipe(f"{root}/{name}", b"".join(lines))
    offsets, at = [], 0
    for line in lines:
        offsets.append(at)
        at += len(line)
    return f"flaky://{root}/{name}", offsets


def every_reader(url: str, counters: collections.Counter) -> dict[str, list[str]]:
    """What mining, the pretraining reader and the instruction reader each give out of `url`."""
    return {
        "mining": [d.text for d in iter_documents(url, counters["mining"])],
        "pretrain": [d.text for d in iter_pretrain_docs(url, "text", counters["pretrain"])],
        "instructions": [r.output for r in iter_instruction_records(url, counters["instructions"])],
    }


def test_a_connection_dropped_in_the_first_read_is_a_counted_skip_in_every_reader(flaky_root):
    records = [{"instruction": f"q{i}", "output": f"doc {i}", "text": f"doc {i}"} for i in range(6)]
    url, offsets = jsonl_file(flaky_root, "docs.jsonl", records)
    FlakyFileSystem.FAIL_AT[url.removeprefix("flaky://")] = (offsets[4], 1 << 30)
    # Reads are chunked (64 KiB): the whole file is one chunk, so nothing of it can be read...
    counters = collections.defaultdict(collections.Counter)
    assert every_reader(url, counters) == {"mining": [], "pretrain": [], "instructions": []}
    for reader in ("mining", "pretrain", "instructions"):
        assert counters[reader]["skip:unreadable_file"] == 1, (reader, counters[reader])
        assert "skip:reader_error" not in counters[reader]


def test_a_connection_dropped_after_the_first_chunk_keeps_that_chunk(flaky_root):
    filler = "x" * 2000
    records = [
        {"instruction": f"q{i}", "output": f"doc {i} {filler}", "text": f"doc {i} {filler}"}
        for i in range(80)
    ]
    url, offsets = jsonl_file(flaky_root, "big.jsonl", records)
    FlakyFileSystem.FAIL_AT[url.removeprefix("flaky://")] = (1 << 16, 1 << 30)  # the second 64 KiB read fails
    counters = collections.defaultdict(collections.Counter)
    got = every_reader(url, counters)
    kept = sum(1 for at, r in zip(offsets[1:], records) if at <= 1 << 16)  # lines whole in the first chunk
    for reader, texts in got.items():
        assert texts == [r["text"] for r in records[:kept]], reader
        assert dict(counters[reader]) == ({"docs_read": kept} if reader == "mining" else {}) | {
            "skip:unreadable_file": 1
        }, reader


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("empty.jsonl", b"", "skip:empty_file"),
        ("empty.jsonl.zst", b"", "skip:empty_file"),
        ("empty.parquet", b"", "skip:empty_file"),
        ("not-gzip.jsonl.gz", b"plain text, not gzip\n", "skip:unreadable_file"),
        ("not-zstd.jsonl.zst", b"plain text, not zstd\n", "skip:unreadable_file"),
        ("random.jsonl.gz", bytes(range(256)) * 40, "skip:unreadable_file"),
        ("random.json.zst", bytes(range(256)) * 40, "skip:unreadable_file"),
        ("not-parquet.parquet", b"PAR1 not really", "skip:unreadable_file"),
        ("random.parquet", bytes(range(256)) * 40, "skip:unreadable_file"),
    ],
)
def test_garbage_files_are_the_same_counted_skip_in_every_reader(tmp_path, name, data, reason):
    path = touch(tmp_path / name, data)
    counters = collections.defaultdict(collections.Counter)
    assert every_reader(path, counters) == {"mining": [], "pretrain": [], "instructions": []}
    for reader in ("mining", "pretrain", "instructions"):
        assert dict(counters[reader]) == {reason: 1}, reader


def test_missing_and_unsupported_files_named_to_a_reader_are_counted(tmp_path):
    for name, reason in (("gone.jsonl", "skip:unreadable_file"), ("page.warc.gz", "skip:unsupported_format")):
        counters = collections.Counter()
        assert list(iter_pretrain_docs(str(tmp_path / name), "text", counters)) == []
        assert counters == {reason: 1}
    counters = collections.Counter()
    assert list(iter_documents(str(tmp_path / "gone.jsonl"), counters)) == []
    assert counters == {"skip:unreadable_file": 1}


def test_a_failed_first_request_is_a_counted_skip_in_every_reader(flaky_root):
    url, _ = jsonl_file(flaky_root, "docs.jsonl", [{"instruction": "q", "output": "a", "text": "a"}])
    FlakyFileSystem.SIZE_FAILS.add(url.removeprefix("flaky://"))
    counters = collections.defaultdict(collections.Counter)
    assert every_reader(url, counters) == {"mining": [], "pretrain": [], "instructions": []}
    for reader in ("mining", "pretrain", "instructions"):
        assert dict(counters[reader]) == {"skip:unreadable_file": 1}, reader


def test_a_failing_parquet_row_group_loses_only_that_row_group(flaky_root):
    # Cells large enough that pyarrow's footer read (the last 64 KiB) stays clear of row group 1.
    texts = [f"doc {i} " + "y" * 20_000 for i in range(10)]
    table = pa.table({"text": texts, "instruction": ["q"] * 10, "output": texts})
    buf = pa.BufferOutputStream()
    pq.write_table(table, buf, row_group_size=2, compression="none")
    data = buf.getvalue().to_pybytes()
    FlakyFileSystem().pipe(f"{flaky_root}/rows.parquet", data)
    url = f"flaky://{flaky_root}/rows.parquet"
    group = pq.ParquetFile(io.BytesIO(data)).metadata.row_group(1)
    first, last = group.column(0), group.column(group.num_columns - 1)
    FlakyFileSystem.FAIL_AT[f"{flaky_root}/rows.parquet"] = (
        first.dictionary_page_offset or first.data_page_offset,
        (last.dictionary_page_offset or last.data_page_offset) + last.total_compressed_size,
    )
    counters = collections.defaultdict(collections.Counter)
    got = every_reader(url, counters)
    for reader, texts in got.items():
        assert [t.split(" ", 2)[1] for t in texts] == ["0", "1", "4", "5", "6", "7", "8", "9"], reader
        assert counters[reader]["skip:corrupt_archive"] == 1, reader


def test_read_input_counts_unexpected_errors_and_raises_only_a_missing_package(tmp_path):
    path = touch(tmp_path / "a.jsonl", b'{"text": "one"}\n')
    counters = collections.Counter()

    def buggy(fmt, fs, fs_path):
        yield "first"
        raise KeyError("a bug in a reader")

    assert list(read_input(path, counters, buggy, endings=(".jsonl",))) == ["first"]
    assert counters == {"skip:reader_error": 1}

    def needs_a_package(fmt, fs, fs_path):
        raise ImportError("install s3fs")
        yield

    with pytest.raises(ImportError, match="s3fs"):
        list(read_input(path, collections.Counter(), needs_a_package, endings=(".jsonl",)))
