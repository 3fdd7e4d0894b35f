import collections
import time

import pytest

from transforms.synth.instruction_templates import SLOT_TYPES, TEXT_SLOT_TYPES, load_instruction_templates
from transforms.synth.slot_fillers import (
    PASSAGE_CHARS,
    Category,
    Definition,
    FilledInstruction,
    SlotValue,
    categories,
    concepts,
    definition_sentences,
    entities,
    fill_from_document,
    noun_phrases,
    passages,
    reviews,
    sentences,
    sentiment_counts,
    sentiment_polarity,
    slot_values,
)

TEMPLATES = load_instruction_templates()

EN_DOC = """Photosynthesis

Photosynthesis is the process by which green plants use sunlight to turn carbon dioxide and water into sugar. It takes place mainly in the leaves, inside small structures called chloroplasts. Chlorophyll is a green pigment that absorbs light energy. Without photosynthesis, there would be almost no oxygen in the air we breathe.

Cellular respiration is the process by which cells break down sugar to release energy. Many organisms such as plants, fungi and bacteria depend on it. Scientists have studied both processes for more than two centuries, and the water cycle is closely linked to them.

In 1779, the Dutch scientist Jan Ingenhousz showed that light is essential for plants to produce oxygen. Dr. Melvin Calvin later mapped the chemical steps at the University of California in Berkeley, California. He travelled to France and Japan to present the work. The Royal Society published his results.

There are several types of plastids: chloroplasts, chromoplasts and leucoplasts.

I bought this plant lamp last month and I love it!
The delivery was slow and the box arrived broken, a terrible experience.
The food was great but the service was awful.
"""

ZH_DOC = """光合作用

光合作用是指绿色植物利用光能，把二氧化碳和水转化成储存能量的有机物，并释放出氧气的过程。叶绿素是一种存在于叶绿体中的绿色色素。所谓呼吸作用，就是生物体把有机物分解并释放能量的过程。这是一个重要的问题。

常见的农作物包括水稻、小麦和玉米。植物需要各种营养元素。1954年，美国科学家梅尔文·卡尔文在加州大学伯克利分校研究了光合作用的暗反应。王教授在北京大学讲授植物学，他说光合作用非常重要。李明出生于浙江省杭州市，后来加入了华为技术有限公司。

《植物生理学》是一本经典教材。很多学生把“碳循环”当作入门概念。

这款台灯我非常喜欢，光线柔和，很好用！
物流太慢了，收到的时候包装还破损了，很失望。
菜的味道不错，但是服务态度恶劣。
"""


def terms(text, lang):
    return [d.term for d in definition_sentences(text, lang)]


def names(text, lang, kind=None):
    return [e.name for e in entities(text, lang) if kind is None or e.kind == kind]


# --- definitions ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sentence", "term"),
    [
        ("Photosynthesis is the process by which plants make sugar from light.", "Photosynthesis"),
        ("A volcano is an opening in the crust of a planet.", "volcano"),
        ("An atlas is a collection of maps bound together.", "atlas"),
        (
            "The Great Wall of China is a series of fortifications in northern China.",
            "the Great Wall of China",
        ),
        ("Marie Curie was a Polish physicist who studied radioactivity.", "Marie Curie"),
        ("Inflation refers to a general rise in prices over time.", "Inflation"),
        ("Entropy is defined as a measure of disorder in a system.", "Entropy"),
        ("Ubuntu means humanity towards others in Zulu.", "Ubuntu"),
        ("Machine learning is a field of study that lets computers learn from data.", "machine learning"),
        (
            "The World Health Organization (WHO) is an agency of the United Nations.",
            "the World Health Organization",
        ),
        ("Graphite, also known as plumbago, is a crystalline form of carbon.", "Graphite"),
        ("- Python is a programming language that reads like plain English.", "Python"),
    ],
)
def test_english_definitions(sentence, term):
    (found,) = definition_sentences(sentence, "en")
    assert found == Definition(term=term, definition=found.definition, sentence=sentence)
    assert len(found.definition.split()) >= 3


