"""Configuration models for every job, validated up front.

Errors name the file, the key and what is wrong (`mine.yaml: dedup.bands: ...`),
and unknown keys are errors, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
import re
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    create_model,
    field_serializer,
    field_validator,
    model_validator,
)

from templates import read_user_yaml
from transforms.filters import FilterConfig
from transforms.mix.loss_mask import LOSS_MASKS
from transforms.mix.schedule import SCHEDULE_SHAPE, RatioSchedule, ratio_range_error

M = TypeVar("M", bound=BaseModel)


class ConfigError(ValueError):
    """A configuration file that cannot be used; the message says where and why."""


def _reject_unknown(values: list[str], known: tuple[str, ...], noun: str) -> None:
    """The one error a list-of-names key gives for names it does not know."""
    unknown = [v for v in values if v not in known]
    if unknown:
        raise ValueError(f"unknown {noun}(s) {unknown}; choose from {list(known)}")


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _settings_model(name: str, dataclass_type: type) -> type[StrictModel]:
    """A strict pydantic twin of a transforms dataclass, so its thresholds stay defined once."""
    hints = typing.get_type_hints(dataclass_type)
    fields: dict[str, Any] = {}
    for f in dataclasses.fields(dataclass_type):
        numeric = hints[f.name] in (int, float)
        fields[f.name] = (hints[f.name], Field(f.default, ge=0) if numeric else f.default)
    return create_model(name, __base__=StrictModel, **fields)


# Thresholds of transforms.filters.FilterConfig; its field names are the YAML keys.
FilterSettings = _settings_model("FilterSettings", FilterConfig)


class DedupSettings(StrictModel):
    exact: bool = True
    near: bool = True


class ClassifierSettings(StrictModel):
    """The fastText instruction-likeness model from `instructmix train-classifier`."""

    model: str
    threshold: float = Field(0.5, ge=0.0, le=1.0)


class BenchmarkSource(StrictModel):
    """One evaluation set whose text must not reach training data (transforms/decontaminate.py)."""

    path: str = Field(min_length=1)  # .jsonl / .json / .parquet / .csv (optionally .gz / .zst), local or URL
    # Names the benchmark in counters and the report; defaults to the file's name without endings.
    name: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
    # The top-level fields holding benchmark text; default: `decontaminate.fields`, else every string.
    fields: list[str] | None = None


class DecontaminationSettings(StrictModel):
    """`decontaminate: {benchmarks: [PATH, ...], ngram: 13}` in the mine, synth and mix configs."""

    benchmarks: list[BenchmarkSource] = Field(min_length=1)
    ngram: int = Field(13, ge=4, le=64)
    # Benchmark items shorter than `ngram` tokens count whole, down to this many tokens.
    min_ngram: int = Field(8, ge=1)
    fields: list[str] = Field(default_factory=list)

    @field_validator("benchmarks", mode="before")
    @classmethod
    def _paths_as_sources(cls, benchmarks: Any) -> Any:
        if isinstance(benchmarks, list):
            return [{"path": b} if isinstance(b, str) else b for b in benchmarks]
        return benchmarks

    @model_validator(mode="after")
    def _consistent(self) -> DecontaminationSettings:
        if self.min_ngram > self.ngram:
            raise ValueError(f"min_ngram ({self.min_ngram}) must not exceed ngram ({self.ngram})")
        names = self.names()
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"benchmarks: two files are named {repeated[0]!r}; give each a different `name:`")
        return self

    def names(self) -> list[str]:
        """Each benchmark's name: its `name:`, else its file name without endings (made counter-safe)."""
        out = []
        for b in self.benchmarks:
            if b.name:
                out.append(b.name)
                continue
            stem = b.path.rstrip("/").rsplit("/", 1)[-1].split(".", 1)[0]
            out.append(re.sub(r"[^A-Za-z0-9_-]", "_", stem).lstrip("_-") or "benchmark")
        return out


MINER_NAMES = ("markup", "faq_sections", "question_pages", "question_sentences", "howto")


class MineConfig(StrictModel):
    languages: list[str] = Field(default_factory=lambda: ["en", "zh"])
    miners: list[str] = Field(default_factory=lambda: list(MINER_NAMES))
    max_page_bytes: int = Field(5_000_000, ge=1024)
    min_lang_score: float = Field(0.5, ge=0.0, le=1.0)
    filters: FilterSettings = FilterSettings()
    dedup: DedupSettings = DedupSettings()
    classifier: ClassifierSettings | None = None
    decontaminate: DecontaminationSettings | None = None
    lid_model: str | None = None
    storage_options: dict[str, Any] = Field(default_factory=dict)
    spark_conf: dict[str, str] = Field(default_factory=dict)

    @field_validator("miners")
    @classmethod
    def _known_miners(cls, miners: list[str]) -> list[str]:
        _reject_unknown(miners, MINER_NAMES, "miner")
        if not miners:
            raise ValueError("at least one miner is needed")
        return miners




