"""`instructmix run`: mine → synth → mix (→ report) from one YAML, into one run directory.

Each stage writes to its own folder (RUN/mined, RUN/synth, and `mix.output.path`,
by default RUN/mixed), on local disk or any fsspec URL (`s3://…`). RUN/_pipeline.json
records each stage's fingerprint (`workdir.fingerprint` of its resolved section,
chained with the stages before it), its state and the URL of its output, which
is where `instructmix report` looks for it. A re-run skips a stage whose record
says done with the same fingerprint and whose `_stats.json` is there; a stage
that was started but not finished with the same fingerprint resumes from its
own checkpoints; a changed section (or one upstream) runs the stage again, and
the stage itself replaces only what its previous run published. `--from STAGE`
runs that stage and all after it again.

The run never deletes anything itself. It holds the run directory for its
length (a lock), and before any stage starts it checks that every stage that
will run may write its output: a folder holding files that stage did not write
(a user's own data in `mix.output.path`, say) or overlapping one of its inputs
stops the run at once with a one-line error, unless `--overwrite`, which each
stage then receives.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

from jobs.config import (
    PIPELINE_FILE,
    PIPELINE_STAGES,
    REPORT_DIR,
    RUN_PLACEHOLDER,
    STAGE_DIRS,
    ConfigError,
    MineConfig,
    MixConfig,
    PipelineConfig,
    SynthConfig,
    validate_config,
)
from jobs.mix import MANIFEST_FILE
from jobs.workdir import WORK_DIR, StageOutput, fingerprint
from transforms.stats import STATS_FILE, counters_of


def _substitute_run(value: Any, run_dir: str) -> Any:
    """`${run}` in any string of a section means the run directory."""
    if isinstance(value, str):
        return value.replace(RUN_PLACEHOLDER, run_dir)
    if isinstance(value, list):
        return [_substitute_run(v, run_dir) for v in value]
    if isinstance(value, dict):
        return {k: _substitute_run(v, run_dir) for k, v in value.items()}
    return value


def resolved_sections(config: PipelineConfig) -> dict[str, dict]:
    """Each step's section as plain data, paths resolved against the run directory, by step key.

    A step key is the stage's name, or `synth/<name>` for each entry of a `synth:`
    list (`stage_of` gives the stage back). A section without `storage_options` of
    its own gets the pipeline's, so one `storage_options:` at the top serves a run
    whose every folder is in one bucket.
    """
    run_dir = config.output.rstrip("/")
    sections = {}
    for stage in config.stages:
        value = getattr(config, stage)
        entries = [(f"{stage}/{v.folder_name}", v) for v in value] if isinstance(value, list) else [(stage, value)]
        for key, entry in entries:
            section = _substitute_run(entry.model_dump(mode="json"), run_dir)
            if not section.get("storage_options"):
                section["storage_options"] = dict(config.storage_options)
            sections[key] = section
    return sections


def stage_of(key: str) -> str:
    """The stage of a step key: `synth/doc_qa` -> `synth`."""
    return key.split("/", 1)[0]


def stage_output(config: PipelineConfig, key: str, section: dict) -> str:
    """Where step `key` writes: `mix.output.path`, RUN/mined, RUN/synth or RUN/synth/<name>."""
    stage = stage_of(key)
    if stage == "mix":
        return section["output"]["path"]
    folder = STAGE_DIRS[stage] + key[len(stage):]
    return f"{config.output.rstrip('/')}/{folder}"


def stage_inputs(stage: str, section: dict) -> list[str]:
    """What a stage reads: its output may be none of these, nor lie inside or around one."""
    if stage == "mix":
        return [s["path"] for s in section["pretrain"]] + [s["path"] for s in section["instructions"]]
    return list(section["input"])


def stage_fingerprint(stage: str, section: dict, upstream: str) -> str:
    """The stage's fingerprint, chained with the one before it. Storage options are left
    out: new credentials or another endpoint for the same data change no result."""
    content = {k: v for k, v in section.items() if k != "storage_options"}
    if section.get("decontaminate"):  # a benchmark file edited in place is a changed stage
        from jobs.decontamination import file_digests

        content["decontaminate_files"] = file_digests(section)
    return fingerprint(stage, content, *([upstream] if upstream else []))


def _absolute(url: str) -> str:
    """An output as `_pipeline.json` records it: a URL as given, a local path absolute."""
    return url if "://" in url else os.path.abspath(url)


class RunState:
    """RUN/_pipeline.json: what each stage was run with, whether it finished and where it wrote."""

    def __init__(self, run: StageOutput) -> None:
        self.run = run
        data = run.read_json(PIPELINE_FILE)
        self.data: dict[str, Any] = data if isinstance(data, dict) else {}
        self.stages: dict[str, dict] = self.data.setdefault("stages", {})

    def record(self, stage: str, **fields) -> None:
        self.stages[stage] = fields
        self._write()

    def record_report(self, output: str) -> None:
        self.data["report"] = {"output": output}
        self._write()

    def _write(self) -> None:
        self.data["run_dir"] = _absolute(self.run.url)
        self.data["run_id"] = self.run.run_id
        self.run.write_json(PIPELINE_FILE, self.data)  # atomic: a reader never sees half of it


@dataclass
class Step:
    """One step of this run (a stage, or one entry of a `synth:` list) and what will happen to it."""

    number: int
    key: str  # in _pipeline.json and the summary: the stage, or synth/<name>
    section: dict
    output: str
    fingerprint: str
    action: str  # "skip" | "resume" | "start"

    @property
    def stage(self) -> str:
        return stage_of(self.key)


def plan_run(config: PipelineConfig, sections: dict[str, dict], state: RunState,
             from_stage: str | None) -> list[Step]:
    """Decide for every step, before any runs, whether it is skipped, resumed or started.

    A step's fingerprint is chained with those of the earlier stages' steps (the
    entries of a `synth:` list depend on mining, not on each other; mixing on all).
    """
    steps: list[Step] = []
    forced = False
    for number, (key, section) in enumerate(sections.items(), start=1):
        stage = stage_of(key)
        out = stage_output(config, key, section)
        upstream = ",".join(s.fingerprint for s in steps if s.stage != stage)
        fp = stage_fingerprint(stage, section, upstream)
        previous = state.stages.get(key, {})
        forced = forced or stage == from_stage
        same = previous.get("fingerprint") == fp and previous.get("output") == _absolute(out)
        if not forced and same and previous.get("state") == "done" and _finished(stage, out, section):
            action = "skip"
        elif from_stage is not None and not forced:
            raise ConfigError(f"--from {from_stage}: stage {key!r} before it has not finished in "
                              f"{config.output}; run without --from first")
        else:
            action = "resume" if same and not forced and previous.get("state") == "started" else "start"
        steps.append(Step(number, key, section, out, fp, action))
    return steps


def _finished(stage: str, out: str, section: dict) -> bool:
    """The stage's finish line: its `_stats.json`, written last, is there."""
    stats = StageOutput(stage, out, section.get("storage_options")).read_json(STATS_FILE)
    return isinstance(stats, dict) and stats.get("stage") == stage


def _own_folders(config: PipelineConfig, steps: list[Step]) -> list[str]:
    """The run directory's entries the pipeline writes: its stage folders and the report."""
    root = config.output.rstrip("/") + "/"
    own = [PIPELINE_FILE, f"{REPORT_DIR}/", *(f"{name}/" for name in STAGE_DIRS.values())]
    for step in steps:
        if step.output.startswith(root):
            own.append(step.output[len(root):].split("/", 1)[0] + "/")
    return own


def check_outputs(config: PipelineConfig, steps: list[Step], state: RunState, overwrite: bool) -> None:
    """Before any stage starts, refuse an output a stage that will run may not write into
    (files it did not write, an overlap with its inputs): a refused mix output costs no mining.

    A folder with traces of a run this check cannot judge is left to the stage, which
    recognises what of it it wrote: an interrupted run (`_work/`, or the stage recorded
    as started) or one of an older version (`_stats.json` in another shape, a mixer's
    `manifest.json` without `_stats.json`).
    """
    if isinstance(config.synth, list) and "synth" in config.stages:
        flat = StageOutput("synth", stage_output(config, "synth", {}), config.storage_options)
        stats = flat.read_json(STATS_FILE)
        if isinstance(stats, dict) and not overwrite:
            # A mix source RUN/synth would read that old output beside the new folders.
            raise ConfigError(f"{flat.url} holds the output of a single `synth:` section; with a list each "
                              "entry writes RUN/synth/<name>: remove the old output or pass --overwrite")
        if isinstance(stats, dict):
            flat.remove_stale(keep=[], previous=[*(flat.previous_outputs() or []), STATS_FILE])
            flat.remove_work()
    for step in steps:
        out = StageOutput(step.stage, step.output, step.section["storage_options"])
        if step.action == "start" and state.stages.get(step.key, {}).get("state") != "started" \
                and not _left_to_the_stage(out):
            out.claim(stage_inputs(step.stage, step.section), overwrite=overwrite)
    if config.report:
        from jobs.report.page import older_report_files

        report = StageOutput("report", f"{config.output.rstrip('/')}/{REPORT_DIR}", config.storage_options)
        report.claim(overwrite=overwrite, own=older_report_files(report))


def _left_to_the_stage(out: StageOutput) -> bool:
    if out.exists(WORK_DIR):
        return True
    if out.exists(STATS_FILE):
        stats = out.read_json(STATS_FILE)
        return not (isinstance(stats, dict) and stats.get("stage") == out.stage)
    return out.exists(MANIFEST_FILE)


def run_pipeline(config: PipelineConfig, from_stage: str | None = None, overwrite: bool = False) -> dict:
    """Run the listed stages in order; returns what each stage did (ran, resumed or skipped).

    `overwrite` lets every stage write into a folder holding files it did not write
    (each stage's own `--overwrite`); without it such a folder stops the run before
    any stage starts.
    """
    from jobs.progress import log

    if from_stage is not None and from_stage not in config.stages:
        raise ConfigError(f"--from {from_stage}: not one of this pipeline's stages {config.stages}")
    sections = resolved_sections(config)
    run = StageOutput("run", config.output, config.storage_options)
    with run.lock():
        state = RunState(run)
        steps = plan_run(config, sections, state, from_stage)
        run.claim(overwrite=overwrite, own=_own_folders(config, steps))
        check_outputs(config, steps, state, overwrite)
        summary: dict[str, dict] = {}
        total = len(steps)
        for step in steps:
            key, out = step.key, step.output
            if step.action == "skip":
                log(f"run: stage {step.number}/{total} {key}: already done in {out}, skipped")
                summary[key] = {"status": "skipped", "output": out, **state.stages[key].get("summary", {})}
                continue
            resuming = step.action == "resume"
            log(f"run: stage {step.number}/{total} {key}: {'resuming' if resuming else 'starting'} -> {out}")
            state.record(key, fingerprint=step.fingerprint, state="started", output=_absolute(out))
            started = time.time()
            result = run_stage(step.stage, step.section, out, config, overwrite=overwrite)
            state.record(key, fingerprint=step.fingerprint, state="done", output=_absolute(out), summary=result,
                         seconds=round(time.time() - started, 2))
            summary[key] = {"status": "resumed" if resuming else "ran", "output": out, **result}
        if config.report:
            from jobs.report import run_report

            index = run_report(config.output, storage_options=config.storage_options,
                               stage_options={s: sections[s]["storage_options"] for s in sections},
                               overwrite=overwrite)
            state.record_report(_absolute(index))
            summary["report"] = {"status": "ran", "output": index}
    return summary


def run_stage(stage: str, section: dict, out: str, config: PipelineConfig, overwrite: bool = False) -> dict:
    """Run one stage with the engines the pipeline names; returns a short summary from its `_stats.json`."""
    resolved, section = section, dict(section)
    if stage == "mine":
        from jobs.mine import run_mine

        inputs = section.pop("input")
        run_mine(inputs, out, master=config.spark.master, config=validate_config(section, MineConfig, "mine"),
                 overwrite=overwrite)
    elif stage == "synth":
        from jobs.synth import run_synth

        inputs, mode = section.pop("input"), section.pop("mode")
        section.pop("name", None)
        run_synth(inputs, out, mode, validate_config(section, SynthConfig, "synth"), address=config.ray.address,
                  overwrite=overwrite)
    else:
        from jobs.mix import run_mix

        run_mix(validate_config(section, MixConfig, "mix"), master=config.spark.master, overwrite=overwrite)
    stats = StageOutput(stage, out, section.get("storage_options")).read_json(STATS_FILE)
    return stage_summary(stage, counters_of(stats, stage), resolved)


def stage_summary(stage: str, counters: dict[str, int], section: dict) -> dict:
    """The few figures `instructmix run` prints per stage, from its counters (transforms/stats.py names)."""
    if stage == "mine":
        return {"pairs": counters.get("mine.pairs.written", 0), "documents": counters.get("mine.documents.read", 0)}
    if stage == "synth":
        return {"records": counters.get("synth.records.written", 0), "mode": section.get("mode")}
    tokens = counters.get("mix.output.tokens", 0)
    return {"shards": counters.get("mix.output.shards", 0), "tokens": tokens,
            "realized_ratio": round(counters.get("mix.output.instruction_tokens", 0) / tokens, 6) if tokens else 0.0,
            "target_ratio": section["ratio"]}  # a number, or the schedule as written


__all__ = ["PIPELINE_STAGES", "STAGE_DIRS", "run_pipeline"]
