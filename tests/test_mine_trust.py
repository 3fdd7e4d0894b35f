"""`instructmix mine` owns its output folder and never destroys what it did not write.

Regression tests for issue 9's data-loss and concurrency cases: two runs into one
output, a user's Parquet file in --output, --output inside an input folder, re-runs
and resumes, a run killed with its lock left behind, errors reported as one line
before (or, from a task, instead of) a traceback, and the whole job against a
local S3 server.
"""

from __future__ import annotations

import gzip
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from jobs.config import MineConfig
from jobs.errors import UserError
from jobs.mine import PUBLISHING_FILE, run_mine
from jobs.workdir import LOCK_FILE, STATS_FILE, WORK_DIR
from tests.conftest import REPO, SAMPLES
from transforms.stats import group

pytestmark = pytest.mark.spark

PAGE = """<html><head><title>{title}</title></head><body><main><h1>{title}</h1>
<h2>Frequently Asked Questions</h2>
<h3>{q1}</h3>
<p>{a1}</p>
<h3>{q2}</h3>
<p>{a2}</p>
</main></body></html>"""
# Four help pages that share no sentence, so the only duplicates are the copies _inputs makes.
FAQS = {
    "shipping": ("How long does shipping take to Europe?",
                 ("Standard parcels reach most European countries within five to seven business days, "
                 "while express orders arrive in two days once they leave our warehouse."),
                 "Can I return an item after thirty days?",
                 ("Unused items in their original packaging can be sent back for sixty days after delivery "
                 "and we refund the full price including postage.")),
    "baking": ("Why did my sourdough loaf come out flat?",
               ("A flat loaf usually means the starter was past its peak or the dough proofed too long; "
               "feed the starter eight hours before mixing and shape the loaf with more surface tension."),
               "Which flour should I use for pizza dough?",
               ("Finely milled Italian tipo 00 flour absorbs water slowly and bakes into a tender, "
               "crisp crust in a very hot oven.")),
    "cycling": ("How often should I oil my bike chain?",
                ("Lubricate the chain every few hundred kilometres, or after any ride in the rain, "
                "and wipe off the excess so grit does not stick to it."),
                "What tyre pressure suits a road bike?",
                ("Riders around seventy kilograms are comfortable near six bar on 28 millimetre tyres; "
                "heavier riders and narrower tyres need a little more.")),
    "gardening": ("When is the best time to plant tulip bulbs?",
                  ("Put tulip bulbs in the ground in autumn, roughly six weeks before the soil freezes, "
                  "pointed end up and about three times as deep as the bulb is tall."),
                  "How do I keep slugs away from lettuce?",
                  ("Copper tape around raised beds, beer traps and evening hand-picking protect young lettuce "
                  "without poisoning the birds and hedgehogs that eat slugs.")),
}
PLACES = tuple(FAQS)


