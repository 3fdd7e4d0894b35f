import re

import pytest
from jinja2.exceptions import SecurityError

from transforms.synth.prompts import (
    NO_ANSWER,
    PROMPT_NAMES,
    SELF_INSTRUCT_TASKS,
    PromptTemplate,
    classification_prompt,
    doc_qa_prompt,
    grounded_answer_prompt,
    instance_prompt,
    load_prompts,
    render_prompt,
    self_instruct_prompt,
)

EIGHT_TASKS = [
    "Explain what a roundabout is to a learner driver.",
    "List five things to pack for a hiking trip.",
    "Translate the sentence into French.",
    "Is the sentiment of this review positive or negative?",
    "Summarize the paragraph in one sentence.",
    "Extract all the dates mentioned in the text.",
    "用通俗的话解释什么是复利。",
    "判断这条商品评价是正面还是负面。",
]


def user_prompt(tmp_path, name: str, body: str):
    folder = tmp_path / "prompts"
    folder.mkdir(exist_ok=True)
    (folder / name).write_text(body, encoding="utf-8")
    return folder


def test_the_packaged_prompts_are_all_there():
    prompts = load_prompts()
    assert tuple(prompts) == PROMPT_NAMES
    assert all(
        isinstance(p, PromptTemplate) and p.origin.startswith("templates/prompts/") for p in prompts.values()
    )
    assert load_prompts() == prompts and load_prompts() is not prompts  # cached, but a fresh dict each time


def test_self_instruct_lists_eight_tasks_and_leaves_nine_open():
    text = self_instruct_prompt(EIGHT_TASKS)
    assert len(EIGHT_TASKS) == SELF_INSTRUCT_TASKS
    assert text.startswith("Come up with a series of tasks:\n\n1. Explain what a roundabout is")
    numbered = re.findall(r"^(\d+)\. (.+)$", text, flags=re.MULTILINE)
    assert [int(n) for n, _ in numbered] == list(range(1, 9))
    assert [task for _, task in numbered] == EIGHT_TASKS
    assert text.endswith("\n9.")


def test_self_instruct_puts_each_task_on_one_line():
    text = self_instruct_prompt(["Answer the question:\n  Why is the sky blue?", "Name a colour:"])
    assert (
        text
        == "Come up with a series of tasks:\n\n1. Answer the question: Why is the sky blue?\n2. Name a colour\n3."
    )


@pytest.mark.parametrize("tasks", [[], "one task", ["fine", "  "]])
def test_self_instruct_needs_tasks(tasks):
    with pytest.raises(ValueError, match="task"):
        self_instruct_prompt(tasks)


def test_classification_prompt_is_few_shot_yes_no():
    text = classification_prompt("Decide whether the tweet is about sports.")
    assert text.startswith(
        "Can the following task be regarded as a classification task with finite output labels?"
    )
    assert text.endswith("Task: Decide whether the tweet is about sports.\nIs it classification?")
    answers = re.findall(r"Is it classification\? (Yes|No)", text)
    assert answers.count("Yes") >= 4 and answers.count("No") >= 4


def test_instance_prompts_input_first_and_output_first():
    input_first = instance_prompt("Write a haiku about rain.", output_first=False)
    output_first = instance_prompt("Label the mood of the sentence as happy or sad.", output_first=True)
    assert input_first.startswith("Come up with examples for the following tasks.")
    assert input_first.endswith("Task: Write a haiku about rain.")
    assert "Example 1" in input_first and "Output:" in input_first
    assert output_first.startswith("Given the classification task definition and the class labels")
    # The model writes the "Class label:" markers itself, so a parser sees one before every label.
    assert output_first.endswith("Task: Label the mood of the sentence as happy or sad.")
    assert output_first.count("Class label:") >= 6


def test_grounded_answer_prompt_with_and_without_a_passage():
    text = grounded_answer_prompt("What is chlorophyll?", "Chlorophyll is a green pigment.")
    assert "Chlorophyll is a green pigment." in text and "Instruction: What is chlorophyll?" in text
    assert NO_ANSWER in text and text.endswith("Response:")
    bare = grounded_answer_prompt("What is chlorophyll?")
    assert "Passage" not in bare and "What is chlorophyll?" in bare and NO_ANSWER in bare
    assert (
        grounded_answer_prompt("什么是叶绿素？", "叶绿素是一种绿色色素。").count("叶绿素是一种绿色色素。")
        == 1
    )


