"""The report's plots: one PNG per figure that has data, drawn with matplotlib's Agg canvas.

Figures are made with matplotlib.figure.Figure and saved through the Agg
canvas, never through pyplot: no global backend switch and no GUI, which
matplotlib recommends for servers and which keeps the calling CLI untouched.
The PNG bytes are returned, not written: jobs/report/page.py writes them
beside the page through fsspec and embeds them in it.

Labels may be Chinese (a language, a kind, a source's path): Noto Sans SC
(jobs/report/fonts.py) follows DejaVu Sans in `font.family`, and matplotlib
takes each glyph from the first font that has it.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

from jobs.report.fonts import font_covers, matplotlib_cjk_family
from jobs.report.numbers import NOVEL_BELOW, NOVELTY_BINS

PLOT_NAMES = ("mining", "drops", "task_types", "lengths", "novelty", "mixing")
# Okabe-Ito: distinguishable with the common colour-vision deficiencies.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
STAGE_COLOURS = {"mine": "#0072B2", "synth": "#E69F00", "mix": "#009E73"}


def draw_plots(summary: Mapping) -> dict[str, bytes]:
    """One PNG per plot that has data: {plot name: PNG bytes}, in `PLOT_NAMES` order."""
    import matplotlib as mpl
    import matplotlib.style

    drawers = {"mining": _plot_mining, "drops": _plot_drops, "task_types": _plot_task_types,
               "lengths": _plot_lengths, "novelty": _plot_novelty, "mixing": _plot_mixing}
    assert set(drawers) == set(PLOT_NAMES)
    images = {}
    with mpl.style.context("default"), mpl.rc_context(plot_rc()):
        for name, draw in drawers.items():
            fig = draw(summary)
            if fig is None:
                continue
            buffer = io.BytesIO()
            # No "Software" chunk: the bytes depend only on the data and the fonts.
            fig.savefig(buffer, format="png", dpi=100, metadata={"Software": None})
            images[name] = buffer.getvalue()
    return images

# DejaVu Sans ships with matplotlib and Noto Sans SC with a wheel (jobs/report/fonts.py),
# so every machine draws the same glyphs.
_RC = {"font.family": "DejaVu Sans", "font.size": 9, "axes.titlesize": 10, "axes.spines.top": False,
       "axes.spines.right": False, "axes.grid": True, "axes.grid.axis": "y", "grid.alpha": 0.3,
       "figure.constrained_layout.use": True, "savefig.facecolor": "white", "figure.facecolor": "white"}


# Characters of a label kept (a source's path is cut from the left: its end says most).
LABEL_CHARS = 40


def plot_rc() -> dict:
    """The rc settings of every plot: `_RC`, with the CJK font after DejaVu Sans when installed."""
    family = matplotlib_cjk_family()
    return {**_RC, "font.family": ["DejaVu Sans", family] if family else ["DejaVu Sans"]}


def _label(text: Any, limit: int = LABEL_CHARS) -> str:
    """A plot label: as it is when the fonts have its glyphs, else with \\u escapes (never empty boxes).

    Cut to `limit` characters from the left ("…" first), so a long path keeps its file name.
    """
    text = str(text)
    if len(text) > limit:
        text = "…" + text[-(limit - 1):]
    if text.isascii() or font_covers(text):
        return text
    return text.encode("ascii", "backslashreplace").decode("ascii")


def _figure(width: float, height: float, ncols: int = 1):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    return fig, list(axes)


def _plot_mining(summary: Mapping):
    mining = summary.get("mining")
    if not mining or not (mining["languages"] or mining["miners"]):
        return None
    fig, (left, right) = _figure(9, 3.4, 2)
    langs = [row["lang"] for row in mining["languages"]]
    x = range(len(langs))
    for offset, key, colour, label in ((-0.2, "documents", PALETTE[0], "documents read"),
                                       (0.2, "pages_with_pairs", PALETTE[1], "pages with pairs")):
        left.bar([i + offset for i in x], [row[key] for row in mining["languages"]], width=0.4, color=colour,
                 label=label)
    left.set_xticks(list(x), [_label(lang) for lang in langs])
    left.set_title("Documents in, per language")
    left.legend(frameon=False)
    miners = [m["miner"] for m in mining["miners"]]
    bottom = [0] * len(miners)
    for i, lang in enumerate(mining["language_codes"]):
        values = [m["by_language"].get(lang, 0) for m in mining["miners"]]
        right.barh([_label(m) for m in miners], values, left=bottom, color=PALETTE[i % len(PALETTE)],
                   label=_label(lang))
        bottom = [b + v for b, v in zip(bottom, values)]
    right.invert_yaxis()
    right.grid(axis="x", alpha=0.3)
    right.grid(axis="y", visible=False)
    right.set_title("Pairs out, per miner and language")
    # framed: the legend may sit on bars of its own colours
    right.legend(title="lang", framealpha=0.9, edgecolor="none")
    return fig


def _plot_drops(summary: Mapping):
    drops = summary.get("drops") or []
    if not drops:
        return None
    fig, (ax,) = _figure(9, 0.6 + 0.28 * len(drops))
    labels = [_label(f"{d['stage']}: {d['unit']}: {d['reason']}", 2 * LABEL_CHARS) for d in drops]
    colours = [STAGE_COLOURS.get(d["stage"].split("/", 1)[0], PALETTE[7]) for d in drops]
    ax.barh(labels, [d["count"] for d in drops], color=colours)
    ax.invert_yaxis()
    ax.grid(axis="x", alpha=0.3)
    ax.grid(axis="y", visible=False)
    ax.set_title("Skipped and dropped, by stage and reason")
    return fig


def _plot_task_types(summary: Mapping):
    types = summary.get("task_types", {})
    panels = [(title, counts) for title, counts in (("Synthesized pairs per mode/task type", types.get("synth")),
                                                     ("Mined pairs per miner/kind", types.get("mined"))) if counts]
    if not panels:
        return None
    rows = max(len(counts) for _, counts in panels)
    fig, axes = _figure(9 if len(panels) == 2 else 6, 0.8 + 0.28 * rows, len(panels))
    for ax, (title, counts), colour in zip(axes, panels, (PALETTE[1], PALETTE[0])):
        ax.barh([_label(k) for k in counts], list(counts.values()), color=colour)
        ax.invert_yaxis()
        ax.grid(axis="x", alpha=0.3)
        ax.grid(axis="y", visible=False)
        ax.set_title(title)
    return fig


def _plot_lengths(summary: Mapping):
    lengths = summary.get("lengths", {})
    series = [(f"{stage} {lang}", dist) for stage, data in lengths.get("stages", {}).items()
              for lang, dist in data["by_language"].items()]
    if not series:
        return None
    labels = lengths["bins"]
    fig, (ax,) = _figure(9, 3.4)
    width = 0.8 / len(series)
    for i, (name, dist) in enumerate(series):
        shares = [100 * dist["bins"][b] / dist["n"] for b in labels]
        ax.bar([j - 0.4 + width * (i + 0.5) for j in range(len(labels))], shares, width=width,
               color=PALETTE[i % len(PALETTE)], label=f"{_label(name)} (n={dist['n']})")
    ax.set_xticks(range(len(labels)), labels)
    ax.set_xlabel("instruction length (ROUGE tokens: en words, zh characters)")
    ax.set_ylabel("% of instructions")
    ax.set_title("Instruction length, per stage and language")
    ax.legend(frameon=False)
    return fig


def _plot_novelty(summary: Mapping):
    stages = summary.get("novelty", {}).get("stages", {})
    series = [(stage, data) for stage, data in stages.items() if data["n"]]
    if not series:
        return None
    fig, (ax,) = _figure(9, 3.4)
    step = 1 / NOVELTY_BINS
    width = step * 0.8 / len(series)
    for i, (stage, data) in enumerate(series):
        shares = [100 * b / data["n"] for b in data["bins"].values()]
        ax.bar([j * step + step * 0.1 + width * (i + 0.5) for j in range(NOVELTY_BINS)], shares, width=width,
               color=STAGE_COLOURS.get(stage, PALETTE[i]),
               label=f"{_label(stage)} (n={data['n']}, {100 * data['share_below_0.3']:.0f}% < {NOVEL_BELOW})")
    ax.axvline(NOVEL_BELOW, color="#444444", linestyle="--", linewidth=1)
    ax.set_xlim(0, 1)
    ax.set_xticks([j * step for j in range(NOVELTY_BINS + 1)])
    ax.set_xlabel("highest ROUGE-L against the seed instructions")
    ax.set_ylabel("% of instructions")
    ax.set_title("Novelty against the seed tasks")
    ax.legend(frameon=False)
    return fig


def _plot_mixing(summary: Mapping):
    mixing = summary.get("mixing")
    if not mixing or not mixing["shards"]:
        return None
    fig, (left, right) = _figure(9, 3.4, 2)
    shards = mixing["shards"]
    ratios = [s["ratio"] for s in shards]
    x = list(range(len(shards)))
    if len(shards) <= 60:
        left.bar(x, ratios, color=PALETTE[2], label="realized, per shard")
        left.set_xticks(x, [_label(s["name"]) for s in shards], rotation=45 if len(shards) > 6 else 0,
                        ha="right" if len(shards) > 6 else "center")
    else:
        left.plot(x, ratios, color=PALETTE[2], marker=".", linewidth=0.8, label="realized, per shard")
        left.set_xlabel("shard")
    # A ratio schedule gives each shard its own target: drawn as a step per shard, and
    # the overall (token-weighted) target fainter beside it.
    targets = [s.get("target_ratio", mixing["target_ratio"]) for s in shards]
    varying = len(set(targets)) > 1
    if varying:
        left.stairs(targets, [i - 0.5 for i in range(len(shards) + 1)], color=PALETTE[3], linewidth=1.5,
                    baseline=None, label="target, per shard")
        left.axhline(mixing["target_ratio"], color=PALETTE[3], linestyle="--", alpha=0.5,
                     label=f"target overall {mixing['target_ratio']:.4f}")
    else:
        left.axhline(mixing["target_ratio"], color=PALETTE[3], linestyle="--",
                     label=f"target {mixing['target_ratio']}")
    left.axhline(mixing["realized_ratio"], color="#444444", linestyle=":",
                 label=f"realized overall {mixing['realized_ratio']:.4f}")
    left.set_ylim(0, max([*ratios, *targets, mixing["target_ratio"]]) * 1.35 or 1)
    left.set_title("Instruction-token ratio per shard")
    # Four entries in two columns fit the headroom above the bars, wherever the schedule is high.
    left.legend(frameon=False, **({"loc": "upper center", "ncol": 2} if varying else {"loc": "upper right"}))
    sources = mixing["sources"]
    if sources:
        xs = range(len(sources))
        right.bar([i - 0.2 for i in xs], [s["weight"] for s in sources], width=0.4, color=PALETTE[5], label="weight")
        right.bar([i + 0.2 for i in xs], [s["token_share"] for s in sources], width=0.4, color=PALETTE[0],
                  label="realized token share")
        right.set_xticks(list(xs), [_label(s.get("label") or s["name"], 24) for s in sources],
                         rotation=20 if len(sources) > 2 else 0, ha="right" if len(sources) > 2 else "center")
        right.set_title("Instruction sources: weight vs realized share")
        right.legend(frameon=False)
    else:
        right.set_visible(False)
    return fig
