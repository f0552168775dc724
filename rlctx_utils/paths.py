"""Where things live in the repository.

:data:`REPO_ROOT` is found once, wherever the process starts (:func:`find_repo_root`): a kernel that
JupyterLab starts in ``notebooks/``, papermill at the root, Colab in ``/content/rlctx``. Notebooks
call :func:`at_repo_root` first, so the relative paths of their parameters (``results/...``,
``paper/...``) mean the same whether the kernel started in ``notebooks/`` or at the root.
"""

from __future__ import annotations

import os
from pathlib import Path


def _is_repo_root(p: Path) -> bool:
    """The folder holding this project's ``pyproject.toml`` next to ``notebooks/`` and ``configs/``."""
    try:
        return ((p / "notebooks").is_dir() and (p / "configs").is_dir()
                and 'name = "rlctx"' in (p / "pyproject.toml").read_text(encoding="utf-8"))
    except OSError:
        return False


def find_repo_root(start: str | os.PathLike[str] | None = None) -> Path:
    """The repository root: ``RLCTX_ROOT`` when set; else the checkout this package was installed from
    (``pip install -e .``, ``make setup``); else the nearest folder above ``start`` (default: the
    working directory) that is the repository; else the package's parent folder."""
    if os.environ.get("RLCTX_ROOT"):
        return Path(os.environ["RLCTX_ROOT"])
    pkg_parent = Path(__file__).resolve().parent.parent
    if _is_repo_root(pkg_parent):
        return pkg_parent
    here = Path(start or os.getcwd()).resolve()
    for cand in (here, *here.parents):
        if _is_repo_root(cand):
            return cand
    return pkg_parent


#: Root of the repository (the folder holding ``pyproject.toml``); override with ``RLCTX_ROOT``.
REPO_ROOT = find_repo_root()

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


def at_repo_root(quiet: bool = False) -> Path:
    """Make the repository root the working directory (first line of every notebook) and return it.

    JupyterLab starts a notebook's kernel in the notebook's folder (``notebooks/``), papermill at the
    root; after this call the notebook's relative paths resolve from the root in both cases."""
    root = REPO_ROOT.resolve()
    if Path.cwd().resolve() != root:
        if not quiet:
            print(f"working directory: {root} (the repository root; relative paths start there)")
        os.chdir(root)
    return root


class MissingInputError(FileNotFoundError):
    """An input that a notebook or a command reads does not exist yet; the message says which command
    makes it."""


def require(path: str | os.PathLike[str], made_by: str) -> Path:
    """``path`` when it exists, else a :class:`MissingInputError` naming the command ``made_by``."""
    p = Path(path)
    if not p.exists():
        raise MissingInputError(f"{p} does not exist yet: make it with `{made_by}`")
    return p
