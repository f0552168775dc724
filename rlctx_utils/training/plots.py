"""Training curves: loss against optimizer step (and tokens) for one or more runs.

Read from each run's ``metrics.csv`` and ``run.json``; colours follow the paper (File-level
``#0072B2``, Path Distance ``#D55E00``), saved as PNG + PDF through :func:`rlctx_utils.plots.save_figure`.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..io import read_json
from ..names import COLORS, checkpoint_label


def read_metrics(run_dir: str | Path) -> pd.DataFrame:
    """A run's ``metrics.csv`` with its run.json fields as columns (run_id, composer, loss_type...)."""
    run_dir = Path(run_dir)
    df = pd.read_csv(run_dir / "metrics.csv")
    rec = read_json(run_dir / "run.json") if (run_dir / "run.json").exists() else {}
    for k in ("run_id", "stage", "composer", "mode", "rope_theta", "train_length"):
        df[k] = rec.get(k)
    df["loss_type"] = rec.get("loss")  # masked / full ("loss" is the value column)
    df["run_id"] = df["run_id"].fillna(run_dir.name)
    return df


def smooth(values: pd.Series, window: int) -> pd.Series:
    return values.rolling(window, min_periods=1, center=False).mean() if window > 1 else values


def plot_training_curves(run_dirs: list[str | Path], *, x: str = "step", smooth_window: int = 1,
                         title: str | None = None):
    """Loss (left) and tokens per second (right) for each run; returns the figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    many = len(run_dirs) > 4
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10, 3.6 + (0.22 * len(run_dirs) if many else 0)),
                                  gridspec_kw={"width_ratios": [2.2, 1]})
    styles = ["-", "--", ":", "-."]
    for i, d in enumerate(run_dirs):
        df = read_metrics(d)
        if df.empty:
            continue
        r = df.iloc[0]
        composer = r["composer"] if isinstance(r["composer"], str) else None
        if r["stage"] == "base":
            label = f"Base pretraining (θ={float(r['rope_theta']):,.0f})"
        else:
            label = checkpoint_label(composer, r["mode"], r["loss_type"], r["rope_theta"], with_loss=True)
        color = COLORS.get(composer or "", f"C{i % 10}")
        xs = df["train_tokens"] / 1e6 if x == "tokens" else df["step"]
        ax.plot(xs, smooth(df["loss"], smooth_window), color=color, ls=styles[i % len(styles)],
                lw=1.4, label=label)
        ax2.plot(df["step"], df["tokens_per_s"], color=color, ls=styles[i % len(styles)], lw=1.0)
    ax.set_xlabel("Training tokens (M)" if x == "tokens" else "Optimizer step")
    ax.set_ylabel("Training loss (nats/token)")
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax2.xaxis.set_major_locator(MaxNLocator(nbins=4, integer=True))  # the narrow panel: few ticks
    if many:  # a grid: the legend below both panels, where it hides no curve
        fig.legend(*ax.get_legend_handles_labels(), fontsize=7.5, loc="lower center", ncol=2,
                   bbox_to_anchor=(0.5, 0.0))
    else:
        ax.legend(fontsize=8, loc="upper right")
    ax2.set_xlabel("Optimizer step")
    ax2.set_ylabel("Tokens per second")
    ax2.set_ylim(bottom=0)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    if many:
        rows = (len(ax.get_legend_handles_labels()[1]) + 1) // 2
        fig.subplots_adjust(bottom=min(0.6, 0.06 + 0.055 * rows * 3.6 / fig.get_figheight()))
    return fig


#: Panels of the tuning figure: measure, axis label, what is better.
TUNING_PANELS = (("val_loss", "Validation loss (nats/token)", "lower is better"),
                 ("copy_code", "Copying: 2nd − 1st copy of a code chunk (nats)", "below 0 = copies"),
                 ("copy_random", "Copying: random tokens (nats)", "below 0 = copies"),
                 ("val_within_file", "Within-file: loss [32,64) − [256,512) (nats)", "above 0 = reads the file"))


def plot_tuning(curves: pd.DataFrame, *, title: str | None = None):
    """The tuning sweep: each measure against quiet-machine minutes, one line per variant."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(TUNING_PANELS), figsize=(4.0 * len(TUNING_PANELS), 3.6))
    variants = list(dict.fromkeys(curves["variant"]))
    styles = ["-", "--", ":", "-."]
    for ax, (measure, label, better) in zip(axes, TUNING_PANELS):
        df = curves[curves["measure"] == measure]
        for i, v in enumerate(variants):
            d = df[df["variant"] == v].sort_values("minutes")
            if not d.empty:
                ax.plot(d["minutes"], d["value"], color=f"C{i % 10}", ls=styles[(i // 10) % 4], lw=1.4,
                        marker="o", ms=2.5, label=v)
        if measure != "val_loss":
            ax.axhline(0, color="0.4", lw=0.8)
        ax.set_xlabel("Minutes on a quiet 2-core CPU")
        ax.set_title(f"{label}\n({better})", fontsize=9)
    axes[0].legend(fontsize=7, loc="upper right")
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig
