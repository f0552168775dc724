"""Line-level measures and their averages over a benchmark.

Exact match (EM) is the study's only headline number, but a model small enough to train on a CPU
almost never completes a whole line, so every line also gets graded measures that still move when
EM is 0: the mean token loss of the target line under teacher forcing (nats per token), the share of
its tokens the model predicts correctly, and the edit similarity of prediction and target.

Averages: under the LCA protocol EM is averaged per file and then over files; under the thesis
protocol over lines. Each summary has one row per LCA line category plus ``micro`` (all lines
pooled, averaged the protocol's way) and ``macro`` (the mean of the per-category numbers).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..data.types import CATEGORIES

#: The per-line columns averaged into a summary, and the scale they are reported in.
MEASURES = {"match": 100.0, "line_loss": 1.0, "token_acc": 100.0, "edit_sim": 1.0}


def edit_similarity(a: str, b: str) -> float:
    """Indel similarity in percent, 100 * 2 * LCS(a, b) / (len(a) + len(b)) (the ``fuzz.ratio``
    the LCA baselines report); two empty strings are identical (100)."""
    if not a and not b:
        return 100.0
    if not a or not b:
        return 0.0
    # LCS length by dynamic programming over the shorter string (lines are <= a few hundred chars)
    if len(a) < len(b):
        a, b = b, a
    prev = [0] * (len(b) + 1)
    for ca in a:
        cur = [0]
        for j, cb in enumerate(b, 1):
            cur.append(prev[j - 1] + 1 if ca == cb else max(prev[j], cur[j - 1]))
        prev = cur
    return 100.0 * 2 * prev[-1] / (len(a) + len(b))


def _average(df: pd.DataFrame, col: str, file_average: bool) -> float:
    vals = df[col].astype(float)
    if vals.notna().sum() == 0:
        return float("nan")
    if file_average:
        return float(df.assign(_v=vals).groupby("datapoint")["_v"].mean().mean())
    return float(vals.mean())


def summarize(lines: pd.DataFrame, *, file_average: bool,
              categories: tuple[str, ...] = CATEGORIES) -> pd.DataFrame:
    """One row per line category (those with lines), plus ``micro`` and ``macro``.

    Columns: line_type, n_lines, em, line_loss, token_acc, edit_sim (em and token_acc in percent).
    """
    rows = []
    for cat in categories:
        d = lines[lines["category"] == cat]
        if len(d):
            rows.append(_row(cat, d, file_average))
    if len(lines):
        rows.append(_row("micro", lines, file_average))
        per_cat = pd.DataFrame(rows[:-1])
        if len(per_cat):
            macro = {"line_type": "macro", "n_lines": int(per_cat["n_lines"].sum())}
            for m in ("em", "line_loss", "token_acc", "edit_sim"):
                macro[m] = float(per_cat[m].mean())
            rows.append(macro)
    return pd.DataFrame(rows, columns=["line_type", "n_lines", "em", "line_loss", "token_acc", "edit_sim"])


def _row(name: str, d: pd.DataFrame, file_average: bool) -> dict:
    out = {"line_type": name, "n_lines": int(len(d))}
    for col, scale in MEASURES.items():
        key = "em" if col == "match" else col
        out[key] = _average(d, col, file_average) * scale
    return out


def agreement(a: pd.DataFrame, b: pd.DataFrame) -> dict:
    """Line-by-line agreement of two evaluations of the same lines (e.g. the two protocols).

    Returns the number of paired lines, how often both/neither/only one matched, Cohen's kappa of
    the match decisions, and the mean difference of the graded measures.
    """
    key = ["datapoint", "line"]
    m = a.merge(b, on=key, suffixes=("_a", "_b"))
    x, y = m["match_a"].astype(bool), m["match_b"].astype(bool)
    n = len(m)
    both, neither = int((x & y).sum()), int((~x & ~y).sum())
    only_a, only_b = int((x & ~y).sum()), int((~x & y).sum())
    po = (both + neither) / n if n else float("nan")
    pe = ((x.mean() * y.mean()) + ((1 - x.mean()) * (1 - y.mean()))) if n else float("nan")
    kappa = (po - pe) / (1 - pe) if n and pe < 1 else float("nan")
    out = {"n_lines": n, "both": both, "neither": neither, "only_a": only_a, "only_b": only_b,
           "agreement": po, "kappa": kappa}
    for col in ("line_loss", "token_acc", "edit_sim"):
        if f"{col}_a" in m and f"{col}_b" in m:
            diff = m[f"{col}_a"].astype(float) - m[f"{col}_b"].astype(float)
            out[f"{col}_mean_diff"] = float(np.nanmean(diff)) if n else float("nan")
            out[f"{col}_corr"] = float(m[f"{col}_a"].astype(float).corr(m[f"{col}_b"].astype(float))) \
                if n > 2 else float("nan")
    return out
