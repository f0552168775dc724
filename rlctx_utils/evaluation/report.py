"""Tables, curves and protocol agreement from stored evaluations (used by notebooks 06 and 08).

Our evaluations and the paper's numbers share the tidy schema, so they go through the same table
and figure functions (:mod:`rlctx_utils.tables`, :mod:`rlctx_utils.plots`).
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from .. import schema
from ..io import read_json
from . import metrics
from .api import collect_results, evals_dir

METRIC_NAMES = {"em": "exact match (%)", "token_acc": "token accuracy (%)", "edit_sim": "edit similarity (%)",
                "line_loss": "target-line loss (nats/token)"}


def sort_runs(df: pd.DataFrame) -> pd.DataFrame:
    """Rows in the order the paper lists runs: base models (by θ), File-level (by θ), then the composers
    in registry order, each in original/reversed/irrelevant mode, masked before full."""
    from ..names import COMPOSER_LABELS, MODES

    comp_rank = {c: i for i, c in enumerate(COMPOSER_LABELS)}
    mode_rank = {m: i for i, m in enumerate(MODES)}

    def key(row) -> tuple:
        c = row["composer"] if isinstance(row["composer"], str) else None
        return (0 if c is None else 1, comp_rank.get(c, 99) if c else -1,
                float(row["theta"]) if pd.notna(row["theta"]) else 0.0,
                mode_rank.get(row["mode"] if isinstance(row["mode"], str) else "original", 9),
                1 if str(row["loss"]) == "full" else 0)

    if df.empty:
        return df
    order = sorted(range(len(df)), key=lambda i: key(df.iloc[i]))
    return df.iloc[order]


def settings_frame(df: pd.DataFrame, *, protocol: str, benchmark: str | None = None) -> pd.DataFrame:
    """Rows of one protocol (and benchmark) in the four table roles."""
    d = df[(df["table"] == "eval") & (df["protocol"] == protocol) & df["eval_role"].isin(schema.ROLES)]
    if benchmark is not None:
        d = d[d["benchmark"] == benchmark]
    return d


def eval_table(df: pd.DataFrame, *, protocol: str, metric: str = "em", benchmark: str | None = None,
               line_types: tuple[str, ...] = ("inproject", "infile")):
    """Checkpoint x (line type, setting) table of one metric with the RCB column (PD-ext - FL-base),
    in the layout of the paper's Table 3."""
    from .. import tables

    d = sort_runs(settings_frame(df, protocol=protocol, benchmark=benchmark))
    if d.empty:
        raise ValueError(f"no evaluations with protocol {protocol!r} in the four settings")
    values = tables.add_rcb(tables.grid(d, line_types=line_types, metric=metric))
    bench = ", ".join(sorted(d["benchmark"].dropna().unique()))
    cap = (f"{METRIC_NAMES.get(metric, metric).capitalize()} by checkpoint and evaluation setting "
           f"({protocol} protocol, {bench}); RCB = PD-ext − FL-base, computed.")
    return tables.Table(values, cap, digits=tables.digits_for(metric))


def sweep_frame(ours: pd.DataFrame, published: pd.DataFrame | None = None, *, protocol: str | None = None,
                metric: str = "em") -> pd.DataFrame:
    """Sweep rows of our evaluations (one protocol) and, when given, Figure 2's published curves."""
    d = ours[(ours["eval_role"] == "sweep") & ours[metric].notna()]
    if protocol is not None:
        d = d[d["protocol"] == protocol]
    # every Path Distance evaluation at a sweep size counts as a sweep point (PD-base and PD-ext of all
    # checkpoints are two); a curve needs a checkpoint that was actually swept
    n_sizes = d.groupby("checkpoint")["max_context"].transform("nunique")
    d = d[n_sizes > 2]
    parts = [d]
    if published is not None and metric == "em":
        parts.insert(0, published[(published["table"] == "figure2")])
    return pd.concat([p for p in parts if len(p)], ignore_index=True) if any(len(p) for p in parts) \
        else schema.empty()


def protocol_agreement(profile: str, out_dir: str | os.PathLike[str] | None = None,
                       pair: tuple[str, str] = ("lca", "thesis")) -> pd.DataFrame:
    """Line-by-line agreement of evaluations that differ only in protocol (one row per pair)."""
    d = evals_dir(profile, out_dir)
    runs = []
    for side in sorted(d.glob("*.json")) if d.exists() else []:
        rec = read_json(side)
        ident = (rec.get("config") or {}).get("identity")
        if ident and side.with_suffix(".parquet").exists():
            runs.append((ident, side.with_suffix(".parquet")))
    rows = []
    for ident_a, path_a in runs:
        if ident_a["protocol"] != pair[0]:
            continue
        for ident_b, path_b in runs:
            same = {k: v for k, v in ident_a.items() if k != "protocol"} == \
                {k: v for k, v in ident_b.items() if k != "protocol"}
            if same and ident_b["protocol"] == pair[1]:
                a, b = pd.read_parquet(path_a), pd.read_parquet(path_b)
                agr = metrics.agreement(a, b)
                agr.update(checkpoint=ident_a["checkpoint"], composer=ident_a["composer"],
                           max_context=ident_a["max_context"], benchmark=ident_a["benchmark"],
                           **{f"em_{pair[0]}": 100 * a["match"].mean(), f"em_{pair[1]}": 100 * b["match"].mean(),
                              f"token_acc_{pair[0]}": 100 * a["token_acc"].mean(),
                              f"token_acc_{pair[1]}": 100 * b["token_acc"].mean()})
                rows.append(agr)
    return pd.DataFrame(rows)


def load(profile: str, out_dir: str | os.PathLike[str] | None = None) -> pd.DataFrame:
    """Our stored evaluation summaries (alias of :func:`api.collect_results`)."""
    return collect_results(profile, out_dir)


def out_dirs(profile: str) -> tuple[Path, Path]:
    from ..paths import results_dir

    return results_dir(profile) / "tables", results_dir(profile) / "figures"
