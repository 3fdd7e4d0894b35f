"""Q&A pages: question plus first answer (transforms/mine/miners/question_pages.py), English and Chinese."""

from __future__ import annotations

from transforms.mine.blocks import HEADING, LIST_ITEM, PARAGRAPH, PRE, Block, Page
from transforms.mine.miners.question_pages import (
    CONFIDENCE_ACCEPTED,
    CONFIDENCE_ANSWER_CUE,
    CONFIDENCE_FIRST_PERSON,
    CONFIDENCE_QA_URL,
    mine_question_pages,
)
from transforms.records import KIND_QA


def h(level: int, text: str) -> Block:
    return Block(HEADING, text, level=level)


def p(text: str) -> Block:
    return Block(PARAGRAPH, text)


def li(text: str) -> Block:
    return Block(LIST_ITEM, text, level=1, group=1)


def page(*blocks: Block, title: str = "", url: str = "https://example.com/page", lang: str = "en") -> Page:
    return Page(url=url, title=title, blocks=list(blocks), lang=lang)


PROSE = (
    "Use git reset with the soft flag to move the branch pointer back by one commit. "
    "Your changes stay staged, so you can edit them and commit again. "
    "If the commit was already pushed, prefer git revert, which records a new commit that undoes it."
)


def test_stack_overflow_style_page():
    pg = page(
        p("Questions"),
        h(1, "How do I undo the most recent local commit?"),
        p("I committed the wrong files to Git but have not pushed yet."),
        p("asked Jul 25, 2012 at 10:12"),
        p("Share Improve this question Follow"),
        h(2, "3 Answers"),
        p("Sorted by: Highest score (default)"),
        p("412"),
        p("Run git reset HEAD~ to undo the commit."),
        p("Then add the right files and commit again."),
        p("Share Improve this answer Follow"),
        p("answered Jul 25, 2012 at 10:30"),
        p("Another answer that should not be taken."),
        title="git - How do I undo the most recent local commit? - Stack Overflow",
        url="https://stackoverflow.com/questions/927358/how-do-i-undo",
    )
    (found,) = mine_question_pages(pg)
    assert found.instruction == "How do I undo the most recent local commit?"
    assert found.input == "I committed the wrong files to Git but have not pushed yet."
    assert (
        found.output == "Run git reset HEAD~ to undo the commit.\nThen add the right files and commit again."
    )
    assert found.confidence == CONFIDENCE_ANSWER_CUE
    assert (found.kind, found.miner) == (KIND_QA, "question_pages")


def test_accepted_answer_cue_scores_highest():
    pg = page(
        h(1, "Why does my loop never end?"),
        p("while i < 10: print(i)"),
        h(3, "Accepted answer"),
        p("You never increment i, so the condition stays true."),
        p("Reply"),
    )
    (found,) = mine_question_pages(pg)
    assert found.output == "You never increment i, so the condition stays true."
    assert found.confidence == CONFIDENCE_ACCEPTED > CONFIDENCE_ANSWER_CUE


def test_answer_cue_then_author_line_and_vote_footer():
    pg = page(
        h(1, "手机充电时发烫正常吗？"),
        p("新买的手机用快充充电的时候背面有点烫手。"),
        p("2 个回答"),
        p("电子工程师老周"),
        p("快充时手机温度升到四十度左右是正常现象，充电芯片会根据温度自动降低功率。"),
        p("1024 赞同"),
        p("数码爱好者"),
        lang="zh",
    )
    (found,) = mine_question_pages(pg)
    assert found.output == "快充时手机温度升到四十度左右是正常现象，充电芯片会根据温度自动降低功率。"


def test_zhihu_style_page_skips_author_and_votes():
    pg = page(
        h(1, "为什么天空是蓝色的？"),
        p("一直很好奇这个问题。"),
        h(2, "128 个回答"),
        h(3, "张三，物理学博士"),
        p("1,024 人赞同了该回答"),
        p("因为大气对短波长的蓝光散射更强，这叫瑞利散射。"),
        p("所以我们看到的天空是蓝色的。"),
        p("编辑于 2020-01-01"),
        p("另一个回答。"),
        title="为什么天空是蓝色的？ - 知乎",
        url="https://www.zhihu.com/question/123",
        lang="zh",
    )
    (found,) = mine_question_pages(pg)
    assert found.instruction == "为什么天空是蓝色的？"
    assert found.input == "一直很好奇这个问题。"
    assert found.output == "因为大气对短波长的蓝光散射更强，这叫瑞利散射。\n所以我们看到的天空是蓝色的。"


