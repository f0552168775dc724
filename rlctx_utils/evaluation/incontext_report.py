"""The in-context measures per checkpoint as a table and a figure (notebook 06, ``make figures``).

Inputs are committed results only: ``results/<profile>/incontext/*.csv`` (copying and within-file
scores, :func:`rlctx_utils.evaluation.incontext.run_incontext`), the perplexity-protocol
evaluations in ``results/<profile>/evals/`` and the copy-score columns of the runs' ``metrics.csv``
(the copying curve over training, ``incontext_every``).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from ..io import read_json
from ..paths import results_dir
from . import incontext

#: The settings of the perplexity protocol shown (FL-base is 0 by construction and shown as its loss).
DELTA_ROLES = ("PD-base", "PD-ext", "Or-ext")


def perplexity_frame(profile: str, out_dir: str | os.PathLike[str] | None = None, *, n_resamples: int = 2000,
                     seed: int = 0) -> pd.DataFrame:
    """One row per stored perplexity evaluation x role: ``checkpoint``, ``composer``, ``mode``,
    ``loss``, ``theta``, ``eval_role``, ``eval_setting``, ``file_loss``, ``delta`` and its 95%
    repository-bootstrap interval ``ci_low``/``ci_high``, ``n`` files."""
    from .api import evals_dir

    d = evals_dir(profile, out_dir)
    rows = []
    for side in sorted(d.glob("*.json")) if d.is_dir() else []:
        ident = (read_json(side).get("config") or {}).get("identity") or {}
        summ, recs = side.with_suffix(".summary.csv"), side.with_suffix(".parquet")
        if ident.get("protocol") != "perplexity" or not (summ.exists() and recs.exists()):
            continue
        s = pd.read_csv(summ)
        r = pd.read_parquet(recs)
        mean, lo, hi = incontext.delta_interval(r, n_resamples=n_resamples, seed=seed)
        for _, row in s[s["line_type"] == "file"].iterrows():
            rows.append({k: row.get(k) for k in ("checkpoint", "composer", "mode", "loss", "theta", "eval_role",
                                                 "eval_setting", "file_loss")}
                        | {"delta": mean, "ci_low": lo, "ci_high": hi, "n": len(r)})
    cols = ["checkpoint", "composer", "mode", "loss", "theta", "eval_role", "eval_setting", "file_loss", "delta",
            "ci_low", "ci_high", "n"]
    return pd.DataFrame(rows, columns=cols)


def _checkpoint_names(scores: pd.DataFrame) -> pd.DataFrame:
    s = scores.copy()
    if "checkpoint" not in s or s["checkpoint"].isna().any():
        s["checkpoint"] = s["run_id"]
    return s


def _ci_text(v: float, lo: float, hi: float, digits: int = 2) -> str:
    if pd.isna(v):
        return "–"
    if pd.isna(lo) or pd.isna(hi):
        return f"{v:+.{digits}f}"
    return f"{v:+.{digits}f} [{lo:+.{digits}f}, {hi:+.{digits}f}]"


def table_frame(scores: pd.DataFrame, ppl: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(values, text) of the in-context table: one row per checkpoint; columns the three scores,
    the FL-base file loss and the file-loss deltas of the context settings."""
    from .report import sort_runs

    scores = _checkpoint_names(scores) if len(scores) else scores
    meta = []
    if len(scores):
        m = scores.drop_duplicates("checkpoint")[["checkpoint", "composer", "mode", "loss_type", "theta"]]
        meta.append(m.rename(columns={"loss_type": "loss"}))
    if len(ppl):
        meta.append(ppl.drop_duplicates("checkpoint")[["checkpoint", "composer", "mode", "loss", "theta"]])
    if not meta:
        return pd.DataFrame(), pd.DataFrame()
    rows = pd.concat(meta, ignore_index=True).drop_duplicates("checkpoint")
    rows = rows.astype({"composer": object, "mode": object, "loss": object})
    rows["composer"] = rows["composer"].where(rows["composer"].notna(), None)
    order = list(sort_runs(rows.reset_index(drop=True))["checkpoint"])
    cols = ["Copy, random (2nd − 1st)", "Copy, code (2nd − 1st)", "Within-file (early − late)"]
    settings = [r for r in DELTA_ROLES if len(ppl) and (ppl["eval_role"] == r).any()]
    fl = len(ppl) and (ppl["eval_role"] == "FL-base").any()
    label = {r: ppl.loc[ppl["eval_role"] == r, "eval_setting"].iloc[0] for r in (*settings, "FL-base")
             if len(ppl) and (ppl["eval_role"] == r).any()}
    cols += ([f"File loss, {label['FL-base']}"] if fl else []) + [f"Δ {label[r]}" for r in settings]
    values = pd.DataFrame(np.nan, index=order, columns=cols)
    text = pd.DataFrame(None, index=order, columns=cols, dtype=object)
    for measure, col in zip(incontext.MEASURES, cols[:3]):
        for _, r in scores[scores["measure"] == measure].iterrows() if len(scores) else []:
            values.at[r["checkpoint"], col] = r["score"]
            text.at[r["checkpoint"], col] = _ci_text(r["score"], r["ci_low"], r["ci_high"])
    for _, r in ppl.iterrows() if len(ppl) else []:
        if r["eval_role"] == "FL-base" and fl:
            col = f"File loss, {label['FL-base']}"
            values.at[r["checkpoint"], col] = r["file_loss"]
            text.at[r["checkpoint"], col] = f"{r['file_loss']:.3f}"
        elif r["eval_role"] in settings:
            col = f"Δ {label[r['eval_role']]}"
            values.at[r["checkpoint"], col] = r["delta"]
            text.at[r["checkpoint"], col] = _ci_text(r["delta"], r["ci_low"], r["ci_high"], 3)
    return values, text


