"""Tables of the paper, from any frame in the results schema, as Markdown and LaTeX.

Every table is a :class:`Table`: a numeric frame (rows x (line type, setting) columns), a caption
and notes. :meth:`Table.to_markdown` and :meth:`Table.to_latex` render the same cells, and
:func:`write_table` writes both atomically. The functions work for the published numbers and for our
own runs alike, because they address evaluation settings by *role* (FL-base, PD-base, PD-ext,
Or-ext), not by the paper's 4K/16K labels.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from . import schema
from .io import write_json, write_text
from .names import COMPOSER_LABELS, LINE_TYPES, UNREALISTIC
from .paths import TABLES


@dataclass
class Table:
    """A rendered-once, written-twice table."""

    values: pd.DataFrame  # numeric; columns MultiIndex (line_type, setting) or flat
    caption: str
    notes: list[str] = field(default_factory=list)
    marks: dict[tuple[str, tuple[str, str] | str], str] = field(default_factory=dict)  # cell -> mark
    text: pd.DataFrame | None = None  # optional pre-formatted cells (ranges), overrides values
    digits: int = 1
    row_header: str = "Checkpoint"

    def cell(self, row: str, col) -> str:
        if self.text is not None and col in self.text.columns and isinstance(self.text.at[row, col], str):
            s = self.text.at[row, col]
        else:
            v = self.values.at[row, col]
            s = "–" if pd.isna(v) else f"{v:.{self.digits}f}"
        return s + self.marks.get((row, col), "")

    def _header_levels(self) -> list[list[str]]:
        cols = self.values.columns
        if isinstance(cols, pd.MultiIndex):
            return [[str(x) for x in cols.get_level_values(i)] for i in range(cols.nlevels)]
        return [[str(c) for c in cols]]

    def to_markdown(self) -> str:
        levels = self._header_levels()
        heads = [" ".join(parts) for parts in zip(*levels)]
        lines = [f"**{self.caption}**", "",
                 "| " + " | ".join([self.row_header] + heads) + " |",
                 "|" + "---|" + "---:|" * len(heads)]
        for row in self.values.index:
            cells = [self.cell(row, c) for c in self.values.columns]
            lines.append("| " + " | ".join([str(row)] + cells) + " |")
        if self.notes:
            lines.append("")
            lines.extend(f"{n}  " for n in self.notes)
        return "\n".join(lines) + "\n"

    def to_latex(self) -> str:
        levels = self._header_levels()
        ncol = len(levels[-1])
        out = ["\\begin{table}[t]", "\\centering", "\\small",
               "\\begin{tabular}{l" + "r" * ncol + "}", "\\toprule"]
        for depth, level in enumerate(levels):
            if depth < len(levels) - 1:  # grouped header with \multicolumn
                cells, start, rules = [], 0, []
                while start < ncol:
                    end = start
                    while end + 1 < ncol and level[end + 1] == level[start]:
                        end += 1
                    cells.append(f"\\multicolumn{{{end - start + 1}}}{{c}}{{{_tex(level[start])}}}")
                    rules.append(f"\\cmidrule(lr){{{start + 2}-{end + 2}}}")
                    start = end + 1
                out.append(" & ".join([""] + cells) + " \\\\")
                out.append(" ".join(rules))
            else:
                out.append(" & ".join([_tex(self.row_header)] + [_tex(x) for x in level]) + " \\\\")
        out.append("\\midrule")
        for row in self.values.index:
            cells = [_tex(self.cell(row, c)) for c in self.values.columns]
            out.append(" & ".join([_tex(str(row))] + cells) + " \\\\")
        out += ["\\bottomrule", "\\end{tabular}", f"\\caption{{{_tex(self.caption)}}}"]
        if self.notes:
            out.append("\\par\\footnotesize " + " ".join(_tex(n) for n in self.notes))
        out.append("\\end{table}")
        return "\n".join(out) + "\n"


_TEX = {"&": "\\&", "%": "\\%", "_": "\\_", "#": "\\#", "θ": "$\\theta$", "–": "--", "→": "$\\to$",
        "†": "$^\\dagger$", "‡": "$^\\ddagger$", "±": "$\\pm$", "Δ": "$\\Delta$"}


def digits_for(metric: str) -> int:
    """Decimals a measure is printed with: losses in nats need three, percentages one."""
    return 3 if metric == "line_loss" else 1


def _tex(s: str) -> str:
    return "".join(_TEX.get(ch, ch) for ch in s)


def write_table(table: Table, name: str, out_dir: Path = TABLES, *, source: str = "",
                regenerate: str = "") -> tuple[Path, Path]:
    """Write ``<name>.md``, ``<name>.tex`` and ``<name>.json`` (provenance), atomically."""
    md = write_text(Path(out_dir) / f"{name}.md", table.to_markdown())
    tex = write_text(Path(out_dir) / f"{name}.tex", table.to_latex())
    write_json(Path(out_dir) / f"{name}.json", {"caption": table.caption, "source": source,
                                                 "regenerate": regenerate})
    return md, tex


# --------------------------------------------------------------------------------------------
# Building blocks

def settings_in(df: pd.DataFrame, roles: tuple[str, ...] = schema.ROLES) -> list[str]:
    """Setting labels present in ``df`` in role order (e.g. FL-4K, PD-4K, PD-16K, Or-16K)."""
    out = []
    for role in roles:
        labels = df.loc[df["eval_role"] == role, "eval_setting"].dropna().unique().tolist()
        if len(labels) > 1:
            raise ValueError(f"role {role} has several settings {labels}: filter the frame first")
        out += labels
    return out


def grid(df: pd.DataFrame, *, rows: str = "checkpoint", line_types: tuple[str, ...] = LINE_TYPES,
         roles: tuple[str, ...] = schema.ROLES, metric: str = "em") -> pd.DataFrame:
    """Rows x (line type, setting) numeric grid, rows in order of first appearance."""
    df = df[df["eval_role"].isin(roles) & df["line_type"].isin(line_types)]
    settings = settings_in(df, roles)
    wide = df.pivot_table(index=rows, columns=["line_type", "eval_setting"], values=metric,
                          aggfunc="first", sort=False)
    order = list(dict.fromkeys(df[rows]))
    cols = pd.MultiIndex.from_tuples([(lt, s) for lt in line_types for s in settings])
    return wide.reindex(index=order, columns=cols).astype(float)


def add_rcb(values: pd.DataFrame) -> pd.DataFrame:
    """Append the repository-context boost RCB = EM(PD-ext) - EM(FL-base) per line type."""
    out = {}
    for lt in dict.fromkeys(values.columns.get_level_values(0)):
        sub = values[lt]
        fl = [c for c in sub.columns if c.startswith("FL-")]
        pd_ext = [c for c in sub.columns if c.startswith("PD-")]
        for c in sub.columns:
            out[(lt, c)] = sub[c]
        if fl and len(pd_ext) >= 1:
            out[(lt, "RCB")] = (sub[pd_ext[-1]] - sub[fl[0]]).round(6)
    return pd.DataFrame(out, index=values.index)


def _notes_marks(df: pd.DataFrame, values: pd.DataFrame, rows: str = "checkpoint"):
    marks, notes, seen = {}, [], {}
    noted = df[df["note"].notna() & df["eval_role"].isin(schema.ROLES)]
    for _, r in noted.iterrows():
        col = (r["line_type"], r["eval_setting"])
        if r[rows] not in values.index or col not in values.columns:
            continue
        if r["note"] not in seen:
            seen[r["note"]] = "†" * (len(seen) + 1)
            notes.append(f"{seen[r['note']]} {r['note']}")
        marks[(r[rows], col)] = seen[r["note"]]
    return marks, notes


# --------------------------------------------------------------------------------------------
# The paper's tables

def table1(df: pd.DataFrame) -> Table:
    """Table 1: models compared on FL-base and PD-ext, with RCB computed."""
    d = df[df["eval_role"].isin(["FL-base", "PD-ext"])]
    values = add_rcb(grid(d, roles=("FL-base", "PD-ext")))
    return Table(values, "Table 1. Exact match (%) on LCA large_context: file-level prompt (FL) vs "
                 "Path Distance context (PD); RCB = PD − FL, computed.", row_header="Model")


def checkpoint_table(df: pd.DataFrame, caption: str, *, rcb: bool = False) -> Table:
    """Table 3 layout: one row per checkpoint, four evaluation settings per line type."""
    values = grid(df)
    if rcb:
        values = add_rcb(values)
    marks, notes = _notes_marks(df, values)
    return Table(values, caption, notes=notes, marks=marks)


def table3(df: pd.DataFrame) -> Table:
    return checkpoint_table(df, "Table 3. Exact match (%) of every 512-step checkpoint (masked loss) "
                                "under the four evaluation settings.")


def table4(df: pd.DataFrame, *, metric: str = "em", caption: str | None = None) -> Table:
    """Table 4: masked and full runs side by side, with the per-pair mean difference."""
    d = df.copy()
    d["row"] = [f"{COMPOSER_LABELS.get(c, c)}" + ("" if m == "original" else f" ({m})") + f", {loss}"
                for c, m, loss in zip(d["composer"], d["mode"], d["loss"])]
    values = grid(d, rows="row", metric=metric)
    diff = {}
    for row in values.index:
        if row.endswith(", masked"):
            full = row[: -len(", masked")] + ", full"
            if full in values.index:
                diff[row[: -len(", masked")] + ", Δ masked − full"] = values.loc[row] - values.loc[full]
    ordered = []
    for row in values.index:
        ordered.append(values.loc[[row]])
        key = row[: -len(", full")] + ", Δ masked − full" if row.endswith(", full") else None
        if key in diff:
            ordered.append(pd.DataFrame([diff[key]], index=[key]))
    values = pd.concat(ordered)
    return Table(values, caption or "Table 4. Masked vs full loss: exact match (%) of the runs trained both ways, "
                 "and their difference.", row_header="Run", digits=digits_for(metric))


def _range_text(lo: float, hi: float, digits: int = 1) -> str:
    return f"{lo:.{digits}f}" if np.isclose(lo, hi) else f"{lo:.{digits}f}–{hi:.{digits}f}"


def other_composer_ranges(df: pd.DataFrame, metric: str = "em") -> pd.DataFrame:
    """Min and max of every setting over the realistic composers other than File-level and
    Path Distance .py (original), all modes, both losses (the 'other composers' row of Table 2)."""
    d = df[df["composer"].notna() & ~df["composer"].isin(["file_level", *UNREALISTIC])]
    d = d[~((d["composer"] == "path_distance_py") & (d["mode"] == "original"))]
    d = d[d["eval_role"].isin(schema.ROLES)]
    d = d.drop_duplicates(subset=["composer", "mode", "loss", "line_type", "eval_setting"])  # Table 3 = Table 4
    g = d.groupby(["line_type", "eval_setting"])[metric]
    return pd.DataFrame({"min": g.min(), "max": g.max(), "n": g.size()})


def table2(df: pd.DataFrame, *, metric: str = "em", caption: str | None = None) -> Table:
    """Table 2, condensed: base models, File-level, Path Distance .py, and the range of the rest."""
    # File-level sequences hold no context, so its masked and full losses are the same objective
    # (and base models, with no repository-level training, keep whatever loss their pretraining used)
    masked = df[(df["loss"].isna() | (df["loss"] == "masked") | (df["composer"] == "file_level")
                 | df["composer"].isna())]
    main = masked[masked["composer"].isna() | masked["composer"].isin(["file_level"]) |
                  ((masked["composer"] == "path_distance_py") & (masked["mode"] == "original"))]
    # a run printed in two tables (Table 3 and Table 4) appears once, under its first name
    run = ["composer", "mode", "theta", "train_tokens", "eval_setting", "line_type"]
    first = main.drop_duplicates(subset=["composer", "mode", "theta", "train_tokens"])["checkpoint"]
    main = main[main["checkpoint"].isin(first)].drop_duplicates(subset=run)
    values = grid(main, metric=metric)
    ranges = other_composer_ranges(df, metric)
    label = "Other realistic composers (range)"
    text = pd.DataFrame(index=list(values.index) + [label], columns=values.columns, dtype=object)
    values = values.reindex(list(values.index) + [label])
    for col in values.columns:
        if col in ranges.index:
            lo, hi = ranges.loc[col, ["min", "max"]]
            text.at[label, col] = _range_text(lo, hi, digits_for(metric))
            values.at[label, col] = hi
    n = int(ranges["n"].max()) if len(ranges) else 0
    marks, notes = _notes_marks(main, values)
    notes.append(f"The range row spans {n} runs: every realistic composer and mode other than "
                 "File-level and Path Distance .py (original), masked and full loss (Tables 3 and 4).")
    return Table(values, caption or "Table 2. Condensed results: exact match (%) on LCA large_context.",
                 notes=notes, marks=marks, text=text, digits=digits_for(metric))
