"""FAQ pairs from page structure (transforms/mine/miners/faq_sections.py), English and Chinese."""

from __future__ import annotations

from transforms.mine.blocks import (
    DD,
    DETAILS_BODY,
    DT,
    HEADING,
    LIST_ITEM,
    PARAGRAPH,
    SUMMARY,
    Block,
    Page,
    render_blocks,
)
from transforms.mine.miners.faq_sections import (
    CONFIDENCE_HEADING,
    CONFIDENCE_HEADING_IN_FAQ,
    CONFIDENCE_HEADING_MARK_ONLY,
    faq_section_mask,
    is_faq_title,
    is_link_row,
    mine_faq_sections,
)
from transforms.records import KIND_FAQ


def h(level: int, text: str) -> Block:
    return Block(HEADING, text, level=level)


def p(text: str) -> Block:
    return Block(PARAGRAPH, text)


def li(text: str, order: int = 0, level: int = 1, group: int = 1) -> Block:
    return Block(LIST_ITEM, text, level=level, order=order, group=group)


def page(*blocks: Block, title: str = "", lang: str = "en") -> Page:
    return Page(url="https://example.com/help", title=title, blocks=list(blocks), lang=lang)


def pairs(pg: Page) -> list[tuple[str, str]]:
    return [(c.instruction, c.output) for c in mine_faq_sections(pg)]


def test_question_headings_in_faq_section():
    pg = page(
        h(1, "Acme Cloud"),
        p("Acme Cloud hosts your files."),
        h(2, "Frequently Asked Questions"),
        h(3, "How much does it cost?"),
        p("The basic plan is free."),
        p("Paid plans start at $5 a month."),
        h(3, "Which platforms are supported?"),
        p("We support:"),
        li("Windows", group=7),
        li("macOS", group=7),
        h(2, "Contact"),
        p("Write to us."),
    )
    found = list(mine_faq_sections(pg))
    assert [(c.instruction, c.output) for c in found] == [
        ("How much does it cost?", "The basic plan is free.\nPaid plans start at $5 a month."),
        ("Which platforms are supported?", "We support:\n- Windows\n- macOS"),
    ]
    assert all(c.confidence == CONFIDENCE_HEADING_IN_FAQ for c in found)
    assert all(c.kind == KIND_FAQ and c.miner == "faq_sections" and c.input == "" for c in found)


def test_faq_section_accepts_questions_without_question_mark():
    pg = page(h(2, "FAQ"), h(3, "How to cancel my subscription"), p("Open Settings and press Cancel."))
    assert pairs(pg) == [("How to cancel my subscription", "Open Settings and press Cancel.")]


def test_lone_question_heading_scores_lower_than_faq_section():
    pg = page(
        h(1, "Understanding sleep"),
        h(2, "Why do we dream?"),
        p("Dreams may help the brain consolidate memories."),
        h(2, "A change in guidelines?"),
        p("Doctors now advise a fixed bedtime."),
    )
    confidences = {c.instruction: c.confidence for c in mine_faq_sections(pg)}
    assert confidences == {
        "Why do we dream?": CONFIDENCE_HEADING,
        "A change in guidelines?": CONFIDENCE_HEADING_MARK_ONLY,
    }
    assert CONFIDENCE_HEADING < CONFIDENCE_HEADING_IN_FAQ


def test_answer_runs_to_next_heading_of_same_or_higher_level():
    pg = page(
        h(2, "What is a mutex?"),
        p("A lock that one thread holds at a time."),
        h(3, "Example"),
        p("Guard a counter with it."),
        h(2, "Next topic"),
        p("Unrelated."),
    )
    assert pairs(pg) == [
        ("What is a mutex?", "A lock that one thread holds at a time.\nExample\nGuard a counter with it.")
    ]


def test_ordered_and_nested_lists_render_as_lines():
    blocks = [li("Open the app", order=1), li("Tap Settings", order=2), li("Advanced", level=2, group=2)]
    assert render_blocks(blocks) == "1. Open the app\n2. Tap Settings\n  - Advanced"


def test_question_heading_without_answer_blocks_gives_nothing():
    assert pairs(page(h(2, "What is a mutex?"), h(2, "What is a semaphore?"))) == []
    assert pairs(page(p("Intro"), h(2, "What is a mutex?"))) == []


