import random
import re

import pytest

from transforms.synth.rouge import (
    lcs_length,
    lcs_length_masked,
    rouge_l,
    rouge_l_f,
    rouge_tokens,
    token_masks,
)


def dp_lcs(a, b) -> int:
    """The textbook O(n·m) table, as the reference for the bit-parallel LCS."""
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def rouge_score_tokens(text: str) -> list[str]:
    """rouge_score's default tokenizer (tokenize.py, no stemmer), for ASCII parity."""
    text = re.sub(r"[^a-z0-9]+", " ", text.lower())
    return [t for t in re.split(r"\s+", text) if re.match(r"^[a-z0-9]+$", t)]


def test_english_tokens_lowercase_words_and_numbers():
    assert rouge_tokens("Convert 85 F to Celsius, please!") == ["convert", "85", "f", "to", "celsius", "please"]
    assert rouge_tokens("don't snake_case e.g.") == ["don", "t", "snake", "case", "e", "g"]


@pytest.mark.parametrize(
    "text",
    [
        "Is there anything I can eat for a breakfast that doesn't include eggs, yet includes protein?",
        "Generate a one-sentence description for each of the following people.",
        "Night : Day :: Right : Left -- 2x + 5 = 10 (solve for x_1)",
    ],
)
def test_ascii_text_tokenizes_like_rouge_score(text):
    assert rouge_tokens(text) == rouge_score_tokens(text)


def test_chinese_is_one_token_per_character():
    assert rouge_tokens("给出下面词语的同义词。") == list("给出下面词语的同义词")


def test_mixed_text_keeps_latin_words_whole():
    assert rouge_tokens("用Python写一个SQL查询，返回3行") == ["用", "python", "写", "一", "个", "sql", "查", "询", "返", "回", "3", "行"]


def test_full_width_letters_and_digits_match_ascii():
    assert rouge_tokens("ＧＰＴ－４") == ["gpt", "4"]


def test_kana_per_character_hangul_per_word():
    assert rouge_tokens("すしを食べる") == list("すしを食べる")
    assert rouge_tokens("한국어 문장") == ["한국어", "문장"]


def test_no_tokens():
    assert rouge_tokens("") == []
    assert rouge_tokens("?!… —") == []


def test_lcs_matches_dynamic_programming_on_random_sequences():
    rng = random.Random(7)
    for _ in range(3000):
        alphabet = "abcdef"[: rng.randint(1, 6)]
        a = [rng.choice(alphabet) for _ in range(rng.randint(0, 40))]
        b = [rng.choice(alphabet) for _ in range(rng.randint(0, 40))]
        assert lcs_length(a, b) == dp_lcs(a, b)
        assert lcs_length(b, a) == dp_lcs(a, b)


def test_lcs_beyond_64_tokens():
    rng = random.Random(3)
    a = [rng.choice("abc") for _ in range(300)]
    b = [rng.choice("abc") for _ in range(250)]
    assert lcs_length(a, b) == dp_lcs(a, b)


def test_masked_lcs_reuses_one_side():
    a = rouge_tokens("write a short poem about the sea")
    masks = token_masks(a)
    for other in ["write a poem about the sea", "the sea", "nothing shared here", ""]:
        b = rouge_tokens(other)
        assert lcs_length_masked(masks, len(a), b) == dp_lcs(a, b)


def test_f_measure_is_two_lcs_over_total_length():
    a = rouge_tokens("the cat sat on the mat")
    b = rouge_tokens("the cat lay on a mat")
    # LCS = the cat on mat = 4; P = 4/6, R = 4/6 -> F = 2PR/(P+R) = 4/6
    assert rouge_l_f(a, b) == pytest.approx(4 / 6)
    p, r = 4 / 6, 4 / 6
    assert rouge_l_f(a, b) == pytest.approx(2 * p * r / (p + r))


def test_f_measure_with_unequal_lengths_matches_precision_recall_form():
    a = rouge_tokens("Write a poem about the sea")
    b = rouge_tokens("Write a long poem about the deep blue sea at night")
    lcs = dp_lcs(a, b)
    p, r = lcs / len(a), lcs / len(b)
    assert rouge_l_f(a, b) == pytest.approx(2 * p * r / (p + r))
    assert rouge_l_f(a, b) == rouge_l_f(b, a)


def test_identical_and_disjoint_and_empty():
    tokens = rouge_tokens("Sort the given list ascendingly.")
    assert rouge_l_f(tokens, tokens) == 1.0
    assert rouge_l_f(tokens, rouge_tokens("写一首诗")) == 0.0
    assert rouge_l_f([], tokens) == 0.0
    assert rouge_l_f([], []) == 0.0


def test_chinese_near_duplicate_scores_high_and_paraphrase_low():
    seed = "给出下面词语的同义词"
    assert rouge_l(seed, "给出下列词语的同义词") == pytest.approx(0.9)
    assert rouge_l(seed, "写一首关于秋天的诗") < 0.3


def _seed_instructions(path) -> list[str]:
    import json

    return [json.loads(line)["instruction"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _closest(instructions: list[str]) -> list[tuple[float, int]]:
    tokens = [rouge_tokens(s) for s in instructions]
    return [max((rouge_l_f(t, u), j) for j, u in enumerate(tokens) if j != i) for i, t in enumerate(tokens)]


def test_real_alpaca_seeds_are_mostly_far_apart(webdata):
    """Seeds are diverse (median closest-seed ROUGE-L about 0.33); only two template pairs reach 0.7."""
    seeds = _seed_instructions(webdata / "instructions" / "alpaca-self-instruct-seed" / "seed_tasks.jsonl")
    closest = _closest(seeds)
    scores = sorted(score for score, _ in closest)
    assert scores[len(scores) // 2] < 0.4
    close = {frozenset((seeds[i], seeds[j])) for i, (score, j) in enumerate(closest) if score >= 0.7}
    assert frozenset(
        ("Write a conversation based on the given facts.", "Write a cover letter based on the given facts.")
    ) in close
    assert len(close) == 2
    pair = rouge_l("Write a conversation based on the given facts.", "Write a cover letter based on the given facts.")
    assert pair == pytest.approx(2 * 7 / (8 + 9))


def test_real_chinese_seeds_are_compared_per_character(webdata):
    """rouge_score would give every Chinese pair 0 (no [a-z0-9] tokens); per character they spread out."""
    seeds = _seed_instructions(webdata / "instructions" / "belle-zh" / "zh_seed_tasks.json")
    scores = sorted(score for score, _ in _closest(seeds))
    assert sum(not rouge_score_tokens(s) for s in seeds) == 149  # of 175
    assert 0.2 < scores[len(scores) // 2] < 0.45
    assert scores[-1] < 0.7
