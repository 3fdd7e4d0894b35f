"""Replace personal contact data in mined text with placeholders.

`scrub_pii` swaps e-mail addresses for `<EMAIL>`, phone numbers for `<PHONE>`
and IP addresses for `<IP>`, and returns how many it replaced so the job can
count them. Each pattern carries guards against the numbers that fill
instructional text (years, dates, times, prices, version strings such as
3.11.7, order numbers): a phone needs phone *shape* (separators in the
national layout, a leading "+", or the 11-digit 1[3-9] Chinese mobile
prefix), and an IP must parse with `ipaddress`.

Private, loopback, link-local and documentation addresses (192.168.1.1,
127.0.0.1, 2001:db8::1) and well-known public resolvers (8.8.8.8,
114.114.114.114) are kept: they identify no one, and router and DNS how-tos
are useless without them. This follows the BigCode/StarCoder PII pipeline,
which also leaves private ranges and popular DNS servers untouched.
"""

from __future__ import annotations

import ipaddress
import re

EMAIL = "<EMAIL>"
PHONE = "<PHONE>"
IP = "<IP>"

_EMAIL_RE = re.compile(
    r"(?<![A-Za-z0-9_.%+-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+"
    r"[A-Za-z]{2,24}(?![A-Za-z0-9_-])"
)

# Candidate IPv4: four dotted 0-255 octets, not part of a longer dotted number
# (a five-part version string) and not glued to letters ("v1.2.3.4").
_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
# Each pattern below starts with a lookahead on the characters any of its matches can start with
# (a digit; a digit, "+" or "("): re then passes over other positions without trying every
# branch there, a fifth of the time for the phone pattern, with the same matches.
_IPV4_RE = re.compile(rf"(?=\d)(?<![A-Za-z0-9_.]){_OCTET}(?:\.{_OCTET}){{3}}(?![A-Za-z0-9_]|\.\d)")
# Words that make a dotted quad a version or build number, not an address.
_VERSION_CONTEXT = re.compile(r"(?:\b(?:version|ver|release|build|v)\.?|版本号?)\s*[:：]?\s*$", re.IGNORECASE)

# Candidate IPv6: hex groups and colons, validated by ipaddress. A word
# character or colon on either side stops it ("std::vector"); times
# ("12:30:45") and MACs ("00:1a:2b:3c:4d:5e") fail validation, and an address
# without a digit ("dead::beef", C++ "Abc::Def") is left alone.
_IPV6_RE = re.compile(
    r"(?<![A-Za-z0-9_:.])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![A-Za-z0-9_:]|\.[A-Za-z0-9])"
)

_WELL_KNOWN_PUBLIC = frozenset(
    {
        "8.8.8.8", "8.8.4.4", "1.1.1.1", "1.0.0.1", "9.9.9.9", "149.112.112.112",
        "208.67.222.222", "208.67.220.220", "114.114.114.114", "114.114.115.115",
        "223.5.5.5", "223.6.6.6", "119.29.29.29", "180.76.76.76",
        "2001:4860:4860::8888", "2001:4860:4860::8844", "2606:4700:4700::1111", "2606:4700:4700::1001",
    }
)  # fmt: skip

# Phones. Every alternative is anchored so it cannot start or end inside a
# longer run of digits, dots or dashes (dates "2023-10-05", IDs, decimals).
# Boundaries are ASCII classes, not \w: Chinese writes "致电13812345678" with
# no space, and a CJK character is a \w character.
_NB = r"(?<![A-Za-z0-9_.,/+-])"  # not glued to a preceding number, word, or sign
_NA = r"(?![A-Za-z0-9_]|[.,/-]\d)"  # not followed by more number
_PHONE_RE = re.compile(
    "(?=[+(0-9])(?:" + "|".join(
        [
            # International: +CC then 2-5 groups; digit count checked below (E.164: 8-15).
            r"(?<![A-Za-z0-9_+])\+\d{1,3}(?:[ .-]?\(?\d{1,4}\)?){2,5}" + _NA,
            # Chinese mobile: 1[3-9] and 9 more digits, plain or 3-4-4 grouped, optional +86/0086.
            _NB + r"(?:(?:\+?86|0086)[ -]?)?1[3-9]\d(?:\d{8}|[ -]\d{4}[ -]\d{4})" + _NA,
            # Chinese landline: 0 + 2-3 digit area code, separator, 7-8 digit number.
            _NB + r"(?:\(0\d{2,3}\)\s?|0\d{2,3}[ -])[2-9]\d{6,7}" + _NA,
            # North American: (NPA) NXX-XXXX or NPA-NXX-XXXX with - . or space; the
            # area code starts 2-9 (NANP), so "100-200-3000"-like ranges stay.
            _NB + r"(?:\+?1[ .-]?)?(?:\([2-9]\d{2}\)\s?|[2-9]\d{2}[ .-])\d{3}[ .-]\d{4}" + _NA,
        ]
    ) + ")"
)


_DIGIT = re.compile(r"\d")
# Not addresses: retina image names ("icon@2x.png") and git's SSH user
# ("git@github.com:org/repo"). Documentation domains (example.com, *.example)
# are scrubbed like any other: fictitious hosts are how test pages and
# anonymised dumps write real-looking personal addresses.
_NOT_EMAIL = re.compile(r"^(?:git@.*|.*@\d+(?:\.\d+)?x\.[a-z]{2,4})$", re.IGNORECASE)


def _replace_email(match: re.Match) -> str:
    return match.group(0) if _NOT_EMAIL.match(match.group(0)) else EMAIL


def _ip_is_personal(text: str) -> bool:
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return False
    if str(ip) in _WELL_KNOWN_PUBLIC or text in _WELL_KNOWN_PUBLIC:
        return False
    return ip.is_global


def _replace_ipv4(match: re.Match) -> str:
    start = match.start()
    if _VERSION_CONTEXT.search(match.string[max(0, start - 12) : start]):
        return match.group(0)
    return IP if _ip_is_personal(match.group(0)) else match.group(0)


def _replace_ipv6(match: re.Match) -> str:
    text = match.group(0)
    if text.count(":") < 2 or not _DIGIT.search(text):
        return text
    return IP if _ip_is_personal(text) else text


def _replace_phone(match: re.Match) -> str:
    text = match.group(0)
    digits = sum(c.isdigit() for c in text)
    if text.startswith("+") and not 8 <= digits <= 15:
        return text
    return PHONE


def scrub_pii(text: str) -> tuple[str, int]:
    """Text with e-mails, phone numbers and personal IPs replaced, and the count replaced."""
    count = 0

    def counted(replace):
        def wrapper(match: re.Match) -> str:
            nonlocal count
            out = replace(match)
            if out != match.group(0):
                count += 1
            return out

        return wrapper

    # E-mails first: their local parts may hold digits that look like phones.
    if "@" in text:
        text = _EMAIL_RE.sub(counted(_replace_email), text)
    if ":" in text:
        text = _IPV6_RE.sub(counted(_replace_ipv6), text)
    if _DIGIT.search(text):
        text = _IPV4_RE.sub(counted(_replace_ipv4), text)
        text = _PHONE_RE.sub(counted(_replace_phone), text)
    return text, count
