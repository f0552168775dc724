"""notebooks/08_extrapolation renders the published Figure 2 curves (and ours when present)."""

from __future__ import annotations

import json

import pytest

from rlctx_utils.notebooks import run_notebook


@pytest.mark.notebook
def test_extrapolation_notebook_draws_published_curves(tmp_path):
    figs = tmp_path / "figs"
    run_notebook("08_extrapolation", parameters={"profile": "no-such-profile", "figures_dir": str(figs),
                                                 "metrics_to_show": "em"}, out_dir=tmp_path / "nb")
    png = figs / "figure2_extrapolation_no-such-profile_thesis_em.png"
    assert png.stat().st_size > 10_000 and png.with_suffix(".pdf").exists()
    assert "Figure 2" in json.loads(png.with_suffix(".json").read_text())["caption"]