@pytest.mark.parametrize(
    "sentence",
    [
        "It is a long way to the station.",  # pronoun
        "This is a great day for science.",
        "Today is a good day to plant tomatoes.",  # clause opener
        "The problem is a lack of sleep.",  # judgement word
        "The first club was the Edinburgh Skating Club.",  # ranking
        "The best way to learn is the one you enjoy.",
        "Is photosynthesis a process?",  # question
        "Photosynthesis is important for all life.",  # no a/an/the after "is"
        "Ice and snow are a fact of winter in most of the world.",
        "The argument is a waste of time.",
        "He was a teacher for many years.",
    ],
)
def test_english_non_definitions(sentence):
    assert definition_sentences(sentence, "en") == []


def test_a_sentence_initial_term_takes_the_case_the_page_uses():
    text = "Photosynthesis is the process by which plants make sugar. Without photosynthesis nothing grows."
    assert terms(text, "en") == ["photosynthesis"]
    assert terms("Python is a language with a large standard library.", "en") == ["Python"]


@pytest.mark.parametrize(
    ("sentence", "term"),
    [
        ("光合作用是指绿色植物利用光能制造有机物的过程。", "光合作用"),
        ("区块链指的是一种去中心化的分布式账本技术。", "区块链"),
        ("所谓通货膨胀，就是物价水平持续上涨的现象。", "通货膨胀"),
        ("所谓边际效用，是指每增加一单位消费所带来的满足感的变化。", "边际效用"),
        ("叶绿素是一种存在于叶绿体中的绿色色素。", "叶绿素"),
        ("黄河是中国第二长的河流。", "黄河"),
        ("《红楼梦》是一部清代的长篇小说。", "《红楼梦》"),
        ("Python是一种广泛使用的编程语言。", "Python"),
        ("人工智能（AI）是指让机器模拟人类智能的技术。", "人工智能"),
    ],
)
def test_chinese_definitions(sentence, term):
    (found,) = definition_sentences(sentence, "zh")
    assert found.term == term and found.sentence == sentence


@pytest.mark.parametrize(
    "sentence",
    [
        "这是一个重要的问题。",
        "他是一名医生。",
        "今天是星期一的早上。",
        "原因是他没有按时完成作业的缘故。",
        "知识产权也是近些年来两会的热门话题。",
        "光合作用是很重要。",  # neither a classifier nor 的 + noun
        "贝尔曼公式不是唯一的。",
        "什么是光合作用？",
        "男朋友会是最方便表达的对象。",
    ],
)
def test_chinese_non_definitions(sentence):
    assert definition_sentences(sentence, "zh") == []


def test_definitions_of_the_fixtures_in_order():
    assert terms(EN_DOC, "en") == ["photosynthesis", "Chlorophyll", "cellular respiration"]
    assert terms(ZH_DOC, "zh") == ["光合作用", "叶绿素", "呼吸作用", "《植物生理学》"]
    assert definition_sentences(EN_DOC, "fr") == []


# --- concepts and noun phrases -----------------------------------------------------------


def test_concepts_put_defined_terms_first_and_leave_people_out():
    en = concepts(EN_DOC, "en")
    assert [c.value for c in en[:3]] == ["photosynthesis", "Chlorophyll", "cellular respiration"]
    assert {c.cue for c in en[:3]} == {"definition"}
    assert en[0].source_sentence.startswith("Photosynthesis is the process")
    capitalised = [c.value for c in en if c.cue == "capitalised"]
    assert "the Royal Society" in capitalised and "the University of California" in capitalised
    assert not {"Jan Ingenhousz", "Melvin Calvin"} & set(capitalised)


def test_chinese_concepts_include_titles_and_quoted_terms():
    zh = {c.value: c.cue for c in concepts(ZH_DOC, "zh")}
    assert zh["光合作用"] == "definition"
    assert zh["《植物生理学》"] == "definition"
    assert zh["碳循环"] == "quoted"


def test_title_case_headings_give_no_names():
    assert concepts("How To Bake Bread At Home In Ten Easy Steps", "en") == []
    assert entities("How To Bake Bread At Home In Ten Easy Steps", "en") == []


def test_english_noun_phrases_are_phrases_not_clauses():
    text = ("The water cycle is driven by the sun. We measured the water cycle again. "
            "In spring the young plant grows fast. The team won the game.")  # fmt: skip
    found = [v.value for v in noun_phrases(text, "en")]
    assert "water cycle" in found
    assert not {"young plant grows", "plant grows", "team won", "young plant grows fast"} & set(found)


def test_chinese_noun_phrases_recur():
    found = [v.value for v in noun_phrases(ZH_DOC, "zh")]
    assert found[:4] == ["光合作用", "叶绿素", "呼吸作用", "《植物生理学》"]
    assert "重要" not in found


# --- entities ----------------------------------------------------------------------------


def test_english_entities_by_cue():
    found = {e.name: e.kind for e in entities(EN_DOC, "en")}
    assert found["Jan Ingenhousz"] == "person"  # "the Dutch scientist Jan Ingenhousz"
    assert found["Melvin Calvin"] == "person"  # "Dr."
    assert found["the University of California"] == "organization"
    assert found["the Royal Society"] == "organization"
    assert found["France"] == found["Japan"] == "place"  # countries
    assert found["Berkeley"] == "place"  # "in Berkeley, California"
    assert "Calvin" not in found and "The Royal Society" not in found


@pytest.mark.parametrize(
    ("sentence", "name", "kind"),
    [
        ("Yesterday Mr. Smith opened the shop.", "Mr. Smith", "person"),
        ("President Abraham Lincoln gave a speech.", "Abraham Lincoln", "person"),
        ("The poem was written by Emily Dickinson in her room.", "Emily Dickinson", "person"),
        ("After the war Grace Hopper said that ships are safe in harbour.", "Grace Hopper", "person"),
        ("We hiked along the Colorado River for a week.", "the Colorado River", "place"),
        ("Marie Curie was a Polish physicist and chemist.", "Marie Curie", "person"),
        ("She grew up in the city of Lyon before moving abroad.", "Lyon", "place"),
        ("They met at the Natural History Museum on Sunday.", "the Natural History Museum", "organization"),
        ("He studied at Stanford University for four years.", "Stanford University", "organization"),
    ],
)
def test_english_entity_cues(sentence, name, kind):
    assert {e.name: e.kind for e in entities(sentence, "en")}.get(name) == kind


def test_a_surname_named_as_a_person_makes_the_full_name_a_person():
    text = "A passenger, Barbara Olson, called her husband. Later Olson said that the plane had turned."
    assert [(e.name, e.kind) for e in entities(text, "en")] == [("Barbara Olson", "person")]
    assert names("Marie Curie won twice. Curie said that science is beautiful.", "en") == ["Marie Curie"]


def test_a_single_weak_place_cue_is_not_enough():
    once = "The actors performed in Measure for Measure last night."
    assert names(once, "en", "place") == []
    twice = "We lived in Arles for a year. The market in Arles is famous."
    assert names(twice, "en", "place") == ["Arles"]
    assert names("They wrote to John Judge about it.", "en", "place") == []
    assert names("Governor of Bahia visited us.", "en", "person") == []


def test_chinese_entities_by_suffix_title_and_transliteration():
    found = {e.name: e.kind for e in entities(ZH_DOC, "zh")}
    assert found == {
        "美国": "place", "梅尔文·卡尔文": "person", "加州大学": "organization", "王教授": "person",
        "北京大学": "organization", "李明": "person", "浙江省": "place", "杭州市": "place",
        "华为技术有限公司": "organization",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("sentence", "expected"),
    [
        ("他毕业于清华大学和北京大学。", {"清华大学": "organization", "北京大学": "organization"}),
        ("我们在上海市浦东新区见面。", {"上海市": "place"}),
        ("数学家王小明教授讲了一堂课。", {"王小明": "person"}),
        ("鲁迅生于浙江绍兴。", {"鲁迅": "person"}),
        ("物理学家阿尔伯特·爱因斯坦提出了相对论。", {"阿尔伯特·爱因斯坦": "person"}),
        ("中华人民共和国成立于1949年。", {"中华人民共和国": "place"}),
        ("联合国总部设在纽约。", {"联合国": "organization"}),
    ],
)
def test_chinese_entity_cues(sentence, expected):
    assert {e.name: e.kind for e in entities(sentence, "zh")} == expected


