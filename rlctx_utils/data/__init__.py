"""Repository data: datapoints in the Long Code Arena schema, mining, line categories, loaders.

Heavy modules (``datasets``, ``dulwich``, ``tree_sitter``) load on first use of a name below.
"""

from __future__ import annotations

import importlib
from typing import Any

from .types import CATEGORIES, Datapoint

_LAZY = {
    "load_datapoints": "store", "iter_datapoints": "store", "save_datapoints": "store",
    "load_corpus": "store", "save_corpus": "store", "SPLITS": "store", "LCA_FEATURES": "store",
    "load_lca": "lca",
    "classify_lines": "lines", "sample_lines": "lines", "size_bucket": "lines",
    "read_archive": "snapshots", "read_dir": "snapshots",
    "MiningConfig": "config",
    "mine_git_repo": "git_miner",
    "load_spec": "pypi", "mine_package": "pypi",
    "mine_all": "pipeline", "RepoSource": "pipeline",
    "DataError": "errors", "UnsafeArchiveError": "errors", "SpecError": "errors",
    "DownloadError": "errors", "MiningConfigError": "errors", "LCAUnavailableError": "errors",
}

__all__ = ["CATEGORIES", "Datapoint", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
