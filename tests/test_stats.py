"""Statistics against scipy, hand-checked values and the paper's masked-vs-full numbers."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from rlctx_utils import paper_results, published, stats


def test_paired_ttest_matches_scipy_and_hand_value():
    a, b = [1.0, 2.0, 3.0, 4.0], [1.5, 2.0, 3.5, 5.0]
    r = stats.paired_ttest(a, b, alternative="less")
    d = np.subtract(a, b)  # -0.5, 0, -0.5, -1 -> mean -0.5, sd 0.40825, t = -0.5 / (0.40825 / 2)
    assert r.statistic == pytest.approx(d.mean() / (d.std(ddof=1) / 2)) == pytest.approx(-2.449489743)
    assert r.pvalue == pytest.approx(sps.ttest_rel(a, b, alternative="less").pvalue)
    assert r.pvalue == pytest.approx(sps.t.cdf(-2.449489743, df=3))


def test_wilcoxon_matches_scipy():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=20), rng.normal(size=20) + 0.5
    assert stats.wilcoxon(a, b).pvalue == pytest.approx(sps.wilcoxon(a, b, alternative="less").pvalue)


def test_mcnemar_exact_hand_values():
    # b = 3 discordant in favour of x, c = 0: two-sided p = 2 * 0.5**3
    r = stats.mcnemar_exact([1, 1, 1, 0, 1], [0, 0, 0, 0, 1])
    assert r.statistic == 3 and r.pvalue == pytest.approx(0.25)
    # b = 1, c = 1: p = 1
    assert stats.mcnemar_exact([1, 0], [0, 1]).pvalue == pytest.approx(1.0)
    # b = 8, c = 2: p = 2 * P(X <= 2 | n=10) = 2 * 56 / 1024
    x = [1] * 8 + [0] * 2 + [1] * 5
    y = [0] * 8 + [1] * 2 + [1] * 5
    assert stats.mcnemar_exact(x, y).pvalue == pytest.approx(112 / 1024)
    assert stats.mcnemar_exact([1, 1], [1, 1]).pvalue == 1.0


def test_bootstrap_ci_is_seeded_and_covers_the_mean():
    rng = np.random.default_rng(0)
    a = rng.normal(size=50)
    b = a + rng.normal(0.3, 0.1, size=50)
    ci1 = stats.paired_bootstrap_ci(a, b, seed=3)
    ci2 = stats.paired_bootstrap_ci(a, b, seed=3)
    assert ci1 == ci2
    assert ci1.low < ci1.estimate < ci1.high < 0
    assert ci1.estimate == pytest.approx(np.mean(a - b))


def test_cluster_bootstrap_accounts_for_clusters():
    rng = np.random.default_rng(0)
    # 10 repositories, 30 lines each, a strong repository effect
    effects = rng.normal(0, 1, size=10)
    clusters = np.repeat(np.arange(10), 30)
    values = effects[clusters] + rng.normal(0, 0.1, size=300)
    clus = stats.cluster_bootstrap_ci(values, clusters, n_resamples=500, seed=0)
    iid = stats.cluster_bootstrap_ci(values, np.arange(300), n_resamples=500, seed=0)
    assert clus.estimate == pytest.approx(values.mean())
    assert (clus.high - clus.low) > 3 * (iid.high - iid.low)
    assert clus == stats.cluster_bootstrap_ci(values, clusters, n_resamples=500, seed=0)
    with pytest.raises(ValueError):
        stats.cluster_bootstrap_ci([1.0, 2.0], [0])


def test_paper_masked_vs_full_numbers():
    df = published.load()
    pairs, s = paper_results.masked_vs_full(df[df["table"] == "table4"])
    assert s["n_pairs"] == 80
    assert s["mean_diff"] == pytest.approx(-0.165)
    assert s["p_ttest"] == pytest.approx(2.5e-5, rel=0.05)
    assert s["p_wilcoxon"] == pytest.approx(7e-5, rel=0.05)
    assert s["ci_high"] < 0
    dup = pairs[pairs["composer"] == "duplication"]
    assert len(dup) == 8 and dup["diff"].mean() < -5  # masking hurts Duplication a lot


def test_pairs_need_equal_shapes():
    with pytest.raises(ValueError):
        stats.paired_ttest([1, 2, 3], [1, 2])


def test_masked_vs_full_pairs_leave_out_runs_beyond_the_paper():
    """A LoRA run of Path Distance .py (masked) is no masked twin of the full-loss run."""
    import pandas as pd

    def row(loss, value, note=None):
        return {"composer": "path_distance_py", "mode": "original", "loss": loss, "line_type": "inproject",
                "eval_role": "PD-ext", "eval_setting": "PD-4K", "token_acc": value, "note": note}

    lora = row("masked", 90.0, "beyond the paper: LoRA r16")
    df = pd.DataFrame([lora, row("masked", 30.0), row("full", 29.0)])
    pairs = stats.masked_vs_full_pairs(df, metric="token_acc")
    assert pairs["diff"].tolist() == [1.0]
    assert stats.masked_vs_full_pairs(df.drop(columns="note").iloc[1:], metric="token_acc")["diff"].tolist() == [1.0]
