"""Synthesis benchmark (not a test): generated tokens/s of plain vLLM against the Ray
pipeline, and the quality of what each synthesis mode makes with a real model.

The model is `--model` (default `smollm2-135m`, the packaged SmolLM2-135M-Instruct
prepared by `instructmix model prepare`; or any local Hugging Face folder; or `tiny`,
the random Llama of tests/tiny_llm.py). `--gpus 0` runs vLLM's CPU backend
(gpu_memory_utilization 0.2, eager, no chunked prefill: the actor's own CPU settings);
`--gpus N` gives every engine one GPU. Nothing is downloaded and tests/ is imported
only for `--model tiny`, so the same file runs unchanged on a GPU machine with vLLM
installed and no network (cluster/README.md, "GPU run book").

Throughput (unless --skip-throughput). `--prompts` real prompts of this project, as the
synthesis stage builds them: `grounded_answer` prompts of instruction templates filled
from the real pages (jobs.synth.template_prompts) alternating with `self_instruct`
prompts of 8 seed tasks (`--prompt-kind`), rendered through the model's chat template
and fitted to `--max-model-len` - `--max-tokens` (transforms.synth.prompt_fit). Both
sides are sent the same token ids with the same sampling:
  * plain vLLM: one `vllm.LLM` (one GPU, or the CPU backend) in a subprocess of its
    own, one `generate` call over every prompt after a warm-up call of two (engine
    start and warm-up not timed);
  * the Ray pipeline: `jobs.engines.vllm_actors.GeneratorPool` with 1 actor after a
    small warm-up generate (engine start not timed);
  * `ray_vs_plain` = Ray tokens/s / plain tokens/s (target >= 0.9): what the pipeline
    costs over the engine itself, like for like;
  * with `--gpus N` > 1 also the pool with N actors (one GPU each): `ray_N_tokens_per_s`
    and `ray_N_vs_ray_1` (ideal N).

Quality (unless --skip-quality). For each of `--modes` (template, doc_qa,
self_instruct) `jobs.synth.run_synth` with the model over `--quality-docs` documents
taken in turn from the real pages in the webdata folder (recipes, readability pages,
Chinese pages; text by resiliparse) and the CCNet texts (longest first, so prompts are
cut to fit); self_instruct runs `--rounds` rounds of `--si-prompts` prompts. Per mode:
  * prompts_sent, generations, and every `synth.*.drop.*` / `.cut.*` counter;
  * parse_rate: the share of the mode's first-stage generations from which its own
    parser gets something: template, a non-empty reply that is not NO_ANSWER;
    doc_qa, at least one question-answer pair (transforms.synth.doc_qa.parse_qa_pairs);
    self_instruct, at least one new task from the instruction-generation reply
    (parse_generated_instructions; the classification and instance replies are not
    counted here; `classification_answered_rate` and `instance_parse_rate` are their
    shares of replies that say yes/no, and that hold at least one (input, output) pair
    before the instance filters). `items_per_generation`: answers / pairs / tasks parsed
    per generation.
    The generations are logged by the engines (recording_generations); nothing in
    the job changes;
  * accepted_rate = synth.records.accepted / candidates, the candidates being the
    records the parsers produced: accepted plus every `synth.records.drop.<reason>`
    except the parse failures (empty_generation, model_says_no_answer, unparsable_qa);
    `accepted_per_generation` = accepted / generations;
  * instructions per task type (`synth.records.task_type.*`), languages;
  * ROUGE-L of each written instruction to its nearest seed task (templates/seeds):
    bins of 0.1, share below 0.3, share above 0.7 (Self-Instruct's novelty limit), mean;
  * instruction and response lengths (median, p90, max) in ROUGE tokens: words, and
    each Chinese/Japanese character as one (transforms.synth.rouge.rouge_tokens, as
    the report's length figures);
  * elapsed seconds (engine start included) and generated tokens.

Diversity (unless --skip-diversity): template_only (no model) over every real page
and CCNet text: task types, root verbs, ROUGE-L to our seeds, and our seeds against
the Alpaca (en) and BELLE (zh) seeds.

Run (repository root): `python bench/bench_synth.py [--model M] [--gpus N] [--prompts N]
[--json-out FILE] [--markdown-out FILE] ...`; `--help` lists every flag. Prints one JSON
object; `--markdown-out` writes the README's figures from it.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import itertools
import json
import math
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def default_webdata() -> Path:
    if os.environ.get("INSTRUCTMIX_WEBDATA"):
        return Path(os.environ["INSTRUCTMIX_WEBDATA"])
    return next((p for p in (REPO.parent / "shared" / "webdata", Path("/work/shared/webdata")) if p.is_dir()),
                REPO.parent / "shared" / "webdata")


SELF_INSTRUCT_TASKS = 8
NOVEL_BELOW, NOT_NOVEL_FROM = 0.3, 0.7  # Self-Instruct, fig. 3 and its novelty filter
PARSE_FAILURES = ("empty_generation", "model_says_no_answer", "unparsable_qa")


# --- settings ------------------------------------------------------------------------


def engine_settings(gpus: int, actors: int, max_model_len: int, batch_size: int) -> dict:
    """EngineSettings keys: the CPU backend's settings for gpus 0, else one GPU per engine."""
    return {"actors": actors, "gpus_per_actor": 1 if gpus else 0, "tensor_parallel_size": 1,
            "gpu_memory_utilization": 0.9 if gpus else 0.2, "max_model_len": max_model_len,
            "batch_size": batch_size}