def incontext_table(scores: pd.DataFrame, ppl: pd.DataFrame, *, profile: str):
    """The :class:`rlctx_utils.tables.Table` of the in-context measures per checkpoint."""
    from .. import tables

    values, text = table_frame(scores, ppl)
    if values.empty:
        raise ValueError("no in-context results to tabulate")
    cap = (f"In-context measures per checkpoint (profile {profile}; nats/token, 95% bootstrap intervals: over "
           "sequences for random tokens, over repositories otherwise). Copy = loss on the second copy of a "
           "repeated sequence minus on the first (negative = copies); within-file = loss at file positions "
           "[32,64) minus [256,512) (positive = uses in-file context); Δ = completion-file loss with the "
           "setting's context minus without (perplexity protocol; negative = the repository context helps).")
    return tables.Table(values, cap, text=text, digits=3)


def _run_colors(frame: pd.DataFrame) -> list[str]:
    from ..names import COLORS, OURS_COLOR

    return [COLORS.get(c, OURS_COLOR) if isinstance(c, str) else OURS_COLOR for c in frame["composer"]]


def incontext_figure(scores: pd.DataFrame, ppl: pd.DataFrame, *, title: str | None = None):
    """Three panels over checkpoints (one row each): copying scores (random tokens ○, code □),
    within-file score, and the perplexity deltas of the context settings; whiskers are the 95%
    intervals. Checkpoints are coloured by training composer, the Δ markers by the evaluation
    composer (File-level #0072B2 = the no-context line at 0, Path Distance #D55E00)."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    from ..names import COLORS, OURS_COLOR

    values, _ = table_frame(scores, ppl)
    if values.empty:
        raise ValueError("no in-context results to draw")
    names = list(values.index)
    y = {n: i for i, n in enumerate(names)}
    sc = _checkpoint_names(scores) if len(scores) else scores
    comp = {}
    for f in (sc.rename(columns={"loss_type": "loss"}) if len(sc) else sc, ppl):
        if len(f):
            for _, r in f.drop_duplicates("checkpoint").iterrows():
                comp.setdefault(r["checkpoint"], r["composer"] if isinstance(r["composer"], str) else None)
    panels = [p for p, ok in (("copy", len(sc) > 0), ("within", len(sc) > 0), ("delta", len(ppl) > 0)) if ok]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels) + 2.2, 0.34 * len(names) + 1.6),
                             sharey=True, squeeze=False)
    for ax, panel in zip(axes[0], panels):
        if panel == "copy":
            for measure, marker, dy in (("copy_random", "o", -0.15), ("copy_code", "s", 0.15)):
                d = sc[sc["measure"] == measure]
                for _, r in d.iterrows():
                    c = COLORS.get(comp.get(r["checkpoint"]) or "", OURS_COLOR)
                    yy = y[r["checkpoint"]] + dy
                    if pd.notna(r["ci_low"]):
                        ax.plot([r["ci_low"], r["ci_high"]], [yy, yy], color=c, lw=1)
                    ax.plot(r["score"], yy, marker=marker, color=c, ms=5, ls="none",
                            mfc="white" if measure == "copy_random" else c)
            ax.plot([], [], "o", color=OURS_COLOR, mfc="white", label="random tokens")
            ax.plot([], [], "s", color=OURS_COLOR, label="code chunk")
            ax.set_xlabel("2nd − 1st copy (nats/token)")
            ax.set_title("Copying (negative = copies)", fontsize=10)
        elif panel == "within":
            d = sc[sc["measure"] == "within_file"]
            for _, r in d.iterrows():
                c = COLORS.get(comp.get(r["checkpoint"]) or "", OURS_COLOR)
                yy = y[r["checkpoint"]]
                if pd.notna(r["ci_low"]):
                    ax.plot([r["ci_low"], r["ci_high"]], [yy, yy], color=c, lw=1)
                ax.plot(r["score"], yy, "o", color=c, ms=5)
            ax.set_xlabel("loss [32,64) − [256,512) (nats/token)")
            ax.set_title("Within-file (positive = uses the file)", fontsize=10)
        else:
            ax.axvline(0, color=COLORS["file_level"], lw=1.2, label="FL-base (no context) = 0")
            markers = {"PD-base": ("o", -0.2), "PD-ext": ("s", 0.0), "Or-ext": ("D", 0.2)}
            for role, (marker, dy) in markers.items():
                d = ppl[ppl["eval_role"] == role]
                for _, r in d.iterrows():
                    own = comp.get(r["checkpoint"])
                    c = COLORS["path_distance_py"] if role != "Or-ext" else COLORS.get(own or "", OURS_COLOR)
                    yy = y[r["checkpoint"]] + dy
                    if pd.notna(r["ci_low"]):
                        ax.plot([r["ci_low"], r["ci_high"]], [yy, yy], color=c, lw=1)
                    ax.plot(r["delta"], yy, marker=marker, color=c, ms=5, ls="none",
                            mfc="white" if role == "PD-base" else c)
                if len(d):
                    ax.plot([], [], marker, color=COLORS["path_distance_py"] if role != "Or-ext" else OURS_COLOR,
                            mfc="white" if role == "PD-base" else None, ls="none",
                            label=f"{d['eval_setting'].iloc[0]}" + (" (own composer)" if role == "Or-ext" else ""))
            ax.set_xlabel("file loss with − without context (nats/token)")
            ax.set_title("Repository context (negative = helps)", fontsize=10)
        ax.axvline(0, color="#999999", lw=0.6, zorder=0)
        ax.xaxis.set_major_locator(MaxNLocator(4))
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, loc="best")
    axes[0][0].set_yticks(range(len(names)))
    axes[0][0].set_yticklabels(names, fontsize=8)
    axes[0][0].invert_yaxis()
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def training_curves(profile: str, results_root: str | Path | None = None) -> pd.DataFrame:
    """The copying curves runs logged while training (``incontext_every``): ``run_id``, ``step``
    and :data:`incontext.TRAINING_FIELDS`, from every ``runs/*/metrics.csv`` that has them."""
    root = Path(results_root or results_dir(profile)) / "runs"
    frames = []
    for m in sorted(root.glob("*/metrics.csv")) if root.is_dir() else []:
        c = incontext.curve_from_metrics(m)
        if len(c):
            frames.append(c.assign(run_id=m.parent.name))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["step", *incontext.TRAINING_FIELDS, "run_id"])


def curve_figure(curves: pd.DataFrame, *, title: str | None = None):
    """Copying score against training step, one line per run (random tokens solid, code dashed)."""
    import matplotlib.pyplot as plt

    from ..names import COLORS, OURS_COLOR

    if curves.empty:
        raise ValueError("no copying curve was logged (set [base_training] incontext_every = N)")
    fig, ax = plt.subplots(figsize=(6.2, 3.4))
    for rid, g in curves.groupby("run_id", sort=False):
        comp = next((c for c in COLORS if rid.startswith(c)), None)
        color = COLORS.get(comp or "", OURS_COLOR) if rid != "base" else OURS_COLOR
        g = g.sort_values("step")
        ax.plot(g["step"], g["copy_random"], color=color, lw=1.4, label=f"{rid}: random tokens")
        if g["copy_code"].notna().any():
            ax.plot(g["step"], g["copy_code"], color=color, lw=1.4, ls="--", label=f"{rid}: code chunk")
    ax.axhline(0, color="#999999", lw=0.6)
    ax.set_xlabel("training step")
    ax.set_ylabel("2nd − 1st copy (nats/token)")
    ax.legend(fontsize=7)
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig
