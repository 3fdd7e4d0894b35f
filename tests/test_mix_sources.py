import collections
import gzip
import json
import logging
import uuid

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from tests.conftest import SAMPLES, WEBDATA
from transforms.io.mix_inputs import (
    PRETRAIN_ENDINGS,
    InstructionRecord,
    PretrainDoc,
    expand_paths,
    iter_instruction_records,
    iter_pretrain_docs,
)
from transforms.records import PAIR_SCHEMA, Provenance

# --------------------------------------------------------------------------- pretraining documents

# Good lines mixed with every kind of bad one; 4 documents survive.
PRETRAIN_LINES = [
    json.dumps({"text": "First document.", "url": "https://a.example/1"}),
    "{not json",
    json.dumps({"body": "no text field"}),
    json.dumps({"text": None}),
    json.dumps({"text": 42}),
    json.dumps({"text": ""}),
    json.dumps({"text": "  \n\t"}),
    json.dumps(["an", "array"]),
    "",
    json.dumps({"text": "Second, url in metadata.", "metadata": {"url": "https://a.example/2"}}),
    json.dumps({"text": "Third, only an id.", "id": "doc-3"}),
    json.dumps({"text": "第四篇文档。", "url": "https://a.example/4"}, ensure_ascii=False),
]
PRETRAIN_SKIPS = {
    "skip:bad_json": 1,
    "skip:missing_field": 3,
    "skip:empty_text": 2,
    "skip:bad_record": 1,
}
EXPECTED_DOCS = [
    (0, "First document.", "https://a.example/1", "line 1"),
    (1, "Second, url in metadata.", "https://a.example/2", "line 10"),
    (2, "Third, only an id.", "doc-3", "line 11"),
    (3, "第四篇文档。", "https://a.example/4", "line 12"),
]


def jsonl_bytes(lines: list[str]) -> bytes:
    return ("\n".join(lines) + "\n").encode("utf-8")


def write_compressed(path, data: bytes) -> str:
    """Plain, gzip (one member per line, as dolma writes) or zstd, by the file's ending."""
    name = str(path)
    if name.endswith(".gz"):
        data = b"".join(gzip.compress(line + b"\n", mtime=0) for line in data.splitlines())
    elif name.endswith(".zst"):
        data = zstandard.ZstdCompressor().compress(data)
    path.write_bytes(data)
    return name


def read_docs(path, text_field="text", **kwargs):
    counters = collections.Counter()
    docs = list(iter_pretrain_docs(str(path), text_field, counters, **kwargs))
    return docs, counters


def summary(docs):
    return [(d.index, d.text, d.url, d.provenance.source_record) for d in docs]


@pytest.mark.parametrize(
    "name", ["docs.jsonl", "docs.jsonl.gz", "docs.jsonl.zst", "docs.json.gz", "docs.json"]
)
def test_json_lines_keep_good_docs_around_bad_ones(tmp_path, name):
    path = write_compressed(tmp_path / name, jsonl_bytes(PRETRAIN_LINES))
    docs, counters = read_docs(path)
    assert summary(docs) == EXPECTED_DOCS
    assert all(d.provenance.source_file == path for d in docs)
    assert dict(counters) == PRETRAIN_SKIPS


def test_a_json_array_is_read_item_by_item(tmp_path):
    path = tmp_path / "docs.json"
    path.write_text(json.dumps([{"text": "one"}, {"text": ""}, "x", {"text": "two", "url": "u"}]))
    docs, counters = read_docs(path)
    assert summary(docs) == [(0, "one", "", "item 0"), (1, "two", "u", "item 3")]
    assert counters == {"skip:empty_text": 1, "skip:bad_record": 1}


def test_indexing_is_the_same_on_every_read(tmp_path):
    path = write_compressed(tmp_path / "docs.jsonl.zst", jsonl_bytes(PRETRAIN_LINES * 50))
    first, _ = read_docs(path)
    second, _ = read_docs(path)
    assert first == second
    assert [d.index for d in first] == list(range(200))


def test_undecodable_lines_and_lone_surrogates(tmp_path):
    path = tmp_path / "docs.jsonl"
    path.write_bytes(
        b'{"text": "good"}\n{"text": "caf\xe9"}\n{"text": "half \\ud83d pair"}\n{"text": "end"}\n'
    )
    docs, counters = read_docs(path)
    assert [d.text for d in docs] == ["good", "half \ufffd pair", "end"]
    assert counters["skip:undecodable"] == 1 and counters["repaired:lone_surrogate"] == 1


