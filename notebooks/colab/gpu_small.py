# ---
# jupyter:
#   accelerator: GPU
#   jupytext:
#     formats: ipynb,py:percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
#   language_info:
#     name: python
# ---

# %% [markdown]
# # rlctx · the toy study on one GPU (`gpu-small` profile)
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/rlctx/rlctx/blob/main/notebooks/colab/gpu_small.ipynb)
#
# The whole study of *On Pretraining for Project-Level Code Completion* at a scale one GPU runs in
# about an hour (estimated; see `configs/gpu-small.toml`): mine pinned PyPI repositories, train a
# 70M-parameter Llama on single files (1K tokens, RoPE θ 10,000), extend it to 4K tokens with θ
# 500,000 under twelve repository-level settings (composers, masked and full loss), evaluate every
# checkpoint in the paper's four settings and the extrapolation sweep, and write the verdicts on
# the paper's six findings (`paper/toy_scale.md`). It is `make reproduce PROFILE=gpu-small`, the same
# code as the 2-core `cpu` profile; only the sizes differ.
#
# Runtime → Change runtime type → GPU first. A stopped run resumes: rerun the last cell (training
# resumes from its checkpoints, stored evaluations are skipped).

# %% tags=["parameters"]
repo_url = "https://github.com/rlctx/rlctx.git"
profile = "gpu-small"

# %% [markdown]
# ## Install (about 3 minutes: the pinned stack in a virtual environment)

# %%
import os
import subprocess

if not os.path.exists("rlctx"):
    subprocess.run(["git", "clone", "--depth", "1", repo_url, "rlctx"], check=True)
os.chdir("rlctx")
subprocess.run(["nvidia-smi"], check=False)
subprocess.run(["make", "setup"], check=True)

# %% [markdown]
# ## The study (`make reproduce`): every stage through its notebook, into `results/gpu-small/`

# %%
subprocess.run(["make", "reproduce", f"PROFILE={profile}"], check=True)

# %% [markdown]
# ## The verdicts, and the results to keep

# %%
from IPython.display import Markdown, display

display(Markdown(open("paper/toy_scale.md").read()))
subprocess.run(["tar", "czf", f"results-{profile}.tar.gz", f"results/{profile}", "paper"], check=True)
print(f"download rlctx/results-{profile}.tar.gz (tidy results, no checkpoints) to commit them")
