"""Synthesis benchmark (not a test): generated tokens/s, plain vLLM vs the Ray pipeline,
and the diversity of the instructions the project makes without a model.

In one run, over the same prompts and the same tiny random Llama (tests/tiny_llm.py,
built offline into a temporary folder), on vLLM's CPU backend:
  * plain vLLM: one `vllm.LLM` in a subprocess of its own, one `generate` call over
    every prompt (engine start not timed);
  * the Ray pipeline: `jobs.engines.vllm_actors.GeneratorPool` (1 actor, the default batch of 256) after a
    small warm-up generate (engine start not timed);
  * `ray_vs_plain` = Ray tokens/s / plain tokens/s (target >= 0.9).
Then, unless --skip-diversity: `run_synth(mode="template_only")` over document shards
made from the real pages in ../shared/webdata (text by resiliparse), and the
task-type / root-verb distributions and the max-ROUGE-L-vs-seeds histogram of its
instructions (Self-Instruct, fig. 3: more than half below 0.3); the same histogram
for our own seed tasks against the Alpaca (en) and BELLE (zh) seeds.

Run: `.venv/bin/python bench/bench_synth.py [--prompts N] [--skip-diversity]`.
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
WEBDATA = Path(os.environ.get("INSTRUCTMIX_WEBDATA") or next(
    (p for p in (REPO.parent / "shared" / "webdata", Path("/work/shared/webdata")) if p.is_dir()),
    REPO.parent / "shared" / "webdata"))

ENGINE = {"actors": 1, "gpus_per_actor": 0, "gpu_memory_utilization": 0.2, "max_model_len": 1024, "batch_size": 256}  # the EngineSettings default
SAMPLING = {"temperature": 0.7, "top_p": 0.95, "max_tokens": 64, "seed": 0}
SELF_INSTRUCT_TASKS = 8


# --- prompts -----------------------------------------------------------------------


def build_prompts(n: int, model: Path) -> tuple[list[str], dict]:
    """Self-Instruct prompts (8 seed tasks each, one language per prompt), the same for both runs."""
    from transformers import AutoTokenizer

    from transforms.synth.prompts import self_instruct_prompt
    from transforms.synth.seed_tasks import load_seed_tasks

    seeds = load_seed_tasks(None)
    by_lang: dict[str, list[str]] = {}
    for s in seeds:
        by_lang.setdefault(s.lang, []).append(s.instruction)
    langs = sorted(by_lang)
    tok = AutoTokenizer.from_pretrained(str(model), local_files_only=True)
    budget = ENGINE["max_model_len"] - SAMPLING["max_tokens"]
    rng = random.Random(0)
    prompts, lengths = [], []
    while len(prompts) < n:
        pool = by_lang[langs[len(prompts) % len(langs)]]
        k = min(SELF_INSTRUCT_TASKS, len(pool))
        while True:
            prompt = self_instruct_prompt(rng.sample(pool, k))
            length = len(tok.encode(prompt))
            if length <= budget or k == 1:
                break
            k -= 1  # the tiny tokenizer spends many tokens on Chinese; keep inside the context
        prompts.append(prompt)
        lengths.append(length)
    info = {"prompt_kind": "self_instruct_prompt", "prompt_tokens_mean": round(sum(lengths) / len(lengths), 1),
            "prompt_tokens_max": max(lengths)}
    return prompts, info


# --- plain vLLM (run in its own process) ---------------------------------------------


def plain_worker(model: str, prompts_file: str) -> None:
    """One vLLM engine with the actor's own settings; prints one JSON line."""
    from vllm import LLM, SamplingParams

    prompts = json.loads(Path(prompts_file).read_text(encoding="utf-8"))
    t0 = time.perf_counter()
    llm = LLM(model=model, tensor_parallel_size=1, gpu_memory_utilization=ENGINE["gpu_memory_utilization"],
              max_model_len=ENGINE["max_model_len"], seed=0, enforce_eager=True, enable_chunked_prefill=False)
    start_s = time.perf_counter() - t0
    params = SamplingParams(**SAMPLING)
    t0 = time.perf_counter()
    outputs = llm.generate(prompts, params, use_tqdm=False)
    secs = time.perf_counter() - t0
    tokens = sum(len(o.outputs[0].token_ids) for o in outputs)
    print("PLAIN_RESULT " + json.dumps({"engine_start_seconds": round(start_s, 2), "seconds": round(secs, 3),
                                        "generated_tokens": tokens, "outputs": len(outputs)}), flush=True)