def test_headline_and_how_to_headings_are_left_to_other_miners():
    pg = page(
        h(1, "Will rates fall again?"),
        p("Markets expect a cut."),
        h(2, "How to Make Paper Sunflowers"),
        li("How to Build a Terrarium"),
        h(2, "如何安装Python"),
        p("下载安装包。"),
    )
    assert pairs(pg) == []


def test_answer_repeating_the_question_or_teasing_a_link_is_dropped():
    pg = page(
        h(2, "Why is the sky blue?"),
        p("Why is the sky blue"),
        h(2, "科技股为何这么牛？"),
        p("新浪财经讯 9月9日消息，多重利好来袭，科技股彻底爆发..."),
        p("2019-09-09 21:38:04"),
    )
    assert pairs(pg) == []


def test_footer_link_row_is_left_out_of_the_last_answer():
    pg = page(
        h(1, "宽带安装常见问题"),
        h(3, "搬家后宽带可以移机吗？"),
        p("可以。新地址在覆盖范围内即可免费移机一次。"),
        p("关于星河 | 法律声明 | 隐私保护 | 客服热线请在客服中心查询"),
        lang="zh",
    )
    assert pairs(pg) == [("搬家后宽带可以移机吗？", "可以。新地址在覆盖范围内即可免费移机一次。")]


def test_is_link_row():
    assert is_link_row("About | Legal | Privacy")
    assert is_link_row("论坛 › 猫咪版块 › 喂养交流")
    assert not is_link_row("Pick A or B | then restart the long-running device manager service | done")
    assert not is_link_row("Yes, for 30 days.")


def test_headline_heading_repeating_the_title_is_left_to_question_pages():
    pg = page(
        h(2, "为什么天空是蓝色的？"), p("因为瑞利散射。"), title="为什么天空是蓝色的？ - 知乎", lang="zh"
    )
    assert pairs(pg) == []


def test_definition_list_questions():
    pg = page(
        Block(DT, "Do you ship abroad?", group=1),
        Block(DD, "Yes, to 40 countries.", group=1),
        Block(DD, "Customs fees may apply.", group=1),
        Block(DT, "Latency", group=2),
        Block(DD, "The delay before a transfer starts.", group=2),
    )
    found = list(mine_faq_sections(pg))
    assert [(c.instruction, c.output) for c in found] == [
        ("Do you ship abroad?", "Yes, to 40 countries.\nCustoms fees may apply.")
    ]
    assert found[0].confidence == 0.7


def test_details_summary_questions_in_chinese():
    pg = page(
        h(2, "常见问题"),
        Block(SUMMARY, "可以退货吗？", group=3),
        Block(DETAILS_BODY, "收到商品七天内可以无理由退货。", group=3),
        Block(SUMMARY, "展开更多", group=4),
        Block(DETAILS_BODY, "更多内容。", group=4),
        lang="zh",
    )
    found = list(mine_faq_sections(pg))
    assert [(c.instruction, c.output) for c in found] == [("可以退货吗？", "收到商品七天内可以无理由退货。")]
    assert found[0].confidence == 0.85
    assert found[0].confidence == 0.85


def test_inline_q_and_a_in_one_paragraph():
    pg = page(
        p("Q: Is the trial free? A: Yes, for 30 days."),
        p("Question: Can I pay by card? Answer: Visa and Mastercard."),
    )
    assert pairs(pg) == [
        ("Is the trial free?", "Yes, for 30 days."),
        ("Can I pay by card?", "Visa and Mastercard."),
    ]


def test_inline_q_and_a_across_paragraphs_keeps_continuations_between_questions():
    pg = page(
        p("Q: How long does shipping take?"),
        p("A: Three to five days."),
        p("Express delivery takes one day."),
        p("Q: Can I change my address?"),
        p("A: Yes, until the parcel ships."),
        p("Our store opened in 1999 and sells tea."),
    )
    found = list(mine_faq_sections(pg))
    assert [(c.instruction, c.output) for c in found] == [
        ("How long does shipping take?", "Three to five days.\nExpress delivery takes one day."),
        ("Can I change my address?", "Yes, until the parcel ships."),
    ]
    assert found[0].confidence == 0.8


