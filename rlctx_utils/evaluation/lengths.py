"""How much of the window the completion file itself takes: the evidence for base and extended lengths.

Under the thesis protocol the window (``max_context`` tokens) holds the tokenizer's lead ids, then
the composer's context, then the completion file's header and its text above the target line,
tokenized jointly with the target line exactly as :func:`rlctx_utils.evaluation.runner.build_tasks`
does (so the prefix ends before the token that carries the line's newline and indentation). The
context gets what the prefix leaves: ``max_context - prefix_tokens``. The paper picks its base
length (4K) so that most completion files fit with room to spare; this module measures, on a mined
folder's benchmark, the prefix length before every target line and the length of every whole
completion file, and for candidate lengths the share of lines (files) that leave at least
``min_room`` of the window for context.

Run: ``python -m rlctx_utils.evaluation.lengths DIR --tokenizer results/cpu/tokenizer --out CSV``.
The CSV is tidy: one row per (split, category, measure, window, statistic).
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)
WINDOWS = (512, 1024, 2048, 4096, 8192)
MIN_ROOM = 0.25


def line_prefix_tokens(datapoints: Iterable[Any], tokenizer, categories: Sequence[str] = ("inproject",),
                       fmt: str = "opencoder") -> list[dict[str, Any]]:
    """One record per sampled target line: tokens the completion prefix takes in the window.

    ``prefix_tokens`` counts the lead ids and the rendered completion prefix (header included) as the
    thesis protocol tokenizes them; ``file_tokens`` is the whole rendered completion file.
    """
    from ..composers import render_completion
    from .protocols import completion_prefix, continuation_text, target_line
    from .runner import _encode, _lead_ids, split_joint

    lead = len(_lead_ids(tokenizer))
    out = []
    for dp in datapoints:
        whole = lead + len(_encode(tokenizer, render_completion(dp.completion_path, dp.completion_content, fmt)))
        for line, cat in dp.target_lines(tuple(categories)):
            prefix = completion_prefix(dp.completion_content, line, "thesis")
            rendered = render_completion(dp.completion_path, prefix, fmt)
            cont = continuation_text(target_line(dp.completion_content, line), line, "thesis")
            ids, _, _ = split_joint(tokenizer, rendered + cont, len(rendered))
            out.append({"datapoint": dp.id, "repository": dp.repo, "split": dp.split, "category": cat,
                        "line": line, "prefix_tokens": lead + len(ids), "file_tokens": whole})
    return out


def _quantile(values: Sequence[float], q: float) -> float:
    """Linear-interpolation quantile (numpy's default), without numpy."""
    v = sorted(values)
    if not v:
        return math.nan
    pos = (len(v) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (pos - lo)


def length_table(records: Sequence[dict[str, Any]], windows: Sequence[int] = WINDOWS,
                 min_room: float = MIN_ROOM) -> list[dict[str, Any]]:
    """Tidy rows: distribution of prefix (per line) and file (per datapoint) tokens, and per window
    the share of lines/files leaving at least ``min_room`` of it for context."""
    rows: list[dict[str, Any]] = []
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in records:
        groups.setdefault((r["split"], r["category"]), []).append(r)
    for (split, cat), recs in sorted(groups.items()):
        files = {r["datapoint"]: r["file_tokens"] for r in recs}
        for measure, values, unit in (("prefix_tokens", [r["prefix_tokens"] for r in recs], "lines"),
                                      ("file_tokens", list(files.values()), "files")):
            def row(stat: str, value: float, window: int | None = None) -> None:
                rows.append({"split": split, "category": cat, "measure": measure, "unit": unit,
                             "window": window if window is not None else "", "statistic": stat,
                             "value": round(float(value), 4)})
            row("n", len(values))
            row("mean", sum(values) / len(values))
            for q in QUANTILES:
                row(f"p{int(q * 100)}", _quantile(values, q))
            row("max", max(values))
            for w in windows:
                row(f"share_room_ge_{int(min_room * 100)}pct", sum(v <= (1 - min_room) * w for v in values) / len(values), w)
                row("share_fits", sum(v <= w for v in values) / len(values), w)
                row("mean_room_share", sum(max(0.0, 1 - v / w) for v in values) / len(values), w)
    return rows


def write_csv(rows: Sequence[dict[str, Any]], path: str | Path) -> Path:
    import csv
    import io

    from ..io import write_text

    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return write_text(path, buf.getvalue())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m rlctx_utils.evaluation.lengths", description=__doc__.split("\n")[0])
    ap.add_argument("dir", type=Path, help="a mined folder (results/<profile>/data)")
    ap.add_argument("--tokenizer", required=True, help="tokenizer folder, e.g. results/cpu/tokenizer")
    ap.add_argument("--split", default="benchmark")
    ap.add_argument("--categories", default="inproject,infile")
    ap.add_argument("--windows", default=",".join(map(str, WINDOWS)))
    ap.add_argument("--out", type=Path, required=True, help="tidy CSV to write")
    args = ap.parse_args(argv)
    from ..data.errors import DataError
    from ..data.store import iter_datapoints
    from ..tokenizer import load_tokenizer

    import time

    t0 = time.perf_counter()
    try:
        tok = load_tokenizer(args.tokenizer)
        recs = line_prefix_tokens(iter_datapoints(args.dir, args.split), tok, args.categories.split(","))
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not recs:
        print(f"error: no {args.split} target lines in {args.dir}", file=sys.stderr)
        return 2
    windows = [int(w) for w in args.windows.split(",")]
    rows = length_table(recs, windows)
    write_csv(rows, args.out)
    from ..io import read_json, write_sidecar

    manifest = args.dir / "manifest.json"
    write_sidecar(args.out, {"dir": str(args.dir), "tokenizer": str(args.tokenizer), "split": args.split,
                             "categories": args.categories.split(","), "windows": windows,
                             "min_room": MIN_ROOM, "protocol": "thesis", "fmt": "opencoder"},
                  round(time.perf_counter() - t0, 3), target_lines=len(recs),
                  data_config_hash=read_json(manifest).get("config_hash") if manifest.exists() else None)
    for r in rows:
        if r["measure"] == "prefix_tokens" and r["statistic"] == f"share_room_ge_{int(MIN_ROOM * 100)}pct":
            print(f"{r['category']:>10} lines leaving >= {MIN_ROOM:.0%} of a {r['window']:>5}-token window: "
                  f"{r['value']:.1%}")
    print(f"{len(recs)} target lines -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