def test_baidu_zhidao_title_question_with_best_answer():
    pg = page(
        p("百度首页"),
        p("python怎么读取文件"),
        p("最佳答案"),
        p("用open函数打开文件，再调用read方法读取全部内容。"),
        p("举报"),
        title="python怎么读取文件_百度知道",
        url="https://zhidao.baidu.com/question/1.html",
        lang="zh",
    )
    (found,) = mine_question_pages(pg)
    assert found.instruction == "python怎么读取文件"
    assert found.input == ""  # no question heading: what precedes the cue may be navigation
    assert found.output == "用open函数打开文件，再调用read方法读取全部内容。"
    assert found.confidence == CONFIDENCE_ACCEPTED


def test_title_with_tag_prefix_and_site_suffix():
    pg = page(p("Answer"), p(PROSE), title="python - How do I read a file? - Stack Overflow")
    (found,) = mine_question_pages(pg)
    assert found.instruction == "How do I read a file?"


def test_news_headline_question_without_answer_cue_gives_nothing():
    pg = page(
        h(1, "Will the Fed cut rates again?"),
        p(PROSE),
        p(PROSE),
        title="Will the Fed cut rates again? | Daily News",
        url="https://news.example.com/2024/05/fed-rates",
    )
    assert list(mine_question_pages(pg)) == []


def test_chinese_news_headline_question_gives_nothing():
    pg = page(
        h(1, "债券市场是否存在泡沫？"),
        p("随着低增长、低利率、低通胀成为新的常态，资金不断涌入避险资产，债券收益率不断下行。" * 3),
        title="债券市场是否存在泡沫？_新浪财经_新浪网",
        url="https://finance.sina.com.cn/2019/doc-1.shtml",
        lang="zh",
    )
    assert list(mine_question_pages(pg)) == []


def test_forum_thread_without_cue_splits_posts_at_chrome():
    pg = page(
        h(1, "Why are the lower leaves on my tomato plants turning yellow?"),
        p("hollyhock_jen Seedling"),
        p("The bottom leaves are turning yellow with brown spots. Should I worry?"),
        p("Jul 9, 2024"),
        p("OldRowFarmer Master Gardener"),
        p(PROSE),
        li("reset moves HEAD"),
        p("Jul 9, 2024"),
        p("Like x 14"),
        p("A third post."),
        url="https://forums.greenthumb.example/threads/yellow-leaves.8812/",
    )
    (found,) = mine_question_pages(pg)
    assert found.input == "The bottom leaves are turning yellow with brown spots. Should I worry?"
    assert found.output == PROSE + "\n- reset moves HEAD"
    assert found.confidence == CONFIDENCE_QA_URL


def test_forum_thread_with_only_the_question_post_gives_nothing():
    pg = page(
        p("论坛 › 猫咪版块 › 喂养交流"),
        h(1, "猫咪突然不爱吃猫粮是怎么回事？"),
        p(
            "家里的英短三岁了，一直吃同一款猫粮，最近一个星期突然不怎么吃了，每天只吃一点点，但是罐头和零食照样吃。"
            * 2
        ),
        p("发表于 2025-02-17 21:04"),
        h(3, "版块热帖"),
        p("关于我们 | 社区规范 | 联系管理员"),
        url="https://bbs.mengchong.example/thread-228190-1-1.html",
        lang="zh",
    )
    assert list(mine_question_pages(pg)) == []


