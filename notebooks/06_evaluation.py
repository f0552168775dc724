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
# # 06 · Evaluation: exact match by checkpoint and evaluation setting
#
# Every number of the study is the exact-match rate of single-line completion on inproject and
# infile lines under four evaluation settings (SPEC section 6): File-level at the base length
# (FL-base, the paper's FL-4K), Path Distance .py at the base length (PD-base) and at the extended
# length (PD-ext, the main column), and the checkpoint's own training composer at the extended
# length (Or-ext). RCB = PD-ext − FL-base is the repository-context boost.
#
# With `evaluate = True` the notebook runs `rlctx eval --profile PROFILE --checkpoint runs --preset all`
# as a subprocess (every finished run of the profile, the four settings; stored in
# `results/<profile>/evals/`, so a rerun skips what is there and a stopped one resumes); with
# `evaluate = False` (what `make figures` does) it only reads the stored evaluations. The
# paper's Table 3 is drawn by the same table function for comparison. Small CPU models score close
# to 0 EM, so the graded measures (token accuracy, target-line loss, edit similarity) are tabulated
# too, and the line-by-line agreement of the two protocols is measured where both were run.

# %% tags=["parameters"]
profile = "cpu"       # the committed toy study
results_csv = "results/paper/results.csv"
metrics_to_show = "em,token_acc,line_loss"
tables_dir = "paper/tables"
evals_dir = ""        # default: results/<profile>/evals
evaluate = False      # True: run the evaluations first (rlctx eval, skipped where stored)
checkpoints = "runs"  # what to evaluate: "runs" (every finished run) or space-separated run:ID / paths
eval_protocol = ""    # comma list (lca,thesis); default: the profile's [eval] protocol
figures_dir = "paper/figures"
incontext = True      # with evaluate: copying/within-file scores and the perplexity protocol of every checkpoint

# %%
from rlctx_utils.paths import at_repo_root

at_repo_root()  # relative paths below start at the repository root, wherever the kernel started

# %%
from pathlib import Path

import pandas as pd
from IPython.display import Image, Markdown, display

from rlctx_utils import published, tables
from rlctx_utils.config import load_profile
from rlctx_utils.evaluation import presets, report

paper = published.load(Path(results_csv))
display(Markdown(tables.table3(paper[paper["table"] == "table3"]).to_markdown()))

# %%
if evaluate:
    from rlctx_utils.evaluation.cli import launch_eval

    extra = ["--out-dir", evals_dir] if evals_dir else []
    launch_eval(profile, checkpoints.split(), preset="all", protocol=eval_protocol or None, extra=extra)
    if incontext:  # the in-context measures: repository context (perplexity protocol), copying, within-file
        launch_eval(profile, presets.incontext_checkpoints(load_profile(profile), checkpoints), preset="all",
                    protocol="perplexity", extra=extra)

# %%
ours = report.load(profile, evals_dir or None)
out_tables = Path(tables_dir)
print(f"{len(ours)} summary rows from results/{profile}/evals")
if len(ours):
    display(ours.groupby(["protocol", "benchmark", "eval_setting"]).size().rename("rows").to_frame())

# %% [markdown]
# ## Our checkpoints, per protocol and measure

# %%
from rlctx_utils.evaluation.protocols import FILE_PROTOCOLS

for protocol in sorted(set(ours["protocol"].dropna().unique()) - set(FILE_PROTOCOLS)):
    for metric in metrics_to_show.split(","):
        try:
            table = report.eval_table(ours, protocol=protocol, metric=metric)
        except ValueError as exc:
            print(f"{protocol}/{metric}: {exc}")
            continue
        tables.write_table(table, f"table3_{profile}_{protocol}_{metric}", out_tables,
                           source=f"results/{profile}/evals", regenerate="notebooks/06_evaluation.py")
        display(Markdown(table.to_markdown()))

# %% [markdown]
# ## How far the two protocols agree, line by line

# %%
agreement = report.protocol_agreement(profile, evals_dir or None)
if len(agreement):
    display(agreement.round(3))
else:
    print("no evaluation was run under both protocols yet (rlctx eval ... --protocol lca,thesis)")

