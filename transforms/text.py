"""Scripts, CJK detection, language families and sentence splitting: the text rules every stage shares.

"Is this text CJK?" is three different questions, and each use here asks
exactly one of them (before this module, five copies mixed them up: Korean was
CJK in the length filter and not in Self-Instruct's length rule):

1. **Does it contain Chinese characters?** (`contains_han`: Han only.) Picks the
   hand-written Chinese rules (question words 什么/如何, 吗/呢, "如何X？"
   how-tos) for text whose language is not known. Kana or Hangul alone do not.
2. **Is its script dense?** (`contains_cjk`, `is_cjk_dominant`: Han, kana and
   Hangul; languages zh, ja, ko and lid.176's Chinese labels wuu, yue.) One
   CJK character carries much more than one Latin letter (a Hangul syllable
   block is a whole syllable), so character-count thresholds are lower for
   such text: the filters' length bounds, a miner's minimum answer length.
3. **Does it put no spaces between words?** (`contains_spaceless`,
   `is_spaceless_dominant`, `count_chars_and_words`, `word_joiner`: Han and
   kana; languages zh, ja, wuu, yue; **not ko**: Korean is written in Hangul
   but separates words with spaces.) Decides how text is cut into words or
   pieces are joined: every Han/kana character is one token (ROUGE, the
   instruction classifier), lengths are characters plus words, sentences end
   at 。！？ and are joined without a space. Thai, Lao, Khmer and Burmese are
   written without spaces too, but their characters are letters, not
   morphemes; splitting them needs a dictionary, so they count as words here.

Language codes are lid.176 labels (transforms/langid.py) or BCP 47 tags from
users ("zh-Hant", "zh_CN", "en-US"). `language_family` reduces a code to the
language that rules, templates and formats are written for; lid.176 labels much
short Chinese `wuu` (Wu) or `yue` (Cantonese), written in the same characters,
so those are "zh". `rules_family` narrows that to the languages with
hand-written rules ("en", "zh"). `same_language` is looser, for checking that
a question and its answer agree (Serbian/Croatian/Bosnian count as one).
"""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Iterable, Iterator

from templates import load_yaml

# --- scripts ---------------------------------------------------------------------

# Regex character-class bodies (use inside [...]).
# Han: CJK unified ideographs, extension A, compatibility ideographs, extensions B–H.
HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f"
# Hiragana, katakana, katakana phonetic extensions, half-width katakana.
KANA = "\u3040-\u309f\u30a0-\u30ff\u31f0-\u31ff\uff66-\uff9f"
# Hangul syllables, jamo, compatibility jamo.
HANGUL = "\uac00-\ud7af\u1100-\u11ff\u3130-\u318f"
CJK = HAN + KANA + HANGUL
SPACELESS = HAN + KANA

_HAN_CHAR = re.compile(f"[{HAN}]")
_KANA_CHAR = re.compile(f"[{KANA}]")
_CJK_CHAR = re.compile(f"[{CJK}]")
_SPACELESS_CHAR = re.compile(f"[{SPACELESS}]")
# A word: a run of non-space characters holding at least one letter or digit.
_WORD = re.compile(r"\S*[^\W_]\S*")

# Languages written in a CJK script (rule 2) and those without spaces between words (rule 3).
CJK_LANGS = frozenset({"zh", "ja", "ko", "wuu", "yue", "cmn"})
SPACELESS_LANGS = frozenset({"zh", "ja", "wuu", "yue", "cmn"})
# Share of dense-script (or spaceless) characters among non-space characters
# from which a text of unknown language counts as that kind of text.
DOMINANT_SHARE = 0.3


def contains_han(text: str) -> bool:
    """Rule 1: `text` has a Chinese character (Han), so Chinese rules may apply."""
    return _HAN_CHAR.search(text) is not None


def contains_kana(text: str) -> bool:
    """`text` has hiragana or katakana: Japanese, not Chinese."""
    return _KANA_CHAR.search(text) is not None


