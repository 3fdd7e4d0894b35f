"""How-to procedures and their steps (transforms/mine/miners/howto.py), English and Chinese."""

from __future__ import annotations

import re

from templates import load_yaml
from transforms.mine.blocks import HEADING, LIST_ITEM, PARAGRAPH, Block, Page
from transforms.mine.miners.howto import (
    CONFIDENCE_ORDERED_LIST,
    CONFIDENCE_STEP_MARKERS,
    TITLE_ONLY_PENALTY,
    HowtoTask,
    mine_howto,
    parse_howto_title,
)
from transforms.records import KIND_HOWTO, KIND_HOWTO_STEP


def h(level: int, text: str) -> Block:
    return Block(HEADING, text, level=level)


def p(text: str) -> Block:
    return Block(PARAGRAPH, text)


def ol(text: str, order: int, group: int = 1, level: int = 1) -> Block:
    return Block(LIST_ITEM, text, level=level, order=order, group=group)


def ul(text: str, group: int = 1, level: int = 1) -> Block:
    return Block(LIST_ITEM, text, level=level, order=0, group=group)


def page(*blocks: Block, title: str = "", url: str = "https://example.com/tea", lang: str = "en") -> Page:
    return Page(url=url, title=title, blocks=list(blocks), lang=lang)


def template_regex(phrasing: str) -> re.Pattern[str]:
    pattern = (
        re.escape(phrasing).replace(re.escape("{task}"), "(?P<task>.+)").replace(re.escape("{n}"), r"\d+")
    )
    return re.compile(pattern + "$")


def is_filled_template(instruction: str, key: str, lang: str, form: str = "verb_phrase") -> bool:
    phrasings = load_yaml("mining.yaml", f"howto.{key}.{lang}.{form}")
    return any(template_regex(phrasing).match(instruction) for phrasing in phrasings)


TEA = [
    h(1, "How to Make Tea"),
    p("A good cup takes five minutes."),
    ol("Boil fresh water in a kettle.", 1),
    ol("Put a tea bag into the cup.", 2),
    ul("Use green tea for a lighter taste.", group=2, level=2),
    ol("Pour the water and wait three minutes.", 3),
    h(2, "Related"),
]


def test_ordered_list_under_how_to_heading():
    found = list(mine_howto(page(*TEA)))
    howto, *steps = found
    assert howto.kind == KIND_HOWTO and howto.miner == "howto"
    assert howto.output == (
        "1. Boil fresh water in a kettle.\n2. Put a tea bag into the cup.\n3. Pour the water and wait three minutes."
    )
    assert howto.confidence == CONFIDENCE_ORDERED_LIST
    assert is_filled_template(howto.instruction, "instructions", "en")
    assert "make Tea" in howto.instruction  # first letter lower-cased, the rest kept
    assert [s.kind for s in steps] == [KIND_HOWTO_STEP] * 3
    assert steps[1].output == "Put a tea bag into the cup.\n- Use green tea for a lighter taste."
    for n, step in enumerate(steps, start=1):
        assert is_filled_template(step.instruction, "step_instructions", "en")
        assert str(n) in step.instruction
        assert step.confidence < howto.confidence


def test_item_text_after_a_nested_list_continues_its_step():
    pg = page(
        h(2, "How to Repot a Plant"),
        ol("Prepare a bigger pot with fresh soil.", 1),
        ul("Terracotta breathes better.", group=2, level=2),
        ol("Water it well afterwards.", 1),
        ol("Place the plant and fill the gaps.", 2),
    )
    howto, first, _second = mine_howto(pg)
    assert howto.output == "1. Prepare a bigger pot with fresh soil.\n2. Place the plant and fill the gaps."
    assert first.output == (
        "Prepare a bigger pot with fresh soil.\n- Terracotta breathes better.\nWater it well afterwards."
    )


def test_phrasing_is_deterministic_per_url_and_varies_across_urls():
    first = [c.instruction for c in mine_howto(page(*TEA, url="https://a.example/tea"))]
    again = [c.instruction for c in mine_howto(page(*TEA, url="https://a.example/tea"))]
    assert first == again
    phrasings = {next(mine_howto(page(*TEA, url=f"https://example.com/{i}"))).instruction for i in range(40)}
    assert len(phrasings) >= 3


