import json
import random

import pytest

from transforms.synth.self_instruct import (
    INSTANCE_REASONS,
    INSTRUCTION_REASONS,
    filter_instances,
    instance_rejection,
    instance_rejections,
    instruction_rejection,
    new_instruction_rejection,
    parse_classification_answer,
    parse_generated_instructions,
    parse_instances,
    sample_prompt_tasks,
)

HUMAN = [f"Human seed task number {i}." for i in range(20)]
MACHINE = [f"Machine task number {i}." for i in range(10)]


# --- sample_prompt_tasks ---------------------------------------------------------


def test_prompt_has_six_human_and_two_machine_tasks():
    tasks = sample_prompt_tasks(HUMAN, MACHINE, random.Random(0))
    assert len(tasks) == 8 == len(set(tasks))
    assert sum(t in MACHINE for t in tasks) == 2
    assert sum(t in HUMAN for t in tasks) == 6


@pytest.mark.parametrize("n_machine_pool, expected_machine", [(0, 0), (1, 1), (2, 2), (10, 2)])
def test_early_rounds_fill_from_human_seeds(n_machine_pool, expected_machine):
    tasks = sample_prompt_tasks(HUMAN, MACHINE[:n_machine_pool], random.Random(1))
    assert len(tasks) == 8
    assert sum(t in MACHINE for t in tasks) == expected_machine


def test_sampling_is_deterministic_and_varies_with_the_rng():
    a = sample_prompt_tasks(HUMAN, MACHINE, random.Random(42))
    assert a == sample_prompt_tasks(HUMAN, MACHINE, random.Random(42))
    assert a != sample_prompt_tasks(HUMAN, MACHINE, random.Random(43))


def test_small_pools_give_what_they_have():
    assert sorted(sample_prompt_tasks(HUMAN[:3], [], random.Random(0))) == sorted(HUMAN[:3])
    with pytest.raises(ValueError, match="both pools are empty"):
        sample_prompt_tasks([], [], random.Random(0))


def test_custom_counts():
    tasks = sample_prompt_tasks(HUMAN, MACHINE, random.Random(0), n_human=3, n_machine=1)
    assert len(tasks) == 4 and sum(t in MACHINE for t in tasks) == 1


# --- parse_generated_instructions -------------------------------------------------


def test_continuation_of_the_prompts_numbered_list():
    text = (
        " Create a haiku about autumn leaves.\n"
        "10. Translate the sentence into French.\n"
        "11. Classify the following tweet as positive or negative.\n"
        "12. Tell me a joke about cats."
    )
    assert parse_generated_instructions(text) == [
        "Create a haiku about autumn leaves.",
        "Translate the sentence into French.",
        "Classify the following tweet as positive or negative.",
        "Tell me a joke about cats.",
    ]


def test_completion_that_repeats_the_first_number():
    assert parse_generated_instructions("9. First task here.\n10. Second task here.") == [
        "First task here.",
        "Second task here.",
    ]


@pytest.mark.parametrize(
    "text",
    [
        "Task 9: Instruction: Sort these numbers please.\nTask 10: Name three rivers in Asia.",
        "9) Sort these numbers please.\n10) Name three rivers in Asia.",
        "**9.** Sort these numbers please.\n**10.** Name three rivers in Asia.",
        "- 9. Sort these numbers please.\n- 10. Name three rivers in Asia.",
        " sort these numbers please.\n\n10. Name three rivers in Asia.",
    ],
)
def test_numbering_variants(text):
    assert parse_generated_instructions(text) == ["Sort these numbers please.", "Name three rivers in Asia."]


def test_chinese_numbering_variants():
    text = " 写一首关于秋天的诗。\n10、把下面的句子翻译成英文。\n任务11：判断这句话的情感倾向。\n12．列出三种水果。"
    assert parse_generated_instructions(text) == [
        "写一首关于秋天的诗。",
        "把下面的句子翻译成英文。",
        "判断这句话的情感倾向。",
        "列出三种水果。",
    ]


