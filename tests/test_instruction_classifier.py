import pickle
import random

import pytest

from transforms.mine.instruction_classifier import (
    LABEL_INSTRUCTION,
    LABEL_OTHER,
    InstructionClassifier,
    classifier_text,
    get_instruction_classifier,
    pair_text,
    random_passages,
    train_classifier,
    training_lines,
)

# --- synthetic but realistic data ----------------------------------------------------

TASKS_EN = [
    ("reset my router", "unplug it for thirty seconds", "wait until the status light turns green"),
    ("clean a cast iron pan", "rinse it with hot water", "dry it on a low burner and oil it lightly"),
    ("renew my passport", "fill in the online application", "post the old passport with the receipt"),
    ("change a flat tyre", "loosen the wheel nuts", "jack up the car and swap the wheel"),
    ("back up my phone", "open the settings app", "turn on cloud backup and connect to Wi-Fi"),
    (
        "remove a red wine stain",
        "blot the stain with a paper towel",
        "cover it with salt and rinse with cold water",
    ),
    ("apply for a refund", "open your order history", "choose the item and give a reason"),
    ("install Python on Windows", "download the installer", "tick 'Add to PATH' and click Install"),
    ("repot a houseplant", "water it the day before", "move it to a pot one size larger"),
    ("cancel my subscription", "go to the billing page", "click Cancel plan and confirm"),
    ("descale a kettle", "fill it with equal parts vinegar and water", "boil, leave for an hour and rinse"),
    (
        "set up two-factor authentication",
        "open your security settings",
        "scan the QR code with an authenticator app",
    ),
]
CONCEPTS_EN = [
    ("photosynthesis", "the process plants use to turn light, water and carbon dioxide into sugar"),
    ("inflation", "the rate at which the general level of prices rises over time"),
    ("a mortgage", "a loan used to buy property, secured against the property itself"),
    ("an API", "a set of rules that lets one program request data or actions from another"),
    ("compound interest", "interest calculated on both the original sum and the interest already earned"),
    ("a VPN", "a service that encrypts your traffic and routes it through another server"),
    ("sourdough", "bread leavened by wild yeast and lactic acid bacteria instead of baker's yeast"),
    ("a deductible", "the amount you pay yourself before your insurance starts to pay"),
]
TASKS_ZH = [
    ("重置路由器", "拔掉电源等待三十秒", "等指示灯变绿后重新连接"),
    ("清洗铸铁锅", "用热水冲洗", "放在小火上烘干并抹一层油"),
    ("办理护照", "在网上填写申请表", "带身份证到出入境大厅拍照"),
    ("申请退款", "打开订单页面", "选择商品并填写退款原因"),
    ("备份手机数据", "打开设置", "开启云备份并连接无线网络"),
    ("去除衣服上的红酒渍", "用纸巾吸干", "撒上盐后用冷水冲洗"),
    ("在电脑上安装Python", "从官网下载安装包", "勾选添加到环境变量后点击安装"),
    ("给绿植换盆", "前一天浇透水", "移到大一号的花盆里"),
    ("取消自动续费", "进入账户设置", "关闭自动续费并确认"),
    ("给水壶除垢", "倒入白醋和水", "煮沸后静置一小时再冲洗"),
]
CONCEPTS_ZH = [
    ("光合作用", "植物利用光能把二氧化碳和水转化为有机物的过程"),
    ("通货膨胀", "一段时间内物价总体水平持续上涨的现象"),
    ("复利", "把利息计入本金再计算利息的方法"),
    ("房贷", "以所购房产作抵押向银行申请的贷款"),
    ("免赔额", "保险公司开始赔付前由投保人自己承担的金额"),
]

