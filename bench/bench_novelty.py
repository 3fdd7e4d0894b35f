"""Self-Instruct novelty filter benchmark (not a test): candidates per second at 1k, 10k, 50k pooled instructions.

The pool grows the way `instructmix synth --mode self-instruct` grows it: every
candidate is checked with `NoveltyIndex.is_novel` and added when novel. When
the pool first reaches each size, a fixed batch of candidates is timed through
`is_novel` + `add` (the accept step); a sample of the same batch is also run
through brute force (max ROUGE-L over the whole pool, pool pre-tokenized, the
same bit-parallel LCS: a stronger baseline than Self-Instruct's per-pair
`rouge_score` calls), and the two must agree on every sampled verdict.

Instructions are synthetic but built only from real text: the Alpaca
Self-Instruct seed tasks (en) and BELLE's translated seed tasks (zh) in
../shared/webdata, cut into a leading verb phrase and object phrases and
recombined (verb + object + connector + object + modifier); the candidate
stream also holds exact duplicates of pooled instructions and near duplicates
(one word or character dropped, swapped or inserted), about 10 % each.
Run: `.venv/bin/python bench/bench_novelty.py [--sizes 1000 10000 50000] [--batch 2000] [--brute 40]`.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
WEBDATA = Path(os.environ.get("INSTRUCTMIX_WEBDATA") or next(
    (p for p in (REPO.parent / "shared" / "webdata", Path("/work/shared/webdata")) if p.is_dir()),
    REPO.parent / "shared" / "webdata"))
ALPACA_SEEDS = WEBDATA / "instructions" / "alpaca-self-instruct-seed" / "seed_tasks.jsonl"
BELLE_SEEDS = WEBDATA / "instructions" / "belle-zh" / "zh_seed_tasks.json"

from transforms.synth.novelty_index import NoveltyIndex
from transforms.synth.rouge import rouge_l_f, rouge_tokens
from transforms.text import HAN, contains_han

# Words at which an English seed's object is cut into phrases (kept at the phrase start).
_EN_CUT = re.compile(r"\s+(?=(?:of|for|about|in|with|from|that|and|into|to|based on|using|given|by)\b)", re.IGNORECASE)
_ZH_CUT = re.compile(r"[，,、；;：:]|(?=[并和及以对将把])")
_EN_CONNECT = ["", "and", "then", "so that", "while", "and also", "before you", "after you"]
_EN_MODIFY = ["", "", "in one sentence", "for a beginner", "step by step", "with two examples",
              "in under 50 words", "in a friendly tone", "as a bulleted list", "for a 10-year-old",
              "in formal English", "and explain your answer", "without using jargon", "in the style of a news report"]
_EN_ABOUT = ["about", "for", "with", "on", "from", "using", "regarding"]
_ZH_ABOUT = ["关于", "针对", "根据", "围绕", "结合"]
_ZH_CONNECT = ["", "并", "然后", "同时", "以便", "再", "并且"]
_ZH_MODIFY = ["", "", "，用一句话回答", "，适合初学者", "，分步骤说明", "，举两个例子", "，不超过50字",
              "，语气友好", "，以列表形式给出", "，写给十岁的孩子", "，并解释原因", "，不要使用术语"]


def seed_tasks(webdata: Path = WEBDATA) -> tuple[list[dict], list[dict]]:
    """(English, Chinese) seed tasks, in file order."""
    def read(path: Path) -> list[dict]:
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]

    return (read(webdata / ALPACA_SEEDS.relative_to(WEBDATA)), read(webdata / BELLE_SEEDS.relative_to(WEBDATA)))


def seed_instructions(webdata: Path = WEBDATA) -> tuple[list[str], list[str]]:
    """(English, Chinese) seed instructions, in file order."""
    en, zh = seed_tasks(webdata)
    return [t["instruction"].strip() for t in en], [t["instruction"].strip() for t in zh]


def _split_en(instruction: str) -> tuple[str, list[str]]:
    """(leading verb phrase, object phrases) of an English seed instruction."""
    words = instruction.rstrip(".?!:").split()
    head_len = 2 if len(words) > 3 and words[1].lower() in {"me", "up", "out"} else 1
    rest = " ".join(words[head_len:])
    return " ".join(words[:head_len]), [p.strip() for p in _EN_CUT.split(rest) if len(p.split()) >= 2]


def _split_zh(instruction: str) -> tuple[str, list[str]]:
    """(leading verb, object phrases) of a Chinese seed instruction."""
    text = instruction.strip().rstrip("。？！?!：:")
    return text[:2], [p.strip() for p in _ZH_CUT.split(text[2:]) if len(p.strip()) >= 3]


def _instance_phrases_en(tasks: list[dict]) -> list[str]:
    """Three-word runs of the seed instances' sentences: topics to talk about."""
    out: dict[str, None] = {}
    for task in tasks:
        for inst in task["instances"]:
            for sentence in re.split(r"[.!?;:()\n]+", inst["input"] + "\n" + inst["output"]):
                words = [w for w in sentence.split() if w.isalpha()]
                for i in range(0, len(words) - 2, 3):
                    out[" ".join(words[i:i + 3])] = None
    return list(out)