def contains_cjk(text: str) -> bool:
    """Rule 2: `text` has a character of a dense CJK script (Han, kana, Hangul)."""
    return _CJK_CHAR.search(text) is not None


def contains_spaceless(text: str) -> bool:
    """Rule 3: `text` has a character of a script written without spaces between words (Han, kana)."""
    return _SPACELESS_CHAR.search(text) is not None


def _dominant(pattern: re.Pattern[str], text: str, share: float) -> bool:
    hits = len(pattern.findall(text))
    return hits > 0 and hits >= share * max(len("".join(text.split())), 1)


def is_cjk_dominant(text: str, lang: str = "", share: float = DOMINANT_SHARE) -> bool:
    """Rule 2: `lang` is written in a CJK script, or CJK characters are `share` of the non-space characters."""
    return primary_subtag(lang) in CJK_LANGS or _dominant(_CJK_CHAR, text, share)


def is_spaceless_dominant(text: str, lang: str = "", share: float = DOMINANT_SHARE) -> bool:
    """Rule 3: `lang` puts no spaces between words, or Han/kana are `share` of the non-space characters."""
    return is_spaceless_language(lang) or _dominant(_SPACELESS_CHAR, text, share)


def is_spaceless_language(lang: str) -> bool:
    """Rule 3 for a language code: zh (any tag), ja, wuu, yue; not ko."""
    return primary_subtag(lang) in SPACELESS_LANGS


def count_chars_and_words(text: str) -> tuple[int, int]:
    """(Han/kana characters, space-separated words in the rest of `text`).

    The size of a text in words whatever its script: each Han or kana
    character counts as one, since those scripts put no spaces between words
    (rule 3); Latin, Hangul and every other text count their words.
    "如何安装Python 3.11？" is (4, 2).
    """
    chars = len(_SPACELESS_CHAR.findall(text))
    rest = _SPACELESS_CHAR.sub(" ", text) if chars else text
    return chars, len(_WORD.findall(rest))


# re's \w is str.isalnum() or "_" (tests/test_text.py checks every code point).
_NOT_ALNUM = re.compile(r"[\W_]+")


def alphanumeric_only(text: str) -> str:
    """`text` with every character that is not a letter or digit (`str.isalnum`) removed, in one
    regex pass: the core of every "compare ignoring punctuation and spacing" key."""
    return _NOT_ALNUM.sub("", text)


def has_words(text: str, count: int) -> bool:
    """Whether `text` has at least `count` space-separated words outside its Han/kana (the second
    number of `count_chars_and_words`). A length filter needs a few words of texts that are
    mostly long, so text without Han/kana is read only up to the `count`-th word."""
    if count <= 0:
        return True
    if _SPACELESS_CHAR.search(text):
        return count_chars_and_words(text)[1] >= count
    return next(itertools.islice(_WORD.finditer(text), count - 1, None), None) is not None


def word_joiner(text: str = "", lang: str = "") -> str:
    """The separator between sentences or words of `text` in `lang`: "" for spaceless text, else " ".

    `lang` decides when it names a language; otherwise any Han/kana in `text` does.
    """
    if lang.strip():
        return "" if is_spaceless_language(lang) else " "
    return "" if contains_spaceless(text) else " "


# --- language codes --------------------------------------------------------------

# Labels of one written Chinese language: lid.176 labels much short Chinese as
# Wu (wuu) or Cantonese (yue); cmn is Mandarin's ISO 639-3 code in user tags.
_CHINESE = frozenset({"zh", "wuu", "yue", "cmn"})
# The languages with hand-written rules (question words, templates, slot fillers).
RULE_LANGUAGES = ("en", "zh")


def primary_subtag(lang: str) -> str:
    """The language part of a code: "zh-Hant" / "zh_TW" -> "zh", "EN-us" -> "en", "" -> ""."""
    return re.split(r"[-_]", lang.strip().lower(), maxsplit=1)[0]


