"""The composer engine: a declared chain of steps turned into a budget-cut context.

A :class:`Composer` is a declaration (which files, how to split, how to rank, how to reduce, what
to do after the cut). :func:`run_composer` executes it for one datapoint:

1. **select**: normalize paths and texts, drop empty and non-text files and the completion file's
   own path, keep the files the filter accepts; **split** them into chunks.
2. **rank**: compute every key for every candidate; sort by (key 1, key 2, ..., path, chunk) so
   that the least relevant candidate comes first and the most relevant last.
3. **order** (mode, SPEC section 4): ``original`` keeps that order (… 3 2 1 | completion);
   ``irrelevant`` reverses it before the cut (… N-2 N-1 N); ``reversed`` cuts like ``original``
   and then reverses the pieces that made it (1 2 3 … | completion).
4. **reduce + render + cut**: walking from the right end, reduce each piece (declarations, half
   memory, …), drop it if nothing is left, render it in the format, count its tokens, and stop as
   soon as the budget is full. The result equals the definition "tokenize the fully composed
   context and keep its last ``max_tokens`` tokens" (``reference=True`` computes exactly that, the
   slow way; the tests compare both).
5. **post-process** the window (leak probes), cutting again to the budget if it grew.
"""

from __future__ import annotations

import bisect
import dataclasses
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from .formats import Format, get_format
from .steps import FileFilter, PostStep, RankContext, RankKey, Splitter, Transform, all_text, whole_file
from .text import normalize_path, normalize_text
from .tokens import TokenCounter
from .types import Candidate, Composition, ComposerError, Piece

#: The modes of SPEC section 4.
MODES: tuple[str, ...] = ("original", "reversed", "irrelevant")
STAGES: tuple[str, ...] = ("train", "eval")

#: Slack (tokens) kept beyond the cut when the format forces encoding the joined tail.
JOIN_MARGIN = 64


@dataclass(frozen=True)
class Composer:
    """A context composer, declared as a chain of steps (see the module docstring).

    ``build`` replaces the whole chain for composers that are not "rank files and cut" (file-level,
    random tokens, mixed); ``candidates`` replaces steps 1-2 (duplication repeats the completion
    file). ``leaks`` marks the probes that may see the target (SPEC composers 13-15).
    """

    name: str
    description: str
    select: FileFilter = all_text
    split: Splitter = whole_file
    rank: tuple[RankKey, ...] = ()
    reduce: tuple[Transform, ...] = ()
    post: tuple[PostStep, ...] = ()
    modes: tuple[str, ...] = ("original",)
    leaks: bool = False
    family: str = "paper"
    candidates: Callable[["Request"], list[Candidate]] | None = None
    build: Callable[["Request"], Composition] | None = None

    def derive(self, name: str, description: str | None = None, **changes: Any) -> "Composer":
        """A new composer that differs in the given fields (``pd.derive("x", select=...)``)."""
        return dataclasses.replace(self, name=name, description=description or self.description,
                                   **changes)

    def info(self) -> dict[str, Any]:
        """A plain description of the chain, for tables and notebooks."""
        return {
            "name": self.name, "description": self.description, "family": self.family,
            "select": self.select.name, "split": self.split.name,
            "rank": [f"{k.name} ({'higher' if k.higher_is_relevant else 'lower'} is more relevant)"
                     for k in self.rank],
            "reduce": [t.name for t in self.reduce], "post": [p.name for p in self.post],
            "modes": list(self.modes), "leaks": self.leaks,
            "custom": (self.build or self.candidates).__name__ if (self.build or self.candidates) else None,
        }


@dataclass
class Request:
    """One call: the datapoint, the budget and the tools (tokenizer counter, format)."""

    composer: Composer
    snapshot: Mapping[str, str | bytes | None]
    ctx: RankContext
    mode: str
    max_tokens: int
    fmt: Format
    counter: TokenCounter
    repo_name: str | None
    reference: bool = False

    @property
    def stage(self) -> str:
        return self.ctx.stage


@dataclass
class Item:
    """A piece inside the window: its metadata, its kept rendered text and kept token ids."""

    piece: Piece
    rendered: str
    ids: list[int]


