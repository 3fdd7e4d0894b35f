"""Synthesis outputs a user can trust: work keyed by the config, one run per folder,
nothing foreign replaced, stale outputs removed, checks before Ray, and S3 end to end."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from jobs.config import SynthConfig, validate_config
from jobs.errors import UserError
from jobs.synth import OUTPUT_FILE, STATS_FILE, WORK_DIR, run_synth
from jobs.workdir import StageOutput
from tests.conftest import REPO
from transforms.stats import stats_document


@pytest.fixture
def few_documents(sample_documents, tmp_path):
    """The first 12 sample documents: enough for two batches of 8, quick on the tiny LLM."""
    path = tmp_path / "docs" / "docs.jsonl"
    path.parent.mkdir()
    path.write_text("".join(sample_documents.read_text(encoding="utf-8").splitlines(keepends=True)[:12]),
                    encoding="utf-8")
    return path


@pytest.fixture
def no_ray(monkeypatch):
    """Any start of Ray fails the test: the check must come before it."""
    import jobs.engines.ray

    def refuse(*args, **kwargs):
        raise AssertionError("Ray was started before the error was found")

    monkeypatch.setattr(jobs.engines.ray, "init_ray", refuse)


def _llm_config(model, seed: int) -> SynthConfig:
    return validate_config({
        "model": str(model),
        "engine": {"actors": 1, "gpus_per_actor": 0, "gpu_memory_utilization": 0.2, "max_model_len": 1024,
                   "batch_size": 16},
        "sampling": {"temperature": 0.7, "top_p": 0.95, "max_tokens": 32, "seed": seed},
        "documents_per_batch": 8,
        "min_answer_share": 0,  # a random-weight model's text shares no words with any passage
    }, SynthConfig, "synth.yaml")


def _work_dirs(out) -> list[str]:
    return sorted(p.name for p in (out / WORK_DIR).iterdir())


def test_a_changed_sampling_seed_or_model_never_reuses_old_batches(tiny_llm, few_documents, tmp_path):
    """The issue's bug: `_work/<mode>` let a run with new `sampling:` or `model:` publish old completions."""
    out = tmp_path / "out"
    first = run_synth([str(few_documents)], str(out), "template", _llm_config(tiny_llm, seed=0))
    rows_first = pq.read_table(out / OUTPUT_FILE).to_pylist()
    assert rows_first and first["counters"]["synth.batches.resumed"] == 0
    work_first = _work_dirs(out)
    assert len(work_first) == 1 and len(work_first[0]) == 16

    again = run_synth([str(few_documents)], str(out), "template", _llm_config(tiny_llm, seed=0))
    assert again["counters"]["synth.batches.resumed"] == again["counters"]["synth.batches.done"] == 2
    assert again["fingerprint"] == first["fingerprint"]
    assert pq.read_table(out / OUTPUT_FILE).to_pylist() == rows_first

    reseeded = run_synth([str(few_documents)], str(out), "template", _llm_config(tiny_llm, seed=1))
    assert reseeded["counters"]["synth.batches.resumed"] == 0 and reseeded["fingerprint"] != first["fingerprint"]
    rows_reseeded = pq.read_table(out / OUTPUT_FILE).to_pylist()
    assert {json.loads(r["sampling"])["seed"] for r in rows_reseeded} == {1}
    assert [r["output"] for r in rows_reseeded] != [r["output"] for r in rows_first]
    assert _work_dirs(out) != work_first and len(_work_dirs(out)) == 1  # the old config's work is gone

    other_model = shutil.copytree(tiny_llm, tmp_path / "other-model")
    moved = run_synth([str(few_documents)], str(out), "template", _llm_config(other_model, seed=1))
    assert moved["counters"]["synth.batches.resumed"] == 0
    assert {r["model"] for r in pq.read_table(out / OUTPUT_FILE).to_pylist()} == {str(other_model)}


def test_stale_outputs_of_the_previous_run_are_removed_and_foreign_files_need_overwrite(sample_documents, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    # A previous synthesis run (an older version) published two parts; this one writes one.
    pq.write_table(pa.table({"instruction": ["old"], "output": ["old"]}), out / "part-00001.parquet")
    (out / STATS_FILE).write_text(json.dumps(stats_document(
        "synth", {}, run_id="old", fingerprint="f", elapsed_seconds=1,
        outputs=["part-00000.parquet", "part-00001.parquet"])))
    stats = run_synth([str(sample_documents)], str(out), "template_only")
    assert sorted(p.name for p in out.iterdir()) == sorted([OUTPUT_FILE, STATS_FILE, WORK_DIR])
    assert stats["outputs"] == [OUTPUT_FILE] and stats["stage"] == "synth"
    written = stats["counters"]["synth.records.written"]
    assert written > 0 and ds.dataset(out, format="parquet").count_rows() == written
    assert sum(v for k, v in stats["counters"].items() if k.startswith("synth.records.task_type.")) == written
    assert sum(v for k, v in stats["counters"].items() if k.startswith("synth.records.lang.")) == written
    assert stats["counters"]["synth.documents.read"] > 0 and stats["counters"]["synth.instructions.filled"] > 0

    (out / "notes.txt").write_text("mine, not synthesis's", encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "jobs.cli", "synth", "--mode", "template_only",
                           "--input", str(sample_documents), "--output", str(out)],
                          check=False, capture_output=True, text=True, timeout=300, cwd=REPO)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert proc.stderr.strip().count("\n") == 0 and "notes.txt" in proc.stderr and "--overwrite" in proc.stderr
    assert (out / "notes.txt").exists()

    again = run_synth([str(sample_documents)], str(out), "template_only", overwrite=True)
    assert not (out / "notes.txt").exists()
    assert again["counters"]["synth.batches.resumed"] == again["counters"]["synth.batches.done"]
    assert again["counters"]["synth.records.written"] == written