def _instance_phrases_zh(tasks: list[dict]) -> list[str]:
    """Clauses of 3-12 Han characters from the seed instances."""
    out: dict[str, None] = {}
    for task in tasks:
        for inst in task["instances"]:
            for clause in re.split(f"[^{HAN}]+", inst["input"] + "\n" + inst["output"]):
                if 3 <= len(clause) <= 12:
                    out[clause] = None
    return list(out)


class InstructionGenerator:
    """Deterministic stream of recombined en/zh instructions (`zh_share` of them Chinese).

    An instruction is a seed's leading verb, an object phrase from another seed,
    usually a topic phrase from the seed instances, sometimes a second object
    phrase, and a modifier ("step by step", "，举两个例子"), as machine-generated
    Self-Instruct tasks vary the seeds.
    """

    def __init__(self, en_tasks: list[dict], zh_tasks: list[dict], seed: int = 0, zh_share: float = 0.3) -> None:
        self.rng = random.Random(seed)
        self.zh_share = zh_share
        self.en_heads, self.en_objects = _vocabulary([t["instruction"] for t in en_tasks], _split_en)
        self.zh_heads, self.zh_objects = _vocabulary([t["instruction"] for t in zh_tasks], _split_zh)
        self.en_topics = _instance_phrases_en(en_tasks)
        self.zh_topics = _instance_phrases_zh(zh_tasks)

    def fresh(self) -> str:
        rng = self.rng
        if rng.random() < self.zh_share:
            parts = [rng.choice(self.zh_heads)]
            if rng.random() < 0.8:
                parts += [rng.choice(_ZH_ABOUT), rng.choice(self.zh_topics), "的"]
            parts.append(rng.choice(self.zh_objects))
            if rng.random() < 0.4:
                parts += [rng.choice(_ZH_CONNECT), rng.choice(self.zh_objects)]
            return "".join(parts) + rng.choice(_ZH_MODIFY) + "。"
        parts = [rng.choice(self.en_heads), rng.choice(self.en_objects)]
        if rng.random() < 0.8:
            parts += [rng.choice(_EN_ABOUT), rng.choice(self.en_topics)]
        if rng.random() < 0.4:
            parts += [rng.choice(_EN_CONNECT), rng.choice(self.en_objects)]
        parts.append(rng.choice(_EN_MODIFY))
        return " ".join(p for p in parts if p) + "."

    def near_duplicate(self, text: str) -> str:
        """`text` with one word (en) or character (zh) dropped, replaced or inserted."""
        rng = self.rng
        if contains_han(text):
            units, joiner = list(text), ""
            filler = rng.choice("的了很也再请将")
        else:
            units, joiner = text.split(), " "
            filler = rng.choice(["the", "a", "very", "please", "all", "some", "new"])
        i = rng.randrange(len(units))
        op = rng.randrange(3)
        if op == 0 and len(units) > 1:
            del units[i]
        elif op == 1:
            units[i] = filler
        else:
            units.insert(i, filler)
        return joiner.join(units)

    def candidates(self, pool: list[str], n: int, dup_share: float = 0.1, near_share: float = 0.1) -> list[str]:
        """n candidates: exact duplicates of `pool` members, near duplicates, and fresh instructions."""
        out = []
        for _ in range(n):
            r = self.rng.random()
            if pool and r < dup_share:
                out.append(self.rng.choice(pool))
            elif pool and r < dup_share + near_share:
                out.append(self.near_duplicate(self.rng.choice(pool)))
            else:
                out.append(self.fresh())
        return out