def test_a_task_may_span_lines():
    text = " Classify the following\nsentence by its tone.\n10. Next task here."
    assert parse_generated_instructions(text) == ["Classify the following sentence by its tone.", "Next task here."]


@pytest.mark.parametrize(
    "garbage",
    [
        "1. A restarted list here.",  # number out of sequence
        "14. A skipped number.",
        "\nSome commentary after a blank line.",  # the paper stops at "\n\n"
        "Input: 3, 1, 2",
        "Output: 1, 2, 3",
        "Example 1",
        "Come up with a series of tasks:",
    ],
)
def test_parsing_stops_at_garbage(garbage):
    text = " Sort the numbers in the list.\n10. Name three rivers in Asia.\n" + garbage + "\n11. Never reached task."
    assert parse_generated_instructions(text) == ["Sort the numbers in the list.", "Name three rivers in Asia."]


def test_truncated_generation_drops_the_last_task():
    text = " Sort the numbers in the list.\n10. Name three rivers in"
    assert parse_generated_instructions(text, truncated=True) == ["Sort the numbers in the list."]


def test_first_letter_capitalised_rest_untouched():
    assert parse_generated_instructions(" use the NumPy API to add two arrays.") == ["Use the NumPy API to add two arrays."]


def test_other_start_index_and_empty_text():
    assert parse_generated_instructions(" A.\n4. B task here.", start_index=3) == ["A.", "B task here."]
    assert parse_generated_instructions("") == []
    assert parse_generated_instructions("\n\n  \n") == []


# --- instruction_rejection --------------------------------------------------------


def test_reasons_are_declared():
    assert set(INSTRUCTION_REASONS) == {
        "too_short", "too_long", "leading_punctuation", "non_ascii_start", "write_a_program", "blacklisted_keyword",
    }


@pytest.mark.parametrize(
    "instruction, reason",
    [
        ("Complete the lyrics.", "too_short"),  # 3 words: the paper keeps > 3
        ("Complete the song lyrics.", None),
        (" ".join(["word"] * 150), None),
        (" ".join(["word"] * 151), "too_long"),
        ("Draw a cat using ASCII characters.", "blacklisted_keyword"),
        ("Describe the images in this article.", "blacklisted_keyword"),
        ("Summarize the attached file in two lines.", "blacklisted_keyword"),
        ("Go to the website and list its products.", "blacklisted_keyword"),
        ("Plot the sales data for each month.", "blacklisted_keyword"),
        ("Read the map legend and explain it.", "blacklisted_keyword"),
        ("Explain how hash maps differ from trees.", "blacklisted_keyword"),
        ("Explain how mapping functions work in Python.", None),  # whole words only
        ("Write a profile of a famous photographer.", None),
        ('"Paraphrase" the following sentence.', "leading_punctuation"),
        ("- List five fruits that are red.", "leading_punctuation"),
        ("¿Cómo estás? Translate it to English.", "non_ascii_start"),
        ("Write a program to compute the sum of integers from k to n.", "write_a_program"),
        ("write a program that reverses a string.", "write_a_program"),
        ("Write a Python function that reverses a string.", None),
    ],
)
def test_english_rules(instruction, reason):
    assert instruction_rejection(instruction, "en") == reason


