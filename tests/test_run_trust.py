"""`instructmix run` never deletes what it did not write, holds its run directory, and decides
what to skip, resume or start from RUN/_pipeline.json. Everything here stops (or is decided)
before any engine starts, so no Spark or Ray is needed."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest
import yaml

from jobs.config import ConfigError, PipelineConfig, validate_config
from jobs.errors import UserError
from jobs.run import (
    RunState,
    check_outputs,
    plan_run,
    resolved_sections,
    stage_fingerprint,
    stage_of,
    stage_output,
)
from jobs.workdir import StageOutput
from tests.conftest import REPO
from transforms.stats import stats_document

DEMO = REPO / "configs" / "demo.yaml"


def _config(tmp_path, **overrides) -> dict:
    """The demo pipeline with one `synth:` section (its template_only entry, no model)."""
    data = yaml.safe_load(DEMO.read_text(encoding="utf-8"))
    data["output"] = str(tmp_path / "run")
    data["synth"] = data["synth"][0]
    data.update(overrides)
    return data


def _cli(config: dict, tmp_path, *extra: str) -> subprocess.CompletedProcess:
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return subprocess.run([sys.executable, "-m", "jobs.cli", "run", "--config", str(path), *extra],
                          cwd=REPO, capture_output=True, text=True, timeout=300, check=False)


def test_a_user_file_in_the_mix_output_stops_the_run_before_any_stage_starts(tmp_path):
    """Regression (issue 9): `instructmix run` used to delete an existing `mix.output.path`
    folder recursively, the user's own files included."""
    corpus = tmp_path / "corpus"
    (corpus / "notes").mkdir(parents=True)
    (corpus / "notes" / "README.txt").write_text("my notes", encoding="utf-8")
    (corpus / "train.bin").write_bytes(b"\x00" * 64)
    config = _config(tmp_path)
    config["mix"]["output"]["path"] = str(corpus)
    proc = _cli(config, tmp_path)
    assert proc.returncode == 2, proc.stderr[-3000:]
    error = proc.stderr.strip().splitlines()[-1]
    assert error.startswith("instructmix run: error: output ") and str(corpus) in error
    assert "train.bin" in error and "--overwrite" in error
    assert (corpus / "notes" / "README.txt").read_text(encoding="utf-8") == "my notes"
    assert (corpus / "train.bin").stat().st_size == 64
    assert not (tmp_path / "run" / "mined").exists()  # refused before mining, not after it


def test_a_mix_output_that_is_an_input_is_refused_even_with_overwrite(tmp_path):
    config = _config(tmp_path)
    config["mix"]["output"]["path"] = "${run}/mined"  # the mix reads ${run}/mined
    proc = _cli(config, tmp_path, "--overwrite")
    assert proc.returncode == 2 and "overlaps the input" in proc.stderr, proc.stderr[-3000:]


def test_a_run_directory_with_foreign_files_is_refused(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "thesis.tex").write_text("\\begin{document}", encoding="utf-8")
    proc = _cli(_config(tmp_path), tmp_path)
    assert proc.returncode == 2 and "thesis.tex" in proc.stderr, proc.stderr[-3000:]
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["thesis.tex"]