def _format_errors(source: str, err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "(top level)"
        if e["type"] == "extra_forbidden":
            msg = "unknown key"
        elif e["type"] == "missing":
            msg = "required key is missing"
        else:
            msg = e["msg"].removeprefix("Value error, ")
        lines.append(f"{source}: {key}: {msg}")
    return "\n".join(lines)


def validate_config(data: Any, model: type[M], source: str = "config") -> M:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of keys at the top level, got {type(data).__name__}")
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_format_errors(source, err)) from None


def load_config(path: str | Path | None, model: type[M]) -> M:
    """Read YAML with safe_load and validate it; no path means all defaults."""
    if path is None:
        return model()
    path = Path(path)
    try:
        data = read_user_yaml(str(path), str(path), "config")
    except ValueError as err:
        raise ConfigError(str(err)) from None
    return validate_config(data, model, source=path.name)


# --- mix -------------------------------------------------------------------------

# Every format a trainer can read the mix in (transforms/io/shard_writers.py, one writer each).
OUTPUT_FORMATS = ("jsonl.zst", "parquet", "megatron", "datatrove", "olmo", "mds")
# What `output.formats` is when left out: the ones the base install writes (datatrove and MDS
# need their extras; OLMo-core's arrays need an EOS token the tokenizer may lack).
DEFAULT_OUTPUT_FORMATS = ("jsonl.zst", "parquet", "megatron")
# Ratios seen in public work (GLM-130B 5 %, Instruction Pre-Training ~10 %,
# OLMo 2 mid-training FLAN 7-9 %); outside this band the job warns, not fails.
RECOMMENDED_RATIO = (0.01, 0.10)


class PretrainSource(StrictModel):
    path: str = Field(min_length=1)
    text_field: str = "text"
    name: str | None = None


class InstructionSource(StrictModel):
    path: str = Field(min_length=1)
    weight: float = Field(gt=0)
    name: str | None = None


class MixOutput(StrictModel):
    path: str = Field(min_length=1)
    formats: list[str] = Field(default_factory=lambda: list(DEFAULT_OUTPUT_FORMATS), min_length=1)
    shard_tokens: int = Field(50_000_000, ge=1000)
    # none, or instruction_prompt: the prompt tokens of every injected instruction get loss
    # mask 0 in the formats that carry masks (datatrove .ds.loss, OLMo label_mask).
    loss_mask: str = "none"
    # Written after every document of the olmo format: OLMo-core finds documents by it.
    eos_token: str = Field("<|endoftext|>", min_length=1)

    @field_validator("formats")
    @classmethod
    def _known_formats(cls, formats: list[str]) -> list[str]:
        _reject_unknown(formats, OUTPUT_FORMATS, "format")
        if len(set(formats)) != len(formats):
            raise ValueError(f"formats listed twice: {formats}")
        return formats

    @field_validator("loss_mask")
    @classmethod
    def _known_loss_mask(cls, loss_mask: str) -> str:
        _reject_unknown([loss_mask], LOSS_MASKS, "loss mask")
        return loss_mask


class MixConfig(StrictModel):
    seed: int = 0
    # A float, or a schedule over the output (transforms/mix/schedule.py):
    # {schedule: [{until: 0.5, ratio: 0.02}, {until: 1.0, ratio: 0.08, ramp: true}]}
    ratio: float | RatioSchedule
    tokenizer: str = Field(min_length=1)
    pretrain: list[PretrainSource] = Field(min_length=1)
    instructions: list[InstructionSource] = Field(min_length=1)
    max_repeat: int = Field(1, ge=1)
    output: MixOutput
    # standalone: instruction documents interleaved into the stream.
    # source_document: a pair whose source_url is a page in the stream is appended
    # to that page; standalone documents make up the rest of the ratio.
    placement: str = "standalone"
    # Instruction pairs per instruction document (1: one pair per document).
    pack: int = Field(1, ge=1, le=64)
    # A user's surface formats (YAML like templates/formats.yaml); rendered sandboxed.
    formats_file: str | None = None
    # Instruction records sharing an n-gram with a benchmark are dropped before rendering.
    decontaminate: DecontaminationSettings | None = None
    storage_options: dict[str, Any] = Field(default_factory=dict)
    spark_conf: dict[str, str] = Field(default_factory=dict)

    @field_validator("ratio", mode="before")
    @classmethod
    def _ratio_or_schedule(cls, ratio: Any) -> float | RatioSchedule:
        if isinstance(ratio, (Mapping, RatioSchedule)):
            return RatioSchedule.from_spec(ratio)
        try:  # numeric strings stay accepted, as pydantic's float did
            value = float(ratio)
        except (TypeError, ValueError):
            raise ValueError(f"must be a number or a schedule {SCHEDULE_SHAPE}, got {ratio!r}") from None
        if problem := ratio_range_error(value):
            raise ValueError(problem)
        return value

    @field_serializer("ratio")
    def _ratio_as_written(self, ratio: float | RatioSchedule) -> float | dict:
        return ratio.as_dict() if isinstance(ratio, RatioSchedule) else ratio

    @field_validator("placement")
    @classmethod
    def _known_placement(cls, placement: str) -> str:
        if placement not in ("standalone", "source_document"):
            raise ValueError(f"unknown placement {placement!r}; choose 'standalone' or 'source_document'")
        return placement

    def ratio_schedule(self) -> RatioSchedule:
        return RatioSchedule.from_spec(self.ratio)

    def ratio_warning(self) -> str | None:
        """One clause per step (or the one float) outside RECOMMENDED_RATIO, or None."""
        low, high = RECOMMENDED_RATIO
        if isinstance(self.ratio, RatioSchedule):
            named = [(f"ratio schedule[{i}].ratio", s.ratio) for i, s in enumerate(self.ratio.steps)]
        else:
            named = [("ratio", self.ratio)]
        outside = [f"{name} {ratio}" for name, ratio in named if not low <= ratio <= high]
        if not outside:
            return None
        return "; ".join(f"{what} is outside the usual [{low}, {high}] band of instruction tokens in pretraining"
                         for what in outside) + "; continuing as configured"


