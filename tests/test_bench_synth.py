"""The pure helpers of bench/bench_synth.py: documents, prompts, parse rates, ROUGE-L shares, lengths.

No engine starts here; the benchmark itself is run by hand (cluster/README.md).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from tests.conftest import load_bench

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def bench():
    return load_bench("bench_synth")


@pytest.fixture(scope="module")
def smollm2_dir() -> str:
    from jobs.errors import UserError
    from jobs.models import resolve_model

    try:
        return resolve_model("smollm2-135m")
    except UserError as err:
        pytest.skip(f"smollm2-135m is not prepared here: {err}")


def test_interleave_takes_one_document_of_each_source_in_turn(bench):
    groups = {"a": [{"id": "a1"}, {"id": "a2"}, {"id": "a3"}], "b": [{"id": "b1"}], "c": [{"id": "c1"}, {"id": "c2"}]}
    assert [d["id"] for d in bench.interleave(groups)] == ["a1", "b1", "c1", "a2", "c2", "a3"]
    assert [d["id"] for d in bench.interleave(groups, 4)] == ["a1", "b1", "c1", "a2"]


def test_ccnet_texts_come_longest_first(bench, webdata, tmp_path):
    # Only the CCNet folder of the real data, so no page is parsed here.
    (tmp_path / "text").mkdir()
    (tmp_path / "text" / "dolma-ccnet-cc_en_head").symlink_to(webdata / "text" / "dolma-ccnet-cc_en_head")
    groups = bench.document_groups(tmp_path)
    assert groups["recipes"] == groups["readability"] == groups["zh"] == []
    lengths = [len(d["text"]) for d in groups["ccnet"]]
    assert len(lengths) == 20
    assert lengths == sorted(lengths, reverse=True)
    assert lengths[0] > 60_000  # long enough that a prompt must be cut to fit
    assert all(d["url"].startswith("http") for d in groups["ccnet"])
    shard = tmp_path / "docs" / "d.jsonl"
    assert bench.write_documents(shard, groups["ccnet"][:3]) == 3
    rows = [json.loads(line) for line in shard.read_text(encoding="utf-8").splitlines()]
    assert [len(r["text"]) for r in rows] == lengths[:3]


def test_rouge_histogram_shares_below_and_above(bench):
    seeds = ["Write a poem about the sea.", "Translate the sentence into French."]
    texts = ["Write a poem about the sea.", "List three prime numbers below twenty.", "把这句话翻译成英文。"]
    h = bench.rouge_histogram(texts, seeds)
    assert h["n"] == 3 and h["against"] == 2
    assert h["share_above_0.7"] == round(1 / 3, 3)  # the copy of a seed scores 1.0
    assert h["share_below_0.3"] == round(2 / 3, 3)
    assert h["bins"]["0.9-1.0"] == 1
    assert sum(h["bins"].values()) == 3


def test_length_summary_counts_words_and_chinese_characters(bench):
    s = bench.length_summary(["one two three", "用Python写代码", "a b c d e f g h i j"])
    # 3 words; 用 python 写 代 码 = 5 tokens; 10 words
    assert s == {"n": 3, "median": 5, "p90": 10, "max": 10}
    assert bench.length_summary([]) == {"n": 0}


class _Decoder:
    """decode() of prompts already given as text (the benchmark decodes token ids)."""

    @staticmethod
    def decode(prompt):
        return prompt


def test_parse_rate_of_each_mode(bench):
    template_calls = [(0, ["p"] * 3, [{"text": "The answer is 4."}, {"text": "  "}, {"text": "NO_ANSWER"}])]
    assert bench.parsed_items("template", template_calls, _Decoder) == (3, 1, 1)

    qa = json.dumps([{"question": "What is sold?", "answer": "Bread."}, {"question": "Where?", "answer": "Paris."}])
    doc_qa_calls = [(0, ["p", "p"], [{"text": qa, "finish_reason": "stop"}, {"text": "no json here"}])]
    assert bench.parsed_items("doc_qa", doc_qa_calls, _Decoder) == (2, 1, 2)

    prompt = "Come up with a series of tasks:\n\n1. Task one\n2. Task two\n3.<|im_end|>\n<|im_start|>assistant\n"
    si_calls = [
        (0, [prompt, prompt], [{"text": "3. Name a fruit.\n4. Sort these numbers.", "finish_reason": "stop"},
                               {"text": "", "finish_reason": "stop"}]),
        (300_000, ["c"], [{"text": "Yes"}]),  # classification and instance calls are not counted
        (600_000, ["i"], [{"text": "Output: 1"}]),
    ]
    assert bench.parsed_items("self_instruct", si_calls, _Decoder, "completion") == (2, 1, 2)
    # A chat model answers in a turn of its own and may number its tasks from 1.
    chat_calls = [(0, ["p"], [{"text": "1. Name a fruit.\n2. Sort these numbers.\n3. Define gravity.",
                               "finish_reason": "stop"}])]
    assert bench.parsed_items("self_instruct", chat_calls, _Decoder, "chat") == (1, 1, 3)
    assert bench.parsed_items("self_instruct", chat_calls, _Decoder, "completion") == (1, 0, 0)


def test_mode_quality_rates_from_counters(bench):
    counters = Counter({"synth.prompts.sent": 10, "synth.generations": 10, "synth.records.accepted": 6,
                        "synth.records.written": 6, "synth.records.drop.empty_generation": 2,
                        "synth.records.drop.too_short": 1, "synth.records.drop.duplicate_output": 1,
                        "synth.prompts.cut.passage": 3, "synth.records.task_type.answer": 6})
    rows = [{"instruction": "Explain the recipe.", "output": "Mix flour and water.", "lang": "en", "task_type": "answer"}]
    calls = [(0, ["p"] * 2, [{"text": "ok", "tokens": 5, "finish_reason": "length"}, {"text": "", "tokens": 0}])]
    q = bench.mode_quality("template", dict(counters), rows, calls, _Decoder, ["Explain the recipe."], 12.34)
    assert q["accepted_rate"] == 0.75  # 6 of 8 candidates: the empty generations are parse failures
    assert q["accepted_per_generation"] == 0.6
    assert q["parse_rate"] == 0.5
    assert q["drops"] == {"records.drop.duplicate_output": 1, "records.drop.empty_generation": 2,
                          "records.drop.too_short": 1}
    assert q["cuts"] == {"prompts.cut.passage": 3}
    assert q["generated_tokens"] == 5 and q["truncated_generations"] == 1
    assert q["rouge_l_vs_seeds"]["share_above_0.7"] == 1.0
    assert q["instruction_length"]["median"] == 3


def test_self_instruct_prompts_fit_and_open_the_next_number(bench, smollm2_dir):
    from jobs.synth import prompt_fitter

    engine = bench.engine_settings(0, 1, 512, 256)
    config = bench.synth_config(smollm2_dir, engine, bench.sampling_settings(128))
    fitter = prompt_fitter(config, smollm2_dir)
    prompts = bench.self_instruct_prompts(6, fitter)
    assert len(prompts) == 6
    for p in prompts:
        assert len(p) <= 512 - 128
        text = fitter.encoder.tokenizer.decode(p.token_ids)
        assert "<|im_start|>assistant" in text  # SmolLM2's chat template
        opened = int(bench._OPEN_NUMBER.findall(text)[-1])
        assert text.count("\n") >= opened  # one line per shown task before the open number
        assert f"{opened - 1}. " in text and f"{opened}. " not in text


def test_build_prompts_mixes_grounded_answers_from_real_pages(bench, smollm2_dir, webdata, tmp_path):
    from jobs.synth import prompt_fitter

    (tmp_path / "text").mkdir()
    (tmp_path / "text" / "dolma-ccnet-cc_en_head").symlink_to(webdata / "text" / "dolma-ccnet-cc_en_head")
    docs = bench.document_groups(tmp_path)["ccnet"][:3]
    engine = bench.engine_settings(0, 1, 1024, 256)
    config = bench.synth_config(smollm2_dir, engine, bench.sampling_settings(128))
    fitter = prompt_fitter(config, smollm2_dir)
    ids, info = bench.build_prompts(6, "mixed", docs, config, fitter)
    assert len(ids) == 6 and all(isinstance(t, int) for t in ids[0])
    assert info["prompt_kinds"] == {"grounded_answer": 3, "self_instruct": 3}
    assert info["prompt_tokens_max"] <= 1024 - 128
    assert info["prompt_format"] == "chat"
    assert "Come up with a series of tasks" in fitter.encoder.tokenizer.decode(ids[1])


def test_markdown_summary_has_the_throughput_line_and_a_row_per_mode(bench):
    quality = bench.mode_quality(
        "doc_qa", {"synth.prompts.sent": 4, "synth.generations": 4, "synth.records.accepted": 3,
                   "synth.records.drop.unparsable_qa": 1, "synth.records.drop.too_short": 1,
                   "synth.records.task_type.answer": 3},
        [{"instruction": "What is sold here?", "output": "Bread and cakes.", "lang": "en", "task_type": "answer"}],
        [(0, ["p"] * 4, [{"text": '[{"question": "Q?", "answer": "A."}]', "tokens": 9}] * 3
          + [{"text": "", "tokens": 0}])], _Decoder, ["Write a poem."], 61.0)
    result = {
        "model": "smollm2-135m", "gpus": 0, "cpu_count": 2,
        "throughput": {"prompts": 48, "prompt_tokens_mean": 300.0, "sampling": {"max_tokens": 128},
                       "plain_tokens_per_s": 80.0, "ray_tokens_per_s": 76.0, "ray_vs_plain": 0.95},
        "quality": {"documents": 8, "self_instruct_rounds": 1, "self_instruct_prompts_per_round": 12,
                    "sampling": {"max_tokens": 256}, "doc_qa": quality},
    }
    text = bench.markdown_summary(result)
    assert "plain vLLM 80.0 tokens/s, Ray pipeline 76.0 tokens/s, ray_vs_plain 0.95" in text
    row = next(line for line in text.splitlines() if line.startswith("| doc_qa |"))
    assert "| 4 | 0.75 | 3 (0.75) |" in row  # 3 of 4 replies parse; 3 of 4 candidates kept
    assert "unparsable_qa 1" in row and "too_short 1" in row and "answer 3" in row


def test_the_run_book_commands_are_ones_the_benchmark_accepts(bench):
    import shlex

    readme = (REPO / "cluster" / "README.md").read_text(encoding="utf-8").replace("\\\n", " ")
    commands = [line.split("bench/bench_synth.py", 1)[1] for line in readme.splitlines()
                if line.lstrip().startswith("python bench/bench_synth.py")]
    assert len(commands) >= 2
    parsed = [bench.parse_args(shlex.split(c)) for c in commands]
    assert any(a.gpus == 1 and a.prompts >= 2000 for a in parsed)
    assert any(a.gpus > 1 and a.prompts >= 2000 for a in parsed)
    assert all(a.json_out is not None for a in parsed)


def test_self_instruct_stage_rates_read_the_classification_and_instance_replies(bench):
    from transforms.synth.prompts import instance_prompt

    label_first = instance_prompt("Classify the sentiment of the review.", output_first=True)
    input_first = instance_prompt("Summarize the paragraph.", output_first=False)
    assert "Class label:" in label_first and "Class label:" not in input_first  # how the benchmark tells them apart
    calls = [
        (0, ["p"], [{"text": "1. Name a fruit."}]),  # instruction generation: not counted here
        (300_000, ["c", "c", "c"], [{"text": "Yes"}, {"text": "No"}, {"text": "Maybe, it depends."}]),
        (600_000, [label_first, input_first, input_first],
         [{"text": "Class label: Positive\nReview: I loved it.", "finish_reason": "stop"},
          {"text": "Input: A long paragraph about rain.\nOutput: It rains a lot.", "finish_reason": "stop"},
          {"text": "I am not sure what to write.", "finish_reason": "stop"}]),
    ]
    rates = bench.self_instruct_stage_rates(calls, _Decoder)
    assert rates == {"classification_replies": 3, "classification_answered_rate": 0.667,
                     "instance_replies": 3, "instance_parse_rate": 0.667}
