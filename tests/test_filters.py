import dataclasses
import re

import pytest

from transforms.filters import (
    _LOWERING_UNSAFE,
    _NAV_SPLIT,
    DEFAULT_FILTER_CONFIG,
    REASONS,
    FilterConfig,
    TermSearch,
    _term_pattern,
    _trie_pattern,
    bad_word_patterns,
    bad_word_searches,
    check_answer_is_question,
    check_bad_words,
    check_boilerplate,
    check_harmful,
    check_lang_agreement,
    check_lengths,
    check_link_list,
    check_output_repeats_instruction,
    find_bad_words,
    lang_agreement,
    reject_reason,
)

CFG = DEFAULT_FILTER_CONFIG

GOOD_EN = (
    "How do I reset my password?",
    "",
    (
        "Open the sign-in page, choose 'Forgot password' and follow the link we e-mail you. "
        "The link stays valid for 24 hours."
    ),
    "en",
)
GOOD_ZH = (
    "如何重置密码？",
    "",
    "打开登录页面，点击“忘记密码”，然后按照邮件中的链接设置新密码。链接在24小时内有效。",
    "zh",
)


def run(check, instruction, output, lang="en", input_=""):
    return check(instruction, input_, output, lang, CFG)


# --- good pairs pass everything ------------------------------------------------


@pytest.mark.parametrize("pair", [GOOD_EN, GOOD_ZH])
def test_good_pairs_are_kept(pair):
    lang = pair[3]
    assert reject_reason(*pair) is None
    assert reject_reason(*pair, instruction_lang=(lang, 0.9), output_lang=(lang, 0.95)) is None


def test_reasons_are_listed():
    for reason in [
        "instruction_too_short",
        "output_too_long",
        "answer_is_question",
        "boilerplate",
        "bad_words",
        "lang_mismatch",
        "link_list",
    ]:
        assert reason in REASONS


# --- lengths --------------------------------------------------------------------


@pytest.mark.parametrize(
    "instruction,output,lang,reason",
    [
        ("Why?", GOOD_EN[2], "en", "instruction_too_short"),
        ("Help me", GOOD_EN[2], "en", "instruction_too_short"),  # 7 chars < 10
        ("Supercalifragilistic?", GOOD_EN[2], "en", "instruction_too_short"),  # one word
        ("How " + "very " * 250 + "long?", GOOD_EN[2], "en", "instruction_too_long"),
        (GOOD_EN[0], "Yes, it is.", "en", "output_too_short"),  # 11 chars < 20
        (GOOD_EN[0], "https://example.com/account/reset-password", "en", "output_too_short"),  # one word
        (GOOD_EN[0], "word " * 1001, "en", "output_too_long"),
        (
            GOOD_EN[0],
            "\n".join(f"Step {i}: do thing number {i}." for i in range(42)),
            "en",
            "output_too_many_lines",
        ),
        ("怎么办？", GOOD_ZH[2], "zh", "instruction_too_short"),  # 4 CJK chars < 5
        (GOOD_ZH[0], "可以，没问题。", "zh", "output_too_short"),  # 7 chars < 10
        (GOOD_ZH[0], "好" * 5001, "zh", "output_too_long"),
        ("   ", GOOD_EN[2], "en", "empty"),
        (GOOD_EN[0], "", "en", "empty"),
    ],
)
def test_length_rejections(instruction, output, lang, reason):
    assert run(check_lengths, instruction, output, lang) == reason


@pytest.mark.parametrize(
    "instruction,output,lang",
    [
        GOOD_EN[0::2][:2] + ("en",),
        ("Define entropy.", "Entropy measures how many microscopic states fit a macrostate.", "en"),
        ("什么是光合作用？", "植物利用光能合成有机物的过程。", "zh"),  # 8 and 15 chars: fine for Chinese
        ("什么是光合作用？", "植物利用光能合成有机物的过程。", ""),  # CJK detected from the text itself
        ("如何安装Python？", "在官网下载安装包，双击运行即可。", "zh"),
    ],
)
def test_length_keeps(instruction, output, lang):
    assert run(check_lengths, instruction, output, lang) is None


def test_input_too_long():
    assert run(check_lengths, GOOD_EN[0], GOOD_EN[2], input_="x " * 3000) == "input_too_long"


