import re

import pytest

from transforms import pii
from transforms.pii import EMAIL, IP, PHONE, scrub_pii


@pytest.mark.parametrize(
    "text,expected",
    [
        # e-mail
        ("Write to john.doe+faq@example.co.uk for a refund.", f"Write to {EMAIL} for a refund."),
        ("Contact: support@shop-online.com.", f"Contact: {EMAIL}."),
        # Fictitious hosts still hold a person's address (the bundled sample pages use .example).
        (
            "write to Jordan Pike at jordan.pike@tidewater-internet.example or",
            f"write to Jordan Pike at {EMAIL} or",
        ),
        ("Mail user@example.com", f"Mail {EMAIL}"),
        ("邮箱wangxm@163.com获取资料", f"邮箱{EMAIL}获取资料"),
        # international
        ("Call +1 (415) 555-0132 today.", f"Call {PHONE} today."),
        ("Tel: +44 20 7946 0958", f"Tel: {PHONE}"),
        ("Phone +49 30 1234567.", f"Phone {PHONE}."),
        ("客服热线：+86 138 0013 8000", f"客服热线：{PHONE}"),
        # US / NANP
        ("Call 415-555-0132 or (415) 555-0132 or 415.555.0132.", f"Call {PHONE} or {PHONE} or {PHONE}."),
        ("Toll free: 1-800-555-0199", f"Toll free: {PHONE}"),
        # Chinese mobile, with and without grouping, glued to CJK text
        ("我的手机是13812345678，欢迎来电。", f"我的手机是{PHONE}，欢迎来电。"),
        ("致电138-0013-8000咨询", f"致电{PHONE}咨询"),
        ("手机：159 1234 5678", f"手机：{PHONE}"),
        # Chinese landlines with area codes
        ("北京办公室电话：010-62751234", f"北京办公室电话：{PHONE}"),
        ("深圳：(0755) 26701234，转分机8001", f"深圳：{PHONE}，转分机8001"),
        # IPv4 / IPv6 (public addresses)
        ("The attacker used 93.184.216.34 and 58.218.199.1.", f"The attacker used {IP} and {IP}."),
        ("Connect to 52.14.200.1:8080 over SSH.", f"Connect to {IP}:8080 over SSH."),
        ("Our dev server is 52.14.200.1 now.", f"Our dev server is {IP} now."),
        ("服务器IP是58.218.199.1。", f"服务器IP是{IP}。"),
        ("IPv6: 2a00:1450:4009:81f::200e.", f"IPv6: {IP}."),
        ("Full form 2607:f8b0:4005:0805:0000:0000:0000:200e here", f"Full form {IP} here"),
    ],
)
def test_scrubs(text, expected):
    scrubbed, n = scrub_pii(text)
    assert scrubbed == expected
    assert n == expected.count("<")


@pytest.mark.parametrize(
    "text",
    [
        # numbers that fill instructional text
        "Python 3.11.7 was released in December 2023.",
        "Upgrade from version 1.2.3.4 to v10.0.0.1 before the 2024 deadline.",
        "Release 4.3.2.1 and build: 10.2.3.4 and 版本号：2.3.4.5 ship today.",
        "The meeting is at 12:30:45 on 2023-10-05, or 2023/10/05 at 9:15.",
        "It costs $1,234.56, about ¥8,900 or €1.150,00.",
        "China has a population of 1,411,750,000 people.",
        "Order #12345678901234 shipped; ISBN 978-0-306-40615-7.",
        "Between 1990 and 2020 the share grew by 25.5% to 3.14 million.",
        "Use ranges like 100-200-3000 and scores like 98.5.",
        "Call 911 in an emergency, or 110 / 120 in China.",
        "温度为+3.5度，增长+5 3 4个百分点。",
        "2023年10月5日下午3:30，共有12345人参加。",
        # not personal addresses
        "Log in to your router at 192.168.1.1 or 10.0.0.1.",
        "Ping 127.0.0.1 and ::1 to test the loopback interface.",
        "Set the DNS server to 8.8.8.8 or 114.114.114.114.",
        "Documentation ranges: 203.0.113.7 and 2001:db8::1.",
        # code and identifiers that look a bit like addresses
        "Use std::vector<int> and Foo::Bar::baz() in C++.",
        "The MAC address is 00:1a:2b:3c:4d:5e.",
        "Images: logo@2x.png and icon@3x.webp.",
        "Clone it with git clone git@github.com:org/repo.git",
        "npm install lodash@4.17.21",
        "Follow @instructmix on social media.",
    ],
)
def test_leaves_non_pii_alone(text):
    assert scrub_pii(text) == (text, 0)


def test_counts_every_replacement():
    text = "Mail a@b.com or c@d.org, call 13812345678 or +1 415 555 0132, host 93.184.216.34."
    scrubbed, n = scrub_pii(text)
    assert n == 5
    assert scrubbed == f"Mail {EMAIL} or {EMAIL}, call {PHONE} or {PHONE}, host {IP}."


def test_idempotent_and_empty():
    once, _ = scrub_pii("Email me at jane@mailbox.org or call 415-555-0132.")
    assert scrub_pii(once) == (once, 0)
    assert scrub_pii("") == ("", 0)


def test_lookahead_prefixes_keep_the_matches():
    # _PHONE_RE and _IPV4_RE open with a lookahead on their matches' first characters (speed);
    # without it they must match the same spans.
    bare_phone = re.compile(pii._PHONE_RE.pattern.removeprefix("(?=[+(0-9])"))
    bare_ip = re.compile(pii._IPV4_RE.pattern.removeprefix("(?=\\d)"))
    assert bare_phone.pattern != pii._PHONE_RE.pattern and bare_ip.pattern != pii._IPV4_RE.pattern
    texts = [
        "Call +1 (555) 123-4567 or (020) 7946 0958, 致电13812345678 或 010-62345678.",
        "Server 203.0.113.77 and ١٢٣.4.5.6, version 1.2.3.4, 10.0.0.1:8080, 2023-10-05, +44 20 7946 0958x",
        "(212) 555-0199; 800.555.0100; +86 138 1234 5678; 0086-13812345678; ((12)) 1-800-555-0100",
        "no numbers here", "",
    ]
    for text in texts:
        assert [m.span() for m in pii._PHONE_RE.finditer(text)] == [m.span() for m in bare_phone.finditer(text)]
        assert [m.span() for m in pii._IPV4_RE.finditer(text)] == [m.span() for m in bare_ip.finditer(text)]

