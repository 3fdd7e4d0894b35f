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
from jobs.synth_records import BatchCheckpoints, SeenOutputs, drop_contaminated


class SelfInstructRounds:
    """The loop's state (the instruction pool, its novelty index, the outputs kept) and one
    round at a time on it. A Ray actor (jobs.synth): the state lives beside the work, and
    the driver only asks for the next round and counts what it returns.

    Every prompt is fitted to the context first (transforms.synth.prompt_fit): a
    generation prompt that is too long shows fewer example tasks; a classification or
    instance prompt that cannot fit drops its instruction, counted as
    `prompts.drop.prompt_too_long`.
    """

    def __init__(self, config: SynthConfig, pool, model_dir: str, work: str, index_url: str | None = None) -> None:
        from jobs.decontamination import worker_index
        from jobs.synth import worker_fitter
        from transforms.langid import get_language_identifier
        from transforms.synth.novelty_index import NoveltyIndex
        from transforms.synth.seed_tasks import load_seed_tasks

        self.config, self.pool = config, pool
        self.fitter = worker_fitter(config, model_dir)
        self.checkpoints = BatchCheckpoints(work, config.storage_options)
        seeds = load_seed_tasks(config.seeds)  # None: the packaged templates/seeds (works from a zip too)
        self.seed_id = {s.instruction: s.id for s in seeds}
        self.human = [s.instruction for s in seeds]
        self.seen = SeenOutputs()
        self.benchmarks = worker_index(index_url, config.storage_options) if index_url else None
        self.index = NoveltyIndex(threshold=0.7)
        for h in self.human:
            self.index.add(h)
        self.machine: list[str] = []
        self.lid = get_language_identifier()

    def run_round(self, r: int) -> tuple[int, Counter, bool]:
        """Run (or resume) round r; returns (records kept, its counters, whether it was resumed).
        Rounds must be asked for in order: each starts from the pool the earlier ones left."""
        if self.checkpoints.exists(r):
            table, c = self.checkpoints.read(r)
            self.seen.add(table.select(["input", "output"]).to_pylist())
            for inst in dict.fromkeys(table.column("instruction").to_pylist()):
                self.index.add(inst)
                self.machine.append(inst)
            return table.num_rows, c, True
        c: Counter = Counter()
        records = drop_contaminated(self._new_records(r, c), c, self.benchmarks)
        records = self.seen.keep_new(records, c)
        self.checkpoints.write(r, records, c)
        return len(records), c, False

    def _new_records(self, r: int, c: Counter) -> list[dict]:
        from jobs.synth_records import keep_record, synth_record
        from transforms.synth.prompt_fit import PROMPT_TOO_LONG
        from transforms.synth.prompts import (
            classification_prompt,
            instance_prompt,
            load_prompts,
            self_instruct_prompt,
        )
        from transforms.synth.self_instruct import (
            filter_instances,
            new_instruction_rejection,
            parse_classification_answer,
            parse_generated_instructions,
            parse_instances,
            sample_prompt_tasks,
        )

        config, pool, fitter, index, lid = self.config, self.pool, self.fitter, self.index, self.lid
        user_prompts = load_prompts(config.prompts)  # checked by run_synth; read once per process (cached)
        # A chat model gets the `_chat` prompts, which ask for the reply's form (transforms/synth/prompts.py).
        chat = fitter.encoder.prompt_format == "chat"
        rng = random.Random(config.seed * 1_000_003 + r)
        too_long = f"prompts.drop.{PROMPT_TOO_LONG}"
        prompt_tasks, prompts = [], []
        for _ in range(config.engine.batch_size):
            tasks = sample_prompt_tasks(self.human, self.machine, rng)
            fitted = fitter.with_fewer(lambda shown: self_instruct_prompt(shown, prompts=user_prompts, chat=chat), tasks)
            if fitted is None:
                c[too_long] += 1
                continue
            prompt, shown = fitted
            c["prompts.cut.demonstrations"] += shown < len(tasks)
            prompt_tasks.append(tasks[:shown])
            prompts.append(prompt)
        c["prompts.sent"] += len(prompts)
        outputs = pool.generate([p.token_ids for p in prompts], seed_offset=r * 1_000_000)
        c["generations"] += len(outputs)
        new: list[tuple[str, str, list[str], str]] = []
        for tasks, prompt, out in zip(prompt_tasks, prompts, outputs):
            # A completion continues the prompt's open "n+1."; a chat reply is a turn of its own.
            start = None if chat else len(tasks) + 1
            listed = parse_generated_instructions(out["text"], start_index=start,
                                                  truncated=out.get("finish_reason") == "length")
            if not listed:
                c["generations.no_instructions"] += 1
            for inst in listed:
                lang = lid.identify(inst)[0]
                reason = new_instruction_rejection(inst, lang, index, self.benchmarks)
                if reason:
                    c[f"instructions.drop.{reason}"] += 1
                    continue
                index.add(inst)
                new.append((inst, lang, [self.seed_id[t] for t in tasks if t in self.seed_id], prompt.text))
        c["instructions.novel"] += len(new)
        new, kind_prompts = _fitted(new, lambda item: classification_prompt(item[0], prompts=user_prompts, chat=chat),
                                    fitter, c)
        kinds = pool.generate(kind_prompts, seed_offset=r * 1_000_000 + 300_000) if new else []
        typed = [(item, bool(parse_classification_answer(k["text"]))) for item, k in zip(new, kinds)]
        typed, instance_prompts = _fitted(
            typed, lambda pair: instance_prompt(pair[0][0], output_first=pair[1], prompts=user_prompts, chat=chat),
            fitter, c)
        instances = pool.generate(instance_prompts, seed_offset=r * 1_000_000 + 600_000) if typed else []
        records = []
        for ((inst, lang, seed_ids, prompt), cls), out in zip(typed, instances):
            valid, reasons = filter_instances(parse_instances(
                out["text"], output_first=cls, truncated=out.get("finish_reason") == "length",
                bare_reply_is_output=chat))
            c.update(f"records.drop.{reason}" for reason in reasons)
            if not valid:
                c["instructions.drop.no_valid_instances"] += 1
                continue
            self.machine.append(inst)
            for inp, outp in valid:
                rec = synth_record(inst, inp, outp, lang=lang, mode="self_instruct",
                                   task_type="classify" if cls else "", seed_ids=seed_ids, model=config.model or "",
                                   sampling=pool.sampling_json(), prompt=prompt)
                if keep_record(rec, c):
                    records.append(rec)
        return records


def _fitted(items: list, render, fitter, counters: Counter) -> tuple[list, list[list[int]]]:
    """The items whose prompt render(item) fits, and those prompts' token ids; the others
    are counted as `prompts.drop.prompt_too_long`."""
    from transforms.synth.prompt_fit import PROMPT_TOO_LONG

    kept, prompts = [], []
    for item in items:
        prompt = fitter.whole(render(item))
        if prompt is None:
            counters[f"prompts.drop.{PROMPT_TOO_LONG}"] += 1
            continue
        kept.append(item)
        prompts.append(prompt.token_ids)
    return kept, prompts
