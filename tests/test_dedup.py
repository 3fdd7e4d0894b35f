import numpy as np
import pytest
from datasketch import MinHash
from datasketch.lsh import _optimal_param

from transforms.mine.dedup import (
    LSH_BANDS,
    LSH_ROWS,
    NUM_PERM,
    _permutations,
    exact_key,
    group_losers,
    kept_pair_indexes,
    lsh_band_keys,
    lsh_band_keys_many,
    minhash,
    minhash_signature,
    minhash_signatures,
    near_duplicate_losers,
    normalize_for_dedup,
    pair_dedup_keys,
    pair_dedup_text,
    shingle_hashes,
    signature_similarity,
)

# A 60-word answer, as a FAQ page would carry it.
ANSWER_EN = (
    "Cast iron pans should be cleaned while they are still warm. Rinse the pan under hot water "
    "and scrub away food with a stiff brush. Avoid soaking the pan or "
    "putting it in the dishwasher, because standing water causes rust. Dry it completely on a "
    "low burner, then rub a thin layer of cooking oil over the surface before storing."
)
ANSWER_ZH = (
    "铸铁锅应该趁热清洗。先用热水冲洗，再用硬毛刷或少量粗盐擦去食物残渣。不要长时间浸泡，"
    "也不要放进洗碗机，因为积水会导致生锈。清洗后把锅放在小火上彻底烘干，然后在表面薄薄地"
    "涂一层食用油再收起来。这样保养的铸铁锅可以用很多年。"
)
UNRELATED = [
    (
        "The city council approved a new budget for public libraries, adding evening hours and "
        "hiring twelve librarians to run homework clubs for secondary school students this autumn."
    ),
    (
        "To renew a passport, fill in the online form, upload a recent photo that meets the size "
        "rules, pay the fee by card and post your old passport to the address shown at the end."
    ),
    "光合作用是植物利用光能，把二氧化碳和水转化为储存能量的有机物，并释放出氧气的过程。",
    "申请退款时，请在订单页面选择需要退款的商品，填写原因并上传照片，审核通过后三个工作日内到账。",
]


def test_answer_has_sixty_words():
    assert len(ANSWER_EN.split()) == 60


# --- normalisation and exact keys -------------------------------------------------


def test_normalize_for_dedup():
    assert normalize_for_dedup("  Hello,   WORLD!! ") == "helloworld"
    assert normalize_for_dedup("ＨＥＬＬＯ　ｗｏｒｌｄ！") == "helloworld"  # full-width letters and space
    assert normalize_for_dedup("如何重置密码？") == normalize_for_dedup("如何 重置 密码?")
    assert normalize_for_dedup("Straße") == normalize_for_dedup("STRASSE")
    assert normalize_for_dedup("Ｐｙｔｈｏｎ　３．１１") == "python311"
    assert normalize_for_dedup("") == ""


def test_exact_key_ignores_case_width_space_punctuation():
    a = exact_key("How do I reset my password?", "", "Open Settings, then choose Reset.")
    b = exact_key("  how do i RESET my password ", "", "open settings then choose reset")
    c = exact_key(
        "ＨＯＷ ｄｏ Ｉ ｒｅｓｅｔ ｍｙ ｐａｓｓｗｏｒｄ？", "", "Open Settings，then choose Reset。"
    )
    assert a == b == c
    assert exact_key("如何重置密码？", "", "打开设置，选择重置。") == exact_key(
        "如何重置密码", "", "打开 设置 选择 重置"
    )
    assert len(a) == 32


def test_exact_key_distinguishes_content_and_fields():
    base = exact_key("How do I reset my password?", "", "Open Settings, then choose Reset.")
    assert exact_key("How do I reset my PIN?", "", "Open Settings, then choose Reset.") != base
    # Moving text between fields changes the key.
    assert exact_key("How do I reset my password? Open", "", "Settings, then choose Reset.") != base


# --- MinHash ---------------------------------------------------------------------------


def one_word_changed(text: str, index: int, word: str) -> str:
    words = text.split(" ")
    words[index] = word
    return " ".join(words)


def test_signature_shape_and_determinism():
    sig = minhash_signature(ANSWER_EN)
    assert sig.dtype == np.uint32 and sig.shape == (NUM_PERM,)
    assert np.array_equal(sig, minhash_signature(ANSWER_EN))
    # Case/width/punctuation variants share a signature.
    assert np.array_equal(sig, minhash_signature(ANSWER_EN.upper().replace(",", "")))


