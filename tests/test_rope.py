"""RoPE helper: our frequencies equal transformers' own, and the ABF change takes effect in a model."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding

from rlctx_utils.models import build_model, load_model, preset_config
from rlctx_utils.rope import (
    RopeConfigError,
    apply_rope,
    attention_factor,
    dims_full_rotation,
    inv_freq,
    loss_by_position,
    model_inv_freq,
    rope_parameters,
    rotation_angles,
    wavelengths,
)

VARIANT_KW = {
    "default": {},
    "linear": {"factor": 4.0},
    "dynamic": {"factor": 4.0},
    "yarn": {"factor": 4.0},
    "llama3": {"factor": 8.0},
}
SHAPES = {  # head dims 16, 32, 64, 160 (OpenCoder's)
    "hd16": dict(hidden_size=64, num_hidden_layers=1, num_attention_heads=4),
    "hd32": dict(hidden_size=128, num_hidden_layers=1, num_attention_heads=4),
    "hd64": dict(hidden_size=256, num_hidden_layers=1, num_attention_heads=4),
    "hd160": dict(hidden_size=320, num_hidden_layers=1, num_attention_heads=2),
}


@pytest.mark.parametrize("variant", list(VARIANT_KW))
@pytest.mark.parametrize("theta", [10_000.0, 500_000.0])
@pytest.mark.parametrize("shape", list(SHAPES))
def test_inv_freq_matches_transformers(variant, theta, shape):
    cfg = preset_config(SHAPES[shape], vocab_size=64, max_position_embeddings=4096)
    apply_rope(cfg, variant, theta=theta, **VARIANT_KW[variant])
    assert cfg.rope_parameters["rope_type"] == variant
    assert cfg.rope_parameters["rope_theta"] == theta
    emb = LlamaRotaryEmbedding(cfg)
    ours = inv_freq(cfg)
    theirs = emb.inv_freq.double().numpy()
    assert ours.shape == theirs.shape == (cfg.head_dim // 2,)
    np.testing.assert_allclose(ours, theirs, rtol=2e-6)
    assert emb.attention_scaling == pytest.approx(attention_factor(cfg.rope_parameters))
    # the scaled variants really change something (except dynamic inside the training window)
    plain = theta ** (-np.arange(0, cfg.head_dim, 2) / cfg.head_dim)
    if variant in ("default", "dynamic"):
        np.testing.assert_allclose(ours, plain, rtol=1e-12)
    else:
        assert (ours <= plain * (1 + 1e-12)).all() and (ours < plain).any()


@pytest.mark.parametrize("beta_fast,beta_slow", [(32, 1), (16, 2)])
def test_yarn_options_match_transformers(beta_fast, beta_slow):
    cfg = preset_config(SHAPES["hd64"], vocab_size=64, max_position_embeddings=1024)
    apply_rope(cfg, "yarn", factor=16, beta_fast=beta_fast, beta_slow=beta_slow)
    assert cfg.rope_parameters["original_max_position_embeddings"] == 1024
    assert cfg.max_position_embeddings == 16 * 1024
    np.testing.assert_allclose(inv_freq(cfg), LlamaRotaryEmbedding(cfg).inv_freq.double().numpy(), rtol=2e-6)


def test_dynamic_ntk_grows_base_beyond_training_length():
    cfg = preset_config(SHAPES["hd32"], vocab_size=64, max_position_embeddings=256)
    apply_rope(cfg, "dynamic", factor=4)
    emb = LlamaRotaryEmbedding(cfg)
    emb(torch.zeros(1, 1), torch.arange(1024)[None])  # a 1,024-token sequence: 4x the training length
    np.testing.assert_allclose(inv_freq(cfg, seq_len=1024), emb.inv_freq.double().numpy(), rtol=2e-6)
    assert (inv_freq(cfg, seq_len=1024)[1:] < inv_freq(cfg)[1:]).all()


def test_apply_rope_on_model_takes_effect_and_survives_save(tmp_path):
    model = build_model("smoke", vocab_size=128, seed=0)
    x = torch.arange(64)[None] % 128
    before = model(input_ids=x).logits
    assert model.config.rope_parameters["rope_theta"] == 10_000.0
    assert apply_rope(model, theta=500_000) is model
    assert model.config.rope_parameters == {"rope_type": "default", "rope_theta": 500_000.0}
    np.testing.assert_allclose(model_inv_freq(model), inv_freq(model), rtol=2e-6)
    after = model(input_ids=x).logits
    assert not torch.allclose(before, after)  # the rotary module really was rebuilt
    model.save_pretrained(tmp_path)
    again = load_model(tmp_path, device="cpu")
    assert again.config.rope_parameters["rope_theta"] == 500_000.0
    np.testing.assert_allclose(model_inv_freq(again), model_inv_freq(model), rtol=1e-7)
    assert torch.allclose(again(input_ids=x).logits, after, atol=1e-5)


def test_rope_parameters_errors():
    with pytest.raises(RopeConfigError, match="unknown RoPE variant"):
        rope_parameters("ntk-by-parts-x")
    with pytest.raises(RopeConfigError, match="needs factor"):
        rope_parameters("linear")
    with pytest.raises(RopeConfigError, match="original_max_position_embeddings"):
        rope_parameters("yarn", factor=4)
    with pytest.raises(RopeConfigError, match="takes no option"):
        rope_parameters("linear", factor=2, beta_fast=3)
    with pytest.raises(RopeConfigError, match="theta"):
        rope_parameters("default", theta=0)
    assert rope_parameters("abf", 500000) == {"rope_type": "default", "rope_theta": 500000.0}


def test_wavelengths_and_full_rotations():
    d = 128
    wl10, wl500 = (wavelengths({"rope_type": "default", "rope_theta": t}, d) for t in (1e4, 5e5))
    assert wl10[0] == pytest.approx(2 * math.pi)
    # ABF stretches pair i by 50 ** (2i/d): the slowest pairs by almost 50x, the fastest not at all
    np.testing.assert_allclose(wl500 / wl10, 50.0 ** (np.arange(0, d, 2) / d), rtol=1e-10)
    assert dims_full_rotation(10_000, 128, 4096) == 2 * int(np.sum(wl10 <= 4096)) == 92
    assert dims_full_rotation(500_000, 128, 16384) < dims_full_rotation(10_000, 128, 16384)
    assert dims_full_rotation(10_000, 128, 1) == 0 and dims_full_rotation(10_000, 128, 10**12) == 128
    ang = rotation_angles(10_000, d, [0, 100], pairs=[0, 63])
    assert ang.shape == (2, 2) and ang[0, 1] == pytest.approx(100.0)


def test_loss_by_position_with_a_real_tokenizer(py_tokenizer):
    from rlctx_utils.tokenizer import stdlib_corpus

    model = build_model("smoke", vocab_size=len(py_tokenizer), seed=0)
    texts = stdlib_corpus(max_files=40, seed=7)
    out = loss_by_position(model, py_tokenizer, texts, max_len=128, max_docs=4)
    assert out["position"][0] == 1 and len(out["loss"]) == 127
    assert np.isfinite(out["loss"]).all() and (out["count"] == 4).all()
    # an untrained model is close to uniform over the vocabulary
    assert abs(out["loss"].mean() - math.log(len(py_tokenizer))) < 0.5
    packed = loss_by_position(model, py_tokenizer, texts[:3], max_len=64, max_docs=2, pack=True)
    assert (packed["count"] == 2).all()
    with pytest.raises(RopeConfigError, match="no held-out document"):
        loss_by_position(model, py_tokenizer, ["x = 1\n"], max_len=64)


def _tiny_checkpoint(path, tokenizer, theta):
    model = build_model("smoke", vocab_size=len(tokenizer), rope_theta=theta, seed=0)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def test_empirical_curves_and_figures(py_tokenizer, tmp_path):
    from rlctx_utils import rope_plots
    from rlctx_utils.plots import save_figure
    from rlctx_utils.tokenizer import stdlib_corpus

    base = _tiny_checkpoint(tmp_path / "base", py_tokenizer, 10_000.0)
    ext = _tiny_checkpoint(tmp_path / "ext", py_tokenizer, 500_000.0)
    curves = rope_plots.empirical_curves(base, ext, stdlib_corpus(40, seed=5), 32, 128, max_docs=2)
    assert len(curves) == 3 and all(len(c["loss"]) == 127 for c in curves.values())
    names = list(curves)
    assert "10,000" in names[0] and "no training" in names[1] and "500,000" in names[2]
    # raising theta without training changes the base model's predictions
    assert not np.allclose(curves[names[0]]["loss"], curves[names[1]]["loss"])
    fig = rope_plots.loss_by_position_figure(curves, 32, 64)
    png = save_figure(fig, "rope_l", out_dir=tmp_path / "fig", caption="c", source="s", regenerate="r")
    assert png.stat().st_size > 10_000 and png.with_suffix(".pdf").exists()
    assert rope_plots.find_checkpoint("smoke", str(base), ()) == base
    assert rope_plots.find_checkpoint("smoke", str(tmp_path / "nope"), ()) is None


@pytest.mark.slow
@pytest.mark.notebook
def test_notebook_runs_with_a_checkpoint(py_tokenizer, tmp_path):
    from rlctx_utils.notebooks import run_notebook

    base = _tiny_checkpoint(tmp_path / "base", py_tokenizer, 10_000.0)
    figs = tmp_path / "figures"
    run_notebook("02_rope_scaling", parameters={
        "profile": "smoke", "base_checkpoint": str(base), "extended_checkpoint": "",
        "heldout_files": 2, "eval_multiple": 1, "figures_dir": str(figs)}, out_dir=tmp_path / "nb")
    made = sorted(p.name for p in figs.glob("*.png"))
    assert made == ["rope_loss_by_position_smoke.png", "rope_rotation.png", "rope_scaling_variants.png",
                    "rope_wavelengths_smoke.png"]
