"""The stage-A tuning sweep: variants as ordinary stage-A runs at equal quiet-machine wall time."""

from __future__ import annotations

import pandas as pd
import pytest

from rlctx_utils.config import ConfigError, load_profile
from rlctx_utils.data.store import save_corpus, save_datapoints
from rlctx_utils.training import tuning

from test_incontext import _module, datapoints


def _cfg(tmp_path, py_tokenizer, variants):
    data = tmp_path / "data"
    save_datapoints(datapoints(3, split="validation"), data)
    save_corpus([{"repo": "r", "path": f"m{i}.py", "content": _module(f"h{i}", 8), "sha1": str(i)}
                 for i in range(6)], data / "corpus")
    tok = tmp_path / "tok"
    py_tokenizer.save_pretrained(str(tok))
    cfg = load_profile("smoke", [f'base_training.tokenizer="{tok}"', f'base_training.corpus="{data}"',
                                 "base_training.sequences_per_step=2"])
    speeds = tmp_path / "speeds.csv"
    pd.DataFrame([{"shape": "d64-L2-H4", "hidden_size": 64, "layers": 2, "heads": 4, "vocab_size": len(py_tokenizer),
                   "seq_len": 256, "tokens_per_s_median": 512.0},
                  {"shape": "d128-L2-H4", "hidden_size": 128, "layers": 2, "heads": 4,
                   "vocab_size": len(py_tokenizer), "seq_len": 256, "tokens_per_s_median": 256.0}]).to_csv(speeds, index=False)
    cfg["tuning"] = {"budget_minutes": 4 * 512 / 512 / 60, "measure_every": 2, "throughput": str(speeds),
                     "validation": str(data), "variants": variants}
    return cfg


def test_variants_get_equal_wall_time_and_train_as_stage_a_runs(tmp_path, py_tokenizer):
    variants = [{"name": "ref"},
                {"name": "wide", "model": {"hidden_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4},
                 "lr": 1e-3, "schedule": "wsd"},
                {"name": "rep", "repeat_warmup_steps": 2, "repeat_fraction": 0.2}]
    cfg = _cfg(tmp_path, py_tokenizer, variants)
    plan = tuning.variant_table(cfg, out_root=tmp_path / "t").set_index("variant")
    # 4 seconds of 512 tokens/s = 2,048 tokens = 4 steps of 2 x 256; the wide model is half as fast
    assert plan.loc["ref", "steps"] == 4 and plan.loc["rep", "steps"] == 4 and plan.loc["wide", "steps"] == 2
    assert plan.loc["wide", "hidden_size"] == 128 and plan.loc["wide", "schedule"] == "wsd"
    curves = tuning.run_sweep(cfg, results_root=tmp_path / "res", progress=False)
    out = tmp_path / "res" / "tuning"
    assert (out / "variants.csv").exists() and (out / "curves.csv").exists()
    got = curves.groupby("variant")["step"].max().to_dict()
    assert got == {"ref": 4, "rep": 4, "wide": 2}
    assert {"val_loss", "copy_random", "copy_code"} <= set(curves["measure"])
    final = tuning.final_scores(curves).set_index("variant")
    assert final.loc["ref", "val_loss"] > 3  # a 4-step model is far from good
    # a rerun skips the finished runs and gives the same curves
    again = tuning.run_sweep(cfg, results_root=tmp_path / "res", progress=False)
    pd.testing.assert_frame_equal(curves, again)


def test_bad_variants_are_refused_in_one_line(tmp_path, py_tokenizer):
    with pytest.raises(ConfigError, match="unique name"):
        tuning.variant_table(_cfg(tmp_path, py_tokenizer, [{"name": "a"}, {"name": "a"}]), out_root=tmp_path)
    with pytest.raises(ConfigError, match="unknown keys"):
        tuning.variant_table(_cfg(tmp_path, py_tokenizer, [{"name": "a", "lrr": 1}]), out_root=tmp_path)


def test_frozen_profile_and_frontier_table(tmp_path):
    """[tuning.profile] sections replace the profile's for every variant (the sweep keeps its own
    regime after the study moves on); the frontier table lists each variant's last probe and the
    study's base run, ordered by quiet minutes."""
    cfg = {"profile": "x", "base_length": 2048, "data": {"spec": "new.toml", "extra": 1},
           "tuning": {"profile": {"base_length": 512, "data": {"spec": "old.toml"}}}}
    frozen = tuning.frozen_profile(cfg)
    assert frozen["base_length"] == 512 and frozen["data"] == {"spec": "old.toml"}  # replaced, not merged
    assert cfg["data"]["spec"] == "new.toml"
    curves = pd.DataFrame([
        {"variant": v, "step": s, "tokens": s * 100, "minutes": s / 10, "measure": m, "value": val}
        for v, k in (("a", 1.0), ("b", 2.0)) for s in (10, 20) for m, val in
        (("val_loss", 6 - s / 10 * k), ("copy_code", -0.01 * k), ("copy_random", 0.0), ("val_within_file", 0.1))])
    variants = pd.DataFrame([{"variant": "a", "sequences_per_step": 2, "seq_len": 50},
                             {"variant": "b", "sequences_per_step": 4, "seq_len": 50}])
    base = tmp_path / "metrics.csv"
    pd.DataFrame([{"step": 5, "train_tokens": 6000, "val_loss": None},
                  {"step": 10, "train_tokens": 12000, "val_loss": 3.5, "copy_code": -2.0, "copy_random": -1.0,
                   "val_within_file": 0.7}]).to_csv(base, index=False)
    t = tuning.frontier_table(curves, variants, base, base_speed=100.0, base_length=50)
    v = t.values
    assert list(v.index) == ["a", "b", "the study's base"]
    assert v.loc["b", "val_loss"] == pytest.approx(2.0) and v.loc["b", "tokens (M)"] == pytest.approx(20 * 200 / 1e6)
    assert v.loc["the study's base", "quiet minutes"] == pytest.approx(2.0)
    assert v.loc["the study's base", "copy_code"] == -2.0 and v.loc["the study's base", "length"] == 50
    assert "| a |" in t.to_markdown()