PLACES = [
    "Ashford",
    "the river valley",
    "Port Elliot",
    "the old mill town",
    "Kingsbridge",
    "the northern coast",
]
PEOPLE = ["the mayor", "a young teacher", "the fishermen", "my grandmother", "the new doctor", "two brothers"]
EVENTS = [
    "opened a small bakery on the main square",
    "watched the storm roll in from the sea",
    "argued about the price of wool for most of the afternoon",
    "walked to the station before the sun came up",
    "kept a diary of every ship that entered the harbour",
    "rebuilt the bridge after the spring floods",
    "sold apples from a cart outside the church",
    "wrote letters to a cousin who had moved abroad",
]
DETAILS = [
    "The streets were quiet and the shops had not yet opened.",
    "Nobody in the village could remember a colder winter.",
    "It was the year the railway finally reached the valley.",
    "Rain fell for three days without stopping.",
    "The harvest that autumn was the best in a decade.",
    "Most families still cooked on open fires.",
    "The newspaper printed the story on its front page.",
    "Children played by the canal until dark.",
]
PLACES_ZH = ["江南小镇", "北方的村子", "海边的渔村", "老城区", "山脚下的小镇"]
PEOPLE_ZH = ["老校长", "年轻的医生", "几个渔民", "我的外婆", "邻居家的兄弟俩"]
EVENTS_ZH = [
    "在集市上开了一家小面馆",
    "每天清晨沿着河边散步",
    "把旧房子修葺一新",
    "给远方的亲戚写了很多信",
    "在港口看着渔船进进出出",
    "在田里忙着收割稻谷",
]
DETAILS_ZH = [
    "那年冬天特别冷，河面结了厚厚的冰。",
    "街上很安静，店铺还没有开门。",
    "镇上的人都说那是十年来最好的收成。",
    "雨下了整整三天，路上全是泥。",
    "孩子们在巷子里玩到天黑才回家。",
    "报纸在头版刊登了这个消息。",
]


def make_pairs(rng: random.Random, n: int) -> list[str]:
    out = []
    for _ in range(n):
        kind = rng.randrange(6)
        if kind == 0:
            task, s1, s2 = rng.choice(TASKS_EN)
            out.append(
                pair_text(f"How do I {task}?", "", f"First, {s1}. Then {s2}. It usually takes a few minutes.")
            )
        elif kind == 1:
            name, definition = rng.choice(CONCEPTS_EN)
            out.append(pair_text(f"What is {name}?", "", f"{name.capitalize()} is {definition}."))
        elif kind == 2:
            task, s1, s2 = rng.choice(TASKS_EN)
            out.append(
                pair_text(
                    f"Can I {task} myself?", "", f"Yes. You only need a few minutes: {s1}, and then {s2}."
                )
            )
        elif kind == 3:
            task, s1, s2 = rng.choice(TASKS_ZH)
            out.append(pair_text(f"如何{task}？", "", f"首先{s1}，然后{s2}。整个过程只需要几分钟。"))
        elif kind == 4:
            name, definition = rng.choice(CONCEPTS_ZH)
            out.append(pair_text(f"什么是{name}？", "", f"{name}是指{definition}。"))
        else:
            task, s1, s2 = rng.choice(TASKS_ZH)
            out.append(pair_text(f"我可以自己{task}吗？", "", f"可以。只要{s1}，再{s2}就行了。"))
    return out


def make_pages(rng: random.Random, n: int) -> list[str]:
    pages = []
    for _ in range(n):
        if rng.random() < 0.5:
            sentences = [
                f"In {rng.randint(1850, 1990)}, {rng.choice(PEOPLE)} in {rng.choice(PLACES)} "
                f"{rng.choice(EVENTS)}. {rng.choice(DETAILS)}"
                for _ in range(12)
            ]
            pages.append(" ".join(sentences))
        else:
            sentences = [
                f"{rng.randint(1950, 2000)}年，{rng.choice(PLACES_ZH)}的{rng.choice(PEOPLE_ZH)}"
                f"{rng.choice(EVENTS_ZH)}。{rng.choice(DETAILS_ZH)}"
                for _ in range(12)
            ]
            pages.append("".join(sentences))
    return pages


@pytest.fixture(scope="module")
def data():
    rng = random.Random(42)
    positives = make_pairs(rng, 400)
    pages = make_pages(rng, 80)
    negatives = random_passages(pages, 400, seed=7, lengths=[len(p) for p in positives])
    return {
        "train_pos": positives[:300],
        "test_pos": positives[300:],
        "train_neg": negatives[:300],
        "test_neg": negatives[300:],
    }