def test_signature_equals_datasketch_update_batch():
    for text in (ANSWER_EN, ANSWER_ZH, "ab", ""):
        m = MinHash(num_perm=NUM_PERM, seed=1, hashfunc=lambda x: x)
        hashes = shingle_hashes(normalize_for_dedup(text))
        if hashes.size:
            m.update_batch(hashes.tolist())
        assert np.array_equal(m.hashvalues, minhash_signature(text))
    assert minhash(ANSWER_EN).jaccard(minhash(ANSWER_EN)) == 1.0


@pytest.mark.parametrize("num_perm,seed", [(NUM_PERM, 1), (64, 7), (256, 12345)])
def test_permutations_are_datasketch_affine32(num_perm, seed):
    a, b = _permutations(num_perm, seed)
    ds_a, ds_b = MinHash(num_perm=num_perm, seed=seed).permutations
    assert a.dtype == b.dtype == np.uint32
    assert np.array_equal(a, ds_a) and np.array_equal(b, ds_b)


def test_batch_signatures_equal_single():
    texts = [ANSWER_EN, "", ANSWER_ZH, *UNRELATED, "x"]
    batch = minhash_signatures(texts)
    assert batch.shape == (len(texts), NUM_PERM)
    for row, text in zip(batch, texts):
        assert np.array_equal(row, minhash_signature(text))
    keys = lsh_band_keys_many(batch)
    assert keys == [lsh_band_keys(minhash_signature(t)) for t in texts]


def test_pair_dedup_keys_equal_the_keys_of_each_field_and_of_the_joined_text():
    # Fields normalised one by one must give the keys of the whole pair's text: full-width forms,
    # ligatures, combining marks and Hangul jamo at the fields' edges included.
    pairs = [
        ("How do I clean a cast iron pan?", "", ANSWER_EN),
        ("如何重置密码？", "", ANSWER_ZH),
        ("ＰＹＴＨＯＮ ﬁle", "e", "\u0301accent first"),
        ("\u1100", "\u1161", "\u11a8 jamo split across fields"),
        ("", "", ""),
        ("x", "", "y"),
    ]
    keys = pair_dedup_keys(pairs)
    assert keys == [(exact_key(*p), lsh_band_keys(minhash_signature(pair_dedup_text(*p)))) for p in pairs]
    assert keys[4][1] == [] and pair_dedup_keys([]) == []


def test_lsh_params_are_datasketch_optimum_for_0_8():
    assert _optimal_param(0.8, NUM_PERM, 0.5, 0.5) == (LSH_BANDS, LSH_ROWS)


@pytest.mark.parametrize("index,word", [(0, "Iron"), (20, "soft"), (45, "gentle"), (59, "storage.")])
def test_one_word_changed_in_60_word_answer_shares_a_band_key(index, word):
    variant = one_word_changed(ANSWER_EN, index, word)
    assert variant != ANSWER_EN
    a, b = minhash_signature(ANSWER_EN), minhash_signature(variant)
    assert signature_similarity(a, b) > 0.8
    assert set(lsh_band_keys(a)) & set(lsh_band_keys(b))


def test_chinese_near_duplicate_shares_a_band_key():
    variant = ANSWER_ZH.replace("硬毛刷", "软毛刷")
    a, b = minhash_signature(ANSWER_ZH), minhash_signature(variant)
    assert set(lsh_band_keys(a)) & set(lsh_band_keys(b))


def test_unrelated_texts_share_no_band_key():
    texts = [ANSWER_EN, ANSWER_ZH, *UNRELATED]
    keys = [set(lsh_band_keys(minhash_signature(t))) for t in texts]
    for i in range(len(texts)):
        assert len(keys[i]) == LSH_BANDS
        for j in range(i + 1, len(texts)):
            assert not keys[i] & keys[j], (i, j)


def test_same_question_different_answer_is_not_a_near_duplicate():
    a = pair_dedup_text("How do I clean a cast iron pan?", "", ANSWER_EN)
    b = pair_dedup_text("How do I clean a cast iron pan?", "", UNRELATED[1])
    assert not set(lsh_band_keys(minhash_signature(a))) & set(lsh_band_keys(minhash_signature(b)))


def test_band_keys_are_salted_by_band_index():
    sig = np.zeros(NUM_PERM, dtype=np.uint32)  # every band has identical rows
    keys = lsh_band_keys(sig)
    assert len(set(keys)) == LSH_BANDS
    assert all(-(2**63) <= k < 2**63 for k in keys)