# --- synth -----------------------------------------------------------------------

SYNTH_MODES = ("template", "self_instruct", "doc_qa", "template_only")


class EngineSettings(StrictModel):
    actors: int = Field(1, ge=1)  # Ray actors, each owning one vLLM engine
    gpus_per_actor: float = Field(1, ge=0)  # 0 runs vLLM's CPU backend
    tensor_parallel_size: int = Field(1, ge=1)
    gpu_memory_utilization: float = Field(0.9, gt=0, le=1)
    max_model_len: int = Field(4096, ge=64)
    # Self-Instruct: prompts per round, and the most prompts per request to one actor when
    # a round's prompts are split over actors. (A document batch's prompts go to one actor
    # as one request; its size is `documents_per_batch`.) The async engine interleaves the
    # requests it holds, so request size matters little to throughput.
    batch_size: int = Field(256, ge=1)
    # Document batches outstanding per engine. The async engine generates them together,
    # so several keep a GPU's continuous batching full when batches are small; on a CPU
    # engine they only share the same cores, and the batch that reaches `limit` finishes
    # soonest with one at a time.
    batches_in_flight: int = Field(8, ge=1)


class SamplingSettings(StrictModel):
    temperature: float = Field(0.7, ge=0)
    top_p: float = Field(0.95, gt=0, le=1)
    max_tokens: int = Field(512, ge=1)
    seed: int = 0


class SynthConfig(StrictModel):
    # A local folder, a packaged model prepared by `instructmix model prepare NAME`
    # (templates/models.yaml: smollm2-135m), or a hub id already cached; never downloaded here.
    model: str | None = None
    # chat: system + user turns through the model's chat template; completion: the prompt
    # as plain text, for base models. Default: chat when the tokenizer has a template.
    prompt_format: Literal["chat", "completion"] | None = None
    engine: EngineSettings = EngineSettings()
    sampling: SamplingSettings = SamplingSettings()
    limit: int = Field(10_000, ge=1)  # stop after this many accepted records
    seeds: str | None = None  # self-instruct seed tasks: file or folder (default: templates/seeds)
    templates: str | None = None  # instruction templates folder (default: templates/instructions)
    prompts: str | None = None  # prompt templates folder (default: templates/prompts)
    seed: int = 0  # template choice, sampling of seed tasks, shuffles
    templates_per_document: int = Field(4, ge=1)
    # template / doc_qa answers must share this share of their content words with their
    # passage (transforms/synth/grounding.py); 0 keeps answers whatever they say.
    min_answer_share: float = Field(0.4, ge=0, le=1)
    documents_per_batch: int = Field(64, ge=1)  # one checkpointed unit of work
    self_instruct_rounds: int = Field(50, ge=1)
    # Synthesized records sharing an n-gram with a benchmark are dropped (the writer's last gate).
    decontaminate: DecontaminationSettings | None = None
    storage_options: dict[str, Any] = Field(default_factory=dict)


# --- pipeline ----------------------------------------------------------------------

PIPELINE_STAGES = ("mine", "synth", "mix")
RUN_PLACEHOLDER = "${run}"  # in pipeline paths: the run directory (`output:`)
# Each stage's folder in the run directory (the mix's unless `mix.output.path` says
# otherwise); a stage has finished when its `_stats.json` is there (written last).
STAGE_DIRS = {"mine": "mined", "synth": "synth", "mix": "mixed"}
# RUN/_pipeline.json: each stage's fingerprint, state and output URL, written by
# `instructmix run` and read by `instructmix report` to find every output.
PIPELINE_FILE = "_pipeline.json"
REPORT_DIR = "report"  # RUN/report: `instructmix report`'s page, plots and summary.json


