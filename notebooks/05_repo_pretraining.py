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
# # 05 · Stage B: repository-level pretraining
#
# SPEC section 5 at the profile's scale: start from the stage-A checkpoint (or OpenCoder-1.5B-Base in
# the `paper` profile), raise the RoPE base θ from 10,000 to 500,000, and train on sequences built
# from repositories: the completion file (cut to a quarter of the window, its end cut) after the
# composer's context (cut from the left). File-level runs use the completion file alone at the base
# length. The loss is masked to completion-file tokens, or full.
#
# Every run of a grid sees the same datapoints in the same order (the `data_order_hash` below is the
# same for all) and the same step-global loss normalisation, so the curves differ only by composer,
# mode, loss and θ. The notebook launches `rlctx train PROFILE --stage repo --run-id ID` as a
# subprocess per run, then plots their logs.

# %% tags=["parameters"]
profile = "cpu"     # the committed toy study; make reproduce passes its own
# "grid": every [[repo_training.runs]] entry; or a list of grid ids; [] = the [repo_training] run
run_ids = "grid"
# e.g. ["stop_step=20"] (bare keys go to [repo_training])
overrides = []
# results root; None = results/<profile>
out_dir = None
# True: train first (rlctx train, skipped when finished; make reproduce sets it); False: plot the stored logs
train = False
accelerate_config = None
# plotted for reference when it exists
base_run_id = "base"
figures_dir = "paper/figures"

# %%
from rlctx_utils.paths import at_repo_root

at_repo_root()  # relative paths below start at the repository root, wherever the kernel started

# %%
from pathlib import Path

import pandas as pd
from IPython.display import Image, display

from rlctx_utils.io import read_json
from rlctx_utils.paths import results_dir
from rlctx_utils.plots import save_figure
from rlctx_utils.training.cli import launch, resolve_runs
from rlctx_utils.training.plots import plot_training_curves

root = Path(out_dir) if out_dir else results_dir(profile)
if run_ids == "grid":
    runs = resolve_runs(profile, list(overrides), stage="repo", grid=True)
else:
    runs = [r for rid in (run_ids or [None]) for r in resolve_runs(profile, list(overrides), stage="repo", run_id=rid)]
[r["run_id"] for r in runs]

# %%
if train:
    for r in runs:
        launch(profile, stage="repo", run_id=r["run_id"], overrides=list(overrides), out_dir=out_dir,
               accelerate_config=accelerate_config)

# %%
records = pd.DataFrame([read_json(root / "runs" / r["run_id"] / "run.json") for r in runs])
records[["run_id", "composer", "mode", "loss", "rope_theta", "train_length", "step", "train_tokens",
         "final_loss", "data_order_hash", "base_checkpoint"]]

# %%
assert records["data_order_hash"].nunique() == 1, "runs of a grid must share the data order"

# %%
dirs = [root / "runs" / r["run_id"] for r in runs if int(r["stop_step"]) > 0]  # untrained runs log no steps
fig = plot_training_curves(dirs, title=f"Stage B, repository-level pretraining ({profile} profile)")
png = save_figure(fig, f"training_repo_{profile}", out_dir=Path(figures_dir),
                  caption=f"Stage B training loss and throughput, {profile} profile "
                          f"({', '.join(r['run_id'] for r in runs)}).",
                  source=", ".join(str(d / "metrics.csv") for d in dirs),
                  regenerate=f"python -m rlctx_utils.notebooks run notebooks/05_repo_pretraining.py -p profile {profile}")
display(Image(filename=str(png)))