@pytest.mark.parametrize(
    "instruction, reason",
    [
        ("完善歌词。", "too_short"),  # 4 characters, the translation of the 3-word "Complete the lyrics."
        ("判断亲属关系", None),
        ("写一首关于秋天的诗。", None),
        ("用Python写一个快速排序", None),  # 9 characters + 1 word
        ("写" * 300, None),
        ("写" * 301, "too_long"),
        ("画一幅山水画送给朋友", "blacklisted_keyword"),
        ("请画出这个函数的曲线", "blacklisted_keyword"),
        ("根据这张图片写一段描述", "blacklisted_keyword"),
        ("用柱状图展示各月销量", "blacklisted_keyword"),
        ("读取这个文件并统计行数", "blacklisted_keyword"),
        ("打开地图查找去公司的路线", "blacklisted_keyword"),
        ("点击链接转到官网并总结内容", "blacklisted_keyword"),
        ("绘制一张公司组织结构图", "blacklisted_keyword"),
        ("分析用户意图并给出回复建议", None),  # 意图 contains 图
        ("试图说服朋友戒烟，写一段对话", None),
        ("推荐几本适合初学者的图书", None),
        ("为这部漫画写一段简介", None),  # 画 inside ordinary words
        ("介绍一位著名画家的生平", None),
        ("用文字刻画一个人物的性格特点", None),
        ("构建一个电商平台的用户画像", None),
        ("制定一份暑假学习计划", None),
        ("如何前往机场最方便？", None),  # travel, not navigation
        ("《红楼梦》的作者是谁？", None),  # opening book-title mark
        ("“双减”政策是什么意思？", None),
        ("（选做）写一首五言绝句", None),
        ("，写一首关于春天的诗", "leading_punctuation"),
        ("- 写一首关于春天的诗", "leading_punctuation"),
        ("编写一个程序来计算从k到n的整数之和。", "write_a_program"),
        ("请写一个程序判断闰年", "write_a_program"),
        ("写一个Python函数判断闰年", None),
    ],
)
def test_chinese_rules(instruction, reason):
    assert instruction_rejection(instruction, "zh") == reason


def test_chinese_never_gets_the_non_ascii_start_rule():
    assert instruction_rejection("写一首关于大海的现代诗", "zh") is None
    assert instruction_rejection("写一首关于大海的现代诗", "zh-Hans") is None


def test_chinese_text_uses_chinese_rules_whatever_the_language_id_says():
    assert instruction_rejection("写一首关于大海的现代诗", "en") is None
    assert instruction_rejection("写一首关于大海的现代诗", "") is None
    assert instruction_rejection("完善歌词。", "") == "too_short"


def test_english_keywords_apply_inside_chinese_text():
    assert instruction_rejection("读取这个CSV file并统计行数", "zh") == "blacklisted_keyword"


def _tasks(webdata):
    base = webdata / "instructions"
    en = [json.loads(x) for x in (base / "alpaca-self-instruct-seed" / "seed_tasks.jsonl").read_text().splitlines() if x]
    zh = [json.loads(x) for x in (base / "belle-zh" / "zh_seed_tasks.json").read_text(encoding="utf-8").splitlines() if x]
    return en, zh


def test_real_seeds_en_and_zh_are_rejected_alike(webdata):
    """The rules on the 175 Alpaca seeds and their 175 BELLE translations: the same tasks fall out."""
    en, zh = _tasks(webdata)
    en_drops = {t["id"]: instruction_rejection(t["instruction"], "en") for t in en}
    zh_drops = {t["id"]: instruction_rejection(t["instruction"], "zh") for t in zh}
    assert {k: v for k, v in en_drops.items() if v} == {
        "seed_task_12": "too_short",  # "Explain human's behavior."
        "seed_task_79": "too_short",  # "Complete the lyrics."
        "seed_task_139": "write_a_program",
    }
    assert {k: v for k, v in zh_drops.items() if v} == {
        "seed_task_79": "too_short",  # "完善歌词。"
        "seed_task_139": "write_a_program",  # "编写一个程序来计算从k到n的整数之和。"
    }