def _inputs(folder: Path, copies: int = 1) -> Path:
    """One JSON Lines shard per help page; with copies > 1 the same page again under other URLs
    (exact duplicates, so the expected dedup counts are known)."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, (topic, (q1, a1, q2, a2)) in enumerate(FAQS.items()):
        page = PAGE.format(title=f"{topic.title()} help", q1=q1, a1=a1, q2=q2, a2=a2)
        with gzip.open(folder / f"help-{i}.jsonl.gz", "wt", encoding="utf-8") as f:
            for c in range(copies):
                f.write(json.dumps({"url": f"https://site{c}.example/{topic}", "html": page}) + "\n")
    return folder


def _cli(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "jobs.cli", "mine", *args], cwd=REPO, check=False,
                          capture_output=True, text=True, timeout=timeout)


def _one_line_error(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-3000:])
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("instructmix mine: error: "), proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    return lines[0]


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() if p.is_file() else b"<dir>" for p in sorted(folder.rglob("*"))}


def _rows(out: Path) -> list[dict]:
    return sorted(ds.dataset(str(out), format="parquet").to_table().to_pylist(), key=lambda r: r["id"])


def _dead_pid() -> int:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], check=True,
                          capture_output=True, text=True)
    return int(proc.stdout)


def _assert_consistent(out: Path, stats: dict) -> None:
    """The stats count exactly what the folder holds, and every candidate is accounted for."""
    counters = stats["counters"]
    assert sorted(stats["outputs"]) == sorted(p.name for p in out.glob("*.parquet"))
    assert counters["mine.pairs.written"] == len(_rows(out))
    drops = group(counters, "mine.pairs.drop")
    assert counters["mine.pairs.candidates"] == (counters["mine.pairs.written"] + drops["exact_duplicate"]
                                                 + drops["near_duplicate"])


# --- refused before any task: one line, exit 2, nothing touched ---------------------------------------

def test_input_glob_matching_nothing_is_named_in_one_line(tmp_path):
    line = _one_line_error(_cli("--input", str(tmp_path / "nowhere-*.warc.gz"), "--output", str(tmp_path / "out")))
    assert "nowhere-*.warc.gz" in line
    assert not (tmp_path / "out").exists()


def test_output_that_is_a_file_or_not_writable_is_refused_in_one_line(tmp_path):
    src = _inputs(tmp_path / "in")
    a_file = tmp_path / "notes.txt"
    a_file.write_text("mine")
    line = _one_line_error(_cli("--input", str(src), "--output", str(a_file)))
    assert "is a file" in line and str(a_file) in line
    line = _one_line_error(_cli("--input", str(src), "--output", str(a_file / "mined")))
    assert "not writable" in line and str(a_file / "mined") in line
    assert a_file.read_text() == "mine"


@pytest.mark.parametrize("where", ["equal", "inside", "glob_parent"])
def test_output_equal_to_or_inside_an_input_folder_is_refused_and_the_inputs_untouched(tmp_path, where):
    src = _inputs(tmp_path / "in")
    before = _snapshot(src)
    inputs, output = {"equal": (str(src), str(src)), "inside": (str(src), str(src / "mined")),
                      "glob_parent": (str(src / "*.jsonl.gz"), str(src / "mined"))}[where]
    line = _one_line_error(_cli("--input", inputs, "--output", output))
    assert "overlaps the input" in line
    assert _snapshot(src) == before


def test_a_users_parquet_file_in_output_is_refused_and_kept(tmp_path):
    src = _inputs(tmp_path / "in")
    out = tmp_path / "out"
    out.mkdir()
    # Named like one of mine's own parts: the name alone must not make it mine's.
    users = out / "part-00000.parquet"
    pq.write_table(pa.table({"text": ["my own data"]}), users)
    before = users.read_bytes()
    line = _one_line_error(_cli("--input", str(src), "--output", str(out)))
    assert "part-00000.parquet" in line and "--overwrite" in line
    assert users.read_bytes() == before
    assert sorted(p.name for p in out.iterdir()) == ["part-00000.parquet"]


# --- runs that share an output ------------------------------------------------------------------------

def test_two_runs_into_one_output_one_stops_at_once_naming_the_holder(tmp_path):
    src = _inputs(tmp_path / "in", copies=2)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "jobs.cli", "mine", "--input", str(src), "--output", str(out), "--master", "local[2]"]
    procs = [subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    try:
        while all(p.poll() is None for p in procs):
            time.sleep(0.2)
        loser = next(p for p in procs if p.poll() is not None)
        winner = next(p for p in procs if p is not loser)
        # The loser stopped while the winner was still mining: at once, not after its own Spark job.
        assert winner.poll() is None
        stdout, stderr = loser.communicate()
        line = _one_line_error(subprocess.CompletedProcess(cmd, loser.returncode, stdout, stderr))
        assert "in use by another mine run" in line and f"pid {winner.pid}" in line
        stdout, stderr = winner.communicate(timeout=600)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert winner.returncode == 0, stderr[-3000:]
    stats = json.loads((out / STATS_FILE).read_text())
    _assert_consistent(out, stats)
    counters = stats["counters"]
    # Four pages, two questions each, every page twice: 16 candidates, 8 exact copies, no near ones.
    assert counters["mine.pairs.candidates"] == 16
    assert counters["mine.pairs.drop.exact_duplicate"] == 8
    assert counters["mine.pairs.drop.near_duplicate"] == 0
    assert counters["mine.pairs.written"] == 8 == json.loads(stdout.strip().splitlines()[-1])["pairs"]
    assert not (out / LOCK_FILE).exists()


def test_rerun_resumes_gives_the_same_rows_and_removes_only_its_own_stale_parts(spark, tmp_path):
    src = _inputs(tmp_path / "in")
    out = tmp_path / "out"
    first = run_mine([str(src)], str(out), spark=spark, keep_work=True)
    _assert_consistent(out, first)
    rows = _rows(out)
    # As if the previous run had published more parts than this one will: its stats list one more,
    # which the re-run must remove; a dot-file of the user's (not listed) must stay.
    stale = out / "part-00042.parquet"
    pq.write_table(pa.table({"text": ["left by the previous run"]}), stale)
    notes = out / ".notes"
    notes.write_text("the user's")
    first["outputs"].append(stale.name)
    (out / STATS_FILE).write_text(json.dumps(first))
    again = run_mine([str(src)], str(out), spark=spark, keep_work=True)
    assert again["counters"]["mine.files.resumed"] == again["counters"]["mine.files.read"] == len(PLACES)
    assert not stale.exists() and notes.read_text() == "the user's"
    assert _rows(out) == rows
    _assert_consistent(out, again)
    assert group(again["counters"], "mine.pairs") == group(first["counters"], "mine.pairs")


def test_an_output_of_the_previous_stats_shape_is_replaced_but_other_files_are_not(spark, tmp_path):
    """An upgrade re-runs into an output written before the one-shape `_stats.json`: its
    parts (part-NNNNN.parquet beside a stats file of the old shape) are mine's own."""
    src = _inputs(tmp_path / "in")
    out = tmp_path / "out"
    out.mkdir()
    for i in range(3):
        pq.write_table(pa.table({"text": [f"old part {i}"]}), out / f"part-{i:05d}.parquet")
    (out / STATS_FILE).write_text(json.dumps({"config_sha256": "0" * 64, "documents": {"read": 3},
                                              "pairs": {"written": 3}}))
    (out / "mine-notes.parquet").write_bytes(b"the user's")
    with pytest.raises(UserError, match="mine-notes.parquet"):
        run_mine([str(src)], str(out), spark=spark)
    (out / "mine-notes.parquet").unlink()
    stats = run_mine([str(src)], str(out), spark=spark)
    _assert_consistent(out, stats)
    assert "old part" not in json.dumps(_rows(out))