def _bad_case(case: str, sample_documents, tmp_path):
    """(inputs, output, config) of one case that must fail before Ray starts."""
    out = tmp_path / "out"
    if case == "glob_matches_nothing":
        return [str(tmp_path / "nowhere" / "*.jsonl")], out, SynthConfig()
    if case == "output_is_a_file":
        out.write_text("x", encoding="utf-8")
        return [str(sample_documents)], out, SynthConfig()
    if case == "missing_templates":
        return [str(sample_documents)], out, SynthConfig(templates=str(tmp_path / "no-templates"))
    if case == "output_is_the_input_folder":
        return [str(sample_documents.parent)], sample_documents.parent, SynthConfig()
    if case == "foreign_file":
        out.mkdir()
        (out / "data.parquet").write_bytes(b"the user's own")
        return [str(sample_documents)], out, SynthConfig()
    raise AssertionError(case)


@pytest.mark.parametrize(("case", "error", "match"), [
    ("glob_matches_nothing", FileNotFoundError, "nowhere"),
    ("output_is_a_file", UserError, "is a file"),
    ("missing_templates", ValueError, "no-templates"),
    ("output_is_the_input_folder", UserError, "overlaps the input"),
    ("foreign_file", UserError, "data.parquet"),
])
def test_what_the_driver_can_check_fails_before_ray_starts(no_ray, sample_documents, tmp_path, case, error, match):
    inputs, out, config = _bad_case(case, sample_documents, tmp_path)
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    with pytest.raises(error, match=match):
        run_synth(inputs, str(out), "template_only", config)
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before  # nothing written, nothing removed


def test_a_second_run_into_a_held_folder_stops_naming_the_holder(no_ray, sample_documents, tmp_path):
    holder = StageOutput("synth", str(tmp_path / "out"))
    with holder.lock(), pytest.raises(UserError, match=f"in use by another synth run \\({holder.run_id}"):
        run_synth([str(sample_documents)], str(tmp_path / "out"), "template_only")
    assert not (tmp_path / "out" / OUTPUT_FILE).exists()


def test_template_only_reads_and_writes_the_local_s3_server(s3_server, s3_bucket, sample_documents, tmp_path):
    """Documents in, checkpoints, Parquet and stats out, all on S3; the endpoint reaches the
    job only through `storage_options` (the environment names a dead one)."""
    import s3fs
    import yaml

    options = {"client_kwargs": {"endpoint_url": s3_server}, "key": "testing", "secret": "testing"}
    fs = s3fs.S3FileSystem(**options)
    fs.put(str(sample_documents), f"{s3_bucket}/docs/docs.jsonl")
    config = tmp_path / "synth.yaml"
    config.write_text(yaml.safe_dump({"storage_options": options}), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["AWS_ENDPOINT_URL"] = "http://127.0.0.1:9"  # nothing listens there
    output = f"{s3_bucket}/synth"
    proc = subprocess.run([sys.executable, "-m", "jobs.cli", "synth", "--mode", "template_only",
                           "--input", f"{s3_bucket}/docs/*.jsonl", "--output", output, "--config", str(config)],
                          check=False, capture_output=True, text=True, timeout=600, cwd=REPO, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    fs.invalidate_cache()
    stats = json.loads(fs.cat(f"{output}/{STATS_FILE}"))
    assert stats["stage"] == "synth" and stats["outputs"] == [OUTPUT_FILE]
    table = ds.dataset(output.removeprefix("s3://"), format="parquet", filesystem=fs).to_table()
    assert table.num_rows == stats["counters"]["synth.records.written"] == json.loads(proc.stdout)["written"] > 0
    assert {r["mode"] for r in table.to_pylist()} == {"template_only"}
    assert not fs.exists(f"{output}/_lock.json")
    batches = fs.glob(f"{output}/{WORK_DIR}/*/batch-*.parquet")
    assert len(batches) == stats["counters"]["synth.batches.done"] > 0
    local = run_synth([str(sample_documents)], str(tmp_path / "local"), "template_only")
    assert table.column("output").to_pylist() == pq.read_table(tmp_path / "local" / OUTPUT_FILE).column(
        "output").to_pylist()
    assert local["counters"]["synth.records.written"] == table.num_rows


def test_an_output_of_the_previous_stats_shape_is_replaced_but_other_files_are_not(sample_documents, tmp_path):
    """An upgrade re-runs into the output an older instructmix wrote (stats without `stage`)."""
    out = tmp_path / "out"
    out.mkdir()
    pq.write_table(pa.table({"instruction": ["old"], "output": ["old"]}), out / OUTPUT_FILE)
    (out / STATS_FILE).write_text(json.dumps({"mode": "template_only", "written": 1, "counters": {}}))
    stats = run_synth([str(sample_documents)], str(out), "template_only")
    assert stats["stage"] == "synth" and ds.dataset(out, format="parquet").count_rows() > 1
    (out / STATS_FILE).write_text(json.dumps({"mode": "template_only", "written": 1, "counters": {}}))
    (out / "notes.txt").write_text("a user's")
    with pytest.raises(UserError, match="notes.txt"):
        run_synth([str(sample_documents)], str(out), "template_only")