def test_doc_qa_prompt_asks_for_varied_pairs_in_json():
    text = doc_qa_prompt("The Nile is the longest river in Africa.", 5)
    assert "Write 5 question-answer pairs" in text
    assert '"question"' in text and '"answer"' in text and "JSON" in text
    assert "The Nile is the longest river in Africa." in text
    for kind in ("what", "why", "how", "a list", "a number", "a name"):
        assert kind in text


@pytest.mark.parametrize("n_pairs", [0, -1, 2.5, True, "3"])
def test_doc_qa_needs_a_positive_number(n_pairs):
    with pytest.raises(ValueError, match="n_pairs"):
        doc_qa_prompt("Some document.", n_pairs)


@pytest.mark.parametrize(
    "call",
    [
        lambda: grounded_answer_prompt("", "passage"),
        lambda: classification_prompt("   "),
        lambda: instance_prompt("", output_first=True),
        lambda: doc_qa_prompt("", 3),
    ],
)
def test_empty_text_is_refused(call):
    with pytest.raises(ValueError, match="non-empty"):
        call()


def test_values_are_never_evaluated_as_jinja():
    text = grounded_answer_prompt(
        "What is {{ 7 * 7 }}?", "{% for x in range(3) %}x{% endfor %} {{ ''.__class__ }}"
    )
    assert "What is {{ 7 * 7 }}?" in text and "{% for x in range(3) %}" in text and "49" not in text


# --- user prompts -------------------------------------------------------------------------


def test_a_user_folder_replaces_only_the_prompts_it_has(tmp_path):
    folder = user_prompt(
        tmp_path, "self_instruct.jinja", "Make new tasks.\n{% for t in tasks %}\n- {{ t }}\n{% endfor %}\n"
    )
    prompts = load_prompts(folder)
    assert prompts["self_instruct"].origin == str(folder / "self_instruct.jinja")
    assert prompts["classification"] == load_prompts()["classification"]
    assert self_instruct_prompt(["a", "b"], prompts=prompts) == "Make new tasks.\n- a\n- b"
    assert classification_prompt("x", prompts=prompts) == classification_prompt("x")


@pytest.mark.parametrize(
    ("name", "body", "message"),
    [
        ("self_instruction.jinja", "{{ tasks }}", "no prompt is called 'self_instruction'"),
        ("classification.jinja", "Task: {{ instruction }", "does not compile"),
        ("classification.jinja", "Task: {{ instrucion }}", "'instrucion' is undefined"),
        ("classification.jinja", "Is it classification?", "leaves out instruction"),
        ("doc_qa.jinja", "{{ document }}", "leaves out n_pairs"),
        ("grounded_answer.jinja", "{{ passage }}", "leaves out instruction"),
        (
            "grounded_answer.jinja",
            "{% if passage %}{{ instruction }}: {{ passage }}{% endif %}",
            "rendered an empty text",
        ),
        (
            "grounded_answer.jinja",
            "{{ instruction }}{% if passage %}: {{ passage }}{% else %}{{ pasage }}{% endif %}",
            "'pasage' is undefined",
        ),
        ("classification.jinja", "{{ instruction.__class__.__mro__ }}", "refused by the sandbox"),
        ("self_instruct.jinja", "{{ tasks.append('x') }}{{ tasks }}", "refused by the sandbox"),
        ("classification.jinja", "   \n", "the prompt is empty"),
    ],
)
def test_bad_user_prompts_name_the_file(tmp_path, name, body, message):
    folder = user_prompt(tmp_path, name, body)
    with pytest.raises(ValueError, match=message) as info:
        load_prompts(folder)
    assert str(folder / name) in str(info.value)


def test_user_folder_errors(tmp_path):
    with pytest.raises(ValueError, match="not a folder"):
        load_prompts(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no .jinja files"):
        load_prompts(tmp_path / "empty")


def test_render_prompt_errors_name_the_prompt(tmp_path):
    with pytest.raises(ValueError, match="unknown prompt 'poem'"):
        render_prompt("poem")
    with pytest.raises(
        ValueError, match="templates/prompts/classification.jinja: .*'instruction' is undefined"
    ):
        render_prompt("classification")
    folder = user_prompt(
        tmp_path,
        "doc_qa.jinja",
        "{{ document }} {{ n_pairs }} {{ document.__class__ if n_pairs > 99 else '' }}",
    )
    prompts = load_prompts(folder)
    with pytest.raises(SecurityError, match="doc_qa.jinja"):
        render_prompt("doc_qa", prompts, document="{0}", n_pairs=100)