def test_bounds_are_parameters():
    strict = dataclasses.replace(CFG, output_min_chars=200)
    assert check_lengths(GOOD_EN[0], "", GOOD_EN[2], "en", strict) == "output_too_short"
    with pytest.raises(ValueError, match="output_min_chars"):
        FilterConfig(output_min_chars=10_000)
    with pytest.raises(ValueError, match="unknown key"):
        FilterConfig.from_mapping({"output_min_charz": 3})
    assert FilterConfig.from_mapping({"output_min_chars": 30}).output_min_chars == 30


# --- output repeats instruction ---------------------------------------------------


def test_output_repeats_instruction():
    q = "How do I clean a cast iron pan after cooking?"
    assert run(check_output_repeats_instruction, q, "How do I clean a cast-iron pan after cooking") == (
        "output_repeats_instruction"
    )
    assert (
        run(check_output_repeats_instruction, "如何清洗铸铁锅？", "如何清洗铸铁锅", "zh")
        == "output_repeats_instruction"
    )
    assert (
        run(check_output_repeats_instruction, q, "Rinse it with hot water, scrub, dry it and oil it lightly.")
        is None
    )
    extraction = (
        "Extract the idiom from this passage: The project was a wild goose chase from start to finish."
    )
    assert run(check_output_repeats_instruction, extraction, "a wild goose chase") is None
    # Long outputs are decided on a prefix; the verdict is the full comparison's.
    assert run(check_output_repeats_instruction, "What is it?", "What " + "-" * 200 + " is it") == (
        "output_repeats_instruction"
    )
    assert run(check_output_repeats_instruction, "What is it?", "What is it, " + "and more " * 40) is None


def test_case_folding_never_shortens_a_text():
    # check_output_repeats_instruction bounds the folded output's length by its prefix's.
    assert all(len(chr(c).casefold()) >= 1 for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF)


# --- answer is a question ------------------------------------------------------------


@pytest.mark.parametrize(
    "output",
    [
        "Do you want to know how to reset your password?",
        "Have you tried turning it off and on again?",
        "你是不是忘记了密码？",
        "您想了解如何退货吗？",
        "What is the return policy? How long does shipping take? Can I pay with PayPal? Contact us.",
        "退货政策是什么？运费多少？可以用支付宝付款吗？",
    ],
)
def test_answer_is_question_rejects(output):
    assert run(check_answer_is_question, "Frequently asked questions", output) == "answer_is_question"


@pytest.mark.parametrize(
    "instruction,output",
    [
        ("Write three quiz questions about the solar system.", "Which planet is largest? What is a comet?"),
        (
            "Create a fun math question for children.",
            "I am an odd number. Take away a letter and I am even. What am I?",
        ),
        ("设计一份关于饮食习惯的问卷。", "1. 你喜欢烹饪吗？\n2. 你多久在外面吃一次饭？"),
    ],
)
def test_answer_is_question_exempts_requests_for_questions(instruction, output):
    assert run(check_answer_is_question, instruction, output) is None


@pytest.mark.parametrize(
    "output",
    [
        GOOD_EN[2],
        GOOD_ZH[2],
        "Why does this happen? Because the pan was not dried. Dry it on the stove for a minute.",
        "为什么会生锈？因为锅没有擦干。清洗后放在火上烤干即可。",
        # A long answer that happens to end with a rhetorical question.
        (
            "Cast iron rusts when water sits on it. Dry the pan on a warm burner, rub in a thin film "
            "of oil and store it somewhere dry. With that routine it will last for generations, "
            "and what more could you ask of a pan?"
        ),
    ],
)
def test_answer_is_question_keeps(output):
    assert run(check_answer_is_question, "How do I stop my pan rusting?", output) is None


# --- boilerplate ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "output",
    [
        "We use cookies to improve your experience. By continuing you accept our cookie policy.",
        "Copyright © 2023 Example Inc. All rights reserved.",
        "For the full instructions click here and download the PDF manual.",
        "Home | About us | Contact | Sign in",
        "Home › Products › Kitchen › Pans",
        "Please enable JavaScript to view the comments.",
        "上一篇：如何选购铸铁锅 下一篇：铸铁锅的保养方法",
        "本网站版权所有，未经许可不得转载。",
        "详细步骤请点击这里查看完整教程。",
        "登录 | 注册 | 帮助中心",
        "京ICP备12345678号 联系我们",
        "This website uses cookies. Accept all cookies or open Cookie settings.",
        "JavaScript is disabled in your browser.",
        "Skip to main content",
        "Error 404 - page not found",
        "(c) 2019 Example Ltd",
        "Powered by WordPress",
        "Share this article on Facebook or Twitter to help others.",
        "分享到：微信 微博 QQ空间",
        "点击查看更多精彩内容",
        "Popular recipes\nView all »",
        "Great recipe, thanks!\nRead more\nShare",
    ],
)
def test_boilerplate_rejects(output):
    assert run(check_boilerplate, "How do I season a cast iron pan?", output) == "boilerplate"


@pytest.mark.parametrize(
    "output",
    [
        GOOD_EN[2],
        GOOD_ZH[2],  # mentions 登录页面 inside a sentence
        "Sign in to your account, open Settings and choose Subscriptions to cancel the plan.",
        "请先登录您的账户，然后在设置中选择订阅管理。",
        "Chocolate chip cookies keep for a week in an airtight tin.",
        "Run cd /home/user/projects and then ls -la to list the files.",
        "If x > 5 the loop stops; otherwise it reads more input.",
        "I read more than ten books a year, mostly history.",
    ],
)
def test_boilerplate_keeps(output):
    assert run(check_boilerplate, "How do I cancel my subscription?", output) is None


def test_boilerplate_in_instruction():
    assert run(check_boilerplate, "Cookie policy: we use cookies on this site", GOOD_EN[2]) == "boilerplate"


# --- link lists -------------------------------------------------------------------------


def test_link_list_rejects_menu_columns():
    nav = "Home\nProducts\nPricing\nBlog\nCareers\nPress\nPrivacy Policy\nContact Us"
    assert run(check_link_list, "What can I find on this site?", nav) == "link_list"
    nav_zh = "新闻中心\n产品介绍\n解决方案\n客户案例\n人才招聘\n投资者关系"
    assert run(check_link_list, "关于我们公司的介绍", nav_zh, "zh") == "link_list"


def test_link_list_exempts_instructions_that_ask_for_a_list():
    dishes = "Risotto\nLasagne\nArancini\nPolenta\nOssobuco\nGelato\nTiramisu"
    assert run(check_link_list, "Give some examples of Italian dishes.", dishes) is None
    assert run(check_link_list, "Italian cooking", dishes) == "link_list"
    pay = "支付宝\n微信支付\n银联卡\n信用卡\n花呗\n货到付款"
    assert run(check_link_list, "有哪些付款方式？", pay, "zh") is None


def test_link_list_keeps_steps_and_ingredients():
    steps = (
        "Preheat the oven to 200 °C.\n"
        "Whisk the eggs with the sugar until pale.\n"
        "Fold in the flour gently.\n"
        "Pour the batter into the tin.\n"
        "Bake for 25 minutes.\n"
        "Let it cool before slicing."
    )
    assert run(check_link_list, "How do I bake a sponge cake?", steps) is None
    ingredients = "3 eggs\n100 g sugar\n100 g flour\n1 tsp baking powder\nbutter\npinch of salt"
    assert run(check_link_list, "What do I need for a sponge cake?", ingredients) is None
    short = "Home\nBlog\nContact"  # too few lines to judge
    assert run(check_link_list, "What can I find here?", short) is None


# --- bad words -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "output",
    [
        "Here is how to cook meth at home with cold medicine and lye.",
        "Step one of how to make a bomb from fertiliser is to ...",
        "Watch free porn videos in HD every day.",
        "The best blowjobs are found on our site.",  # plural
        "这里教你如何合成冰毒，只需要以下几种原料。",
        "自制炸药的方法非常简单，首先准备……",
        "你这个傻逼，连这个都不会。",
    ],
)
def test_bad_words_reject(output):
    assert run(check_bad_words, "How do I do this?", output) == "bad_words"


@pytest.mark.parametrize(
    "output",
    [
        GOOD_EN[2],
        GOOD_ZH[2],
        "A cock crowed at dawn while the farmer checked the chicken coop.",  # rooster, not listed
        "Scunthorpe and Penistone are towns in England.",  # word boundaries, not substrings
        "The reporter covered the drug trafficking trial in detail.",
        "The methodology section explains how samples were taken.",  # 'meth' inside a word
        "警方破获一起制毒案件，缴获大量毒品。",  # news about drugs is not a synthesis recipe
        "Flame retardant fabrics are required in theatres.",
    ],
)
def test_bad_words_keep(output):
    assert run(check_bad_words, "What happened?", output) is None


# An online-pharmacy FAQ: no pair names the drug, so single words cannot catch it.
PHARMACY_PAIRS = [
    (
        "Do I need a prescription to order?",
        "No prescription is needed. Just add the pills to your cart and pay. We never ask for a doctor's note.",
    ),
    (
        "Will customs or the police find my package?",
        "Our stealth packaging hides the pills inside ordinary products so your parcel looks like a normal gift.",
    ),
    (
        "How many pills can I take at once?",
        "Take as many as you need to feel good. Buy in bulk for bigger discounts.",
    ),
    ("Can I order oxycodone today?", "Yes, we ship oxycodone overnight delivery worldwide, paid in bitcoin."),
    ("安眠药哪里买？", "本店安眠药无需处方，隐蔽包装，货到付款。"),
    ("听话水怎么买？", "本店出售听话水，无色无味，包邮。"),
    # Explicit sexual narration (shape of a real Common Crawl page in the dolma samples).
    ("当时她坐在我面前，我会做什么？", "我把她按倒在沙发上，她的阴部湿湿的，她不自主地呻吟起来。"),
    ("What happened next?", "She was naked on the bed and moaned as he pinned her down."),
]


@pytest.mark.parametrize("instruction,output", PHARMACY_PAIRS)
def test_harmful_rules_reject(instruction, output):
    assert run(check_harmful, instruction, output) == "harmful"
    assert reject_reason(instruction, "", output, "en") in ("harmful", "bad_words")


@pytest.mark.parametrize(
    "instruction,output",
    [
        (
            "How many ibuprofen tablets can I take?",
            "Adults can take one or two 200 mg tablets every four to six hours, no more than six a day.",
        ),
        (
            "Will customs seize my package?",
            "Packages are rarely held by customs; if one is, we reship it free.",
        ),
        (
            "Is oxycodone addictive?",
            "Yes. Oxycodone is an opioid with a high risk of dependence; use it only as prescribed.",
        ),
        ("失眠可以买安眠药吗？", "安眠药属于处方药，需要医生开具处方后在药店购买，请勿自行服用。"),
        ("什么是迷药？", "迷药是指能使人失去知觉的药物，警方提醒市民提高警惕，不要接受陌生人的饮料。"),
        ("做爱后阴道出血是怎么回事？", "可能是宫颈炎症或黏膜轻微损伤，出血反复出现时应及时到妇科就诊检查。"),
        (
            "Is it normal for nipples to hurt while breastfeeding?",
            "Mild tenderness in the first week is common; pain that persists usually means a poor latch.",
        ),
    ],
)
def test_harmful_rules_keep(instruction, output):
    assert run(check_harmful, instruction, output) is None


def test_harmful_rules_need_the_rule_form(tmp_path):
    (tmp_path / "bad_words_en.txt").write_text("slur\n", encoding="utf-8")
    (tmp_path / "harmful_rules_en.txt").write_text("pills no prescription\n", encoding="utf-8")
    cfg = dataclasses.replace(CFG, wordlist_dir=str(tmp_path))
    with pytest.raises(ValueError, match="subject\\|subject ; cue\\|cue"):
        check_harmful("a", "", "b", "en", cfg)


def test_trie_pattern_matches_like_a_flat_alternation():
    from transforms.filters import WORDLIST_DIR, _read_terms

    terms = sorted({" ".join(t.casefold().split()) for t in _read_terms(WORDLIST_DIR / "bad_words_en.txt")})
    flat = re.compile(
        r"\b(?:"
        + "|".join(r"\s+".join(map(re.escape, t.split())) for t in sorted(terms, key=len, reverse=True))
        + r")(?:s|es)?\b",
        re.IGNORECASE,
    )
    trie = re.compile(r"\b" + _trie_pattern(terms) + r"(?:s|es)?\b", re.IGNORECASE)
    texts = [" ".join(terms), "Blow  jobs, cumshots and a CUNT; make meth or make methods?", GOOD_EN[2]]
    for text in texts:
        assert [m.group(0) for m in trie.finditer(text)] == [m.group(0) for m in flat.finditer(text)]


