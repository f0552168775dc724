"""Figures of notebook 03_data: what a mined dataset looks like, next to Long Code Arena."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from .lines import BUCKETS  # noqa: E402
from .types import CATEGORIES  # noqa: E402

BLUE, ORANGE = "#0072B2", "#D55E00"
SPLIT_COLORS = {"train": BLUE, "validation": "#009E73", "benchmark": ORANGE}
CAT_COLORS = dict(zip(CATEGORIES, ("#CC79A7", ORANGE, BLUE, "#009E73", "#999999", "#E69F00")))


def save_figure(fig: plt.Figure, stem: str | Path, *, caption: str = "", source: str = "") -> list[Path]:
    """Write ``stem.png``, ``stem.pdf`` and the provenance ``stem.json`` (via :func:`rlctx_utils.plots.save_figure`)."""
    from ..plots import save_figure as _save

    stem = Path(stem)
    _save(fig, stem.name, caption=caption or stem.name, source=source,
          regenerate="notebooks/03_data.py (make reproduce PROFILE=...)", out_dir=stem.parent)
    return [stem.with_suffix(".png"), stem.with_suffix(".pdf")]


def per_repo_figure(table: pd.DataFrame) -> plt.Figure:
    """Datapoints per repository, coloured by split."""
    counts = table.groupby(["repo", "split"]).size().reset_index(name="n").sort_values("n", ascending=True)
    fig, ax = plt.subplots(figsize=(7, max(2.5, 0.22 * len(counts) + 0.8)))
    ax.barh(counts.repo.str.replace("pypi__", ""), counts.n, color=[SPLIT_COLORS[s] for s in counts.split])
    from matplotlib.patches import Patch

    handles = [Patch(color=c, label=s) for s, c in SPLIT_COLORS.items() if (counts.split == s).any()]
    ax.set_xlabel("datapoints (completion files)")
    ax.legend(handles=handles, loc="lower right", frameon=False)
    ax.set_title("Datapoints per repository")
    fig.tight_layout()
    return fig


def length_figure(table: pd.DataFrame) -> plt.Figure:
    """Histograms of completion-file length in characters and (if counted) tokens, per split."""
    cols = ["completion_chars"] + (["completion_tokens"] if "completion_tokens" in table else [])
    fig, axes = plt.subplots(1, len(cols), figsize=(5 * len(cols), 3.2), squeeze=False)
    for ax, col in zip(axes[0], cols):
        hi = table[col].max() if len(table) else 1
        bins = 30
        for split, t in table.groupby("split"):
            ax.hist(t[col], bins=bins, range=(0, hi), alpha=0.6, color=SPLIT_COLORS.get(split),
                    label=f"{split} (n={len(t)})", density=True)
        ax.set_xlabel(col.replace("completion_", "completion file length, "))
        ax.set_ylabel("density")
        ax.legend(frameon=False)
    fig.tight_layout()
    return fig


def category_figure(cat_counts: pd.DataFrame) -> plt.Figure:
    """Share of sampled target lines per category, one stacked bar per (split, bucket); the number
    of lines is written above each bar (splits differ in size by orders of magnitude)."""
    df = cat_counts.copy()
    order = [(s, b) for s in SPLIT_COLORS for b in BUCKETS if (s, b) in df.index]
    df = df.loc[order]
    totals = df.sum(axis=1)
    share = df.div(totals.where(totals > 0, 1), axis=0)
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(df) + 2.5), 3.8))
    bottom = pd.Series(0, index=range(len(df)), dtype=float)
    labels = [f"{s}\n{b}" for s, b in df.index]
    x = range(len(df))
    for c in CATEGORIES:
        vals = share[c].to_numpy()
        ax.bar(x, vals, bottom=bottom.to_numpy(), color=CAT_COLORS[c], label=c, width=0.75)
        bottom += vals
    for i, n in enumerate(totals):
        ax.text(i, 1.01, f"n={int(n)}", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(list(x), labels, fontsize=8)
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("share of sampled target lines")
    ax.set_title("Line categories per split and size bucket", pad=14)
    ax.legend(fontsize=8, frameon=False, bbox_to_anchor=(1.01, 1), loc="upper left")
    fig.tight_layout()
    return fig
