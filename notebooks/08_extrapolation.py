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
# # 08 · Extrapolation: exact match versus maximum context
#
# The paper evaluates the File-level and Path Distance .py checkpoints with the Path Distance
# composer at maximum contexts from 1K to 128K tokens without any further RoPE change (Figure 2):
# the file-level checkpoint (trained at 4K) peaks at 16K, the Path Distance one (trained at 16K)
# peaks at 32K and collapses at 128K. Our sweep runs from base/4 to 8x the extended length of the
# profile, on the runs listed in its `[eval] sweep_runs` (File-level θ 500k and Path Distance .py, as
# in Figure 2). With `evaluate = True` the notebook runs `rlctx eval --profile PROFILE --checkpoint
# run:ID ... --sweep` first (stored evaluations are skipped). The published curves are drawn first,
# ours below with the same function; dotted lines mark each checkpoint's training length.

# %% tags=["parameters"]
profile = "cpu"       # the committed toy study
protocol = ""       # default: the profile's [eval] protocol (the first of a comma list)
results_csv = "results/paper/results.csv"
metrics_to_show = "em,token_acc"
figures_dir = "paper/figures"
evaluate = False      # True: run the sweep first (rlctx eval --sweep, skipped where stored)
sweep_runs = []       # run ids to sweep; empty: the sweep_runs of the profile ([eval] section)

# %%
from rlctx_utils.paths import at_repo_root

at_repo_root()  # relative paths below start at the repository root, wherever the kernel started

# %%
from pathlib import Path

from IPython.display import Image, display

from rlctx_utils import plots, published
from rlctx_utils.config import load_profile
from rlctx_utils.evaluation import presets, report

protocol = protocol or presets.profile_protocol(profile)
print(f"protocol: {protocol}")
if evaluate:
    from rlctx_utils.evaluation.cli import launch_eval

    ids = list(sweep_runs) or list((load_profile(profile).get("eval") or {}).get("sweep_runs") or [])
    if ids:
        launch_eval(profile, [f"run:{i}" for i in ids], sweep=True, protocol=protocol)
    else:
        print(f"profile {profile} lists no [eval] sweep_runs: nothing to sweep")

# %%
paper = published.load(Path(results_csv))
ours = report.load(profile)
out_figs = Path(figures_dir)

# %%
for metric in metrics_to_show.split(","):
    frame = report.sweep_frame(ours, paper, protocol=protocol, metric=metric)
    if frame.empty or (metric != "em" and not len(ours)):
        print(f"{metric}: no sweep results yet")
        continue
    fig = plots.plot_extrapolation(frame, metric=metric)
    png = plots.save_figure(fig, f"figure2_extrapolation_{profile}_{protocol}_{metric}", out_dir=out_figs,
                            caption=f"{metric} versus maximum context (Path Distance composer); paper (Figure 2) "
                                    f"and profile {profile} ({protocol} protocol)",
                            source=f"results/paper/results.csv, results/{profile}/evals",
                            regenerate="notebooks/08_extrapolation.py")
    display(Image(filename=str(png)))
