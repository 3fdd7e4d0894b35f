"""Scripts, CJK rules, language families and sentence splitting (transforms/text.py)."""

from __future__ import annotations

import pytest

from transforms.text import (
    alphanumeric_only,
    contains_cjk,
    contains_han,
    contains_kana,
    contains_spaceless,
    count_chars_and_words,
    family_of_text,
    has_words,
    is_cjk_dominant,
    is_spaceless_dominant,
    is_spaceless_language,
    language_family,
    language_script,
    primary_subtag,
    rules_family,
    same_language,
    sentence_pieces,
    split_sentences,
    word_joiner,
)

# --- the three CJK questions ------------------------------------------------------

ZH = "什么是光合作用？"
JA = "これはペンです。"  # kana only
JA_KANJI = "日本語を勉強します。"
KO = "한국어를 공부합니다."
EN = "What is photosynthesis?"


def test_rule_1_chinese_characters_pick_the_chinese_rules():
    assert contains_han(ZH) and contains_han(JA_KANJI)
    assert not contains_han(JA) and not contains_han(KO) and not contains_han(EN)
    assert contains_kana(JA) and not contains_kana(ZH)
    # Extension B (𠀀) is Han too.
    assert contains_han("\U00020000")


def test_rule_2_dense_scripts_include_hangul():
    assert all(contains_cjk(t) for t in (ZH, JA, KO))
    assert not contains_cjk(EN)
    assert is_cjk_dominant(ZH) and is_cjk_dominant(JA) and is_cjk_dominant(KO)
    assert not is_cjk_dominant(EN)
    assert (
        is_cjk_dominant("What?", lang="zh")
        and is_cjk_dominant("?", lang="ko")
        and is_cjk_dominant("", "zh-Hant")
    )
    # A little Chinese in English text is not dominant.
    assert not is_cjk_dominant("The word 你好 means hello in Chinese, used as a greeting.")


def test_rule_3_korean_puts_spaces_between_words():
    """ko is a CJK script (rule 2) but spaced (rule 3): the rule each use needs, stated once."""
    assert contains_spaceless(ZH) and contains_spaceless(JA) and not contains_spaceless(KO)
    assert is_spaceless_dominant(ZH) and is_spaceless_dominant(JA)
    assert not is_spaceless_dominant(KO) and not is_spaceless_dominant(EN)
    assert is_spaceless_language("zh-Hans") and is_spaceless_language("ja") and is_spaceless_language("yue")
    assert not is_spaceless_language("ko") and not is_spaceless_language("en")
    assert count_chars_and_words(KO) == (0, 2)  # two words, not nine syllables


def test_counts_chars_and_words():
    assert count_chars_and_words("How do I install Python 3.11?") == (0, 6)
    assert count_chars_and_words("如何安装Python 3.11？") == (4, 2)
    assert count_chars_and_words("") == (0, 0)
    assert count_chars_and_words(JA) == (7, 0)


def test_alphanumeric_only_keeps_exactly_what_isalnum_keeps():
    # One regex pass ([\\W_]+) must remove what str.isalnum rejects, at every code point.
    everything = "".join(chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF)
    assert alphanumeric_only(everything) == "".join(ch for ch in everything if ch.isalnum())
    assert alphanumeric_only("Why is_it? 3.11 版本") == "Whyisit311版本"


def test_has_words_agrees_with_the_word_count():
    texts = ["", "   ", "one", "two words", "How do I install Python 3.11?", "如何安装Python 3.11？", JA, KO,
             "a " * 50, "— – ...", "x_y z", "3 eggs, 200 g flour"]
    for text in texts:
        for count in range(-1, 8):
            assert has_words(text, count) == (count_chars_and_words(text)[1] >= count), (text, count)


def test_word_joiner():
    assert word_joiner(ZH) == "" and word_joiner(JA) == ""
    assert word_joiner(KO) == " " and word_joiner(EN) == " "
    assert word_joiner("any text", "zh") == "" and word_joiner("中文", "en") == " "


# --- language codes -----------------------------------------------------------------


