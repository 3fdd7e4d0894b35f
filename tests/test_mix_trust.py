"""`instructmix mix` outputs a user can trust, and its errors as one line, early.

* A re-run with fewer shards leaves exactly the files its manifest lists (the bug:
  `load_dataset` read 71 rows of a 35-document manifest); a run killed before its
  manifest still recognises its own files; a shard someone else rewrote is written
  again on resume.
* A run never deletes a file it did not write: foreign files are refused unless
  `--overwrite`; an output overlapping an input is refused always.
* Errors the driver can see (a glob matching nothing, a missing formats file, an
  output that is a file or is read-only) stop `python -m jobs.cli mix` before Spark
  starts: exit 2, one line on stderr. An error inside a Spark task arrives as one
  line too.
* The whole mix on the local S3 server (inputs, formats file, work cache and
  output in a bucket; the endpoint passed only through `storage_options`), read
  back from the bucket by each format's real reader.

Inputs: the bundled samples (the sample pages' main text as the pretraining
stream, `samples/alpaca-sample.json` as instructions, `samples/tokenizer.json`).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
import zstandard
from resiliparse.extract.html2text import extract_plain_text

from jobs.config import MixConfig, validate_config
from jobs.errors import UserError
from jobs.mix import MANIFEST_FILE, PENDING_OUTPUTS, WORK_DIR, run_mix
from jobs.workdir import STATS_FILE
from tests.conftest import REPO, SAMPLES

TOKENIZER = str(SAMPLES / "tokenizer.json")
ALPACA = str(SAMPLES / "alpaca-sample.json")
FORMATS = ["jsonl.zst", "parquet", "megatron"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """Three pretraining shards of the sample pages' main text (about 20k tokens)."""
    root = tmp_path_factory.mktemp("corpus")
    texts = []
    for page in sorted((SAMPLES / "pages").glob("*.html")):
        text = extract_plain_text(page.read_text(encoding="utf-8"), main_content=True)
        if text.strip():
            texts.append(text)
    cctx = zstandard.ZstdCompressor(level=3)
    for n in range(3):
        lines = [json.dumps({"url": f"https://pre{n}.example/{i}", "text": t}, ensure_ascii=False)
                 for i, t in enumerate(texts[n:] + texts[:n])]
        (root / f"web-{n}.jsonl.zst").write_bytes(cctx.compress(("\n".join(lines) + "\n").encode()))
    return root


def _data(corpus: Path, out: str, shard_tokens: int = 4000, **overrides) -> dict:
    data = {
        "seed": 7, "ratio": 0.05, "tokenizer": TOKENIZER,
        "pretrain": [{"path": str(corpus / "*.jsonl.zst"), "name": "web"}],
        "instructions": [{"path": ALPACA, "weight": 1, "name": "alpaca"}],
        "max_repeat": 5,
        "output": {"path": out, "formats": FORMATS, "shard_tokens": shard_tokens},
    }
    data.update(overrides)
    return data


def _config(corpus: Path, out: Path | str, shard_tokens: int = 4000, **overrides) -> MixConfig:
    return validate_config(_data(corpus, str(out), shard_tokens, **overrides), MixConfig, "mix.yaml")


def _files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def _load_parquet_rows(folder: Path, cache: Path) -> int:
    from datasets import load_dataset

    return load_dataset("parquet", data_dir=str(folder), split="train", cache_dir=str(cache)).num_rows


def _jsonl_zst_rows(data: bytes) -> list[dict]:
    text = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data)).read().decode("utf-8")
    return [json.loads(line) for line in text.splitlines()]


def _assert_output_is_exactly_the_manifest(out: Path, manifest: dict) -> None:
    stats = json.loads((out / STATS_FILE).read_text())
    listed = {f["path"] for s in manifest["shards"] for f in s["files"]} | {MANIFEST_FILE}
    if manifest["dataset_card"]:
        listed.add(manifest["dataset_card"]["path"])
    assert set(stats["outputs"]) == listed
    assert _files(out) == listed | {STATS_FILE}


# --------------------------------------------------------------------------- stale files