def test_blank_text_has_no_band_keys():
    assert lsh_band_keys(minhash_signature("")) == []
    assert lsh_band_keys(minhash_signature(" ,.!? ")) == []


def test_estimated_similarity_tracks_true_jaccard():
    variant = one_word_changed(one_word_changed(ANSWER_EN, 10, "hot"), 30, "cold")

    def shingles(t, n=5):
        s = normalize_for_dedup(t)
        return {s[i : i + n] for i in range(len(s) - n + 1)}

    a, b = shingles(ANSWER_EN), shingles(variant)
    true = len(a & b) / len(a | b)
    est = signature_similarity(minhash_signature(ANSWER_EN), minhash_signature(variant))
    assert abs(true - est) < 0.1


def test_band_key_arguments_are_checked():
    with pytest.raises(ValueError, match="exceeds signature length"):
        lsh_band_keys(minhash_signature("abc"), bands=20, rows=13)


# --- losers ----------------------------------------------------------------------------


def test_group_losers_keeps_smallest():
    assert group_losers(["c", "a", "b", "a"]) == ["b", "c"]
    assert group_losers([7]) == []
    assert group_losers([]) == []


def test_near_duplicate_losers():
    assert near_duplicate_losers([[3, 1, 2], [5, 4]]) == {2, 3, 5}
    assert near_duplicate_losers([[1], [2]]) == set()
    assert near_duplicate_losers([]) == set()
    # Chain A~B, B~C: B and C go, A (the component minimum) stays.
    assert near_duplicate_losers([["a", "b"], ["b", "c"]]) == {"b", "c"}
    # Star through C: A and B are each smallest in their group and both stay.
    assert near_duplicate_losers([["a", "c"], ["b", "c"]]) == {"c"}


def components(groups) -> dict:
    """Union-find: root -> members of each connected component of the groups."""
    parent: dict = {}

    def find(x):
        parent.setdefault(x, x)
        while parent[x] != x:
            x = parent[x]
        return x

    for g in groups:
        for x in g[1:]:
            parent[find(x)] = find(g[0])
    members: dict = {}
    for g in groups:
        for x in g:
            members.setdefault(find(x), set()).add(x)
    return members


def test_component_minimum_always_survives():
    rng = np.random.default_rng(0)
    for _ in range(200):
        groups = [list(rng.choice(30, size=rng.integers(1, 5), replace=False)) for _ in range(8)]
        losers = near_duplicate_losers(groups)
        members = components(groups)
        for comp in members.values():
            assert min(comp) not in losers
        for g in groups:
            assert min(g) not in losers or any(min(g) in h and min(h) < min(g) for h in groups)


def test_end_to_end_near_dup_grouping():
    docs = {
        "id1": ANSWER_EN,
        "id2": one_word_changed(ANSWER_EN, 12, "wire"),
        "id3": UNRELATED[0],
        "id4": ANSWER_ZH,
        "id5": ANSWER_ZH.replace("很多年", "几十年"),
    }
    buckets: dict[int, list[str]] = {}
    for doc_id, text in docs.items():
        for key in lsh_band_keys(minhash_signature(text)):
            buckets.setdefault(key, []).append(doc_id)
    assert near_duplicate_losers(buckets.values()) == {"id2", "id5"}


def _pair(pair_id: str, confidence: float, instruction: str, output: str) -> dict:
    return {"id": pair_id, "confidence": confidence, "exact_key": exact_key(instruction, "", output),
            "band_keys": lsh_band_keys(minhash_signature(pair_dedup_text(instruction, "", output)))}


def test_kept_pair_indexes_keeps_the_most_confident_then_smallest_id_of_each_group():
    q = "How do I clean a cast iron pan?"
    rows = [
        _pair("b", 0.6, q, ANSWER_EN),
        _pair("a", 0.6, q.upper(), ANSWER_EN),  # an exact copy after normalisation, smaller id
        _pair("c", 0.9, q, one_word_changed(ANSWER_EN, 12, "wire")),  # a near copy, more confident
        _pair("d", 0.5, "What is this?", UNRELATED[0]),
    ]
    assert kept_pair_indexes(rows) == ([2, 3], 1, 1)
    assert kept_pair_indexes(rows, near=False) == ([1, 2, 3], 1, 0)
    assert kept_pair_indexes(rows, exact=False, near=False) == ([0, 1, 2, 3], 0, 0)
    assert kept_pair_indexes([]) == ([], 0, 0)
