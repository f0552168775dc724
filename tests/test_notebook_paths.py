"""The notebooks as a reader meets them: started in ``notebooks/`` (where JupyterLab starts the kernel),
with their default inputs (the committed ``cpu`` results), and opened and saved through jupytext's
contents manager without changing a byte.

The notebooks that read committed results run here from ``notebooks/`` with their default inputs;
outputs go to ``tmp_path``. The compute notebooks run from ``notebooks/`` in their own tests
(``test_training_notebooks``: 04; ``test_data_notebook``: 03; ``test_composers``: 01), and from the
root in the others.
"""

from __future__ import annotations

import pytest

from rlctx_utils.notebooks import NotebookError, run_notebook
from rlctx_utils.paths import NOTEBOOKS, REPO_ROOT, RESULTS


def _outputs(tmp_path):
    return {"tables_dir": str(tmp_path / "tables"), "figures_dir": str(tmp_path / "figures")}


# notebook -> parameters beyond the defaults: only where outputs go (inputs stay the defaults, relative
# to the repository root), and the switches that keep a notebook from computing.
COMMITTED = {
    "00_paper_results": lambda t: _outputs(t),
    "02_rope_scaling": lambda t: {"figures_dir": str(t / "figures"), "compute_positions": False},
    "04_base_pretraining": lambda t: {"figures_dir": str(t / "figures")},
    "05_repo_pretraining": lambda t: {"figures_dir": str(t / "figures")},
    "06_evaluation": lambda t: {"tables_dir": str(t / "tables")},
    "07_masked_vs_full": lambda t: _outputs(t) | {"profile": "cpu"},
    "08_extrapolation": lambda t: {"figures_dir": str(t / "figures")},
    "09_toy_scale": lambda t: _outputs(t) | {"report_md": str(t / "toy.md"), "findings_dir": str(t)},
    "03_data": lambda t: {"figures_dir": str(t / "figures"), "out_dir": str(RESULTS / "cpu" / "data_stats")},
}


@pytest.mark.notebook
@pytest.mark.parametrize("name", sorted(COMMITTED))
def test_notebook_runs_from_the_notebooks_folder_on_committed_results(name, tmp_path):
    if not list((RESULTS / "cpu" / "evals").glob("*.summary.csv")):
        pytest.skip("no committed cpu evaluations")
    if name == "03_data" and (RESULTS / "cpu" / "data" / "manifest.json").exists():
        pytest.skip("cpu data mined here: 03 would recompute (and rewrite) the committed statistics")
    stray = [NOTEBOOKS / d for d in ("paper", "results", ".cache")]
    before = {p: p.exists() for p in stray}
    out = run_notebook(name, parameters=COMMITTED[name](tmp_path), out_dir=tmp_path / "nb", cwd=NOTEBOOKS)
    assert out.exists()
    assert {p: p.exists() for p in stray} == before, "a notebook wrote relative to notebooks/"
    made = list((tmp_path / "figures").glob("*.png")) + list((tmp_path / "tables").glob("*.md"))
    assert made, f"{name} drew nothing from the committed results"


@pytest.mark.notebook
def test_missing_input_names_the_command_that_makes_it(tmp_path):
    if (RESULTS / "cpu" / "data" / "manifest.json").exists():
        pytest.skip("cpu data mined here")
    with pytest.raises(NotebookError, match=r"does not exist yet: make it with `make results/cpu/data/manifest.json"):
        run_notebook("03_data", parameters={"out_dir": str(tmp_path / "stats"), "figures_dir": str(tmp_path)},
                     out_dir=tmp_path / "nb", cwd=NOTEBOOKS)


def test_at_repo_root_from_anywhere(tmp_path, monkeypatch):
    from rlctx_utils import paths

    monkeypatch.chdir(NOTEBOOKS)
    assert paths.at_repo_root(quiet=True) == REPO_ROOT.resolve() and (REPO_ROOT / "pyproject.toml").exists()
    # a checkout found from the working directory when the package is not installed from it
    monkeypatch.delenv("RLCTX_ROOT", raising=False)
    assert paths.find_repo_root(NOTEBOOKS / "colab") == REPO_ROOT.resolve()
    assert not paths._is_repo_root(tmp_path)


