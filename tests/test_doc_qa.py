import gzip
import itertools
import json
import random
import re

import pytest

from transforms.synth.doc_qa import QA_PAIRS_JSON_SCHEMA, chunk_document, pairs_to_keep, parse_qa_pairs


def words(text: str) -> int:
    return len(text.split())


def cjk_or_words(text: str) -> int:
    """One token per Han character, one per other word: a stand-in for a multilingual tokenizer."""
    han = len(re.findall(r"[\u4e00-\u9fff]", text))
    return han + len(re.sub(r"[\u4e00-\u9fff]", " ", text).split())


def newline_costly(text: str) -> int:
    """Not additive across joins: every newline costs a token of its own."""
    return len(text.split()) + text.count("\n")


def squash(text: str) -> str:
    return "".join(text.split())


EN_DOC = (
    "Cast iron pans should be cleaned while warm. Rinse the pan under hot water! Is soap fine? A little is.\n\n"
    "Dry it completely on a low burner. Rub a thin layer of oil over the surface.\n"
    "Store it in a dry place.\n\n"
    "Seasoning builds up over time, so cook fatty foods often at first. Avoid acidic sauces for a while."
)
ZH_DOC = (
    "铸铁锅应该趁热清洗。先用热水冲洗，再用硬毛刷擦去食物残渣！不要长时间浸泡。\n\n"
    "清洗后把锅放在小火上彻底烘干。然后在表面薄薄地涂一层食用油。这样保养的铸铁锅可以用很多年。"
)


# --- chunk_document -------------------------------------------------------------


def test_short_document_is_one_chunk_and_blank_is_none():
    assert chunk_document("  Short text.  ", 100, words) == ["Short text."]
    assert chunk_document(" \n ", 100, words) == []


def test_arguments_are_checked():
    with pytest.raises(ValueError, match="max_tokens must be >= 1"):
        chunk_document("text", 0, words)
    with pytest.raises(ValueError, match="overlap must be in"):
        chunk_document("text", 10, words, overlap=10)


@pytest.mark.parametrize("max_tokens", [6, 9, 12, 14, 25])
def test_english_chunks_fit_end_at_sentences_and_cover_the_text(max_tokens):
    chunks = chunk_document(EN_DOC, max_tokens, words)
    assert len(chunks) > 1
    assert all(words(c) <= max_tokens for c in chunks)
    assert squash("".join(chunks)) == squash(EN_DOC)
    # The longest sentence has 12 words; from there on no chunk ends mid-sentence.
    if max_tokens >= 12:
        assert all(c.rstrip()[-1] in ".!?" for c in chunks)


def test_paragraph_and_line_breaks_are_kept_inside_chunks():
    chunks = chunk_document(EN_DOC, 30, words)
    assert any("\n\n" in c for c in chunks)
    assert "Rub a thin layer of oil over the surface.\nStore it in a dry place." in "".join(chunks)


def test_chinese_chunks_end_at_full_stops():
    chunks = chunk_document(ZH_DOC, 30, cjk_or_words)
    assert len(chunks) > 1
    assert all(cjk_or_words(c) <= 30 for c in chunks)
    assert all(c[-1] in "。！？" for c in chunks)
    assert squash("".join(chunks)) == squash(ZH_DOC)


def test_sentence_longer_than_the_limit_is_cut_between_words():
    text = "intro sentence here. " + " ".join(f"w{i}" for i in range(23)) + " end."
    chunks = chunk_document(text, 5, words)
    assert all(words(c) <= 5 for c in chunks)
    assert squash("".join(chunks)) == squash(text)


def test_chinese_run_without_punctuation_is_cut_between_characters():
    text = "这是一个没有任何标点符号的非常长的中文句子" * 3
    chunks = chunk_document(text, 10, len)
    assert [len(c) for c in chunks] == [10] * 6 + [3]
    assert "".join(chunks) == text


def test_overlap_repeats_whole_sentences_up_to_the_budget():
    text = " ".join(f"Sentence number {i} ends here." for i in range(12))  # 5 words each
    chunks = chunk_document(text, 15, words, overlap=5)
    assert all(words(c) <= 15 for c in chunks)
    for previous, current in itertools.pairwise(chunks):
        last_sentence = re.findall(r"Sentence number \d+ ends here\.", previous)[-1]
        assert current.startswith(last_sentence)
    no_overlap = chunk_document(text, 15, words)
    assert len(chunks) > len(no_overlap)
    assert not any(b.startswith(re.findall(r"Sentence number \d+ ends here\.", a)[-1])
                   for a, b in itertools.pairwise(no_overlap))


