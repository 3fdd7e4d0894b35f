"""The report's Chinese font: Noto Sans SC from the `pylopdf-fonts-zh-cn` wheel (SIL OFL 1.1).

Data in a report can be Chinese (instructions, languages, a source's path), and
neither matplotlib's bundled DejaVu Sans nor a bare server has Chinese glyphs,
so both the plots and the page would show empty boxes ("tofu"). The font comes
from a PyPI wheel, so every machine that installs the project draws the same
glyphs, without a system font or a download at run time.

- Plots: the font file is registered with matplotlib's font manager and listed
  after DejaVu Sans in `font.family`; matplotlib (3.6+) falls back glyph by
  glyph, so Latin text keeps DejaVu Sans and only Chinese uses Noto Sans SC.
- Page: `font_face_css` subsets the font (fontTools, a matplotlib dependency)
  to the characters of the page that DejaVu Sans lacks and embeds it as a WOFF
  data URI in an @font-face with a `unicode-range` of exactly those, so the
  page stays one self-contained file of a few kB more and renders the same in
  any browser. The page lists this face first: a face listed after an
  installed font is a fallback that Chromium loads only once it meets a
  character the first lacks, and a screenshot taken meanwhile shows boxes;
  listed first, its `unicode-range` makes the browser wait for it for exactly
  those characters and use the next font for all others.
"""

from __future__ import annotations

import base64
import functools
import io
from collections.abc import Iterable
from pathlib import Path

from jobs.progress import log

# The family name of the embedded subset on the page (what the CSS refers to).
PAGE_FONT_FAMILY = "instructmix CJK"
# Characters embedded at most: a report's texts are shortened samples, so this
# only bounds a pathological page (about 300 bytes a glyph: ~1.2 MB).
MAX_EMBEDDED_CHARS = 4000


@functools.cache
def cjk_font_path() -> Path | None:
    """Noto Sans SC's file from the installed wheel, or None (then Chinese shows as escapes in plots)."""
    try:
        import pylopdf_fonts_zh_cn
    except ImportError:
        log("[yellow]report: pylopdf-fonts-zh-cn is not installed: Chinese text in the plots is shown "
            "as \\u escapes and the page relies on the browser's fonts (pip install pylopdf-fonts-zh-cn)")
        return None
    path = Path(pylopdf_fonts_zh_cn.sans_path())
    return path if path.is_file() else None


@functools.cache
def matplotlib_cjk_family() -> str | None:
    """The family name of the CJK font, registered with matplotlib's font manager; None without it."""
    path = cjk_font_path()
    if path is None:
        return None
    from matplotlib import font_manager

    font_manager.fontManager.addfont(str(path))
    return font_manager.FontProperties(fname=str(path)).get_name()


@functools.cache
def _font_cmap() -> frozenset[int]:
    from fontTools.ttLib import TTFont

    path = cjk_font_path()
    if path is None:
        return frozenset()
    with TTFont(str(path), lazy=True) as font:
        return frozenset(font.getBestCmap())


def font_covers(text: str) -> bool:
    """Whether the CJK font has a glyph for every character of `text` that is not ASCII."""
    cmap = _font_cmap()
    return bool(cmap) and all(ord(c) in cmap for c in text if not c.isascii())


@functools.cache
def _latin_cmap() -> frozenset[int]:
    """The characters of DejaVu Sans, the page's and the plots' first font (it ships with matplotlib)."""
    from fontTools.ttLib import TTFont
    from matplotlib import font_manager

    path = font_manager.findfont(font_manager.FontProperties(family="DejaVu Sans"), fallback_to_default=True)
    with TTFont(path, lazy=True) as font:
        return frozenset(font.getBestCmap())


def page_characters(texts: Iterable[str]) -> list[str]:
    """The characters of `texts` the page font should carry: those DejaVu Sans lacks and the font has, sorted."""
    cmap, latin = _font_cmap(), _latin_cmap()
    chars = {c for text in texts for c in text
             if not c.isascii() and ord(c) in cmap and ord(c) not in latin and c.isprintable()}
    return sorted(chars)[:MAX_EMBEDDED_CHARS]


def subset_font(chars: Iterable[str]) -> bytes:
    """WOFF bytes of the CJK font cut down to `chars` (empty bytes when there is no font or no character)."""
    chars = list(chars)
    path = cjk_font_path()
    if path is None or not chars:
        return b""
    from fontTools import subset

    options = subset.Options()
    options.flavor = "woff"  # zlib: no brotli dependency for WOFF2
    options.layout_features = ["*"]  # keep vertical forms, locl, ...; they cost little
    options.name_IDs = ["*"]  # the OFL asks to keep the copyright and licence entries
    options.notdef_outline = True
    font = subset.load_font(str(path), options)
    subsetter = subset.Subsetter(options)
    subsetter.populate(text="".join(chars))
    subsetter.subset(font)
    out = io.BytesIO()
    subset.save_font(font, out, options)
    return out.getvalue()


def font_face_css(texts: Iterable[str]) -> str:
    """An @font-face rule embedding the CJK glyphs that `texts` use, or "" when none is needed.

    Only characters the font has are embedded, with a `unicode-range` naming
    exactly them, so the browser uses this face for them and its usual fonts
    for everything else.
    """
    chars = page_characters(texts)
    woff = subset_font(chars)
    if not woff:
        return ""
    ranges = ",".join(f"U+{ord(c):X}" for c in chars)
    data = base64.b64encode(woff).decode("ascii")
    return (f'@font-face {{ font-family: "{PAGE_FONT_FAMILY}"; font-style: normal; font-weight: 400; '
            f'font-display: block; src: url(data:font/woff;base64,{data}) format("woff"); '
            f'unicode-range: {ranges}; }}')