def test_inline_pairs_in_faq_section_get_a_bonus():
    pg = page(h(2, "FAQ"), p("Q: Is the trial free?"), p("A: Yes, for 30 days."))
    (found,) = mine_faq_sections(pg)
    assert found.confidence == 0.85


def test_inline_answer_keeps_its_list():
    pg = page(
        p("Q: How can I pay?"),
        p("A: Three ways:"),
        li("Card"),
        li("Bank transfer"),
        li("Cash"),
        p("About us."),
    )
    assert pairs(pg) == [("How can I pay?", "Three ways:\n- Card\n- Bank transfer\n- Cash")]


def test_chinese_inline_markers_with_full_width_colons():
    pg = page(
        p("问：会员可以退款吗？"),
        p("答：开通七天内可以申请全额退款。"),
        p("问题：如何修改密码？回答：在设置页面点击修改密码。"),
        lang="zh",
    )
    assert pairs(pg) == [
        ("会员可以退款吗？", "开通七天内可以申请全额退款。"),
        ("如何修改密码？", "在设置页面点击修改密码。"),
    ]


def test_question_marker_followed_by_another_question_gives_nothing():
    assert pairs(page(p("Q: Is it free?"), p("Q: Is it fast?"))) == []


def test_faq_section_paragraphs_in_chinese():
    pg = page(
        h(1, "会员中心"),
        h(2, "常见问题解答"),
        p("如何开通会员"),
        p("在个人中心点击开通会员，选择套餐后付款。"),
        p("会员可以退款吗？"),
        p("开通七天内可以申请全额退款。"),
        p("退款会在三个工作日内到账。"),
        h(2, "联系我们"),
        p("客服电话是什么？"),
        p("请拨打热线。"),
        lang="zh",
    )
    found = list(mine_faq_sections(pg))
    assert [(c.instruction, c.output) for c in found] == [
        ("如何开通会员", "在个人中心点击开通会员，选择套餐后付款。"),
        ("会员可以退款吗？", "开通七天内可以申请全额退款。\n退款会在三个工作日内到账。"),
    ]
    assert all(c.confidence == 0.8 for c in found)


def test_faq_page_title_makes_the_whole_page_a_section():
    pg = page(
        p("1. Is there a student discount?"),
        p("Yes, 50% with a valid student ID."),
        p("Do you offer refunds? Yes, within 14 days of purchase."),
        title="FAQ | Acme",
    )
    assert faq_section_mask(pg) == [True, True, True]
    assert pairs(pg) == [
        ("Is there a student discount?", "Yes, 50% with a valid student ID."),
        ("Do you offer refunds?", "Yes, within 14 days of purchase."),
    ]


def test_question_paragraphs_outside_faq_sections_are_not_faq_pairs():
    pg = page(h(2, "Our story"), p("Why did we start?"), p("Because tea matters."))
    assert pairs(pg) == []


def test_same_question_from_two_layouts_is_emitted_once():
    pg = page(h(2, "FAQ"), h(3, "Q: Is it free?"), p("A: Yes."), p("Q: Is it free?"), p("A: Yes it is."))
    assert pairs(pg) == [("Is it free?", "Yes.")]


def test_is_faq_title():
    for title in (
        "FAQ",
        "FAQs:",
        "Shipping FAQ",
        "Frequently Asked Questions (FAQ)",
        "常见问题",
        "产品常见问题解答",
        "2. Q&A",
    ):
        assert is_faq_title(title), title
    for title in (
        "Frequently, we ask questions about everything in this long heading here",
        "Pricing",
        "问题",
    ):
        assert not is_faq_title(title), title


def test_numbered_question_items_answered_by_the_items_after_them():
    pg = page(
        li("1. How do I reset my password?", group=3),
        li("Open the sign-in page and choose Forgot password.", group=3),
        li("2. Can I change my user name?", group=3),
        li("Yes: Settings, then Profile.", group=3),
        li("Only once a month.", group=3),
    )
    assert pairs(pg) == [
        ("How do I reset my password?", render_blocks([li("Open the sign-in page and choose Forgot password.", group=3)])),
        ("Can I change my user name?", render_blocks([li("Yes: Settings, then Profile.", group=3),
                                                     li("Only once a month.", group=3)])),
    ]


