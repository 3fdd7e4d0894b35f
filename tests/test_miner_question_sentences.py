"""Question sentences in running text (transforms/mine/miners/question_sentences.py), English and Chinese."""

from __future__ import annotations

from transforms.mine.blocks import HEADING, LIST_ITEM, PARAGRAPH, Block, Page
from transforms.mine.miners.question_sentences import (
    CONFIDENCE_INTERROGATIVE,
    CONFIDENCE_MARK_ONLY,
    MAX_PER_PAGE,
    mine_question_sentences,
)
from transforms.records import KIND_QUESTION_SENTENCE


def p(text: str) -> Block:
    return Block(PARAGRAPH, text)


def page(*blocks: Block, lang: str = "en") -> Page:
    return Page(url="https://example.com/article", blocks=list(blocks), lang=lang)


def pairs(pg: Page) -> list[tuple[str, str]]:
    return [(c.instruction, c.output) for c in mine_question_sentences(pg)]


def test_question_answered_in_the_same_paragraph():
    pg = page(
        p("Ice is odd. Why does ice float on water? It is about nine percent less dense than liquid water.")
    )
    (found,) = mine_question_sentences(pg)
    assert (found.instruction, found.output) == (
        "Why does ice float on water?",
        "It is about nine percent less dense than liquid water.",
    )
    assert found.confidence == CONFIDENCE_INTERROGATIVE
    assert (found.kind, found.miner) == (KIND_QUESTION_SENTENCE, "question_sentences")
    assert 0.3 <= found.confidence <= 0.5


def test_question_ending_its_paragraph_is_answered_by_the_next():
    pg = page(
        p("Most homes have a router. But what does a router actually do?"),
        p("It forwards packets between your home network and the internet. It also assigns local addresses."),
    )
    assert pairs(pg) == [
        (
            "What does a router actually do?",
            "It forwards packets between your home network and the internet. It also assigns local addresses.",
        )
    ]


def test_answer_stops_at_the_next_question_and_after_three_sentences():
    pg = page(
        p(
            "How do vaccines train the immune system? They show it a harmless piece of a germ. "
            "The body makes antibodies. Memory cells remember the shape. Later exposure is fought faster."
        )
    )
    ((_, answer),) = pairs(pg)
    assert (
        answer
        == "They show it a harmless piece of a germ. The body makes antibodies. Memory cells remember the shape."
    )


def test_mark_only_question_scores_lower():
    pg = page(p("Running a marathon next month? Start tapering your mileage two weeks before the race day."))
    (found,) = mine_question_sentences(pg)
    assert found.confidence == CONFIDENCE_MARK_ONLY < CONFIDENCE_INTERROGATIVE


def test_rhetorical_trivia_is_skipped():
    pg = page(
        p("Why? Because the sky is blue and the grass is green every single day."),  # question too short
        p("Is this really the best option we have? Maybe."),  # answer too short
        p("Do you know what happens next? Do you really want to know what happens?"),  # answer is a question
        p('"Where are you going tonight?" she asked him quietly at the door of the house.'),  # dialogue
        p("(See how important good communication is?) So he implements a better fix of his own."),  # aside
    )
    assert pairs(pg) == []


def test_question_ending_paragraph_before_a_non_paragraph_gives_nothing():
    pg = page(
        p("What should you pack for the trip?"), Block(LIST_ITEM, "A warm jacket and good boots", level=1)
    )
    assert pairs(pg) == []


def test_headings_and_marked_faq_paragraphs_are_not_mined_here():
    pg = page(
        Block(
            HEADING,
            "Why does ice float on water? It is less dense than water, by about nine percent.",
            level=2,
        ),
        p("Q: Why does ice float on water? A: It is less dense than water, by about nine percent."),
    )
    assert pairs(pg) == []


def test_chinese_question_sentence():
    pg = page(p("冰是一种常见的固体。为什么冰会浮在水面上？因为冰的密度比液态水小大约百分之九。"), lang="zh")
    (found,) = mine_question_sentences(pg)
    assert (found.instruction, found.output) == (
        "为什么冰会浮在水面上？",
        "因为冰的密度比液态水小大约百分之九。",
    )
    assert found.confidence == CONFIDENCE_INTERROGATIVE


def test_chinese_question_answered_by_next_paragraph():
    pg = page(
        p("那么，债券市场存在泡沫吗？"),
        p("估值确实过高，因此这可以被视为泡沫。负利率从长期来看不可持续。"),
        lang="zh",
    )
    assert pairs(pg) == [
        ("债券市场存在泡沫吗？", "估值确实过高，因此这可以被视为泡沫。负利率从长期来看不可持续。")
    ]


def test_chinese_trivia_and_misencoded_marks_are_skipped():
    pg = page(
        p("真的吗？当然是真的。"),  # too short on both sides
        p("NASA发言人斯蒂芬妮?席尔霍尔茨表示，我们研究了太空中宇航员身体的各种变化。"),  # "?" for "·"
        p("猫咪突然不爱吃饭，请问这是什么原因，需要去医院吗？"),
        p("发表于 2025-02-17 21:04"),  # a timestamp, not an answer
        lang="zh",
    )
    assert pairs(pg) == []


def test_at_most_five_per_page_preferring_interrogative_questions_in_page_order():
    mark_only = [
        p(f"Feeling tired on day {i}? Sleep eight hours and drink water every morning.") for i in range(3)
    ]
    asked = [
        p(f"Why does step {i} matter so much? It prepares the ground for everything that follows.")
        for i in range(6)
    ]
    found = list(mine_question_sentences(page(*mark_only, *asked)))
    assert len(found) == MAX_PER_PAGE == 5
    assert [c.instruction for c in found] == [f"Why does step {i} matter so much?" for i in range(5)]