@dataclass
class Window:
    """The cut context: the optional repository header, then the pieces in context order."""

    header: Item | None
    items: list[Item]
    text_override: str | None = None
    ids_override: list[int] | None = None

    @property
    def ids(self) -> list[int]:
        if self.ids_override is not None:
            return self.ids_override
        out = list(self.header.ids) if self.header else []
        for it in self.items:
            out.extend(it.ids)
        return out

    @property
    def text(self) -> str:
        if self.text_override is not None:
            return self.text_override
        head = self.header.rendered if self.header else ""
        return head + "".join(it.rendered for it in self.items)


# -- step 1-2: candidates and ranking ------------------------------------------------------------

def snapshot_candidates(req: Request) -> list[Candidate]:
    """Normalized, non-empty, selected files of the snapshot, split into chunks."""
    comp = req.composer
    target = normalize_path(req.ctx.completion_path)
    seen: set[str] = set()
    out: list[Candidate] = []
    for index, (raw_path, raw_text) in enumerate(_items(req.snapshot)):
        if raw_text is None:
            continue
        path = normalize_path(str(raw_path))
        if not path or path in seen or path == target:
            continue
        seen.add(path)
        text = normalize_text(raw_text)
        if not text.strip() or not comp.select(path, text):
            continue
        for k, chunk in enumerate(comp.split.fn(path, text)):
            if chunk.strip():
                out.append(Candidate(path, chunk, index, k))
    return out


def _items(snapshot: Any):
    if isinstance(snapshot, Mapping):
        return snapshot.items()
    return list(snapshot)  # an iterable of (path, text) pairs; duplicated paths: the first wins


def rank_candidates(req: Request, cands: list[Candidate]) -> list[tuple[Candidate, tuple]]:
    """(candidate, key values) sorted from least to most relevant."""
    keys = req.composer.rank
    rows = []
    for c in cands:
        values = tuple(k.fn(req.ctx, c) for k in keys)
        sort_key = tuple(v if k.higher_is_relevant else -v for k, v in zip(keys, values))
        rows.append((sort_key + (c.path, c.chunk), c, values))
    rows.sort(key=lambda r: r[0])
    return [(c, v) for _, c, v in rows]


# -- steps 3-4: reduce, render, cut --------------------------------------------------------------

def _reduced(req: Request, cand: Candidate) -> str:
    text = cand.text
    for t in req.composer.reduce:
        text = t.fn(text, req.ctx, cand)
        if not text.strip():
            return ""
    return text


def _render(req: Request, cand: Candidate, content: str) -> str:
    """The piece as written in the sequence: the format's rendering, then any render-level rewrite."""
    rendered = req.fmt.file(cand.path, content)
    for t in req.composer.reduce:
        if t.render is not None:
            rendered = t.render(rendered, req.fmt.header(cand.path), req.ctx, cand)
    return rendered


def _renders_pieces(comp: Composer) -> bool:
    return any(t.render is not None for t in comp.reduce)


def _cacheable(req: Request) -> bool:
    return not any(t.seeded for t in req.composer.reduce)


def _piece_ids(req: Request, cand: Candidate, content: str, rendered: str, need: int) -> tuple[list[int], bool]:
    """Ids of a rendered piece (or of its end when only the end can fit); (ids, complete)."""
    counter = req.counter
    max_len = _max_token_chars(counter)
    if len(rendered) > need * max_len and max_len > 0:  # cannot fit: only its end matters
        return counter.encode_tail(rendered, need)
    if _cacheable(req):
        return counter.encode_cached((req.fmt.name, cand.path, content), rendered), True
    return counter.encode(rendered), True


def _max_token_chars(counter: TokenCounter) -> int:
    val = getattr(counter, "_max_token_chars", None)
    if val is None:
        try:
            vocab = counter.tokenizer.get_vocab()
            val = max((len(t) for t in vocab), default=0)
        except Exception:  # no vocabulary to look at: never skip encoding
            val = 0
        counter._max_token_chars = val  # type: ignore[attr-defined]
    return val


