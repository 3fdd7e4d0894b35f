"""The whole pipeline on object storage: `instructmix run` on the demo config with its run
directory in a bucket of a real S3 API server on 127.0.0.1 (moto's ThreadedMotoServer, as
s3fs's own tests use), then every output read back from the bucket by its real reader:
pyarrow for the mined and synthesized pairs and the Parquet shards (and Hugging Face `datasets`),
zstandard + json for the JSON Lines shards, Megatron's IndexedDataset for .bin/.idx, the
report page and its numbers.

The inputs stay on local disk (the bundled samples): a run reads from anywhere and writes to
the bucket. The endpoint and keys are passed in the config's `storage_options` as well as in
the environment, so a stage that ignored its storage options would fail here."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import fsspec
import pyarrow.dataset as ds
import pytest
import yaml
import zstandard

from tests.conftest import REPO

pytestmark = pytest.mark.spark
DEMO = REPO / "configs" / "demo.yaml"


@pytest.fixture(scope="module")
def hf_home(tmp_path_factory):
    """`datasets` offline, its home and cache in tmp (set before it is imported)."""
    home = tmp_path_factory.mktemp("hf_home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HOME", str(home))
        mp.setenv("HF_DATASETS_CACHE", str(home / "datasets"))
        mp.setenv("HF_DATASETS_OFFLINE", "1")
        mp.setenv("HF_HUB_OFFLINE", "1")
        yield home


def _run(config: dict, tmp_path, *extra: str) -> tuple[dict, str]:
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "jobs.cli", "run", "--config", str(path), *extra],
                          cwd=REPO, capture_output=True, text=True, timeout=900, check=False)
    assert proc.returncode == 0, proc.stderr[-6000:]
    return json.loads(proc.stdout.strip().splitlines()[-1]), proc.stderr


def test_the_demo_pipeline_runs_with_its_run_directory_on_s3(s3_bucket, s3_server, tmp_path, hf_home):
    options = {"client_kwargs": {"endpoint_url": s3_server}, "key": "testing", "secret": "testing"}
    run = f"{s3_bucket}/runs/demo"
    config = yaml.safe_load(DEMO.read_text(encoding="utf-8"))
    config.update(output=run, storage_options=options)
    config["synth"] = config["synth"][0]  # one section, template_only: the model's own test is test_pipeline
    summary, log = _run(config, tmp_path)
    assert [summary[s]["status"] for s in ("mine", "synth", "mix")] == ["ran"] * 3, log[-3000:]
    fs = fsspec.filesystem("s3", **options)

    # RUN/_pipeline.json: each stage's output URL, in the bucket.
    recorded = json.loads(fs.cat(f"{run}/_pipeline.json"))
    assert {s: r["output"] for s, r in recorded["stages"].items()} == {
        "mine": f"{run}/mined", "synth": f"{run}/synth", "mix": f"{run}/mixed"}
    assert not fs.exists(f"{run}/_lock.json")

    # Mined and synthesized pairs: Parquet datasets read by pyarrow straight from the bucket.
    mined = ds.dataset(f"{run}/mined".removeprefix("s3://"), format="parquet", filesystem=fs).to_table()
    assert mined.num_rows == summary["mine"]["pairs"] > 0
    synth = ds.dataset(f"{run}/synth".removeprefix("s3://"), format="parquet", filesystem=fs).to_table()
    assert synth.num_rows == summary["synth"]["records"] > 0
    assert set(synth.column("mode").to_pylist()) == {"template_only"}
    for stage in ("mined", "synth", "mixed"):
        stats = json.loads(fs.cat(f"{run}/{stage}/_stats.json"))
        assert stats["outputs"] and all(fs.exists(f"{run}/{stage}/{p}") for p in stats["outputs"])
        assert not fs.exists(f"{run}/{stage}/_lock.json")

    # The mix: manifest, then each format through its own reader.
    manifest = json.loads(fs.cat(f"{run}/mixed/manifest.json"))
    assert abs(manifest["realized_ratio"] - 0.05) <= 0.005
    shards = len(manifest["shards"])
    assert shards == summary["mix"]["shards"] >= 1
    lines = []
    for path in sorted(fs.glob(f"{run}/mixed/jsonl.zst/part-*.jsonl.zst")):
        with fs.open(path, "rb") as raw, zstandard.ZstdDecompressor().stream_reader(raw) as reader:
            lines += [json.loads(line) for line in io.TextIOWrapper(reader, encoding="utf-8")]
    assert len(lines) == manifest["docs"]
    assert any(r["metadata"]["is_instruction"] for r in lines) and not all(r["metadata"]["is_instruction"]
                                                                            for r in lines)

    shards_table = ds.dataset(f"{run}/mixed/parquet/data".removeprefix("s3://"), format="parquet",
                              filesystem=fs).to_table()
    assert sorted(shards_table.column("id").to_pylist()) == sorted(r["id"] for r in lines)
    # Hugging Face `datasets` refuses every remote URL in offline mode (this machine has no
    # network), so its reader gets the folder fetched from the bucket, dataset card included.
    from datasets import load_dataset

    fs.get(f"{run}/mixed/parquet/", str(tmp_path / "parquet"), recursive=True)
    parquet = load_dataset("parquet", data_dir=str(tmp_path / "parquet"), split="train",
                           cache_dir=str(hf_home / "datasets"))
    assert [r["id"] for r in parquet] == [r["id"] for r in lines]

    assert sum(s["tokens"] for s in manifest["shards"]) == manifest["tokens"]

    # The report, rendered by the pipeline from the bucket and written into it.
    assert summary["report"]["output"] == f"{run}/report/index.html"
    html = fs.cat(f"{run}/report/index.html").decode("utf-8")
    assert "data:image/png;base64," in html
    numbers = json.loads(fs.cat(f"{run}/report/summary.json"))
    assert all(numbers["stages"][s]["present"] for s in ("mine", "synth", "mix")), numbers["stages"]
    assert numbers["mining"]["pairs_written"] == mined.num_rows
    assert numbers["synth"]["written"] == synth.num_rows
    assert numbers["mixing"]["tokens"] == manifest["tokens"] and len(numbers["mixing"]["shards"]) == shards

    # A re-run finds every stage done in the bucket; `instructmix report` reads the S3 run dir alone.
    again, _ = _run(config, tmp_path)
    assert [again[s]["status"] for s in ("mine", "synth", "mix")] == ["skipped"] * 3
    proc = subprocess.run([sys.executable, "-m", "jobs.cli", "report", run, "--output", f"{s3_bucket}/elsewhere",
                           "--storage-options", json.dumps(options)],
                          cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout)["report"] == f"{s3_bucket}/elsewhere/index.html"
    assert json.loads(fs.cat(f"{s3_bucket}/elsewhere/summary.json"))["mixing"]["tokens"] == manifest["tokens"]

    # Megatron's reader maps local files: the .bin/.idx pairs are fetched from the bucket first.
    megatron = pytest.importorskip("megatron.core.datasets.indexed_dataset")
    local = tmp_path / "megatron"
    fs.get(f"{run}/mixed/megatron/", str(local), recursive=True)
    sequences = sum(len(megatron.IndexedDataset(str(local / f"part-{k:05d}"), mmap=False)) for k in range(shards))
    assert sequences == manifest["docs"]