def test_bad_word_lists_load_once_and_have_comments_stripped():
    assert bad_word_patterns() is bad_word_patterns()
    assert find_bad_words("# --- slurs") == []
    assert find_bad_words("how to make a   bomb") == ["how to make a   bomb"]  # any whitespace run


def test_ascii_text_finds_what_the_case_insensitive_patterns_find():
    # ASCII text is searched lower-cased with a case-sensitive pattern (faster); the verdicts
    # must equal the general patterns' on any casing, at word edges, plurals and whitespace runs.
    en, _ = bad_word_patterns()
    texts = ["How to make a BOMB at home", "how To Make A\t\tBomb", "Blow  Jobs", "BLOWJOBS!", "a bombastic talk",
             "Cumshots", "tomb", "HOW TO MAKE A BOMBS", "make-a-bomb", "x" * 50 + " Meth", "methods of science"]
    for text in texts:
        assert text.isascii()
        expected = "bad_words" if en.search(text) else None
        assert check_bad_words(text, "", "", "en", CFG) == expected, text
        assert check_bad_words("q", text, "", "en", CFG) == expected, text
    assert check_bad_words("How to make a BOMB", "", "", "en", CFG) == "bad_words"
    en_search, zh_search = bad_word_searches(None)
    # The packaged lists take both shortcuts: English lower-cased, Chinese only with a Han character.
    assert en_search.lowered is not None and en_search.han is None
    assert zh_search.han is not None and zh_search.lowered is None


def test_lowering_unsafe_characters_are_those_re_and_str_disagree_on():
    # Where lower-casing a text changes what a case-insensitive pattern of ASCII terms finds: a
    # non-ASCII character re matches to an ASCII letter, or one whose lower case is not one
    # character of the same word and space classes. Derived here from re and str themselves.
    letters = re.compile("|".join("abcdefghijklmnopqrstuvwxyz"), re.IGNORECASE)
    word = re.compile(r"\w")
    unsafe = set()
    for code in range(0x80, 0x110000):
        if 0xD800 <= code <= 0xDFFF:
            continue
        ch = chr(code)
        low = ch.lower()
        if (letters.fullmatch(ch) or len(low) != 1 or low.isascii()
                or bool(word.match(ch)) != bool(word.match(low)) or ch.isspace() != low.isspace()):
            unsafe.add(ch)
    assert unsafe == set(_LOWERING_UNSAFE.pattern[1:-1])


@pytest.mark.parametrize("text", [
    "How to make a BOMB", "a cumſhot", "CUMſHOTS", "KİKE", "kıke", "\u212aike", "Kike", "blow\u00a0 job", "ἀ bomb",
    "制作炸弹", "如何制作炸弹？", "AV女优", "av女優", "nothing here", "naïve", "", "Σίσυφος bombs",
])
def test_term_search_finds_what_its_pattern_finds(text):
    terms = ["bomb", "cumshot", "kike", "blow job", "make a bomb"]
    pattern = _term_pattern(terms, bounded=True)
    assert TermSearch.of(pattern, terms).search(text) == bool(pattern.search(text))
    zh_terms = ["制作炸弹", "av女优", "炸弹"]
    zh_pattern = re.compile(_trie_pattern(zh_terms), re.IGNORECASE)
    zh_search = TermSearch.of(zh_pattern, zh_terms)
    assert zh_search.search(text) == bool(zh_pattern.search(text))
    # A term without a Han character leaves the text to the pattern alone.
    mixed = ["avxx", "坏词"]
    assert TermSearch.of(re.compile(_trie_pattern(mixed), re.IGNORECASE), mixed).han is None