def test_numbered_question_items_in_chinese():
    pg = page(
        li("1、什么是IMAP？", group=2),
        li("IMAP是一种邮件访问协议，开启后客户端的操作会同步到服务器。", group=2),
        li("2、如何在手机上开启IMAP？", group=2),
        li("进入设置，选择邮箱账户，打开IMAP开关即可。", group=2),
        lang="zh",
    )
    assert [q for q, _ in pairs(pg)] == ["什么是IMAP？", "如何在手机上开启IMAP？"]


def test_question_items_need_two_answered_questions_in_the_list():
    links = page(li("1. How do I reset my password?", group=4), li("2. Can I change my user name?", group=4))
    assert pairs(links) == []  # a list of question links answers nothing
    single = page(li("1. How do I reset my password?", group=4), li("Use the sign-in page.", group=4))
    assert pairs(single) == []


def test_unnumbered_question_posts_in_a_list_are_not_faq_pairs():
    thread = page(
        li("Jun 17, 2008 #2 why not look up the index of refraction?", group=5),
        li("Jun 17, 2008 #3 This website has the information you need.", group=5),
        li("Jun 17, 2008 #4 Is number 1 right?", group=5),
        li("Jun 17, 2008 #5 I got 1.2 for 2.", group=5),
    )
    assert pairs(thread) == []


def test_a_whole_page_keeps_explicit_faq_structure_but_not_lone_question_headings():
    blocks = [h(2, "Will rates fall again in the spring?"), p("Analysts expect the bank to wait until the summer.")]
    assert pairs(page(*blocks))  # inside an article: a question heading and its section
    whole = Page(url="https://example.com/news", blocks=blocks, lang="en", whole_page=True)
    assert pairs(whole) == []  # with navigation and sidebars in the blocks: mostly headline lists
    faq = Page(url="https://example.com/help", title="FAQ", blocks=blocks, lang="en", whole_page=True)
    assert [q for q, _ in pairs(faq)] == ["Will rates fall again in the spring?"]


def test_question_paragraphs_of_a_help_page_without_faq_title():
    pg = page(
        h(2, "Calendar"),
        p("What is the calendar?"),
        p("The calendar keeps your meetings and reminders in one place."),
        p("Close"),  # a panel's button: not answer text
        p("How do I create an event?"),
        p("Click New event, fill in the time and the people, and save it."),
        p("Can I share my calendar with someone?"),
        p("Yes. Open Manage calendar, enter their address and choose what they may see."),
        p("Sharing"),  # the next section's label
    )
    assert pairs(pg) == [
        ("What is the calendar?", "The calendar keeps your meetings and reminders in one place."),
        ("How do I create an event?", "Click New event, fill in the time and the people, and save it."),
        ("Can I share my calendar with someone?",
         "Yes. Open Manage calendar, enter their address and choose what they may see."),
    ]


def test_question_paragraphs_in_chinese_and_interview_style():
    pg = page(
        p("什么叫会议与日程？入口在哪里？"),
        p("会议与日程提供新建日程、日程提醒和组织会议的功能。登录邮箱后在左侧菜单点击进入。"),
        p("关闭"),
        p("如何搜索日程？"),
        p("在事件视图左上方的搜索框输入关键字即可。"),
        p("什么是日程同步？"),
        p("在网页上修改的日程会与客户端保持同步，反之亦然。"),
        lang="zh",
    )
    assert [q for q, _ in pairs(pg)] == ["什么叫会议与日程？入口在哪里？", "如何搜索日程？", "什么是日程同步？"]
    assert pairs(pg)[0][1].startswith("会议与日程提供") and "关闭" not in pairs(pg)[0][1]


def test_question_paragraphs_need_a_run_and_density():
    two = page(p("What is the calendar?"), p("It keeps your meetings."), p("How do I add an event?"),
               p("Click New event and save it."))
    assert pairs(two) == []  # two questions may be an article's rhetorical ones
    story = [p(f"He walked on through the long grey street, number {i}, thinking about the day.") for i in range(40)]
    for at, question in ((5, "Would anyone notice that he was late again today?"), (15, "Was it really worth it?"),
                         (25, "What would his mother say about all of this?")):
        story[at] = p(question)
    assert pairs(page(*story)) == []  # a few questions among forty paragraphs: a story
    dialogue = page(*[p(t) for t in ("“Are you coming?”", "Yes, in a minute.", "“Did you lock it?”", "I did.",
                                     "“Is it raining?”", "Not yet.")])
    assert pairs(dialogue) == []  # quoted questions are dialogue


