# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
#   language_info:
#     name: python
# ---

# %% [markdown]
# # 02 · RoPE: why raising the base frequency makes the long window work
#
# The paper's main finding (SPEC section 1, finding 2) is about rotary position embeddings: a model
# pretrained at 4K tokens with base frequency theta = 10,000 scores 0.0 at 16K, even after
# training at 4K; raising theta to 500,000 (the *adjusted base frequency*, ABF) and training
# briefly at 16K is what makes the long window work, more than which context is used.
#
# **RoPE in one paragraph.** Each attention head of `d` dimensions is split into `d/2` pairs.
# At position `p`, pair `i` is rotated by the angle `p · ω_i` with `ω_i = theta^(-2i/d)`. A query
# at `p` and a key at `q` then interact through the angles `(p − q) · ω_i` only: relative
# position is encoded as rotation. Pair 0 turns once every 2π ≈ 6 tokens; the last pair turns
# once every ~theta tokens. The *wavelength* `2π/ω_i` is the distance of one full turn.
#
# This notebook draws that mechanism (all analytic, seconds), then measures it on a trained
# from-scratch model when a checkpoint exists. All logic lives in `rlctx_utils.rope` and
# `rlctx_utils.rope_plots`.

# %% tags=["parameters"]
profile = "cpu"                 # which profile's model to draw beside the paper's (and whose checkpoints to read)
base_checkpoint = "auto"        # folder of a base model (theta 10k); "auto": results/<profile>/runs/base*/checkpoints/final
extended_checkpoint = "auto"    # folder after extension training; "auto": the Path Distance .py run, else File-level θ 500k; "" for none
heldout_files = 48              # held-out files for the empirical loss-by-position curve
eval_multiple = 2               # evaluate up to eval_multiple x the profile's extended length
figures_dir = "paper/figures"
seed = 0
compute_positions = True        # compute the held-out curves of runs with a checkpoint (stored ones are skipped)
position_runs = ["base", "base-theta500000-untrained", "file_level-original-full-theta10000",
                 "file_level-original-full-theta500000", "path_distance_py-original-masked-theta500000",
                 "path_distance_py-original-full-theta500000"]

# %%
from rlctx_utils.paths import at_repo_root

at_repo_root()  # relative paths below start at the repository root, wherever the kernel started

# %%
from pathlib import Path

import pandas as pd
from IPython.display import Image, Markdown, display

from rlctx_utils import rope, rope_plots
from rlctx_utils.config import load_profile
from rlctx_utils.plots import save_figure

cfg = load_profile(profile)
base_length, extended_length = int(cfg["base_length"]), int(cfg["extended_length"])
preset = cfg.get("model", {}).get("preset", "cpu")
head_dim = rope_plots.head_dim_of_preset(preset) if preset in rope_plots.PRESETS else rope_plots.PAPER_HEAD_DIM
out = Path(figures_dir)
regen = "make all (notebooks/02_rope_scaling.py)"
print(f"profile {profile}: model preset {preset!r}, head dim {head_dim}, "
      f"base length {base_length}, extended length {extended_length}")

# %% [markdown]
# ## 1 · Wavelength of every pair, theta 10k vs 500k
#
# A pair whose wavelength lies *below* a window line completes at least one full turn inside that
# window: during training the model saw every angle it can take. A pair *above* the line only ever
# saw part of a turn. Beyond the training length such a pair produces angles the model has never
# seen, and attention breaks down. Raising theta moves every curve up (the slowest pairs by ~50x).

# %%
rows = []
for hd, name in ((rope_plots.PAPER_HEAD_DIM, "OpenCoder-1.5B"), (head_dim, f"{profile} preset")):
    for theta in (10_000, 500_000):
        for w in sorted({4096, 16384, base_length, extended_length}):
            rows.append({"model": name, "head_dim": hd, "theta": theta, "window": w,
                         "dims_full_turn": rope.dims_full_rotation(theta, hd, w)})
table = pd.DataFrame(rows).pivot_table(index=["model", "head_dim", "theta"], columns="window",
                                       values="dims_full_turn")
display(Markdown("Dimensions (of `head_dim`) that complete a full turn within each window:"))
table

# %%
png = save_figure(rope_plots.wavelength_figure(head_dim, base_length, extended_length, profile),
                  f"rope_wavelengths_{profile}", out_dir=out,
                  caption="RoPE wavelength per rotary pair for theta 10,000 and 500,000, against the "
                          f"training and extended windows (left: OpenCoder-1.5B, 4K/16K; right: the {profile} "
                          f"profile's model, {base_length}/{extended_length} tokens).",
                  source="analytic (rlctx_utils.rope)", regenerate=regen)
display(Image(filename=str(png)))

# %% [markdown]
# ## 2 · The rotation angle over positions
#
# Left: the angle grows linearly with position; slow pairs (bottom) reach only a fraction of a turn
# within the 4K training window. Right: how far each pair turns within a window. With theta 10k the
# slow pairs reach angles at 16K that they never reached at 4K (shaded). With theta 500k, every pair
# that did not already complete full turns stays, at 16K, within the range that theta 10k covered at
# 4K, so only the fast pairs (which turn many times anyway) change; a short training adapts to them.
# That is why a few hundred steps at 16K after ABF recover long-context ability, while the same
# model with theta raised but *no* training nearly collapses (finding 2).

# %%
png = save_figure(rope_plots.rotation_figure(), "rope_rotation", out_dir=out,
                  caption="Left: rotation angle (turns) over positions of four rotary pairs of OpenCoder-1.5B "
                          "for theta 10k (solid) and 500k (dashed). Right: turns each pair completes within "
                          "the 4K training window at theta 10k versus within 16K at 10k and 500k.",
                  source="analytic (rlctx_utils.rope)", regenerate=regen)
display(Image(filename=str(png)))

# %% [markdown]
# ## 3 · The scaling variants the paper did not use
#
# ABF changes the base; the alternatives rescale frequencies. *Linear* interpolation divides every
# frequency by the factor (squeezing the fast pairs too, which blurs nearby positions); *dynamic
# NTK* raises the base only once a sequence exceeds the training length; *YaRN* and *llama3* leave
# the fast pairs alone and interpolate only the pairs slower than the window. The paper names YaRN
# as untested future work. All variants are set through `rlctx_utils.rope.apply_rope(model, variant,
# ...)`, which writes the transformers config and rebuilds the rotary modules.

# %%
png = save_figure(rope_plots.variants_figure(), "rope_scaling_variants", out_dir=out,
                  caption="Wavelengths of OpenCoder-1.5B's rotary pairs under each way of extending 4K to 16K "
                          "(factor 4), and the stretch each applies to every pair relative to theta 10k.",
                  source="analytic (rlctx_utils.rope)", regenerate=regen)
display(Image(filename=str(png)))
for name, params in rope_plots.scaling_variants().items():
    print(f"{name:>15}: {params}")

# %% [markdown]
# ## 4 · Empirically: loss by position beyond the training length
#
# With a trained from-scratch base model of this profile: next-token loss at each position of
# held-out files up to several times the training length, (a) as trained (theta 10k), (b) with
# theta raised to 500k and no training, and (c) after extension training, when that checkpoint
# exists.

# %%
base_ck = rope_plots.find_checkpoint(profile, base_checkpoint, ("base*",))
ext_ck = rope_plots.find_checkpoint(profile, extended_checkpoint, ("path_distance_py-original-masked-theta500000",
                                                                   "file_level*theta500000", "ext*"))
if base_ck is None:
    print(f"No base checkpoint for profile {profile!r} (looked for {base_checkpoint!r}; 'auto' means "
          f"results/{profile}/runs/base*/checkpoints/final). Skipping the empirical figure: train one with "
          "`rlctx train` (notebook 04) or pass base_checkpoint=PATH.")
else:
    from rlctx_utils.tokenizer import stdlib_corpus

    max_len = eval_multiple * extended_length
    texts = stdlib_corpus(max_files=None, seed=seed)
    print(f"base checkpoint: {base_ck}\nextended checkpoint: {ext_ck or 'none yet'}\n"
          f"held-out text: CPython standard-library files with >= {max_len} tokens (up to {heldout_files})")
    curves = rope_plots.empirical_curves(base_ck, ext_ck, texts, base_length, max_len, max_docs=heldout_files)
    fig = rope_plots.loss_by_position_figure(
        curves, base_length, extended_length,
        note=f"profile {profile}; held-out: CPython stdlib files (may overlap the training corpus)")
    png = save_figure(fig, f"rope_loss_by_position_{profile}", out_dir=out,
                      caption=f"Next-token loss by position on held-out files for the {profile} profile's base "
                              "model (theta 10k), the same with theta raised to 500k without training, and after "
                              "extension training when available.",
                      source=f"{base_ck}" + (f", {ext_ck}" if ext_ck else ""), regenerate=regen)
    display(Image(filename=str(png)))

# %% [markdown]
# ## 5 · Loss by position on the held-out benchmark, every run of the profile
#
# The same measure on the profile's held-out benchmark repositories (never trained on): each
# sequence is a Path Distance .py context followed by the completion file, twice the extended length
# in all, as repository-level training builds them. One stored curve per run
# (`results/<profile>/positions/`, computed here for every run with a checkpoint and skipped when
# stored), so `make figures` redraws this figure from committed results.

# %%
from rlctx_utils.evaluation import positions

if compute_positions:
    print(positions.run_positions(profile, cfg=cfg).to_string(index=False))
curves = positions.load_positions(profile)
shown = [r for r in position_runs if r in set(curves["run_id"])]
if not shown:
    print(f"no stored loss-by-position curves for profile {profile!r} (results/{profile}/positions/)")
else:
    max_len = int(curves["position"].max()) + 1
    windows = positions.window_means(curves, [1, base_length, extended_length, max_len])
    display(windows.pivot(index="run_id", columns="window", values="loss").reindex(shown).round(3))
    fig = rope_plots.positions_figure(curves, base_length, extended_length, shown,
                                      note=f"profile {profile}; {int(curves['count'].max())} held-out sequences")
    png = save_figure(fig, f"rope_loss_by_position_benchmark_{profile}", out_dir=out,
                      caption=f"Next-token loss by position on the {profile} profile's held-out benchmark "
                              "(Path Distance .py context, then the completion file) for the runs "
                              + ", ".join(shown) + ".",
                      source=f"results/{profile}/positions/", regenerate=regen)
    display(Image(filename=str(png)))
