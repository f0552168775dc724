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
# # 07 · Masked vs full loss: is the drop significant?
#
# The paper trains ten composer/mode pairs both with the loss masked to the completion file and with
# the full loss, and reports that masking costs a small but significant amount. Pairing the eight EM
# numbers of each masked run with its full twin gives 80 differences (Duplication, where masking
# hurts a lot, is kept apart). We test *masked < full* with a one-sided paired t-test (the companion
# thesis's test), a Wilcoxon signed-rank test, and a paired bootstrap CI of the mean.
#
# With our own runs (`profile` set and `results/<profile>/` present) the same analysis runs on our
# pairs, on the graded measure `metric` as well as on EM.

# %% tags=["parameters"]
results_csv = "results/paper/results.csv"
profile = ""          # e.g. "cpu" to analyse our own runs beside the paper's
metric = "token_acc"  # measure for our own runs (em, token_acc, line_loss); EM is near 0 at toy scale
tables_dir = "paper/tables"
figures_dir = "paper/figures"

# %%
from rlctx_utils.paths import at_repo_root

at_repo_root()  # relative paths below start at the repository root, wherever the kernel started

# %%
from pathlib import Path

from IPython.display import Image, Markdown, display

from rlctx_utils import paper_results, published

df = published.load(Path(results_csv))
pairs, summary = paper_results.write_masked_vs_full(df[df["table"] == "table4"], tables_dir=Path(tables_dir),
                                                    figures_dir=Path(figures_dir))
display(Markdown(Path(tables_dir, "masked_vs_full_stats.md").read_text()))
display(Image(filename=str(Path(figures_dir, "masked_vs_full_hist.png"))))

# %% [markdown]
# The pairs behind the test, and Duplication apart:

# %%
pairs.pivot_table(index=["composer", "mode"], columns=["line_type", "eval_setting"], values="diff").round(2)

# %% [markdown]
# ## Our runs

# %%
from rlctx_utils.ours import load_results

ours = load_results(profile) if profile else None
if ours is None or ours.empty:
    print("No own results to analyse (set profile=... after `make reproduce PROFILE=...`).")
else:
    paper_results.write_masked_vs_full(ours, name=f"masked_vs_full_{profile}", label=f"Ours ({profile}, {metric})",
                                       tables_dir=Path(tables_dir), figures_dir=Path(figures_dir),
                                       source=f"results/{profile}/", metric=metric,
                                       unit={"em": "EM points", "token_acc": "token-accuracy points"}.get(metric, "nats/token"))