def test_language_family_folds_the_chinese_labels():
    codes = ("zh", "wuu", "yue", "cmn", "zh-Hans", "zh_CN", "EN-us", "en-GB", "", "fr", "FR", "ko")
    assert [language_family(c) for c in codes] == ["zh"] * 6 + ["en", "en", "", "fr", "fr", "ko"]
    assert primary_subtag(" zh_TW ") == "zh"


def test_rules_family_is_en_zh_or_nothing():
    codes = ("en", "zh", "zh-Hant", "zh_TW", "wuu", "yue", "fr", "ko", "")
    assert [rules_family(c) for c in codes] == ["en", "zh", "zh", "zh", "zh", "zh", "", "", ""]
    assert family_of_text("如何安装Python") == "zh"
    assert family_of_text("How to install") == "en"
    assert family_of_text("如何安装Python", "en") == "en"  # a known language decides


def test_same_language_and_script():
    assert same_language("wuu", "zh") and same_language("hr", "sr") and same_language("en", "en")
    assert not same_language("en", "fr")
    assert [language_script(c) for c in ("zh", "wuu", "ja", "ko", "en", "ru", "ar")] == [
        "Hani", "Hani", "Jpan", "Hang", "Latn", "Cyrl", "Arab",
    ]  # fmt: skip


# --- sentences ------------------------------------------------------------------------


def test_split_sentences_english_keeps_abbreviations_decimals_and_initials():
    text = "Dr. Smith paid $3.50 at 5 p.m. today. Use e.g. Python! Is it hard? No. J. K. Rowling agrees."
    assert split_sentences(text, "en") == [
        "Dr. Smith paid $3.50 at 5 p.m. today.",
        "Use e.g. Python!",
        "Is it hard?",
        "No.",
        "J. K. Rowling agrees.",
    ]


def test_split_sentences_english_does_not_split_before_lowercase():
    assert split_sentences('Run a "should I buy this?" test. Then wait.', "en") == [
        'Run a "should I buy this?" test.',
        "Then wait.",
    ]


def test_split_sentences_number_abbreviations():
    # "no" is quoted in templates/text.yaml: YAML would read it as False.
    assert split_sentences("See Fig. 2 and No. 5 below. Done.", "en") == [
        "See Fig. 2 and No. 5 below.",
        "Done.",
    ]


def test_split_sentences_chinese():
    text = "你好。为什么？Python 3.11很好！“真的吗？”他问。"
    assert split_sentences(text, "zh") == ["你好。", "为什么？", "Python 3.11很好！", "“真的吗？”", "他问。"]
    assert split_sentences(text, "wuu") == split_sentences(text, "zh")


@pytest.mark.parametrize("lang", ["", "ja", "fr"])
def test_split_sentences_of_other_or_unknown_languages_follow_the_line(lang):
    assert split_sentences("これはペンです。あれは本です。", lang) == ["これはペンです。", "あれは本です。"]
    assert split_sentences("Il est 3.5 fois plus grand. Voilà.", lang) == [
        "Il est 3.5 fois plus grand.",
        "Voilà.",
    ]


def test_split_sentences_line_breaks_and_empty_text():
    assert split_sentences("First line\nSecond line", "en") == ["First line", "Second line"]
    assert split_sentences("", "zh") == []
    assert split_sentences(" \n\n ") == []


def test_sentence_pieces_give_the_text_back():
    text = "Hello there. How are you?\n  你好。再见！\n\nLast one"
    pieces = list(sentence_pieces(text))
    assert "".join(pieces) == text
    assert [p.strip() for p in pieces if p.strip()] == split_sentences(text)
    assert split_sentences(text) == ["Hello there.", "How are you?", "你好。", "再见！", "Last one"]


def test_word_lists_are_data_and_a_yaml_boolean_is_refused(monkeypatch):
    from transforms import text

    # `no` unquoted in YAML is False: the loader names the file and the fix.
    monkeypatch.setattr(text, "load_yaml", lambda name, key: ["dr", False])
    with pytest.raises(
        ValueError, match=r"templates/text.yaml: sentences.en.x: \[False\] are not words; .*quote no"
    ):
        text._word_list("sentences.en.x")