def test_a_killed_run_with_its_lock_left_behind_can_be_rerun(spark, tmp_path):
    src = _inputs(tmp_path / "in")
    out = tmp_path / "out"
    full = run_mine([str(src)], str(out), spark=spark, keep_work=True)
    expected = _rows(out)
    # The kill: one file not yet mined, parts half published (the journal names them, no stats
    # lists them yet), and the lock of a process that no longer exists.
    checkpoints = sorted((out / WORK_DIR).glob("*/extract/*.parquet"))
    assert len(checkpoints) == len(PLACES)
    checkpoints[0].unlink()
    (out / WORK_DIR / PUBLISHING_FILE).write_text(json.dumps(full["outputs"]))
    (out / STATS_FILE).unlink()
    (out / LOCK_FILE).write_text(json.dumps({"stage": "mine", "run_id": "killed", "host": socket.gethostname(),
                                             "pid": _dead_pid(), "started": "2026-01-01T00:00:00Z"}))
    resumed = run_mine([str(src)], str(out), spark=spark)
    assert resumed["counters"]["mine.files.resumed"] == len(PLACES) - 1
    assert _rows(out) == expected
    _assert_consistent(out, resumed)
    assert not (out / LOCK_FILE).exists() and not (out / WORK_DIR).exists()


def test_overwrite_replaces_what_the_output_held(spark, tmp_path):
    src = _inputs(tmp_path / "in")
    out = tmp_path / "out"
    out.mkdir()
    pq.write_table(pa.table({"text": ["old"]}), out / "someone-elses.parquet")
    with pytest.raises(UserError, match="someone-elses.parquet"):
        run_mine([str(src)], str(out), spark=spark)
    stats = run_mine([str(src)], str(out), spark=spark, overwrite=True)
    assert not (out / "someone-elses.parquet").exists()
    _assert_consistent(out, stats)


def test_an_error_inside_a_task_reaches_the_user_as_one_line(tmp_path):
    """A classifier model the driver cannot see is left to the tasks (on a cluster it is an
    executor path); in local mode the first task fails, and the user gets one line naming it,
    exit 2, with the traceback in a log file."""
    src = _inputs(tmp_path / "in")
    config = tmp_path / "mine.yaml"
    missing = tmp_path / "models" / "clf.bin"
    config.write_text(f"classifier:\n  model: {missing}\n")
    env_log = tmp_path / "logs"
    proc = subprocess.run(
        [sys.executable, "-m", "jobs.cli", "mine", "--input", str(src), "--output", str(tmp_path / "out"),
         "--master", "local[2]", "--config", str(config)],
        cwd=REPO, check=False, capture_output=True, text=True, timeout=600,
        env={**os.environ, "INSTRUCTMIX_LOG_DIR": str(env_log)})
    assert proc.returncode == 2, proc.stderr[-3000:]
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith("instructmix mine: error: ") and str(missing) in line and "train" in line
    # The driver prints no traceback of its own (Spark's executor log lines may precede the error).
    assert "Py4JJavaError" not in proc.stderr and "pyspark.errors" not in proc.stderr
    log = Path(line.rsplit("(traceback: ", 1)[1].rstrip(")"))
    assert log.parent == env_log and "FileNotFoundError" in log.read_text()
    assert not (tmp_path / "out" / LOCK_FILE).exists()