def _order(ranked: list, mode: str) -> list:
    return ranked[::-1] if mode == "irrelevant" else ranked


def _rendered_from_right(req: Request, seq: list[tuple[Candidate, tuple]]
                         ) -> Iterator[tuple[int, Candidate, tuple, str, str]]:
    """Non-empty pieces from the most relevant (rightmost) leftwards: (index, candidate, rank key,
    reduced content, rendered text). Both budget paths walk the context this way."""
    for idx in range(len(seq) - 1, -1, -1):
        cand, values = seq[idx]
        content = _reduced(req, cand)
        if content:
            yield idx, cand, values, content, _render(req, cand, content)


def _nonempty_left_of(req: Request, seq: list[tuple[Candidate, tuple]], idx: int) -> bool:
    """Whether any piece left of position ``idx`` still has content (i.e. the window dropped some)."""
    return any(_reduced(req, c) for c, _ in seq[:idx])


def window_piecewise(req: Request, seq: list[tuple[Candidate, tuple]]) -> tuple[Window, bool, Callable[[], int]]:
    """Fast path for formats whose pieces start with a single added token (exact, see tokens.py)."""
    remaining = req.max_tokens
    kept: list[Item] = []
    cut = False
    last = len(seq)
    if remaining > 0:
        for last, cand, values, content, rendered in _rendered_from_right(req, seq):
            ids, complete = _piece_ids(req, cand, content, rendered, remaining)
            if len(ids) > remaining or not complete:
                ids = ids[-remaining:]
                kept.append(Item(Piece(cand.path, content, values, len(ids), True),
                                 req.counter.decode(ids), ids))
                cut = True
                remaining = 0
                break
            kept.append(Item(Piece(cand.path, content, values, len(ids)), rendered, ids))
            remaining -= len(ids)
            if remaining <= 0:
                break
    kept.reverse()
    header_text = req.fmt.repo(req.repo_name) if kept else ""
    header = None
    more = _nonempty_left_of(req, seq, last)
    if header_text and not cut:
        h_ids = req.counter.encode_cached(("header", header_text), header_text)
        if remaining > 0:
            take = h_ids[-remaining:]
            header = Item(Piece("", header_text, (), len(take), len(take) < len(h_ids)),
                          header_text if len(take) == len(h_ids) else req.counter.decode(take), take)
            cut = len(take) < len(h_ids)
        else:
            more = True
    truncated = cut or more
    return Window(header, kept), truncated, lambda: full_token_count(req, seq)


def full_token_count(req: Request, seq: list[tuple[Candidate, tuple]]) -> int:
    """Tokens of the fully composed context (every piece, the header), piece by piece."""
    total = 0
    n_pieces = 0
    for cand, _ in seq:
        content = _reduced(req, cand)
        if content:
            rendered = _render(req, cand, content)
            if _cacheable(req):
                total += len(req.counter.encode_cached((req.fmt.name, cand.path, content), rendered))
            else:
                total += len(req.counter.encode(rendered))
            n_pieces += 1
    header_text = req.fmt.repo(req.repo_name) if n_pieces else ""
    return total + len(req.counter.encode(header_text))