@pytest.mark.parametrize(
    "sentence",
    [
        "条件断点可以节省很多时间。",  # 节省 is a verb
        "债券市场的波动很大。",  # 市场 is a market
        "全国各地的游客都来了。",
        "发展中国家的经济增长很快。",
        "做人要理性·果断·专注·淡定。",  # "·" separating words
        "这家科技公司刚刚上市。",  # a kind of company, not a name
        "他是荣誉教授。",
    ],
)
def test_chinese_entity_negatives(sentence):
    assert entities(sentence, "zh") == []


# --- categories ------------------------------------------------------------------------


def test_english_categories():
    found = {c.name: c.examples for c in categories(EN_DOC, "en")}
    assert found == {
        "organisms": ("plants", "fungi", "bacteria"),
        "plastids": ("chloroplasts", "chromoplasts", "leucoplasts"),
    }
    text = ("Renewable energy sources, such as wind, solar power and hydropower, are growing. "
            "A language such as Python is easy. There are many kinds of clouds.")  # fmt: skip
    assert categories(text, "en") == [
        Category(
            "renewable energy sources", ("wind", "solar power", "hydropower"), text.split(". ")[0] + "."
        ),
        Category("clouds", (), "There are many kinds of clouds."),
    ]


def test_chinese_categories():
    found = {c.name: c.examples for c in categories(ZH_DOC, "zh")}
    assert found == {"农作物": ("水稻", "小麦", "玉米"), "营养元素": ()}
    assert categories("苹果、香蕉、橙子等水果富含维生素。", "zh") == []  # "等水果富含…" has no clear end
    assert [(c.name, c.examples) for c in categories("我买了苹果、香蕉、橙子等水果。", "zh")] == [
        ("水果", ("苹果", "香蕉", "橙子"))
    ]
    assert categories("他有一个哥哥。", "zh") == []


# --- passages, sentences, reviews ---------------------------------------------------------------


def test_passages_are_paragraph_sized():
    found = passages(EN_DOC, "en")
    assert [p[:30] for p in found] == ["Photosynthesis is the process ", "Cellular respiration is the pr",
                                       "In 1779, the Dutch scientist J"]  # fmt: skip
    low, high = PASSAGE_CHARS["en"]
    assert all(low <= len(p) <= high for p in found)
    long_paragraph = " ".join(
        f"Sentence number {i} says something about the topic at hand." for i in range(60)
    )
    chunks = passages(long_paragraph, "en", min_chars=100, max_chars=400)
    assert len(chunks) > 5 and all(100 <= len(c) <= 400 for c in chunks)
    assert passages("A heading without a full stop\n\nShort. Lines.", "en") == []


def test_hard_wrapped_paragraphs_are_joined():
    text = ("The lighthouse stood on a rock far from the shore, and the keeper\n"
            "lived there alone for most of the year. Ships passed by at night,\n"
            "guided by its light, and in the morning the keeper wrote them down.\n\n"
            "Next paragraph.")  # fmt: skip
    (found,) = passages(text, "en", min_chars=100)
    assert "keeper lived there" in found and "\n" not in found


def test_chinese_passages_use_chinese_bounds():
    found = passages(ZH_DOC, "zh")
    assert len(found) == 2 and all(len(p) >= PASSAGE_CHARS["zh"][0] for p in found)


def test_sentences_are_statements_of_moderate_length():
    found = sentences(
        EN_DOC + "\nWhat is it? See https://example.org for more about the big topic here.", "en"
    )
    assert "Chlorophyll is a green pigment that absorbs light energy." in found
    assert not [s for s in found if s.endswith("?") or "http" in s or len(s) < 40]
    assert "叶绿素是一种存在于叶绿体中的绿色色素。" in sentences(ZH_DOC, "zh")


