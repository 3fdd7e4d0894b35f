"""Forum threads from their post markup: thread_posts.py reads the posts, threads.py picks the
question and the answer. Small pages of our own, in English and Chinese, through the real
HTML extraction (resiliparse) and the question_pages miner that falls back to the thread rule."""

from __future__ import annotations

from transforms.mine.blocks import PARAGRAPH, Block, Page, Post
from transforms.mine.html_blocks import html_to_page
from transforms.mine.miners.question_pages import mine_question_pages
from transforms.mine.miners.threads import CONFIDENCE_ACCEPTED, CONFIDENCE_POST_QUESTION, MINER, thread_pair
from transforms.records import KIND_QA

ANSWER_EN = (
    "Declare the parameter as int a[] or as int *a; the brackets go after the name in C. "
    "Your function also has to return an int, or the compiler warns about it."
)


def thread_html(title: str, posts: list[str], *, body_class: str = "postbody", post_tag: str = "div",
                accepted: int = -1, extra: str = "") -> str:
    items = []
    for i, text in enumerate(posts):
        mark = " accepted-answer" if i == accepted else ""
        items.append(
            f'<li class="postcontainer{mark}" id="post_{i + 1}"><div class="userinfo"><span>member{i}</span>'
            f'<span>Joined 2019</span></div><{post_tag} class="{body_class}">{text}</{post_tag}></li>'
        )
    return (
        f"<html><head><title>{title} - Example Board</title></head><body>"
        f"<nav><a href='/'>Home</a> <a href='/forum'>Forums</a></nav>"
        f"<h1>{title}</h1><ol class='posts'>{''.join(items)}</ol>{extra}"
        "<footer>Powered by board software</footer></body></html>"
    )


def mined(html: str, url: str = "https://board.example.org/threads/123", lang: str = "en"):
    page = html_to_page(html, url)
    page.lang = lang
    return page, list(mine_question_pages(page))


def test_posts_are_read_from_repeated_post_bodies_in_page_order():
    page, _ = mined(thread_html("Array parameter", ["<p>First post text here.</p>", "<p>Second post.</p>",
                                                     "<p>Third <b>post</b>.</p>"]))
    assert [p.blocks[0].text for p in page.posts] == ["First post text here.", "Second post.", "Third post."]
    assert all(p.blocks[0].kind == PARAGRAPH for p in page.posts)


def test_page_without_repeated_post_bodies_has_no_posts():
    page, found = mined("<html><body><div class='postbody'><p>Only one post.</p></div></body></html>")
    assert page.posts == [] and found == []


def test_question_from_first_post_when_title_is_not_a_question():
    _, (pair,) = mined(thread_html("One question about array and function prototypes", [
        ("<p>Hello all, I have to pass an array to a function for an exam. Do you think this code will compile?</p>"
         "<pre>int foo(int [] a);</pre>"),
        "<p>Thanks for asking!</p>",  # too short to answer
        f"<p>{ANSWER_EN}</p>",
    ]))
    assert pair.kind == KIND_QA and pair.miner == MINER
    assert pair.instruction == "Do you think this code will compile?"
    assert pair.input.startswith("Hello all, I have to pass an array")
    assert pair.output == ANSWER_EN
    assert pair.confidence == CONFIDENCE_POST_QUESTION


def test_help_request_without_question_mark_and_short_question_with_its_context():
    _, (pair,) = mined(thread_html("RadComboBox inside an edit template", [
        "<p>I build the edit forms in code. I don't know how to find the controls from the change event.</p>",
        f"<p>{ANSWER_EN}</p>",
    ]))
    assert pair.instruction == "I don't know how to find the controls from the change event."
    _, (pair,) = mined(thread_html("Menu style", [
        "<p>I set the focused class on the root item. But the root item loses it on a child click. Any pointers?</p>",
        f"<p>{ANSWER_EN}</p>",
    ]))
    assert pair.instruction == "The root item loses it on a child click. Any pointers?"


def test_quoted_question_thanks_and_asking_back_are_skipped():
    question = "<p>How do I read a file line by line in C without loading all of it into memory?</p>"
    _, (pair,) = mined(thread_html("Reading files", [
        question,
        "<p>Which compiler do you use?</p>",
        "<p>Thanks, that helped me a lot with my own homework too, great thread!</p>",
        f"<blockquote><div>member0 said:</div>{question}</blockquote><p>{ANSWER_EN}</p>",
    ]))
    assert pair.output == ANSWER_EN


