"""Statistics for paired comparisons of checkpoints (SPEC section 7).

Two granularities:

* *paired numbers*: the paper's masked-vs-full comparison pairs the 8 EM numbers of a masked run
  with those of its full twin (:func:`masked_vs_full_pairs`); tests on those pairs are the one-sided
  paired t-test (what the companion thesis used), the Wilcoxon signed-rank test and a paired
  bootstrap CI of the mean difference;
* *per-line outcomes*: with our own per-line records, two checkpoints' exact-match outcomes on the
  same lines are compared with the exact McNemar test, and any per-line measure with a cluster
  bootstrap that resamples repositories (lines of one repository are not independent).

scipy provides the tests wherever it has them; only the cluster bootstrap is written here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as sps


@dataclass(frozen=True)
class TestResult:
    statistic: float
    pvalue: float
    n: int
    name: str


@dataclass(frozen=True)
class Interval:
    estimate: float
    low: float
    high: float
    level: float


def _pair(a, b) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired samples need equal 1-d shapes, got {a.shape} and {b.shape}")
    if len(a) < 2:
        raise ValueError("need at least two pairs")
    return a, b


def paired_ttest(a, b, alternative: str = "less") -> TestResult:
    """Paired t-test of mean(a - b); ``alternative='less'`` tests a < b (masked worse than full)."""
    a, b = _pair(a, b)
    r = sps.ttest_rel(a, b, alternative=alternative)
    return TestResult(float(r.statistic), float(r.pvalue), len(a), f"paired t-test ({alternative})")


def wilcoxon(a, b, alternative: str = "less") -> TestResult:
    """Wilcoxon signed-rank test of a - b (zero differences dropped, scipy's default)."""
    a, b = _pair(a, b)
    if np.allclose(a, b):  # no non-zero difference to rank (e.g. EM 0 on both sides at toy scale)
        return TestResult(float("nan"), 1.0, len(a), f"Wilcoxon signed-rank ({alternative})")
    r = sps.wilcoxon(a, b, alternative=alternative)
    return TestResult(float(r.statistic), float(r.pvalue), len(a), f"Wilcoxon signed-rank ({alternative})")


def paired_bootstrap_ci(a, b, *, level: float = 0.95, n_resamples: int = 10_000,
                        seed: int = 0) -> Interval:
    """Percentile-BCa bootstrap CI of the mean paired difference mean(a - b) (scipy.stats.bootstrap)."""
    a, b = _pair(a, b)
    d = a - b
    r = sps.bootstrap((d,), np.mean, confidence_level=level, n_resamples=n_resamples,
                      rng=np.random.default_rng(seed), method="BCa")
    return Interval(float(d.mean()), float(r.confidence_interval.low),
                    float(r.confidence_interval.high), level)


def mcnemar_exact(x, y) -> TestResult:
    """Exact McNemar test on paired binary outcomes (e.g. per-line exact match of two checkpoints).

    Only discordant pairs count: b = x right and y wrong, c = x wrong and y right; under the null
    b ~ Binomial(b + c, 1/2). Two-sided p-value; statistic = b.
    """
    x, y = np.asarray(x, dtype=bool), np.asarray(y, dtype=bool)
    if x.shape != y.shape:
        raise ValueError("paired outcomes need equal shapes")
    b = int(np.sum(x & ~y))
    c = int(np.sum(~x & y))
    if b + c == 0:
        return TestResult(0.0, 1.0, len(x), "exact McNemar")
    p = sps.binomtest(b, b + c, 0.5, alternative="two-sided").pvalue
    return TestResult(float(b), float(p), len(x), "exact McNemar")


def cluster_bootstrap_ci(values, clusters, *, stat=np.mean, level: float = 0.95,
                         n_resamples: int = 2_000, seed: int = 0) -> Interval:
    """Bootstrap CI of ``stat(values)`` resampling whole clusters (repositories) with replacement.

    ``values`` may be a per-line measure or a per-line paired difference. Percentile interval.
    """
    v = np.asarray(values, dtype=float)
    cl = pd.factorize(np.asarray(clusters))[0]
    if len(v) != len(cl):
        raise ValueError("values and clusters must have the same length")
    k = cl.max() + 1
    members = [np.flatnonzero(cl == i) for i in range(k)]
    rng = np.random.default_rng(seed)
    est = float(stat(v))
    reps = np.empty(n_resamples)
    for j in range(n_resamples):
        pick = rng.integers(0, k, size=k)
        reps[j] = stat(v[np.concatenate([members[i] for i in pick])])
    alpha = (1 - level) / 2
    return Interval(est, float(np.quantile(reps, alpha)), float(np.quantile(reps, 1 - alpha)), level)


def masked_vs_full_pairs(df: pd.DataFrame, metric: str = "em") -> pd.DataFrame:
    """Pair every masked run's numbers with its full twin.

    Returns one row per (composer, mode, line type, setting) with columns ``masked``, ``full`` and
    ``diff`` (masked - full); only composers trained both ways appear. Rows of the main four
    evaluation roles of the paper's grid are used: a run beyond it (a LoRA adapter or YaRN of the same
    composer, marked in its ``note``) is no masked twin.
    """
    from .names import is_beyond_paper

    d = df[~is_beyond_paper(df) & df["loss"].isin(["masked", "full"]) & df["eval_role"].isin(["FL-base", "PD-base", "PD-ext", "Or-ext"])
           & df["line_type"].isin(["inproject", "infile"])]  # the paper's line types (not micro/macro)
    key = ["composer", "mode", "line_type", "eval_setting"]
    d = d.drop_duplicates(subset=key + ["loss"])
    wide = d.pivot_table(index=key, columns="loss", values=metric, aggfunc="first").dropna()
    wide = wide.reset_index()
    wide["diff"] = wide["masked"] - wide["full"]
    return wide


def summarize_pairs(pairs: pd.DataFrame, *, seed: int = 0) -> dict[str, float]:
    """Mean difference, t-test and Wilcoxon p-values and bootstrap CI of a pairs frame."""
    t = paired_ttest(pairs["masked"], pairs["full"])
    w = wilcoxon(pairs["masked"], pairs["full"])
    ci = paired_bootstrap_ci(pairs["masked"], pairs["full"], seed=seed)
    return {"n_pairs": len(pairs), "mean_diff": float(pairs["diff"].mean()), "t": t.statistic,
            "p_ttest": t.pvalue, "W": w.statistic, "p_wilcoxon": w.pvalue,
            "ci_low": ci.low, "ci_high": ci.high, "ci_level": ci.level}