def test_a_cut_gzip_keeps_the_lines_before_the_cut(tmp_path):
    full = b"".join(gzip.compress(jsonl_bytes([json.dumps({"text": f"doc {i}"})]), mtime=0) for i in range(5))
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(full[: len(full) - 10])
    docs, counters = read_docs(path)
    assert [d.text for d in docs] == ["doc 0", "doc 1", "doc 2", "doc 3"]
    assert counters["skip:truncated_archive"] == 1


def test_a_cut_zstd_frame_is_a_truncated_archive(tmp_path):
    data = zstandard.ZstdCompressor().compress(
        jsonl_bytes([json.dumps({"text": f"doc {i}"}) for i in range(50)])
    )
    path = tmp_path / "cut.jsonl.zst"
    path.write_bytes(data[:-8])
    docs, counters = read_docs(path)
    assert counters["skip:truncated_archive"] == 1
    assert [d.index for d in docs] == list(range(len(docs)))


def test_corrupt_bytes_after_good_members(tmp_path):
    path = tmp_path / "corrupt.jsonl.gz"
    good = gzip.compress(jsonl_bytes([json.dumps({"text": "kept"})]), mtime=0)
    path.write_bytes(good + b"\x1f\x8b\x08\x00" + b"garbage" * 20)
    docs, counters = read_docs(path)
    assert [d.text for d in docs] == ["kept"]
    assert counters["skip:corrupt_archive"] == 1


# Unreadable, empty and missing files: tests/test_io_paths.py, the same for every reader.


def test_parquet_rows(tmp_path):
    path = tmp_path / "docs.parquet"
    table = pa.table(
        {
            "text": ["one", None, "", "two", "three"],
            "metadata": [
                {"url": "https://p.example/1"},
                None,
                None,
                {"url": None},
                {"url": "https://p.example/3"},
            ],
            "other": [1, 2, 3, 4, 5],
        }
    )
    pq.write_table(table, path, row_group_size=2)
    docs, counters = read_docs(path)
    assert summary(docs) == [
        (0, "one", "https://p.example/1", "row 0"),
        (1, "two", "", "row 3"),
        (2, "three", "https://p.example/3", "row 4"),
    ]
    assert counters == {"skip:missing_field": 1, "skip:empty_text": 1}


def test_parquet_binary_text_and_missing_column(tmp_path):
    path = tmp_path / "binary.parquet"
    pq.write_table(pa.table({"content": [b"ok", b"\xff\xfe", None], "url": ["a", "b", "c"]}), path)
    docs, counters = read_docs(path, text_field="content")
    assert summary(docs) == [(0, "ok", "a", "row 0")]
    assert counters == {"skip:undecodable": 1, "skip:missing_field": 1}
    docs, counters = read_docs(path, text_field="text")
    assert docs == [] and counters == {"skip:missing_field": 3}


def test_bundled_sample_shards():
    docs, counters = read_docs(SAMPLES / "web-00001.jsonl.zst", "text")
    assert [d.url for d in docs] == [
        "https://www.eastside-garden.example/plots/questions",
        "https://www.zufang-zhinan.example/wenda/tuizu",
    ]
    assert counters == {"skip:missing_field": 4}
    docs, counters = read_docs(SAMPLES / "web-00002.parquet", "html")
    assert len(docs) == 3 and counters["skip:missing_field"] == 1


@pytest.fixture
def memory_root():
    root = f"memory:///mix-{uuid.uuid4().hex}"  # the form fsspec gives back
    yield root
    fs = fsspec.filesystem("memory")
    if fs.exists(root):
        fs.rm(root, recursive=True)


