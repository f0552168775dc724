"""Where things live in the repository."""

from __future__ import annotations

import os
from pathlib import Path

#: Root of the repository (the folder holding ``pyproject.toml``); override with ``RLCTX_ROOT``.
REPO_ROOT = Path(os.environ.get("RLCTX_ROOT", Path(__file__).resolve().parent.parent))

CONFIGS = REPO_ROOT / "configs"
NOTEBOOKS = REPO_ROOT / "notebooks"
RESULTS = REPO_ROOT / "results"
PAPER_RESULTS = RESULTS / "paper"
PAPER = REPO_ROOT / "paper"
TABLES = PAPER / "tables"
FIGURES = PAPER / "figures"
BENCH_RESULTS = RESULTS / "bench"
RESOURCES = Path(__file__).resolve().parent / "resources"


def results_dir(profile: str) -> Path:
    """``results/<profile>/``: tidy outputs of our own runs for one profile."""
    return RESULTS / profile


def cache_dir() -> Path:
    """Download and build cache (ignored by git); override with ``RLCTX_CACHE``."""
    return Path(os.environ.get("RLCTX_CACHE", REPO_ROOT / ".cache"))