def test_nav_split_lookahead_splits_as_the_bare_alternation():
    bare = re.compile(r"\n|\s*[|·•»›]\s*|\s+[/>]\s+|\s{3,}")
    texts = ["Home | About  |Contact", "a / b > c/d a>b", "x   y\n\nz", "论坛 › 猫咪版块 › 喂养交流", " | ", "\t•\t",
             "a \n | b", "Home » FAQ", "no separators at all", "  /  >  ", "·", ""]
    for text in texts:
        assert _NAV_SPLIT.split(text) == bare.split(text), text


def test_lists_the_ascii_path_cannot_serve_keep_the_general_path(tmp_path):
    # A Chinese-list term in Latin letters matches ASCII text in any case; an English term with
    # an accent matches its upper case. Neither may be lost to the ASCII path.
    (tmp_path / "bad_words_en.txt").write_text("naïveword\n", encoding="utf-8")
    (tmp_path / "bad_words_zh.txt").write_text("avxx\n坏词\n", encoding="utf-8")
    cfg = dataclasses.replace(CFG, wordlist_dir=str(tmp_path))
    assert check_bad_words("Watch AVXX now", "", "", "en", cfg) == "bad_words"
    assert check_bad_words("A NAÏVEWORD here", "", "", "en", cfg) == "bad_words"
    assert check_bad_words("这是坏词", "", "", "zh", cfg) == "bad_words"
    assert check_bad_words("Nothing here", "", "", "en", cfg) is None
    (tmp_path / "ascii").mkdir()
    (tmp_path / "ascii" / "bad_words_en.txt").write_text("plainword\n", encoding="utf-8")
    (tmp_path / "ascii" / "bad_words_zh.txt").write_text("坏词\n", encoding="utf-8")
    cfg = dataclasses.replace(CFG, wordlist_dir=str(tmp_path / "ascii"))
    assert check_bad_words("PlainWords everywhere", "", "", "en", cfg) == "bad_words"
    assert check_bad_words("plain words", "", "", "en", cfg) is None


def test_missing_wordlists_is_a_clear_error(tmp_path):
    cfg = dataclasses.replace(CFG, wordlist_dir=str(tmp_path))
    with pytest.raises(FileNotFoundError, match="bad_words_en.txt"):
        check_bad_words("a", "", "b", "en", cfg)


# --- language agreement -----------------------------------------------------------------


def test_lang_agreement_rule():
    assert lang_agreement("en", 0.95, "en", 0.99) is None
    assert lang_agreement("en", 0.95, "zh", 0.99) == "lang_mismatch"
    # Low confidence abstains: short questions are often misread by fastText.
    assert lang_agreement("fr", 0.45, "en", 0.99) is None
    assert lang_agreement("en", 0.95, "de", 0.30) is None
    # Same script (Latin): only near-certain predictions count.
    assert lang_agreement("fr", 0.86, "en", 0.93) is None  # "Can I reheat sautéed broccoli?"
    assert lang_agreement("fr", 0.97, "en", 0.99) == "lang_mismatch"
    assert lang_agreement("ru", 0.85, "en", 0.9) == "lang_mismatch"  # different scripts
    # Sibling codes count as one language.
    assert lang_agreement("wuu", 0.8, "zh", 0.99) is None
    assert lang_agreement("hr", 0.8, "sr", 0.9) is None
    # Missing predictions (blank text) abstain.
    assert lang_agreement("", 0.0, "en", 0.99) is None
    assert lang_agreement("en", 0.45, "zh", 0.99, min_confidence=0.4) == "lang_mismatch"


def test_lang_check_in_reject_reason():
    assert check_lang_agreement(("en", 0.9), ("zh", 0.9), CFG) == "lang_mismatch"
    assert reject_reason(*GOOD_EN, instruction_lang=("en", 0.97), output_lang=("zh", 0.9)) == "lang_mismatch"
    assert reject_reason(*GOOD_EN, instruction_lang=("en", 0.97), output_lang=("en", 0.9)) is None
    assert reject_reason(*GOOD_EN) is None  # no predictions, no check


