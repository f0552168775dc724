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
# # 09 · At toy scale: the paper's six findings on our own runs
#
# The paper's findings (SPEC section 1) put side by side with what our profile measured, each with a
# verdict (reproduced, partly, not reproduced) decided by a rule written down in
# `rlctx_utils/toy_scale.py` before looking at the numbers. Exact match is near 0 for a model this
# small, so the verdicts rest on the graded target-line token accuracy (inproject lines, the paper's
# main column), with target-line loss and EM beside it. Every interval is a 95% bootstrap over
# *repositories*; a difference whose interval holds 0 is within noise.
#
# The notebook only reads stored evaluations (`results/<profile>/evals/`, written by notebooks 06
# and 08) and writes: our Tables 2 and 4 (`paper/tables/table{2,4}_<profile>_*`), the per-line
# masked-vs-full comparison, the effects figure, `paper/toy_scale.md` (the section "At toy scale" of
# `paper/REPORT.md`) and `results/<profile>/findings.json`.

# %% tags=["parameters"]
profile = "cpu"
protocol = ""       # default: the profile's [eval] protocol (the first of a comma list)
results_csv = "results/paper/results.csv"
tables_dir = "paper/tables"
figures_dir = "paper/figures"
report_md = "paper/toy_scale.md"
findings_dir = ""      # findings.json and masked_vs_full_lines.json; default: results/<profile>

# %%
from rlctx_utils.paths import at_repo_root

at_repo_root()  # relative paths below start at the repository root, wherever the kernel started

# %%
from pathlib import Path

from IPython.display import Image, Markdown, display

from rlctx_utils import published, toy_scale
from rlctx_utils.config import load_profile
from rlctx_utils.evaluation import presets, report

paper = published.load(Path(results_csv))
cfg = load_profile(profile)
protocol = protocol or presets.default_protocol(cfg)
print(f"protocol: {protocol}")
ours = report.load(profile)
print(f"{len(ours)} summary rows of profile {profile}")

# %% [markdown]
# ## Tables 2 and 4 in our numbers

# %%
written = toy_scale.write_our_tables(ours, profile, protocol=protocol, out_dir=Path(tables_dir))
for name in written:
    display(Markdown(Path(tables_dir, f"{name}.md").read_text()))

# %% [markdown]
# ## Masked vs full, line by line
#
# Each setting's target lines evaluated for the masked and the full run: the paired difference in
# token accuracy with its repository-bootstrap interval, and the exact McNemar test on exact match.

# %%
study = toy_scale.Study(profile, paper, cfg, protocol)
name = toy_scale.write_masked_vs_full_lines(study, out_dir=Path(tables_dir), json_dir=findings_dir or None)
if name:
    display(Markdown(Path(tables_dir, f"{name}.md").read_text()))

# %% [markdown]
# ## The six findings

# %%
out, fs = toy_scale.write_toy_scale(profile, paper_csv=Path(results_csv), out=Path(report_md), protocol=protocol,
                                    findings_dir=findings_dir or None)
display(Markdown(out.read_text()))

# %%
png = toy_scale.write_effects_figure(fs, profile, out_dir=Path(figures_dir))
if png:
    display(Image(filename=str(png)))
