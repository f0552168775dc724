"""One tidy results schema for the published numbers and our own runs.

One row per checkpoint x evaluation setting (composer, maximum context) x line type. The table and
figure functions take any frame in this schema, so the paper's numbers and ours go through the same
code. Evaluation settings have a *role* that is independent of scale:

========== =============================================== ==================
role       meaning                                          paper label
========== =============================================== ==================
FL-base    File-level composer at the base length           FL-4K
PD-base    Path Distance .py at the base length             PD-4K
PD-ext     Path Distance .py at the extended length         PD-16K
Or-ext     the checkpoint's own composer, extended length   Or-16K
sweep      Path Distance .py at one size of the sweep       (Figure 2)
========== =============================================== ==================
"""

from __future__ import annotations

import pandas as pd

#: Column name -> (pandas dtype, meaning).
COLUMNS: dict[str, tuple[str, str]] = {
    "source": ("string", "'paper', 'paper-draft', or our profile name ('smoke', 'cpu', ...)"),
    "table": ("string", "origin: table1/table3/table4/figure2/extra_long_runs_draft, or 'eval'"),
    "checkpoint": ("string", "display name of the evaluated checkpoint"),
    "model": ("string", "model family the checkpoint starts from"),
    "composer": ("string", "registry name of the repository-level training composer; <NA> = none"),
    "mode": ("string", "composer mode: original / reversed / irrelevant"),
    "loss": ("string", "masked (completion tokens only) or full"),
    "theta": ("Float64", "RoPE base frequency the checkpoint is evaluated with"),
    "train_tokens": ("Float64", "tokens of repository-level (or file-level) training"),
    "train_length": ("Int64", "sequence length of that training"),
    "eval_role": ("string", "FL-base / PD-base / PD-ext / Or-ext / sweep"),
    "eval_setting": ("string", "label such as FL-4K, PD-16K, PD-64K"),
    "eval_composer": ("string", "composer used at evaluation (registry name)"),
    "max_context": ("Int64", "maximum prompt length in tokens"),
    "line_type": ("string", "LCA line category (inproject, infile, ...); 'file' = whole completion files"),
    "em": ("Float64", "exact match, percent (0-100)"),
    "n_lines": ("Int64", "number of target lines behind the number (perplexity protocol: of completion files)"),
    "protocol": ("string", "paper (internal script) / lca / thesis / perplexity"),
    "benchmark": ("string", "benchmark name, e.g. lca-large_context or our profile's benchmark"),
    "line_loss": ("Float64", "mean token loss of the target line under teacher forcing"),
    "token_acc": ("Float64", "share of target-line tokens predicted correctly (percent)"),
    "edit_sim": ("Float64", "mean edit similarity of prediction and target (percent)"),
    "file_loss": ("Float64", "perplexity protocol: mean token loss of the completion file after the "
                             "setting's context (nats/token, averaged per file then over files)"),
    "file_loss_delta": ("Float64", "perplexity protocol: file_loss minus the same tokens' loss with no "
                                   "context (negative = the repository context helps)"),
    "note": ("string", "caveat attached to the number"),
}

ROLES = ("FL-base", "PD-base", "PD-ext", "Or-ext")
ROLE_PREFIX = {"FL-base": "FL", "PD-base": "PD", "PD-ext": "PD", "Or-ext": "Or", "sweep": "PD"}


class SchemaError(ValueError):
    """A frame does not follow the results schema."""


def size_label(n_tokens: int) -> str:
    """4096 -> '4K', 16384 -> '16K', 512 -> '512', 1536 -> '1.5K'."""
    if n_tokens < 1024:
        return str(int(n_tokens))
    k = n_tokens / 1024
    return f"{k:g}K"


def setting_label(role: str, max_context: int) -> str:
    """Label of an evaluation setting: ('PD-ext', 16384) -> 'PD-16K'."""
    return f"{ROLE_PREFIX[role]}-{size_label(max_context)}"


def empty() -> pd.DataFrame:
    return conform(pd.DataFrame({c: [] for c in COLUMNS}))


def conform(df: pd.DataFrame) -> pd.DataFrame:
    """Add missing columns, order them, cast dtypes; raise SchemaError on unknown columns."""
    extra = [c for c in df.columns if c not in COLUMNS]
    if extra:
        raise SchemaError(f"columns not in the results schema: {extra}")
    out = df.copy()
    for col, (dtype, _) in COLUMNS.items():
        if col not in out:
            out[col] = pd.NA
        out[col] = out[col].astype(dtype)
    return out[list(COLUMNS)]


def validate(df: pd.DataFrame) -> pd.DataFrame:
    """Check a frame: schema, required values, EM in range, no duplicate keys."""
    df = conform(df)
    for col in ("source", "checkpoint", "eval_setting", "line_type"):
        if df[col].isna().any():
            raise SchemaError(f"column {col!r} has missing values")
    em = df["em"].dropna()
    if ((em < 0) | (em > 100)).any():
        raise SchemaError("em must be a percentage in [0, 100]")
    key = ["source", "table", "checkpoint", "eval_setting", "max_context", "line_type", "protocol",
           "benchmark"]
    dup = df.duplicated(subset=key, keep=False)
    if dup.any():
        raise SchemaError(f"duplicate rows for key {key}:\n{df.loc[dup, key].head()}")
    return df
