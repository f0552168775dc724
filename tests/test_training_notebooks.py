"""Notebooks 04 and 05 launch ``rlctx train`` as subprocesses (papermill) and plot the logs."""

from __future__ import annotations

import pytest

from rlctx_utils.io import read_json
from rlctx_utils.paths import NOTEBOOKS

from test_training_runs import corpus_dir, make_datapoints, tok_dir  # noqa: F401 (fixtures)


@pytest.mark.slow
@pytest.mark.notebook
def test_training_notebooks_run(tok_dir, corpus_dir, tmp_path):
    from rlctx_utils.data.store import save_datapoints
    from rlctx_utils.notebooks import run_notebook

    data = tmp_path / "data"
    save_datapoints(make_datapoints(4), data)
    out, figs = tmp_path / "results", tmp_path / "figures"
    tiny = ["stop_step=2", "sequences_per_step=2", "save_every=0", "warmup_steps=1", "schedule_steps=4"]
    # from notebooks/, where JupyterLab starts the kernel (05 runs from the root, as papermill does)
    run_notebook("04_base_pretraining", out_dir=tmp_path / "nb", cwd=NOTEBOOKS, parameters=dict(
        profile="smoke", out_dir=str(out), figures_dir=str(figs), train=True,
        overrides=tiny + [f'tokenizer="{tok_dir}"', f'corpus="{corpus_dir}"']))
    run_notebook("05_repo_pretraining", out_dir=tmp_path / "nb", parameters=dict(
        profile="smoke", out_dir=str(out), figures_dir=str(figs), train=True, overrides=tiny + [f'data_dir="{data}"'],
        run_ids=["file_level-original-full-theta500000", "path_distance_py-original-masked-theta500000"]))
    for name in ("training_base_smoke", "training_repo_smoke"):
        assert (figs / f"{name}.png").stat().st_size > 10_000 and (figs / f"{name}.pdf").exists()
    rec = read_json(out / "runs" / "path_distance_py-original-masked-theta500000" / "run.json")
    assert rec["status"] == "finished" and rec["step"] == 2
