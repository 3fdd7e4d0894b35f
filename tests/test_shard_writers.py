"""transforms.io.shard_writers: every output shard read back by the reader its trainer uses.

Documents are real text from ../shared/webdata (CCNet English web pages as
pretraining documents; Alpaca seed tasks and BELLE Chinese questions with
answers as instruction documents), tokenized by a byte-level BPE trained here
on that text, and split across 2 shards. Readers: zstandard + json,
Hugging Face `datasets` (offline, cache in tmp), Megatron's IndexedDataset,
datatrove's DatatroveFolderDataset, OLMo-core's NumpyFSLDataset, MosaicML
streaming's StreamingDataset. Skipped where the web data folder is absent.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import io
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml
import zstandard

from transforms.io.shard_writers import (
    PARQUET_SCHEMA,
    DatatroveShardWriter,
    JsonlZstShardWriter,
    MdsShardWriter,
    MegatronShardWriter,
    OlmoShardWriter,
    ParquetShardWriter,
    WrittenFile,
    datatrove_token_size,
    import_streaming,
    megatron_token_dtype,
    olmo_token_dtype,
    shard_file_paths,
    write_mds_index,
    write_parquet_dataset_card,
)

NUM_SHARDS = 2
BPE_VOCAB = 500
LARGE_VOCAB = 100_000
SUMMARY = {"target_ratio": 0.05, "realized_ratio": 0.0493, "documents": 271, "tokens": 123456}


# --------------------------------------------------------------------------- real documents


def _real_documents(webdata: Path) -> list[dict]:
    """Pretraining pages and instruction documents, interleaved, with the mixer's metadata."""
    pretrain, instructions = [], []
    for path in sorted((webdata / "text/dolma-ccnet-cc_en_head").glob("*.jsonl.gz")):
        with gzip.open(path, "rt", encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                record = json.loads(line)
                pretrain.append((record["text"], path.name, n))
    seed = webdata / "instructions/alpaca-self-instruct-seed/seed_tasks.jsonl"
    with open(seed, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            task = json.loads(line)
            instance = task["instances"][0]
            text = "\n\n".join(p for p in (task["instruction"], instance["input"], instance["output"]) if p)
            instructions.append((text, seed.name, n))
    belle = webdata / "instructions/belle-zh/eval_set.json"
    with open(belle, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if n > 120:
                break
            item = json.loads(line)
            instructions.append((f"{item['question']}\n\n{item['std_answer']}", belle.name, n))
    # Paragraphs of the web pages as more pretraining documents, so both kinds are well represented.
    pretrain += [(para, name, n) for text, name, n in pretrain[:20] for para in text.split("\n")[:3] if para]

    docs = []
    kinds = [("pretrain:web", False, pretrain), ("instructions:out/mined", True, instructions)]
    for i in range(max(len(pretrain), len(instructions))):
        for source, is_instruction, items in kinds:
            if i < len(items):
                text, file, line = items[i]
                docs.append(
                    {
                        "doc_id": f"{source}/{file}/{line}/{i}",
                        "text": text,
                        "is_instruction": is_instruction,
                        "metadata": {
                            "source": source,
                            "is_instruction": is_instruction,
                            "provenance": {"file": file, "record": f"line {line}"},
                        },
                    }
                )
    # A document with no tokens is a legal Megatron sequence of length 0.
    docs.append(
        {
            "doc_id": "pretrain:web/empty",
            "text": "",
            "is_instruction": False,
            "metadata": {"source": "pretrain:web", "is_instruction": False, "provenance": {}},
        }
    )
    return docs


def _train_bpe(texts: list[str]):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=BPE_VOCAB, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    return tokenizer


@pytest.fixture(scope="module")
def docs(webdata) -> list[dict]:
    docs = _real_documents(webdata)
    tokenizer = _train_bpe([d["text"] for d in docs])
    assert tokenizer.get_vocab_size() <= BPE_VOCAB
    for doc, encoding in zip(docs, tokenizer.encode_batch([d["text"] for d in docs])):
        doc["tokens"] = np.asarray(encoding.ids, dtype=np.int64)
    # Byte-level BPE is lossless: the ids really are this text.
    assert all(tokenizer.decode(d["tokens"].tolist()) == d["text"] for d in docs[:50])
    assert 200 <= len(docs) <= 600 and sum(d["is_instruction"] for d in docs) > 100
    assert any("的" in d["text"] for d in docs)
    return docs


def _shard_docs(docs: list[dict], shard: int) -> list[dict]:
    return docs[shard::NUM_SHARDS]


def _open_writers(root: Path, shard: int, vocab_size: int = BPE_VOCAB) -> list:
    return [
        JsonlZstShardWriter(str(root), shard),
        ParquetShardWriter(str(root), shard, NUM_SHARDS, row_group_rows=64),
        MegatronShardWriter(str(root), shard, vocab_size),
    ]


def _add(writers: list, doc: dict) -> None:
    for writer in writers:
        writer.add(doc["doc_id"], doc["text"], doc["is_instruction"], doc["metadata"], doc["tokens"])


def _write_mix(root: Path, docs: list[dict], vocab_size: int = BPE_VOCAB) -> list[WrittenFile]:
    """What the mixer does: each shard's documents to every writer, then close; then the card."""
    written = []
    for shard in range(NUM_SHARDS):
        writers = _open_writers(root, shard, vocab_size)
        for doc in _shard_docs(docs, shard):
            _add(writers, doc)
        for writer in writers:
            written += writer.close()
    written.append(write_parquet_dataset_card(str(root), NUM_SHARDS, SUMMARY))
    return written


@pytest.fixture(scope="module")
def mix(docs, tmp_path_factory) -> tuple[Path, list[WrittenFile]]:
    root = tmp_path_factory.mktemp("mix")
    return root, _write_mix(root, docs)


def _files_under(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


# --------------------------------------------------------------------------- readers


@pytest.fixture(scope="module")
def hf_datasets(tmp_path_factory):
    """`datasets`, offline, with its home and cache in tmp (set before it is imported)."""
    home = tmp_path_factory.mktemp("hf_home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HOME", str(home))
        mp.setenv("HF_DATASETS_CACHE", str(home / "datasets"))
        mp.setenv("HF_DATASETS_OFFLINE", "1")
        mp.setenv("HF_HUB_OFFLINE", "1")
        datasets = pytest.importorskip("datasets")
        datasets.disable_progress_bars()
        yield datasets, str(home / "datasets")


@pytest.fixture(scope="module")
def megatron():
    """Megatron's reader and builder module (importing it prints a harmless Apex warning)."""
    return pytest.importorskip("megatron.core.datasets.indexed_dataset")


def _read_jsonl_zst(path: Path) -> list[str]:
    with open(path, "rb") as raw, zstandard.ZstdDecompressor().stream_reader(raw) as reader:
        return io.TextIOWrapper(reader, encoding="utf-8").read().splitlines()


# --------------------------------------------------------------------------- layout and manifest


def test_layout_and_manifest(mix):
    root, written = mix
    expected = []
    for shard in range(NUM_SHARDS):
        expected += [
            f"jsonl.zst/part-{shard:05d}.jsonl.zst",
            f"parquet/data/train-{shard:05d}-of-{NUM_SHARDS:05d}.parquet",
            f"megatron/part-{shard:05d}.bin",
            f"megatron/part-{shard:05d}.idx",
        ]
    expected.append("parquet/README.md")
    assert [w.path for w in written] == expected
    assert _files_under(root) == sorted(expected)  # no temp files left
    for w in written:
        data = (root / w.path).read_bytes()
        assert w.bytes == len(data) and w.sha256 == hashlib.sha256(data).hexdigest()
        assert w.as_dict() == {"path": w.path, "bytes": w.bytes, "sha256": w.sha256}
    json.dumps([w.as_dict() for w in written])


# --------------------------------------------------------------------------- JSONL.zst


def test_jsonl_zst_reads_back(mix, docs):
    root, _ = mix
    for shard in range(NUM_SHARDS):
        lines = _read_jsonl_zst(root / f"jsonl.zst/part-{shard:05d}.jsonl.zst")
        expected = _shard_docs(docs, shard)
        assert len(lines) == len(expected)
        for line, doc in zip(lines, expected):
            record = json.loads(line)
            assert list(record) == ["id", "text", "metadata"]
            assert record == {"id": doc["doc_id"], "text": doc["text"], "metadata": doc["metadata"]}
            assert line == json.dumps(record, ensure_ascii=False, separators=(",", ":"))
    chinese = next(d for d in docs if "的" in d["text"])
    raw = "\n".join(
        _read_jsonl_zst(root / f"jsonl.zst/part-{docs.index(chinese) % NUM_SHARDS:05d}.jsonl.zst")
    )
    assert "的" in raw  # UTF-8, not \u-escaped


# --------------------------------------------------------------------------- Parquet + dataset card


def _expected_rows(docs: list[dict]) -> list[dict]:
    # datasets orders the shards by file name: shard 0's rows, then shard 1's.
    rows = []
    for shard in range(NUM_SHARDS):
        rows += [
            {"id": d["doc_id"], "text": d["text"], "is_instruction": d["is_instruction"]}
            for d in _shard_docs(docs, shard)
        ]
    return rows


def test_parquet_reads_back_with_datasets(mix, docs, hf_datasets):
    datasets, cache_dir = hf_datasets
    root, _ = mix
    loaded = datasets.load_dataset("parquet", data_dir=str(root / "parquet"), cache_dir=cache_dir)
    assert list(loaded) == ["train"]
    train = loaded["train"]
    assert train.features == datasets.Features(
        {
            "id": datasets.Value("string"),
            "text": datasets.Value("string"),
            "is_instruction": datasets.Value("bool"),
        }
    )
    assert train.to_list() == _expected_rows(docs)
    for shard in range(NUM_SHARDS):
        f = pq.ParquetFile(root / f"parquet/data/train-{shard:05d}-of-{NUM_SHARDS:05d}.parquet")
        assert f.schema_arrow == PARQUET_SCHEMA
        assert f.metadata.row_group(0).column(1).compression == "ZSTD"
        assert f.metadata.num_row_groups == -(-len(_shard_docs(docs, shard)) // 64)


def test_dataset_card_configs_drive_load_dataset(mix, docs, hf_datasets, tmp_path):
    datasets, cache_dir = hf_datasets
    root, _ = mix
    card = (root / "parquet/README.md").read_text(encoding="utf-8")
    front_matter = yaml.safe_load(card.split("---\n")[1])
    assert front_matter == {
        "configs": [{"config_name": "default", "data_files": [{"split": "train", "path": "data/train-*"}]}]
    }
    for key, value in SUMMARY.items():
        assert f"| {key} | {value} |" in card
    assert f"{NUM_SHARDS} Parquet shards" in card

    # A stray Parquet file that datasets' default layout rules would take as a `test` split
    # shows that the card's `configs` is what decides: with the card only `train` is loaded.
    copy = tmp_path / "parquet"
    shutil.copytree(root / "parquet", copy)
    stray = copy / "data/test-00000-of-00001.parquet"
    shutil.copy(copy / f"data/train-00000-of-{NUM_SHARDS:05d}.parquet", stray)
    loaded = datasets.load_dataset(str(copy), cache_dir=cache_dir)
    assert list(loaded) == ["train"]
    assert loaded["train"].to_list() == _expected_rows(docs)

    (copy / "README.md").unlink()
    without_card = datasets.load_dataset(str(copy), cache_dir=cache_dir)
    assert sorted(without_card) == ["test", "train"]


def test_dataset_card_renders_nested_and_text_values(tmp_path):
    summary = {"per_source": {"web": 0.95, "mined": 0.05}, "note": "a|b"}
    written = write_parquet_dataset_card(str(tmp_path), 1, summary)
    card = (tmp_path / "parquet/README.md").read_text(encoding="utf-8")
    assert '| per_source | {"web": 0.95, "mined": 0.05} |' in card
    assert "| note | a\\|b |" in card and "1 Parquet shard," in card
    assert written.path == "parquet/README.md" and _files_under(tmp_path) == ["parquet/README.md"]


# --------------------------------------------------------------------------- Megatron


def _check_megatron_reads_back(megatron, root: Path, docs: list[dict], expected_dtype) -> None:
    for shard in range(NUM_SHARDS):
        expected = _shard_docs(docs, shard)
        ds = megatron.IndexedDataset(str(root / f"megatron/part-{shard:05d}"))
        assert len(ds) == len(expected)
        assert ds.index.dtype == expected_dtype
        for i, doc in enumerate(expected):
            assert ds[i].dtype == expected_dtype
            np.testing.assert_array_equal(ds[i], doc["tokens"])
        np.testing.assert_array_equal(ds.sequence_lengths, [len(d["tokens"]) for d in expected])
        np.testing.assert_array_equal(ds.document_indices, np.arange(len(expected) + 1))


def test_megatron_uint16_reads_back(mix, docs, megatron):
    root, _ = mix
    _check_megatron_reads_back(megatron, root, docs, np.uint16)
    header = (root / "megatron/part-00000.idx").read_bytes()[:18]
    assert header == b"MMIDIDX\x00\x00" + (1).to_bytes(8, "little") + bytes([8])


def test_megatron_int32_reads_back_ids_above_uint16(docs, megatron, tmp_path):
    # Shift the real ids past uint16's range, as a 100k vocabulary produces.
    shifted = [dict(d, tokens=d["tokens"] + 70_000) for d in docs]
    for shard in range(NUM_SHARDS):
        writer = MegatronShardWriter(str(tmp_path), shard, LARGE_VOCAB)
        for doc in _shard_docs(shifted, shard):
            writer.add(doc["doc_id"], doc["text"], doc["is_instruction"], doc["metadata"], doc["tokens"])
        writer.close()
    _check_megatron_reads_back(megatron, tmp_path, shifted, np.int32)
    assert (tmp_path / "megatron/part-00000.idx").read_bytes()[17] == 4


@pytest.mark.parametrize("vocab_size", [BPE_VOCAB, LARGE_VOCAB])
def test_megatron_files_equal_megatrons_own_builder(docs, megatron, tmp_path, vocab_size):
    ours = MegatronShardWriter(str(tmp_path), 0, vocab_size)
    builder = megatron.IndexedDatasetBuilder(
        str(tmp_path / "builder.bin"), dtype=megatron.DType.optimal_dtype(vocab_size)
    )
    for doc in docs:
        ours.add(doc["doc_id"], doc["text"], doc["is_instruction"], doc["metadata"], doc["tokens"])
        builder.add_document(doc["tokens"], [len(doc["tokens"])])
    ours.close()
    builder.finalize(str(tmp_path / "builder.idx"))
    for ext in ("bin", "idx"):
        assert (tmp_path / f"megatron/part-00000.{ext}").read_bytes() == (
            tmp_path / f"builder.{ext}"
        ).read_bytes()


@pytest.mark.parametrize("vocab_size", [1, 500, 65_499, 65_500, 65_535, 65_536, 100_000, 2**31])
def test_megatron_dtype_is_megatrons_optimal_dtype(megatron, vocab_size):
    assert megatron_token_dtype(vocab_size) == np.dtype(megatron.DType.optimal_dtype(vocab_size))


@pytest.mark.parametrize(
    ("vocab_size", "bad_id"), [(500, 500), (500, 65_535), (500, -1), (65_000, 70_000), (100_000, 2**31)]
)
def test_megatron_rejects_token_ids_outside_vocabulary(tmp_path, vocab_size, bad_id):
    writer = MegatronShardWriter(str(tmp_path), 3, vocab_size)
    writer.add("ok", "ok", False, {}, np.array([0, 1, vocab_size - 1]))
    with pytest.raises(
        ValueError, match=rf"shard 3: document 'bad' has token id {bad_id}, outside \[0, {vocab_size}\)"
    ):
        writer.add("bad", "bad", False, {}, np.array([1, bad_id, 2], dtype=np.int64))
    writer.abort()
    assert _files_under(tmp_path) == []


@pytest.mark.parametrize("tokens", [np.array([1.0, 2.0]), np.array([[1, 2]]), ["1", "2"]])
def test_megatron_rejects_tokens_that_are_not_1d_integers(tmp_path, tokens):
    writer = MegatronShardWriter(str(tmp_path), 0, BPE_VOCAB)
    with pytest.raises(ValueError, match="shard 0: document 'd': tokens must be a 1-D integer array"):
        writer.add("d", "t", False, {}, tokens)
    writer.abort()


# --------------------------------------------------------------------------- determinism and atomicity


def test_same_documents_give_byte_identical_files(mix, docs, tmp_path):
    _, first = mix
    again = _write_mix(tmp_path, docs)
    assert [w.as_dict() for w in again] == [w.as_dict() for w in first]


def test_final_names_appear_only_on_close(docs, tmp_path):
    writers = _open_writers(tmp_path, 0)
    for doc in _shard_docs(docs, 0):
        _add(writers, doc)
    hidden = _files_under(tmp_path)
    assert hidden == [
        "jsonl.zst/.part-00000.jsonl.zst.tmp",
        "megatron/.part-00000.bin.tmp",
        f"parquet/data/.train-00000-of-{NUM_SHARDS:05d}.parquet.tmp",
    ]
    written = []
    for writer in writers:
        written += writer.close()
    assert _files_under(tmp_path) == sorted(w.path for w in written)


def test_abort_leaves_no_files(docs, tmp_path):
    writers = _open_writers(tmp_path, 1)
    for doc in _shard_docs(docs, 1)[:40]:
        _add(writers, doc)
    for writer in writers:
        writer.abort()
        writer.abort()  # idempotent: safe in any cleanup path
    assert _files_under(tmp_path) == []
    for writer in writers:
        with pytest.raises(RuntimeError, match="already aborted"):
            writer.add("d", "t", False, {}, np.array([1]))
        with pytest.raises(RuntimeError, match="already aborted"):
            writer.close()


def test_close_twice_is_an_error_and_abort_after_close_keeps_files(tmp_path):
    writers = _open_writers(tmp_path, 0)
    for writer in writers:
        writer.close()
        writer.abort()
        with pytest.raises(RuntimeError, match="already closed"):
            writer.close()
    assert len(_files_under(tmp_path)) == 4


def test_empty_shard_is_valid_in_every_format(docs, tmp_path, megatron, hf_datasets):
    datasets, cache_dir = hf_datasets
    written = []
    for writer in _open_writers(tmp_path, 0):
        written += writer.close()
    assert all(w.bytes > 0 for w in written if not w.path.endswith(".bin"))

    assert _read_jsonl_zst(tmp_path / "jsonl.zst/part-00000.jsonl.zst") == []
    table = pq.read_table(tmp_path / f"parquet/data/train-00000-of-{NUM_SHARDS:05d}.parquet")
    assert table.num_rows == 0 and table.schema == PARQUET_SCHEMA
    # datasets refuses a split with no rows at all, but an empty shard beside others is fine.
    other = ParquetShardWriter(str(tmp_path), 1, NUM_SHARDS)
    _add([other], docs[0])
    other.close()
    loaded = datasets.load_dataset("parquet", data_dir=str(tmp_path / "parquet"), cache_dir=cache_dir)
    assert loaded["train"]["id"] == [docs[0]["doc_id"]]

    # numpy cannot mmap an empty .bin, so an empty shard opens with mmap=False only.
    ds = megatron.IndexedDataset(str(tmp_path / "megatron/part-00000"), mmap=False)
    assert len(ds) == 0 and ds.document_indices.tolist() == [0]
    builder = megatron.IndexedDatasetBuilder(str(tmp_path / "builder.bin"), dtype=np.uint16)
    builder.finalize(str(tmp_path / "builder.idx"))
    assert (tmp_path / "megatron/part-00000.idx").read_bytes() == (tmp_path / "builder.idx").read_bytes()


def test_shard_numbers_are_validated(tmp_path):
    with pytest.raises(ValueError, match=r"shard must be an integer in \[0, 2\), got 2"):
        ParquetShardWriter(str(tmp_path), 2, 2)
    with pytest.raises(ValueError, match="shard must be an integer >= 0, got -1"):
        JsonlZstShardWriter(str(tmp_path), -1)
    with pytest.raises(ValueError, match="vocab_size must be an integer"):
        MegatronShardWriter(str(tmp_path), 0, 0)
    assert os.listdir(tmp_path) == []


# --------------------------------------------------------------------------- object storage


def test_every_format_is_written_to_s3_and_reads_back(docs, megatron, s3_server, s3_bucket, tmp_path, monkeypatch):
    """On an object store each file is written locally, then uploaded whole; the endpoint comes
    only from `storage_options`, as on a Spark executor that never saw the driver's environment."""
    import s3fs

    local_temp = tmp_path / "local-temp"
    local_temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(local_temp))
    options = {"client_kwargs": {"endpoint_url": s3_server}, "key": "testing", "secret": "testing"}
    root = f"{s3_bucket}/mix"
    written = []
    for shard in range(NUM_SHARDS):
        writers = [
            JsonlZstShardWriter(root, shard, storage_options=options),
            ParquetShardWriter(root, shard, NUM_SHARDS, row_group_rows=64, storage_options=options),
            MegatronShardWriter(root, shard, BPE_VOCAB, storage_options=options),
        ]
        for doc in _shard_docs(docs, shard):
            _add(writers, doc)
        for writer in writers:
            written += writer.close()
    written.append(write_parquet_dataset_card(root, NUM_SHARDS, SUMMARY, storage_options=options))
    aborted = JsonlZstShardWriter(root, 7, storage_options=options)
    _add([aborted], docs[0])
    aborted.abort()
    assert list(local_temp.iterdir()) == []  # every local temporary uploaded or discarded

    fs = s3fs.S3FileSystem(**options)
    bucket_root = root.removeprefix("s3://")
    assert sorted(p[len(bucket_root) + 1:] for p in fs.find(bucket_root)) == sorted(w.path for w in written)
    for w in written:
        data = fs.cat_file(f"{bucket_root}/{w.path}")
        assert len(data) == w.bytes and hashlib.sha256(data).hexdigest() == w.sha256
    # The same bytes as the local writers give, so the readers' checks above hold here too.
    assert [w.as_dict() for w in written] == [w.as_dict() for w in _write_mix(tmp_path / "local", docs)]
    with fs.open(f"{bucket_root}/jsonl.zst/part-00000.jsonl.zst", "rb") as raw:
        lines = io.TextIOWrapper(zstandard.ZstdDecompressor().stream_reader(raw), encoding="utf-8").read().splitlines()
    assert [json.loads(line)["id"] for line in lines] == [d["doc_id"] for d in _shard_docs(docs, 0)]
    table = pq.read_table(f"{bucket_root}/parquet/data", filesystem=fs)
    assert table.column("id").to_pylist() == [r["id"] for r in _expected_rows(docs)]
    fs.get(f"{bucket_root}/megatron/", str(tmp_path / "megatron"), recursive=True)
    _check_megatron_reads_back(megatron, tmp_path, docs, np.uint16)


# --------------------------------------------------------------------------- trainer formats: datatrove, OLMo, MDS
#
# The same real documents, each instruction document with a known loss mask (its first third
# of tokens is "prompt"), read back by the trainers' own readers: datatrove's
# DatatroveFolderDataset (nanotron's Nanoset), OLMo-core's NumpyFSLDataset, streaming's
# StreamingDataset. OLMo's EOS is an id no document uses, one past the BPE's vocabulary.

EOS = BPE_VOCAB
TRAINER_VOCAB = BPE_VOCAB + 1
# MDS is written when MosaicML streaming is installed (the `mds` extra; `make test` installs it).
HAVE_STREAMING = importlib.util.find_spec("streaming") is not None


def _known_mask(doc: dict) -> np.ndarray | None:
    if not doc["is_instruction"]:
        return None
    mask = np.ones(len(doc["tokens"]), dtype=np.uint8)
    mask[: len(mask) // 3] = 0
    return mask


def _mask_or_ones(doc: dict) -> np.ndarray:
    mask = _known_mask(doc)
    return np.ones(len(doc["tokens"]), dtype=np.uint8) if mask is None else mask


def _open_trainer_writers(root, shard: int, vocab_size: int = TRAINER_VOCAB, options: dict | None = None) -> list:
    return [
        DatatroveShardWriter(str(root), shard, vocab_size, "samples/tokenizer.json", loss_masks=True,
                             storage_options=options),
        OlmoShardWriter(str(root), shard, vocab_size, vocab_size - 1, loss_masks=True, storage_options=options),
        *([MdsShardWriter(str(root), shard, vocab_size, storage_options=options)] if HAVE_STREAMING else []),
    ]


def _write_trainer_mix(root, docs: list[dict], options: dict | None = None) -> list[WrittenFile]:
    written = []
    for shard in range(NUM_SHARDS):
        writers = _open_trainer_writers(root, shard, options=options)
        for doc in _shard_docs(docs, shard):
            for writer in writers:
                writer.add(doc["doc_id"], doc["text"], doc["is_instruction"], doc["metadata"], doc["tokens"],
                           _known_mask(doc))
        for writer in writers:
            written += writer.close()
    if HAVE_STREAMING:
        written.append(write_mds_index(str(root), NUM_SHARDS, options))
    return written


@pytest.fixture(scope="module")
def trainer_mix(docs, tmp_path_factory) -> tuple[Path, list[WrittenFile]]:
    root = tmp_path_factory.mktemp("trainer_mix")
    return root, _write_trainer_mix(root, docs)


@pytest.fixture(scope="module")
def streaming():
    """MosaicML streaming (the `mds` extra; `make test` installs it)."""
    if not HAVE_STREAMING:
        pytest.skip("mosaicml-streaming is not installed (pip install 'instructmix[mds]')")
    return import_streaming()


def test_trainer_formats_layout_and_shard_file_paths(trainer_mix):
    root, written = trainer_mix
    expected = []
    for shard in range(NUM_SHARDS):
        ds = f"datatrove/part-{shard:05d}.ds"
        expected += [f"{ds}.loss", f"{ds}.index", f"{ds}.metadata", ds,
                     f"olmo/token_ids/part-{shard:05d}.npy", f"olmo/label_mask/part-{shard:05d}.npy"]
        expected += [f"mds/part-{shard:05d}/shard.00000.mds", f"mds/part-{shard:05d}/index.json"] * HAVE_STREAMING
    expected += ["mds/index.json"] * HAVE_STREAMING
    assert [w.path for w in written] == expected
    formats = ["datatrove", "olmo", *(["mds"] * HAVE_STREAMING)]
    assert shard_file_paths(formats, NUM_SHARDS, loss_masks=True) == expected
    assert "datatrove/part-00000.ds.loss" not in shard_file_paths(["datatrove"], NUM_SHARDS)
    assert shard_file_paths(["olmo"], 1) == ["olmo/token_ids/part-00000.npy"]
    assert _files_under(root) == sorted(expected)  # no scratch folder or temp file left
    for w in written:
        data = (root / w.path).read_bytes()
        assert w.bytes == len(data) and w.sha256 == hashlib.sha256(data).hexdigest()


def test_datatrove_reads_back_with_datatrove_folder_dataset(trainer_mix, docs):
    dataset = pytest.importorskip("datatrove.utils.dataset")
    root, _ = trainer_mix
    seq_len = 63
    folder = dataset.DatatroveFolderDataset(str(root / "datatrove"), seq_len=seq_len, token_size=2,
                                            filename_pattern="*.ds", return_positions=True)
    assert [f.file_path for f in folder.files] == [f"part-{s:05d}.ds" for s in range(NUM_SHARDS)]
    windows = []
    for shard, file in enumerate(folder.files):
        expected = _shard_docs(docs, shard)
        tokens = np.concatenate([d["tokens"] for d in expected])
        assert file.fsize // 2 == len(tokens)  # the token count is the documents' (no EOS added)
        ends = np.cumsum([len(d["tokens"]) for d in expected])
        stem = root / f"datatrove/part-{shard:05d}.ds"
        np.testing.assert_array_equal(np.fromfile(f"{stem}.index", dtype="<u8"), ends)
        np.testing.assert_array_equal(
            np.fromfile(f"{stem}.loss", dtype=np.uint8), np.concatenate([_mask_or_ones(d) for d in expected]))
        assert stem.with_name(stem.name + ".metadata").read_text().splitlines()[:2] == [
            "samples/tokenizer.json|2", str(len(tokens))]
        windows += [(tokens[i * (seq_len + 1): (i + 1) * (seq_len + 1)], ends, i) for i in range(len(file))]
    assert len(folder) == len(windows)
    for k, (expected_ids, ends, i) in enumerate(windows):
        item = folder[k]
        np.testing.assert_array_equal(item["input_ids"].numpy(), expected_ids)
        # Positions count from the window's start and restart at every document end the .index records.
        start = i * (seq_len + 1)
        inside = [int(e) - start for e in ends if start < e <= start + seq_len]
        assert item["positions"].tolist() == [j - max([0] + [d for d in inside if d <= j]) for j in range(seq_len + 1)]


def test_datatrove_uses_4_byte_tokens_above_uint16(docs, tmp_path):
    dataset = pytest.importorskip("datatrove.utils.dataset")
    assert datatrove_token_size(65_536) == 2 and datatrove_token_size(65_537) == 4
    writer = DatatroveShardWriter(str(tmp_path), 0, LARGE_VOCAB, "big")
    shifted = [d["tokens"] + 70_000 for d in docs[:30]]
    for doc, tokens in zip(docs, shifted):
        writer.add(doc["doc_id"], doc["text"], False, {}, tokens)
    writer.close()
    assert not (tmp_path / "datatrove/part-00000.ds.loss").exists()
    folder = dataset.DatatroveFolderDataset(str(tmp_path / "datatrove"), seq_len=15, token_size=4,
                                            filename_pattern="*.ds")
    np.testing.assert_array_equal(folder[2]["input_ids"].numpy(), np.concatenate(shifted)[32:48])


def test_olmo_reads_back_with_olmo_core(trainer_mix, docs, tmp_path):
    numpy_dataset = pytest.importorskip("olmo_core.data.numpy_dataset")
    olmo_utils = pytest.importorskip("olmo_core.data.utils")
    root, _ = trainer_mix
    paths = [str(root / f"olmo/token_ids/part-{s:05d}.npy") for s in range(NUM_SHARDS)]
    masks = [str(root / f"olmo/label_mask/part-{s:05d}.npy") for s in range(NUM_SHARDS)]
    seq_len = 64
    ds = numpy_dataset.NumpyFSLDataset(*paths, sequence_length=seq_len, pad_token_id=EOS, eos_token_id=EOS,
                                       vocab_size=TRAINER_VOCAB, dtype=np.uint16, label_mask_paths=masks)
    ds.work_dir = tmp_path
    ds.prepare()
    instances = []
    for shard, path in enumerate(paths):
        expected = _shard_docs(docs, shard)
        ids = np.concatenate([np.append(d["tokens"], EOS) for d in expected])
        mask = np.concatenate([np.append(_mask_or_ones(d), 1) for d in expected])
        # OLMo-core finds the documents by the EOS token, as its document-masked attention does.
        bounds = list(olmo_utils.iter_document_indices(path, eos_token_id=EOS, dtype=np.uint16))
        assert [end - start for start, end in bounds] == [len(d["tokens"]) + 1 for d in expected]
        instances += [(ids[i: i + seq_len], mask[i: i + seq_len]) for i in range(0, len(ids) - seq_len + 1, seq_len)]
    assert len(ds) == len(instances)
    for k, (ids, mask) in enumerate(instances):
        item = ds[k]
        np.testing.assert_array_equal(item["input_ids"].numpy(), ids)
        np.testing.assert_array_equal(item["label_mask"].numpy(), mask.astype(bool))


def test_olmo_layout_is_a_raw_memmap_of_documents_each_ended_by_eos(trainer_mix, docs):
    """What OLMo-core's readers assume, checked without them: np.memmap of the token dtype."""
    root, _ = trainer_mix
    assert olmo_token_dtype(65_536) == np.uint16 and olmo_token_dtype(65_537) == np.uint32
    for shard in range(NUM_SHARDS):
        expected = _shard_docs(docs, shard)
        ids = np.memmap(root / f"olmo/token_ids/part-{shard:05d}.npy", dtype=np.uint16, mode="r")
        pieces = np.split(np.asarray(ids), np.flatnonzero(ids == EOS) + 1)[:-1]
        assert [p.tolist() for p in pieces] == [d["tokens"].tolist() + [EOS] for d in expected]
        mask = np.memmap(root / f"olmo/label_mask/part-{shard:05d}.npy", dtype=np.bool_, mode="r")
        assert len(mask) == len(ids) and set(np.unique(mask.view(np.uint8)).tolist()) <= {0, 1}


def test_mds_reads_back_with_streaming_dataset(trainer_mix, docs, streaming):
    root, _ = trainer_mix
    whole = streaming.StreamingDataset(local=str(root / "mds"), batch_size=1)
    # Every document but the one without tokens, which MDS cannot encode.
    expected = [d for shard in range(NUM_SHARDS) for d in _shard_docs(docs, shard) if len(d["tokens"])]
    assert len(expected) == len(docs) - 1
    assert len(whole) == len(expected)
    for k in (0, 1, len(expected) // 2, len(expected) - 1):
        sample, doc = whole[k], expected[k]
        assert sample["id"] == doc["doc_id"] and sample["text"] == doc["text"]
        assert sample["is_instruction"] == int(doc["is_instruction"])
        assert sample["tokens"].dtype == np.uint16
        np.testing.assert_array_equal(sample["tokens"], doc["tokens"])
    one = streaming.StreamingDataset(local=str(root / "mds/part-00001"), batch_size=1)
    assert [one[i]["id"] for i in range(len(one))] == [d["doc_id"] for d in _shard_docs(docs, 1) if len(d["tokens"])]
    index = json.loads((root / "mds/index.json").read_text())
    assert [s["raw_data"]["basename"] for s in index["shards"]] == [
        f"part-{s:05d}/shard.00000.mds" for s in range(NUM_SHARDS)]


def test_trainer_formats_are_byte_identical_for_the_same_documents(trainer_mix, docs, tmp_path):
    _, first = trainer_mix
    assert [w.as_dict() for w in _write_trainer_mix(tmp_path, docs)] == [w.as_dict() for w in first]


def test_trainer_formats_abort_leaves_no_files(docs, tmp_path):
    writers = _open_trainer_writers(tmp_path, 1)
    for doc in _shard_docs(docs, 1)[:40]:
        for writer in writers:
            writer.add(doc["doc_id"], doc["text"], doc["is_instruction"], {}, doc["tokens"], _known_mask(doc))
    assert _files_under(tmp_path)  # written so far: hidden temp files and scratch folders only
    assert not any(p.startswith(("datatrove/part", "olmo/token_ids/part", "mds/part-00001/shard"))
                   for p in _files_under(tmp_path))
    for writer in writers:
        writer.abort()
        writer.abort()
    assert _files_under(tmp_path) == []
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]  # scratch folders gone too


def test_a_killed_writers_leftovers_are_replaced_by_the_next_attempt(docs, tmp_path):
    """A kill leaves hidden temp files and scratch folders; the shard's next attempt reuses their
    names, so finishing it leaves exactly the shard's files and nothing of the killed one."""
    for _ in range(2):  # two attempts killed mid-shard: neither closes nor aborts
        for writer in _open_trainer_writers(tmp_path, 1):
            for doc in _shard_docs(docs, 1)[:10]:
                writer.add(doc["doc_id"], doc["text"], doc["is_instruction"], {}, doc["tokens"], _known_mask(doc))
    writers = _open_trainer_writers(tmp_path, 1)
    for doc in _shard_docs(docs, 1):
        for writer in writers:
            writer.add(doc["doc_id"], doc["text"], doc["is_instruction"], {}, doc["tokens"], _known_mask(doc))
    written = sorted(f.path for writer in writers for f in writer.close())
    assert _files_under(tmp_path) == written
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]


def test_trainer_formats_check_tokens_and_masks(tmp_path):
    for writer in _open_trainer_writers(tmp_path, 0, vocab_size=100):
        with pytest.raises(ValueError, match=r"shard 0: document 'bad' has token id 100, outside \[0, 100\)"):
            writer.add("bad", "t", False, {}, np.array([1, 100]))
        if not isinstance(writer, MdsShardWriter):
            with pytest.raises(ValueError, match=r"document 'm': loss mask has shape \(1,\), its tokens \(2,\)"):
                writer.add("m", "t", True, {}, np.array([1, 2]), np.array([0]))
        writer.abort()
    with pytest.raises(ValueError, match=r"eos_token_id must be a token id in \[0, 100\), got 100"):
        OlmoShardWriter(str(tmp_path), 0, 100, 100)
    assert _files_under(tmp_path) == []


def test_empty_trainer_shards_are_valid(tmp_path):
    written = []
    for writer in _open_trainer_writers(tmp_path, 0):
        written += writer.close()
    assert {w.path: w.bytes for w in written if not w.path.endswith(("metadata", ".json", ".mds"))} == {
        "datatrove/part-00000.ds.loss": 0, "datatrove/part-00000.ds.index": 0, "datatrove/part-00000.ds": 0,
        "olmo/token_ids/part-00000.npy": 0, "olmo/label_mask/part-00000.npy": 0}
    metadata = (tmp_path / "datatrove/part-00000.ds.metadata").read_text().splitlines()
    assert metadata[:2] == ["samples/tokenizer.json|2", "0"]


def test_an_empty_mds_shard_is_read_through_the_merged_index(docs, tmp_path, streaming):
    MdsShardWriter(str(tmp_path), 0, TRAINER_VOCAB).close()
    second = MdsShardWriter(str(tmp_path), 1, TRAINER_VOCAB)
    second.add(docs[0]["doc_id"], docs[0]["text"], False, {}, docs[0]["tokens"])
    second.close()
    write_mds_index(str(tmp_path), 2)
    whole = streaming.StreamingDataset(local=str(tmp_path / "mds"), batch_size=1)
    assert len(whole) == 1 and whole[0]["id"] == docs[0]["doc_id"]


def test_trainer_formats_are_written_to_s3(docs, s3_server, s3_bucket, tmp_path, monkeypatch):
    import s3fs

    local_temp = tmp_path / "local-temp"
    local_temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(local_temp))
    options = {"client_kwargs": {"endpoint_url": s3_server}, "key": "testing", "secret": "testing"}
    root = f"{s3_bucket}/mix"
    written = _write_trainer_mix(root, docs[:60], options)
    assert list(local_temp.iterdir()) == []  # scratch folders and temp files uploaded or removed
    fs = s3fs.S3FileSystem(**options)
    bucket_root = root.removeprefix("s3://")
    assert sorted(p[len(bucket_root) + 1:] for p in fs.find(bucket_root)) == sorted(w.path for w in written)
    local = _write_trainer_mix(tmp_path / "local", docs[:60])
    assert [w.as_dict() for w in written] == [w.as_dict() for w in local]
