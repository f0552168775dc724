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
# Runtime → Change runtime type → GPU first (on a CPU runtime the install cell switches to the
# `smoke` profile, minutes; `profile = "cpu"` is the 2-core study, about 2 h). Every cell can be
# rerun: the install finds the clone and the installed packages, and a stopped study resumes (training
# from its checkpoints; stored evaluations are skipped).

# %% tags=["parameters"]
repo_url = "https://github.com/rlctx/rlctx.git"
profile = "gpu-small"

# %% [markdown]
# ## Install (about 2 minutes the first time, seconds on a rerun)
#
# The pinned packages go into `rlctx/.venv` with `make setup TORCH=system`: the virtual environment
# sees Colab's own CUDA build of torch and keeps it (nothing reinstalls torch); everything else is at
# its `requirements.lock` version.

# %%
import os
import shutil
import subprocess

if not os.path.isfile("notebooks/colab/gpu_small.py"):  # not inside the clone yet (a rerun already is)
    if not os.path.isdir("rlctx/.git"):
        subprocess.run(["git", "clone", "--depth", "1", repo_url, "rlctx"], check=True)
    os.chdir("rlctx")
print("repository:", os.getcwd())
if shutil.which("nvidia-smi"):
    subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv"], check=False)
elif profile == "gpu-small":
    print("No GPU in this runtime (Runtime > Change runtime type > GPU for gpu-small, about 1 h): "
          "switching to profile = 'smoke' (minutes). Set profile = 'cpu' for the 2-core study (about 2 h).")
    profile = "smoke"
subprocess.run(["make", "setup", "TORCH=system", "EXTRAS=test"], check=True)

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