def bench_plain(model: Path, prompts: list[str], tmp: Path) -> dict:
    pfile = tmp / "prompts.json"
    pfile.write_text(json.dumps(prompts), encoding="utf-8")
    proc = subprocess.run([sys.executable, __file__, "--plain-worker", str(model), str(pfile)],
                          capture_output=True, text=True, cwd=REPO, check=False)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("PLAIN_RESULT ")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"plain vLLM subprocess failed (rc {proc.returncode}):\n{proc.stderr[-4000:]}")
    r = json.loads(line.removeprefix("PLAIN_RESULT "))
    return {"plain_engine_start_seconds": r["engine_start_seconds"], "plain_generate_seconds": r["seconds"],
            "plain_generated_tokens": r["generated_tokens"],
            "plain_tokens_per_s": round(r["generated_tokens"] / r["seconds"], 1)}


# --- the Ray pipeline ----------------------------------------------------------------


def bench_ray(model: Path, prompts: list[str]) -> dict:
    import ray

    from jobs.config import EngineSettings, SamplingSettings
    from jobs.engines.vllm_actors import GeneratorPool

    ray.init(include_dashboard=False, log_to_driver=False)
    try:
        t0 = time.perf_counter()
        pool = GeneratorPool(str(model), EngineSettings(**ENGINE), SamplingSettings(**SAMPLING))
        pool.generate(prompts[:4])  # engine start and first-call costs, not timed
        start_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        out = pool.generate(prompts)
        secs = time.perf_counter() - t0
        tokens = sum(o["tokens"] for o in out)
        pool.shutdown()
    finally:
        ray.shutdown()
    return {"ray_engine_start_and_warmup_seconds": round(start_s, 2), "ray_generate_seconds": round(secs, 3),
            "ray_generated_tokens": tokens, "ray_tokens_per_s": round(tokens / secs, 1),
            "ray_batches": -(-len(prompts) // ENGINE["batch_size"])}


# --- diversity -----------------------------------------------------------------------


def real_pages() -> list[tuple[str, bytes]]:
    pages = []
    for path in sorted(WEBDATA.glob("recipes/*.testhtml.gz")) + sorted(WEBDATA.glob("html/*/*/source.html.gz")) + sorted(
        WEBDATA.glob("zh/*.html.gz")
    ):
        pages.append((f"https://bench.example/{path.parent.name}/{path.name}", gzip.decompress(path.read_bytes())))
    return pages


def write_documents(path: Path) -> int:
    from resiliparse.extract.html2text import extract_plain_text
    from resiliparse.parse.encoding import bytes_to_str, detect_encoding

    n = 0
    with open(path, "w", encoding="utf-8") as f:
        for url, raw in real_pages():
            html = bytes_to_str(raw, detect_encoding(raw))
            text = extract_plain_text(html, main_content=True)
            if text.strip():
                f.write(json.dumps({"text": text, "url": url}, ensure_ascii=False) + "\n")
                n += 1
    return n


def _root_verb(instruction: str, lang: str) -> str:
    if lang == "zh":
        return re.sub(r"\s+", "", instruction)[:2]
    words = re.findall(r"[A-Za-z][A-Za-z'-]*", instruction)
    return words[0].lower() if words else ""


def rouge_histogram(texts: list[str], against: list[str]) -> dict:
    """Counts of each text's highest ROUGE-L against `against`, in ten bins of 0.1."""
    from transforms.synth.novelty_index import NoveltyIndex

    index = NoveltyIndex(texts=against)
    bins = [0] * 10
    scores = []
    for t in texts:
        s = index.max_similarity(t)[0]
        scores.append(s)
        bins[min(int(s * 10), 9)] += 1
    n = max(len(texts), 1)
    return {"n": len(texts), "against": len(against),
            "bins": {f"{i / 10:.1f}-{(i + 1) / 10:.1f}": b for i, b in enumerate(bins)},
            "share_below_0.3": round(sum(bins[:3]) / n, 3),
            "mean": round(sum(scores) / n, 3)}


def bench_diversity(tmp: Path) -> dict:
    import pyarrow.parquet as pq

    from jobs.config import SynthConfig
    from jobs.synth import run_synth
    from transforms.stats import group
    from transforms.synth.seed_tasks import load_seed_tasks

    docs = tmp / "docs" / "pages-00000.jsonl"
    docs.parent.mkdir()
    n_docs = write_documents(docs)
    t0 = time.perf_counter()
    stats = run_synth([str(docs)], str(tmp / "synth"), "template_only", SynthConfig())
    synth_s = time.perf_counter() - t0
    table = pq.read_table(tmp / "synth" / "part-00000.parquet", columns=["instruction", "lang", "task_type", "template_id"])
    rows = table.to_pylist()
    instructions = [r["instruction"] for r in rows]
    # Templates that open with a slot ("{a} vs. {b}: ...", "{passage} TL;DR:") have no root
    # verb of their own: their first word is page text, so they are counted as one bucket.
    from transforms.synth.instruction_templates import load_instruction_templates

    slot_first = {t.id for t in load_instruction_templates(None) if t.template.lstrip().startswith("{")}
    verbs: dict[str, Counter] = {"en": Counter(), "zh": Counter()}
    for r in rows:
        verb = "<slot-first template>" if r["template_id"] in slot_first else _root_verb(r["instruction"], r["lang"])
        verbs.setdefault(r["lang"], Counter())[verb] += 1

    seeds = load_seed_tasks(None)
    seed_texts = [s.instruction for s in seeds]
    out = {
        "documents": n_docs,
        "template_only_seconds": round(synth_s, 2),
        "template_only_written": stats["counters"]["synth.records.written"],
        "unique_instructions": len(set(instructions)),
        "templates_used": len({r["template_id"] for r in rows}),
        "by_language": group(stats["counters"], "synth.records.lang"),
        "task_types": dict(Counter(r["task_type"] for r in rows).most_common()),
        "root_verbs": {lang: {"distinct": len(c), "top": dict(c.most_common(15))} for lang, c in verbs.items() if c},
        "rouge_l_vs_our_seeds": rouge_histogram(instructions, seed_texts),
    }
    # Our own seeds against the public seed sets, per language, where they are at hand.
    ours = {"en": [s.instruction for s in seeds if s.lang == "en"], "zh": [s.instruction for s in seeds if s.lang == "zh"]}
    public = {"en": ("alpaca", WEBDATA / "instructions" / "alpaca-self-instruct-seed" / "seed_tasks.jsonl"),
              "zh": ("belle", WEBDATA / "instructions" / "belle-zh" / "zh_seed_tasks.json")}
    for lang, (name, path) in public.items():
        if path.is_file() and ours[lang]:
            against = [s.instruction for s in load_seed_tasks(path, skip_bad=True)]
            out[f"our_{lang}_seeds_vs_{name}_seeds"] = rouge_histogram(ours[lang], against)
    return out


# --- main ----------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=256, help="prompts generated by both runs")
    parser.add_argument("--skip-diversity", action="store_true")
    parser.add_argument("--plain-worker", nargs=2, metavar=("MODEL", "PROMPTS_JSON"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.plain_worker:
        plain_worker(*args.plain_worker)
        return
    from tests.tiny_llm import build_tiny_llm

    result: dict = {"cpu_count": os.cpu_count(), "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
                    "engine": ENGINE, "sampling": SAMPLING, "prompts": args.prompts}
    with tempfile.TemporaryDirectory(prefix="instructmix-bench-synth-") as tmpdir:
        tmp = Path(tmpdir)
        model = build_tiny_llm(tmp / "tiny-llm")
        prompts, info = build_prompts(args.prompts, model)
        result.update(info)
        result.update(bench_plain(model, prompts, tmp))
        result.update(bench_ray(model, prompts))
        result["ray_vs_plain"] = round(result["ray_tokens_per_s"] / result["plain_tokens_per_s"], 3)
        result["load_average_at_end_of_generation"] = [round(x, 2) for x in os.getloadavg()]
        if not args.skip_diversity:
            if WEBDATA.is_dir():
                result["diversity"] = bench_diversity(tmp)
            else:
                result["diversity"] = f"skipped: no real pages at {WEBDATA} (set INSTRUCTMIX_WEBDATA)"
    print(json.dumps(result, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
