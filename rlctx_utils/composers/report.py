"""Tables and the modes figure of the composers notebook (``notebooks/01_composers.py``).

- :func:`compose_all`: every composer in every mode on one datapoint.
- :func:`summary_table`: one row per (composer, mode): pieces, tokens, first and last piece.
- :func:`ranking_table`: the ranked candidates of one composition, most relevant first.
- :func:`plot_modes`: the talk's slide, drawn from the real ranks: the pieces ``N … 1`` of each
  mode laid out in token space, with the budget cut-off and the completion file on the right.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from .formats import render_file
from .text import normalize_path, normalize_text
from .registry import COMPOSERS, compose, get_composer
from .types import Composition

#: Colours of the paper's figures: File-level blue, Path Distance orange.
FILE_LEVEL_BLUE = "#0072B2"
PATH_DISTANCE_ORANGE = "#D55E00"


def compose_all(snapshot: dict[str, str | None], completion_path: str, completion_text: str, *,
                tokenizer: Any, max_tokens: int, seed: int = 0, names: list[str] | None = None,
                **kw: Any) -> dict[tuple[str, str], Composition]:
    """``{(composer, mode): Composition}`` for every registered composer and each of its modes."""
    out = {}
    for name in names or list(COMPOSERS):
        for mode in get_composer(name).modes:
            out[(name, mode)] = compose(name, snapshot, completion_path, completion_text, mode=mode,
                                        tokenizer=tokenizer, max_tokens=max_tokens, seed=seed, **kw)
    return out


def summary_table(comps: dict[tuple[str, str], Composition]) -> pd.DataFrame:
    rows = []
    for (name, mode), c in comps.items():
        rows.append({
            "composer": name, "mode": mode, "family": get_composer(name).family,
            "candidates": len(c.ranked), "pieces": len(c.pieces), "n_tokens": c.n_tokens,
            "n_tokens_full": c.n_tokens_full, "truncated": c.truncated, "leaks_target": c.leaks_target,
            "first_piece": c.pieces[0].path if c.pieces else "", "last_piece": c.pieces[-1].path if c.pieces else "",
            "drawn": c.info.get("drawn", ""),
        })
    return pd.DataFrame(rows)


def ranking_table(c: Composition, top: int = 15) -> pd.DataFrame:
    """Candidates by relevance (rank 1 = most relevant), with key values and whether they made it."""
    keys = [k.name for k in get_composer(c.info.get("drawn") or c.composer).rank]
    kept = {p.path: p for p in c.pieces}
    rows = []
    for r, (path, values) in enumerate(reversed(c.ranked), start=1):
        row = {"rank": r, "path": path, **dict(zip(keys, values))}
        row["in_window"] = path in kept
        row["tokens_in_window"] = kept[path].n_tokens if path in kept else 0
        rows.append(row)
        if len(rows) >= top:
            break
    return pd.DataFrame(rows)


def head_tail(c: Composition, n_chars: int = 300) -> tuple[str, str]:
    return c.context[:n_chars], c.context[-n_chars:]


def _layout(comp: Composition, ntok, extra: int) -> list[tuple[int, int, str, bool]]:
    """(rank, n_tokens, path, in_window) from left to right: a few of the pieces that the cut
    dropped (those just left of the window in the full composition), then the window's pieces."""
    ranked = [p for p, _ in comp.ranked]
    rank_of = {p: len(ranked) - i for i, p in enumerate(ranked)}  # 1 = most relevant
    kept = [(rank_of[p.path], p.n_tokens, p.path, True) for p in comp.pieces]
    full_order = ranked[::-1] if comp.mode == "irrelevant" else ranked
    kept_paths = {p.path for p in comp.pieces}
    first = min((full_order.index(p) for p in kept_paths), default=len(full_order))
    left: list[tuple[int, int, str, bool]] = []
    cut = next((p for p in comp.pieces if p.cut), None)
    if cut is not None:  # the part of the cut piece that fell outside the window
        left.append((rank_of[cut.path], max(ntok(cut.path) - cut.n_tokens, 0), cut.path, False))
    for p in reversed(full_order[:first]):
        n = ntok(p)
        left.append((rank_of[p], n, p, False))
        extra -= n
        if extra <= 0:
            break
    return left[::-1] + kept


def plot_modes(snapshot: dict[str, str | None], completion_path: str, completion_text: str, *,
               tokenizer: Any, max_tokens: int, composer: str = "path_distance_py", seed: int = 0,
               completion_tokens: int | None = None):
    """Three rows (original, reversed, irrelevant): pieces labelled with their real rank.

    x is the token position relative to the start of the completion file; the shaded area left of
    the dashed line is what the budget cuts away.
    """
    import matplotlib.pyplot as plt
    from matplotlib import colormaps

    from .tokens import counter_for

    counter = counter_for(tokenizer)
    comps = {m: compose(composer, snapshot, completion_path, completion_text, mode=m, tokenizer=tokenizer,
                        max_tokens=max_tokens, seed=seed) for m in ("original", "reversed", "irrelevant")}
    texts = {normalize_path(p): normalize_text(t) for p, t in snapshot.items() if t is not None}

    def ntok(path: str) -> int:
        return len(counter.encode(render_file(path, texts.get(path, ""))))

    n_ranked = len(comps["original"].ranked)
    cmap = colormaps["Oranges"]
    comp_tokens = completion_tokens or len(counter.encode(completion_text))
    fig, ax = plt.subplots(figsize=(11, 3.6))
    labels = {"original": "original\n(… 3 2 1 | completion)", "reversed": "reversed\n(1 2 3 … | completion)",
              "irrelevant": "irrelevant\n(… N-1 N | completion)"}
    for row, mode in enumerate(("original", "reversed", "irrelevant")):
        y = 2 - row
        pieces = _layout(comps[mode], ntok, extra=max_tokens // 2)
        x = 0
        cut_path = next((p.path for p in comps[mode].pieces if p.cut), None)
        for rank, n, path, inside in reversed(pieces):
            x -= n
            if not inside and path == cut_path and mode == "reversed":
                x += n  # in reversed mode the cut piece sits at the right; draw its lost part apart
                continue
            shade = 0.35 + 0.6 * (1 - (rank - 1) / max(n_ranked - 1, 1))
            colour = cmap(shade) if inside else "#d9d9d9"
            ax.barh(y, n, left=x, height=0.62, color=colour, edgecolor="white", linewidth=0.8)
            if n > max_tokens * 0.035:
                ax.text(x + n / 2, y, str(rank), ha="center", va="center", fontsize=8,
                        color="white" if inside and shade > 0.6 else "black")
        ax.barh(y, comp_tokens, left=0, height=0.62, color=FILE_LEVEL_BLUE)
    ax.text(comp_tokens / 2, 2.45, "completion", ha="center", va="bottom", fontsize=8, color=FILE_LEVEL_BLUE)
    ax.axvline(-max_tokens, color="black", ls="--", lw=1)
    ax.text(-max_tokens, 2.5, f" cut-off: {max_tokens:,} tokens", ha="left", va="bottom", fontsize=8)
    ax.axvspan(ax.get_xlim()[0], -max_tokens, color="#f0f0f0", zorder=0)
    ax.set_yticks([2, 1, 0], [labels[m] for m in ("original", "reversed", "irrelevant")], fontsize=8)
    ax.set_xlabel("token position relative to the completion file")
    ax.set_title(f"{composer}: the three modes on {completion_path} (numbers = real rank, 1 = most relevant; "
                 f"{n_ranked} candidates)", fontsize=9)
    ax.set_ylim(-0.6, 2.9)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    fig.tight_layout()
    return fig, comps