@pytest.fixture(scope="module")
def model_path(data, tmp_path_factory):
    path = tmp_path_factory.mktemp("clf") / "instruction.bin"
    lines = training_lines(data["train_pos"], data["train_neg"], seed=0)
    valid = training_lines(data["test_pos"], data["test_neg"], seed=0)
    metrics = train_classifier(lines, path, valid_lines=valid, bucket=50_000, epoch=20)
    assert metrics["n_train"] == 600
    assert metrics["n_eval"] == 200
    assert metrics["evaluated_on"] == "validation"
    assert metrics["precision"] > 0.9
    assert metrics["model_path"] == str(path)
    return path


# --- text helpers ---------------------------------------------------------------------------


def test_classifier_text_is_single_line_tokenised_and_idempotent():
    text = classifier_text("How do I RESET my password?\nOpen Settings.")
    assert text == "how do i reset my password ? open settings ."
    zh = classifier_text("如何重置密码？\n打开设置。")
    assert zh == "如 何 重 置 密 码 ? 打 开 设 置 。"  # NFKC turns ？ into ?, keeps 。
    assert classifier_text(text) == text
    assert classifier_text(zh) == zh
    assert "\n" not in pair_text("Q?", "context", "A.")


def test_classifier_text_truncates_by_tokens_idempotently():
    from transforms.mine.instruction_classifier import MAX_TOKENS

    long_text = "如何安装Python？" * 500 + " word" * 2000
    once = classifier_text(long_text)
    assert len(once.split()) == MAX_TOKENS
    assert classifier_text(once) == once


def test_pair_text_joins_fields_without_a_separator_token():
    assert pair_text("What is DNS?", "", "A naming system.") == classifier_text(
        "What is DNS?\nA naming system."
    )
    assert pair_text("Translate:", "Bonjour", "Hello") == "translate : bonjour hello"


def test_training_lines_labels_and_deterministic_shuffle():
    lines = training_lines(["What is DNS? A naming system."], ["It rained all day.", "  "], seed=1)
    assert sorted(lines) == [
        f"{LABEL_INSTRUCTION} what is dns ? a naming system .",
        f"{LABEL_OTHER} it rained all day .",
    ]
    pos = [f"question {i}?" for i in range(50)]
    neg = [f"story {i}." for i in range(50)]
    assert training_lines(pos, neg, seed=3) == training_lines(pos, neg, seed=3)
    assert training_lines(pos, neg, seed=3) != training_lines(pos, neg, seed=4)


def test_random_passages_are_windows_of_the_pages():
    rng = random.Random(0)
    pages = make_pages(rng, 10) + ["too short"]
    passages = random_passages(pages, 50, seed=5, min_chars=80, max_chars=300)
    assert len(passages) == 50
    assert passages == random_passages(pages, 50, seed=5, min_chars=80, max_chars=300)
    assert passages != random_passages(pages, 50, seed=6, min_chars=80, max_chars=300)
    for p in passages:
        assert any(p in page for page in pages)
        assert 40 <= len(p) <= 300
    assert random_passages(["short"], 5, seed=0) == []
    sized = random_passages(pages, 30, seed=1, lengths=[120])
    assert all(60 <= len(p) <= 120 for p in sized)


# --- the trained model -------------------------------------------------------------------------


def test_scores_held_out_questions_above_passages(model_path, data):
    clf = InstructionClassifier(model_path)
    pos = clf.score_many(data["test_pos"])
    neg = clf.score_many(data["test_neg"])
    assert all(0.0 <= s <= 1.0 for s in pos + neg)
    assert sum(pos) / len(pos) > sum(neg) / len(neg) + 0.5
    assert sum(s > 0.5 for s in pos) >= 0.9 * len(pos)
    assert sum(s < 0.5 for s in neg) >= 0.9 * len(neg)
    # Pairwise ranking (AUC) on the held-out set.
    wins = sum(p > n for p in pos for n in neg)
    assert wins / (len(pos) * len(neg)) > 0.95


def test_scores_unseen_real_texts_sensibly(model_path):
    clf = InstructionClassifier(model_path)
    question = clf.score(pair_text("How do I reset my router?", "", "First, unplug it. Then wait a minute."))
    story = clf.score("In 1921, the fishermen in Port Elliot rebuilt the bridge after the spring floods.")
    assert question > story