def test_a_second_run_into_the_same_directory_stops_at_once_naming_the_holder(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    holder = {"stage": "run", "run_id": "20261206T120000-abcdef12", "host": socket.gethostname(),
              "pid": os.getpid(), "started": "2026-12-06T12:00:00Z"}  # this test process: alive
    (run / "_lock.json").write_text(json.dumps(holder), encoding="utf-8")
    proc = _cli(_config(tmp_path), tmp_path)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "in use by another run" in proc.stderr and "20261206T120000-abcdef12" in proc.stderr
    assert json.loads((run / "_lock.json").read_text(encoding="utf-8")) == holder  # not taken over
    assert sorted(p.name for p in run.iterdir()) == ["_lock.json"]


# --------------------------------------------------------------------------- the plan


def _finish(config: PipelineConfig, state: RunState, key: str, fingerprint: str) -> None:
    section = resolved_sections(config)[key]
    stage = stage_of(key)
    out = StageOutput(stage, stage_output(config, key, section))
    out.write_json("_stats.json", stats_document(stage, {}, run_id="t", fingerprint="x", elapsed_seconds=0,
                                                 outputs=[]))
    state.record(key, fingerprint=fingerprint, state="done", output=os.path.abspath(out.url), summary={})


def test_done_stages_are_skipped_a_changed_section_restarts_it_and_those_after(tmp_path):
    config = validate_config(_config(tmp_path), PipelineConfig, "p.yaml")
    state = RunState(StageOutput("run", config.output))
    first = plan_run(config, resolved_sections(config), state, None)
    assert [s.action for s in first] == ["start", "start", "start"]
    for step in first:
        _finish(config, state, step.stage, step.fingerprint)
    state = RunState(StageOutput("run", config.output))  # read back from _pipeline.json
    assert [s.action for s in plan_run(config, resolved_sections(config), state, None)] == ["skip"] * 3
    assert [s.action for s in plan_run(config, resolved_sections(config), state, "synth")] == [
        "skip", "start", "start"]
    data = _config(tmp_path)
    data["synth"]["documents_per_batch"] = 8
    changed = validate_config(data, PipelineConfig, "p.yaml")
    assert [s.action for s in plan_run(changed, resolved_sections(changed), state, None)] == [
        "skip", "start", "start"]
    # A stage whose _stats.json is gone has not finished, whatever _pipeline.json says.
    (tmp_path / "run" / "mined" / "_stats.json").unlink()
    assert plan_run(config, resolved_sections(config), state, None)[0].action == "start"


def test_a_benchmark_file_edited_in_place_restarts_the_stages_that_check_it(tmp_path):
    bench = tmp_path / "eval.jsonl"
    bench.write_text('{"q": "one two three four five six seven eight nine ten eleven twelve thirteen"}\n')
    data = _config(tmp_path)
    data["mix"]["decontaminate"] = {"benchmarks": [str(bench)]}
    config = validate_config(data, PipelineConfig, "p.yaml")
    state = RunState(StageOutput("run", config.output))
    for step in plan_run(config, resolved_sections(config), state, None):
        _finish(config, state, step.stage, step.fingerprint)
    assert [s.action for s in plan_run(config, resolved_sections(config), state, None)] == ["skip"] * 3
    bench.write_text('{"q": "a b c d e f g h i j k l m n o p"}\n')  # same path and settings, new content
    assert [s.action for s in plan_run(config, resolved_sections(config), state, None)] == ["skip", "skip", "start"]


def test_an_interrupted_stage_resumes_and_from_needs_the_stages_before_it(tmp_path):
    from jobs.config import ConfigError

    config = validate_config(_config(tmp_path), PipelineConfig, "p.yaml")
    state = RunState(StageOutput("run", config.output))
    steps = plan_run(config, resolved_sections(config), state, None)
    state.record("mine", fingerprint=steps[0].fingerprint, state="started", output=steps[0].output)
    state = RunState(StageOutput("run", config.output))
    assert plan_run(config, resolved_sections(config), state, None)[0].action == "resume"
    with pytest.raises(ConfigError, match="--from mix: stage 'mine' before it has not finished"):
        plan_run(config, resolved_sections(config), state, "mix")


def test_pipeline_json_records_where_each_stage_wrote(tmp_path):
    data = _config(tmp_path)
    data["mix"]["output"]["path"] = str(tmp_path / "elsewhere")
    config = validate_config(data, PipelineConfig, "p.yaml")
    state = RunState(StageOutput("run", config.output))
    steps = plan_run(config, resolved_sections(config), state, None)
    for step in steps:
        _finish(config, state, step.stage, step.fingerprint)
    recorded = json.loads((tmp_path / "run" / "_pipeline.json").read_text(encoding="utf-8"))
    assert {s: r["output"] for s, r in recorded["stages"].items()} == {
        "mine": str(tmp_path / "run" / "mined"), "synth": str(tmp_path / "run" / "synth"),
        "mix": str(tmp_path / "elsewhere")}
    assert not [p for p in (tmp_path / "run").iterdir() if p.name.startswith(".")]  # no temporary left


def test_fingerprints_chain_and_ignore_storage_options(tmp_path):
    config = validate_config(_config(tmp_path), PipelineConfig, "p.yaml")
    mine = resolved_sections(config)["mine"]
    assert stage_fingerprint("mine", mine, "") == stage_fingerprint(
        "mine", {**mine, "storage_options": {"key": "rotated"}}, "")
    assert stage_fingerprint("mine", mine, "") != stage_fingerprint("mine", {**mine, "languages": ["en"]}, "")
    assert stage_fingerprint("synth", mine, "a") != stage_fingerprint("synth", mine, "b")


def test_sections_without_storage_options_get_the_pipelines(tmp_path):
    options = {"client_kwargs": {"endpoint_url": "http://127.0.0.1:9"}, "key": "k", "secret": "s"}
    data = _config(tmp_path, output="s3://bucket/run", storage_options=options)
    data["mine"]["storage_options"] = {"anon": True}
    sections = resolved_sections(validate_config(data, PipelineConfig, "p.yaml"))
    assert sections["mine"]["storage_options"] == {"anon": True}
    assert sections["synth"]["storage_options"] == options == sections["mix"]["storage_options"]
    assert sections["mix"]["output"]["path"] == "s3://bucket/run/mixed"


def test_the_early_check_leaves_an_older_or_interrupted_output_to_its_stage(tmp_path):
    """An output of an older version (mine's stats without `stage`, a mixer's bare manifest) or
    of an interrupted run (`_work/`) holds files only the stage itself can recognise as its own;
    a folder without such traces is judged at once."""
    config = validate_config(_config(tmp_path), PipelineConfig, "p.yaml")
    state = RunState(StageOutput("run", config.output))
    steps = plan_run(config, resolved_sections(config), state, None)
    mined, mixed = tmp_path / "run" / "mined", tmp_path / "run" / "mixed"
    for folder in (mined, mixed):
        folder.mkdir(parents=True)
        (folder / "part-00000.parquet").write_bytes(b"PAR1")
    with pytest.raises(UserError, match=r"run/mined holds files this stage did not write \(part-00000"):
        check_outputs(config, steps, state, overwrite=False)
    (mined / "_stats.json").write_text(json.dumps({"config_sha256": "x", "pairs": {}}), encoding="utf-8")
    with pytest.raises(UserError, match=r"run/mixed holds files"):
        check_outputs(config, steps, state, overwrite=False)
    (mixed / "manifest.json").write_text(json.dumps({"target_ratio": 0.05, "shards": []}), encoding="utf-8")
    check_outputs(config, steps, state, overwrite=False)  # both left to their stages
    (mixed / "manifest.json").unlink()
    (mixed / "_work").mkdir()
    check_outputs(config, steps, state, overwrite=False)
    # A current _stats.json lists what the stage wrote: anything else is foreign, judged now.
    (mined / "_stats.json").write_bytes(_stats_bytes("mine", ["part-00000.parquet"]))
    (mined / "notes.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(UserError, match=r"notes\.txt"):
        check_outputs(config, steps, state, overwrite=False)
    check_outputs(config, steps, state, overwrite=True)
    assert (mined / "notes.txt").exists()


def _stats_bytes(stage: str, outputs: list[str]) -> bytes:
    return json.dumps(stats_document(stage, {}, run_id="t", fingerprint="x", elapsed_seconds=0,
                                     outputs=outputs)).encode()


def test_a_list_of_synth_sections_plans_one_step_each_into_its_own_folder(tmp_path):
    data = yaml.safe_load(DEMO.read_text(encoding="utf-8"))
    data["output"] = str(tmp_path / "run")
    config = validate_config(data, PipelineConfig, "p.yaml")
    state = RunState(StageOutput("run", config.output))
    steps = plan_run(config, resolved_sections(config), state, None)
    assert [s.key for s in steps] == ["mine", "synth/template_only", "synth/doc_qa", "mix"]
    assert [s.output for s in steps][1:3] == [str(tmp_path / "run" / "synth" / n) for n in ("template_only", "doc_qa")]
    for step in steps:
        _finish(config, state, step.key, step.fingerprint)
    # The entries depend on mining, not on each other: changing one reruns it and the mix only.
    data["synth"][1]["limit"] = 3
    changed = validate_config(data, PipelineConfig, "p.yaml")
    assert [s.action for s in plan_run(changed, resolved_sections(changed), state, None)] == [
        "skip", "skip", "start", "start"]
    assert [s.action for s in plan_run(config, resolved_sections(config), state, "synth")] == [
        "skip", "start", "start", "start"]
    data["synth"][1]["mode"] = "template_only"
    with pytest.raises(ConfigError, match="synth/template_only"):
        validate_config(data, PipelineConfig, "p.yaml")


def test_a_flat_synth_output_left_by_a_single_section_is_refused_before_a_list_runs(tmp_path):
    flat = tmp_path / "run" / "synth"
    flat.mkdir(parents=True)
    (flat / "part-00000.parquet").write_bytes(b"old")
    (flat / "_stats.json").write_text(json.dumps(stats_document("synth", {}, run_id="t", fingerprint="x",
                                                                elapsed_seconds=0, outputs=["part-00000.parquet"])))
    data = yaml.safe_load(DEMO.read_text(encoding="utf-8"))
    data["output"] = str(tmp_path / "run")
    config = validate_config(data, PipelineConfig, "p.yaml")
    state = RunState(StageOutput("run", config.output))
    steps = plan_run(config, resolved_sections(config), state, None)
    with pytest.raises(ConfigError, match="single `synth:` section"):
        check_outputs(config, steps, state, overwrite=False)
    check_outputs(config, steps, state, overwrite=True)
    assert not (flat / "part-00000.parquet").exists() and not (flat / "_stats.json").exists()