def test_fsspec_urls(memory_root):
    with fsspec.open(f"{memory_root}/pretrain/docs.jsonl.zst", "wb") as f:
        f.write(zstandard.ZstdCompressor().compress(jsonl_bytes(PRETRAIN_LINES)))
    buf = pa.BufferOutputStream()
    pq.write_table(pa.table({"text": ["parquet doc"], "url": ["u"]}), buf)
    with fsspec.open(f"{memory_root}/pretrain/more.parquet", "wb") as f:
        f.write(buf.getvalue().to_pybytes())
    paths = expand_paths([f"{memory_root}/pretrain"])
    assert paths == [f"{memory_root}/pretrain/docs.jsonl.zst", f"{memory_root}/pretrain/more.parquet"]
    docs, counters = read_docs(paths[0])
    assert summary(docs) == EXPECTED_DOCS and docs[0].provenance.source_file == paths[0]
    assert counters == PRETRAIN_SKIPS
    docs, _ = read_docs(paths[1])
    assert summary(docs) == [(0, "parquet doc", "u", "row 0")]


# --------------------------------------------------------------------------- expanding paths


def test_expand_paths_over_a_spark_output_folder(tmp_path):
    out = tmp_path / "mined"
    (out / "_temporary" / "0").mkdir(parents=True)
    for name in ["part-00001.parquet", "part-00000.parquet", "_SUCCESS", "_stats.json", ".part-00000.parquet.crc",
                 "_temporary/0/part-9.parquet", "notes.txt"]:  # fmt: skip
        (out / name).write_bytes(b"x")
    assert expand_paths([str(out)]) == [str(out / "part-00000.parquet"), str(out / "part-00001.parquet")]


def test_expand_paths_globs_and_endings(tmp_path):
    for name in ["a.jsonl", "b.json", "c.parquet", "d.warc.gz", "e.jsonl.zst", "README.md"]:
        (tmp_path / name).write_bytes(b"x")
    every = expand_paths([str(tmp_path / "*"), str(tmp_path / "a.jsonl")])
    assert [p.rsplit("/", 1)[1] for p in every] == ["a.jsonl", "b.json", "c.parquet", "e.jsonl.zst"]
    pretrain = expand_paths([str(tmp_path / "*")], endings=PRETRAIN_ENDINGS)
    assert [p.rsplit("/", 1)[1] for p in pretrain] == ["a.jsonl", "c.parquet", "e.jsonl.zst"]
    with pytest.raises(ValueError, match="d.warc.gz.*unsupported file type"):
        expand_paths([str(tmp_path / "d.warc.gz")])
    with pytest.raises(FileNotFoundError, match="does not exist"):
        expand_paths([str(tmp_path / "nope.jsonl")])
    with pytest.raises(FileNotFoundError, match="no file matched"):
        expand_paths([str(tmp_path / "*.md")])


# --------------------------------------------------------------------------- instruction records

ALPACA_ITEMS = [
    {"instruction": "Add the numbers.", "input": "2 and 3", "output": "5"},
    {"input": "no instruction", "output": "x"},
    {"instruction": "   ", "output": "blank instruction"},
    {"instruction": "No output."},
    {"instruction": "Null output.", "output": None},
    {"instruction": "Bad input type.", "input": ["a"], "output": "x"},
    {"instruction": "Bad system.", "system": 3, "output": "x"},
    {"instruction": "History is text.", "output": "x", "history": "earlier"},
    {"instruction": "History turn of one.", "output": "x", "history": [["only the user"]]},
    {"instruction": "History with a number.", "output": "x", "history": [["q", 1]]},
    "not an object",
    {
        "instruction": "And in French?",
        "input": None,
        "output": "Bonjour.",
        "system": "You translate.",
        "history": [["Say hello in German.", "Hallo."]],
        "lang": "EN",
        "url": "https://t.example/1",
    },
]
ALPACA_SKIPS = {
    "skip:missing_instruction": 2,
    "skip:missing_output": 2,
    "skip:bad_input": 1,
    "skip:bad_system": 1,
    "skip:bad_history": 3,
    "skip:bad_record": 1,
}


def read_records(path, **kwargs):
    counters = collections.Counter()
    return list(iter_instruction_records(str(path), counters, **kwargs)), counters


def check_alpaca_records(records, path, first_number, locator):
    assert [r.instruction for r in records] == ["Add the numbers.", "And in French?"]
    first, last = records
    assert first == InstructionRecord(
        key=f"{path}#{first_number}",
        instruction="Add the numbers.",
        input="2 and 3",
        output="5",
        system="",
        history=[],
        lang="",
        provenance=Provenance(source_file=str(path), source_record=f"{locator} {first_number}"),
    )
    assert last.key == f"{path}#{first_number + 11}"
    assert (last.input, last.system, last.history) == (
        "",
        "You translate.",
        [("Say hello in German.", "Hallo.")],
    )
    assert (last.lang, last.source_url) == ("en", "https://t.example/1")


