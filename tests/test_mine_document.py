"""The per-document pipeline: extraction, language, miners, PII, filters, classifier, counters."""

from __future__ import annotations

from collections import Counter

import pytest

from transforms.mine.document import PairMiner
from transforms.mine.instruction_classifier import train_classifier, training_lines
from transforms.records import PAIR_COLUMNS, Provenance

FAQ_HTML = """<html><head><title>Library help</title></head><body>
<nav><a href="/">Home</a> <a href="/events">Events</a></nav>
<main><h1>Library help</h1><h2>FAQ</h2>
<h3>How do I renew a book online?</h3>
<p>Sign in to your account, open Loans and press Renew next to the book. Each book can be renewed twice
unless another reader has placed a hold on it.</p>
<h3>Who do I contact about a lost library card?</h3>
<p>Write to our front desk at help.desk@library-example.org or call 555-867-5309 and we will block the
old card and print a new one for you the same day.</p>
</main><footer>© 2024 City Library</footer></body></html>"""

MIXED_LANG_HTML = """<html><body><main><h2>常见问题</h2>
<h3>How long does delivery take to Shanghai?</h3>
<p>快递一般三到五个工作日送达上海，偏远地区可能需要七天左右，发货后我们会短信通知运单号。</p>
</main></body></html>"""

FRENCH_HTML = """<html><body><main><h2>Questions fréquentes</h2>
<h3>Combien de temps dure la livraison en France métropolitaine ?</h3>
<p>La livraison standard prend entre trois et cinq jours ouvrés, et la livraison express arrive en un
jour ouvré après l'expédition de votre commande depuis notre entrepôt.</p></main></body></html>"""

HARMFUL_HTML = """<html><body><main><h2>FAQ</h2>
<h3>Do I need a prescription to order oxycodone?</h3>
<p>No prescription is needed. Add the pills to your cart and pay in bitcoin; we ship in stealth packaging
so customs or the police will not find your parcel.</p></main></body></html>"""


@pytest.fixture(scope="module")
def miner() -> PairMiner:
    return PairMiner()


def _mine(miner: PairMiner, html: str | None = None, text: str | None = None, url: str = "https://lib.example/faq"):
    counters: Counter = Counter()
    rows = list(miner.mine(url, html, text, counters, Provenance(source_file="f.warc.gz", source_record="r1")))
    return rows, counters


def test_rows_carry_every_pair_column_and_the_dedup_keys(miner):
    rows, counters = _mine(miner, FAQ_HTML)
    assert {r["instruction"] for r in rows} >= {"How do I renew a book online?", "Who do I contact about a lost library card?"}
    for row in rows:
        assert set(PAIR_COLUMNS) <= set(row)
        assert row["lang"] == "en" and row["lang_score"] > 0.5
        assert row["source_file"] == "f.warc.gz" and row["source_record"] == "r1"
        assert row["exact_key"] and row["band_keys"]
    assert counters["lang:en"] == 1


def test_pii_is_scrubbed_and_counted(miner):
    rows, counters = _mine(miner, FAQ_HTML)
    lost_card = next(r for r in rows if "lost library card" in r["instruction"])
    assert "<EMAIL>" in lost_card["output"] and "<PHONE>" in lost_card["output"]
    assert "library-example.org" not in lost_card["output"]
    assert counters["pii_scrubbed"] >= 2


def test_question_and_answer_in_different_languages_are_dropped(miner):
    rows, counters = _mine(miner, MIXED_LANG_HTML)
    assert rows == []
    assert counters["drop:lang_mismatch"] >= 1


def test_unwanted_languages_are_dropped_unless_all_are_allowed(miner):
    rows, counters = _mine(miner, FRENCH_HTML)
    assert rows == [] and counters["drop:language_not_wanted"] >= 1
    rows, _ = _mine(PairMiner(languages=()), FRENCH_HTML)
    assert rows and rows[0]["lang"] == "fr"


def test_harmful_pairs_are_dropped_with_their_reason(miner):
    rows, counters = _mine(miner, HARMFUL_HTML)
    assert rows == [] and counters["drop:harmful"] >= 1


def test_plain_text_records_are_mined_too(miner):
    text = ("Q: How often should a bicycle chain be oiled?\n"
            "A: Oil the chain every 300 kilometres or after riding in rain, then wipe off the excess so it does not collect grit.")
    rows, _ = _mine(miner, text=text)
    assert rows and rows[0]["instruction"] == "How often should a bicycle chain be oiled?"


def test_empty_documents_are_counted_not_mined(miner):
    rows, counters = _mine(miner, "<html><body></body></html>")
    assert rows == [] and counters["skip:no_content"] == 1


def test_classifier_scores_every_pair_and_its_threshold_filters(tmp_path):
    questions = [f"How do I {v} the {n}? You {v} the {n} by opening the panel and following the steps in order."
                 for v in ("clean", "reset", "repair", "replace", "install", "update") for n in ("router", "printer", "boiler", "filter", "valve")]
    passages = [f"The {n} was installed in the old town hall in {1900 + i}, where it stayed until the council sold the building."
                for i, n in enumerate(["organ", "clock", "bell", "stove", "piano", "lamp"] * 5)]
    model = tmp_path / "clf.bin"
    train_classifier(training_lines(questions, passages), str(model), epoch=30)
    scored, _ = _mine(PairMiner(classifier_path=str(model), classifier_threshold=0.0), FAQ_HTML)
    assert scored and all(0.0 <= r["classifier_score"] <= 1.0 for r in scored)
    strict, counters = _mine(PairMiner(classifier_path=str(model), classifier_threshold=1.01), FAQ_HTML)
    assert strict == [] and counters["drop:classifier_below_threshold"] == len(scored)


def test_faq_in_collapsed_panels_is_mined_in_english_and_chinese(miner):
    from tests.test_html_blocks import _COLLAPSED_FAQ_EN, _COLLAPSED_FAQ_ZH

    en, _ = _mine(miner, html=_COLLAPSED_FAQ_EN, url="https://help.example.org/faq")
    assert [r["instruction"] for r in en] == ["How do I reset my password?", "Can I change my user name?"]
    assert all(r["kind"] == "faq" for r in en)
    zh, _ = _mine(miner, html=_COLLAPSED_FAQ_ZH, url="https://help.example.cn/faq")
    assert [r["instruction"] for r in zh] == ["我忘记了登录密码，应该怎么办？", "为什么我无法上传图片？"]
    assert zh[0]["output"].endswith("收到验证码后设置新的密码。")