def test_real_chinese_questions_rarely_hit_the_keyword_list(webdata):
    """BELLE's 1000 evaluation questions: the Chinese list hits only what the English list would
    (files, maps, photos, image recognition, charts, a drawing request), about 1 %."""
    path = webdata / "instructions" / "belle-zh" / "eval_set.json"
    questions = [json.loads(line)["question"] for line in path.read_text(encoding="utf-8").splitlines() if line]
    hits = [q for q in questions if instruction_rejection(q, "zh") == "blacklisted_keyword"]
    assert 0 < len(hits) <= 15
    assert all(any(k in q for k in ("文件", "地图", "图片", "图像", "相片", "图表", "画")) for q in hits)


# --- parse_classification_answer --------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        (" Yes", True),
        ("yes.", True),
        ("YES", True),
        (" No", False),
        ("no, it is not", False),
        ("Is it classification? Yes", True),
        ("Answer: No", False),
        ("**Yes**", True),
        ("True", True),
        ("是", True),
        ("是的，这是分类任务。", True),
        ("否", False),
        ("不是", False),
        ("答：不是分类任务", False),
        ("是否为分类任务？是", True),
        ("", None),
        ("Maybe", None),
        ("Yesterday", None),
        ("它可能是", None),
    ],
)
def test_classification_answer(text, expected):
    assert parse_classification_answer(text) is expected


# --- parse_instances ----------------------------------------------------------------


def test_input_first_examples():
    text = (
        "Example 1\nList: [10, 92, 2, 5]\nOutput: [2, 5, 10, 92]\n"
        "Example 2\nInput 2 - List: [9.99, 10, -5]\nOutput: [-5, 9.99, 10]\n"
    )
    assert parse_instances(text, output_first=False) == [
        ("List: [10, 92, 2, 5]", "[2, 5, 10, 92]"),
        ("Input 2 - List: [9.99, 10, -5]", "[-5, 9.99, 10]"),
    ]


def test_input_first_single_output_without_input():
    text = "Output:\n- Lying Leg Raises\n- Plank\n- Sit-ups"
    assert parse_instances(text, output_first=False) == [("", "- Lying Leg Raises\n- Plank\n- Sit-ups")]


def test_input_prefix_removed_and_run_on_pair_cut():
    text = "Example 1\nInput: 85 F\nOutput: 29.44 C\nInput: 32 F\nOutput: 0 C"
    assert parse_instances(text, output_first=False) == [("85 F", "29.44 C")]


def test_no_marker_no_instances():
    assert parse_instances("Just some text with no structure.", output_first=False) == []
    assert parse_instances("Some text without labels.", output_first=True) == []


def test_preamble_before_first_example_is_dropped():
    text = "Here are some examples:\nExample 1\nSentence: Hi there\nOutput: greeting"
    assert parse_instances(text, output_first=False) == [("Sentence: Hi there", "greeting")]


def test_unnumbered_example_label_is_content():
    text = "Example 1\nInput: black sheep\nOutput: Meaning: an outcast.\nExample: He is the black sheep."
    assert parse_instances(text, output_first=False) == [
        ("black sheep", "Meaning: an outcast.\nExample: He is the black sheep.")
    ]


def test_generation_running_into_the_next_task_is_cut():
    text = "Output: 4\n\nTask: Add 3 and 5.\nOutput: 8"
    assert parse_instances(text, output_first=False) == [("", "4")]


def test_output_first_class_labels():
    text = (
        "Class label: Positive\nSentence: I had a great day today.\n"
        "Class label: Negative\nSentence: The movie was a letdown.\n"
        "Class label: Montreal\n"
    )
    assert parse_instances(text, output_first=True) == [
        ("Sentence: I had a great day today.", "Positive"),
        ("Sentence: The movie was a letdown.", "Negative"),
        ("", "Montreal"),
    ]


def test_chinese_markers():
    text = "示例 1\n输入：今天天气真好\n输出：积极\n示例2\n输入：电影太无聊了\n输出：消极"
    assert parse_instances(text, output_first=False) == [("今天天气真好", "积极"), ("电影太无聊了", "消极")]
    text = "类别标签：积极\n句子：今天天气真好\n类别标签：消极\n句子：电影太无聊了"
    assert parse_instances(text, output_first=True) == [("句子：今天天气真好", "积极"), ("句子：电影太无聊了", "消极")]


def test_chinese_example_word_in_content_is_not_a_marker():
    text = "示例1\n输入：偷天换日\n输出：比喻暗中玩弄手法。\n例如：他的把戏早被识破了。"
    assert parse_instances(text, output_first=False) == [("偷天换日", "比喻暗中玩弄手法。\n例如：他的把戏早被识破了。")]


def test_truncated_drops_last_instance():
    text = "Class label: Yes\nQ: a\nClass label: No\nQ: b"
    assert parse_instances(text, output_first=True, truncated=True) == [("Q: a", "Yes")]


def _render(task: dict, chinese: bool) -> str:
    """A seed task's instances written the way the instance-generation prompt asks for them."""
    inp, out, example, label = ("输入：", "输出：", "示例", "类别标签：") if chinese else ("Input: ", "Output: ", "Example", "Class label: ")
    blocks = []
    for n, inst in enumerate(task["instances"], 1):
        if task["is_classification"]:
            blocks.append(f"{label}{inst['output']}\n{inst['input']}")
        else:
            blocks.append(f"{example} {n}\n{inp}{inst['input']}\n{out}{inst['output']}")
    return "\n".join(blocks)


def test_real_seed_instances_round_trip(webdata):
    """Every instance of the 350 real seed tasks, rendered in its task's format, parses back unchanged
    and passes the instance filter."""
    en, zh = _tasks(webdata)
    for tasks, chinese in ((en, False), (zh, True)):
        for task in tasks:
            parsed = parse_instances(_render(task, chinese), output_first=task["is_classification"])
            assert parsed == [(i["input"].strip(), i["output"].strip()) for i in task["instances"]], task["id"]
            assert instance_rejections(parsed) == [None] * len(parsed), task["id"]


# --- instance filter ----------------------------------------------------------------


def test_instance_reasons_are_declared():
    assert set(INSTANCE_REASONS) == {
        "empty_output", "input_equals_output", "incomplete", "conflicting_outputs", "duplicate", "over_limit",
    }


@pytest.mark.parametrize(
    "input_, output, reason",
    [
        ("2 + 2", "4", None),
        ("", "A poem about rain.", None),
        ("2 + 2", "", "empty_output"),
        ("2 + 2", "   ", "empty_output"),
        ("hello world", "hello  world", "input_equals_output"),
        ("List the steps.", "Here are the steps:", "incomplete"),
        ("上海：\n南京：", "上海：魔都\n南京：金陵", None),  # a slot-filling input may end with a colon
        ("天气", "输出：", "incomplete"),
    ],
)
def test_single_instance_rules(input_, output, reason):
    assert instance_rejection(input_, output) == reason


def test_same_input_with_different_outputs_drops_that_input_only():
    instances = [("2 + 2", "4"), ("2 + 2", "5"), ("3 + 3", "6"), ("2 + 2", "4")]
    assert instance_rejections(instances) == ["conflicting_outputs", "conflicting_outputs", None, "conflicting_outputs"]


def test_empty_input_may_have_several_outputs():
    instances = [("", "Roses are red."), ("", "The sea is wide.")]
    assert instance_rejections(instances) == [None, None]


def test_duplicates_keep_the_first():
    assert instance_rejections([("a b", "c"), ("a  b", "c"), ("", "x"), ("", "x")]) == [None, "duplicate", None, "duplicate"]


def test_at_most_five_instances_sampled_with_the_rng():
    instances = [(f"input {i}", f"output {i}") for i in range(8)]
    assert instance_rejections(instances)[5:] == ["over_limit"] * 3
    reasons = instance_rejections(instances, random.Random(3))
    assert reasons.count(None) == 5 and reasons.count("over_limit") == 3
    assert reasons == instance_rejections(instances, random.Random(3))
    assert instance_rejections(instances, max_instances=2).count(None) == 2


