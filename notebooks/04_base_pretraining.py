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
# # 04 · Stage A: base pretraining
#
# Our stand-in for OpenCoder's original pretraining (SPEC section 5 starts from OpenCoder-1.5B-Base,
# pretrained on single files at 4,096 tokens with RoPE base θ = 10,000). Here a from-scratch Llama
# model of the profile's preset learns from the file-level corpus at the profile's base length with
# θ = 10,000; every token carries the loss.
#
# The notebook **launches** `rlctx train PROFILE --stage base` as a subprocess (it never trains inside
# the kernel; `--resume` continues an interrupted run and a finished run is skipped), then plots the
# run's logs from `results/<profile>/runs/<run_id>/metrics.csv`.

# %% tags=["parameters"]
profile = "cpu"     # the committed toy study; make reproduce passes its own
run_id = "base"
# e.g. ["stop_step=100", "lr=5e-4"] (bare keys go to [base_training])
overrides = []
# results root; None = results/<profile>
out_dir = None
# True: train first (rlctx train, skipped when finished; make reproduce sets it); False: plot the stored logs
train = False
# e.g. "configs/accelerate/ddp.yaml" on a multi-GPU machine
accelerate_config = None
figures_dir = "paper/figures"
tables_dir = "paper/tables"

# %%
from rlctx_utils.paths import at_repo_root

at_repo_root()  # relative paths below start at the repository root, wherever the kernel started

# %%
from pathlib import Path

from IPython.display import Image, Markdown, display

from rlctx_utils.io import read_json, repo_relative
from rlctx_utils.paths import results_dir
from rlctx_utils.plots import save_figure
from rlctx_utils.training.cli import launch
from rlctx_utils.training.plots import plot_training_curves, read_metrics

root = Path(out_dir) if out_dir else results_dir(profile)
run_dir = root / "runs" / run_id

# %%
if train:
    launch(profile, stage="base", run_id=run_id, overrides=list(overrides), out_dir=out_dir,
           accelerate_config=accelerate_config)

# %%
record = read_json(run_dir / "run.json")
{k: record.get(k) for k in ("run_id", "status", "step", "train_length", "rope_theta", "train_tokens",
                            "final_loss", "wall_time_s", "data_order_hash")}

# %%
metrics = read_metrics(run_dir)
metrics[["step", "loss", "lr", "grad_norm", "tokens_per_s", "train_tokens"]].tail()

# %%
fig = plot_training_curves([run_dir], smooth_window=5 if len(metrics) > 50 else 1,
                           title=f"Stage A, base pretraining ({profile} profile)")
png = save_figure(fig, f"training_base_{profile}", out_dir=Path(figures_dir),
                  caption=f"Stage A training loss and throughput, {profile} profile (run {run_id}).",
                  source=str(run_dir / "metrics.csv"),
                  regenerate=f"python -m rlctx_utils.notebooks run notebooks/04_base_pretraining.py -p profile {profile}")
display(Image(filename=str(png)))

# %% [markdown]
# ## The stage-A tuning sweep
#
# Which base-training recipe gives a model that reads its context, per minute of CPU? Each variant
# of the profile's `[[tuning.variants]]` is an ordinary stage-A run given the same quiet-machine wall
# time (`rlctx tune PROFILE`, `rlctx_utils/training/tuning.py`); validation loss, the copying scores
# and the within-file score are logged while it trains, on the **validation** split (the benchmark
# stays the test set). The selection rule is written in the profile, before any variant was run.

# %%
from rlctx_utils.training.plots import plot_tuning
from rlctx_utils.config import load_profile
from rlctx_utils.tables import write_table
from rlctx_utils.training.tuning import final_scores, profile_frontier, tuning_dir

tdir = tuning_dir(profile, out_dir)
if (tdir / "curves.csv").exists():
    import pandas as pd

    curves = pd.read_csv(tdir / "curves.csv")
    variants = pd.read_csv(tdir / "variants.csv")
    display(variants[["variant", "note", "steps", "tokens", "tokens_per_s"]])
    display(final_scores(curves).round(3))
    fig = plot_tuning(curves, title=f"Stage-A tuning sweep ({profile} profile, validation split)")
    png = save_figure(fig, f"tuning_{profile}", out_dir=Path(figures_dir),
                      caption=f"Stage-A recipes at equal quiet-machine wall time, {profile} profile: validation "
                              "loss, copying (2nd - 1st copy) and within-file scores while training.",
                      source=repo_relative(tdir / "curves.csv"),
                      regenerate=f"python -m rlctx_utils.notebooks run notebooks/04_base_pretraining.py -p profile {profile}")
    display(Image(filename=str(png)))
    frontier = profile_frontier(load_profile(profile), results_root=out_dir)
    if frontier is not None:  # the measured frontier: loss and in-context scores per quiet minute
        write_table(frontier, f"training_frontier_{profile}", Path(tables_dir), source=f"{repo_relative(tdir)}, {repo_relative(root / 'runs' / 'base')}",
                    regenerate="notebooks/04_base_pretraining.py")
        display(Markdown(frontier.to_markdown()))
else:
    print(f"no tuning sweep stored in {tdir}: run `rlctx tune {profile}` (see [tuning] in the profile)")
