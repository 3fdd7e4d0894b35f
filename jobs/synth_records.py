"""Synthesized pairs as rows: the record every synthesis mode writes, and the gate
(PII scrubbing and the mining filters) each one passes before it is kept."""

from __future__ import annotations

from collections import Counter


def synth_record(instruction: str, input_: str, output: str, *, lang: str, mode: str, task_type: str,
                 template_id: str = "", seed_ids: list[str] | None = None, model: str = "", sampling: str = "",
                 prompt: str = "", source_url: str = "", source_file: str = "", source_record: str = "",
                 confidence: float = 0.5) -> dict:
    from jobs.engines.vllm_actors import prompt_hash
    from transforms.records import pair_id

    return {
        "id": pair_id(source_url or mode, f"synth_{mode}", instruction, input_, output),
        "instruction": instruction, "input": input_, "output": output,
        "kind": f"synth_{task_type}" if task_type else f"synth_{mode}", "miner": f"synth_{mode}",
        "confidence": confidence, "lang": lang, "lang_score": 0.0, "source_url": source_url,
        "source_file": source_file, "source_record": source_record, "title": "", "classifier_score": None,
        "mode": mode, "task_type": task_type, "template_id": template_id, "seed_ids": seed_ids or [],
        "model": model, "sampling": sampling, "prompt_hash": prompt_hash(prompt) if prompt else "",
    }


def keep_record(record: dict, counters: Counter) -> bool:
    """The mining filters (lengths, boilerplate, harmful content, …) judge synthesized pairs too."""
    from transforms import filters, pii

    for key in ("instruction", "input", "output"):
        record[key], n = pii.scrub_pii(record[key].strip())
        counters["pii_scrubbed"] += n
    reason = filters.reject_reason(record["instruction"], record["input"], record["output"], record["lang"])
    if reason:
        counters[f"drop:{reason}"] += 1
        return False
    counters[f"accepted:{record['mode']}"] += 1
    return True
