"""notebooks/03_data runs under papermill on a dataset mined in the test from a real git history."""

from __future__ import annotations

import json

import pytest

from rlctx_utils.cli import main
from rlctx_utils.paths import NOTEBOOKS

from test_data_git import Git, body  # tests/ is on sys.path (pytest rootdir import mode)


@pytest.mark.notebook
def test_data_notebook(tmp_path):
    g = Git(tmp_path / "proj")
    g.write("proj/base.py", body("base_fn"))
    g.commit("root", date="2019-01-01T00:00:00")
    for i in range(4):
        g.write(f"proj/m{i}.py", body(f"m{i}", call="base_fn"))
        g.commit(f"m{i}", date=f"2019-02-0{i + 1}T00:00:00")
    b = Git(tmp_path / "bench")
    b.write("b/core.py", body("core"))
    b.commit("root", date="2020-01-01T00:00:00")
    b.write("b/use.py", body("use", call="core"))
    b.commit("use", date="2020-02-01T00:00:00")
    data = tmp_path / "data"
    assert main(["mine", "git", str(g.path), str(b.path), "--out", str(data), "--benchmark", "bench",
                 "--quiet"]) == 0
    from rlctx_utils.notebooks import run_notebook

    out = tmp_path / "figs"
    run_notebook(NOTEBOOKS / "03_data.py", out_dir=tmp_path / "exec", cwd=NOTEBOOKS,  # where JupyterLab starts it
                 parameters={"profile": "smoke", "data_dir": str(data), "out_dir": str(out),
                             "figures_dir": str(out), "tokenizer_vocab": 300})
    for stem in ("data_smoke_per_repo", "data_smoke_lengths", "data_smoke_categories"):
        assert (out / f"{stem}.png").stat().st_size > 1000 and (out / f"{stem}.pdf").exists()
        assert json.loads((out / f"{stem}.json").read_text())["caption"]
    summary = json.loads((out / "03_data_summary.json").read_text())
    assert summary["overview"]["train"]["datapoints"] == 4
    assert summary["lca_comparison"]["LCA large_context"]["datapoints"] == 270