def test_question_paragraphs_of_a_thread_are_left_to_the_thread_rule():
    from transforms.mine.blocks import Post

    blocks = [p("What is the calendar?"), p("It keeps your meetings."), p("How do I add an event?"),
              p("Click New event and save it."), p("Can I share it?"), p("Yes, from Manage calendar.")]
    pg = page(*blocks)
    assert len(pairs(pg)) == 3
    pg.posts = [Post(blocks=blocks[:2]), Post(blocks=blocks[2:])]
    assert pairs(pg) == []


def test_opened_item_of_a_question_accordion():
    pg = page(
        li("How do I reset my password?", group=7),
        li("Can I change my user name? Yes: open Settings, then Profile, and type the new name there.", group=7),
        li("Where do I see my invoices?", group=7),
        li("How do I close my account?", group=7),
    )
    assert pairs(pg) == [("Can I change my user name?",
                          "Yes: open Settings, then Profile, and type the new name there.")]


def test_opened_item_of_a_chinese_question_accordion():
    pg = page(
        li("知道的财富值有什么用？ 财富值相当于您在知道的钱包，高质量的回答可以获得财富，用来悬赏提问或兑换礼品。", group=8),
        li("商城礼品怎么查询？", group=8),
        li("商城，如何反馈建议", group=8),
        li("礼品收货须知", group=8),
        lang="zh",
    )
    assert [q for q, _ in pairs(pg)] == ["知道的财富值有什么用？"]


def test_headline_list_with_subtitles_is_not_an_accordion():
    pg = page(
        li("Will rates fall again? Analysts expect the bank to wait until the summer 2 hours ago", group=9),
        li("Is the housing market cooling? Prices fell for the third month in a row 5 hours ago", group=9),
        li("Can the team win the title? The coach says the squad is ready for the last games 1 day ago", group=9),
        li("Where to eat this weekend", group=9),
    )
    assert pairs(pg) == []
    chinese = page(
        li("舆论称中国奶业走上歧路？ 官方：居心叵测 新闻 奶业 23小时前 跟贴146429", group=9),
        li("她去可可西里就是为了死？ 警方：发现时只剩骨骸 社会新闻 18小时前 跟贴114962", group=9),
        li("为什么要被强制出售？ 背后有更深层原因 国内新闻 9小时前 跟贴4604", group=9),
        lang="zh",
    )
    assert pairs(chinese) == []


def test_headline_list_under_question_headings_gives_nothing():
    zh = page(
        h(3, "男子酒驾被查演“休克” 交警：咋不去当演员呢？"), p("新闻 休克酒驾"), p("|"), p("澎湃新闻"), p("5小时前"),
        p("132 跟贴132"),
        h(3, "11城5G基站建设时间表出炉 快看有你的家乡吗？"), p("新闻 经纬"), p("中新经纬"), p("1天前"),
        lang="zh",
    )
    assert pairs(zh) == []
    en = page(h(3, "Will rates fall again this spring?"), p("Markets"), p("Reuters"), p("5 hours ago"),
              p("132 comments"))
    assert pairs(en) == []
    answered = page(h(3, "Will rates fall again this spring?"), p("Markets"),
                    p("Most analysts expect the bank to wait until the summer before it cuts again."))
    assert len(pairs(answered)) == 1  # one sentence under the heading is enough


def test_panel_of_answers_to_one_question():
    pg = page(
        h(1, "What CEOs think of public transit"),
        p("This week’s question: When is the last time you took public transportation to work?"),
        p("=========="),
        p("The last time I used public transport was a month ago, to get around downtown quickly."),
        p("Donna Abood, principal, Avison Young"),
        p("=========="),
        p("Never. In a city that is often hot or raining, transit has to be more accessible."),
        p("Alex Rodriguez-Roig, president, Boys & Girls Clubs"),
        h(2, "Related content"),
    )
    assert pairs(pg) == [  # the first answer, without its signature
        ("When is the last time you took public transportation to work?",
         "The last time I used public transport was a month ago, to get around downtown quickly."),
    ]
    scene_breaks = page(p("Was it really worth it?"), p("******"), p("He walked on through the rain for an hour."),
                        p("******"), p("The next morning the street was quiet again."))
    assert pairs(scene_breaks) == []  # no "question:" label: a story's scene breaks


