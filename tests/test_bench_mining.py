"""The whole-job harness of bench/bench_mining.py on a small WARC of our own pages; the
benchmark itself is run by hand (`make bench`)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

PAGE = (
    "<html><head><title>Tea FAQ</title></head><body><h1>Tea FAQ</h1>"
    "<h2>How long should green tea steep?</h2><p>Two to three minutes in water at about 80 degrees "
    "keeps green tea from turning bitter; taste it after two minutes and add a third if needed.</p>"
    "<h2>Can I reuse the leaves?</h2><p>Yes. Good loose-leaf tea gives two or three infusions; steep "
    "each one a little longer than the one before it.</p></body></html>"
)


@pytest.fixture(scope="module")
def bench():
    saved_path = list(sys.path)
    sys.path.insert(0, str(REPO / "bench"))
    import bench_mining

    yield bench_mining
    sys.path[:] = saved_path
    sys.modules.pop("bench_mining", None)


@pytest.mark.spark
def test_whole_job_runs_pinned_and_reports_both_sides(bench, tmp_path):
    folder = tmp_path / "warc"
    folder.mkdir()
    pages = [(f"https://tea.example/faq{i}", PAGE.replace("Tea FAQ", f"Tea FAQ {i}").encode()) for i in range(3)]
    raw = bench.write_warc(folder / "bench-00000.warc.gz", pages, 0)
    result = bench.bench_whole_job(folder, raw / 1e6, tmp_path, core=0, rounds=2)
    assert len(result["whole_job_seconds_each"]) == len(result["whole_job_speedup_each_round"]) == 2
    assert len(result["whole_job_pairs"]) == 1 and result["whole_job_pairs"][0] >= 2  # each round: the same pairs
    assert result["whole_job_seconds"] > 0 and result["whole_job_trafilatura_MBps_one_core"] > 0
    # On three pages the JVM start-up dominates; the ratio only means something at 600 MB.
    assert result["whole_job_speedup_vs_trafilatura"] >= 0
