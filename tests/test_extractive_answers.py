import collections
import gzip
import json

import pytest

from tests.conftest import WEBDATA
from tests.test_slot_fillers import EN_DOC, ZH_DOC
from transforms.synth.extractive_answers import (
    METHODS,
    REASONS,
    SENTIMENT_LABELS,
    answer_extractively,
    answer_with_reason,
    requested_count,
)
from transforms.synth.instruction_templates import EXTRACTIVE_ANSWERS, load_instruction_templates
from transforms.synth.slot_fillers import FilledInstruction, fill_from_document

TEMPLATES = load_instruction_templates()

PASSAGE_EN = (
    "Marie Curie was a physicist who worked in Paris. Dr. Pierre Curie, her husband, studied crystals at the "
    "University of Paris. Their daughter Irene later won a Nobel Prize too. They travelled to Poland and to "
    "Austria for their research."
)
PASSAGE_ZH = "梅尔文·卡尔文研究了光合作用。王教授在北京大学讲授植物学。李明出生于浙江省杭州市，后来加入了华为技术有限公司。"


def made(method, grounding, lang="en", task_type="extract", instruction="Do it.", **slots):
    return FilledInstruction(
        template_id="test", task_type=task_type, lang=lang, instruction=instruction, slots=slots,
        grounding=grounding, extractive_answer=method,
    )  # fmt: skip


def test_every_method_a_template_may_name_is_implemented():
    assert set(METHODS) == set(EXTRACTIVE_ANSWERS)


# --- each method ---------------------------------------------------------------------


def test_definition_quotes_the_defining_sentence():
    sentence = "Chlorophyll is a green pigment that absorbs light energy."
    assert answer_extractively(made("definition", sentence, concept="chlorophyll")) == sentence
    assert answer_extractively(
        made("definition", "《红楼梦》是一部清代的长篇小说。", "zh", concept="《红楼梦》")
    ) == ("《红楼梦》是一部清代的长篇小说。")
    person = "Marie Curie was a Polish physicist who studied radioactivity."
    assert answer_extractively(made("definition", person, task_type="answer", person="Marie Curie")) == person
    assert answer_with_reason(made("definition", "Curie worked in Paris for many years.", person="Curie")) == (
        None, "no_definition_in_grounding",
    )  # fmt: skip


def test_definitions_need_both_terms_defined():
    grounding = ("Photosynthesis is the process by which plants make sugar from light. "
                 "Cellular respiration is the process by which cells break sugar down.")  # fmt: skip
    answer = answer_extractively(made("definitions", grounding, task_type="compare", a="photosynthesis",
                                      b="cellular respiration"))  # fmt: skip
    assert answer == grounding
    assert answer_with_reason(made("definitions", grounding, a="photosynthesis", b="fermentation"))[1] == (
        "no_definition_in_grounding"
    )


def test_lead_is_the_opening_of_the_passage():
    passage = ("Honeybees talk with a dance. A bee that finds flowers returns to the hive. It runs in a figure-eight. "
               "The angle of the run shows the direction. Its length shows the distance.")  # fmt: skip
    summary = answer_extractively(made("lead", passage, task_type="summarize", instruction="Summarize: " + passage,
                                       passage=passage))  # fmt: skip
    assert summary == "Honeybees talk with a dance. A bee that finds flowers returns to the hive."
    one = made("lead", passage, instruction="Sum up in one sentence:\n\n" + passage, passage=passage)
    assert requested_count(one) == 1 and answer_extractively(one) == "Honeybees talk with a dance."
    zh_passage = "光合作用发生在叶片中。叶绿素吸收光能。植物因此能制造有机物。这一过程还释放氧气。"
    zh = made("lead", zh_passage, "zh", instruction="用一句话概括这段内容：" + zh_passage, passage=zh_passage)
    assert answer_extractively(zh) == "光合作用发生在叶片中。"
    short = "One sentence only."
    assert answer_with_reason(made("lead", short, passage=short)) == (None, "passage_too_short_to_summarize")
    long_first = "A" * 300 + ". Short end."
    assert (
        answer_with_reason(made("lead", long_first, passage=long_first))[1]
        == "passage_too_short_to_summarize"
    )


def test_names_by_kind():
    assert (
        answer_extractively(made("people", PASSAGE_EN, passage=PASSAGE_EN)) == "- Marie Curie\n- Pierre Curie"
    )
    assert answer_extractively(made("places", PASSAGE_EN, passage=PASSAGE_EN)) == "- Poland\n- Austria"
    assert (
        answer_extractively(made("organizations", PASSAGE_EN, passage=PASSAGE_EN))
        == "- the University of Paris"
    )
    assert answer_extractively(made("entities", PASSAGE_EN, passage=PASSAGE_EN)) == (
        "- Marie Curie (person)\n- Pierre Curie (person)\n- the University of Paris (organization)\n"
        "- Poland (place)\n- Austria (place)"
    )
    assert (
        answer_extractively(made("people", PASSAGE_ZH, "zh", passage=PASSAGE_ZH))
        == "- 梅尔文·卡尔文\n- 王教授\n- 李明"
    )
    assert answer_extractively(made("entities", PASSAGE_ZH, "zh", passage=PASSAGE_ZH)).endswith(
        "- 华为技术有限公司（机构）"
    )
    nobody = "The river rises in spring and falls in autumn."
    assert answer_with_reason(made("people", nobody, passage=nobody)) == (None, "no_names_in_grounding")


def test_defined_terms():
    grounding = (
        "A volcano is an opening in the crust of a planet. Magma is the molten rock below the surface."
    )
    assert answer_extractively(made("defined_terms", grounding, passage=grounding)) == "- volcano\n- Magma"
    assert answer_with_reason(made("defined_terms", "Nothing is defined here at all.", passage="x"))[1] == (
        "no_defined_terms_in_grounding"
    )