def test_chinese_panel_and_a_question_without_dividers():
    pg = page(
        p("本期问题：你上一次乘坐公共交通上班是什么时候？"),
        p("————————"),
        p("上个月还坐过地铁，市中心开会时坐地铁比开车快得多。"),
        p("张先生，某公司总经理"),
        p("————————"),
        p("很久没坐了，家离公司太远，换乘也不方便。"),
        p("李女士，某银行行长"),
        lang="zh",
    )
    assert pairs(pg) == [("你上一次乘坐公共交通上班是什么时候？", "上个月还坐过地铁，市中心开会时坐地铁比开车快得多。")]
    no_dividers = page(p("This week’s question: When did you last take the bus?"),
                       p("Last month, to get downtown."), p("Never, it is too slow."))
    assert pairs(no_dividers) == []


def _interview(prompts_and_answers: list[tuple[str, str]], lang: str = "en", intro: str = "") -> Page:
    from transforms.mine.html_blocks import html_to_page

    body = "".join(f"<p><strong>{q}</strong><br>{a}</p>" for q, a in prompts_and_answers)
    pg = html_to_page(f"<html><body><article><h1>Interview</h1>{intro}{body}</article></body></html>",
                      "https://example.com/interview")
    pg.lang = lang
    return pg


def test_interview_with_bold_prompts_questions_and_statements():
    pg = _interview([
        ("What comic books did you read growing up?", "I read some Marvel, but I was more of a DC reader as a kid."),
        ("You were seeing things that were not explicit.", "Every now and then someone made them explicit, and I loved it."),
        ("Were there shows like that on television?", "The Six Million Dollar Man, which had crossovers before anyone."),
        ("What was your first project?", "A pitch for a superhero movie that never got made, back in 2005."),
    ])
    found = dict(pairs(pg))  # the question prompts also read as question paragraphs (layout 5)
    assert sorted(found) == sorted([
        "What comic books did you read growing up?", "You were seeing things that were not explicit.",
        "Were there shows like that on television?", "What was your first project?"])
    assert found["You were seeing things that were not explicit."] == (
        "Every now and then someone made them explicit, and I loved it.")


def test_chinese_interview_with_bold_prompts():
    pg = _interview([
        ("你小时候读哪些漫画？", "我读过一些漫威的作品，但更喜欢DC的超级英雄故事。"),
        ("为什么选择电视而不是电影？", "电视剧可以持续讲述，更接近漫画连载的节奏。"),
        ("你的第一个项目是什么？", "二零零五年提过一个超级英雄电影的方案，后来没有拍成。"),
        ("你说过电视更适合讲超级英雄的故事。", "是的，漫画本来就是连载的，电视剧也是一集接一集。"),
    ], lang="zh")
    found = dict(pairs(pg))
    assert sorted(found) == sorted(["你小时候读哪些漫画？", "为什么选择电视而不是电影？", "你的第一个项目是什么？",
                                    "你说过电视更适合讲超级英雄的故事。"])
    assert found["你说过电视更适合讲超级英雄的故事。"].startswith("是的")


def test_bold_names_and_emphasis_are_not_prompts():
    recipe = _interview([
        ("Chicken Bacon Ranch Pasta", "is the ultimate creamy pasta that brings bacon and chicken together."),
        ("The Best Pancake Recipe", "looks special and takes ten minutes from bowl to plate."),
        ("Why is my sauce too thick?", "The heat was too high when the cheese went in, so it seized."),
    ])
    assert pairs(recipe) == []  # one prompt left: not an interview
    emphasis = _interview([
        ("This is the most important step of all.", "Take your time with it, it decides the result."),
        ("Never skip the resting time.", "The dough needs it to relax before you shape it."),
        ("Keep the oven door shut.", "Opening it lets the steam out and the bread stays flat."),
        ("Does it work with rye?", "Yes, with a little more water."),
    ])
    assert pairs(emphasis) == []  # bold sentences, mostly statements: emphasis, not prompts