def test_stack_style_metadata_line_and_vote_counts_are_chrome():
    pg = page(
        h(1, "How do I reverse a list in Python without changing the original?"),
        p("Asked 2 years ago · Viewed 14k times · 2 answers"),
        p("When I call scores.reverse() my list is changed. How can I get a reversed copy?"),
        p("57"),
        p("Use slicing with a step of -1:"),
        Block(PRE, "reversed_scores = scores[::-1]"),
        p(PROSE),
        p("answered by mira_k"),
        url="https://stackhaven.example/questions/48213/reverse-a-list",
    )
    (found,) = mine_question_pages(pg)
    assert found.input == "When I call scores.reverse() my list is changed. How can I get a reversed copy?"
    assert found.output == "Use slicing with a step of -1:\nreversed_scores = scores[::-1]\n" + PROSE


def test_first_person_question_heading_with_substantial_prose():
    pg = page(h(1, "How do I undo a pushed commit?"), p(PROSE), h(1, "Related posts"), p("More."))
    (found,) = mine_question_pages(pg)
    assert found.output == PROSE
    assert found.confidence == CONFIDENCE_FIRST_PERSON


def test_first_person_chinese_question_with_prose():
    prose = (
        "可以用 git revert 生成一个新的提交来撤销旧提交，这样不会改写已经推送的历史，团队其他人也不受影响，"
        "是最安全的做法。如果确定没有人基于这个提交工作，也可以先 reset 再强制推送，但要先和同事确认。"
    )
    pg = page(h(1, "请问怎么撤销已经推送的提交？"), p(prose), lang="zh")
    (found,) = mine_question_pages(pg)
    assert found.output == prose
    assert found.confidence == CONFIDENCE_FIRST_PERSON


def test_cueless_question_with_short_text_gives_nothing():
    pg = page(h(1, "How do I undo a pushed commit?"), p("Use revert."))
    assert list(mine_question_pages(pg)) == []


def test_non_question_page_gives_nothing():
    pg = page(h(1, "Release notes 2.0"), h(2, "Answers"), p(PROSE), title="Release notes")
    assert list(mine_question_pages(pg)) == []


def test_zero_answers_or_empty_answer_gives_nothing():
    unanswered = page(
        h(1, "Why is my build failing?"), p("Log attached."), h(2, "0 Answers"), p("Your Answer")
    )
    assert list(mine_question_pages(unanswered)) == []
    chrome_only = page(h(1, "Why is my build failing?"), h(2, "2 Answers"), p("Share"), p("Follow"))
    assert list(mine_question_pages(chrome_only)) == []


def test_answer_repeating_the_question_gives_nothing():
    pg = page(h(1, "Why is my build failing?"), h(2, "Answer"), p("Why is my build failing"))
    assert list(mine_question_pages(pg)) == []


def test_posts_that_open_with_their_own_header_are_split_there():
    answer = ("Yes, the radial acceleration points towards the center. But your diagram is drawn sideways, "
              "so measure the angle from the vertical and the book's answer follows. Draw the pulley again with "
              "the string on the right-hand side and the two results agree.")
    pg = page(
        h(1, "Isn't the normal acceleration always towards the center?"),
        li("Feb 20, 2007 #1 The problem statement is attached; my answer differs from the book's."),
        li(f"Feb 20, 2007 #2 {answer}"),
        li("Feb 21, 2007 #3 Thanks, I measured from the horizontal."),
        url="https://forum.example.org/threads/normal-acceleration.155320/",
    )
    [candidate] = mine_question_pages(pg)
    assert candidate.input == "The problem statement is attached; my answer differs from the book's."
    assert candidate.output == answer


def test_chinese_posts_with_floor_headers():
    answer = ("臭氧层空洞主要是氟利昂等含氯化合物在平流层分解后破坏臭氧造成的，各国限制使用以后正在慢慢恢复，"
              "但完全恢复还需要几十年的时间。南极上空的空洞每年春季最大，因为那里的极地平流层云加快了这种反应。")
    pg = page(
        h(1, "臭氧层空洞是怎么形成的？"),
        li("2019年9月9日 第1楼 看到新闻说臭氧层有空洞，想知道原因。"),
        li(f"2019年9月9日 第2楼 {answer}"),
        url="https://bbs.example.cn/thread/12345",
        lang="zh",
    )
    [candidate] = mine_question_pages(pg)
    assert candidate.output == answer