# --- object storage ---------------------------------------------------------------------------------

def test_mine_from_and_into_s3_reads_back_and_resumes(spark, s3_bucket, s3_server):
    import s3fs

    options = {"client_kwargs": {"endpoint_url": s3_server}, "key": "testing", "secret": "testing"}
    fs = s3fs.S3FileSystem(**options)
    bucket = s3_bucket.removeprefix("s3://")
    for sample in sorted(SAMPLES.glob("web-*")):
        fs.put(str(sample), f"{bucket}/raw/{sample.name}")
    config = MineConfig(storage_options=options)
    output = f"{s3_bucket}/mined"
    stats = run_mine([f"{s3_bucket}/raw/web-*"], output, config=config, spark=spark, keep_work=True)
    assert stats["counters"]["mine.files.read"] == 3 and stats["counters"]["mine.documents.read"] > 0
    parts = sorted(fs.glob(f"{bucket}/mined/*.parquet"))
    assert [p.rsplit("/", 1)[1] for p in parts] == stats["outputs"]
    table = ds.dataset(f"{bucket}/mined", format="parquet", filesystem=fs).to_table()
    assert table.num_rows == stats["counters"]["mine.pairs.written"] > 0
    assert {"en", "zh"} <= set(table.column("lang").to_pylist())
    with fs.open(f"{bucket}/mined/{STATS_FILE}", "rb") as f:
        assert json.load(f) == stats
    assert not fs.exists(f"{bucket}/mined/{LOCK_FILE}")
    # Resume after a partial run: one checkpoint gone, the others reused from the bucket.
    checkpoints = sorted(fs.glob(f"{bucket}/mined/{WORK_DIR}/*/extract/*.parquet"))
    assert len(checkpoints) == 3
    fs.rm(checkpoints[0])
    again = run_mine([f"{s3_bucket}/raw/web-*"], output, config=config, spark=spark)
    assert again["counters"]["mine.files.resumed"] == 2
    table_again = ds.dataset(f"{bucket}/mined", format="parquet", filesystem=fs).to_table()
    assert sorted(table_again.column("id").to_pylist()) == sorted(table.column("id").to_pylist())
    assert not fs.exists(f"{bucket}/mined/{WORK_DIR}")


# --- train-classifier writes one model file ------------------------------------------------------------

def test_train_classifier_writes_its_model_once_and_refuses_to_replace_it_silently(tmp_path):
    from transforms.records import PAIR_SCHEMA

    pairs = tmp_path / "pairs"
    pairs.mkdir()
    rows = [{name: "" for name in PAIR_SCHEMA.names} | {
        "id": f"p{i}", "instruction": f"How do I {verb} a {thing}?",
        "output": f"To {verb} a {thing}, first check the manual, then follow each step in order.",
        "confidence": 0.9, "lang_score": 0.9, "classifier_score": None}
        for i, (verb, thing) in enumerate((v, t) for v in ("fix", "clean", "paint", "replace", "install")
                                          for t in ("door", "window", "bike chain", "faucet"))]
    pq.write_table(pa.Table.from_pylist(rows, schema=PAIR_SCHEMA), pairs / "part-00000.parquet")
    model = tmp_path / "models" / "clf.bin"

    def train(*extra: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "jobs.cli", "train-classifier", "--pairs", str(pairs), "--negatives",
             str(SAMPLES / "web-*"), "--output", str(model), "--epoch", "5", *extra],
            cwd=REPO, check=False, capture_output=True, text=True, timeout=600)

    proc = train()
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout)["model"] == str(model) and model.stat().st_size > 0
    assert [p.name for p in model.parent.iterdir()] == ["clf.bin"]  # no temporary left beside it
    before = model.read_bytes()
    proc = train()
    assert proc.returncode == 2 and "already exists" in proc.stderr and "--overwrite" in proc.stderr
    assert model.read_bytes() == before
    assert train("--overwrite").returncode == 0
    missing = subprocess.run(
        [sys.executable, "-m", "jobs.cli", "train-classifier", "--pairs", str(pairs), "--negatives",
         str(tmp_path / "none-*.warc.gz"), "--output", str(tmp_path / "other.bin")],
        cwd=REPO, check=False, capture_output=True, text=True, timeout=600)
    assert missing.returncode == 2 and "none-*.warc.gz" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1