def test_examples_honour_the_number_asked_for():
    grounding = "Many organisms such as plants, fungi and bacteria depend on it."
    some = made("examples", grounding, task_type="list", instruction="Give some examples of organisms.",
                category="organisms")  # fmt: skip
    assert answer_extractively(some) == "- plants\n- fungi\n- bacteria"
    two = made("examples", grounding, instruction="Name two organisms.", category="organisms")
    assert answer_extractively(two) == "- plants\n- fungi"
    four = made("examples", grounding, instruction="Give four examples of organisms.", category="organisms")
    assert answer_with_reason(four) == (None, "too_few_examples")
    zh = made(
        "examples",
        "常见的农作物包括水稻、小麦和玉米。",
        "zh",
        instruction="列举三种农作物。",
        category="农作物",
    )
    assert answer_extractively(zh) == "- 水稻\n- 小麦\n- 玉米"
    other = made("examples", grounding, instruction="Give some examples of minerals.", category="minerals")
    assert answer_with_reason(other) == (None, "too_few_examples")


def test_sentiment_labels_by_language():
    assert answer_extractively(made("sentiment", "I love it, highly recommended!", review="x")) == "positive"
    assert answer_extractively(made("sentiment", "Rude staff and a dirty room.", review="x")) == "negative"
    assert (
        answer_extractively(made("sentiment", "这款台灯我非常喜欢！", "zh", review="x"))
        == SENTIMENT_LABELS["zh"][0]
    )
    assert answer_extractively(made("sentiment", "物流太慢了，很失望。", "zh", review="x")) == "负面"
    assert answer_with_reason(made("sentiment", "Great food but awful service.", review="x")) == (
        None, "no_clear_sentiment",
    )  # fmt: skip


def test_what_cannot_be_answered_says_why():
    assert answer_with_reason(made("", "text", task_type="translate")) == (None, "translate_needs_a_model")
    assert answer_with_reason(
        made("definition", "Chlorophyll is a pigment.", task_type="translate", concept="c")
    )[1] == ("translate_needs_a_model")
    assert answer_with_reason(made("", "text", task_type="write")) == (None, "no_extractive_method")
    assert answer_with_reason(made("telepathy", "text")) == (None, "unknown_extractive_method")
    assert answer_with_reason(made("definition", "  ", concept="x")) == (None, "no_grounding")


@pytest.mark.parametrize(
    ("instruction", "lang", "slots", "count"),
    [
        ("Give three examples of fruits.", "en", {"category": "fruits"}, 3),
        ("Give some examples of fruits.", "en", {"category": "fruits"}, None),
        (
            "Name a few things about Area 51.",
            "en",
            {"concept": "Area 51"},
            None,
        ),  # numbers in values do not count
        (
            "Sum up the following passage in one sentence:\n\nTwo cats sat.",
            "en",
            {"passage": "Two cats sat."},
            1,
        ),
        ("列举三种农作物。", "zh", {"category": "农作物"}, 3),
        ("用一句话概括这段内容：三个人走了。", "zh", {"passage": "三个人走了。"}, 1),
        ("请举出几个水果的例子。", "zh", {"category": "水果"}, None),
    ],
)
def test_requested_count(instruction, lang, slots, count):
    assert requested_count(made("examples", "g", lang, instruction=instruction, **slots)) == count


# --- from documents ---------------------------------------------------------------------


@pytest.mark.parametrize(("text", "lang"), [(EN_DOC, "en"), (ZH_DOC, "zh")])
def test_template_only_mode_answers_from_the_page(text, lang):
    filled = fill_from_document(TEMPLATES, text, lang, seed=11, key="doc", limit=30, answerable_only=True)
    results = [(f, *answer_with_reason(f)) for f in filled]
    answered = [(f, answer) for f, answer, _ in results if answer]
    assert len(filled) >= 10 and len(answered) >= 0.8 * len(filled), [
        (f.template_id, r) for f, a, r in results if not a
    ]
    assert {reason for _, answer, reason in results if not answer} <= set(REASONS)
    assert len({f.task_type for f, _ in answered}) >= 6
    for f, answer in answered:
        if f.extractive_answer in ("definition", "definitions", "lead"):
            for piece in answer.replace("。", "。\n").replace(". ", ".\n").splitlines():
                assert piece.strip() in text, (f.template_id, piece)  # only ever what the page says


def test_model_mode_instructions_mostly_need_a_model():
    filled = fill_from_document(TEMPLATES, EN_DOC, "en", seed=11, key="doc", limit=40)
    reasons = collections.Counter(answer_with_reason(f)[1] for f in filled)
    assert reasons["translate_needs_a_model"] >= 1 and reasons["no_extractive_method"] >= 1


def test_real_pages_give_extractive_answers(webdata):
    folder = WEBDATA / "text" / "dolma-ccnet-cc_en_head"
    documents = []
    for path in sorted(folder.glob("*.jsonl.gz")):
        with gzip.open(path, "rt", encoding="utf-8") as lines:
            documents.extend(json.loads(line)["text"] for line in lines)
    assert len(documents) >= 10
    answered = reasons = 0
    counts = collections.Counter()
    for index, text in enumerate(documents):
        for filled in fill_from_document(TEMPLATES, text, "en", 1, f"doc-{index}", 8, answerable_only=True):
            answer, reason = answer_with_reason(filled)
            answered += answer is not None
            reasons += answer is None
            counts[filled.task_type] += answer is not None
            assert reason in REASONS or answer
    assert answered >= 20 and answered > reasons, (answered, reasons, counts)
    assert len([t for t, n in counts.items() if n]) >= 4, counts