@pytest.mark.spark
def test_a_rerun_with_fewer_shards_leaves_only_the_files_its_manifest_lists(spark, corpus, tmp_path):
    out = tmp_path / "out"
    first = run_mix(_config(corpus, out, shard_tokens=3000), spark=spark)
    second = run_mix(_config(corpus, out, shard_tokens=12000), spark=spark)
    assert len(second["shards"]) < len(first["shards"])
    _assert_output_is_exactly_the_manifest(out, second)
    # The reader of the bug report: every Parquet file in the folder, card or not.
    assert _load_parquet_rows(out / "parquet", tmp_path / "hf") == second["docs"]
    assert len(list((out / "megatron").glob("*.idx"))) == len(second["shards"])
    stats = json.loads((out / STATS_FILE).read_text())
    assert stats["stage"] == "mix" and stats["counters"]["mix.output.shards"] == len(second["shards"])
    assert f"parquet/data/train-00000-of-{len(first['shards']):05d}.parquet" in stats["details"]["removed_stale"]


@pytest.mark.spark
def test_a_run_killed_before_its_manifest_still_owns_its_files(spark, corpus, tmp_path):
    out = tmp_path / "out"
    first = run_mix(_config(corpus, out, shard_tokens=3000), spark=spark, keep_work=True)
    # Killed after the shards were published, before manifest.json and _stats.json.
    (out / MANIFEST_FILE).unlink()
    (out / STATS_FILE).unlink()
    assert list((out / WORK_DIR).glob(f"*/{PENDING_OUTPUTS}"))
    second = run_mix(_config(corpus, out, shard_tokens=12000), spark=spark)
    assert len(second["shards"]) < len(first["shards"])
    _assert_output_is_exactly_the_manifest(out, second)
    assert not (out / WORK_DIR).exists()


@pytest.mark.spark
def test_a_finished_shard_that_was_rewritten_since_is_written_again(spark, corpus, tmp_path):
    out = tmp_path / "out"
    cfg = _config(corpus, out, shard_tokens=3000)
    first = run_mix(cfg, spark=spark, keep_work=True)
    shard0 = out / first["shards"][0]["files"][0]["path"]
    shard0.write_bytes(b"another writer was here")
    second = run_mix(cfg, spark=spark)
    assert [f for s in second["shards"] for f in s["files"]] == [f for s in first["shards"] for f in s["files"]]
    assert hashlib.sha256(shard0.read_bytes()).hexdigest() == first["shards"][0]["files"][0]["sha256"]


# --------------------------------------------------------------------------- foreign files


def test_foreign_files_are_refused_before_spark_and_never_deleted(corpus, tmp_path):
    out = tmp_path / "out"
    (out / "parquet" / "data").mkdir(parents=True)
    (out / "notes.txt").write_text("mine")
    (out / "parquet" / "data" / "train-00009-of-00010.parquet").write_bytes(b"PAR1 user data")
    before = {p: (out / p).read_bytes() for p in _files(out)}
    with pytest.raises(UserError, match=r"holds files this stage did not write \(notes.txt, parquet/.*--overwrite"):
        run_mix(_config(corpus, out), spark=None)  # refused before a Spark session is needed
    assert {p: (out / p).read_bytes() for p in _files(out)} == before
    assert not (out / WORK_DIR).exists() and not (out / "_lock.json").exists()


def test_an_output_overlapping_an_input_is_refused_even_with_overwrite(corpus, tmp_path):
    with pytest.raises(UserError, match="overlaps the input"):
        run_mix(_config(corpus, corpus / "mixed"), overwrite=True)
    assert not (corpus / "mixed").exists() or not any((corpus / "mixed").iterdir())


@pytest.mark.spark
def test_overwrite_replaces_what_the_folder_holds(spark, corpus, tmp_path):
    out = tmp_path / "out"
    (out / "parquet" / "data").mkdir(parents=True)
    (out / "notes.txt").write_text("mine")
    (out / "parquet" / "data" / "train-00009-of-00010.parquet").write_bytes(b"PAR1 user data")
    manifest = run_mix(_config(corpus, out, shard_tokens=12000), spark=spark, overwrite=True)
    _assert_output_is_exactly_the_manifest(out, manifest)
    assert _load_parquet_rows(out / "parquet", tmp_path / "hf") == manifest["docs"]


# --------------------------------------------------------------------------- one-line errors, early


