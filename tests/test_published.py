"""Every regenerated table cell equals the published CSV; derived numbers equal the printed ones."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from rlctx_utils import paper_results, published, schema, tables

SRC = published.SOURCE_DIR


@pytest.fixture(scope="module")
def df() -> pd.DataFrame:
    return published.load()


def test_committed_tidy_file_is_up_to_date(df):
    built = published.build()
    pd.testing.assert_frame_equal(built.reset_index(drop=True), df.reset_index(drop=True),
                                  check_dtype=False, atol=1e-9)


def test_schema_rejects_bad_frames(df):
    with pytest.raises(schema.SchemaError):
        schema.conform(df.assign(unknown=1))
    with pytest.raises(schema.SchemaError):
        schema.validate(pd.concat([df.head(3), df.head(1)]))
    bad = df.head(2).copy()
    bad["em"] = [101.0, 5.0]
    with pytest.raises(schema.SchemaError):
        schema.validate(bad)


def test_table3_every_cell_equals_source(df):
    t = paper_results.paper_tables(df)["table3_checkpoints"]
    raw = pd.read_csv(SRC / "table3_checkpoints.csv")
    assert len(raw) == 268
    for r in raw.itertuples():
        assert t.values.at[r.checkpoint, (r.line_type, r.eval_composer)] == pytest.approx(r.exact_match)
        assert f"{r.exact_match:.1f}" in t.cell(r.checkpoint, (r.line_type, r.eval_composer))
    # the typo cell is printed as published and flagged
    assert t.cell("Path Distance .py", ("infile", "Or-16K")) == "48.8†"
    assert "likely typo" in " ".join(t.notes)


def test_table4_every_cell_equals_source_and_masked_rows_equal_table3(df):
    t = paper_results.paper_tables(df)["table4_masked_vs_full"]
    raw = pd.read_csv(SRC / "table4_masked_vs_full.csv")
    t3 = pd.read_csv(SRC / "table3_checkpoints.csv")
    for r in raw.itertuples():
        row = r.composer + ("" if r.mode == "original" else f" ({r.mode})") + f", {r.loss}"
        assert t.values.at[row, (r.line_type, r.eval_composer)] == pytest.approx(r.exact_match)
    m = raw[raw["loss"] == "masked"].merge(t3, on=["composer", "mode", "line_type", "eval_composer"])
    differ = m[m["exact_match_x"] != m["exact_match_y"]]
    assert len(m) == 88
    assert differ[["composer", "line_type", "eval_composer"]].values.tolist() == [
        ["Path Distance .py", "infile", "Or-16K"]]


def test_table1_cells_and_computed_rcb_equal_print(df):
    t = paper_results.paper_tables(df)["table1_model_comparison"]
    raw = pd.read_csv(SRC / "table1_model_comparison.csv")
    for r in raw.itertuples():
        v = t.values.at[r.model, (r.line_type, r.eval_composer)]
        assert round(v, 1) == pytest.approx(r.exact_match), (r.model, r.line_type, r.eval_composer)
    assert "RCB" not in set(df["eval_setting"])  # derived, never stored


def test_table2_ranges_are_computed_from_tables_3_and_4(df):
    t = paper_results.paper_tables(df)["table2_condensed"]
    row = "Other realistic composers (range)"
    assert t.cell(row, ("inproject", "PD-16K")) == "46.8–48.7"
    ranges = tables.other_composer_ranges(df[df["table"].isin(["table3", "table4"])])
    assert ranges.loc[("inproject", "PD-16K"), "n"] == 32  # 23 masked runs + 9 full runs (Path Distance original excluded both ways)
    assert t.cell("File-level 4K, θ=500,000", ("inproject", "PD-16K")) == "45.2"
    assert t.cell("Path Distance .py", ("inproject", "PD-16K")) == "48.8"


def test_figure2_and_draft_rows(df):
    raw = pd.read_csv(SRC / "figure2_extrapolation.csv")
    fig2 = df[df["table"] == "figure2"]
    assert len(fig2) == len(raw) == 32
    assert sorted(fig2["em"].round(6)) == sorted(raw["exact_match"].round(6))
    assert set(fig2["eval_role"]) == {"sweep"}
    draft = df[df["table"] == "extra_long_runs_draft"]
    assert set(draft["source"]) == {"paper-draft"} and draft["note"].str.contains("draft").all()
    assert "DRAFT" in paper_results.paper_tables(df)["table_draft_long_runs"].caption


def test_markdown_and_latex_render_the_same_cells(df):
    for name, t in paper_results.paper_tables(df).items():
        md, tex = t.to_markdown(), t.to_latex()
        assert tex.count("\\begin{tabular}") == tex.count("\\end{tabular}") == 1
        n_rows = len(t.values)
        assert len([ln for ln in md.splitlines() if ln.startswith("| ") and "---" not in ln]) == n_rows + 1
        body = tex.split("\\midrule")[1].split("\\bottomrule")[0]
        assert body.count("\\\\") == n_rows, name
        for row in t.values.index[:3]:
            for col in t.values.columns[:3]:
                cell = t.cell(row, col)
                assert cell in md
                assert tables._tex(cell) in tex


def test_setting_labels():
    assert schema.setting_label("PD-ext", 16384) == "PD-16K"
    assert schema.setting_label("FL-base", 512) == "FL-512"
    assert schema.setting_label("sweep", 131072) == "PD-128K"
    assert re.fullmatch(r"Or-2K", schema.setting_label("Or-ext", 2048))


def test_figure2_draws_a_panel_per_evaluated_line_type(df):
    from rlctx_utils import plots

    fig2 = df[df["table"] == "figure2"]
    assert {"inproject", "infile"} <= set(fig2["line_type"])
    fig = plots.plot_extrapolation(fig2)
    assert len(fig.axes) == 2
    only_inproject = fig2[fig2["line_type"] == "inproject"]
    fig = plots.plot_extrapolation(only_inproject)
    assert [ax.get_title() for ax in fig.axes] == ["inproject lines"]
    # two sources, one of which has no infile rows: its infile panel says so instead of an empty axis
    ours = only_inproject.assign(source="ours")
    fig = plots.plot_extrapolation(pd.concat([fig2, ours]))
    assert len(fig.axes) == 4
    empty = [ax for ax in fig.axes if not ax.lines]
    assert len(empty) == 1 and "not evaluated" in empty[0].texts[0].get_text()
