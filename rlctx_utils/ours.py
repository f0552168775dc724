"""Our own runs' results (``results/<profile>/``), in the same schema as the published ones."""

from __future__ import annotations

import pandas as pd

from . import schema
from .paths import results_dir


def load_results(profile: str) -> pd.DataFrame:
    """Every evaluation summary of a profile (``results/<profile>/evals/*.summary.csv``), concatenated.

    Returns an empty frame when the profile has no results yet.
    """
    evals = results_dir(profile) / "evals"
    files = sorted(evals.glob("*.summary.csv")) if evals.is_dir() else []
    if not files:
        return schema.empty()
    return schema.conform(pd.concat([pd.read_csv(f) for f in files], ignore_index=True))
