"""extract_markup: JSON-LD and microdata → JSON-LD-shaped dicts of the wanted types."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from tests.conftest import WEBDATA
from transforms.mine import schema_org
from transforms.mine.schema_org import extract_markup, parse_json_ld, type_names

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "html"


def _page(*scripts: str, body: str = "") -> str:
    tags = "".join(f'<script type="application/ld+json">{s}</script>' for s in scripts)
    return f"<html><head>{tags}</head><body>{body}</body></html>"


def _webdata(*parts: str) -> Path:
    path = WEBDATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real web data not found at {path} (set INSTRUCTMIX_WEBDATA)")
    return path


# -- JSON-LD ---------------------------------------------------------------------


def test_json_ld_types_are_bare_names_and_context_dropped():
    doc = {
        "@context": "https://schema.org",
        "@type": "https://schema.org/FAQPage",
        "mainEntity": [
            {
                "@type": "schema:Question",
                "name": "Q?",
                "acceptedAnswer": {"@type": "http://schema.org/Answer", "text": "A."},
            }
        ],
    }
    (item,) = extract_markup(_page(json.dumps(doc)))
    assert item == {
        "@type": "FAQPage",
        "mainEntity": [
            {"@type": "Question", "name": "Q?", "acceptedAnswer": {"@type": "Answer", "text": "A."}}
        ],
    }


def test_unwanted_types_are_dropped_and_wanted_ones_found_inside_them():
    doc = [
        {"@context": "https://schema.org", "@type": "Organization", "name": "Acme"},
        {"@type": "BreadcrumbList", "itemListElement": []},
        {"@type": "WebPage", "mainEntity": {"@type": "FAQPage", "mainEntity": []}},
        {
            "@type": "ItemList",
            "itemListElement": [{"@type": "ListItem", "item": {"@type": "Recipe", "name": "Soup"}}],
        },
    ]
    items = extract_markup(_page(json.dumps(doc)))
    assert [type_names(i) for i in items] == [["FAQPage"], ["Recipe"]]


def test_graph_is_flattened_and_references_inlined_once():
    """Yoast: an FAQPage whose questions are separate @graph nodes."""
    graph = {
        "@context": "https://schema.org",
        "@graph": [
            {
                "@type": ["WebPage", "FAQPage"],
                "@id": "#page",
                "mainEntity": [{"@id": "#q1"}, {"@id": "#q2"}],
                "isPartOf": {"@id": "#site"},
            },
            {"@type": "WebSite", "@id": "#site", "name": "Site"},
            {
                "@type": "Question",
                "@id": "#q1",
                "name": "One?",
                "mainEntityOfPage": {"@id": "#page"},
                "acceptedAnswer": {"@type": "Answer", "text": "First."},
            },
            {"@type": "Question", "@id": "#q2", "name": "Two?", "acceptedAnswer": {"@id": "#a2"}},
            {"@type": "Answer", "@id": "#a2", "text": "Second."},
        ],
    }
    (page,) = extract_markup(_page(json.dumps(graph)))
    assert page["@type"] == ["WebPage", "FAQPage"]
    q1, q2 = page["mainEntity"]
    assert (q1["name"], q1["acceptedAnswer"]["text"]) == ("One?", "First.")
    assert q1["mainEntityOfPage"] == {"@id": "#page"}  # a back-reference stays a reference
    assert q2["acceptedAnswer"] == {"@type": "Answer", "@id": "#a2", "text": "Second."}
    assert page["isPartOf"] == {"@id": "#site"}


def test_cyclic_references_terminate():
    graph = {
        "@graph": [
            {"@type": "HowTo", "@id": "#h", "name": "Loop", "step": [{"@id": "#s1"}]},
            {"@type": "HowToStep", "@id": "#s1", "text": "one", "itemListElement": [{"@id": "#s2"}]},
            {
                "@type": "HowToStep",
                "@id": "#s2",
                "text": "two",
                "itemListElement": [{"@id": "#s1"}, {"@id": "#h"}],
            },
        ]
    }
    (howto,) = extract_markup(_page(json.dumps(graph)))
    s1 = howto["step"][0]
    s2 = s1["itemListElement"][0]
    assert s2["text"] == "two" and s2["itemListElement"] == [{"@id": "#s1"}, {"@id": "#h"}]


def test_broken_script_skipped_good_one_kept():
    good = json.dumps({"@type": "HowTo", "name": "Tie a tie", "step": ["Cross", "Loop"]})
    items = extract_markup(_page('{"@type": "Recipe", "name": "x", ', good, "not json at all"))
    assert [i["name"] for i in items] == ["Tie a tie"]


def test_fixture_page_keeps_good_scripts_around_a_broken_one():
    html = (FIXTURES / "en_howto_article.html").read_text(encoding="utf-8")
    items = extract_markup(html)
    assert [type_names(i) for i in items] == [["HowTo"], ["WebPage", "FAQPage"]]
    assert all(i.get("name") != "Broken" for i in items)


@pytest.mark.parametrize(
    "text, expected",
    [
        ('{"a": [1, 2,], "b": {"c": 3,},}', {"a": [1, 2], "b": {"c": 3}}),
        ('<!-- {"a": 1} -->', {"a": 1}),
        ('//<![CDATA[\n{"a": 1}\n//]]>', {"a": 1}),
        ('{"a": "line\nbreak"}', {"a": "line\nbreak"}),
        ("", None),
        ("{", None),
        ("[" * 100_000, None),
    ],
)
def test_parse_json_ld_repairs_and_rejects(text, expected):
    assert parse_json_ld(text) == expected


def test_type_attribute_variants_are_found():
    html = (
        '<script type="Application/LD+JSON ">{"@type": "Recipe", "name": "A"}</script>'
        '<script type="text/javascript">{"@type": "Recipe", "name": "B"}</script>'
    )
    assert [i["name"] for i in extract_markup(html)] == ["A"]


def test_input_without_markup():
    assert extract_markup("") == []
    assert extract_markup("<p>plain page</p>") == []
    assert extract_markup(b"<p>bytes page</p>") == []


# -- microdata -------------------------------------------------------------------


def test_microdata_faq_page():
    html = (FIXTURES / "microdata_faq_en.html").read_text(encoding="utf-8")
    (faq,) = extract_markup(html)
    assert faq["@type"] == "FAQPage"
    questions = faq["mainEntity"]
    assert [q["@type"] for q in questions] == ["Question", "Question"]
    assert questions[0]["name"] == "How often should I service my bike?"
    assert questions[0]["acceptedAnswer"]["@type"] == "Answer"
    assert "Commuters: every 6 months" in questions[0]["acceptedAnswer"]["text"]
    assert questions[1]["acceptedAnswer"]["text"] == "Yes, including motors & batteries from most brands."


def test_microdata_qa_page_accepted_and_suggested_answers():
    html = (FIXTURES / "microdata_qa_zh.html").read_text(encoding="utf-8")
    (qa,) = extract_markup(html)
    assert qa["@type"] == "QAPage"
    question = qa["mainEntity"]
    assert question["name"] == "Python 怎么把列表反转？"
    assert question["acceptedAnswer"]["upvoteCount"] == "12"
    assert [a["upvoteCount"] for a in question["suggestedAnswer"]] == ["5", "30"]


def test_microdata_only_read_when_page_says_itemscope(monkeypatch):
    def fail(*_args, **_kwargs):
        raise AssertionError("extruct must not run")

    monkeypatch.setattr(schema_org._MICRODATA, "extract", fail)
    assert extract_markup(_page(json.dumps({"@type": "Recipe", "name": "A"}))) == [
        {"@type": "Recipe", "name": "A"}
    ]


def test_microdata_unwanted_types_not_handed_to_extruct(monkeypatch):
    seen = []
    original = schema_org._MICRODATA.extract

    def spy(html, *args, **kwargs):
        seen.append(html)
        return original(html, *args, **kwargs)

    monkeypatch.setattr(schema_org._MICRODATA, "extract", spy)
    html = (
        '<div itemscope itemtype="https://schema.org/Product"><span itemprop="name">Lamp</span></div>'
        '<div itemscope itemtype="https://schema.org/HowTo"><h1 itemprop="name">Fix a lamp</h1>'
        '<div itemprop="step" itemscope itemtype="https://schema.org/HowToStep">'
        '<p itemprop="text">Unplug it.</p></div></div>'
    )
    (howto,) = extract_markup(html)
    assert howto == {
        "@type": "HowTo",
        "name": "Fix a lamp",
        "step": {"@type": "HowToStep", "text": "Unplug it."},
    }
    assert len(seen) == 1 and "Lamp" not in seen[0]


def test_page_reader_finds_microdata_written_in_capitals():
    # HTML attribute names ignore case; the page reader's selector walk does too.
    from transforms.mine.html_blocks import html_to_page

    html = (
        '<html><body><DIV ITEMSCOPE ITEMTYPE="https://schema.org/HowTo"><H1 ITEMPROP="name">Fix a lamp</H1>'
        '<DIV ITEMPROP="step" ITEMSCOPE ITEMTYPE="https://schema.org/HowToStep">'
        '<P ITEMPROP="text">Unplug it.</P></DIV></DIV></body></html>'
    )
    assert html_to_page(html).markup == [
        {"@type": "HowTo", "name": "Fix a lamp", "step": {"@type": "HowToStep", "text": "Unplug it."}}
    ]


# -- real third-party pages ---------------------------------------------------------


def test_zhihu_question_page_microdata():
    raw = gzip.decompress(_webdata("zh", "zhihupy3__zhihu_question_2016.html.gz").read_bytes())
    items = extract_markup(raw)
    types = [i["@type"] for i in items]
    assert types[0] == "Question" and types.count("Question") == 1
    assert types.count("Answer") >= 40
    top = items[0]["topAnswer"]
    assert top["@type"] == "Answer" and "倚天屠龙记" in top["textContent"]


def test_recipe_pages_markup_matches_manifest():
    """The recipe-scrapers manifest says which pages carry FAQPage / HowToSection markup."""
    folder = _webdata("recipes")
    manifest = json.loads((folder / "MANIFEST.json").read_text())
    misses = []
    for entry in manifest:
        items = extract_markup(gzip.decompress((folder / entry["file"]).read_bytes()))
        found = set(_all_types(items))
        for flag, name in (("has_FAQPage", "FAQPage"), ("has_HowToSection", "HowToSection")):
            if entry[flag] != (name in found):
                misses.append((entry["file"], name))
        if entry["has_HowToStep"] and "HowToStep" not in found:
            misses.append((entry["file"], "HowToStep"))
    # bongeats declares an empty recipeInstructions list; the manifest still flags HowToStep.
    assert misses == [("bongeats.com__bongeats_1.testhtml.gz", "HowToStep")]


def _all_types(value) -> list[str]:
    stack, names = [value], []
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            names.extend(type_names(node))
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return names
