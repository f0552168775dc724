"""Loading the real Long Code Arena benchmark (project-level code completion, Python).

``load_lca("large_context")`` returns the 270 datapoints the paper evaluates on, as the same
:class:`~rlctx_utils.data.types.Datapoint` our miners produce. The data comes from the Hugging Face
hub (``JetBrains-Research/lca-project-level-code-completion``) or, offline, from local parquet files
laid out as on the hub (``data/<config>/test-*.parquet``) or any folder/file of parquet in that schema.
"""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow.parquet as pq

from .errors import LCAUnavailableError
from .types import Datapoint

HUB_ID = "JetBrains-Research/lca-project-level-code-completion"
CONFIGS = ("small_context", "medium_context", "large_context", "huge_context")


def _local_files(path: Path, config: str) -> list[Path]:
    if path.is_file():
        return [path]
    files = sorted(path.rglob("*.parquet"))
    picked = [f for f in files if config in f.relative_to(path).parts or config in f.name]
    if picked:
        return picked
    others = [c for c in CONFIGS if c != config]
    return [f for f in files if not any(c in str(f.relative_to(path)) for c in others)]


def _from_parquet(files: list[Path], config: str) -> list[Datapoint]:
    out = []
    for f in files:
        for rec in pq.read_table(f).to_pylist():
            out.append(Datapoint.from_lca_record(rec, split="benchmark", source=f"lca:{config}"))
    return out


def load_lca(config: str = "large_context", path: str | os.PathLike[str] | None = None) -> list[Datapoint]:
    """The LCA project-level completion datapoints of one context-size config.

    ``path``: a parquet file, or a folder searched recursively for parquet files (those under a
    folder or with a name containing ``config`` are preferred). Without ``path`` the hub is used
    (through ``datasets``); when it cannot be reached the error is one line saying what to do.
    """
    if config not in CONFIGS:
        raise LCAUnavailableError(f"unknown LCA config {config!r}: use one of {CONFIGS}")
    if path is not None:
        p = Path(path)
        if not p.exists():
            raise LCAUnavailableError(f"{p}: no such file or folder of LCA parquet files")
        files = _local_files(p, config)
        if not files:
            raise LCAUnavailableError(f"{p}: no parquet files for {config}")
        return _from_parquet(files, config)
    try:
        import datasets
        ds = datasets.load_dataset(HUB_ID, config, split="test")
    except Exception as exc:  # offline, hub unreachable, no cache
        raise LCAUnavailableError(
            f"LCA {config} not found locally and the hub is unreachable ({type(exc).__name__}); download "
            f"{HUB_ID} elsewhere and pass its folder with load_lca(path=...) or --lca PATH") from None
    return [Datapoint.from_lca_record(rec, split="benchmark", source=f"lca:{config}") for rec in ds]