def _vocabulary(instructions, split) -> tuple[list[str], list[str]]:
    heads: dict[str, None] = {}
    phrases: dict[str, None] = {}
    for instruction in instructions:
        head, parts = split(instruction)
        if head:
            heads[head] = None
        for part in parts:
            phrases[part] = None
    return list(heads), list(phrases)


def brute_force_max(pool_tokens: list[list[str]], text: str) -> float:
    a = rouge_tokens(text)
    return max((rouge_l_f(a, b) for b in pool_tokens), default=0.0)


def run(sizes: list[int], batch: int, brute: int, seed: int) -> dict:
    en_tasks, zh_tasks = seed_tasks()
    gen = InstructionGenerator(en_tasks, zh_tasks, seed=seed)
    en, zh = seed_instructions()
    index = NoveltyIndex(0.7, en + zh)
    pool = en + zh
    pool_tokens = [rouge_tokens(t) for t in pool]
    results = []
    offered = 0
    grow_started = time.perf_counter()
    for size in sorted(sizes):
        while len(index) < size:
            text = gen.candidates(pool, 1)[0]
            offered += 1
            if index.add_if_novel(text):
                pool.append(text)
                pool_tokens.append(rouge_tokens(text))
        grow_seconds = time.perf_counter() - grow_started
        cands = gen.candidates(pool, batch)
        sample = cands[:brute]
        # Brute force first, on the pool as it is before the batch is added.
        t0 = time.perf_counter()
        brute_scores = [brute_force_max(pool_tokens, c) for c in sample]
        brute_seconds = time.perf_counter() - t0
        index_verdicts = [index.is_novel(c) for c in sample]
        agree = sum(v == (s < 0.7) for v, s in zip(index_verdicts, brute_scores))
        t0 = time.perf_counter()
        best = [index.max_similarity(c)[0] for c in sample]
        max_sim_seconds = time.perf_counter() - t0
        max_sim_exact = sum(b == s for b, s in zip(best, brute_scores))
        size_before = len(index)
        t0 = time.perf_counter()
        accepted = []
        for c in cands:
            if index.is_novel(c):
                index.add(c)
                accepted.append(c)
        index_seconds = time.perf_counter() - t0
        pool.extend(accepted)
        pool_tokens.extend(rouge_tokens(t) for t in accepted)
        index_rate = batch / index_seconds
        brute_rate = len(sample) / brute_seconds
        results.append({
            "pool_size": size_before,
            "candidates": batch,
            "accepted": len(accepted),
            "index_is_novel_plus_add_per_s": round(index_rate, 1),
            "index_max_similarity_per_s": round(len(sample) / max_sim_seconds, 1),
            "brute_force_sample": len(sample),
            "brute_force_per_s": round(brute_rate, 2),
            "speedup_vs_brute_force": round(index_rate / brute_rate, 1),
            "verdicts_agree_with_brute_force": f"{agree}/{len(sample)}",
            "max_similarity_equals_brute_force": f"{max_sim_exact}/{len(sample)}",
            "grow_seconds_so_far": round(grow_seconds, 1),
        })
    return {
        "seed_instructions": {"en": len(en), "zh": len(zh)},
        "offered_while_growing": offered,
        "results": results,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 50_000])
    parser.add_argument("--batch", type=int, default=2000, help="candidates timed at each pool size")
    parser.add_argument("--brute", type=int, default=40, help="of those, how many also go through brute force")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(json.dumps(run(args.sizes, args.batch, args.brute, args.seed), indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