def test_overlap_never_stalls_on_long_sentences():
    # Capitalised: chunks are cut where transforms/text.py cuts sentences, never before a lower-case word.
    text = "One two three four five six seven. Eight nine ten eleven twelve thirteen fourteen."
    chunks = chunk_document(text, 7, words, overlap=6)
    assert chunks == ["One two three four five six seven.", "Eight nine ten eleven twelve thirteen fourteen."]


def test_chunks_are_cut_at_the_shared_sentence_boundaries():
    # "e.g." and "Dr." do not end a sentence; "3.5" has no space; Chinese ends at 。 without one.
    text = "Use e.g. Python. Dr. Smith says 3.5 is fine.\n第一句。第二句！"
    chunks = chunk_document(text, 6, words)
    assert chunks == ["Use e.g. Python.", "Dr. Smith says 3.5 is fine.", "第一句。第二句！"]


def test_tokenizer_that_is_not_additive_still_fits():
    text = "\n".join(f"Line {i} has a few words." for i in range(40))
    chunks = chunk_document(text, 20, newline_costly)
    assert all(newline_costly(c) <= 20 for c in chunks)
    assert squash("".join(chunks)) == squash(text)


def test_random_documents_always_fit_and_cover():
    rng = random.Random(2)
    pieces = ["word", "tiny.", "end!", "why?", "\n", "\n\n", "长句子", "。", "，", "longerwordwithoutbreaks"]
    for _ in range(200):
        text = " ".join(rng.choice(pieces) for _ in range(rng.randint(1, 120)))
        max_tokens = rng.randint(1, 30)
        overlap = rng.randint(0, max_tokens - 1)
        for count in (words, cjk_or_words, len):
            chunks = chunk_document(text, max_tokens, count, overlap=overlap)
            assert all(count(c) <= max_tokens for c in chunks), (text, max_tokens, count)
            if overlap == 0:
                assert squash("".join(chunks)) == squash(text)


def _ccnet_documents(webdata) -> list[str]:
    path = webdata / "text" / "dolma-ccnet-cc_en_head" / "cc_en_head-0091.jsonl.gz"
    return [json.loads(line)["text"] for line in gzip.decompress(path.read_bytes()).splitlines()]


def test_real_english_documents(webdata):
    for text in _ccnet_documents(webdata):
        chunks = chunk_document(text, 256, words)
        assert all(words(c) <= 256 for c in chunks)
        assert squash("".join(chunks)) == squash(text)
    longest = max(_ccnet_documents(webdata), key=len)
    chunks = chunk_document(longest, 256, words)
    assert len(chunks) >= words(longest) // 256
    # Packed, not one chunk per sentence: chunks use most of the budget.
    assert sum(words(c) for c in chunks) / len(chunks) > 0.8 * 256


def test_real_chinese_documents(webdata):
    for path in sorted((webdata / "zh").glob("*.groundtruth.jsonl.gz")):
        text = json.loads(gzip.decompress(path.read_bytes()).splitlines()[0])["content"]
        chunks = chunk_document(text, 200, cjk_or_words, overlap=20)
        assert chunks and all(cjk_or_words(c) <= 200 for c in chunks), path.name


# --- pairs_to_keep ----------------------------------------------------------------


def test_short_documents_keep_one_pair():
    rng = random.Random(0)
    assert {pairs_to_keep(n, rng) for n in (0, 1, 14, 29)} == {1}


def test_count_follows_nemotron_cc_bound():
    rng = random.Random(0)
    draws = [pairs_to_keep(150, rng) for _ in range(500)]  # randint(1, 10)
    assert min(draws) == 1 and max(draws) == 10
    draws = [pairs_to_keep(45, rng) for _ in range(200)]  # int(10 * 45 / 150) = 3
    assert set(draws) == {1, 2, 3}