def test_alpaca_json_array(tmp_path):
    path = tmp_path / "alpaca.json"
    path.write_text(json.dumps(ALPACA_ITEMS, indent=2))
    records, counters = read_records(path)
    check_alpaca_records(records, path, 0, "item")
    assert dict(counters) == ALPACA_SKIPS


@pytest.mark.parametrize("name", ["alpaca.jsonl", "alpaca.jsonl.gz", "alpaca.jsonl.zst", "belle-style.json"])
def test_alpaca_json_lines(tmp_path, name):
    lines = (
        [json.dumps(item) for item in ALPACA_ITEMS[:5]]
        + ["{broken"]
        + [json.dumps(i) for i in ALPACA_ITEMS[5:]]
    )
    path = write_compressed(tmp_path / name, jsonl_bytes(lines))
    records, counters = read_records(path)
    assert [r.provenance.source_record for r in records] == ["line 1", "line 13"]
    assert [r.key for r in records] == [f"{path}#1", f"{path}#13"]
    assert dict(counters) == {**ALPACA_SKIPS, "skip:bad_json": 1}


def test_a_json_array_that_does_not_parse_is_one_bad_json(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('[{"instruction": "a", "output": "b"},')
    assert read_records(path) == ([], {"skip:bad_json": 1})


def test_self_instruct_tasks_give_one_record_per_instance(tmp_path):
    path = tmp_path / "seed_tasks.jsonl"
    task = {"id": "seed_task_1", "instruction": "Antonym?", "instances": [{"input": "hot", "output": "cold"},
            {"input": "up", "output": ""}, {"input": "big", "output": "small"}], "is_classification": False}  # fmt: skip
    path.write_text(json.dumps(task) + "\n" + json.dumps({"instruction": "none", "instances": []}) + "\n")
    records, counters = read_records(path)
    assert [(r.key, r.input, r.output) for r in records] == [
        (f"{path}#1.0", "hot", "cold"),
        (f"{path}#1.2", "big", "small"),
    ]
    assert records[1].provenance == Provenance(source_file=str(path), source_record="line 1 instance 2")
    assert counters == {"skip:missing_output": 2}


def mined_rows(n: int, start: int = 0) -> list[dict]:
    return [
        {
            "id": f"id-{i:03d}" if i != 1 else "",
            "instruction": f"Question {i}?",
            "input": "",
            "output": f"Answer {i}." if i != 2 else "",
            "kind": "faq",
            "miner": "faq_sections",
            "confidence": 0.8,
            "lang": "zh" if i % 2 else "en",
            "lang_score": 0.9,
            "source_url": f"https://m.example/{i}",
            "source_file": "/data/web-00000.warc.gz",
            "source_record": f"<urn:uuid:{i}>",
            "title": "FAQ",
            "classifier_score": None,
        }
        for i in range(start, start + n)
    ]


def test_mined_parquet_folder_as_spark_writes_it(tmp_path):
    out = tmp_path / "mined"
    out.mkdir()
    pq.write_table(pa.Table.from_pylist(mined_rows(3), schema=PAIR_SCHEMA), out / "part-00000.parquet")
    extra = pa.Table.from_pylist(mined_rows(2, start=10), schema=PAIR_SCHEMA).append_column(
        "new_column", pa.array([1, 2])
    )
    pq.write_table(extra, out / "part-00001.parquet")
    (out / "_SUCCESS").write_bytes(b"")
    (out / "_stats.json").write_text(json.dumps({"pairs": 5}))
    records, counters = read_records(out)
    part0 = str(out / "part-00000.parquet")
    assert [r.key for r in records] == ["id-000", f"{part0}#1", "id-010", "id-011"]
    assert [r.lang for r in records] == ["en", "zh", "en", "zh"]
    assert records[0].source_url == "https://m.example/0"
    # A mined pair keeps its page's provenance; its key (the pair id) finds the mined row.
    assert records[0].provenance == Provenance("https://m.example/0", "/data/web-00000.warc.gz", "<urn:uuid:0>")
    assert records[1].provenance.source_record == "<urn:uuid:1>"
    assert counters == {"skip:missing_output": 1}
    assert read_records(out / "part-00000.parquet")[0] == records[:2]


def test_parquet_without_instruction_column(tmp_path, caplog):
    path = tmp_path / "other.parquet"
    pq.write_table(pa.table({"question": ["q1", "q2"], "answer": ["a1", "a2"]}), path)
    with caplog.at_level(logging.WARNING, logger="transforms.io.mix_inputs"):
        records, counters = read_records(path)
    assert records == []
    assert counters == {"skip:missing_instruction": 2}
    assert str(path) in caplog.text


def test_instruction_records_over_fsspec(memory_root):
    with fsspec.open(f"{memory_root}/instr/alpaca.jsonl.gz", "wb") as f:
        f.write(gzip.compress(jsonl_bytes([json.dumps(i) for i in ALPACA_ITEMS]), mtime=0))
    records, counters = read_records(f"{memory_root}/instr")
    assert [r.key for r in records] == [
        f"{memory_root}/instr/alpaca.jsonl.gz#1",
        f"{memory_root}/instr/alpaca.jsonl.gz#12",
    ]
    assert counters == ALPACA_SKIPS


def test_a_path_that_names_nothing_raises(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_records(tmp_path / "missing.json")


def test_the_bundled_alpaca_sample():
    path = SAMPLES / "alpaca-sample.json"
    records, counters = read_records(path)
    assert counters == {}
    assert sum(bool(r.input) for r in records) >= 5
    assert sum(bool(r.system) for r in records) == 1
    assert sum(bool(r.history) for r in records) == 2
    has_han = [any("\u4e00" <= ch <= "\u9fff" for ch in r.instruction) for r in records]
    assert 10 <= sum(has_han) <= 20
    assert records == read_records(path)[0]
    assert len({r.key for r in records}) == 30


def test_real_self_instruct_seed_tasks(webdata):
    for path in (WEBDATA / "instructions/alpaca-self-instruct-seed/seed_tasks.jsonl",
                 WEBDATA / "instructions/belle-zh/zh_seed_tasks.json"):  # fmt: skip
        lines = sum(1 for line in path.open(encoding="utf-8") if line.strip())
        records, counters = read_records(path)
        assert len(records) >= lines and counters == {}
        assert all(r.instruction.strip() and r.output.strip() for r in records)
        assert len({r.key for r in records}) == len(records)


def test_a_file_that_is_not_alpaca_is_counted_and_explained(webdata, caplog):
    # BELLE's eval set holds question/std_answer/class: JSON Lines under a .json name.
    path = WEBDATA / "instructions/belle-zh/eval_set.json"
    lines = sum(1 for line in path.open(encoding="utf-8") if line.strip())
    with caplog.at_level(logging.WARNING, logger="transforms.io.mix_inputs"):
        records, counters = read_records(path)
    assert records == []
    assert counters == {"skip:missing_instruction": lines}
    (message,) = [r.getMessage() for r in caplog.records if "eval_set.json" in r.getMessage()]
    assert "expected Alpaca fields instruction, input, output" in message
    assert "class, question, std_answer" in message


def test_records_are_plain_slotted_dataclasses():
    assert not hasattr(PretrainDoc(0, "t", Provenance()), "__dict__")
    assert not hasattr(InstructionRecord("k", "i", "", "o", "", [], "", Provenance()), "__dict__")
    assert not hasattr(Provenance(), "__dict__")


def test_instruction_parquet_row_groups_read_alone_give_the_same_records_and_locators(tmp_path):
    rows = [{"instruction": f"Question {i}?", "input": "", "output": f"Answer {i}."} for i in range(25)]
    path = tmp_path / "pairs.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=10)  # groups of 10, 10, 5
    whole = list(iter_instruction_records(str(path), collections.Counter()))
    parts = [r for groups in ((0, 1), (1, 3)) for r in
             iter_instruction_records(str(path), collections.Counter(), row_groups=groups)]
    assert [(r.key, r.provenance.source_record, r.output) for r in parts] == \
        [(r.key, r.provenance.source_record, r.output) for r in whole]
    assert [r.provenance.source_record for r in parts][10] == "row 10"