def test_lang_agreement_with_real_langid():
    from transforms.langid import get_language_identifier

    lid = get_language_identifier()
    q_en, a_en = GOOD_EN[0], GOOD_EN[2]
    q_zh, a_zh = GOOD_ZH[0], GOOD_ZH[2]
    preds = dict(zip(["q_en", "a_en", "q_zh", "a_zh"], lid.identify_many([q_en, a_en, q_zh, a_zh])))
    assert (
        reject_reason(q_en, "", a_en, "en", instruction_lang=preds["q_en"], output_lang=preds["a_en"]) is None
    )
    assert (
        reject_reason(q_zh, "", a_zh, "zh", instruction_lang=preds["q_zh"], output_lang=preds["a_zh"]) is None
    )
    # A recipe FAQ question fastText calls French (0.86) keeps its English answer.
    q = "Can I reheat sautéed broccoli?"
    a = "Yes, you can. Simply cover and reheat for 30-60 seconds in the microwave until hot again."
    assert lid.identify(q)[0] == "fr"
    assert (
        reject_reason(q, "", a, "en", instruction_lang=lid.identify(q), output_lang=lid.identify(a)) is None
    )
    mixed = reject_reason(
        "How do I change the language of the app to English?",
        "",
        a_zh,
        "zh",
        instruction_lang=lid.identify("How do I change the language of the app to English?"),
        output_lang=preds["a_zh"],
    )
    assert mixed == "lang_mismatch"


# --- order --------------------------------------------------------------------------------


def test_first_reason_wins_in_fixed_order():
    # Too short *and* a question *and* boilerplate: length is checked first.
    assert reject_reason("How do I reset my password?", "", "Click here?", "en") == "output_too_short"
    # Long enough, a question, and boilerplate: answer_is_question comes before boilerplate.
    assert (
        reject_reason(
            "How do I reset my password?", "", "Did you click here on the sign-in page already?", "en"
        )
        == "answer_is_question"
    )


# --- real data (skipped when ../shared/webdata is absent) -----------------------------------


def read_jsonl(path) -> list[dict]:
    import gzip
    import json

    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def test_real_chinese_qa_pairs_are_kept(webdata):
    """BELLE's open-QA answers are clean Chinese pairs: only the three one-phrase answers go."""
    from collections import Counter

    from transforms.langid import get_language_identifier

    lid = get_language_identifier()
    items = [
        e for e in read_jsonl(webdata / "instructions/belle-zh/eval_set.json") if e["std_answer"].strip()
    ]
    reasons = Counter()
    for e in items:
        q, a = e["question"], e["std_answer"]
        reasons[
            reject_reason(q, "", a, "zh", instruction_lang=lid.identify(q), output_lang=lid.identify(a))
        ] += 1
    open_qa = [e for e in items if e["class"] == "open qa"]
    open_qa_dropped = [e for e in open_qa if reject_reason(e["question"], "", e["std_answer"], "zh")]
    assert len(open_qa_dropped) <= 3, [e["std_answer"] for e in open_qa_dropped]
    assert reasons[None] >= 0.9 * len(items), reasons
    # Nothing in BELLE's eval set is harmful or page furniture; "路口交通" must not read as "口交".
    assert reasons["bad_words"] == 0
    assert reasons["harmful"] == 0
    assert reasons["boilerplate"] == 0


def test_real_pages_have_no_bad_word_or_harmful_false_positives(webdata):
    """95 recipe pages in a dozen languages, CCNet text and Chinese tutorials."""
    import json

    texts = []
    for path in sorted((webdata / "text/dolma-ccnet-cc_en_head").glob("*.jsonl.gz")):
        texts += [doc["text"] for doc in read_jsonl(path)]
    for path in sorted((webdata / "zh").glob("*.groundtruth.jsonl.gz")):
        texts += [doc["content"] for doc in read_jsonl(path)]
    for path in sorted((webdata / "recipes").glob("*.json")):
        if path.name == "MANIFEST.json":
            continue
        recipe = json.loads(path.read_text(encoding="utf-8"))
        texts.append(
            "\n".join(
                [recipe.get("title", "")]
                + recipe.get("ingredients", [])
                + recipe.get("instructions_list", [])
            )
        )
    assert len(texts) > 100
    hits = {i: find_bad_words(t) for i, t in enumerate(texts)}
    assert not any(hits.values()), {i: h for i, h in hits.items() if h}
    harmful = [t[:80] for t in texts if check_harmful(t, "", "", "", CFG)]
    assert not harmful