def sampling_settings(max_tokens: int) -> dict:
    return {"temperature": 0.7, "top_p": 0.95, "max_tokens": max_tokens, "seed": 0}


def synth_config(model: str, engine: dict, sampling: dict, **extra):
    from jobs.config import SynthConfig

    return SynthConfig(model=model, engine=engine, sampling=sampling, **extra)


# --- documents from the real pages -------------------------------------------------------


def document_groups(webdata: Path) -> dict[str, list[dict]]:
    """The real documents by source: pages (text by resiliparse) and CCNet texts, longest first."""
    from resiliparse.extract.html2text import extract_plain_text
    from resiliparse.parse.encoding import bytes_to_str, detect_encoding

    globs = {"recipes": ["recipes/*.testhtml.gz"], "readability": ["html/*/*/source.html.gz"], "zh": ["zh/*.html.gz"]}
    groups: dict[str, list[dict]] = {}
    for name, patterns in globs.items():
        docs = []
        for path in sorted(p for pattern in patterns for p in webdata.glob(pattern)):
            raw = gzip.decompress(path.read_bytes())
            text = extract_plain_text(bytes_to_str(raw, detect_encoding(raw)), main_content=True)
            if text.strip():
                docs.append({"text": text, "url": f"https://bench.example/{path.parent.name}/{path.name}"})
        groups[name] = docs
    ccnet = []
    for path in sorted(webdata.glob("text/dolma-ccnet-cc_en_head/*.jsonl.gz")):
        with gzip.open(path, "rt", encoding="utf-8") as f:
            for line in f:
                row = json.loads(line)
                if row.get("text", "").strip():
                    ccnet.append({"text": row["text"], "url": (row.get("metadata") or {}).get("url") or row.get("id", "")})
    groups["ccnet"] = sorted(ccnet, key=lambda d: -len(d["text"]))
    return groups


def interleave(groups: dict[str, list[dict]], limit: int | None = None) -> list[dict]:
    """One document of each group in turn (recipes, readability, zh, ccnet, recipes, ...) up to `limit`."""
    out = []
    for row in itertools.zip_longest(*groups.values()):
        out.extend(d for d in row if d is not None)
    return out[:limit] if limit is not None else out


def write_documents(path: Path, docs: list[dict]) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(json.dumps({"text": d["text"], "url": d["url"]}, ensure_ascii=False) + "\n" for d in docs)
    return len(docs)


# --- prompts -----------------------------------------------------------------------------


def self_instruct_prompts(n: int, fitter, seed: int = 0) -> list:
    """Self-Instruct prompts of 8 seed tasks of one language each (fewer when they do not fit)."""
    from transforms.synth.prompts import self_instruct_prompt
    from transforms.synth.seed_tasks import load_seed_tasks

    by_lang: dict[str, list[str]] = {}
    for s in load_seed_tasks(None):
        by_lang.setdefault(s.lang, []).append(s.instruction)
    langs = sorted(by_lang)
    rng = random.Random(seed)
    out = []
    while len(out) < n:
        pool = by_lang[langs[len(out) % len(langs)]]
        tasks = rng.sample(pool, min(SELF_INSTRUCT_TASKS, len(pool)))
        fitted = fitter.with_fewer(self_instruct_prompt, tasks)
        if fitted is None:
            raise RuntimeError(f"no self_instruct prompt fits {fitter.max_prompt_tokens} tokens; raise --max-model-len")
        out.append(fitted[0])
    return out


def grounded_answer_prompts(n: int, docs: list[dict], config, fitter) -> list:
    """Grounded-answer prompts of templates filled from `docs`, as the template mode builds them."""
    from jobs.synth import template_prompts

    prompts: list = []
    for start in range(0, len(docs), 8):  # only as many documents as the prompts need
        batch = [{"id": f"bench#{i}", "text": d["text"], "url": d["url"], "provenance": {}}
                 for i, d in enumerate(docs[start : start + 8], start)]
        prompts.extend(template_prompts(batch, config, fitter)[1])
        if len(prompts) >= n:
            break
    if not prompts:
        return []
    return [prompts[i % len(prompts)] for i in range(n)]