def _cli_mix(config: dict, folder: Path, *extra: str) -> subprocess.CompletedProcess:
    path = folder / "mix.yaml"
    path.write_text(yaml.safe_dump(config))
    return subprocess.run([sys.executable, "-m", "jobs.cli", "mix", "--config", str(path), "--master", "local[1]",
                           *extra], check=False, capture_output=True, text=True, timeout=120, cwd=REPO)


def _assert_one_line_error(proc: subprocess.CompletedProcess, *fragments: str) -> None:
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr[-2000:]
    assert lines[0].startswith("instructmix mix: error: ")
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert "SparkSession" not in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("which", ["pretrain", "instructions"])
def test_a_glob_matching_nothing_names_the_source_and_the_glob(corpus, tmp_path, which):
    data = _data(corpus, str(tmp_path / "out"))
    data[which][0]["path"] = str(corpus / "nothing-*.jsonl.zst")
    started = time.monotonic()
    proc = _cli_mix(data, tmp_path)
    _assert_one_line_error(proc, f"{which}[0] ({'web' if which == 'pretrain' else 'alpaca'})", "nothing-*.jsonl.zst")
    assert time.monotonic() - started < 60
    assert not (tmp_path / "out").exists()


def test_a_missing_formats_file_is_one_line(corpus, tmp_path):
    proc = _cli_mix(_data(corpus, str(tmp_path / "out"), formats_file=str(tmp_path / "my-formats.yaml")), tmp_path)
    _assert_one_line_error(proc, "formats_file", "my-formats.yaml")


def test_a_formats_file_the_sandbox_refuses_is_one_line(corpus, tmp_path):
    formats = tmp_path / "formats.yaml"
    formats.write_text(yaml.safe_dump({"formats": [
        {"id": "escape", "langs": ["any"], "template": "{{ instruction.__class__.__mro__ }} {{ output }}"}]}))
    proc = _cli_mix(_data(corpus, str(tmp_path / "out"), formats_file=str(formats)), tmp_path)
    _assert_one_line_error(proc, "formats_file", str(formats), "escape")


def test_an_output_that_is_a_file_is_one_line(corpus, tmp_path):
    (tmp_path / "out").write_text("not a folder")
    proc = _cli_mix(_data(corpus, str(tmp_path / "out")), tmp_path)
    _assert_one_line_error(proc, "is a file", str(tmp_path / "out"))
    assert (tmp_path / "out").read_text() == "not a folder"


@contextlib.contextmanager
def _read_only(folder: Path):
    """A folder this process cannot write into; root writes through mode bits, so it gets the immutable flag."""
    os.chmod(folder, 0o555)
    immutable = os.geteuid() == 0
    if immutable:
        chattr = shutil.which("chattr")
        if not chattr or subprocess.run([chattr, "+i", str(folder)], check=False, capture_output=True).returncode:
            os.chmod(folder, 0o755)
            pytest.skip("running as root on a filesystem without chattr +i: no folder is read-only to root")
    try:
        yield folder
    finally:
        if immutable:
            subprocess.run([shutil.which("chattr"), "-i", str(folder)], check=True)
        os.chmod(folder, 0o755)


def test_a_read_only_output_is_one_line(corpus, tmp_path):
    (tmp_path / "out").mkdir()
    with _read_only(tmp_path / "out"):
        proc = _cli_mix(_data(corpus, str(tmp_path / "out")), tmp_path)
        _assert_one_line_error(proc, "not writable", str(tmp_path / "out"))
    assert os.listdir(tmp_path / "out") == []


