"""Decontamination: normalisation, tokens, n-grams, the index, benchmark files and the config key."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jobs.config import ConfigError, DecontaminationSettings, MineConfig, validate_config
from jobs.decontamination import Benchmarks, load_benchmarks, worker_index
from transforms.decontaminate import (
    BenchmarkIndex,
    benchmark_texts,
    drop_reason,
    gram_hashes,
    item_grams,
    normalize,
    token_hashes,
    tokens,
)

EN_ITEM = ("Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. "
           "How many clips did Natalia sell altogether in April and May?")
ZH_ITEM = "请你写出一个可以生成五个不同随机数的Python程序，并解释每一行代码的作用。"


def test_normalize_folds_case_width_and_punctuation():
    assert normalize("Hello,   WORLD!!") == "hello world"
    assert normalize("ＦＵＬＬ－ｗｉｄｔｈ") == "full width"
    assert normalize("Don't  stop") == normalize("dont stop") == "dont stop"
    assert normalize("end.Start") == normalize("end. Start")


def test_tokens_split_words_and_han_characters():
    assert tokens("The cat, sat.") == ["the", "cat", "sat"]
    assert tokens("中国的首都是北京。") == list("中国的首都是北京")
    assert tokens("用Python写程序") == ["用", "python", "写", "程", "序"]
    assert tokens("한국어 문장") == ["한국어", "문장"]  # Korean is spaced: words stay whole


def test_gram_hashes_are_deterministic_and_positional():
    h = token_hashes(tokens("a b c d e"))
    assert len(gram_hashes(h, 3)) == 3 and len(gram_hashes(h, 6)) == 0
    assert gram_hashes(h, 3).dtype == np.uint64
    # Fixed values: the same in every process and on every machine (no salted hash()), so an index
    # built on the driver answers the executors.
    assert int(gram_hashes(token_hashes(tokens("the quick brown fox")), 4)[0]) == 1188857529821736666
    assert int(gram_hashes(token_hashes(tokens("中国的首都")), 5)[0]) == 9043442579976628665
    assert gram_hashes(token_hashes(["a", "b"]), 2)[0] != gram_hashes(token_hashes(["b", "a"]), 2)[0]


def test_short_items_count_whole_down_to_the_floor():
    assert len(item_grams("one two three four five six seven", 13, 8)) == 0  # 7 tokens: below the floor
    assert len(item_grams("one two three four five six seven eight nine", 13, 8)) == 1  # whole item
    assert len(item_grams(" ".join(map(str, range(20))), 13, 8)) == 8  # 20 - 13 + 1


def _index(ngram: int = 13) -> BenchmarkIndex:
    return BenchmarkIndex.build([("gsm", [EN_ITEM, "short"]), ("belle", [ZH_ITEM]),
                                 ("tiny", ["Which planet is known as the red planet today"])], ngram=ngram)


def test_index_finds_verbatim_recased_repunctuated_and_embedded_items():
    index = _index()
    assert index.matches(EN_ITEM) == ["gsm"]
    assert index.matches(EN_ITEM.upper().replace(",", " ;").replace("?", "!!")) == ["gsm"]
    embedded = "Here is a worked example. " + EN_ITEM[20:120] + " The answer follows from simple arithmetic."
    assert index.contamination("Solve this", "", embedded) == drop_reason("gsm") == "contaminated.gsm"
    assert index.matches("用中文回答：" + ZH_ITEM.replace("，", " ")) == ["belle"]
    # A short item (9 tokens, under ngram) is caught whole, inside a longer text too.
    assert index.matches("Quiz: which planet is known as the red planet today? Mars.") == ["tiny"]


def test_index_leaves_unrelated_and_partial_text_alone():
    index = _index()
    assert index.matches("Natalia sold clips to her friends.") == []  # 7 tokens of the item: no 13-gram
    assert index.matches("请写一个Python程序。") == []
    assert index.contamination("", "", "") is None
    assert index.matches("short") == []  # below the floor: never indexed


def test_index_reports_every_benchmark_and_counts_the_first():
    index = BenchmarkIndex.build([("a", [EN_ITEM]), ("b", [EN_ITEM]), ("c", [ZH_ITEM])])
    assert index.matches(EN_ITEM) == ["a", "b"]
    assert index.contamination(ZH_ITEM, "", EN_ITEM) == "contaminated.a"
    assert index.sizes()["a"] == index.sizes()["b"] > 0


def test_index_saves_and_opens_memory_mapped(tmp_path):
    index = _index()
    index.save(tmp_path / "idx")
    opened = BenchmarkIndex.open(tmp_path / "idx")
    assert isinstance(opened.hashes, np.memmap)
    assert opened.names == index.names and opened.lengths == index.lengths
    assert opened.matches(EN_ITEM) == ["gsm"]
    # Once per process: the second call returns the same object.
    assert worker_index(str(tmp_path / "idx")) is worker_index(str(tmp_path / "idx"))


def test_benchmark_texts_recurse_or_take_named_fields():
    record = {"q": "What?", "choices": ["x", {"text": "y"}], "answer": 3, "meta": {"source": "z"}}
    assert list(benchmark_texts(record)) == ["What?", "x", "y", "z"]
    assert list(benchmark_texts(record, ["q", "choices"])) == ["What?", "x", "y"]


def _settings(*benchmarks, **kw) -> DecontaminationSettings:
    return validate_config({"decontaminate": {"benchmarks": list(benchmarks), **kw}}, MineConfig).decontaminate


@pytest.mark.parametrize("fmt", ["jsonl", "json_list", "json_dict", "parquet", "csv", "jsonl.gz"])
def test_every_benchmark_format_reads(tmp_path, fmt):
    rows = [{"question": EN_ITEM, "answer": "72"}, {"question": ZH_ITEM, "answer": "见上"}]
    if fmt == "jsonl":
        path = tmp_path / "b.jsonl"
        path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows))
    elif fmt == "jsonl.gz":
        import gzip

        path = tmp_path / "b.jsonl.gz"
        path.write_bytes(gzip.compress("\n".join(json.dumps(r) for r in rows).encode()))
    elif fmt == "json_list":
        path = tmp_path / "b.json"
        path.write_text(json.dumps(rows))
    elif fmt == "json_dict":
        path = tmp_path / "b.json"
        path.write_text(json.dumps({"version": 1, "data": rows}))
    elif fmt == "parquet":
        path = tmp_path / "b.parquet"
        pq.write_table(pa.Table.from_pylist(rows), path)
    else:
        path = tmp_path / "b.csv"
        path.write_text("question,answer\n" + "\n".join(f'"{r["question"]}",{r["answer"]}' for r in rows))
    benchmarks = load_benchmarks(_settings(str(path)), {})
    assert isinstance(benchmarks, Benchmarks)
    assert benchmarks.index.names == ["b"]
    assert benchmarks.index.matches(EN_ITEM) == ["b"] and benchmarks.index.matches(ZH_ITEM) == ["b"]


def test_bad_files_and_fields_name_the_file(tmp_path):
    with pytest.raises(ConfigError, match=r"benchmarks\[0\]: benchmark .*missing.jsonl: cannot read"):
        load_benchmarks(_settings(str(tmp_path / "missing.jsonl")), {})
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"q": "ok"}\nnot json\n')
    with pytest.raises(ConfigError, match=r"bad.jsonl: line 2 is not JSON"):
        load_benchmarks(_settings(str(bad)), {})
    good = tmp_path / "good.jsonl"
    good.write_text(json.dumps({"question": EN_ITEM}))
    with pytest.raises(ConfigError, match=r"good.jsonl: no record holds fields \['prompt'\]; .*\['question'\]"):
        load_benchmarks(_settings({"path": str(good), "fields": ["prompt"]}), {})
    with pytest.raises(ConfigError, match="unknown format"):
        load_benchmarks(_settings(str(tmp_path / "b.txt")), {})
    short = tmp_path / "short.jsonl"
    short.write_text(json.dumps({"q": "too short"}))
    with pytest.raises(ConfigError, match="short has no item of at least min_ngram=8"):
        load_benchmarks(_settings(str(short)), {})


def test_config_key_is_validated_with_the_key_named(tmp_path):
    s = _settings("a/gsm8k.test.jsonl", {"path": "b/mmlu.parquet", "name": "mmlu-all"}, ngram=10)
    assert s.names() == ["gsm8k", "mmlu-all"] and s.ngram == 10 and s.min_ngram == 8
    with pytest.raises(ConfigError, match=r"mine.yaml: decontaminate: min_ngram \(8\) must not exceed ngram \(6\)"):
        validate_config({"decontaminate": {"benchmarks": ["x.jsonl"], "ngram": 6}}, MineConfig, "mine.yaml")
    with pytest.raises(ConfigError, match="two files are named 'test'"):
        validate_config({"decontaminate": {"benchmarks": ["a/test.jsonl", "b/test.jsonl"]}}, MineConfig)
    with pytest.raises(ConfigError, match=r"decontaminate.benchmarks: .*at least 1"):
        validate_config({"decontaminate": {"benchmarks": []}}, MineConfig)
    with pytest.raises(ConfigError, match=r"decontaminate.benchmarks.0.name: String should match"):
        validate_config({"decontaminate": {"benchmarks": [{"path": "x.jsonl", "name": "a.b"}]}}, MineConfig)


def test_fingerprint_changes_with_the_benchmark_file(tmp_path):
    from jobs.mine import mine_fingerprint

    path = tmp_path / "bench.jsonl"
    path.write_text(json.dumps({"q": EN_ITEM}))
    config = validate_config({"decontaminate": {"benchmarks": [str(path)]}}, MineConfig)
    first = mine_fingerprint(config, load_benchmarks(config.decontaminate, {}))
    path.write_text(json.dumps({"q": ZH_ITEM}))  # same path, same config, new content
    second = mine_fingerprint(config, load_benchmarks(config.decontaminate, {}))
    assert first != second != mine_fingerprint(MineConfig())
    other = validate_config({"decontaminate": {"benchmarks": [str(path)], "ngram": 10}}, MineConfig)
    assert mine_fingerprint(other, load_benchmarks(other.decontaminate, {})) != second


def test_a_json_object_without_one_list_is_one_record(tmp_path):
    path = tmp_path / "splits.json"
    path.write_text(json.dumps({"train": [{"q": "not this one"}], "test": [{"q": EN_ITEM}]}))
    benchmarks = load_benchmarks(_settings(str(path)), {})
    assert benchmarks.index.matches(EN_ITEM) == ["splits"]
