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
# # 01 · Context composers
#
# The study's independent variable (SPEC section 4): how the repository context in front of a
# completion file is chosen, ranked, cut to the token budget and ordered. This notebook runs every
# composer, in every mode, on one real repository snapshot and shows
#
# * the ranked candidates and which of them made it into the window,
# * token counts before and after the left cut,
# * the head and the tail of each context (the tail is the most relevant end),
# * the three modes drawn from the real ranks (the talk's slide).
#
# The snapshot is a PyPI source distribution (`snapshot = "requests"` at `snapshot_version = "2.32.3"`, downloaded once
# into `.cache/sdists`), or the small built-in toy repository (`snapshot = "toy"`).

# %% tags=["parameters"]
# snapshot: a PyPI package (its sdist at snapshot_version), a path to an archive, or toy
# completion_path: empty = pick a .py file of 800-25,000 characters with the seed
# tokenizer_path: empty = train a byte-level BPE on the standard library (cached in .cache/)
# figure_tokens: budget of the modes figure (fewer pieces, readable labels)
profile = "smoke"
snapshot = "requests"
snapshot_version = "2.32.3"
completion_path = ""
max_tokens = 16384
figure_tokens = 8192
tokenizer_path = ""
vocab_size = 16384
seed = 0
figures_dir = "paper/figures"
n_chars = 240
# the last section: a profile whose [composers] modules register a composer of your own
own_composer_profile = "smoke-own-composer"
train_own_composer = False  # True: train its grid row and evaluate it (needs the smoke data and base model)

# %%
from rlctx_utils.paths import at_repo_root

at_repo_root()  # relative paths below start at the repository root, wherever the kernel started

# %%
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from rlctx_utils.composers import COMPOSERS, composer_info  # noqa: E402
from rlctx_utils.composers import report  # noqa: E402
from rlctx_utils.composers._fixtures import (TOY_COMPLETION, completion_files, fetch_sdist,  # noqa: E402
                                             read_sdist, toy_repository)
from rlctx_utils.names import COLORS  # noqa: E402
from rlctx_utils.plots import save_figure  # noqa: E402
from rlctx_utils.paths import REPO_ROOT, cache_dir  # noqa: E402
from rlctx_utils.tokenizer import load_tokenizer, stdlib_corpus, train_tokenizer  # noqa: E402

pd.set_option("display.width", 200)
pd.set_option("display.max_colwidth", 60)

# %% [markdown]
# ## Inputs: tokenizer, snapshot, completion file

# %%
if tokenizer_path:
    tok = load_tokenizer(tokenizer_path)
else:
    tok_dir = cache_dir() / f"bench_tokenizer_{vocab_size}"
    if not (tok_dir / "tokenizer.json").exists():
        train_tokenizer(stdlib_corpus(max_files=1500 if vocab_size > 4096 else 150, seed=0),
                        vocab_size=vocab_size, out_dir=tok_dir)
    tok = load_tokenizer(str(tok_dir))

if snapshot != "toy" and "==" not in snapshot and not Path(snapshot).exists():
    snapshot = f"{snapshot}=={snapshot_version}"  # the sdist NAME==VERSION
if snapshot == "toy":
    snap = toy_repository()
    cpath, ctext = TOY_COMPLETION
    repo_name = "toy"
else:
    archive = Path(snapshot) if Path(snapshot).exists() else fetch_sdist(snapshot)
    full = read_sdist(archive)
    repo_name = archive.name.split(".tar")[0].split(".zip")[0]
    if completion_path:
        cpath, ctext = completion_path, full[completion_path]
        snap = {p: t for p, t in full.items() if p != cpath}
    else:
        cpath, ctext, snap = completion_files(full, 1, seed=seed)[0]
py_chars = sum(len(t) for p, t in snap.items() if p.endswith(".py") and t)
print(f"snapshot {repo_name}: {len(snap)} files, {py_chars:,} characters of .py")
print(f"completion file {cpath}: {len(ctext):,} characters; tokenizer vocabulary {len(tok):,}")

# %% [markdown]
# ## Every composer, every mode
#
# `n_tokens_full` counts the whole composed context; `n_tokens` what remains after the left cut.

# %%
comps = report.compose_all(snap, cpath, ctext, tokenizer=tok, max_tokens=max_tokens, seed=seed,
                           repo_name=repo_name)
summary = report.summary_table(comps)
summary

# %% [markdown]
# How each composer is declared (filter, ranking keys, reductions, post-steps):

# %%
pd.DataFrame(composer_info())[["name", "family", "select", "rank", "reduce", "post", "modes", "leaks"]]

# %% [markdown]
# ## Ranked files
#
# Rank 1 is the most relevant candidate (it sits right before the completion file in `original`
# mode). Keys are in natural units: path distance (lower is more relevant), lines IoU (higher).

# %%
for name in ("path_distance_py", "lines_iou_py", "text_files", "lca_path_distance", "lca_imports_first"):
    print(f"\n=== {name} ===")
    print(report.ranking_table(comps[(name, "original")], top=10).to_string(index=False))

# %% [markdown]
# ## Head and tail of each context

# %%
for (name, mode), c in comps.items():
    head, tail = report.head_tail(c, n_chars)
    print(f"\n=== {name} / {mode}: {c.n_tokens:,} of {c.n_tokens_full:,} tokens, {len(c.pieces)} pieces ===")
    print("HEAD:", repr(head))
    print("TAIL:", repr(tail))

