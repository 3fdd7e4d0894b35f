"""`instructmix run`: the demo pipeline end to end, skipping and resuming stages, and
`instructmix report` rendered in headless Chromium."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pyarrow.parquet as pq
import pytest
import yaml

from jobs.config import ConfigError, PipelineConfig, load_config, validate_config
from jobs.run import resolved_sections
from tests.conftest import REPO

pytestmark = pytest.mark.spark
DEMO = REPO / "configs" / "demo.yaml"
# The demo's steps: its `synth:` is a list (template_only, and doc_qa with the real model).
STEPS = ("mine", "synth/template_only", "synth/doc_qa", "mix")


def _demo_config(tmp_path, **overrides) -> dict:
    data = yaml.safe_load(DEMO.read_text(encoding="utf-8"))
    data["output"] = str(tmp_path / "run")
    data.update(overrides)
    return data


def _cli(config: dict, tmp_path, *extra: str) -> subprocess.CompletedProcess:
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return subprocess.run([sys.executable, "-m", "jobs.cli", "run", "--config", str(path), *extra],
                          cwd=REPO, capture_output=True, text=True, timeout=1800, check=False)


def _run(config: dict, tmp_path, *extra: str) -> tuple[dict, str]:
    proc = _cli(config, tmp_path, *extra)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1]), proc.stderr


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """The demo pipeline (configs/demo.yaml) into a fresh run directory, the mix output outside
    it (`mix.output.path`, as configs/production.yaml has it): the report must find it there."""
    tmp_path = tmp_path_factory.mktemp("demo")
    config = _demo_config(tmp_path)
    config["mix"]["output"]["path"] = str(tmp_path / "corpus")
    summary, log = _run(config, tmp_path)
    return tmp_path, config, summary, log


def test_the_demo_runs_every_stage_and_writes_a_report(demo_run):
    tmp_path, _, summary, log = demo_run
    run, corpus = tmp_path / "run", tmp_path / "corpus"
    assert [summary[s]["status"] for s in STEPS] == ["ran"] * 4
    assert "stage 1/4 mine" in log and "stage 3/4 synth/doc_qa" in log and "stage 4/4 mix" in log
    mined = pq.read_table(run / "mined")
    assert mined.num_rows == summary["mine"]["pairs"] > 0
    extractive = pq.read_table(run / "synth" / "template_only" / "part-00000.parquet")
    assert extractive.num_rows == summary["synth/template_only"]["records"] > 0
    assert set(extractive.column("mode").to_pylist()) == {"template_only"}
    # The real model's pairs: questions about the sample pages, each output once.
    written = pq.read_table(run / "synth" / "doc_qa" / "part-00000.parquet")
    assert written.num_rows == summary["synth/doc_qa"]["records"] > 0
    assert set(written.column("model").to_pylist()) == {"smollm2-135m"}
    assert len(set(written.column("output").to_pylist())) == written.num_rows
    synth_rows = extractive.num_rows + written.num_rows
    manifest = json.loads((corpus / "manifest.json").read_text())
    assert abs(manifest["realized_ratio"] - 0.05) <= 0.005
    sources = {s["name"]: s for s in manifest["instructions"]}
    # The demo's stream holds ~390 instruction tokens: a source whose share is under one document of its
    # own may get none, since the ratio comes first; the mined pairs' share is several documents.
    assert sources["instructions0"]["tokens_used"] > 0, sources
    assert sum(s["tokens_used"] for s in sources.values()) == sum(s["instruction_tokens"] for s in manifest["shards"])
    shards = len(manifest["shards"])
    assert len(list((corpus / "megatron").glob("part-*.bin"))) == shards
    assert len(list((corpus / "jsonl.zst").glob("part-*.jsonl.zst"))) == shards
    assert not (run / "mixed").exists()
    recorded = json.loads((run / "_pipeline.json").read_text())
    assert recorded["stages"]["mix"]["output"] == str(corpus)
    assert all(recorded["stages"][s]["state"] == "done" for s in STEPS)
    report = run / "report" / "index.html"
    assert summary["report"]["output"].endswith("index.html") and report.is_file()
    html = report.read_text(encoding="utf-8")
    assert "data:image/png;base64," in html and "Mixing: realized ratio per shard" in html
    numbers = json.loads((run / "report" / "summary.json").read_text())
    # Regression (issue 9): the report found the mix output where the pipeline wrote it.
    assert numbers["stages"]["mix"]["present"] and numbers["stages"]["mix"]["folder"] == str(corpus)
    assert numbers["mixing"]["target_ratio"] == 0.05 and len(numbers["mixing"]["shards"]) == shards
    assert numbers["mixing"]["tokens"] == manifest["tokens"]
    assert numbers["mining"]["pairs_written"] == mined.num_rows
    assert numbers["mining"]["documents_read"] == summary["mine"]["documents"] > 0
    assert numbers["synth"]["written"] == synth_rows
    assert numbers["synth"]["mode"] == "template_only, doc_qa"
    assert "smollm2-135m" in html and "doc_qa" in html  # the page shows the model's pairs


def test_a_rerun_skips_finished_stages_and_from_or_a_change_reruns_a_stage(demo_run):
    tmp_path, config, first, _ = demo_run
    run, corpus = tmp_path / "run", tmp_path / "corpus"
    mined_before = sorted((p.name, p.stat().st_mtime_ns) for p in (run / "mined").iterdir())
    again, _ = _run(config, tmp_path)
    assert [again[s]["status"] for s in STEPS] == ["skipped"] * 4
    assert again["mix"]["realized_ratio"] == first["mix"]["realized_ratio"]
    shards_before = {p.name: p.read_bytes() for p in corpus.rglob("part-*")}
    rerun, _ = _run(config, tmp_path, "--from", "mix")
    assert [rerun[s]["status"] for s in STEPS] == ["skipped", "skipped", "skipped", "ran"]
    shards_after = {p.name: p.read_bytes() for p in corpus.rglob("part-*")}
    assert shards_before and shards_after == shards_before  # same config and seed: the same bytes
    assert sorted((p.name, p.stat().st_mtime_ns) for p in (run / "mined").iterdir()) == mined_before

    # A changed section reruns its stage (and those after it), not the ones before.
    changed = dict(config, mix=dict(config["mix"], ratio=0.08))
    summary, _ = _run(changed, tmp_path)
    assert [summary[s]["status"] for s in STEPS] == ["skipped", "skipped", "skipped", "ran"]
    assert summary["mix"]["target_ratio"] == 0.08
    assert abs(summary["mix"]["realized_ratio"] - 0.08) <= 0.008

    # Regression (issue 9): `run` used to delete the mix output folder, a user's files in it too.
    # Now a file the mix did not write stops the run before any stage starts, and nothing is touched.
    (corpus / "my-notes.txt").write_text("keep me", encoding="utf-8")
    shards_before = {p.name: p.read_bytes() for p in corpus.rglob("part-*")}
    proc = _cli(config, tmp_path, "--from", "mix")
    assert proc.returncode == 2 and "my-notes.txt" in proc.stderr and "--overwrite" in proc.stderr, proc.stderr
    assert (corpus / "my-notes.txt").read_text(encoding="utf-8") == "keep me"
    assert {p.name: p.read_bytes() for p in corpus.rglob("part-*")} == shards_before
    (corpus / "my-notes.txt").unlink()


def test_pipeline_config_errors_name_the_key(tmp_path):
    with pytest.raises(ConfigError, match="stages"):
        validate_config(_demo_config(tmp_path, stages=["mine", "train"]), PipelineConfig, "p.yaml")
    with pytest.raises(ConfigError, match=r"mix\.ratio"):
        data = _demo_config(tmp_path)
        data["mix"]["ratio"] = 2
        validate_config(data, PipelineConfig, "p.yaml")
    with pytest.raises(ConfigError, match="colour"):
        validate_config(_demo_config(tmp_path, colour="blue"), PipelineConfig, "p.yaml")
    data = _demo_config(tmp_path)
    del data["synth"]
    with pytest.raises(ConfigError, match="no section"):
        validate_config(data, PipelineConfig, "p.yaml")


def test_run_paths_resolve_against_the_run_directory(tmp_path):
    config = validate_config(_demo_config(tmp_path), PipelineConfig, "p.yaml")
    sections = resolved_sections(config)
    assert sections["synth/template_only"]["input"][0] == f"{tmp_path / 'run'}/mined"
    assert sections["mix"]["output"]["path"] == f"{tmp_path / 'run'}/mixed"


def test_the_production_example_validates():
    config = load_config(REPO / "configs" / "production.yaml", PipelineConfig)
    assert config.mix.ratio == 0.05 and config.mix.output.formats == ["megatron"]
    assert config.synth.engine.gpus_per_actor >= 1 and config.synth.mode == "template"
    assert any(p.startswith("s3://commoncrawl/") and p.endswith(".warc.gz") for p in config.mine.input)


def test_the_report_renders_in_headless_chromium_and_is_not_blank(demo_run, tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    from matplotlib.image import imread

    report = demo_run[0] / "run" / "report" / "index.html"
    shot = tmp_path / "report.png"
    proc = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                           f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,2400",
                           f"--screenshot={shot}", report.as_uri()],
                          capture_output=True, text=True, timeout=180, check=False)
    assert proc.returncode == 0 and shot.is_file(), proc.stderr[-2000:]
    pixels = imread(str(shot))[..., :3]
    assert pixels.shape[0] >= 2000 and pixels.shape[1] >= 1000
    white = (pixels > 0.97).all(axis=-1).mean()
    assert white < 0.97, f"screenshot is {white:.1%} white: the page did not render"
    distinct = {tuple(p) for p in (pixels[::7, ::7] * 255).astype(int).reshape(-1, 3).tolist()}
    assert len(distinct) > 50  # text, tables and the embedded plots in several colours
