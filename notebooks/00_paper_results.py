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
# # 00 · The paper's published results, regenerated
#
# Reads the published numbers in tidy form (`results/paper/results.csv`, built from the transcribed
# CSVs in `results/paper/source/`, see `results/paper/PROVENANCE.md`) and regenerates Tables 1–4 of
# *On Pretraining for Project-Level Code Completion* as Markdown and LaTeX, plus Figure 2, a bar chart
# of Table 1 and a heatmap of Table 3. Derived numbers (RCB, Table 2's ranges) are computed here, not
# copied. All logic lives in `rlctx_utils` (`tables`, `plots`, `paper_results`).

# %% tags=["parameters"]
results_csv = "results/paper/results.csv"
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
df.groupby(["source", "table"]).size().rename("rows").to_frame()

# %% [markdown]
# ## Tables

# %%
made = paper_results.write_paper_tables(df, Path(tables_dir))
for name, table in made.items():
    display(Markdown(table.to_markdown()))

# %% [markdown]
# ## Figures

# %%
for png in paper_results.write_paper_figures(df, Path(figures_dir)):
    display(Image(filename=str(png)))