def window_joined(req: Request, seq: list[tuple[Candidate, tuple]], everything: bool) -> tuple[Window, bool, Callable[[], int]]:
    """Encode the joined tail of the context in one go (any format; ``everything``: the definition).

    With ``everything`` every piece and the header are joined: this is the budget definition itself.
    Otherwise pieces are taken from the right until their separate counts exceed the budget by a
    margin, so that tokens merging across the leftmost boundary lie far left of the cut.
    """
    chosen: list[tuple[Candidate, tuple, str, str]] = []
    est = 0
    last = len(seq)
    for last, cand, values, content, rendered in _rendered_from_right(req, seq):
        chosen.append((cand, values, content, rendered))
        if not everything:
            est += len(_piece_ids(req, cand, content, rendered, req.max_tokens + JOIN_MARGIN)[0])
            if est >= req.max_tokens + JOIN_MARGIN + len(chosen):
                break
    rest_nonempty = _nonempty_left_of(req, seq, last)
    chosen.reverse()
    all_in = not rest_nonempty
    header_text = req.fmt.repo(req.repo_name) if (chosen and all_in) else ""
    parts = [header_text] + [r for *_, r in chosen]
    starts = []
    pos = 0
    for p in parts:
        starts.append(pos)
        pos += len(p)
    joined = "".join(parts)
    ids, offs = req.counter.encode_offsets(joined)
    n_full = len(ids)
    keep_from = max(0, len(ids) - req.max_tokens)
    ids, offs = ids[keep_from:], offs[keep_from:]
    # attribute kept tokens to parts by their start offset
    owner = [bisect.bisect_right(starts, o) - 1 for o in offs]
    by_part: dict[int, list[int]] = {}
    first_off: dict[int, int] = {}
    for tok, o, k in zip(ids, offs, owner):
        by_part.setdefault(k, []).append(tok)
        first_off.setdefault(k, o)
    header = None
    items: list[Item] = []
    for k, part in enumerate(parts):
        if k not in by_part:
            continue
        is_cut = k == owner[0] and keep_from > 0 and first_off[k] > starts[k]
        # a cut part is decoded from its kept ids, as in the piecewise path
        text = req.counter.decode(by_part[k]) if is_cut else part
        if k == 0:
            header = Item(Piece("", header_text, (), len(by_part[k]), is_cut), text, by_part[k])
        else:
            cand, values, content, _ = chosen[k - 1]
            items.append(Item(Piece(cand.path, content, values, len(by_part[k]), is_cut), text, by_part[k]))
    truncated = rest_nonempty or keep_from > 0
    if all_in:
        return Window(header, items), truncated, lambda: n_full
    return Window(header, items), truncated, lambda: full_token_count_joined(req, seq)


def full_token_count_joined(req: Request, seq: list[tuple[Candidate, tuple]]) -> int:
    parts = []
    for cand, _ in seq:
        content = _reduced(req, cand)
        if content:
            parts.append(_render(req, cand, content))
    header = req.fmt.repo(req.repo_name) if parts else ""
    return len(req.counter.encode(header + "".join(parts)))


# -- the whole chain -----------------------------------------------------------------------------

def run_composer(req: Request) -> Composition:
    """Execute a declared composer for one datapoint (see the module docstring)."""
    comp = req.composer
    if comp.build is not None:
        return comp.build(req)
    cands = comp.candidates(req) if comp.candidates else snapshot_candidates(req)
    ranked = rank_candidates(req, cands) if comp.rank else [(c, ()) for c in cands]
    seq = _order(ranked, req.mode)
    req.ctx.extra["position"] = {(c.path, c.chunk): i for i, (c, _) in enumerate(seq)}
    req.ctx.extra["n_ranked"] = len(seq)
    if req.max_tokens <= 0:
        window, truncated, full = Window(None, []), bool(seq), (lambda: full_token_count(req, seq))
    elif req.reference:
        window, truncated, full = window_joined(req, seq, everything=True)
    elif req.fmt.file_sep and req.counter.segment_safe(req.fmt.file_sep) and not _renders_pieces(comp):
        window, truncated, full = window_piecewise(req, seq)
    else:
        window, truncated, full = window_joined(req, seq, everything=False)
    if req.mode == "reversed":
        window.items.reverse()
    for step in comp.post:
        window = step.fn(window, req.ctx)
    ids = window.ids
    text = window.text
    if len(ids) > req.max_tokens:  # a post-step grew the window: cut again from the left
        ids = ids[len(ids) - req.max_tokens:] if req.max_tokens > 0 else []
        text = req.counter.decode(ids)
    pieces = [it.piece for it in window.items]
    return Composition(
        context=text, context_ids=list(ids), pieces=pieces, composer=comp.name, mode=req.mode,
        stage=req.stage, fmt=req.fmt.name, max_tokens=req.max_tokens, seed=req.ctx.seed,
        truncated=truncated, leaks_target=comp.leaks and req.ctx.extra.get("sees_target", False),
        ranked=[(c.path, v) for c, v in ranked],
        info={"header_tokens": len(window.header.ids) if window.header else 0},
        _full_counter=full,
    )
