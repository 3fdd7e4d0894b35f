"""`instructmix report RUN_DIR`: one self-contained HTML page (and its PNG plots) about a run.

Four layers, each usable alone, in the order the data flows:

1. `load.py` finds each stage's output where the pipeline wrote it
   (RUN/_pipeline.json, else the standard folders; synthesis possibly in
   several `synth/<name>` sections) and reads its `_stats.json` (the one
   shape of transforms/stats.py), the mix manifest and a few Parquet columns,
   through fsspec (local disk, `s3://`, ...).
2. `numbers.py` turns those records into the figures shown (`inputs_summary`,
   `mining_summary`, `drop_reasons`, `task_types`, `language_counts`,
   `length_distribution`, `novelty_histogram`, `mixing_summary`, `examples`,
   and `cautions` for figures resting on fewer than `FEW_DOCUMENTS`);
   `summarize_run` gathers them into one JSON-able dict.
3. `plots.py` draws the PNGs (matplotlib Agg).
4. `page.py` renders templates/report/report.html.jinja in Jinja's sandbox
   and writes the report folder atomically.

`fonts.py` serves 3 and 4: the Chinese font (Noto Sans SC, from a wheel) that
plots and page draw Chinese text with.

Any stage may be missing (a partial run); its part of the report then says why.
"""

from __future__ import annotations

from collections.abc import Mapping

from jobs.config import REPORT_DIR
from jobs.progress import log
from jobs.report.load import join, load_run, run_dir_exists, stage_folders
from jobs.report.numbers import (
    FEW_DOCUMENTS,
    NOVELTY_SAMPLE,
    cautions,
    drop_reasons,
    examples,
    inputs_summary,
    language_counts,
    length_distribution,
    mining_summary,
    mixing_summary,
    novelty_histogram,
    novelty_scores,
    summarize_run,
    task_types,
)
from jobs.report.page import render_html, write_report
from jobs.report.plots import draw_plots

__all__ = [
    "FEW_DOCUMENTS",
    "cautions",
    "draw_plots",
    "drop_reasons",
    "examples",
    "inputs_summary",
    "language_counts",
    "length_distribution",
    "load_run",
    "mining_summary",
    "mixing_summary",
    "novelty_histogram",
    "novelty_scores",
    "render_html",
    "run_report",
    "stage_folders",
    "summarize_run",
    "task_types",
]


def run_report(run_dir: str, out_dir: str | None = None, seeds: str | None = None,
               novelty_sample: int = NOVELTY_SAMPLE, storage_options: Mapping | None = None,
               stage_options: Mapping[str, Mapping] | None = None, overwrite: bool = False) -> str:
    """Write `index.html`, `summary.json` and the PNG plots of the run in `run_dir`; returns index.html's URL.

    `run_dir` and `out_dir` (default RUN_DIR/report) are local paths or fsspec
    URLs opened with `storage_options`; `stage_options` gives a stage whose
    output needs other options its own. `seeds` is a seed-task file or folder
    (default: the packaged templates/seeds/).
    """
    if not run_dir_exists(run_dir, storage_options):
        raise FileNotFoundError(f"{run_dir}: no such run directory (the output folder of `instructmix run`)")
    out_dir = out_dir or join(run_dir, REPORT_DIR)
    log(f"report: reading {run_dir}")
    summary = summarize_run(run_dir, seeds=seeds, novelty_sample=novelty_sample, storage_options=storage_options,
                            stage_options=stage_options)
    for stage, info in summary["stages"].items():
        if not info["present"]:
            log(f"[yellow]report: {stage}: {info['note']}")
    log("report: drawing plots")
    images = draw_plots(summary)
    index = write_report(out_dir, summary, images, storage_options=storage_options, overwrite=overwrite)
    log(f"report: wrote {index} ({len(images)} plot(s))")
    return index