def test_reviews_are_opinionated_and_one_sided():
    assert reviews(EN_DOC, "en") == [
        "I bought this plant lamp last month and I love it!",
        "The delivery was slow and the box arrived broken, a terrible experience.",
    ]
    assert reviews(ZH_DOC, "zh") == [
        "这款台灯我非常喜欢，光线柔和，很好用！",
        "物流太慢了，收到的时候包装还破损了，很失望。",
    ]
    assert reviews("Good soil helps plants grow.", "en") == []  # a cue word, but no opinion


@pytest.mark.parametrize(
    ("text", "lang", "polarity"),
    [
        ("I love it, highly recommended!", "en", 1),
        ("The staff were rude and the room was dirty.", "en", -1),
        ("The food was not good at all.", "en", -1),
        ("It wasn't bad.", "en", 1),
        ("Great food but awful service.", "en", 0),
        ("The train leaves at seven.", "en", 0),
        ("这家店的菜很好吃，服务也周到。", "zh", 1),
        ("质量太差了，很失望。", "zh", -1),
        ("味道不错。", "zh", 1),
        ("味道不好。", "zh", -1),
        ("我不太满意。", "zh", -1),
        ("好像要下雨了。", "zh", 0),
        ("不但好吃，而且便宜。", "zh", 1),
    ],
)
def test_sentiment_polarity(text, lang, polarity):
    assert sentiment_polarity(text, lang) == polarity


def test_sentiment_counts():
    assert sentiment_counts("Great food but awful service.", "en") == (1, 1)
    assert sentiment_counts("菜的味道不错，但是服务态度恶劣。", "zh") == (1, 1)


# --- slot values -------------------------------------------------------------------------


def test_slot_values_cover_every_slot_type():
    for text, lang in ((EN_DOC, "en"), (ZH_DOC, "zh")):
        values = slot_values(text, lang)
        assert set(values) == set(SLOT_TYPES)
        empty = [slot_type for slot_type, found in values.items() if not found]
        assert empty == [], (lang, empty)
        assert all(isinstance(v, SlotValue) and v.value for found in values.values() for v in found)


def test_slot_value_sources():
    values = slot_values(EN_DOC, "en")
    assert [v.value for v in values["language"]][:3] == ["French", "Spanish", "German"]
    assert "English" not in [v.value for v in values["language"]]
    assert "英语" in [v.value for v in slot_values(ZH_DOC, "zh")["language"]]
    assert [v.value for v in values["country"]] == ["France", "Japan"]
    for slot_type in TEXT_SLOT_TYPES:
        assert all(v.source_sentence == v.value for v in values[slot_type])
    person_text = "Marie Curie was a Polish physicist who studied radioactivity. Later Marie Curie said that science is beautiful."
    (person,) = slot_values(person_text, "en")["person"]
    assert person.source_sentence.startswith("Marie Curie was a Polish physicist")


def test_other_languages_get_passages_and_sentences_only():
    text = ("La photosynthèse est le processus par lequel les plantes vertes utilisent la lumière du soleil. "
            "Elle a lieu surtout dans les feuilles des plantes. Sans elle, il n'y aurait presque pas "
            "d'oxygène dans l'air que nous respirons chaque jour de notre vie.")  # fmt: skip
    values = slot_values(text, "fr")
    assert values["passage"] and values["sentence"]
    assert not any(values[t] for t in SLOT_TYPES if t not in ("passage", "sentence"))


def test_invisible_characters_are_dropped_from_values():
    values = slot_values("很多人读过《\u200b\u200b红楼梦\u200b》这本书。", "zh")
    assert [v.value for v in values["concept"]] == ["《红楼梦》"]


# --- filling templates from a document --------------------------------------------------------------


def test_fill_from_document_is_deterministic_and_varied():
    first = fill_from_document(TEMPLATES, EN_DOC, "en", seed=3, key="doc-1", limit=10)
    assert first == fill_from_document(TEMPLATES, EN_DOC, "en", seed=3, key="doc-1", limit=10)
    assert first != fill_from_document(TEMPLATES, EN_DOC, "en", seed=3, key="doc-2", limit=10)
    assert len(first) == 10
    assert len({f.task_type for f in first}) == 10  # one of each type before any repeats
    assert len({f.instruction for f in first}) == 10
    assert all(isinstance(f, FilledInstruction) and f.lang == "en" for f in first)
    assert len(fill_from_document(TEMPLATES, EN_DOC, "en", seed=3, key="doc-1", limit=3)) == 3