@functools.lru_cache(maxsize=1024)
def language_family(lang: str) -> str:
    """The language that rules, templates and formats are written for: Chinese labels -> "zh", else the primary subtag.

    "zh-Hans" / "zh_CN" / "wuu" / "yue" / "cmn" -> "zh", "en-US" -> "en", "fr" -> "fr", "" -> "".
    """
    primary = primary_subtag(lang)
    return "zh" if primary in _CHINESE else primary


def rules_family(lang: str) -> str:
    """ "en", "zh" or "": the family whose hand-written rules apply to `lang`."""
    family = language_family(lang)
    return family if family in RULE_LANGUAGES else ""


def family_of_text(text: str, lang: str = "") -> str:
    """`rules_family(lang)`, or for an unknown `lang` "zh" when `text` has Chinese characters (rule 1), else "en"."""
    return rules_family(lang) or ("zh" if contains_han(text) else "en")


# lid.176 splits what a reader calls one language: short Chinese often comes out
# as Wu ("wuu") or Cantonese ("yue"), Serbo-Croatian as sr/hr/bs/sh, and so on.
_LANG_GROUP = {
    "wuu": "zh", "yue": "zh", "cmn": "zh",
    "sr": "sh", "hr": "sh", "bs": "sh",
    "nn": "no",
    "ms": "id",
    "als": "de", "bar": "de",
    "sco": "en",
}  # fmt: skip


def same_language(a: str, b: str) -> bool:
    """Whether lid.176 labels `a` and `b` name what a reader calls one language (zh/wuu/yue, sr/hr/bs, …)."""
    return _LANG_GROUP.get(a, a) == _LANG_GROUP.get(b, b)


# Writing system of each non-Latin lid.176 label; every other label is Latin.
_SCRIPT_LANGS = {
    "Hani": "zh wuu yue",
    "Jpan": "ja",
    "Hang": "ko",
    "Cyrl": "ru uk bg be mk sr kk ky tg tt ba cv ce sah os mhr mrj kv myv krc av lez xal tyv bxr rue mn",
    "Arab": "ar arz fa azb ur ps sd ckb ug pnb mzn lrc",
    "Hebr": "he yi",
    "Grek": "el",
    "Deva": "hi mr ne sa bh mai new gom dty",
    "Beng": "bn as bpy",
    "Guru": "pa",
    "Gujr": "gu",
    "Orya": "or",
    "Taml": "ta",
    "Telu": "te",
    "Knda": "kn",
    "Mlym": "ml",
    "Sinh": "si",
    "Thai": "th",
    "Laoo": "lo",
    "Khmr": "km",
    "Mymr": "my",
    "Tibt": "bo",
    "Geor": "ka xmf",
    "Armn": "hy",
    "Ethi": "am",
    "Thaa": "dv",
}
_SCRIPT = {lang: script for script, langs in _SCRIPT_LANGS.items() for lang in langs.split()}


def language_script(lang: str) -> str:
    """ISO 15924 code of the script a lid.176 label is written in ("Latn" unless listed)."""
    return _SCRIPT.get(lang, "Latn")


# --- sentences -------------------------------------------------------------------

# Quotes and brackets that may close a sentence after its punctuation: 'Why?"'.
CLOSERS = "\"'”’」』）)]】》"
# Punctuation a sentence or a clause ends in; a line ending in none of it is a label, a name
# or a title ("OldRowFarmer Master Gardener", "Related links").
CLAUSE_ENDS = tuple(".!?:;…。！？：；")


def _word_list(key: str) -> frozenset[str]:
    words = load_yaml("text.yaml", key)
    bad = [w for w in words if not isinstance(w, str)] if isinstance(words, list) else words
    if bad:
        raise ValueError(
            f"templates/text.yaml: {key}: {bad!r} are not words; write a list and quote no/yes/on/off"
        )
    return frozenset(words)