def test_available_caps_like_slicing_the_shuffled_pairs():
    rng = random.Random(0)
    draws = [pairs_to_keep(3000, rng, available=6) for _ in range(200)]  # randint(1, 200), at most 6
    assert max(draws) == 6 and draws.count(6) > 180
    assert pairs_to_keep(3000, random.Random(1), available=0) == 0


def test_same_seed_same_counts():
    assert [pairs_to_keep(900, random.Random(7)) for _ in range(3)] == [pairs_to_keep(900, random.Random(7))] * 3


# --- parse_qa_pairs ---------------------------------------------------------------


def test_schema_wraps_the_list_in_an_object():
    assert QA_PAIRS_JSON_SCHEMA["type"] == "object"
    item = QA_PAIRS_JSON_SCHEMA["properties"]["pairs"]["items"]
    assert item["required"] == ["question", "answer"]
    assert json.loads(json.dumps(QA_PAIRS_JSON_SCHEMA)) == QA_PAIRS_JSON_SCHEMA


def test_schema_shaped_reply():
    reply = json.dumps({"pairs": [{"question": "What is X?", "answer": "X is Y."}, {"question": "Why?", "answer": "Z."}]})
    assert parse_qa_pairs(reply) == [("What is X?", "X is Y."), ("Why?", "Z.")]


def test_bare_list_in_fences_with_preamble_and_trailing_junk():
    reply = (
        'Sure, see [1] below.\n```json\n[{"question": "What is X?", "answer": "X is Y."},\n'
        ' {"Question": "Who?", "Answer": "Ann."}]\n```\nLet me know if you need more!'
    )
    assert parse_qa_pairs(reply) == [("What is X?", "X is Y."), ("Who?", "Ann.")]


def test_truncated_json_keeps_complete_objects():
    reply = '{"pairs": [{"question": "What is X?", "answer": "X is Y."}, {"question": "Why is the sky'
    assert parse_qa_pairs(reply) == [("What is X?", "X is Y.")]


def test_chinese_json_and_numbers_as_answers():
    reply = '[{"question": "光合作用发生在哪里？", "answer": "叶绿体。"}, {"question": "一年有几个月？", "answer": 12}]'
    assert parse_qa_pairs(reply) == [("光合作用发生在哪里？", "叶绿体。"), ("一年有几个月？", "12")]


def test_bad_pairs_are_dropped():
    reply = json.dumps([
        {"question": "", "answer": "orphan"},
        {"question": "Empty answer?", "answer": "   "},
        {"question": "Echo?", "answer": "echo?"},
        {"question": "Kept?", "answer": "Yes."},
        {"question": "Not a string", "answer": None},
        "not an object",
    ])
    assert parse_qa_pairs(reply) == [("Kept?", "Yes.")]


def test_nemotron_text_format():
    reply = (
        "Here are the questions and answers based on the provided text:\n"
        "- Question: What is this?\nAnswer: It is a test.\nIt has two lines.\n"
        "- Question: How does it work?\nAnswer: By magic."
    )
    assert parse_qa_pairs(reply) == [
        ("What is this?", "It is a test.\nIt has two lines."),
        ("How does it work?", "By magic."),
    ]


def test_q_a_text_format_numbered_and_bold():
    reply = "1. **Q:** What is X?\n**A:** X is Y.\n\n2. Q: Who made it?\nA: Ann."
    assert parse_qa_pairs(reply) == [("What is X?", "X is Y."), ("Who made it?", "Ann.")]


def test_chinese_text_format():
    reply = "问：什么是光合作用？\n答：植物利用光能合成有机物的过程。\n\n问题2：它发生在哪里？\n答案2：叶绿体。"
    assert parse_qa_pairs(reply) == [("什么是光合作用？", "植物利用光能合成有机物的过程。"), ("它发生在哪里？", "叶绿体。")]


def test_text_format_truncated_drops_last_and_question_without_answer_is_dropped():
    reply = "Q: One?\nA: First.\nQ: Two?\nA: Sec"
    assert parse_qa_pairs(reply, truncated=True) == [("One?", "First.")]
    assert parse_qa_pairs("Q: One?\nA: First.\nQ: Dangling?") == [("One?", "First.")]


def test_nothing_parseable():
    assert parse_qa_pairs("") == []
    assert parse_qa_pairs("I cannot produce questions for this text.") == []
    assert parse_qa_pairs('{"note": "no pairs"}') == []
