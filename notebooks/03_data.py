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
# # 03 - The mined data
#
# The paper trains on completion files mined from the git history of 1,640 GitHub repositories
# (SPEC section 2) and evaluates on Long Code Arena's `large_context` split (SPEC section 6). Neither
# the corpus nor the mining code was published. This notebook describes a dataset mined by
# `rlctx mine pypi` (PyPI release series act as commits) or `rlctx mine git`: repositories and
# datapoints per split, completion-file lengths in characters and tokens, line categories per size
# bucket, what the filters skipped, and how it compares with the numbers the paper reports.

# %% tags=["parameters"]
profile = "cpu"      # the committed toy study
data_dir = ""        # default: results/<profile>/data (written by `rlctx mine pypi --spec configs/data/<profile>.toml`)
out_dir = ""         # tables of statistics; default: results/<profile>/data_stats
figures_dir = "paper/figures"
tokenizer_path = ""  # a tokenizer.json or folder; default: a small BPE trained here on the corpus
tokenizer_vocab = 2048

# %%
from rlctx_utils.paths import at_repo_root

at_repo_root()  # relative paths below start at the repository root, wherever the kernel started

# %%
from pathlib import Path

import pandas as pd

from rlctx_utils.data import figures, stats
from rlctx_utils.data.store import load_corpus
from rlctx_utils.io import read_json, repo_relative, write_json
from rlctx_utils.paths import require, results_dir

data = Path(data_dir) if data_dir else results_dir(profile) / "data"
out = Path(out_dir) if out_dir else results_dir(profile) / "data_stats"
figs = Path(figures_dir)
src = f"results/{profile}/data (mined by rlctx mine pypi --spec configs/data/{profile}.toml)"
mine = f"make results/{profile}/data/manifest.json PROFILE={profile}"  # rlctx mine pypi --spec configs/data/<profile>.toml
# Not mined yet (a fresh clone): show the statistics stored in `out` (committed for cpu), write nothing.
stored = None if data_dir or (data / "manifest.json").exists() else stats.stored_statistics(out)
if stored is None:
    manifest = read_json(require(data / "manifest.json", mine))
    print("mined from", data, "in", manifest.get("mining_wall_time_s"), "s")
else:
    table, manifest = stored
    print(f"{data} is not mined yet: showing the statistics stored in {out} (to recompute them: {mine})")

# %% [markdown]
# ## Tokens
# Token counts use the project's tokenizer when one is given; otherwise a byte-level BPE trained
# here on (part of) the training corpus, so lengths are in the same units as the training runs.

# %%
if stored is None:
    tok = stats.load_or_train_tokenizer(tokenizer_path, load_corpus(data), vocab_size=tokenizer_vocab)
    table = stats.datapoint_table(data, count_tokens=lambda s: len(tok.encode(s).ids))
table.head()

# %% [markdown]
# ## Splits, repositories, datapoints

# %%
overview = stats.split_overview(table, manifest)
overview

# %%
fig = figures.per_repo_figure(table)
figures.save_figure(fig, figs / f"data_{profile}_per_repo", source=src,
                    caption=f"Datapoints per repository and split (profile {profile}).")

# %% [markdown]
# ## Completion-file lengths
# The paper keeps completion files of 800 to 25,000 characters.

# %%
fig = figures.length_figure(table)
figures.save_figure(fig, figs / f"data_{profile}_lengths", source=src,
                    caption=f"Completion-file lengths in characters and tokens (profile {profile}).")
table.groupby("split")[[c for c in ("completion_chars", "completion_tokens") if c in table]].describe().T

# %% [markdown]
# ## Line categories per size bucket
# Buckets follow LCA (characters of `.py` in the snapshot, thresholds from the profile).

# %%
cats = stats.category_counts(table)
fig = figures.category_figure(cats)
figures.save_figure(fig, figs / f"data_{profile}_categories", source=src,
                    caption=f"Line categories per split and size bucket (profile {profile}).")
cats

# %% [markdown]
# ## Compared with the paper and LCA
# LCA `large_context`: 270 completion files, 2,595 inproject and 2,691 infile target lines. Paper's
# training set: 1,640 repositories, 361,052 completion files, 1.7B characters.

# %%
comparison = stats.lca_comparison(table)
training = stats.paper_comparison(table, manifest)
display(comparison)
training

# %% [markdown]
# ## What the filters skipped

# %%
skips = pd.Series(manifest["skips"], name="count").sort_values(ascending=False)
print("leakage drops:", manifest.get("leakage_drops"))
print("corpus:", manifest.get("corpus"))
skips

# %%
summary = {"profile": profile, "data_dir": repo_relative(data), "overview": overview.to_dict(orient="index"),
           "lca_comparison": comparison.to_dict(), "paper_comparison": training.to_dict(),
           "categories": {f"{s}/{b}": r for (s, b), r in cats.to_dict(orient="index").items()},
           "skips": manifest["skips"], "leakage_drops": manifest.get("leakage_drops"),
           "corpus": manifest.get("corpus")}
if stored is None:
    write_json(out / "03_data_summary.json", summary)
    stats.write_csv(table, out / "03_data_datapoints.csv")
    print("wrote", out)