def test_step_markers_with_explanations():
    pg = page(
        h(1, "How do I replace a bike tire?"),
        h(2, "Step 1: Remove the wheel"),
        p("Open the quick-release lever."),
        p("Pull the wheel out of the frame."),
        h(2, "Step 2"),
        p("Lever the old tire off the rim. Work your way around slowly."),
        h(2, "Step 3 - Fit the new tire"),
        p("Push the bead back over the rim."),
        h(1, "Comments"),
        p("Great guide!"),
    )
    howto, *steps = mine_howto(pg)
    assert howto.output == "1. Remove the wheel\n2. Lever the old tire off the rim.\n3. Fit the new tire"
    assert howto.confidence == CONFIDENCE_STEP_MARKERS
    assert "replace a bike tire" in howto.instruction
    assert [s.output for s in steps] == [
        "Remove the wheel\nOpen the quick-release lever.\nPull the wheel out of the frame.",
        "Lever the old tire off the rim. Work your way around slowly.",
        "Fit the new tire\nPush the bead back over the rim.",
    ]


def test_step_paragraphs_under_page_title_only():
    pg = page(
        p("Step 1. Unplug the router."),
        p("Step 2. Wait thirty seconds, then plug it back in."),
        p("Share this article"),
        title="How to Reset Your Router | TechTips",
    )
    howto, *steps = mine_howto(pg)
    assert howto.output == "1. Unplug the router.\n2. Wait thirty seconds, then plug it back in."
    assert howto.confidence == round(CONFIDENCE_STEP_MARKERS - TITLE_ONLY_PENALTY, 2) == 0.7
    assert steps[1].output == "Wait thirty seconds, then plug it back in.\nShare this article"


def test_chinese_step_markers():
    pg = page(
        h(1, "如何安装Python？"),
        h(2, "第一步：下载安装包"),
        p("打开官网，下载最新版本的安装包。"),
        h(2, "第二步：运行安装程序"),
        p("双击安装包，勾选添加到PATH。"),
        p("步骤3：验证安装"),
        p("在命令行输入 python --version。"),
        lang="zh",
    )
    howto, *steps = mine_howto(pg)
    assert howto.output == "1. 下载安装包\n2. 运行安装程序\n3. 验证安装"
    assert is_filled_template(howto.instruction, "instructions", "zh")
    assert "安装Python" in howto.instruction
    assert steps[0].output == "下载安装包\n打开官网，下载最新版本的安装包。"
    assert all(is_filled_template(s.instruction, "step_instructions", "zh") for s in steps)


def test_chinese_method_title_with_ordered_list():
    pg = page(
        h(2, "清洗洗衣机的方法"),
        ol("倒入专用清洁剂。", 1),
        ol("选择桶自洁程序运行。", 2),
        ol("擦干密封圈和门。", 3),
        lang="zh",
    )
    howto, *_ = mine_howto(pg)
    assert howto.output == "1. 倒入专用清洁剂。\n2. 选择桶自洁程序运行。\n3. 擦干密封圈和门。"
    assert "清洗洗衣机" in howto.instruction


def test_chinese_tutorial_title_uses_noun_phrase_templates():
    pg = page(h(1, "Python安装教程"), ol("下载官方安装包", 1), ol("运行安装程序", 2), lang="zh")
    for candidate in mine_howto(pg):
        key = "instructions" if candidate.kind == KIND_HOWTO else "step_instructions"
        assert is_filled_template(candidate.instruction, key, "zh", "noun_phrase")


def test_numbering_restart_ends_the_run():
    pg = page(
        h(1, "How to Clean a Laptop Keyboard"),
        h(2, "Method 1"),
        h(3, "Step 1: Turn the laptop off"),
        h(3, "Step 2: Blow out the crumbs"),
        h(2, "Method 2"),
        h(3, "Step 1: Wipe with alcohol"),
    )
    howto, *_ = mine_howto(pg)
    assert howto.output == "1. Turn the laptop off\n2. Blow out the crumbs"


