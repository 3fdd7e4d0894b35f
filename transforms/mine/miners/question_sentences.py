"""Questions asked and answered inside running text (kind "question_sentence").

A sentence of a PARAGRAPH block that ends in "?"/"？" is paired with the
sentences after it in the same paragraph, up to the next question and at most
MAX_ANSWER_SENTENCES; when the question ends its paragraph, with the opening
sentences of the next paragraph. Much of this is rhetorical ("Why does it
matter? It matters."), so confidence stays low and the page's best
MAX_PER_PAGE pairs are kept. Skipped as trivia: very short questions, short
answers, answers that are questions themselves, quoted dialogue and asides, and
paragraphs with "Q:"/"问：" markers (faq_sections owns those). A leading
"So" / "But" / "那么，" is dropped from the question, which must stand alone.
"""

from __future__ import annotations

from collections.abc import Iterator

from transforms.mine.blocks import PARAGRAPH, Page
from transforms.questions import (
    ends_with_question_mark,
    has_question_mark,
    is_interrogative_form,
    normalize_for_compare,
    split_qa_prefix,
    strip_discourse_opener,
)
from transforms.records import KIND_QUESTION_SENTENCE, Candidate
from transforms.text import contains_cjk, contains_han, split_sentences, word_joiner

MINER = "question_sentences"

# A question worded as one ("Why does ice float?") beats one that only ends
# in "?" ("You did what?"); both stay well below structured miners' scores.
CONFIDENCE_INTERROGATIVE = 0.45
CONFIDENCE_MARK_ONLY = 0.35
# One long page must not flood the output with its rhetorical questions.
MAX_PER_PAGE = 5
# The answer to an inline question follows it at once; later sentences drift.
MAX_ANSWER_SENTENCES = 3
# "Why?" / "为什么？" and one-liners such as "Yes." carry no instruction.
# Answers are measured in letters, so "发表于 2025-02-17 21:04" is short.
MIN_QUESTION_WORDS = 4
MIN_QUESTION_CHARS_CJK = 6
MIN_ANSWER_LETTERS = 30
MIN_ANSWER_LETTERS_CJK = 12

# Quoted dialogue and parenthetical asides ("(See how much that helps?)").
_QUOTE_OR_ASIDE = tuple("\"'“‘「『(（")


def mine_question_sentences(page: Page) -> Iterator[Candidate]:
    found: list[tuple[int, Candidate]] = []
    paragraphs = [
        (i, b) for i, b in enumerate(page.blocks) if b.kind == PARAGRAPH and not split_qa_prefix(b.text)[0]
    ]
    next_paragraph = {i: page.blocks[i + 1] for i, _ in paragraphs if i + 1 < len(page.blocks)}
    for block_index, block in paragraphs:
        if not has_question_mark(block.text):  # most paragraphs need no splitting
            continue
        sentences = split_sentences(block.text, page.lang)
        for s, sentence in enumerate(sentences):
            if not _is_asked_question(sentence):
                continue
            following = sentences[s + 1 :]
            if not following:
                after = next_paragraph.get(block_index)
                if after is None or after.kind != PARAGRAPH or split_qa_prefix(after.text)[0]:
                    continue
                following = split_sentences(after.text, page.lang)
            candidate = _pair(sentence, following, page.lang)
            if candidate:
                found.append((len(found), candidate))
    best = sorted(found, key=lambda item: (-item[1].confidence, item[0]))[:MAX_PER_PAGE]
    for _, candidate in sorted(best, key=lambda item: item[0]):
        yield candidate


def _is_asked_question(sentence: str) -> bool:
    if not ends_with_question_mark(sentence) or sentence.startswith(_QUOTE_OR_ASIDE):
        return False
    if contains_han(sentence):
        # An ASCII "?" inside Chinese is often a mis-encoded "·" in a name
        # ("斯蒂芬妮?席尔霍尔茨"); trust it only with an interrogative word.
        if sentence.rstrip().endswith("?") and not is_interrogative_form(sentence, "zh"):
            return False
        return len(normalize_for_compare(sentence)) >= MIN_QUESTION_CHARS_CJK
    return len(sentence.split()) >= MIN_QUESTION_WORDS


def _pair(question: str, following: list[str], lang: str) -> Candidate | None:
    answer_sentences = []
    for sentence in following[:MAX_ANSWER_SENTENCES]:
        if "?" in sentence or "？" in sentence:  # asks back, or quotes a question: '"Why?" she said.'
            break
        answer_sentences.append(sentence)
    answer = word_joiner(question).join(answer_sentences)
    letters = sum(map(str.isalpha, answer))
    # Dense scripts (rule 2 of transforms/text.py) say as much in fewer letters.
    if letters < (MIN_ANSWER_LETTERS_CJK if contains_cjk(question) else MIN_ANSWER_LETTERS):
        return None
    question = strip_discourse_opener(question)
    confidence = CONFIDENCE_INTERROGATIVE if is_interrogative_form(question, lang) else CONFIDENCE_MARK_ONLY
    return Candidate(
        instruction=question, output=answer, kind=KIND_QUESTION_SENTENCE, miner=MINER, confidence=confidence
    )
