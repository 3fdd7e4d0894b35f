"""The pure helpers of bench/bench_synth_pipeline.py; the benchmark itself is run by hand."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

from tests.conftest import load_bench

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def bench():
    return load_bench("bench_synth_pipeline")


def test_documents_are_repeated_with_new_ids_and_spread_over_files(bench, tmp_path):
    docs = [{"text": "first text", "url": "https://a.example/1"}, {"text": "second text", "url": "https://a.example/2"}]
    folder = bench.write_shards(bench.bench_synth, docs, 5, 2, tmp_path / "docs")
    files = sorted(folder.glob("*.jsonl"))
    rows = [[json.loads(line) for line in f.read_text().splitlines()] for f in files]
    assert [len(r) for r in rows] == [3, 2]
    assert [d["text"] for r in rows for d in r] == ["first text", "second text"] * 2 + ["first text"]


def test_logged_calls_come_back_in_seed_order(bench, tmp_path):
    (tmp_path / "generations-2.jsonl").write_text(json.dumps({"seed": 7, "prompts": [[1]], "outputs": []}) + "\n")
    (tmp_path / "generations-1.jsonl").write_text(json.dumps({"seed": 3, "prompts": [[2]], "outputs": []}) + "\n")
    assert [c["seed"] for c in bench.logged_calls(tmp_path)] == [3, 7]


def test_the_run_book_command_is_one_the_benchmark_accepts(bench):
    readme = (REPO / "cluster" / "README.md").read_text(encoding="utf-8").replace("\n", " ")
    found = re.search(r"`python bench/bench_synth_pipeline\.py ([^`]*)`", readme)
    assert found
    args = bench.parse_args(shlex.split(found.group(1)))
    assert args.gpus == 1 and args.docs >= 1000 and args.json_out is not None
