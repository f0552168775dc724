"""Atomic writes, profiles, the notebook runner, the report and the environment pins."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rlctx_utils import config, io, notebooks, report
from rlctx_utils.paths import REPO_ROOT


def test_atomic_path_keeps_the_old_file_on_error(tmp_path):
    target = tmp_path / "t.csv"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with io.atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["t.csv"]
    io.write_text(target, "new")
    assert target.read_text() == "new"


def test_atomic_dir_replaces_whole(tmp_path):
    d = tmp_path / "out"
    with io.atomic_dir(d) as tmp:
        (tmp / "a").write_text("1")
    with pytest.raises(KeyError):
        with io.atomic_dir(d) as tmp:
            (tmp / "b").write_text("2")
            raise KeyError
    assert sorted(p.name for p in d.iterdir()) == ["a"]


def test_sidecar_records_config_sha_versions(tmp_path):
    p = io.write_sidecar(tmp_path / "r.parquet", {"seed": 1}, wall_time_s=2.5)
    rec = json.loads(p.read_text())
    assert p.name == "r.json" and rec["config"] == {"seed": 1} and rec["wall_time_s"] == 2.5
    assert rec["versions"]["torch"] and rec["versions"]["python"]


@pytest.mark.parametrize("profile", config.PROFILES)
def test_profiles_load_with_seed_and_lengths(profile):
    cfg = config.load_profile(profile)
    assert isinstance(cfg["seed"], int)
    # the paper extends 4x; the cpu study 2x (2,048 -> 4,096), for its evaluation budget (configs/cpu.toml)
    assert cfg["extended_length"] == (2 if profile == "cpu" else 4) * cfg["base_length"]


def test_overrides_and_errors():
    cfg = config.load_profile("smoke", ["repo_training.loss=full", "seed=7", "repo_training.data_dir=hello world"])
    assert cfg["repo_training"]["loss"] == "full" and cfg["seed"] == 7 and cfg["repo_training"]["data_dir"] == "hello world"
    # unknown keys are refused with the closest valid name (issue 12, item 15), wrong types in one line
    with pytest.raises(config.ConfigError, match="did you mean 'model.preset'"):
        config.load_profile("smoke", ["model.presett=x"])
    with pytest.raises(config.ConfigError, match="expected a number"):
        config.load_profile("smoke", ["base_training.lr=abc"])
    with pytest.raises(config.ConfigError, match="unknown profile"):
        config.load_profile("nope")
    with pytest.raises(config.ConfigError):
        config.apply_overrides({}, ["no_equals_sign"])
    assert config.config_hash({"a": 1, "b": 2}) == config.config_hash({"b": 2, "a": 1})


BROKEN = '''# ---
# jupyter:
#   kernelspec: {display_name: Python 3, language: python, name: python3}
# ---

# %% tags=["parameters"]
out = "x.txt"

# %%
raise ValueError("deliberate")
'''


@pytest.mark.notebook
def test_failed_notebook_leaves_no_executed_output(tmp_path):
    nb = tmp_path / "99_broken.py"
    nb.write_text(BROKEN)
    with pytest.raises(notebooks.NotebookError, match="deliberate"):
        notebooks.run_notebook(nb, out_dir=tmp_path / "exec")
    assert not (tmp_path / "exec" / "99_broken.ipynb").exists()
    assert (tmp_path / "exec" / "99_broken.failed.ipynb").exists()


@pytest.mark.notebook
def test_paper_notebooks_run_under_papermill(tmp_path):
    tables_dir, figures_dir = tmp_path / "tables", tmp_path / "figures"
    params = {"tables_dir": str(tables_dir), "figures_dir": str(figures_dir)}
    for nb in ("00_paper_results", "07_masked_vs_full"):
        out = notebooks.run_notebook(nb, parameters=params, out_dir=tmp_path / "exec")
        assert out.exists()
    expected_tables = {"table1_model_comparison", "table2_condensed", "table3_checkpoints",
                       "table4_masked_vs_full", "table_draft_long_runs", "masked_vs_full_stats"}
    assert {p.stem for p in tables_dir.glob("*.tex")} == expected_tables
    figs = {p.stem for p in figures_dir.glob("*.png")}
    assert figs == {"figure2_extrapolation", "table1_bars", "table3_heatmap", "masked_vs_full_hist"}
    assert all((figures_dir / f"{f}.pdf").stat().st_size > 1000 for f in figs)
    # the committed tables are what the notebooks produce
    for name in expected_tables:
        committed = REPO_ROOT / "paper" / "tables" / f"{name}.md"
        assert committed.read_text() == (tables_dir / f"{name}.md").read_text(), name
    text = report.build_report(tmp_path, tables_dir, figures_dir)
    for f in figs:
        assert f"figures/{f}.png" in text
    assert "46.8–48.7" in text and "unknown" not in text


def test_committed_report_lists_every_committed_artifact():
    text = (REPO_ROOT / "paper" / "REPORT.md").read_text()
    for png in (REPO_ROOT / "paper" / "figures").glob("*.png"):
        assert f"figures/{png.name}" in text, png.name
    for md in (REPO_ROOT / "paper" / "tables").glob("*.md"):
        assert f"tables/{md.name}" in text, md.name


def test_colab_notebook_is_the_jupytext_pair_without_outputs():
    """The committed Colab .ipynb (the only .ipynb in git) is its .py twin, unexecuted."""
    import jupytext

    from rlctx_utils.paths import NOTEBOOKS

    py = jupytext.read(NOTEBOOKS / "colab" / "gpu_small.py")
    nb = jupytext.read(NOTEBOOKS / "colab" / "gpu_small.ipynb")
    assert [c.source for c in nb.cells] == [c.source for c in py.cells]
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")
    assert "colab-badge.svg" in nb.cells[0].source and '"make", "setup"' in "".join(c.source for c in nb.cells)