def test_over_limit_counts_only_valid_instances():
    instances = [("x", "")] * 3 + [(f"in {i}", f"out {i}") for i in range(5)]
    assert instance_rejections(instances) == ["empty_output"] * 3 + [None] * 5


def test_filter_instances_returns_kept_pairs_and_drop_reasons():
    kept, reasons = filter_instances([("2 + 2", "4"), ("same", "same"), ("x", "")])
    assert kept == [("2 + 2", "4")]
    assert sorted(reasons) == ["empty_output", "input_equals_output"]


def test_a_chat_reply_numbering_its_new_tasks_from_one_parses_without_a_start_index():
    from transforms.synth.self_instruct import parse_generated_instructions

    reply = "1. Write a short poem about the sea.\n2. Explain how rain forms.\n\nI hope these help!"
    assert parse_generated_instructions(reply, start_index=None) == [
        "Write a short poem about the sea.", "Explain how rain forms."]
    assert parse_generated_instructions(reply, start_index=9) == []  # a completion must continue at 9
    assert parse_generated_instructions("9. Name a river.\n10. Name a lake.\n3. Oops", start_index=None) == [
        "Name a river.", "Name a lake."]


def test_a_chat_reply_that_carries_the_task_out_is_its_output_when_asked_for():
    from transforms.synth.self_instruct import parse_instances

    reply = "Here is a haiku:\nQuiet harbour lights / boats asleep on the black tide / gulls keep the night watch"
    assert parse_instances(reply, output_first=False) == []  # a completion must follow the examples' form
    assert parse_instances(reply, output_first=False, bare_reply_is_output=True) == [("", reply)]
    assert parse_instances(reply, output_first=True, bare_reply_is_output=True) == []  # labels need "Class label:"
    assert parse_instances("Sentence: I like it.\nOutput: positive", output_first=False,
                           bare_reply_is_output=True) == [("Sentence: I like it.", "positive")]


def test_a_new_instruction_from_an_evaluation_set_never_joins_the_pool():
    """The loop's rule for generated instructions (jobs/self_instruct_loop.py): the instruction
    rules, then the benchmarks, then novelty against the pool, in English and Chinese."""
    from transforms.decontaminate import BenchmarkIndex
    from transforms.synth.novelty_index import NoveltyIndex

    eval_en = "Write a short poem about the ocean at night that mentions the moon and the tide."
    eval_zh = "请用三句话解释为什么夏天白天比冬天长，并举一个生活中的例子。"
    benchmarks = BenchmarkIndex.build([("poems", [eval_en]), ("belle", [eval_zh])])
    pool = NoveltyIndex(threshold=0.7)
    pool.add("Summarize the main causes of the French Revolution in three sentences.")

    # Verbatim, re-cased, and embedded in a longer request: all carry the item's n-grams.
    assert new_instruction_rejection(eval_en, "en", pool, benchmarks) == "contaminated.poems"
    assert new_instruction_rejection(eval_en.upper(), "en", pool, benchmarks) == "contaminated.poems"
    assert new_instruction_rejection(f"Please do this: {eval_en}", "en", pool, benchmarks) == "contaminated.poems"
    assert new_instruction_rejection(eval_zh, "zh", pool, benchmarks) == "contaminated.belle"
    # Without benchmarks the same instruction is judged by the other rules only.
    assert new_instruction_rejection(eval_en, "en", pool) is None
    assert new_instruction_rejection("Summarize the main causes of the French Revolution in three sentences.",
                                     "en", pool, benchmarks) == "not_novel"
    assert new_instruction_rejection("List three ways to keep basil fresh for a week.", "en", pool,
                                     benchmarks) is None
    assert new_instruction_rejection("Write a program", "en", pool, benchmarks) == instruction_rejection(
        "Write a program", "en")
