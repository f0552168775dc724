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

# %%
from rlctx_utils.paths import at_repo_root

at_repo_root()  # relative paths below start at the repository root, wherever the kernel started

# %%
from pathlib import Path

import pandas as pd
from IPython.display import Markdown, display

from rlctx_utils import published, tables
from rlctx_utils.evaluation import report

paper = published.load(Path(results_csv))
display(Markdown(tables.table3(paper[paper["table"] == "table3"]).to_markdown()))

# %%
if evaluate:
    from rlctx_utils.evaluation.cli import launch_eval

    extra = ["--out-dir", evals_dir] if evals_dir else []
    launch_eval(profile, checkpoints.split(), preset="all", protocol=eval_protocol or None, extra=extra)

# %%
ours = report.load(profile, evals_dir or None)
out_tables = Path(tables_dir)
print(f"{len(ours)} summary rows from results/{profile}/evals")
if len(ours):
    display(ours.groupby(["protocol", "benchmark", "eval_setting"]).size().rename("rows").to_frame())

# %% [markdown]
# ## Our checkpoints, per protocol and measure

# %%
for protocol in sorted(ours["protocol"].dropna().unique()):
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
