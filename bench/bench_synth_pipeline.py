"""Synthesis pipeline benchmark (not a test): the streaming Ray pipeline against plain vLLM
on the same prompts, and the driver's CPU time per 1,000 records.

1. Pipeline against plain vLLM (unless --skip-throughput). `jobs.synth.run_synth --mode
   template` over `--docs` real documents (the pages in the webdata folder and the CCNet
   texts, bench_synth.document_groups) with `--model`. Every engine request is logged
   (jobs.engines.vllm_actors.GENERATIONS_LOG_ENV) with its seed, prompts, completions,
   start and end. Pipeline tokens/s = generated tokens / (end of the last request - start
   of the first): the engine's start is left out, everything else (reading, prompt
   building and parsing in tasks, batches handed over, the writer) is in. Plain: one
   `vllm.LLM` in a subprocess of its own (bench_synth.plain_worker, the actor's engine
   settings), one `generate` call over exactly the logged prompts with the same
   per-prompt seeds, after a warm-up call. `pipeline_vs_plain` = the ratio (target >=
   0.95); `same_completions` = how many completions are identical on both sides.

2. Driver CPU (unless --skip-driver). The driver's own CPU time (`time.process_time`: all
   its threads, Ray's included; the workers are other processes) over a whole
   `run_synth`, at `--driver-docs` documents and at 4x as many (the real documents
   repeated, in `--files` files), for template_only (no model) and, unless
   --skip-throughput, template with the model, after a smaller warm-up run (Ray's start
   and the imports are paid once per process). Fixed costs (the tokenizer, the engine
   actor, publishing) are the same at both sizes, so the difference per 1,000 more records is
   what the driver spends per record: `driver_cpu_ms_per_1000_records` (target: near
   zero), and per batch (`driver_cpu_ms_per_batch`: the driver's work is per batch, so
   per record it shrinks as batches grow). Records are the candidate pairs the batches
   built (`synth.instructions.filled`).

Run (repository root): `python bench/bench_synth_pipeline.py [--model M] [--gpus N]
[--docs N] [--driver-docs N] [--json-out FILE]`. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import bench_synth


def write_shards(bs, docs: list[dict], count: int, files: int, folder: Path) -> Path:
    """`count` documents (the real ones repeated, each copy a new id) in `files` JSONL files."""
    folder.mkdir(parents=True, exist_ok=True)
    picked = [dict(docs[i % len(docs)], id=f"d{i}") for i in range(count)]
    per_file = -(-count // files)
    for f in range(files):
        bs.write_documents(folder / f"docs-{f:03d}.jsonl", picked[f * per_file : (f + 1) * per_file])
    return folder


def logged_calls(folder: Path) -> list[dict]:
    calls = [json.loads(line) for path in sorted(folder.glob("generations-*.jsonl"))
             for line in path.read_text(encoding="utf-8").splitlines()]
    return sorted(calls, key=lambda c: c["seed"])


def timed_run(inputs: Path, out: Path, mode: str, config, log: Path | None = None) -> dict:
    """One run_synth: wall and driver CPU seconds, candidate and written records."""
    from jobs.engines.vllm_actors import GENERATIONS_LOG_ENV
    from jobs.synth import run_synth

    if log is not None:
        log.mkdir(parents=True, exist_ok=True)
        os.environ[GENERATIONS_LOG_ENV] = str(log)
    try:
        cpu0, wall0 = time.process_time(), time.perf_counter()
        stats = run_synth([str(inputs)], str(out), mode, config)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    finally:
        os.environ.pop(GENERATIONS_LOG_ENV, None)
    c = stats["counters"]
    return {"wall_seconds": round(wall, 2), "driver_cpu_seconds": round(cpu, 3),
            "documents": c.get("synth.documents.read", 0), "records": c.get("synth.instructions.filled", 0),
            "written": c.get("synth.records.written", 0), "batches": c.get("synth.batches.done", 0)}


def bench_pipeline_vs_plain(bs, args, model_dir: str, docs: list[dict], tmp: Path) -> dict:
    engine = bs.engine_settings(args.gpus, 1, args.max_model_len, args.batch_size)
    sampling = bs.sampling_settings(args.max_tokens)
    config = bs.synth_config(model_dir, engine, sampling, documents_per_batch=args.documents_per_batch)
    shards = write_shards(bs, docs, args.docs, args.files, tmp / "docs-throughput")
    run = timed_run(shards, tmp / "out-throughput", "template", config, log=tmp / "log")
    calls = logged_calls(tmp / "log")
    prompts = [p for c in calls for p in c["prompts"]]
    seeds = [c["seed"] + i for c in calls for i in range(len(c["prompts"]))]
    texts = [o["text"] for c in calls for o in c["outputs"]]
    tokens = sum(o["tokens"] for c in calls for o in c["outputs"])
    window = max(c["finished"] for c in calls) - min(c["started"] for c in calls)
    result = {"engine": engine, "sampling": sampling, "pipeline_run": run, "requests": len(calls),
              "prompts": len(prompts), "pipeline_generated_tokens": tokens,
              "pipeline_generating_seconds": round(window, 2),
              "pipeline_tokens_per_s": round(tokens / window, 1)}
    plain = bs.bench_plain(model_dir, prompts, engine, sampling, tmp, args.plain_timeout, seeds=seeds)
    result["same_completions"] = sum(a == b for a, b in zip(plain.pop("plain_texts"), texts, strict=True))
    result.update(plain)
    result["pipeline_vs_plain"] = round(result["pipeline_tokens_per_s"] / result["plain_tokens_per_s"], 3)
    return result


def bench_driver(bs, args, mode: str, model_dir: str | None, docs: list[dict], tmp: Path) -> dict:
    engine = bs.engine_settings(args.gpus, 1, args.max_model_len, args.batch_size)
    config = bs.synth_config(model_dir, engine, bs.sampling_settings(args.driver_max_tokens),
                             documents_per_batch=args.driver_documents_per_batch)
    # A first run pays once for what a process does once (Ray's start, imports, caches).
    warm = write_shards(bs, docs, max(1, args.driver_docs // 4), args.files, tmp / f"docs-{mode}-warm")
    timed_run(warm, tmp / f"out-{mode}-warm", mode, config)
    runs = {}
    for scale in (1, 4):
        shards = write_shards(bs, docs, args.driver_docs * scale, args.files, tmp / f"docs-{mode}-{scale}")
        runs[f"x{scale}"] = timed_run(shards, tmp / f"out-{mode}-{scale}", mode, config)
    small, large = runs["x1"], runs["x4"]
    extra_cpu = large["driver_cpu_seconds"] - small["driver_cpu_seconds"]
    return {**runs, "documents_per_batch": args.driver_documents_per_batch,
            "driver_cpu_ms_per_batch": round(1e3 * extra_cpu / (large["batches"] - small["batches"]), 2),
            "driver_cpu_ms_per_1000_records": round(1e6 * extra_cpu / (large["records"] - small["records"]), 1),
            "driver_cpu_ms_per_1000_documents":
                round(1e6 * extra_cpu / (large["documents"] - small["documents"]), 1)}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="smollm2-135m", help="packaged model name, local folder, or `tiny`")
    p.add_argument("--gpus", type=int, default=0, help="0: vLLM's CPU backend; N: one GPU per engine")
    p.add_argument("--docs", type=int, default=16, help="documents of the pipeline-vs-plain run")
    p.add_argument("--driver-docs", type=int, default=256, help="documents of the smaller driver-CPU run")
    p.add_argument("--files", type=int, default=4, help="input files the documents are spread over")
    p.add_argument("--documents-per-batch", type=int, default=4, help="of the pipeline-vs-plain run")
    p.add_argument("--driver-documents-per-batch", type=int, default=64,
                   help="of the driver-CPU runs (the config's default)")
    p.add_argument("--max-model-len", type=int, default=2048)
    p.add_argument("--max-tokens", type=int, default=128)
    p.add_argument("--driver-max-tokens", type=int, default=16,
                   help="max_tokens of the driver-CPU run with the model (the engine's speed is not measured there)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--plain-timeout", type=float, default=1800)
    p.add_argument("--webdata", type=Path, default=None)
    p.add_argument("--skip-throughput", action="store_true")
    p.add_argument("--skip-driver", action="store_true")
    p.add_argument("--json-out", type=Path, default=None)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    bs = bench_synth
    webdata = args.webdata or bs.default_webdata()
    docs = bs.interleave(bs.document_groups(webdata))
    result: dict = {"model": args.model, "gpus": args.gpus, "cpu_count": os.cpu_count(),
                    "load_average_at_start": [round(x, 2) for x in os.getloadavg()], "real_documents": len(docs)}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="instructmix-bench-pipeline-") as tmpdir:
        tmp = Path(tmpdir)
        try:
            model_dir = None if args.skip_throughput else bs.resolve(args.model, tmp)
            if not args.skip_throughput:
                result["pipeline_vs_plain"] = bench_pipeline_vs_plain(bs, args, model_dir, docs, tmp)
            if not args.skip_driver:
                result["driver_template_only"] = bench_driver(bs, args, "template_only", None, docs, tmp)
                if model_dir:
                    result["driver_template"] = bench_driver(bs, args, "template", model_dir, docs, tmp)
        finally:
            import ray

            if ray.is_initialized():
                ray.shutdown()
    result["total_seconds"] = round(time.perf_counter() - started, 1)
    print(bs.write_result(result, args.json_out))


if __name__ == "__main__":
    main()
