"""The decontamination benchmark's harness on a small scale: files of every format, every lookup agreeing."""

from __future__ import annotations

import json

from tests.conftest import load_bench


def test_replicated_benchmarks_are_read_and_every_lookup_agrees(webdata, tmp_path):
    bench = load_bench("bench_decontaminate")
    belle = (webdata / "instructions" / "belle-zh" / "eval_set.json").read_text(encoding="utf-8").splitlines()[3]
    planted = json.loads(belle)["question"]
    pairs = [{"instruction": f"Question {i} about gardening in spring?", "input": "",
              "output": "Water the seedlings every morning and keep them out of the midday sun."} for i in range(20)]
    pairs.append({"instruction": "请回答", "input": "", "output": "题目：" + planted})
    run = bench.measure(5, pairs, tmp_path)  # the 3 stand-ins, 2 marked copies; jsonl, json, parquet, csv, jsonl
    assert run["benchmark_files"] == 5 and run["pairs_checked"] == 21
    assert run["pairs_flagged"] == 1
    assert run["grams_indexed"] > 0 and run["index_bytes"] > 0
