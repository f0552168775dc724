"""Figures of the paper from any frame in the results schema (published numbers and ours alike).

Every figure is saved by :func:`save_figure` as PNG and PDF (atomically) plus a small JSON file with
its caption and provenance, which :mod:`rlctx_utils.report` reads to build ``paper/REPORT.md``.
Colours follow the paper: File-level ``#0072B2``, Path Distance ``#D55E00``.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import FixedLocator, NullLocator  # noqa: E402

from . import schema  # noqa: E402
from .io import atomic_path, write_json  # noqa: E402
from .names import COLORS, COMPOSER_LABELS, OURS_COLOR  # noqa: E402
from .paths import FIGURES, REPO_ROOT  # noqa: E402

METRIC_LABELS = {"em": "Exact match (%)", "token_acc": "Token accuracy (%)",
                 "line_loss": "Target-line loss (nats/token)", "edit_sim": "Edit similarity (%)"}

plt.rcParams.update({"figure.dpi": 110, "savefig.dpi": 150, "axes.spines.top": False,
                     "axes.spines.right": False, "axes.grid": True, "grid.alpha": 0.3,
                     "font.size": 10, "legend.frameon": False, "pdf.fonttype": 42})


def save_figure(fig: plt.Figure, name: str, *, caption: str, source: str, regenerate: str,
                out_dir: Path = FIGURES) -> Path:
    """Write ``<name>.png``, ``<name>.pdf`` and ``<name>.json`` (caption, source, command)."""
    out_dir = Path(out_dir)
    for ext in ("png", "pdf"):
        with atomic_path(out_dir / f"{name}.{ext}") as tmp:
            # PDFs without creation dates, so a rerun with equal numbers gives an equal file
            meta = {"CreationDate": None} if ext == "pdf" else {"Software": None}
            fig.savefig(tmp, bbox_inches="tight", format=ext, metadata=meta)
    # committed records name files relative to the repository, never by this machine's paths
    source = source.replace(str(REPO_ROOT.resolve()) + "/", "").replace(str(REPO_ROOT) + "/", "")
    write_json(out_dir / f"{name}.json", {"caption": caption, "source": source, "regenerate": regenerate})
    plt.close(fig)
    return out_dir / f"{name}.png"


def _color(composer: str | None, fallback: str = OURS_COLOR) -> str:
    return COLORS.get(composer if isinstance(composer, str) else "", fallback)


def _kfmt(n: float) -> str:
    return schema.size_label(int(n))


def plot_extrapolation(df: pd.DataFrame, *, metric: str = "em", line_types=("inproject", "infile"),
                       title: str | None = None) -> plt.Figure:
    """Figure 2: a metric against maximum context size (log2 axis), one panel per line type.

    ``df`` holds ``eval_role == 'sweep'`` rows of one or more sources; each source gets its own row
    of panels (its own y scale: the paper's EM and a toy model's token accuracy live on different
    scales). Lines are checkpoints, coloured by training composer; dotted verticals mark each
    checkpoint's training length.
    """
    d = df[(df["eval_role"] == "sweep") & df["line_type"].isin(line_types) & df[metric].notna()]
    if d.empty:
        raise ValueError(f"no sweep rows with {metric!r} to plot")
    # a panel per line type some source evaluated (a study that scores inproject lines only gets one)
    line_types = [lt for lt in line_types if lt in set(d["line_type"])]
    sources = list(dict.fromkeys(d["source"]))
    fig, axes = plt.subplots(len(sources), len(line_types), figsize=(4.6 * len(line_types), 3.4 * len(sources)),
                             squeeze=False, sharex=False)
    for i, src in enumerate(sources):
        ds = d[d["source"] == src]
        for j, lt in enumerate(line_types):
            ax = axes[i, j]
            dl = ds[ds["line_type"] == lt]
            ax.set_title(f"{lt} lines" + ("" if len(sources) == 1 else f" — {src}"))
            if dl.empty:  # another source evaluated this line type, this one did not
                ax.text(0.5, 0.5, f"{lt} lines not evaluated", transform=ax.transAxes, ha="center", color="0.3")
                ax.set_xticks([])
                ax.set_yticks([])
                continue
            for ck, g in dl.groupby("checkpoint", sort=False):
                g = g.sort_values("max_context")
                comp = g["composer"].iloc[0]
                full = str(g["loss"].iloc[0]) == "full" and comp != "file_level"  # File-level: the same objective
                ax.plot(g["max_context"], g[metric], marker="o", ms=4, lw=1.8, color=_color(comp),
                        ls="--" if full else "-", label=str(ck))
                tl = g["train_length"].dropna()
                if len(tl):
                    ax.axvline(int(tl.iloc[0]), color=_color(comp), ls=":", lw=1, alpha=0.8)
            ax.set_xscale("log", base=2)
            ticks = sorted(dl["max_context"].dropna().unique())
            ax.xaxis.set_major_locator(FixedLocator(ticks))
            ax.xaxis.set_minor_locator(NullLocator())
            ax.set_xticklabels([_kfmt(t) for t in ticks])
            if metric == "em":  # a percentage: no negative axis, even when a toy model scores 0 everywhere
                top = float(dl[metric].max()) if len(dl) else 0.0
                ax.set_ylim(0, top * 1.08 if top > 0 else 1.0)
                if top == 0:
                    ax.text(0.5, 0.5, "EM 0 at every size", transform=ax.transAxes, ha="center", color="0.3")
            ax.set_xlabel("maximum context (tokens, log scale)")
            if j == 0:
                ax.set_ylabel(METRIC_LABELS.get(metric, metric))
        axes[i, 0].legend(loc="best", fontsize=8)
    fig.suptitle(title or "Extrapolation beyond the training window (dotted: training length)", y=1.0)
    fig.tight_layout()
    return fig


def plot_model_comparison(df: pd.DataFrame, *, metric: str = "em") -> plt.Figure:
    """Table 1 as grouped bars: groups PD-ext/FL-base x inproject/infile, one bar per model."""
    d = df[df["eval_role"].isin(["FL-base", "PD-ext"])]
    groups = [(role, lt) for role in ("PD-ext", "FL-base") for lt in ("inproject", "infile")]
    models = list(dict.fromkeys(d["checkpoint"]))
    palette = ["#999999", "#56B4E9", "#000000", "#009E73", "#0072B2", "#D55E00", "#CC79A7", "#E69F00"]
    colors = {}
    for m in models:
        comp = d.loc[d["checkpoint"] == m, "composer"].dropna()
        colors[m] = COLORS.get(comp.iloc[0]) if len(comp) else None
    free = iter(c for c in palette if c not in colors.values())
    colors = {m: c or next(free) for m, c in colors.items()}
    fig, ax = plt.subplots(figsize=(10, 4.2))
    width = 0.8 / len(models)
    for k, m in enumerate(models):
        vals, labels = [], []
        for role, lt in groups:
            v = d[(d["checkpoint"] == m) & (d["eval_role"] == role) & (d["line_type"] == lt)][metric]
            vals.append(v.iloc[0] if len(v) else np.nan)
        x = np.arange(len(groups)) + (k - (len(models) - 1) / 2) * width
        bars = ax.bar(x, vals, width * 0.95, color=colors[m], label=m)
        ax.bar_label(bars, fmt="%.1f", fontsize=6.5, padding=1)
    setting = {role: d.loc[d["eval_role"] == role, "eval_setting"].iloc[0] for role, _ in groups}
    ax.set_xticks(np.arange(len(groups)), [f"{setting[r]} {lt}" for r, lt in groups])
    ax.set_ylabel(METRIC_LABELS.get(metric, metric))
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2, fontsize=8)
    ax.set_title("Models compared: repository context (PD) vs file only (FL)")
    fig.tight_layout()
    return fig


def plot_setting_heatmap(df: pd.DataFrame, *, metric: str = "em", clip: float = 5.0,
                         title: str | None = None) -> plt.Figure:
    """Checkpoint x evaluation-setting heatmap (Table 3).

    Cells show the value; colour shows the deviation from the column's median (clipped at
    ``clip`` points), so small differences between composers stay visible next to outliers such as
    Duplication's own-composer score.
    """
    from .tables import grid

    values = grid(df, metric=metric)
    dev = (values - values.median()).clip(-clip, clip)
    h = max(3.0, 0.28 * len(values) + 1.5)
    fig, ax = plt.subplots(figsize=(1.0 * values.shape[1] + 4.2, h))
    im = ax.imshow(dev.to_numpy(dtype=float), cmap="RdBu", vmin=-clip, vmax=clip, aspect="auto")
    for (r, c), v in np.ndenumerate(values.to_numpy(dtype=float)):
        if not np.isnan(v):
            ax.text(c, r, f"{v:.1f}", ha="center", va="center", fontsize=7,
                    color="white" if abs(dev.iat[r, c]) > 0.7 * clip else "black")
    ax.set_xticks(range(values.shape[1]), [f"{s}\n{lt}" for lt, s in values.columns], fontsize=8)
    ax.set_yticks(range(values.shape[0]), values.index, fontsize=8)
    ax.grid(False)
    nl = len(dict.fromkeys(values.columns.get_level_values(0)))
    for k in range(1, nl):
        ax.axvline(k * values.shape[1] / nl - 0.5, color="black", lw=1)
    cb = fig.colorbar(im, ax=ax, fraction=0.03, pad=0.02)
    cb.set_label(f"difference from column median (points, clipped at ±{clip:g})")
    ax.set_title(title or "Every checkpoint under every evaluation setting")
    fig.tight_layout()
    return fig


def plot_paired_differences(pairs: pd.DataFrame, *, apart: tuple[str, ...] = ("duplication",),
                            unit: str = "EM points", annotation: str | None = None) -> plt.Figure:
    """Histogram of masked-minus-full differences with the mean dashed; ``apart`` composers shown
    in a separate panel (Duplication, where masking hurts a lot)."""
    main = pairs[~pairs["composer"].isin(apart)]
    side = pairs[pairs["composer"].isin(apart)]
    fig, axes = plt.subplots(1, 2, figsize=(9.5, 3.4), gridspec_kw={"width_ratios": [3, 1.3]})
    ax = axes[0]
    lim = max(abs(main["diff"]).max(), 0.05)
    tenths = main["diff"].to_numpy(dtype=float) * 10
    if np.allclose(tenths, np.round(tenths)):  # printed to 0.1: one bin per 0.1, centred on it
        k = int(np.ceil(lim * 10 + 1e-9))
        bins = (np.arange(-k, k + 2) - 0.5) / 10
    else:
        bins = np.linspace(-lim, lim, 17)
    ax.hist(main["diff"], bins=bins, color="#0072B2", alpha=0.8, edgecolor="white")
    mean = main["diff"].mean()
    ax.axvline(mean, color="#D55E00", ls="--", lw=2, label=f"mean {mean:+.3f}")
    ax.axvline(0, color="black", lw=0.8)
    ax.set_xlabel(f"masked − full ({unit})")
    ax.set_ylabel("pairs")
    ax.set_title(f"{len(main)} paired numbers (Duplication excluded)")
    ax.legend(loc="upper left")
    if annotation:
        ax.text(0.98, 0.97, annotation, transform=ax.transAxes, ha="right", va="top", fontsize=8)
    ax = axes[1]
    if len(side):
        y = np.arange(len(side))
        ax.scatter(side["diff"], y, color="#D55E00")
        ax.set_yticks(y, [f"{lt} {s}" for lt, s in zip(side["line_type"], side["eval_setting"])], fontsize=7)
        ax.axvline(0, color="black", lw=0.8)
        ax.set_xlabel(f"masked − full ({unit})")
        ax.set_title(", ".join(COMPOSER_LABELS.get(a, a) for a in apart) + ", apart")
    else:
        ax.axis("off")
    fig.tight_layout()
    return fig