# What JupyterLab adds to a notebook it opens, runs and autosaves: the kernel's display name and
# language_info, cell UI state and timing, widget state, outputs.
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
LANGUAGE_INFO = {"codemirror_mode": {"name": "ipython", "version": 3}, "file_extension": ".py",
                 "mimetype": "text/x-python", "name": "python", "nbconvert_exporter": "python",
                 "pygments_lexer": "ipython3", "version": "3.11.2"}


def _as_jupyterlab_saves(nb, outputs: bool) -> None:
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    nb.metadata["language_info"] = dict(LANGUAGE_INFO)
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}, "version_major": 2,
                                                                             "version_minor": 0}}
    for c in nb.cells:
        c.metadata.update({"jupyter": {"source_hidden": False}, "editable": True, "scrolled": True})
        if c.cell_type == "code" and outputs:
            c.metadata["execution"] = {"iopub.execute_input": "2026-12-01T00:00:00.000Z"}
            c.outputs = [{"output_type": "stream", "name": "stdout", "text": "hi\n"}]
            c.execution_count = 1


@pytest.mark.parametrize("root", ["repository", "notebooks"])
def test_opening_and_saving_leaves_every_notebook_byte_identical(root, tmp_path):
    """Through jupytext's contents manager, as JupyterLab does (server root at the repository, as
    `make lab` and Binder start it, or at notebooks/)."""
    import shutil

    from jupytext import TextFileContentsManager

    shutil.copytree(NOTEBOOKS, tmp_path / "notebooks", ignore=shutil.ignore_patterns("__pycache__", ".ipynb_*"))
    base = tmp_path if root == "repository" else tmp_path / "notebooks"
    cm = TextFileContentsManager(root_dir=str(base))
    files = sorted(p for p in (tmp_path / "notebooks").rglob("*.py"))
    assert len(files) >= 11
    # every text file (the Colab .ipynb, paired with its .py, takes what a save adds: it is Colab's copy)
    before = {p: p.read_bytes() for p in (tmp_path / "notebooks").rglob("*") if p.is_file() and p.suffix != ".ipynb"}
    for p in files:
        path = p.relative_to(base).as_posix()
        model = cm.get(path)
        assert model["type"] == "notebook", f"{path} does not open as a notebook"
        _as_jupyterlab_saves(model["content"], outputs=p.parent.name != "colab")  # colab: its .ipynb is committed
        cm.save({"type": "notebook", "format": "json", "content": model["content"]}, path)
    changed = [p.relative_to(tmp_path).as_posix() for p, b in before.items() if p.read_bytes() != b]
    assert not changed, f"saving rewrote {changed}"


def test_parameter_cells_parse_without_papermill_warnings(tmp_path, caplog):
    """papermill reads each parameters cell line by line; a second '=' on a line (in a string or a
    comment) makes it warn 'Unable to parse line' and lose that parameter's name and default."""
    import logging

    import papermill as pm

    from rlctx_utils.notebooks import to_ipynb

    caplog.set_level(logging.WARNING, logger="papermill")
    for src in sorted(NOTEBOOKS.glob("0*.py")) + [NOTEBOOKS / "colab" / "gpu_small.py"]:
        params = pm.inspect_notebook(str(to_ipynb(src, tmp_path / f"{src.stem}.ipynb")))
        assert params, src.name
    assert not [r.getMessage() for r in caplog.records if "Unable to parse" in r.getMessage()]


def test_progress_bars_have_their_widgets():
    """tqdm.auto in a notebook draws a widget: without ipywidgets it warns 'IProgress not found'."""
    import importlib.util
    import warnings

    assert importlib.util.find_spec("ipywidgets") is not None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        from tqdm.notebook import tqdm

        tqdm(range(2), disable=False).close()
