"""The mining job on the labelled development set (../shared/webdata/qa-dev), scored by
../shared/tools/score_mine.py; skipped cleanly where either is absent.

Issue 12's targets are asserted, and floors at the level reached where it is above them,
so that a change which loses recall or precision fails here.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from jobs.config import MineConfig
from jobs.mine import run_mine

pytestmark = pytest.mark.spark

# Issue 12's targets, all met (measured 2026-12-07: page recall 0.92, precision 1.0, question
# recall 0.93, question + answer recall 0.88, Chinese 0.94, pair precision 0.89, how-to 1.0).
TARGETS = {
    "page_recall": 0.85,
    "page_precision": 0.9,
    "question_recall": 0.8,
    "qa_recall": 0.7,
    "zh_question_recall": 0.75,
    "pair_precision_on_qa_pages": 0.75,
    "howto_page_recall": 0.85,
}
# Reached above the targets, so that a change which loses recall or precision fails here.
FLOORS = {
    "page_precision": 0.97,
    "page_recall": 0.9,
    "question_recall": 0.9,
    "qa_recall": 0.85,
}
MAX_PAIRS_PER_NEGATIVE_PAGE = 0.05  # the target is 0.1; 0.0 reached


@pytest.fixture(scope="module")
def scores(spark, webdata, tmp_path_factory) -> dict:
    scorer = webdata.parent / "tools" / "score_mine.py"
    if not scorer.is_file():
        pytest.skip(f"scorer not found at {scorer}")
    qa_dev = webdata / "qa-dev"
    out = tmp_path_factory.mktemp("qa-dev") / "mined"
    run_mine([str(qa_dev / "pages.warc.gz")], str(out), config=MineConfig(languages=[]), spark=spark)
    done = subprocess.run([sys.executable, str(scorer), str(out), str(qa_dev)], capture_output=True, text=True,
                          check=True)
    return json.loads(done.stdout)


def test_dev_set_scores_hold(scores):
    low = {k: (scores[k], v) for k, v in {**TARGETS, **FLOORS}.items() if scores[k] < v}
    assert not low, f"below target or floor (got, want): {low}; all scores: {scores}"
    assert scores["structural_pairs_per_none_page"] <= MAX_PAIRS_PER_NEGATIVE_PAGE, scores
