"""The Self-Instruct bootstrapping loop on the LLM pool, one checkpointed round at a time.

Each round: `engine.batch_size` prompts of 8 tasks (6 human seeds, 2 machine) →
new instructions, filtered (length, keyword blacklist, leading punctuation) and
kept only when their ROUGE-L against the whole pool stays below 0.7 → the model
says whether each is a classification task → instances generated output-first
(classification) or input-first → instances filtered. A finished round is a
checkpoint (`jobs.synth_records.BatchCheckpoints`, batch number = round number); a
re-run rebuilds the pool from finished rounds and goes on.

Instructions the loop rejects before any instance exists are counted as
`instructions.drop.<reason>`; rejected instances and records as `records.drop.<reason>`.
"""

from __future__ import annotations

import random
from collections import Counter

from jobs.config import SynthConfig
from jobs.synth_records import BatchCheckpoints


def run_self_instruct(config: SynthConfig, pool, checkpoints: BatchCheckpoints,
                      counters: Counter) -> tuple[int, int, int]:
    """Run (or resume) the rounds; returns (records accepted, rounds done, rounds resumed)."""
    from jobs.progress import log
    from jobs.synth_records import keep_record, synth_record
    from transforms.langid import get_language_identifier
    from transforms.synth.novelty_index import NoveltyIndex
    from transforms.synth.prompts import (
        classification_prompt,
        instance_prompt,
        load_prompts,
        self_instruct_prompt,
    )
    from transforms.synth.seed_tasks import load_seed_tasks
    from transforms.synth.self_instruct import (
        filter_instances,
        instruction_rejection,
        parse_classification_answer,
        parse_generated_instructions,
        parse_instances,
        sample_prompt_tasks,
    )

    user_prompts = load_prompts(config.prompts)  # checked by run_synth; read once per process (cached)
    seeds = load_seed_tasks(config.seeds)  # None: the packaged templates/seeds (works from a zip too)
    seed_id = {s.instruction: s.id for s in seeds}
    human = [s.instruction for s in seeds]
    index = NoveltyIndex(threshold=0.7)
    for h in human:
        index.add(h)
    machine: list[str] = []
    lid = get_language_identifier()
    accepted = rounds = resumed = 0
    for r in range(config.self_instruct_rounds):
        if checkpoints.exists(r):
            table, c = checkpoints.read(r)
            for inst in dict.fromkeys(table.column("instruction").to_pylist()):
                index.add(inst)
                machine.append(inst)
            counters.update(c)
            accepted += table.num_rows
            rounds += 1
            resumed += 1
            continue
        c: Counter = Counter()
        rng = random.Random(config.seed * 1_000_003 + r)
        prompt_tasks = [sample_prompt_tasks(human, machine, rng) for _ in range(config.engine.batch_size)]
        prompts = [self_instruct_prompt(tasks, prompts=user_prompts) for tasks in prompt_tasks]
        outputs = pool.generate(prompts, seed_offset=r * 1_000_000)
        c["generations"] += len(outputs)
        new: list[tuple[str, str, list[str], str]] = []
        for tasks, prompt, out in zip(prompt_tasks, prompts, outputs):
            for inst in parse_generated_instructions(out["text"]):
                lang = lid.identify(inst)[0]
                reason = instruction_rejection(inst, lang)
                if reason is None and not index.is_novel(inst):
                    reason = "not_novel"
                if reason:
                    c[f"instructions.drop.{reason}"] += 1
                    continue
                index.add(inst)
                new.append((inst, lang, [seed_id[t] for t in tasks if t in seed_id], prompt))
        kinds = pool.generate([classification_prompt(i, prompts=user_prompts) for i, *_ in new], seed_offset=r * 1_000_000 + 300_000) if new else []
        is_classification = [bool(parse_classification_answer(k["text"])) for k in kinds]
        instances = pool.generate(
            [instance_prompt(i, output_first=cls, prompts=user_prompts) for (i, *_), cls in zip(new, is_classification)],
            seed_offset=r * 1_000_000 + 600_000,
        ) if new else []
        records = []
        for (inst, lang, seed_ids, prompt), cls, out in zip(new, is_classification, instances):
            kept, reasons = filter_instances(parse_instances(out["text"], output_first=cls))
            c.update(f"records.drop.{reason}" for reason in reasons)
            if not kept:
                c["instructions.drop.no_valid_instances"] += 1
                continue
            machine.append(inst)
            for inp, outp in kept:
                rec = synth_record(inst, inp, outp, lang=lang, mode="self_instruct",
                                   task_type="classify" if cls else "", seed_ids=seed_ids, model=config.model or "",
                                   sampling=pool.sampling_json(), prompt=prompt)
                if keep_record(rec, c):
                    records.append(rec)
        checkpoints.write(r, records, c)
        counters.update(c)
        accepted += len(records)
        rounds += 1
        log(f"synth self_instruct: round {r}: {len(new)} new instructions, {accepted} records so far")
        if accepted >= config.limit:
            break
    return accepted, rounds, resumed