@pytest.mark.spark
def test_an_error_inside_a_spark_task_reaches_the_user_as_one_line(spark, corpus, tmp_path, capsys):
    """A format that passes the probe records but exceeds the sandbox's output limit on real ones."""
    from jobs.cli import main

    formats = tmp_path / "formats.yaml"
    formats.write_text(yaml.safe_dump({"formats": [{"id": "huge", "langs": ["any"], "template": (
        "{% if 'PROBE' in instruction %}{{ system }} {% for u, a in history %}{{ u }} {{ a }} {% endfor %}"
        "{{ instruction }} {{ input }} {{ output }}"
        "{% else %}{{ instruction ~ (output * 3000000) }}{% endif %}")}]}))
    path = tmp_path / "mix.yaml"
    path.write_text(yaml.safe_dump(_data(corpus, str(tmp_path / "out"), formats_file=str(formats))))
    rc = main(["mix", "--config", str(path), "--master", "local[2]"])  # the running session is reused
    stderr = capsys.readouterr().err
    errors = [line for line in stderr.splitlines() if "error" in line.lower()]
    assert rc == 2
    # The progress log lines before it are the run's ordinary output; the error is one line, the last.
    assert len(errors) == 1 and errors[0].startswith("instructmix mix: error: "), stderr[-3000:]
    assert stderr.strip().splitlines()[-1] == errors[0] and "Traceback" not in stderr
    assert str(formats) in errors[0] and "huge" in errors[0] and "fix or remove that format" in errors[0]
    log = errors[0].rsplit("(task traceback: ", 1)[1].rstrip(")")
    assert "MixError" in Path(log).read_text()
    assert not (tmp_path / "out" / MANIFEST_FILE).exists() and not (tmp_path / "out" / "_lock.json").exists()


# --------------------------------------------------------------------------- S3


@pytest.mark.spark
def test_the_whole_mix_on_s3_reads_back_with_each_formats_reader(spark, s3_server, s3_bucket, corpus, tmp_path):
    import pyarrow.parquet as pq
    import s3fs
    from megatron.core.datasets.indexed_dataset import IndexedDataset

    options = {"client_kwargs": {"endpoint_url": s3_server}, "key": "testing", "secret": "testing"}
    fs = s3fs.S3FileSystem(**options)
    for f in corpus.glob("*.jsonl.zst"):
        fs.put_file(str(f), f"{s3_bucket}/in/web/{f.name}")
    fs.put_file(ALPACA, f"{s3_bucket}/in/alpaca.json")
    fs.put_file(str(REPO / "templates" / "formats.yaml"), f"{s3_bucket}/in/formats.yaml")
    out = f"{s3_bucket}/mixed"
    cfg = validate_config(_data(corpus, out, shard_tokens=6000, storage_options=options,
                                formats_file=f"{s3_bucket}/in/formats.yaml",
                                pretrain=[{"path": f"{s3_bucket}/in/web/*.jsonl.zst", "name": "web"}],
                                instructions=[{"path": f"{s3_bucket}/in/alpaca.json", "weight": 1, "name": "alpaca"}]),
                          MixConfig, "mix.yaml")
    manifest = run_mix(cfg, spark=spark)
    assert len(manifest["shards"]) >= 2
    fs.invalidate_cache()
    root = out.removeprefix("s3://")
    found = {p[len(root) + 1:] for p in fs.find(root)}
    listed = {f["path"] for s in manifest["shards"] for f in s["files"]} | {manifest["dataset_card"]["path"]}
    assert found == listed | {MANIFEST_FILE, STATS_FILE}  # no _work, no _lock.json, no temporaries
    stats = json.loads(fs.cat_file(f"{root}/{STATS_FILE}"))
    assert stats["counters"]["mix.output.tokens"] == manifest["tokens"]
    assert json.loads(fs.cat_file(f"{root}/{MANIFEST_FILE}")) == manifest

    rows = [r for s in range(len(manifest["shards"]))
            for r in _jsonl_zst_rows(fs.cat_file(f"{root}/jsonl.zst/part-{s:05d}.jsonl.zst"))]
    assert len(rows) == manifest["docs"]
    table = pq.read_table(f"{root}/parquet/data", filesystem=fs)
    assert table.num_rows == manifest["docs"]
    assert table.column("id").to_pylist() == [r["id"] for r in rows]
    assert sum(table.column("is_instruction").to_pylist()) == sum(s["instruction_docs"] for s in manifest["shards"])

    local = tmp_path / "megatron"
    fs.get(f"{root}/megatron/", str(local), recursive=True)
    for s, shard in enumerate(manifest["shards"]):
        ds = IndexedDataset(str(local / f"part-{s:05d}"))
        assert len(ds) == shard["docs"]
        assert int(ds.sequence_lengths.sum()) == shard["tokens"]
    assert sum(s["tokens"] for s in manifest["shards"]) == manifest["tokens"]
