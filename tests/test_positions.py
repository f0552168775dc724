"""Loss by position on held-out sequences: stored per run, skipped when stored, redrawn from disk."""

from __future__ import annotations

import numpy as np
import pytest

from rlctx_utils.evaluation.api import Benchmark
from rlctx_utils.evaluation.positions import (heldout_sequences, load_positions, loss_by_position, run_positions,
                                              window_means)
from rlctx_utils.io import write_json
from rlctx_utils.models import build_model


def _datapoints(k=3):
    import test_training_runs as t

    return t.make_datapoints(k)


@pytest.fixture()
def results_root(py_tokenizer, tmp_path):
    """Two 'runs' with final checkpoints (a tiny untrained Llama at two RoPE bases)."""
    for rid, theta in (("base", 10_000.0), ("base-theta500000-untrained", 500_000.0)):
        ck = tmp_path / "runs" / rid / "checkpoints" / "final"
        build_model("smoke", vocab_size=len(py_tokenizer), rope_theta=theta, seed=0).save_pretrained(ck)
        py_tokenizer.save_pretrained(ck)
        write_json(tmp_path / "runs" / rid / "run.json",
                   {"run_id": rid, "stage": "repo" if "untrained" in rid else "base", "stop_step": 0,
                    "rope_theta": theta, "config_hash": "x", "train_length": 256, "composer": "file_level"})
    return tmp_path


def test_curve_counts_every_sequence_at_every_position(py_tokenizer):
    seqs = heldout_sequences(_datapoints(), py_tokenizer, max_len=200, seed=0)
    assert all(len(s) <= 200 for s in seqs) and max(len(s) for s in seqs) == 200
    model = build_model("smoke", vocab_size=len(py_tokenizer), seed=0)
    curve = loss_by_position(model, seqs)
    assert list(curve["position"]) == list(range(1, 200))
    assert curve["count"].iloc[0] == len(seqs) and curve["count"].is_monotonic_decreasing
    assert np.all(curve["loss"] > 0) and abs(curve["loss"].mean() - np.log(len(py_tokenizer))) < 1.0


def test_run_positions_stores_skips_and_loads(results_root, py_tokenizer):
    bench = Benchmark("toy-benchmark", _datapoints())
    cfg = {"extended_length": 96, "seed": 0, "repo_training": {"fmt": "opencoder"}}
    first = run_positions("smoke", cfg=cfg, results_root=results_root, benchmark=bench, progress=False)
    assert sorted(first["state"]) == ["done", "done"]
    again = run_positions("smoke", cfg=cfg, results_root=results_root, benchmark=bench, progress=False)
    assert sorted(again["state"]) == ["skipped", "skipped"]
    curves = load_positions("smoke", results_root / "positions")
    assert set(curves["run_id"]) == {"base", "base-theta500000-untrained"} and curves["position"].max() == 191
    w = window_means(curves, [1, 48, 96, 192])
    assert len(w) == 6 and w["loss"].notna().all()
    # the same weights under another RoPE base give another curve
    a, b = (curves[curves["run_id"] == r]["loss"].to_numpy() for r in ("base", "base-theta500000-untrained"))
    assert not np.allclose(a, b)


def test_positions_figure_draws_stored_curves(results_root, py_tokenizer, tmp_path):
    from rlctx_utils import rope_plots
    from rlctx_utils.plots import save_figure

    bench = Benchmark("toy-benchmark", _datapoints())
    cfg = {"extended_length": 96, "seed": 0, "repo_training": {"fmt": "opencoder"}}
    run_positions("smoke", cfg=cfg, results_root=results_root, benchmark=bench, progress=False)
    curves = load_positions("smoke", results_root / "positions")
    x, y = rope_plots.log_bins(curves["position"].to_numpy()[:191], curves["loss"].to_numpy()[:191],
                               curves["count"].to_numpy()[:191], per_octave=2)
    assert np.all(np.diff(x) > 0) and len(x) == len(y) <= 16
    fig = rope_plots.positions_figure(curves, 48, 96, ["base", "base-theta500000-untrained"], start=4)
    png = save_figure(fig, "pos", out_dir=tmp_path / "fig", caption="c", source="s", regenerate="r")
    assert png.stat().st_size > 10_000