def test_nested_how_to_heading_keeps_its_own_steps():
    pg = page(
        h(1, "How to Care for Houseplants"),
        p("Plants need light and water."),
        h(2, "How to Repot a Plant"),
        ol("Water the plant a day before.", 1),
        ol("Tip the pot and slide the plant out.", 2),
    )
    found = [c for c in mine_howto(pg) if c.kind == KIND_HOWTO]
    assert len(found) == 1
    assert "repot a Plant" in found[0].instruction


def test_parse_howto_title():
    assert parse_howto_title("How to Tie a Tie (with Pictures)") == HowtoTask(
        "tie a Tie", "en", "verb_phrase"
    )
    assert parse_howto_title("How can I reset my password?") == HowtoTask(
        "reset my password", "en", "verb_phrase"
    )
    assert parse_howto_title("How to Use USB Drives: A Guide") == HowtoTask(
        "use USB Drives", "en", "verb_phrase"
    )
    assert parse_howto_title("How to Back Up an iPhone") == HowtoTask(
        "back Up an iPhone", "en", "verb_phrase"
    )
    assert parse_howto_title("How to USB-boot a Mac") == HowtoTask("USB-boot a Mac", "en", "verb_phrase")
    assert parse_howto_title("Python安装教程：详细步骤") == HowtoTask("Python安装", "zh", "noun_phrase")
    assert parse_howto_title("怎样才能学好英语") == HowtoTask("学好英语", "zh", "verb_phrase")
    for text in ("How It Works", "怎么办", "Why to Choose Us", "Pricing"):
        assert parse_howto_title(text) is None, text


# Negatives: things that look like a procedure but are navigation or too thin.


def test_single_step_gives_nothing():
    pg = page(h(1, "How to Make Tea"), ol("Boil water and pour it over the leaves.", 1), p("Enjoy."))
    assert list(mine_howto(pg)) == []


def test_unordered_list_gives_nothing():
    pg = page(h(2, "How to Apply"), ul("Online application form"), ul("By post to our office"))
    assert list(mine_howto(pg)) == []


def test_short_link_list_under_how_to_heading_gives_nothing():
    pg = page(h(2, "How to"), ol("Home", 1), ol("Guides", 2), ol("Contact us", 3))
    assert list(mine_howto(pg)) == []


def test_breadcrumb_ending_in_the_page_title_gives_nothing():
    pg = page(
        ol("eHow", 1),
        ol("Other DIY Crafts", 2),
        ol("Other DIY Projects", 3),
        ol("How to Build a Terrarium", 4),
        p("Glass cloche terrariums are appealing."),
        title="How to Build a Terrarium (with Pictures) | eHow",
    )
    assert list(mine_howto(pg)) == []


def test_related_articles_list_gives_nothing():
    pg = page(
        h(2, "How to Save Money"),
        ol("How to Stop Impulse Buying Today", 1),
        ol("Aaron Hernandez Is An Idiot, But He Still Might Get Away With It", 2),
        ol("Why do budgets fail so often?", 3),
    )
    assert list(mine_howto(pg)) == []


def test_table_of_contents_gives_nothing():
    pg = page(
        h(1, "How to Bake Bread"),
        ol("Mix the dough well", 1),
        ol("Let the dough rise", 2),
        h(2, "Mix the dough well"),
        p("Combine flour and water."),
        h(2, "Let the dough rise"),
        p("Wait two hours."),
    )
    assert list(mine_howto(pg)) == []


def test_steps_without_how_to_title_give_nothing():
    pg = page(h(1, "Our history"), ol("Founded in a garage in 1999.", 1), ol("Moved to Berlin in 2005.", 2))
    assert list(mine_howto(pg)) == []


def test_chinese_navigation_list_gives_nothing():
    pg = page(h(2, "怎么购买门票"), ol("首页", 1), ol("赛事", 2), ol("购票", 3), lang="zh")
    assert list(mine_howto(pg)) == []


def test_chinese_numbered_step_markers_up_to_twenty():
    markers = ["第九步：擦干", "第十步：晾晒", "第十一步：收纳", "第二十步：完成"]
    pg = page(h(1, "如何清洗窗帘"), *(p(m) for m in markers), lang="zh")
    howto, *_ = mine_howto(pg)
    assert howto.output == "1. 擦干\n2. 晾晒\n3. 收纳\n4. 完成"
