"""`instructmix train-classifier` end to end on real text: seed tasks vs. Common Crawl passages."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq

from transforms.mine.instruction_classifier import InstructionClassifier
from transforms.records import PAIR_SCHEMA


def _pairs_parquet(webdata, out_dir):
    """Real instruction pairs (Self-Instruct and BELLE seeds) in the mined-pair schema."""
    rows = []
    seed_files = [
        webdata / "instructions" / "alpaca-self-instruct-seed" / "seed_tasks.jsonl",
        webdata / "instructions" / "belle-zh" / "zh_seed_tasks.json",
    ]
    for path in seed_files:
        for line in path.read_text(encoding="utf-8").splitlines():
            task = json.loads(line)
            inst = task["instances"][0]
            rows.append({
                "id": task["id"] + path.stem, "instruction": task["instruction"], "input": inst["input"],
                "output": inst["output"], "kind": "seed", "miner": "seed", "confidence": 1.0, "lang": "",
                "lang_score": 0.0, "source_url": "", "source_file": str(path), "source_record": task["id"],
                "title": "", "classifier_score": None,
            })
    out_dir.mkdir()
    pq.write_table(pa.Table.from_pylist(rows, schema=PAIR_SCHEMA), out_dir / "part-00000.parquet")
    return rows


def test_train_classifier_cli_separates_instructions_from_web_passages(webdata, tmp_path):
    rows = _pairs_parquet(webdata, tmp_path / "pairs")
    # Chinese negatives too, so the model cannot learn "Chinese means instruction".
    with gzip.open(tmp_path / "zh-pages.jsonl.gz", "wt", encoding="utf-8") as f:
        for page in sorted((webdata / "zh").glob("*.html.gz")):
            f.write(json.dumps({"url": page.name, "html": gzip.decompress(page.read_bytes()).decode("utf-8", "replace")}) + "\n")
    model = tmp_path / "clf.bin"
    proc = subprocess.run(
        [sys.executable, "-m", "jobs.cli", "train-classifier", "--pairs", str(tmp_path / "pairs"),
         "--negatives", str(webdata / "text" / "dolma-ccnet-cc_en_head"), str(webdata / "warc" / "dolma-wget-samples"),
         str(tmp_path / "zh-pages.jsonl.gz"), "--output", str(model), "--epoch", "15"],
        check=False, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    metrics = json.loads(proc.stdout)
    assert metrics["positives"] == len(rows)
    assert metrics["holdout_precision"] >= 0.8 and metrics["holdout_recall"] >= 0.7, metrics
    clf = InstructionClassifier(str(model))
    assert clf.score("How do I reset my router password? Hold the reset button for ten seconds.") > clf.score(
        "The town council met on Tuesday evening and discussed the budget for the coming year."
    )


def test_train_classifier_names_an_empty_pairs_folder(tmp_path):
    (tmp_path / "pairs").mkdir()
    pq.write_table(PAIR_SCHEMA.empty_table(), tmp_path / "pairs" / "part-0.parquet")
    proc = subprocess.run(
        [sys.executable, "-m", "jobs.cli", "train-classifier", "--pairs", str(tmp_path / "pairs"),
         "--negatives", str(tmp_path), "--output", str(tmp_path / "m.bin")],
        check=False, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert "no mined pairs" in proc.stderr
