# rlctx — `make help` lists the targets.
#
# Two tiers: `make figures` regenerates every table and figure from committed results (minutes, any
# laptop); `make reproduce PROFILE=...` reruns the experiments of one profile.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DELETE_ON_ERROR:

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
EXEC   := results/executed
PROFILE ?= cpu
PYTEST_ARGS ?=

RESULTS_MODULES := rlctx_utils/schema.py rlctx_utils/names.py rlctx_utils/tables.py rlctx_utils/plots.py \
                   rlctx_utils/stats.py rlctx_utils/paper_results.py rlctx_utils/published.py
PAPER_NOTEBOOKS := $(EXEC)/00_paper_results.ipynb $(EXEC)/07_masked_vs_full.ipynb
# Notebooks that only need the package (no data, no checkpoints): part of `make all`.
CHEAP_NOTEBOOKS := $(EXEC)/02_rope_scaling.ipynb
# The stages of `make reproduce`, in order.
# 02 follows the training notebooks: its empirical loss-by-position figure needs their checkpoints.
STAGES := 03_data 01_composers 04_base_pretraining 05_repo_pretraining 02_rope_scaling 06_evaluation \
          08_extrapolation 07_masked_vs_full 09_toy_scale
# Stages that compute in `make reproduce` but only redraw from committed results in `make figures`.
COMPUTE_STAGES := 06_evaluation 08_extrapolation
# Stages that train in `make reproduce` (their defaults only plot the stored logs).
TRAIN_STAGES := 04_base_pretraining 05_repo_pretraining
# Profiles whose committed results `make figures` draws next to the paper's.
OUR_PROFILES := cpu $(if $(wildcard results/gpu-small/evals/*.summary.csv),gpu-small)
OUR_NOTEBOOKS := $(foreach p,$(OUR_PROFILES),$(foreach nb,06_evaluation 07_masked_vs_full 08_extrapolation 09_toy_scale,$(EXEC)/$(p)/$(nb).ipynb))

.PHONY: help all setup figures report test test-fast lab reproduce clean-executed gpu-bundle gpu-run gpu-import

help:  ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  make %-16s %s\n", $$1, $$2}'
	@echo "  variables: PROFILE=$(PROFILE) (smoke|cpu|gpu-small|paper), PYTHON=$(PYTHON)"

all: setup $(PAPER_NOTEBOOKS) $(CHEAP_NOTEBOOKS) $(OUR_NOTEBOOKS) $(TRAINING_NOTEBOOKS)  ## set up .venv, then regenerate every table, figure and REPORT.md
	$(BIN)/rlctx report

# Which torch wheel `make setup` installs (its version is always the lock's):
#   TORCH=default  PyPI's: the CUDA build on Linux (about 2.5 GB with its nvidia-* wheels), CPU elsewhere
#   TORCH=cpu      PyTorch's CPU-only wheel (about 200 MB): laptops and CPU servers without a GPU
#   TORCH=system   keep the torch already installed (Colab's CUDA build): .venv sees the system packages
# To switch an existing .venv: rm -rf .venv, then make setup TORCH=...
TORCH ?= default
EXTRAS ?= test,lab
TORCH_CPU_INDEX := https://download.pytorch.org/whl/cpu
LOCKED_TORCH = $(shell sed -n 's/^torch==//p' requirements.lock)

setup: $(STAMP)  ## create .venv and install the pinned environment (TORCH=cpu: CPU-only torch wheels)

$(STAMP): pyproject.toml requirements.lock
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11, 5))' || { echo "Python 3.11.5+ is needed (found $$($(PYTHON) --version)); the lock's soupsieve needs it"; exit 1; }
	@case "$(TORCH)" in default|cpu|system) ;; *) echo "TORCH=$(TORCH): give default, cpu or system"; exit 1;; esac
ifeq ($(TORCH),system)
	test -x $(BIN)/python || $(PYTHON) -m venv --system-site-packages --without-pip $(VENV)
	grep -v '^torch==' requirements.lock > $(VENV)/constraints.txt
	$(BIN)/python -c 'import torch; print("keeping torch", torch.__version__)'
	$(BIN)/python -m pip install -q -c $(VENV)/constraints.txt -e ".[$(EXTRAS)]"
else
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
ifeq ($(TORCH),cpu)
	$(BIN)/python -m pip install -q --no-deps --index-url $(TORCH_CPU_INDEX) torch==$(LOCKED_TORCH)
endif
	$(BIN)/python -m pip install -q -c requirements.lock -e ".[$(EXTRAS)]"
endif
	touch $@

results/paper/results.csv: results/paper/source/*.csv rlctx_utils/published.py rlctx_utils/schema.py | $(STAMP)
	$(BIN)/python -m rlctx_utils.published

$(EXEC)/00_paper_results.ipynb: notebooks/00_paper_results.py results/paper/results.csv $(RESULTS_MODULES) | $(STAMP)
	$(BIN)/rlctx notebook run 00_paper_results

$(EXEC)/07_masked_vs_full.ipynb: notebooks/07_masked_vs_full.py results/paper/results.csv $(RESULTS_MODULES) | $(STAMP)
	$(BIN)/rlctx notebook run 07_masked_vs_full

$(EXEC)/02_rope_scaling.ipynb: notebooks/02_rope_scaling.py rlctx_utils/rope.py rlctx_utils/rope_plots.py \
                              $(wildcard results/cpu/positions/*.csv) | $(STAMP)
	$(BIN)/rlctx notebook run 02_rope_scaling

# Our runs, from their committed evaluations (nothing is trained or evaluated here).
OURS_MODULES := $(RESULTS_MODULES) rlctx_utils/toy_scale.py rlctx_utils/evaluation/report.py \
                rlctx_utils/evaluation/incontext_report.py
.SECONDEXPANSION:
# One pattern rule per notebook (a rule with several pattern targets would make them all at once).
define OUR_NOTEBOOK_RULE
$(EXEC)/%/$(1).ipynb: notebooks/$(1).py $$$$(wildcard results/$$$$*/evals/*.summary.csv) \
                      $$$$(wildcard results/$$$$*/incontext/*.csv) $(OURS_MODULES) | $(STAMP)
	$(BIN)/rlctx notebook run $(1) --profile $$* --out-dir $(EXEC)/$$*
endef
$(foreach nb,06_evaluation 07_masked_vs_full 08_extrapolation 09_toy_scale,$(eval $(call OUR_NOTEBOOK_RULE,$(nb))))

# Stage-A logs and the tuning sweep (notebook 04 plots committed logs; it trains only with -p train True).
TRAINING_NOTEBOOKS := $(foreach p,$(OUR_PROFILES),$(EXEC)/$(p)/04_base_pretraining.ipynb)
$(EXEC)/%/04_base_pretraining.ipynb: notebooks/04_base_pretraining.py $$(wildcard results/$$*/runs/base/metrics.csv) \
                                     $$(wildcard results/$$*/tuning/*.csv) rlctx_utils/training/plots.py \
                                     rlctx_utils/training/tuning.py | $(STAMP)
	$(BIN)/rlctx notebook run 04_base_pretraining --profile $* --out-dir $(EXEC)/$*

figures: $(PAPER_NOTEBOOKS) $(CHEAP_NOTEBOOKS) $(OUR_NOTEBOOKS) $(TRAINING_NOTEBOOKS)  ## regenerate tables and figures from committed results
	$(BIN)/rlctx report

report: | $(STAMP)  ## rebuild paper/REPORT.md from what is in paper/ (about 1 s)
	$(BIN)/rlctx report

test: $(STAMP)  ## run the test suite (what CI runs)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: $(STAMP)  ## the tests without the slow and notebook ones
	$(BIN)/python -m pytest -m "not slow and not notebook" $(PYTEST_ARGS)

# As root (Docker, cloud boxes) Jupyter refuses to start without --allow-root: pass it, and say so.
lab: $(STAMP)  ## JupyterLab at the repository root, the .py notebooks opening as notebooks (jupytext)
	@allow=""; if [ "$$(id -u)" = 0 ]; then allow="--allow-root"; \
	  echo "note: running as root, so jupyter lab gets --allow-root (as in Docker images); prefer a normal user"; fi; \
	set -x; JUPYTERLAB_SETTINGS_DIR=$(CURDIR)/.jupyter/lab/user-settings $(BIN)/jupyter lab \
	  --ServerApp.root_dir=$(CURDIR) $$allow $(LAB_ARGS)

results/$(PROFILE)/data/manifest.json: configs/data/$(PROFILE).toml | $(STAMP)
	$(BIN)/rlctx mine pypi --spec configs/data/$(PROFILE).toml --out results/$(PROFILE)/data

reproduce: $(STAMP) results/$(PROFILE)/data/manifest.json  ## rerun the study: make reproduce PROFILE=smoke|cpu|gpu-small
	@for nb in $(STAGES); do \
	  extra=""; case " $(COMPUTE_STAGES) " in *" $$nb "*) extra="-p evaluate True";; esac; \
	  case " $(TRAIN_STAGES) " in *" $$nb "*) extra="-p train True";; esac; \
	  echo "== $$nb (profile $(PROFILE)) $$(date -u +%H:%M:%S)"; \
	  start=$$(date +%s); \
	  $(BIN)/rlctx notebook run $$nb --profile $(PROFILE) --out-dir $(EXEC)/$(PROFILE) $$extra; \
	  echo "$$(date -u +%Y-%m-%dT%H:%M:%SZ),$$nb,$$(( $$(date +%s) - start ))" >> results/$(PROFILE)/stage_times.csv; \
	done
	$(BIN)/rlctx report

# One prepared GPU run (README, "GPU training"): bundle here, run there (no network), import here.
BUNDLE  ?= .gpu-bundle
ARCHIVE ?= gpu-out/rlctx-gpu-$(PROFILE).tar.gz
gpu-bundle: $(STAMP) results/$(PROFILE)/data/manifest.json  ## the GPU run's bundle (under 60 MiB): make gpu-bundle PROFILE=gpu-small
	$(BIN)/rlctx gpu bundle $(PROFILE) --out $(BUNDLE)

gpu-run:  ## on the GPU machine (its python3, no .venv): train, evaluate, pack $$OUT/rlctx-gpu-<profile>.tar.gz
	$(PYTHON) -m rlctx_utils.gpu run --bundle $(BUNDLE) $(GPU_ARGS)

gpu-import: | $(STAMP)  ## unpack a GPU run's archive into results/: make gpu-import ARCHIVE=path.tar.gz
	$(BIN)/rlctx gpu import $(ARCHIVE)

clean-executed:  ## remove executed notebooks (forces notebooks to rerun)
	rm -rf $(EXEC)