def test_save_load_roundtrip_and_cache(model_path, data):
    texts = data["test_pos"][:10] + data["test_neg"][:10]
    a = InstructionClassifier(model_path).score_many(texts)
    b = InstructionClassifier(str(model_path)).score_many(texts)
    assert a == b
    cached = get_instruction_classifier(str(model_path))
    assert get_instruction_classifier(str(model_path)) is cached
    assert pickle.loads(pickle.dumps(cached)) is cached
    assert cached.score("") == 0.0
    assert cached.score_many([]) == []
    assert cached.score(texts[0]) == pytest.approx(a[0])


def test_training_is_deterministic(data, tmp_path, model_path):
    # Load and free models in this process first: in-process fastText training
    # would then drift (see train_classifier); the fresh-process run must not.
    InstructionClassifier(model_path).score("warm up")
    lines = training_lines(data["train_pos"][:100], data["train_neg"][:100], seed=0)
    train_classifier(lines, tmp_path / "a.bin", bucket=10_000, epoch=5)
    InstructionClassifier(tmp_path / "a.bin").score("warm up")
    train_classifier(lines, tmp_path / "b.bin", bucket=10_000, epoch=5)
    assert (tmp_path / "a.bin").read_bytes() == (tmp_path / "b.bin").read_bytes()
    texts = data["test_pos"][:20] + data["test_neg"][:20]
    assert InstructionClassifier(tmp_path / "a.bin").score_many(texts) == InstructionClassifier(
        tmp_path / "b.bin"
    ).score_many(texts)


def test_errors_name_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="train_classifier"):
        InstructionClassifier(tmp_path / "missing.bin")
    with pytest.raises(ValueError, match="training_lines"):
        train_classifier([], tmp_path / "x.bin")
    with pytest.raises(ValueError, match="__label__ prefix"):
        train_classifier(["just words"], tmp_path / "x.bin")
    with pytest.raises(ValueError, match="need both"):
        train_classifier([f"{LABEL_INSTRUCTION} what is dns ?"], tmp_path / "x.bin")


# --- real data (skipped when ../shared/webdata is absent) ------------------------------------


def read_jsonl(path) -> list[dict]:
    import gzip
    import json

    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def test_real_instructions_score_above_real_web_text(webdata, tmp_path):
    """Alpaca/BELLE tasks vs. windows of CCNet pages and Chinese tutorials, split by page."""
    tasks = read_jsonl(webdata / "instructions/alpaca-self-instruct-seed/seed_tasks.jsonl")
    tasks += read_jsonl(webdata / "instructions/belle-zh/zh_seed_tasks.json")
    raw = [(t["instruction"], i["input"], i["output"]) for t in tasks for i in t["instances"]]
    raw += [
        (e["question"], "", e["std_answer"])
        for e in read_jsonl(webdata / "instructions/belle-zh/eval_set.json")
        if e["std_answer"].strip()
    ]
    random.Random(0).shuffle(raw)
    pages = []
    for path in sorted((webdata / "text/dolma-ccnet-cc_en_head").glob("*.jsonl.gz")):
        pages += [doc["text"] for doc in read_jsonl(path)]
    for path in sorted((webdata / "zh").glob("*.groundtruth.jsonl.gz")):
        pages += [doc["content"] for doc in read_jsonl(path)]
    test_pages, train_pages = pages[::4], [p for i, p in enumerate(pages) if i % 4]

    n_test = len(raw) // 5
    lengths = [len(q) + len(i) + len(a) for q, i, a in raw]
    pos_train = [pair_text(*r) for r in raw[n_test:]]
    pos_test = [pair_text(*r) for r in raw[:n_test]]
    neg_train = random_passages(train_pages, len(pos_train), seed=1, lengths=lengths)
    neg_test = random_passages(test_pages, n_test, seed=2, lengths=lengths)

    path = tmp_path / "real.bin"
    metrics = train_classifier(training_lines(pos_train, neg_train), path, bucket=50_000)
    assert metrics["n_train"] == len(pos_train) + len(neg_train)
    clf = InstructionClassifier(path)
    pos, neg = clf.score_many(pos_test), clf.score_many(neg_test)
    auc = sum(p > n for p in pos for n in neg) / (len(pos) * len(neg))
    assert auc > 0.9
