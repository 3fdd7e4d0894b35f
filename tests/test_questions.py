"""Question detection, Q/A prefixes and title clean-up (transforms/questions.py; sentences: test_text.py)."""

from __future__ import annotations

import pytest

from transforms.questions import (
    compile_phrase,
    find_answer_marker,
    has_question_mark,
    is_interrogative_form,
    is_question,
    normalize_for_compare,
    split_qa_prefix,
    strip_discourse_opener,
    strip_numbering,
    strip_qa_prefix,
    strip_site_suffix,
)


@pytest.mark.parametrize(
    "text",
    [
        "What is a mutex?",
        "Does it work offline?",
        "How to install Python",
        "How much does shipping cost",
        "Can I return an item after 30 days",
        "Is there a free trial",
        "What's the difference between a list and a tuple",
        "Where to buy tickets",
        "Why is my build failing?\u201d",
    ],
)
def test_english_questions(text):
    assert is_question(text, "en")


@pytest.mark.parametrize(
    "text",
    [
        "What We Do",
        "Who We Are",
        "How It Works",
        "Why Choose Us",
        "How it works is simple.",
        "Contact us",
        "",
        "  ",
    ],
)
def test_english_labels_and_statements_are_not_questions(text):
    assert not is_question(text, "en")


@pytest.mark.parametrize(
    "text",
    [
        "为什么天空是蓝色的",
        "如何安装Python",
        "可以退货吗",
        "运费需要多少钱",
        "这是真的？",
        "怎么办",
        "是否支持退款",
    ],
)
def test_chinese_questions(text):
    assert is_question(text, "zh")


@pytest.mark.parametrize(
    "text",
    [
        "几乎所有人都同意",
        "无论如何都要去",
        "不管怎样都要坚持",
        "常见问题",
        "我们为什么这样做。",
        "什么都不用做",
    ],
)
def test_chinese_non_questions(text):
    assert not is_question(text, "zh")


def test_other_languages_only_count_the_question_mark():
    assert is_question("Qu'est-ce que c'est ?", "fr")
    assert not is_question("Was ist das", "de")
    assert not is_question("Can I help", "de")


def test_unknown_language_picks_rules_by_script():
    assert is_question("如何安装Python", "")
    assert is_question("How do I install Python", "")


def test_interrogative_form_ignores_the_mark():
    assert is_interrogative_form("Why does ice float?", "en")
    assert not is_interrogative_form("You did what?", "en")
    assert is_interrogative_form("这是为什么？", "zh")
    assert not is_interrogative_form("真的？", "zh")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Q: What is it?", ("question", "What is it?")),
        ("Q1. What is it?", ("question", "What is it?")),
        ("3. Question 2: Why?", ("question", "Why?")),
        ("[Q] Why?", ("question", "Why?")),
        ("问：可以退货吗？", ("question", "可以退货吗？")),
        ("问题1：怎么办？", ("question", "怎么办？")),
        ("【问】为什么", ("question", "为什么")),
        ("A: Yes, it is.", ("answer", "Yes, it is.")),
        ("Answer: Yes.", ("answer", "Yes.")),
        ("答：可以。", ("answer", "可以。")),
        ("回答:可以。", ("answer", "可以。")),
        ("A. Lincoln was president.", ("", "A. Lincoln was president.")),
        ("Quality matters.", ("", "Quality matters.")),
        ("Q:", ("", "Q:")),
    ],
)
def test_split_qa_prefix(text, expected):
    assert split_qa_prefix(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1. What is it?", "What is it?"),
        ("(2) What is it?", "What is it?"),
        ("10、为什么", "为什么"),
        ("（二）如何退款", "如何退款"),
        ("二、如何退款", "如何退款"),
        ("Q: What is it?", "What is it?"),
        ("3.5 mm jacks are common.", "3.5 mm jacks are common."),
        ("2019: a year in review", "2019: a year in review"),
    ],
)
def test_strip_qa_prefix(text, expected):
    assert strip_qa_prefix(text) == expected


