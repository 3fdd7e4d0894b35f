"""jobs/workdir.py: fingerprints, the output lock, what a run may replace, atomic writes;
on local disk and on a real S3 API (moto) on 127.0.0.1."""

from __future__ import annotations

import json
import multiprocessing
import os

import pytest

from jobs.errors import UserError, wrapped_user_message
from jobs.workdir import LOCK_FILE, STATS_FILE, StageOutput, fingerprint
from transforms.stats import counter_name, counters_of, group, prefixed, stats_document, total


def test_fingerprint_changes_with_config_upstream_and_stage():
    base = fingerprint("synth", {"model": "a", "sampling": {"seed": 0}})
    assert base == fingerprint("synth", {"sampling": {"seed": 0}, "model": "a"})
    assert base != fingerprint("synth", {"model": "b", "sampling": {"seed": 0}})
    assert base != fingerprint("synth", {"model": "a", "sampling": {"seed": 1}})
    assert base != fingerprint("mine", {"model": "a", "sampling": {"seed": 0}})
    assert base != fingerprint("synth", {"model": "a", "sampling": {"seed": 0}}, "upstream")
    assert fingerprint("x", {}, with_code=False) != fingerprint("x", {})


def test_lock_refuses_a_second_run_and_names_the_holder(tmp_path):
    first = StageOutput("mine", str(tmp_path / "out"))
    with first.lock():
        second = StageOutput("mine", str(tmp_path / "out"))
        with pytest.raises(UserError, match=rf"in use by another mine run \({first.run_id}"):
            second.acquire()
    assert not (tmp_path / "out" / LOCK_FILE).exists()
    with StageOutput("mine", str(tmp_path / "out")).lock():
        pass


def _dead_pid() -> int:
    proc = multiprocessing.Process(target=lambda: None)
    proc.start()
    proc.join()
    return proc.pid


def test_a_lock_left_by_a_dead_process_on_this_host_is_taken_over(tmp_path):
    import socket

    out = tmp_path / "out"
    out.mkdir()
    (out / LOCK_FILE).write_text(json.dumps({"stage": "mine", "run_id": "killed", "host": socket.gethostname(),
                                             "pid": _dead_pid()}))
    with StageOutput("mine", str(out)).lock() as held:
        assert json.loads((out / LOCK_FILE).read_text())["run_id"] == held.run_id


def test_claim_refuses_foreign_files_and_overlapping_inputs(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    # A killed writer's temporaries, a hidden file or a hidden scratch folder, are not foreign.
    (out / "mds/part-00000/.shard.00000.mds.x1y2.tmp/mds").mkdir(parents=True)
    (out / "mds/part-00000/.shard.00000.mds.x1y2.tmp/mds/index.json").write_text("{}")
    (out / "mds/part-00000/.index.json.tmp").write_text("{}")
    stage = StageOutput("mine", str(out))
    with pytest.raises(UserError, match=r"holds files this stage did not write \(notes.txt\).*--overwrite"):
        stage.claim()
    stage.claim(overwrite=True)
    with pytest.raises(UserError, match="overlaps the input"):
        stage.claim(inputs=[str(out / "*.warc.gz")], overwrite=True)
    with pytest.raises(UserError, match="overlaps the input"):
        StageOutput("mine", str(out / "sub")).claim(inputs=[str(out)])
    StageOutput("mine", str(tmp_path / "elsewhere")).claim(inputs=[str(out / "*.warc.gz")])
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="is a file"):
        StageOutput("mine", str(tmp_path / "file")).claim()


def test_a_previous_runs_outputs_are_its_own_and_stale_ones_are_removed(tmp_path):
    out = StageOutput("mix", str(tmp_path / "out"))
    for name in ("part-00000.parquet", "part-00001.parquet", "part-00002.parquet"):
        out.write_bytes(name, b"x")
    out.write_json(STATS_FILE, stats_document("mix", {}, run_id="r1", fingerprint="f", elapsed_seconds=1,
                                              outputs=["part-00000.parquet", "part-00001.parquet",
                                                       "part-00002.parquet"]))
    again = StageOutput("mix", str(tmp_path / "out"))
    again.claim()  # only its own files there
    previous = again.previous_outputs()
    assert again.remove_stale(["part-00000.parquet"], previous) == ["part-00001.parquet", "part-00002.parquet"]
    assert sorted(os.listdir(tmp_path / "out")) == [STATS_FILE, "part-00000.parquet"]
    # Another stage's stats do not make its files ours.
    assert StageOutput("mine", str(tmp_path / "out")).previous_outputs() is None


def test_atomic_writes_leave_no_temporaries(tmp_path):
    out = StageOutput("mine", str(tmp_path / "o"))
    out.write_json("a/b.json", {"x": 1})
    assert json.loads((tmp_path / "o" / "a" / "b.json").read_text()) == {"x": 1}
    assert os.listdir(tmp_path / "o" / "a") == ["b.json"]
    assert out.read_json("missing.json") is None


def test_the_same_rules_hold_on_s3(s3_bucket):
    out = StageOutput("mix", f"{s3_bucket}/run/mixed")
    with out.lock():
        with pytest.raises(UserError, match="in use"):
            StageOutput("mix", f"{s3_bucket}/run/mixed").acquire()
        out.write_bytes("part-00000.parquet", b"x")
        out.write_json(STATS_FILE, stats_document("mix", {"mix.documents": 1}, run_id=out.run_id, fingerprint="f",
                                                  elapsed_seconds=0, outputs=["part-00000.parquet"]))
    assert not out.exists(LOCK_FILE)
    StageOutput("mix", f"{s3_bucket}/run/mixed").claim()
    out.fs.pipe(out.path("user.csv"), b"a,b")
    with pytest.raises(UserError, match=r"user.csv"):
        StageOutput("mix", f"{s3_bucket}/run/mixed").claim()
    assert counters_of(out.read_json(STATS_FILE), "mix") == {"mix.documents": 1}


def test_one_counter_shape():
    assert counter_name("mine", "documents", "skip", "non_html") == "mine.documents.skip.non_html"
    short = prefixed("synth", {"drop:too_short": 2, "generations": 5})
    assert short == {"synth.drop.too_short": 2, "synth.generations": 5}
    assert group(short, "synth.drop") == {"too_short": 2}
    assert total(short, "synth") == 7
    assert counters_of({"stage": "mine", "counters": short}, "synth") == {}


def test_a_user_error_inside_an_engine_exception_is_found():
    class Wrapped(Exception):
        pass

    text = ('Traceback (most recent call last):\n  File "x.py", line 1\n'
            "jobs.errors.MixError: instructions[0]: no file matches 'nothing/*.parquet'\n")
    assert wrapped_user_message(Wrapped(text)) == "instructions[0]: no file matches 'nothing/*.parquet'"
    assert wrapped_user_message(Wrapped("ZeroDivisionError: division by zero")) is None
    try:
        try:
            raise UserError("bad input x")
        except UserError as inner:
            raise RuntimeError("task failed") from inner
    except RuntimeError as outer:
        assert wrapped_user_message(outer) == "bad input x"