# %% [markdown]
# ## In-context measures: does a checkpoint use what is earlier in its window?
#
# Exact match is near 0 at toy scale, so three direct measures (`rlctx_utils/evaluation/incontext.py`)
# say whether a model reads its context at all: **copying** (loss on the second copy of a repeated
# 120-token sequence minus on the first: random tokens, and a code chunk from the benchmark's
# completion files; negative = copies), **within-file** (loss of the completion file alone at
# positions [32,64) minus [256,512); positive = uses in-file context) and **repository context**
# (the `perplexity` protocol: completion-file loss with the setting's composer context minus
# without; negative = the context helps; the Long Code Arena baselines select composers by this
# perplexity). With `evaluate = True` they are computed for every run with a checkpoint (stored in
# `results/<profile>/incontext/` and `results/<profile>/evals/`, skipped when stored); otherwise
# they are drawn from the committed results, and the copying curve over training from the runs'
# `metrics.csv` when training logged it (`[base_training] incontext_every = N`).

# %%
import time

from rlctx_utils.evaluation import incontext as ic
from rlctx_utils.evaluation import incontext_report
from rlctx_utils.plots import save_figure

ic_dir = Path(evals_dir).parent / "incontext" if evals_dir else None
if evaluate and incontext:
    chosen = presets.incontext_checkpoints(load_profile(profile), checkpoints)
    wanted = None if chosen == ["runs"] else [c[4:] for c in chosen if c.startswith("run:")] or None
    t0 = time.time()
    status = ic.run_incontext(profile, wanted, out_dir=ic_dir)
    print(status.to_string(index=False))
    print(f"copying and within-file scores: {time.time() - t0:.0f} s")
scores = ic.load_incontext(profile, out_dir=ic_dir)
ppl = incontext_report.perplexity_frame(profile, evals_dir or None)
regen = "make figures (notebooks/06_evaluation.py)"
if scores.empty and ppl.empty:
    print(f"no in-context results for profile {profile!r} yet (results/{profile}/incontext/, perplexity "
          f"evaluations in results/{profile}/evals/): they are computed by `make reproduce PROFILE={profile}` "
          "(this notebook with evaluate=True); nothing drawn")
else:
    table = incontext_report.incontext_table(scores, ppl, profile=profile)
    tables.write_table(table, f"incontext_{profile}", out_tables,
                       source=f"results/{profile}/incontext, results/{profile}/evals (perplexity protocol)",
                       regenerate=regen)
    display(Markdown(table.to_markdown()))
    png = save_figure(incontext_report.incontext_figure(scores, ppl, title=f"In-context measures, profile {profile}"),
                      f"incontext_{profile}", out_dir=Path(figures_dir),
                      caption="In-context measures per checkpoint with 95% bootstrap intervals: copying (loss on the "
                              "second copy of a repeated 120-token sequence minus the first; negative = copies), "
                              "within-file (loss at file positions [32,64) minus [256,512); positive = uses in-file "
                              "context) and repository context (completion-file loss with the setting's context "
                              "minus without; negative = helps). Checkpoints coloured by training composer "
                              "(File-level #0072B2, Path Distance #D55E00).",
                      source=f"results/{profile}/incontext, results/{profile}/evals (perplexity protocol)",
                      regenerate=regen)
    display(Image(filename=str(png)))

# %%
curves = incontext_report.training_curves(profile)
if curves.empty:
    print(f"no copying curve logged in results/{profile}/runs/*/metrics.csv (train with "
          "[base_training] incontext_every = N to log one)")
else:
    png = save_figure(incontext_report.curve_figure(curves, title=f"Copying over training, profile {profile}"),
                      f"incontext_curve_{profile}", out_dir=Path(figures_dir),
                      caption="Copying score (loss on the second copy of a repeated 120-token sequence minus the "
                              "first; 8 random-token sequences solid, 8 validation code chunks dashed) against the "
                              "training step, as logged by the training loop (incontext_every).",
                      source=f"results/{profile}/runs/*/metrics.csv", regenerate=regen)
    display(Image(filename=str(png)))