def test_accepted_reply_wins_over_the_first_one():
    second = "Use fgets in a loop: it reads one line into a buffer you give it and returns NULL at the end."
    _, (pair,) = mined(thread_html("Reading files", [
        "<p>How do I read a file line by line in C without loading it all?</p>",
        f"<p>{ANSWER_EN}</p>",
        f"<p>{second}</p>",
    ], accepted=2))
    assert pair.output == second and pair.confidence == CONFIDENCE_ACCEPTED


def test_title_question_with_the_first_post_as_input():
    _, (pair,) = mined(thread_html("How do I pass an array to a function in C?", [
        "<p>My prototype int foo(int [] a); does not compile with my compiler, and I may not change it.</p>",
        f"<p>{ANSWER_EN}</p>",
    ]), url="https://example.org/board/view/9")
    assert pair.instruction == "How do I pass an array to a function in C?"
    assert pair.input.startswith("My prototype")
    assert pair.output == ANSWER_EN


def test_link_list_styled_as_a_post_is_not_an_answer():
    links = "<ul>" + "".join(f"<li><a href='/n{i}'>Science headline number {i}</a></li>" for i in range(5)) + "</ul>"
    _, found = mined(thread_html("Evaporator question", [
        "<p>Why does the pressure in the condenser rise when the cooling water flow drops?</p>",
        f"<p>Latest science news</p>{links}",
    ]))
    assert found == []


def test_discussion_that_asks_nothing_gives_nothing():
    _, found = mined(thread_html("Funny pictures", [
        "<p>Post your favourite funny picture of the week here.</p>",
        f"<p>{ANSWER_EN}</p>",
        "<p>This one made me laugh all day long, especially the cat in the second row.</p>",
    ]))
    assert found == []


def test_blog_index_with_repeated_post_content_asks_nothing():
    entries = "".join(
        f"<article><h2>Release notes {i}</h2><div class='post-content'><p>We shipped version {i} with faster "
        f"imports and a smaller install. Read the full notes for the details of every change.</p></div></article>"
        for i in range(3)
    )
    page, found = mined(f"<html><head><title>Blog</title></head><body>{entries}</body></html>",
                        url="https://example.org/blog")
    assert len(page.posts) == 3 and found == []


ANSWER_ZH = "在系统设置里打开“默认应用”，把浏览器一项改成你想用的浏览器，然后重启一次就生效了。"


def test_chinese_thread_question_from_first_floor():
    _, (pair,) = mined(thread_html("浏览器设置问题", [
        "<p>新买的电脑，默认打开的总是自带的浏览器。请问怎么把默认浏览器改成别的？</p>",
        "<p>顶</p>",
        f"<p>{ANSWER_ZH}</p>",
    ], body_class="t_f", post_tag="td"), url="https://bbs.example.cn/thread-1-1-1.html", lang="zh")
    assert pair.instruction == "请问怎么把默认浏览器改成别的？"
    assert pair.input.startswith("新买的电脑")
    assert pair.output == ANSWER_ZH


def test_chinese_request_without_question_mark_and_thanks_reply():
    _, (pair,) = mined(thread_html("默认浏览器", [
        "<p>新买的电脑，默认打开的总是自带的浏览器。求助，不知道怎么改成别的浏览器。</p>",
        "<p>谢谢楼主分享，我也遇到了同样的问题。</p>",
        f"<p>{ANSWER_ZH}</p>",
    ], body_class="post-content"), lang="zh")
    assert pair.instruction == "求助，不知道怎么改成别的浏览器。"
    assert pair.output == ANSWER_ZH


def test_chinese_chat_thread_gives_nothing():
    _, found = mined(thread_html("今天的阅兵太震撼了", [
        "<p>今天的阅兵太震撼了，方阵一个比一个整齐。</p>",
        "<p>是的，我在现场看的，飞机飞过的时候大家都在欢呼，场面非常壮观。</p>",
    ], body_class="j_d_post_content"), lang="zh")
    assert found == []


def test_thread_rule_on_posts_directly():
    post = lambda text: Post(blocks=[Block(PARAGRAPH, text)])
    page = Page(url="https://x.example/t/1", lang="en", posts=[
        post("member0"),  # a post that is only a byline still counts as the first post
        post(f"{ANSWER_EN}"),
    ])
    assert thread_pair(page, None) is None  # the first post asks nothing
    page.posts = [post("Is there a way to read one line at a time from a file in C?"), post(ANSWER_EN)]
    pair = thread_pair(page, None)
    assert pair.instruction == "Is there a way to read one line at a time from a file in C?"
    assert pair.input == "" and pair.output == ANSWER_EN