class MineStage(MineConfig):
    """The mine section of a pipeline: configs/mine.yaml's keys plus where to read."""

    input: list[str] = Field(min_length=1)


class SynthStage(SynthConfig):
    """The synth section: configs/synth.yaml's keys plus the mode and the documents.

    The pipeline's `synth:` is one section (output RUN/synth) or a list of them, each
    run in turn into RUN/synth/<name> (`name` defaults to the mode), e.g. template_only
    on every document and doc_qa with a model on a few; RUN/synth as a mix source
    then reads them all.
    """

    mode: str = "template_only"
    name: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    input: list[str] = Field(default_factory=lambda: [f"{RUN_PLACEHOLDER}/mined"], min_length=1)

    @property
    def folder_name(self) -> str:
        return self.name or self.mode

    @field_validator("mode")
    @classmethod
    def _known_mode(cls, mode: str) -> str:
        if mode not in SYNTH_MODES:
            raise ValueError(f"unknown mode {mode!r}; choose from {list(SYNTH_MODES)}")
        return mode


class MixStageOutput(MixOutput):
    path: str = f"{RUN_PLACEHOLDER}/mixed"


class MixStage(MixConfig):
    """The mix section: configs/mix.yaml's keys; the output defaults to RUN/mixed."""

    output: MixStageOutput = MixStageOutput()


class SparkSettings(StrictModel):
    master: str | None = None  # local[*] when unset; spark://host:7077, k8s://…, yarn join a cluster


class RaySettings(StrictModel):
    address: str | None = None  # embedded Ray when unset; "auto" or ray://host:10001 joins a cluster


class PipelineConfig(StrictModel):
    output: str = Field(min_length=1)  # the run directory: mined/, synth/, mixed/, report/
    stages: list[str] = Field(default_factory=lambda: list(PIPELINE_STAGES), min_length=1)
    spark: SparkSettings = SparkSettings()
    ray: RaySettings = RaySettings()
    mine: MineStage | None = None
    synth: SynthStage | list[SynthStage] | None = None
    mix: MixStage | None = None
    report: bool = True
    # fsspec options of the run directory (`_pipeline.json`, the report), and of every
    # section that sets no `storage_options` of its own (e.g. an S3 endpoint and keys).
    storage_options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("stages")
    @classmethod
    def _known_stages(cls, stages: list[str]) -> list[str]:
        _reject_unknown(stages, PIPELINE_STAGES, "stage")
        return [s for s in PIPELINE_STAGES if s in stages]  # always in pipeline order

    @model_validator(mode="after")
    def _sections_for_stages(self) -> PipelineConfig:
        missing = [s for s in self.stages if getattr(self, s) is None or getattr(self, s) == []]
        if missing:
            raise ValueError(f"stage(s) {missing} are listed in `stages` but have no section of their own")
        if isinstance(self.synth, list):
            names = [entry.folder_name for entry in self.synth]
            repeated = sorted({n for n in names if names.count(n) > 1})
            if repeated:
                raise ValueError(f"synth: two sections write to synth/{repeated[0]}; give each a different "
                                 "`name:` (it defaults to the mode)")
        return self


# --- submission ----------------------------------------------------------------------


class SparkResources(StrictModel):
    deploy_mode: str = "client"  # cluster: k8s/yarn only (Python apps on standalone run in client mode)
    driver_memory: str | None = None
    executor_memory: str | None = None
    executor_cores: int | None = Field(None, ge=1)
    num_executors: int | None = Field(None, ge=1)  # spark.executor.instances (k8s, yarn)
    conf: dict[str, str] = Field(default_factory=dict)
    spark_submit: str = "spark-submit"  # the spark-submit program (pyspark ships one)

    @field_validator("deploy_mode")
    @classmethod
    def _known_deploy_mode(cls, mode: str) -> str:
        if mode not in ("client", "cluster"):
            raise ValueError(f"must be 'client' or 'cluster', got {mode!r}")
        return mode


class RayResources(StrictModel):
    entrypoint_num_cpus: float = Field(1, ge=0)
    entrypoint_num_gpus: float = Field(0, ge=0)  # vLLM actors ask for their own GPUs
    pip: list[str] = Field(default_factory=list)  # runtime_env pip, installed on the cluster for the job
    # Names of local environment variables passed to the job; values are never logged.
    forward_env: list[str] = Field(default_factory=list)


class ResourcesConfig(StrictModel):
    spark: SparkResources = SparkResources()
    ray: RayResources = RayResources()