def build_prompts(n: int, kind: str, docs: list[dict], config, fitter) -> tuple[list[list[int]], dict]:
    """`n` prompts as token ids: `kind` self_instruct, grounded_answer, or mixed (alternating,
    grounded first); mixed without documents is all self_instruct."""
    if kind == "grounded_answer" and not docs:
        raise RuntimeError("--prompt-kind grounded_answer needs the real pages (--webdata)")
    n_grounded = {"grounded_answer": n, "mixed": (n + 1) // 2}.get(kind, 0) if docs else 0
    grounded = grounded_answer_prompts(n_grounded, docs, config, fitter) if n_grounded else []
    if n_grounded and not grounded:
        raise RuntimeError("no template could be filled with a grounding passage from the real pages")
    si = self_instruct_prompts(n - n_grounded, fitter) if n > n_grounded else []
    prompts = [p for pair in itertools.zip_longest(grounded, si) for p in pair if p is not None]
    kinds = {k: v for k, v in (("grounded_answer", n_grounded), ("self_instruct", n - n_grounded)) if v}
    lengths = [len(p) for p in prompts]
    info = {"prompt_kinds": kinds, "prompt_tokens_mean": round(sum(lengths) / max(len(lengths), 1), 1),
            "prompt_tokens_max": max(lengths, default=0), "prompt_format": fitter.encoder.prompt_format}
    return [list(p.token_ids) for p in prompts], info


# --- plain vLLM (in its own process) ---------------------------------------------------------


def plain_worker(spec_file: str) -> None:
    """One vLLM engine with the actor's own settings (jobs.engines.vllm_actors.VLLMGenerator); one JSON line."""
    spec = json.loads(Path(spec_file).read_text(encoding="utf-8"))
    engine, sampling = spec["engine"], spec["sampling"]
    from vllm import LLM, SamplingParams

    cpu = engine["gpus_per_actor"] == 0
    t0 = time.perf_counter()
    llm = LLM(model=spec["model"], tensor_parallel_size=engine["tensor_parallel_size"],
              gpu_memory_utilization=engine["gpu_memory_utilization"], max_model_len=engine["max_model_len"],
              seed=sampling["seed"], enforce_eager=cpu, **({"enable_chunked_prefill": False} if cpu else {}))
    start_s = time.perf_counter() - t0
    requests = [{"prompt_token_ids": ids} for ids in spec["prompts"]]
    llm.generate(requests[:2], SamplingParams(**sampling), use_tqdm=False)  # first-call costs, as the pool's warm-up
    # Per-prompt seeds when given (as the pipeline's engines sample), else one for all.
    params = ([SamplingParams(**dict(sampling, seed=seed)) for seed in spec["seeds"]] if spec.get("seeds")
              else SamplingParams(**sampling))
    t0 = time.perf_counter()
    outputs = llm.generate(requests, params, use_tqdm=False)
    secs = time.perf_counter() - t0
    tokens = sum(len(o.outputs[0].token_ids) for o in outputs)
    result = {"engine_start_seconds": round(start_s, 2), "seconds": round(secs, 3), "generated_tokens": tokens,
              "outputs": len(outputs)}
    if spec.get("return_texts"):
        result["texts"] = [o.outputs[0].text for o in outputs]
    print("PLAIN_RESULT " + json.dumps(result), flush=True)


def bench_plain(model: str, prompts: list[list[int]], engine: dict, sampling: dict, tmp: Path,
                timeout: float = 1800, seeds: list[int] | None = None) -> dict:
    """Plain vLLM over `prompts` (one seed, or `seeds` one per prompt); with `seeds` the
    result also holds the completions' `plain_texts`."""
    spec = tmp / "plain.json"
    spec.write_text(json.dumps({"model": model, "engine": engine, "sampling": sampling, "prompts": prompts,
                                "seeds": seeds, "return_texts": seeds is not None}), encoding="utf-8")
    env = dict(os.environ)
    if engine["gpus_per_actor"]:
        env.setdefault("CUDA_VISIBLE_DEVICES", "0")  # plain vLLM on one GPU, as one actor
    # A session of its own, so a timeout ends the engine's processes with it: a vLLM engine
    # process that dies (killed for memory) can leave LLM.generate waiting for ever.
    proc = subprocess.Popen([sys.executable, __file__, "--plain-worker", str(spec)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=REPO, env=env, start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
        raise RuntimeError(f"plain vLLM subprocess gave no result in {timeout:.0f} s (--plain-timeout); "
                           f"its engine may have died:\n{stderr[-4000:]}") from None
    line = next((ln for ln in stdout.splitlines() if ln.startswith("PLAIN_RESULT ")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"plain vLLM subprocess failed (rc {proc.returncode}):\n{stderr[-4000:]}")
    r = json.loads(line.removeprefix("PLAIN_RESULT "))
    texts = {"plain_texts": r["texts"]} if "texts" in r else {}
    return {**texts, "plain_engine_start_seconds": r["engine_start_seconds"], "plain_generate_seconds": r["seconds"],
            "plain_generated_tokens": r["generated_tokens"],
            "plain_tokens_per_s": round(r["generated_tokens"] / r["seconds"], 1)}


# --- the Ray pipeline ----------------------------------------------------------------------


def wait_for_free_gpus(engine: dict, timeout: float = 180.0, used_mib: int = 2048) -> None:
    """After `ray.kill` the engines' processes still hold their GPU memory for a while; the next
    engine asking for gpu_memory_utilization of the card would fail, so wait until it is freed."""
    if not engine["gpus_per_actor"]:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            out = subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
                                 capture_output=True, text=True, check=True).stdout
        except (OSError, subprocess.CalledProcessError):
            time.sleep(15)  # no nvidia-smi: a fixed pause instead
            return
        if all(int(x) < used_mib for x in out.split()):
            return
        time.sleep(2)


def bench_ray(model: str, prompts: list[list[int]], engine: dict, sampling: dict, prefix: str = "ray") -> dict:
    from jobs.config import EngineSettings, SamplingSettings
    from jobs.engines.vllm_actors import GeneratorPool

    t0 = time.perf_counter()
    pool = GeneratorPool(model, EngineSettings(**engine), SamplingSettings(**sampling))
    try:
        pool.generate(prompts[: 2 * len(pool.actors)])  # engine start and first-call costs, not timed
        start_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        out = pool.generate(prompts)
        secs = time.perf_counter() - t0
    finally:
        pool.shutdown()
        wait_for_free_gpus(engine)
    tokens = sum(o["tokens"] for o in out)
    return {f"{prefix}_actors": engine["actors"], f"{prefix}_engine_start_and_warmup_seconds": round(start_s, 2),
            f"{prefix}_generate_seconds": round(secs, 3), f"{prefix}_generated_tokens": tokens,
            f"{prefix}_tokens_per_s": round(tokens / secs, 1),
            f"{prefix}_requests": math.ceil(len(prompts) / max(1, min(engine["batch_size"],
                                                                       math.ceil(len(prompts) / engine["actors"]))))}


def bench_throughput(args, model_dir: str, docs: list[dict], tmp: Path) -> dict:
    from jobs.engines.ray import init_ray
    from jobs.synth import prompt_fitter

    engine = engine_settings(args.gpus, 1, args.max_model_len, args.batch_size)
    sampling = sampling_settings(args.max_tokens)
    config = synth_config(model_dir, engine, sampling)
    prompts, info = build_prompts(args.prompts, args.prompt_kind, docs, config, prompt_fitter(config, model_dir))
    result = {"engine": engine, "sampling": sampling, "prompts": len(prompts), **info}
    result.update(bench_plain(model_dir, prompts, engine, sampling, tmp, args.plain_timeout))
    init_ray(None)
    result.update(bench_ray(model_dir, prompts, engine, sampling))
    result["ray_vs_plain"] = round(result["ray_tokens_per_s"] / result["plain_tokens_per_s"], 3)
    if args.gpus > 1:
        many = dict(engine, actors=args.gpus)
        result.update(bench_ray(model_dir, prompts, many, sampling, prefix=f"ray_{args.gpus}"))
        result[f"ray_{args.gpus}_vs_ray_1"] = round(result[f"ray_{args.gpus}_tokens_per_s"] / result["ray_tokens_per_s"], 2)
    return result


# --- quality ---------------------------------------------------------------------------------


@contextlib.contextmanager
def recording_generations(sampling_seed: int, folder: Path):
    """Every engine request of the block, as (seed offset, prompt token ids, outputs): the
    engines log them (jobs.engines.vllm_actors.GENERATIONS_LOG_ENV) and the list is filled
    from the logs when the block ends. Nothing in the job changes."""
    from jobs.engines.vllm_actors import GENERATIONS_LOG_ENV

    folder.mkdir(parents=True, exist_ok=True)
    calls: list[tuple[int, list, list[dict]]] = []
    before = os.environ.get(GENERATIONS_LOG_ENV)
    os.environ[GENERATIONS_LOG_ENV] = str(folder)
    try:
        yield calls
    finally:
        if before is None:
            os.environ.pop(GENERATIONS_LOG_ENV, None)
        else:
            os.environ[GENERATIONS_LOG_ENV] = before
        for path in sorted(folder.glob("generations-*.jsonl")):
            for line in path.read_text(encoding="utf-8").splitlines():
                call = json.loads(line)
                calls.append((call["seed"] - sampling_seed, call["prompts"], call["outputs"]))
        calls.sort(key=lambda call: call[0])


_OPEN_NUMBER = re.compile(r"(?m)^\s*(\d+)\.(?!\d)")  # "9." opens the task the model writes


def parsed_items(mode: str, calls: list, tokenizer, prompt_format: str = "chat") -> tuple[int, int, int]:
    """(first-stage generations, those with at least one item parsed, items parsed) (see the docstring)."""
    from transforms.synth.doc_qa import parse_qa_pairs
    from transforms.synth.prompts import NO_ANSWER
    from transforms.synth.self_instruct import parse_generated_instructions

    generations = ok = items = 0
    for offset, prompts, outputs in calls:
        if mode == "self_instruct" and offset % 1_000_000:
            continue  # the classification (+300000) and instance (+600000) calls of a round
        for k, out in enumerate(outputs):
            truncated = out.get("finish_reason") == "length"
            text = out["text"]
            if mode == "template":
                n = int(bool(text.strip()) and NO_ANSWER not in text)
            elif mode == "doc_qa":
                n = len(parse_qa_pairs(text, truncated=truncated))
            else:
                # As the job parses: a chat reply is a turn of its own, numbered from anywhere;
                # a completion continues the prompt's open number "n+1." of its n tasks.
                start = None
                if prompt_format == "completion":
                    opened = _OPEN_NUMBER.findall(tokenizer.decode(prompts[k])) if k < len(prompts) else []
                    start = int(opened[-1]) if opened else SELF_INSTRUCT_TASKS + 1
                n = len(parse_generated_instructions(text, start_index=start, truncated=truncated))
            generations += 1
            ok += n > 0
            items += n
    return generations, ok, items


def self_instruct_stage_rates(calls: list, tokenizer) -> dict:
    """The later calls of each round: the share of classification replies that say yes or no
    (parse_classification_answer), and of instance replies with at least one (input, output)
    pair parsed (parse_instances; label first when the prompt is the one with "Class label:"),
    before the instance filters."""
    from transforms.synth.self_instruct import parse_classification_answer, parse_instances

    answered = classified = parsed = instances = 0
    for offset, prompts, outputs in calls:
        stage = offset % 1_000_000
        for k, out in enumerate(outputs):
            if stage == 300_000:
                classified += 1
                answered += parse_classification_answer(out["text"]) is not None
            elif stage == 600_000:
                output_first = k < len(prompts) and "Class label:" in tokenizer.decode(prompts[k])
                instances += 1
                parsed += bool(parse_instances(out["text"], output_first=output_first,
                                               truncated=out.get("finish_reason") == "length"))
    return {"classification_replies": classified,
            "classification_answered_rate": round(answered / classified, 3) if classified else None,
            "instance_replies": instances,
            "instance_parse_rate": round(parsed / instances, 3) if instances else None}


def length_summary(texts: list[str]) -> dict:
    """Median, p90 (nearest rank) and max length in ROUGE tokens (words; one per CJK character)."""
    from transforms.synth.rouge import rouge_tokens

    lengths = sorted(len(rouge_tokens(t)) for t in texts)
    if not lengths:
        return {"n": 0}

    def rank(q: float) -> int:
        return lengths[max(0, math.ceil(q * len(lengths)) - 1)]

    return {"n": len(lengths), "median": rank(0.5), "p90": rank(0.9), "max": lengths[-1]}


def rouge_histogram(texts: list[str], against: list[str]) -> dict:
    """Each text's highest ROUGE-L against `against`: ten bins of 0.1, shares below 0.3 and above 0.7, mean."""
    from transforms.synth.novelty_index import NoveltyIndex

    index = NoveltyIndex(texts=against)
    scores = [index.max_similarity(t)[0] for t in texts]
    bins = [0] * 10
    for s in scores:
        bins[min(int(s * 10), 9)] += 1
    n = max(len(texts), 1)
    return {"n": len(texts), "against": len(against),
            "bins": {f"{i / 10:.1f}-{(i + 1) / 10:.1f}": b for i, b in enumerate(bins)},
            "share_below_0.3": round(sum(s < NOVEL_BELOW for s in scores) / n, 3),
            "share_above_0.7": round(sum(s > NOT_NOVEL_FROM for s in scores) / n, 3),
            "mean": round(sum(scores) / n, 3)}


def mode_quality(mode: str, counters: dict, rows: list[dict], calls: list, tokenizer, seed_texts: list[str],
                 elapsed: float, prompt_format: str = "chat") -> dict:
    """The per-mode figures of the docstring from the run's counters, its rows and its recorded generations."""
    from transforms.stats import group

    drops = {name.removeprefix("synth."): c for name, c in counters.items() if ".drop." in name}
    cuts = {name.removeprefix("synth."): c for name, c in counters.items() if ".cut." in name}
    accepted = counters.get("synth.records.accepted", 0)
    record_drops = group(counters, "synth.records.drop")
    candidates = accepted + sum(c for r, c in record_drops.items() if r not in PARSE_FAILURES)
    first, parsed, items = parsed_items(mode, calls, tokenizer, prompt_format)
    generations = counters.get("synth.generations", 0)
    instructions = [r["instruction"] for r in rows]
    stages = self_instruct_stage_rates(calls, tokenizer) if mode == "self_instruct" else {}
    return {
        "elapsed_seconds": round(elapsed, 1),
        "documents_read": counters.get("synth.documents.read", 0),
        "prompts_sent": counters.get("synth.prompts.sent", 0),
        "generations": generations,
        "engine_generations": sum(len(o) for _, _, o in calls),
        "generated_tokens": sum(x["tokens"] for _, _, o in calls for x in o),
        "truncated_generations": sum(x.get("finish_reason") == "length" for _, _, o in calls for x in o),
        "parse_rate": round(parsed / first, 3) if first else None,
        "items_per_generation": round(items / first, 2) if first else None,
        **stages,
        "records_accepted": accepted,
        "records_written": counters.get("synth.records.written", 0),
        "accepted_rate": round(accepted / candidates, 3) if candidates else None,
        "accepted_per_generation": round(accepted / generations, 2) if generations else None,
        "generation_counters": group(counters, "synth.generations"),
        "drops": dict(sorted(drops.items())),
        "cuts": dict(sorted(cuts.items())),
        "task_types": group(counters, "synth.records.task_type"),
        "languages": group(counters, "synth.records.lang"),
        "unique_instructions": len(set(instructions)),
        "rouge_l_vs_seeds": rouge_histogram(instructions, seed_texts),
        "instruction_length": length_summary(instructions),
        "response_length": length_summary([r["output"] for r in rows]),
    }


def bench_quality(args, model_dir: str, docs: list[dict], tmp: Path) -> dict:
    import pyarrow.parquet as pq
    from transformers import AutoTokenizer

    from jobs.synth import run_synth
    from transforms.synth.seed_tasks import load_seed_tasks

    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    seed_texts = [s.instruction for s in load_seed_tasks(None)]
    engine = engine_settings(args.gpus, max(1, args.gpus), args.max_model_len, args.batch_size)
    sampling = sampling_settings(args.quality_max_tokens)
    shard = tmp / "quality-docs" / "docs-00000.jsonl"
    n_docs = write_documents(shard, docs[: args.quality_docs])
    out: dict = {"documents": n_docs, "engine": engine, "sampling": sampling, "limit": args.limit,
                 "self_instruct_rounds": args.rounds, "self_instruct_prompts_per_round": args.si_prompts,
                 "documents_per_batch": args.documents_per_batch}
    for mode in args.modes:
        if mode == "self_instruct":
            config = synth_config(model_dir, dict(engine, batch_size=args.si_prompts), sampling, limit=args.limit,
                                  self_instruct_rounds=args.rounds)
            inputs = None
        else:
            config = synth_config(model_dir, engine, sampling, limit=args.limit,
                                  documents_per_batch=args.documents_per_batch)
            inputs = [str(shard)]
        t0 = time.perf_counter()
        with recording_generations(sampling["seed"], tmp / "generations" / mode) as calls:
            stats = run_synth(inputs, str(tmp / "quality" / mode), mode, config)
        elapsed = time.perf_counter() - t0
        wait_for_free_gpus(engine)
        rows = pq.read_table(tmp / "quality" / mode / "part-00000.parquet",
                             columns=["instruction", "output", "lang", "task_type"]).to_pylist()
        out[mode] = mode_quality(mode, stats["counters"], rows, calls, tokenizer, seed_texts, elapsed,
                                 stats["details"].get("prompt_format") or "chat")
    return out


# --- diversity without a model ------------------------------------------------------------------


def _root_verb(instruction: str, lang: str) -> str:
    if lang == "zh":
        return re.sub(r"\s+", "", instruction)[:2]
    words = re.findall(r"[A-Za-z][A-Za-z'-]*", instruction)
    return words[0].lower() if words else ""


def bench_diversity(docs: list[dict], webdata: Path, tmp: Path) -> dict:
    import pyarrow.parquet as pq

    from jobs.config import SynthConfig
    from jobs.synth import run_synth
    from transforms.stats import group
    from transforms.synth.instruction_templates import load_instruction_templates
    from transforms.synth.seed_tasks import load_seed_tasks

    shard = tmp / "diversity-docs" / "docs-00000.jsonl"
    n_docs = write_documents(shard, docs)
    t0 = time.perf_counter()
    stats = run_synth([str(shard)], str(tmp / "template_only"), "template_only", SynthConfig())
    synth_s = time.perf_counter() - t0
    rows = pq.read_table(tmp / "template_only" / "part-00000.parquet",
                         columns=["instruction", "lang", "task_type", "template_id"]).to_pylist()
    instructions = [r["instruction"] for r in rows]
    # Templates that open with a slot ("{a} vs. {b}: ...", "{passage} TL;DR:") have no root
    # verb of their own: their first word is page text, so they are counted as one bucket.
    slot_first = {t.id for t in load_instruction_templates(None) if t.template.lstrip().startswith("{")}
    verbs: dict[str, Counter] = {"en": Counter(), "zh": Counter()}
    for r in rows:
        verb = "<slot-first template>" if r["template_id"] in slot_first else _root_verb(r["instruction"], r["lang"])
        verbs.setdefault(r["lang"], Counter())[verb] += 1
    seeds = load_seed_tasks(None)
    out = {
        "documents": n_docs,
        "template_only_seconds": round(synth_s, 2),
        "template_only_written": stats["counters"]["synth.records.written"],
        "unique_instructions": len(set(instructions)),
        "templates_used": len({r["template_id"] for r in rows}),
        "by_language": group(stats["counters"], "synth.records.lang"),
        "task_types": dict(Counter(r["task_type"] for r in rows).most_common()),
        "root_verbs": {lang: {"distinct": len(c), "top": dict(c.most_common(15))} for lang, c in verbs.items() if c},
        "rouge_l_vs_our_seeds": rouge_histogram(instructions, [s.instruction for s in seeds]),
        "instruction_length": length_summary(instructions),
    }
    # Our own seeds against the public seed sets, per language, where they are at hand.
    ours = {lang: [s.instruction for s in seeds if s.lang == lang] for lang in ("en", "zh")}
    public = {"en": ("alpaca", webdata / "instructions" / "alpaca-self-instruct-seed" / "seed_tasks.jsonl"),
              "zh": ("belle", webdata / "instructions" / "belle-zh" / "zh_seed_tasks.json")}
    for lang, (name, path) in public.items():
        if path.is_file() and ours[lang]:
            against = [s.instruction for s in load_seed_tasks(path, skip_bad=True)]
            out[f"our_{lang}_seeds_vs_{name}_seeds"] = rouge_histogram(ours[lang], against)
    return out


# --- the README's figures ---------------------------------------------------------------------------


def markdown_summary(result: dict) -> str:
    """The figures of a run as Markdown for the README: throughput, then one row per mode."""
    lines = []
    t = result.get("throughput")
    if isinstance(t, dict):
        where = f"{result.get('gpus')} GPU(s)" if result.get("gpus") else f"CPU backend, {result.get('cpu_count')} cores"
        lines.append(f"Throughput, {result.get('model')} ({where}), {t['prompts']} prompts "
                     f"(mean {t['prompt_tokens_mean']} prompt tokens), max_tokens {t['sampling']['max_tokens']}: "
                     f"plain vLLM {t['plain_tokens_per_s']} tokens/s, Ray pipeline {t['ray_tokens_per_s']} tokens/s, "
                     f"ray_vs_plain {t['ray_vs_plain']}.")
        many = [k for k in t if k.startswith("ray_") and k.endswith("_vs_ray_1")]
        for k in many:
            n = k.removeprefix("ray_").removesuffix("_vs_ray_1")
            lines.append(f"With {n} actors: {t[f'ray_{n}_tokens_per_s']} tokens/s ({t[k]}x one actor).")
        lines.append("")
    q = result.get("quality")
    if isinstance(q, dict):
        modes = [m for m in MODES if isinstance(q.get(m), dict)]
        if modes:
            lines.append(f"Quality on {q['documents']} real documents (self_instruct: {q.get('self_instruct_rounds')} "
                         f"round(s) of {q.get('self_instruct_prompts_per_round')} prompts), max_tokens "
                         f"{q['sampling']['max_tokens']}:")
            lines.append("")
            lines.append("Lengths in words, each Chinese character counted as one word.")
            lines.append("")
            lines.append("| mode | prompts sent | parse rate | accepted (rate) | drops | task types | ROUGE-L to seeds "
                         "<0.3 / >0.7 | instruction length median/p90 | response length median/p90 | seconds |")
            lines.append("|---|---|---|---|---|---|---|---|---|---|")
            for m in modes:
                r = q[m]
                drops = ", ".join(f"{k.rsplit('.', 1)[-1]} {v}" for k, v in sorted(r["drops"].items(), key=lambda kv: -kv[1])
                                  if v) or "none"
                types = ", ".join(f"{k} {v}" for k, v in sorted(r["task_types"].items(), key=lambda kv: -kv[1])) or "-"
                il, rl = r["instruction_length"], r["response_length"]
                rouge = r["rouge_l_vs_seeds"]
                lines.append(
                    f"| {m} | {r['prompts_sent']} | {r['parse_rate']} | {r['records_accepted']} ({r['accepted_rate']}) "
                    f"| {drops} | {types} | {rouge['share_below_0.3']} / {rouge['share_above_0.7']} "
                    f"| {il.get('median', '-')}/{il.get('p90', '-')} | {rl.get('median', '-')}/{rl.get('p90', '-')} "
                    f"| {r['elapsed_seconds']} |")
    return "\n".join(lines).strip() + "\n"


# --- main ------------------------------------------------------------------------------------------


def resolve(model: str, tmp: Path) -> str:
    if model == "tiny":
        from tests.tiny_llm import build_tiny_llm  # the only tests/ import; not needed on a GPU machine

        return str(build_tiny_llm(tmp / "tiny-llm"))
    from jobs.models import resolve_model

    return resolve_model(model)


MODES = ("template", "doc_qa", "self_instruct")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="smollm2-135m",
                   help="packaged model name (templates/models.yaml), a local model folder, or 'tiny' (tests/tiny_llm.py)")
    p.add_argument("--gpus", type=int, default=0, help="0: vLLM's CPU backend; N: one GPU per engine, N actors")
    p.add_argument("--prompts", type=int, default=48, help="throughput prompts (2000+ on GPUs)")
    p.add_argument("--prompt-kind", choices=("mixed", "grounded_answer", "self_instruct"), default="mixed")
    p.add_argument("--max-model-len", type=int, default=2048)
    p.add_argument("--max-tokens", type=int, default=128, help="max_tokens of the throughput prompts")
    p.add_argument("--plain-timeout", type=float, default=1800, help="seconds the plain vLLM subprocess may take")
    p.add_argument("--batch-size", type=int, default=256, help="engine.batch_size: prompts per request to an actor")
    p.add_argument("--modes", type=lambda s: [m for m in s.split(",") if m], default=list(MODES),
                   help=f"quality modes, comma-separated (of {','.join(MODES)})")
    p.add_argument("--quality-docs", type=int, default=8, help="documents for template and doc_qa")
    p.add_argument("--quality-max-tokens", type=int, default=256)
    p.add_argument("--limit", type=int, default=10_000, help="run_synth limit (accepted records) per mode")
    p.add_argument("--documents-per-batch", type=int, default=4)
    p.add_argument("--rounds", type=int, default=1, help="self_instruct rounds")
    p.add_argument("--si-prompts", type=int, default=12, help="self_instruct prompts per round")
    p.add_argument("--webdata", type=Path, default=None, help="real pages (default: $INSTRUCTMIX_WEBDATA or ../shared/webdata)")
    p.add_argument("--skip-throughput", action="store_true")
    p.add_argument("--skip-quality", action="store_true")
    p.add_argument("--skip-diversity", action="store_true")
    p.add_argument("--json-out", type=Path, default=None, help="also write the JSON object here")
    p.add_argument("--markdown-out", type=Path, default=None, help="also write the README's figures (Markdown) here")
    p.add_argument("--plain-worker", metavar="SPEC_JSON", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    unknown = [m for m in args.modes if m not in MODES]
    if unknown:
        p.error(f"--modes: unknown {unknown}; choose from {','.join(MODES)}")
    if args.gpus < 0 or args.prompts < 1:
        p.error("--gpus must be >= 0 and --prompts >= 1")
    return args


def write_result(result: dict, json_out: Path | None) -> str:
    """The benchmark's JSON object, also written to `json_out` when given."""
    text = json.dumps(result, indent=2, ensure_ascii=False)
    if json_out:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(text + "\n", encoding="utf-8")
    return text


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.plain_worker:
        plain_worker(args.plain_worker)
        return
    webdata = args.webdata or default_webdata()
    result: dict = {"model": args.model, "gpus": args.gpus, "cpu_count": os.cpu_count(),
                    "load_average_at_start": [round(x, 2) for x in os.getloadavg()], "webdata": str(webdata)}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="instructmix-bench-synth-") as tmpdir:
        tmp = Path(tmpdir)
        model_dir = resolve(args.model, tmp)
        result["model_dir"] = model_dir
        groups = document_groups(webdata) if webdata.is_dir() else {}
        docs = interleave(groups) if groups else []
        result["documents_available"] = {name: len(d) for name, d in groups.items()}
        try:
            if not args.skip_throughput:
                result["throughput"] = bench_throughput(args, model_dir, docs, tmp)
                result["load_average_after_throughput"] = [round(x, 2) for x in os.getloadavg()]
            if not args.skip_quality:
                result["quality"] = (bench_quality(args, model_dir, docs, tmp) if docs else
                                     f"skipped: no real pages at {webdata} (--webdata or INSTRUCTMIX_WEBDATA)")
            if not args.skip_diversity:
                result["diversity"] = (bench_diversity(docs, webdata, tmp) if docs else
                                       f"skipped: no real pages at {webdata} (--webdata or INSTRUCTMIX_WEBDATA)")
        finally:
            import ray

            if ray.is_initialized():
                ray.shutdown()
    result["total_seconds"] = round(time.perf_counter() - started, 1)
    text = write_result(result, args.json_out)
    if args.markdown_out:
        args.markdown_out.parent.mkdir(parents=True, exist_ok=True)
        args.markdown_out.write_text(markdown_summary(result), encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