# Abbreviations after which "." does not end an English sentence. Tokens with an
# inner dot ("e.g.", "U.S.") and single letters (initials) are handled by rule.
_EN_ABBREVIATIONS = _word_list("sentences.en.abbreviations")
# Abbreviations only before a number ("No. 5", "Fig. 2"); "No." alone is an answer.
_EN_NUMBER_ABBREVIATIONS = _word_list("sentences.en.number_abbreviations")
_EN_BOUNDARY = re.compile(r"([.!?]+)[" + re.escape(CLOSERS) + r"]*\s+")
_SPACELESS_BOUNDARY = re.compile(r"[。！？!?]+[" + re.escape(CLOSERS) + r"]*")
_FULL_WIDTH_BOUNDARY = re.compile(r"[。！？]+[" + re.escape(CLOSERS) + r"]*")


def split_sentences(text: str, lang: str = "") -> list[str]:
    """Sentences of `text`, each stripped; line breaks always end a sentence.

    Spaceless text (rule 3: `lang` zh, or for a language without rules of
    its own a line with Han/kana) ends sentences at 。！？ (and ASCII !?), never at "." so
    "Python 3.11" stays whole. Other text ends them at . ! ? followed by
    space, except before a lower-case word ('a "why?" test') and, for ".",
    after abbreviations ("e.g.", "Dr.", "U.S.", initials; the lists are in
    templates/text.yaml); decimals never have the space, so "3.14" is safe.
    Full-width 。！？ end a sentence in any text.
    """
    return [s for s in (piece.strip() for piece in sentence_pieces(text, lang)) if s]


def sentence_pieces(text: str, lang: str = "") -> Iterator[str]:
    """The sentences of `text` with their surrounding whitespace: `"".join` gives `text` back.

    The same boundaries as `split_sentences`, for callers that keep the
    original separators (packing sentences into chunks).
    """
    for line in text.splitlines(keepends=True):
        yield from _line_pieces(line, lang)


def _line_pieces(line: str, lang: str) -> list[str]:
    family = rules_family(lang)
    # en and zh by their rules; another language or none by the line's own
    # characters (a Japanese page may quote an English sentence).
    spaceless = family == "zh" if family else contains_spaceless(line)
    if spaceless:
        return _split_at(line, _SPACELESS_BOUNDARY.finditer(line))
    pieces: list[str] = []
    for piece in _split_at(line, _FULL_WIDTH_BOUNDARY.finditer(line)):
        pieces.extend(_split_latin(piece))
    return pieces


def _split_at(text: str, matches: Iterable[re.Match[str]]) -> list[str]:
    pieces, start = [], 0
    for match in matches:
        pieces.append(text[start : match.end()])
        start = match.end()
    pieces.append(text[start:])
    return [p for p in pieces if p]


def _split_latin(text: str) -> list[str]:
    pieces, start = [], 0
    for match in _EN_BOUNDARY.finditer(text):
        if match.end() >= len(text):
            break
        if text[match.end()].islower():  # 'a "should I buy this?" test', "e.g. this"
            continue
        if match.group(1) == "." and not _ends_english_sentence(
            text[start : match.start()], text[match.end()]
        ):
            continue
        pieces.append(text[start : match.end()])
        start = match.end()
    pieces.append(text[start:])
    return [p for p in pieces if p]


def _ends_english_sentence(before: str, next_char: str) -> bool:
    last_word = before.rsplit(None, 1)[-1] if before.strip() else ""
    token = last_word.lstrip("(\"'“‘").lower()
    if "." in token:  # e.g / i.e / u.s / a.m
        return False
    if len(token) == 1 and token.isalpha():  # an initial: "J. K. Rowling"
        return False
    if token in _EN_NUMBER_ABBREVIATIONS and next_char.isdigit():
        return False
    return token not in _EN_ABBREVIATIONS