# %% [markdown]
# ## The three modes, drawn from the real ranks
#
# Pieces are numbered by rank (1 = most relevant). `original` keeps the most relevant pieces that
# fit, most relevant last; `reversed` keeps the same pieces in reverse order; `irrelevant` reverses
# the ranking before the cut, so the window holds the least relevant pieces. Grey: what the left
# cut drops.

# %%
fig, mode_comps = report.plot_modes(snap, cpath, ctext, tokenizer=tok, max_tokens=figure_tokens, seed=seed)
out = Path(figures_dir) if Path(figures_dir).is_absolute() else REPO_ROOT / figures_dir
out.mkdir(parents=True, exist_ok=True)
plt.show()
save_figure(fig, "composers_modes", out_dir=out, source=f"{snapshot}: {cpath}",
            regenerate="notebooks/01_composers.py (make reproduce PROFILE=...)",
            caption=f"The three modes of path_distance_py on a real snapshot ({snapshot}, {cpath}): pieces numbered "
                    f"by real rank, cut from the left at {figure_tokens:,} tokens.")
print("written:", out / "composers_modes.png")

# %% [markdown]
# ## Token budget use per composer
#
# Reductions (declarations, text chunks) make pieces shorter, so more files fit; Half-memory keeps
# the window full with twice as many files.

# %%
orig = summary[summary["mode"] == "original"].set_index("composer")
fig2, ax = plt.subplots(figsize=(9, 4))
bars = ax.barh(orig.index, orig["pieces"], color=[COLORS.get(n, "#999999") for n in orig.index])
ax.bar_label(bars, fontsize=7, padding=2)  # file_level's window is empty: its bar reads 0
ax.invert_yaxis()
ax.set_xlabel(f"pieces in a {max_tokens:,}-token window")
ax.tick_params(axis="y", labelsize=8)
for side in ("top", "right"):
    ax.spines[side].set_visible(False)
fig2.tight_layout()
plt.show()
save_figure(fig2, "composers_pieces", out_dir=out, source=f"{snapshot}: {cpath}",
            regenerate="notebooks/01_composers.py (make reproduce PROFILE=...)",
            caption=f"Pieces that fit a {max_tokens:,}-token window per composer (original mode) on {snapshot}.")

# %% [markdown]
# ## Your own composer, end to end
#
# A composer of your own is one `register_composer(...)` declaration in a module of yours. A profile
# names the module (`[composers] modules = ["my_pkg.composers"]`, or a `.py` path from the repository
# root), and every process that loads the profile imports it first: this kernel, `rlctx train` and
# `rlctx eval`, which the notebooks launch as subprocesses. The example profile
# `configs/smoke-own-composer.toml` names `examples/composers/no_tests.py` and trains one grid row
# with its composer on the smoke study's data and base model:

# %%
from IPython.display import Markdown, display  # noqa: E402

from rlctx_utils.composers import compose  # noqa: E402
from rlctx_utils.config import load_profile  # noqa: E402
from rlctx_utils.training.cli import resolve_runs  # noqa: E402

own_cfg = load_profile(own_composer_profile)  # imports the modules of its [composers] section
for module in own_cfg["composers"]["modules"]:
    if module.endswith(".py"):
        display(Markdown(f"`{module}`:\n```python\n{Path(module).read_text()}```"))
own_runs = resolve_runs(own_composer_profile, [], stage="repo", grid=True)
own_name = own_runs[0]["composer"]
print(f"profile {own_composer_profile}: composer {own_name!r} ({composer_info(own_name)['description']}); "
      f"grid rows: {[r['run_id'] for r in own_runs]}")

# %% [markdown]
# Composing the snapshot above with it, next to the composer it derives from:

# %%
rows = []
for name in ("path_distance_py", own_name):
    c = compose(name, snap, cpath, ctext, tokenizer=tok, max_tokens=max_tokens, seed=seed, repo_name=repo_name)
    paths = [p.path for p in c.pieces]
    rows.append({"composer": name, "pieces": len(paths), "tokens": c.n_tokens,
                 "test files": sum("/tests/" in f"/{p}" or p.rsplit("/", 1)[-1].startswith("test_") for p in paths),
                 "last (most relevant)": paths[-1] if paths else ""})
pd.DataFrame(rows)

# %% [markdown]
# Training the grid row and evaluating it are the ordinary commands (what this cell launches):
#
# ```bash
# make reproduce PROFILE=smoke   # once: the smoke data and base model the profile points at (minutes)
# rlctx train smoke-own-composer --stage repo --run-id path_distance_no_tests-original-masked-theta500000
# rlctx eval --profile smoke-own-composer --checkpoint run:path_distance_no_tests-original-masked-theta500000 \
#     --preset PD-ext,Or-ext
# ```

# %%
if train_own_composer:
    from rlctx_utils.evaluation import report as eval_report
    from rlctx_utils.evaluation.cli import launch_eval
    from rlctx_utils.training.cli import launch

    for r in own_runs:
        launch(own_composer_profile, stage="repo", run_id=r["run_id"])
    launch_eval(own_composer_profile, [f"run:{r['run_id']}" for r in own_runs], preset="PD-ext,Or-ext")
    own_results = eval_report.load(own_composer_profile)
    display(own_results[own_results["line_type"].isin(["inproject", "infile"])]
            [["checkpoint", "eval_setting", "line_type", "em", "token_acc", "n_lines"]])
else:
    print("train_own_composer = False: set it to True to train and evaluate this grid row")