def test_strip_numbering_keeps_unnumbered_text():
    assert strip_numbering("How to begin") == "How to begin"


def test_strip_discourse_opener():
    assert strip_discourse_opener("So why does bread go stale?") == "Why does bread go stale?"
    assert strip_discourse_opener("But, what now?") == "What now?"
    assert strip_discourse_opener("Some people ask why?") == "Some people ask why?"
    assert strip_discourse_opener("那么，为什么会这样？") == "为什么会这样？"
    assert strip_discourse_opener("那些人为什么不来？") == "那些人为什么不来？"


def test_find_answer_marker():
    text = "Q: Is it free? A: Yes."
    assert text[find_answer_marker(text) :] == "A: Yes."
    assert find_answer_marker("Is it free?\nAnswer: yes") > 0
    assert find_answer_marker("问：可以吗？答：可以。") == 6
    assert find_answer_marker("Q: Is plan A: the cheap one?") == -1


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("How do I undo a commit? - Stack Overflow", "How do I undo a commit?"),
        ("python - How do I read a file? - Stack Overflow", "python - How do I read a file?"),
        ("关系亲密的人之间要说「谢谢」吗？ - 知乎", "关系亲密的人之间要说「谢谢」吗？"),
        ("为什么天空是蓝色的 | 知乎", "为什么天空是蓝色的"),
        ("python怎么读取文件_百度知道", "python怎么读取文件"),
        ("(2 条消息) 如何评价这部电影 - 知乎", "如何评价这部电影"),
        ("Why? - Stack Overflow", "Why?"),
        ("what is my_var used for", "what is my_var used for"),
        ("How to Tie a Tie (with Pictures) - wikiHow", "How to Tie a Tie (with Pictures)"),
        ("Plain title", "Plain title"),
    ],
)
def test_strip_site_suffix(title, expected):
    assert strip_site_suffix(title) == expected


def test_compile_phrase():
    assert compile_phrase("{n} 个回答").match("3个回答")
    assert compile_phrase("{n} Answers").match("1,204 answers")
    assert not compile_phrase("Answer").match("Your Answer")
    assert compile_phrase("answered {any}").match("answered Jan 5 at 3:00")
    assert compile_phrase("How to {task}").match("How to Tie a Tie").group("task") == "Tie a Tie"
    step = compile_phrase("Step {n}", prefix=True)
    assert step.match("Step 12: Mix").group("n") == "12"
    assert not step.match("Steps to follow")
    assert compile_phrase("第{n}步", prefix=True).match("第三步：打开").group("n") == "三"


def test_compile_phrase_dates():
    date = compile_phrase("{date}")
    for text in ("Jul 9, 2024", "2025-02-17 21:04", "2019年9月9日", "9 July 2024", "Jan 5, 2019 at 10:30"):
        assert date.match(text), text
    assert not date.match("July was hot")
    assert compile_phrase("发表于{any}").match("发表于 2025-02-17 21:04")


@pytest.mark.parametrize(("question", "kind"), [
    ("Why does ice float?", "why"), ("How many moons does Mars have?", "quantity"), ("So, where did they land?", "where"),
    ("Is Mir still in orbit?", "yes_no"), ("Question: How do I reset it?", "how"), ("Name three rivers.", "other"),
    ("为什么冰会浮在水上？", "why"), ("和平号是什么时候发射的？", "when"), ("火星有几个卫星？", "quantity"),
    ("和平号还在轨道上吗？", "yes_no"), ("如何制作蛋糕？", "how"),
])
def test_question_kind_says_what_a_question_asks_for(question, kind):
    from transforms.questions import question_kind

    assert question_kind(question) == kind


def test_normalize_for_compare_keeps_lower_cased_letters_and_digits():
    assert normalize_for_compare("Why is it?") == normalize_for_compare("why  is_it") == "whyisit"
    assert normalize_for_compare("什么是 GDP？") == "什么是gdp"


def test_has_question_mark():
    assert has_question_mark("Why? Because.") and has_question_mark("为什么？因为。")
    assert not has_question_mark("No question here.")