def test_filled_instructions_carry_their_grounding():
    filled = fill_from_document(TEMPLATES, EN_DOC, "en", seed=5, key="k", limit=60)
    by_template = {f.template_id: f for f in filled}
    assert len(filled) > 30
    for f in filled:
        template = next(t for t in TEMPLATES if t.id == f.template_id)
        text_slots = [s for s, slot_type in template.slots if slot_type in TEXT_SLOT_TYPES]
        if text_slots:
            assert f.grounding == f.slots[text_slots[0]] and f.grounding in f.instruction
        if template.slot_types == {"a": "concept", "b": "concept"}:
            assert f.slots["a"] != f.slots["b"]
        if f.template_id.startswith("en.translate") and "language" in f.slots and "concept" not in f.slots:
            assert f.grounding in EN_DOC
    what_is = by_template["en.explain.what_is"]
    assert what_is.grounding == next(d.sentence for d in definition_sentences(EN_DOC, "en")
                                     if d.term.casefold() == what_is.slots["concept"].casefold())  # fmt: skip


def test_answerable_only_takes_extractive_templates_with_fitting_values():
    filled = fill_from_document(TEMPLATES, ZH_DOC, "zh", seed=1, key="doc", limit=40, answerable_only=True)
    assert filled and all(f.extractive_answer for f in filled)
    defined = {"光合作用", "叶绿素", "呼吸作用", "《植物生理学》"}
    for f in filled:
        if f.extractive_answer in ("definition", "definitions"):
            assert set(f.slots.values()) <= defined, f
    counts = collections.Counter(f.task_type for f in filled)
    assert {"explain", "list", "classify", "summarize", "extract", "compare"} <= set(counts)


def test_templates_whose_slots_the_page_lacks_are_skipped():
    text = "I love this kettle, it is really great and boils water fast!"
    filled = fill_from_document(TEMPLATES, text, "en", seed=1, key="x", limit=50)
    assert filled and {f.task_type for f in filled} <= {"classify", "rewrite", "translate"}
    assert all(set(f.slots) <= {"review", "sentence", "language"} for f in filled)


def test_nothing_to_fill():
    assert fill_from_document(TEMPLATES, EN_DOC, "en", 1, "k", 0) == []
    assert fill_from_document(TEMPLATES, "   ", "en", 1, "k", 5) == []
    assert fill_from_document(TEMPLATES, EN_DOC, "fr", 1, "k", 5) == []
    assert fill_from_document([t for t in TEMPLATES if t.lang == "zh"], EN_DOC, "en", 1, "k", 5) == []


def test_zh_variants_use_chinese_templates():
    filled = fill_from_document(TEMPLATES, ZH_DOC, "zh-Hant", seed=2, key="doc", limit=5)
    assert len(filled) == 5 and {f.lang for f in filled} == {"zh"}
    assert all(f.template_id.startswith("zh.") for f in filled)


def test_slot_values_is_fast_enough_for_a_corpus():
    big = (EN_DOC + "\n") * 40  # ~60 kB, a long web page
    start = time.perf_counter()
    slot_values(big, "en")
    slot_values((ZH_DOC + "\n") * 40, "zh")
    assert time.perf_counter() - start < 3.0


def test_slot_filler_word_lists_are_data_with_clear_errors(monkeypatch):
    import transforms.synth.slot_fillers as sf

    assert (
        "Einstein" not in sf._EN_TITLES and "Professor" in sf._EN_TITLES
    )  # read from templates/slot_fillers.yaml
    monkeypatch.setattr(sf, "load_yaml", lambda name, key: ["a", True])
    with pytest.raises(
        ValueError, match=r"templates/slot_fillers.yaml: zh.x must be a list of strings; quote"
    ):
        sf._phrases("zh.x")
    with pytest.raises(ValueError, match=r"zh.y must be a string of whitespace-separated words"):
        sf._words("zh.y")
