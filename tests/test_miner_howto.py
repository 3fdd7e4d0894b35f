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


def _procedures(pg: Page) -> list[tuple[str, list[str]]]:
    found = [c for c in mine_howto(pg)]
    return [(c.instruction, c.output.splitlines()) for c in found if c.kind == KIND_HOWTO]


def test_numbered_headings_with_explanations_and_several_procedures():
    pg = page(
        h(1, "How to Care for Hydrangeas"),
        p("Hydrangeas need a little care to give big blooms."),
        h(2, "How to Care for Hydrangeas in Vases"),
        h(3, "1. Examine the Blooms"), p("Look for bright green leaves and bouncy blooms at the store."),
        h(3, "2. Prep Them"), p("Dip the cut stems in alum powder so they can soak up water."),
        h(3, "3. Provide Some Extra Care"), p("Change the water every other day with a fresh snip of the stems."),
        h(2, "How to Plant Hydrangeas in the Ground"),
        p("1. Know When to Plant Them"), p("Plant in spring or fall when temperatures are mild."),
        p("2. Choose the Right Location"), p("Hydrangeas grow best in partial shade."),
    )
    procedures = _procedures(pg)
    assert [steps for _, steps in procedures] == [
        ["1. Examine the Blooms", "2. Prep Them", "3. Provide Some Extra Care"],
        ["1. Know When to Plant Them", "2. Choose the Right Location"],
    ]
    assert "care for Hydrangeas in Vases" in procedures[0][0]
    assert "plant Hydrangeas in the Ground" in procedures[1][0]
    steps = [c for c in mine_howto(pg) if c.kind == KIND_HOWTO_STEP]
    assert steps[0].output == "Examine the Blooms\nLook for bright green leaves and bouncy blooms at the store."


def test_numbered_paragraphs_need_consecutive_numbers_from_one():
    gap = page(h(1, "How to brew tea"), p("1. Boil the water in a kettle."), p("3. Pour it over the leaves."))
    assert _procedures(gap) == []
    amounts = page(h(1, "How to brew tea"), p("2 cups of water are enough for one pot."),
                   p("3 minutes of steeping give a mild taste."))
    assert _procedures(amounts) == []  # a number without "." / ")" is a quantity, not a step


def test_chinese_numbered_headings_and_lead_in():
    pg = page(
        p("新手入门编辑词条 只需四步"),
        h(3, "1发现问题，编辑词条"), p("点击词条名旁边的“编辑”开始编辑词条。"),
        h(3, "2增删内容，修正错误"), p("改正错别字，补充新资料。"),
        h(3, "3预览效果，提交词条"), p("点击右上角的“预览”看看整体效果，再点“提交”。"),
        title="帮助中心", lang="zh",
    )
    ((instruction, steps),) = _procedures(pg)
    assert "新手入门编辑词条" in instruction
    assert steps == ["1. 发现问题，编辑词条", "2. 增删内容，修正错误", "3. 预览效果，提交词条"]


def test_chinese_numbered_step_headings_under_a_question_heading():
    pg = page(
        h(3, "如何把百度设为您的上网主页？"),
        h(6, "1.点击“工具”菜单，选择“选项”。"),
        h(6, "2.在输入框输入网址，点击确定，设置成功。"),
        h(6, "1.点击浏览器右上角的菜单按钮。"),  # the next browser's steps restart the count
        lang="zh",
    )
    ((_, steps),) = _procedures(pg)
    assert steps == ["1. 点击“工具”菜单，选择“选项”。", "2. 在输入框输入网址，点击确定，设置成功。"]


def test_procedure_told_in_prose_with_sequence_words():
    pg = page(
        h(1, "How To Scrape Search Results With Python"),
        p("I needed a way to get links from a search engine for a side project."),
        p("First, let's install the requirements. Save them into requirements.txt."),
        Block("pre", "requests\nbs4"),
        p("Then import them into your script."),
        p("Now we need to check if the request was successful."),
        p("Next is parsing the page and extracting the links."),
        Block("pre", "for a in soup.find_all('a'): print(a['href'])"),
        p("That is it. The script is simple but gets you started."),
    )
    ((instruction, steps),) = _procedures(pg)
    assert "scrape Search Results With Python" in instruction
    assert steps == ["1. First, let's install the requirements.", "2. Then import them into your script.",
                     "3. Now we need to check if the request was successful.",
                     "4. Next is parsing the page and extracting the links."]
    last = [c for c in mine_howto(pg) if c.kind == KIND_HOWTO_STEP][-1]
    assert "find_all" in last.output and "That is it" not in last.output


def test_chinese_procedure_told_in_prose():
    pg = page(
        h(1, "如何更换自行车内胎"),
        p("首先，用撬胎棒把外胎的一边撬出轮圈。"),
        p("然后取出旧内胎，检查外胎里有没有尖锐的异物。"),
        p("接着把新内胎稍微充气后塞进外胎。"),
        p("最后把外胎压回轮圈，充气到合适的气压。"),
        lang="zh",
    )
    ((_, steps),) = _procedures(pg)
    assert len(steps) == 4 and steps[0].startswith("1. 首先")


def test_prose_without_a_first_word_or_with_too_few_sequence_words_gives_nothing():
    no_first = page(h(1, "How to brew tea"), p("Then boil the water."), p("Next pour it."), p("Finally wait."))
    assert _procedures(no_first) == []
    two = page(h(1, "How to brew tea"), p("First, boil the water."), p("Then pour it over the leaves."))
    assert _procedures(two) == []
