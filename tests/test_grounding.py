"""Model-written pairs held to their passage: transforms/synth/grounding.py."""

from __future__ import annotations

from transforms.synth.grounding import answer_rejection, content_units, question_answer_rejection

PASSAGE = ("The Mir space station was launched by the Soviet Union in 1986 and stayed in orbit until 2001. "
           "Cosmonauts lived aboard it for long missions and studied how the body adapts to weightlessness.")


def test_content_units_are_english_content_words_and_han_bigrams():
    assert content_units("The station was launched in 1986") == {"station", "launched", "1986"}
    assert content_units("和平号空间站") == {"和平", "平号", "号空", "空间", "间站"}


def test_an_answer_that_paraphrases_the_passage_is_kept_an_invented_one_is_not():
    assert answer_rejection("Mir was launched by the Soviet Union in 1986.", PASSAGE) is None
    assert answer_rejection("Goldfish swim using their fins and a small plastic ball.", PASSAGE) == "answer_off_passage"


def test_an_answer_in_another_language_than_its_instruction_is_dropped_a_translation_is_not_compared():
    assert answer_rejection("Yes, the passage is from the webpage.", "和平号空间站于1986年发射。",
                            "用一句话解释和平号。") == "answer_wrong_language"
    assert answer_rejection("和平号空间站于1986年由苏联发射。", PASSAGE, "把这段话翻译成中文。") is None


def test_doc_qa_questions_must_ask_about_the_passage_itself_not_about_the_document():
    good = ("When was the Mir space station launched?", "It was launched by the Soviet Union in 1986.")
    assert question_answer_rejection(*good, PASSAGE, "en") is None
    assert question_answer_rejection("Mir was launched in 1986.", good[1], PASSAGE, "en") == "not_a_question"
    assert question_answer_rejection("What does the passage say about Mir?", good[1], PASSAGE, "en") == \
        "question_about_the_document"
    assert question_answer_rejection("How do goldfish swim?", good[1], PASSAGE, "en") == "question_off_passage"
    assert question_answer_rejection("本文讲了什么？", "和平号", "和平号空间站于1986年发射。", "zh") == \
        "question_about_the_document"
