"""The helpers of bench/bench_mix.py; the benchmark itself is run by hand (`make bench`)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import zstandard

REPO = Path(__file__).resolve().parent.parent
TOKENIZER = REPO / "samples" / "tokenizer.json"


@pytest.fixture(scope="module")
def bench():
    """bench_mix imported by name (its floor's worker processes import it that way), with the
    environment it changes at import put back afterwards."""
    saved_env, saved_path = dict(os.environ), list(sys.path)
    sys.path.insert(0, str(REPO / "bench"))
    import bench_mix

    yield bench_mix
    os.environ.clear()
    os.environ.update(saved_env)
    sys.path[:] = saved_path
    sys.modules.pop("bench_mix", None)


def test_master_cores(bench):
    assert bench.master_cores("local") == 1
    assert bench.master_cores("local[2]") == 2
    assert bench.master_cores("local[3, 4]") == 3  # local[N, maxFailures]
    assert bench.master_cores("local[*]") == (os.cpu_count() or 1)
    with pytest.raises(ValueError, match="spark://h:7077"):
        bench.master_cores("spark://h:7077")


def test_instruction_sources_grow_with_the_need_and_keep_every_record(bench, tmp_path):
    seeds = tmp_path / "seeds.jsonl"
    records = [{"id": f"seed_task_{i}", "instruction": f"Task {i}?", "instances": [{"input": "", "output": "ok"}]}
               for i in range(3)]
    seeds.write_text("".join(json.dumps(r) + "\n" for r in records))
    size = seeds.stat().st_size

    folder, copies = bench.write_instruction_source(tmp_path / "src", seeds, need_bytes=10 * size, min_files=2)
    assert copies == int(-(-bench.INSTRUCTION_MARGIN * 10 * size // size))
    files = sorted(folder.glob("part-*.jsonl"))
    assert len(files) >= 2
    rows = [json.loads(line) for f in files for line in f.read_text().splitlines()]
    assert len(rows) == 3 * copies
    assert len({r["id"] for r in rows}) == len(rows)  # a copy number in every id
    assert {r["instruction"] for r in rows} == {r["instruction"] for r in records}

    _, one = bench.write_instruction_source(tmp_path / "small", seeds, need_bytes=1, min_files=1)
    assert one == 1  # at least one whole copy


def test_the_benchmark_mix_is_a_valid_config(bench, tmp_path):
    from jobs.config import MixConfig

    sources = {"a": tmp_path / "a", "b": tmp_path / "b"}
    config = MixConfig.model_validate(bench.mix_config(tmp_path / "pre", TOKENIZER, tmp_path / "out", sources))
    assert [s.name for s in config.instructions] == ["a", "b"]
    assert config.output.formats == bench.FORMATS


def test_the_floor_counts_the_same_tokens_on_one_core_and_on_two(bench, tmp_path):
    texts = [f"Document {i}: some words to tokenize, again and again." for i in range(600)]
    paths = []
    for f in range(3):
        lines = "".join(json.dumps({"url": f"https://x.example/{i}", "text": t}) + "\n" for i, t in enumerate(texts[f::3]))
        path = tmp_path / f"web-{f}.jsonl.zst"
        path.write_bytes(zstandard.ZstdCompressor().compress(lines.encode()))
        paths.append(path)

    one = bench.bench_tokenize(paths, TOKENIZER, 1.0, "encode_batch_fast", 1)
    two = bench.bench_tokenize(paths, TOKENIZER, 1.0, "encode_batch_fast", 2)
    assert one["tokens"] == two["tokens"] > 600
    assert one["MBps"] > 0 and two["MBps"] > 0
