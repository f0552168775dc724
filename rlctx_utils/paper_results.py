"""Regenerate the paper's tables and figures, and its masked-vs-full statistics, from a results frame.

``notebooks/00_paper_results`` and ``notebooks/07_masked_vs_full`` call these functions; the tests
call them too. The same functions draw our own runs' numbers (``results/<profile>/``) because they
take any frame in :mod:`rlctx_utils.schema`.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from . import plots, stats, tables
from .paths import FIGURES, TABLES

NB00 = "notebooks/00_paper_results.py (make figures)"
NB07 = "notebooks/07_masked_vs_full.py (make figures)"


def paper_tables(df: pd.DataFrame) -> dict[str, tables.Table]:
    """Tables 1-4 of the paper from the published frame (``results/paper/results.csv``)."""
    return {
        "table1_model_comparison": tables.table1(df[df["table"] == "table1"]),
        "table2_condensed": tables.table2(df[df["table"].isin(["table3", "table4"])]),
        "table3_checkpoints": tables.table3(df[df["table"] == "table3"]),
        "table4_masked_vs_full": tables.table4(df[df["table"] == "table4"]),
        "table_draft_long_runs": tables.Table(
            tables.add_rcb(tables.grid(df[df["table"] == "extra_long_runs_draft"])),
            "DRAFT: longer runs from a draft table that did not make the compiled paper.",
            notes=["Not part of the compiled paper; shown for completeness and labelled as draft wherever used."]),
    }


def write_paper_tables(df: pd.DataFrame, out_dir: Path = TABLES, source: str = "results/paper/results.csv"
                       ) -> dict[str, tables.Table]:
    made = paper_tables(df)
    for name, t in made.items():
        tables.write_table(t, name, out_dir, source=source, regenerate=NB00)
    return made


def write_paper_figures(df: pd.DataFrame, out_dir: Path = FIGURES,
                        source: str = "results/paper/results.csv") -> list[Path]:
    """Figure 2, the Table 1 bar chart and the Table 3 heatmap."""
    out = [
        plots.save_figure(plots.plot_extrapolation(df[df["table"] == "figure2"]), "figure2_extrapolation",
                          caption="Figure 2: exact match vs maximum context (log2 axis) for the File-level "
                                  "(θ=500,000, trained at 4K) and Path Distance .py (trained at 16K) checkpoints.",
                          source=source + " (table figure2)", regenerate=NB00, out_dir=out_dir),
        plots.save_figure(plots.plot_model_comparison(df[df["table"] == "table1"]), "table1_bars",
                          caption="Table 1 as grouped bars: PD-16K and FL-4K exact match per model.",
                          source=source + " (table table1)", regenerate=NB00, out_dir=out_dir),
        plots.save_figure(plots.plot_setting_heatmap(df[df["table"] == "table3"]), "table3_heatmap",
                          caption="Table 3 as a heatmap: every checkpoint under every evaluation setting; colour = "
                                  "difference from the column median.",
                          source=source + " (table table3)", regenerate=NB00, out_dir=out_dir),
    ]
    return out


def masked_vs_full(df: pd.DataFrame, *, exclude: tuple[str, ...] = ("duplication",), seed: int = 0,
                   metric: str = "em") -> tuple[pd.DataFrame, dict[str, float]]:
    """The paired masked/full numbers and their test statistics (Duplication excluded)."""
    pairs = stats.masked_vs_full_pairs(df, metric=metric)
    kept = pairs[~pairs["composer"].isin(exclude)]
    return pairs, stats.summarize_pairs(kept, seed=seed)


def stats_table(summaries: dict[str, dict[str, float]]) -> tables.Table:
    """One row per source: number of pairs, mean difference, bootstrap CI, both one-sided p-values."""
    rows = {}
    for name, s in summaries.items():
        rows[name] = {"pairs": s["n_pairs"], "mean masked − full": s["mean_diff"],
                      f"{int(s['ci_level'] * 100)}% CI low": s["ci_low"],
                      f"{int(s['ci_level'] * 100)}% CI high": s["ci_high"],
                      "t": s["t"], "p (t-test)": s["p_ttest"], "p (Wilcoxon)": s["p_wilcoxon"]}
    values = pd.DataFrame(rows).T.astype(float)
    text = values.copy().astype(object)
    for r in values.index:
        text.at[r, "pairs"] = f"{int(values.at[r, 'pairs'])}"
        for c in values.columns:
            if c.startswith("p ("):
                text.at[r, c] = f"{values.at[r, c]:.1e}"
            elif c != "pairs":
                text.at[r, c] = f"{values.at[r, c]:+.3f}" if "CI" in c or "mean" in c else f"{values.at[r, c]:.2f}"
    return tables.Table(values, "Masked vs full loss: paired differences (Duplication excluded), one-sided "
                        "tests of masked < full.", text=text, row_header="Numbers",
                        notes=["t-test: scipy.stats.ttest_rel(masked, full, alternative='less'); Wilcoxon "
                               "signed-rank, same alternative; CI: paired BCa bootstrap of the mean difference."])


def write_masked_vs_full(df: pd.DataFrame, *, name: str = "masked_vs_full", label: str = "Published (Table 4)",
                         tables_dir: Path = TABLES, figures_dir: Path = FIGURES,
                         source: str = "results/paper/results.csv (table table4)", unit: str = "EM points",
                         metric: str = "em") -> tuple[pd.DataFrame, dict[str, float]]:
    pairs, summary = masked_vs_full(df, metric=metric)
    note = (f"n = {summary['n_pairs']}, mean {summary['mean_diff']:+.3f}\n"
            f"one-sided t-test p = {summary['p_ttest']:.1e}\nWilcoxon p = {summary['p_wilcoxon']:.1e}")
    fig = plots.plot_paired_differences(pairs, unit=unit, annotation=note)
    plots.save_figure(fig, f"{name}_hist", caption=f"{label}: histogram of the masked − full differences, "
                      "mean dashed; Duplication shown apart.", source=source, regenerate=NB07, out_dir=figures_dir)
    tables.write_table(stats_table({label: summary}), f"{name}_stats", tables_dir, source=source,
                       regenerate=NB07)
    return pairs, summary
