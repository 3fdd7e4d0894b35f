"""`instructmix run`: mine → synth → mix (→ report) from one YAML, into one run directory.

Each stage writes to its own folder of the run directory (mined/, synth/, mixed/)
and is recorded in RUN/_pipeline.json with a fingerprint of its resolved section
chained with the fingerprints before it. A re-run skips a stage whose record says
done with the same fingerprint; a stage that was started but not finished with the
same fingerprint resumes from its own checkpoints; a changed section (or one
upstream) starts that stage afresh. `--from STAGE` reruns that stage and all after
it from scratch.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

import fsspec

from jobs.config import (
    PIPELINE_STAGES,
    RUN_PLACEHOLDER,
    STAGE_DIRS,
    STAGE_DONE_FILES,
    ConfigError,
    MineConfig,
    MixConfig,
    PipelineConfig,
    SynthConfig,
    validate_config,
)

STATE_FILE = "_pipeline.json"


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
    """Each listed stage's section as plain data, paths resolved against the run directory."""
    run_dir = config.output.rstrip("/")
    return {stage: _substitute_run(getattr(config, stage).model_dump(mode="json"), run_dir)
            for stage in config.stages}


def stage_output(config: PipelineConfig, stage: str, section: dict) -> str:
    if stage == "mix":
        return section["output"]["path"]
    return f"{config.output.rstrip('/')}/{STAGE_DIRS[stage]}"


def _done_marker(stage: str, out: str) -> str:
    return f"{out}/{STAGE_DONE_FILES[stage]}"


def _fingerprint(section: dict, upstream: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        code_version = version("instructmix")
    except PackageNotFoundError:
        code_version = "unknown"
    payload = json.dumps({"section": section, "upstream": upstream, "version": code_version}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


class RunState:
    """RUN/_pipeline.json: what each stage was run with and whether it finished."""

    def __init__(self, run_dir: str, storage_options: dict | None = None) -> None:
        self.fs, self.root = fsspec.core.url_to_fs(run_dir, **(storage_options or {}))
        self.path = f"{self.root.rstrip('/')}/{STATE_FILE}"
        self.stages: dict[str, dict] = {}
        if self.fs.exists(self.path):
            with self.fs.open(self.path, "r", encoding="utf-8") as f:
                self.stages = json.load(f).get("stages", {})

    def record(self, stage: str, **fields) -> None:
        self.stages[stage] = fields
        self.fs.makedirs(self.root, exist_ok=True)
        tmp = f"{self.path}.tmp"
        with self.fs.open(tmp, "w", encoding="utf-8") as f:
            json.dump({"stages": self.stages}, f, indent=2, sort_keys=True)
        self.fs.mv(tmp, self.path)


def _remove(path: str) -> None:
    fs, root = fsspec.core.url_to_fs(path)
    if fs.exists(root):
        fs.rm(root, recursive=True)


def _exists(path: str) -> bool:
    fs, root = fsspec.core.url_to_fs(path)
    return fs.exists(root)


def run_stage(stage: str, section: dict, out: str, config: PipelineConfig) -> dict:
    """Run one stage with the engines the pipeline names; returns a short summary."""
    if stage == "mine":
        from jobs.mine import run_mine

        inputs = section.pop("input")
        stats = run_mine(inputs, out, master=config.spark.master, config=validate_config(section, MineConfig, "mine"))
        return {"pairs": stats["pairs"]["written"], "documents": stats["documents"]["read"]}
    if stage == "synth":
        from jobs.synth import run_synth

        inputs, mode = section.pop("input"), section.pop("mode")
        stats = run_synth(inputs, out, mode, validate_config(section, SynthConfig, "synth"),
                          address=config.ray.address)
        return {"records": stats["written"], "mode": mode}
    from jobs.mix import run_mix

    manifest = run_mix(validate_config(section, MixConfig, "mix"), master=config.spark.master)
    return {"shards": len(manifest["shards"]), "tokens": manifest["tokens"],
            "realized_ratio": round(manifest["realized_ratio"], 6), "target_ratio": manifest["target_ratio"]}


def run_pipeline(config: PipelineConfig, from_stage: str | None = None) -> dict:
    """Run the listed stages in order; returns what each stage did (ran, resumed or skipped)."""
    from jobs.progress import log

    if from_stage is not None and from_stage not in config.stages:
        raise ConfigError(f"--from {from_stage}: not one of this pipeline's stages {config.stages}")
    sections = resolved_sections(config)
    state = RunState(config.output)
    summary: dict[str, dict] = {}
    upstream = ""
    forced = False
    for number, stage in enumerate(config.stages, start=1):
        section = sections[stage]
        out = stage_output(config, stage, section)
        fingerprint = _fingerprint(section, upstream)
        upstream = fingerprint
        previous = state.stages.get(stage, {})
        forced = forced or stage == from_stage
        same = previous.get("fingerprint") == fingerprint
        if not forced and same and previous.get("state") == "done" and _exists(_done_marker(stage, out)):
            log(f"run: stage {number}/{len(config.stages)} {stage}: already done in {out}, skipped")
            summary[stage] = {"status": "skipped", "output": out, **previous.get("summary", {})}
            continue
        if from_stage is not None and not forced:
            raise ConfigError(f"--from {from_stage}: stage {stage!r} before it has not finished in "
                              f"{config.output}; run without --from first")
        resuming = same and not forced and previous.get("state") == "started"
        if not resuming:
            _remove(out)  # a changed section (or --from) starts the stage afresh
        log(f"run: stage {number}/{len(config.stages)} {stage}: {'resuming' if resuming else 'starting'} -> {out}")
        state.record(stage, fingerprint=fingerprint, state="started", output=out)
        started = time.time()
        result = run_stage(stage, dict(section), out, config)
        state.record(stage, fingerprint=fingerprint, state="done", output=out, summary=result,
                     seconds=round(time.time() - started, 2))
        summary[stage] = {"status": "resumed" if resuming else "ran", "output": out, **result}
    if config.report:
        from jobs.report import run_report

        summary["report"] = {"status": "ran", "output": run_report(config.output)}
    return summary


__all__ = ["PIPELINE_STAGES", "STAGE_DIRS", "run_pipeline"]
