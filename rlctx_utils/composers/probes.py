"""Composers that are not "rank files and cut": file-level, duplication, random tokens, mixed, and
the post-steps of the leak probes (SPEC section 4, composers 1, 11-15)."""

from __future__ import annotations

import math

import numpy as np

from .pipeline import Item, Request, Window
from .steps import PostStep, RankContext
from .text import normalize_path
from .types import Candidate, Composition, Piece


def build_file_level(req: Request) -> Composition:
    """File-level: no repository context at all (the sequence is the completion file alone)."""
    return Composition(context="", context_ids=[], pieces=[], composer=req.composer.name, mode=req.mode,
                       stage=req.stage, fmt=req.fmt.name, max_tokens=req.max_tokens, seed=req.ctx.seed,
                       _n_tokens_full=0)


def duplication_candidates(req: Request) -> list[Candidate]:
    """Duplication: the completion file, repeated just enough times to fill the window.

    The fully composed context is ``ceil(max_tokens / n)`` copies of the rendered file (``n`` its
    tokens); the left cut then keeps the last ``max_tokens`` tokens.
    """
    text = req.ctx.target_text
    path = normalize_path(req.ctx.completion_path)
    if not text.strip() or req.max_tokens <= 0:
        return []
    rendered = req.fmt.file(path, text)
    n = len(req.counter.encode_cached((req.fmt.name, path, text), rendered))
    # the number of copies is bounded by the budget in tokens, before any copy is built
    copies = max(1, math.ceil(min(req.max_tokens, MAX_TOKENS) / max(n, 1)))
    return [Candidate(path, text, 0, k) for k in range(copies)]


#: Same bound as :data:`rlctx_utils.composers.registry.MAX_TOKENS` (also for direct callers).
MAX_TOKENS = 1 << 24


def build_random_tokens(req: Request) -> Composition:
    """Random tokens: ``max_tokens`` ordinary token ids drawn uniformly and independently."""
    plain = req.counter.plain_ids()
    n = max(req.max_tokens, 0)
    rng = np.random.default_rng(req.ctx.int_seed("random_tokens"))
    ids = plain[rng.integers(0, len(plain), size=n)].tolist() if n and len(plain) else []
    text = req.counter.decode(ids)
    return Composition(context=text, context_ids=ids, pieces=[Piece("", text, (), len(ids))],
                       composer=req.composer.name, mode=req.mode, stage=req.stage, fmt=req.fmt.name,
                       max_tokens=req.max_tokens, seed=req.ctx.seed, _n_tokens_full=len(ids))


#: The composers Mixed draws from (SPEC section 4, composer 11); Duplication only in training.
MIXED_POOL: tuple[str, ...] = ("file_level", "path_distance_py", "half_memory_py", "declarations_py",
                               "text_files", "random_files", "duplication")


def build_mixed(req: Request) -> Composition:
    """Mixed: one composer per datapoint, drawn from the seed (never Duplication in evaluation).

    The draw depends on the seed only, so callers give each datapoint its own seed (training:
    ``derive_seed(seed, datapoint id)``; evaluation: :func:`rlctx_utils.evaluation.runner.composer_seed`)."""
    from .registry import COMPOSERS, run_request  # registry imports this module

    pool = [n for n in MIXED_POOL if not (req.stage == "eval" and n == "duplication")]
    drawn = req.ctx.rng("mixed").choice(pool)
    sub = Request(COMPOSERS[drawn], req.snapshot,
                  RankContext(drawn, req.ctx.completion_path, req.ctx.completion_text, req.ctx.stage,
                              req.ctx.seed, req.ctx.target_text, {"sees_target": req.ctx.extra.get("sees_target")}),
                  "original", req.max_tokens, req.fmt, req.counter, req.repo_name, req.reference)
    out = run_request(sub)
    out.composer = req.composer.name
    out.info["drawn"] = drawn
    return out


# -- leak probes ---------------------------------------------------------------------------------

def _content_lines(window: Window, ctx: RankContext) -> tuple[list[str], list[int]]:
    """Lines of the window text and the indices of those that are file content (not headers)."""
    fmt = ctx.extra["fmt"]
    lines = window.text.split("\n")
    repo_head = fmt.repo_template.split("{repo}")[0] if fmt.repo_template else None

    def is_header(ln: str) -> bool:
        if fmt.file_sep and fmt.file_sep in ln:
            return True
        if repo_head and ln.startswith(repo_head):
            return True
        return not fmt.file_sep and ln.endswith("METASEP")

    eligible = [i for i, ln in enumerate(lines[:-1] if lines and lines[-1] == "" else lines)
                if not is_header(ln)]
    return lines, eligible


def _rewrite(window: Window, ctx: RankContext, lines: list[str]) -> Window:
    """The window with its lines replaced by ``lines``, re-encoded.

    Where pieces start with a single added token (``<file_sep>``) only the pieces whose lines
    changed are encoded again (exact, see tokens.py); otherwise the whole text is.
    """
    counter, fmt = ctx.extra["counter"], ctx.extra["fmt"]
    parts = ([window.header] if window.header else []) + list(window.items)
    if fmt.file_sep and counter.segment_safe(fmt.file_sep) and all(p.rendered.endswith("\n") for p in parts):
        new_parts, start = [], 0
        for part in parts:
            n = part.rendered.count("\n")
            new_lines = lines[start:start + n]
            start += n
            if new_lines == part.rendered.split("\n")[:-1]:
                new_parts.append(part)
            else:
                text = "\n".join(new_lines) + "\n"
                new_parts.append(Item(part.piece, text, counter.encode(text)))
        header = new_parts[0] if window.header else None
        return Window(header, new_parts[1:] if window.header else new_parts)
    text = "\n".join(lines)
    return Window(window.header, window.items, text_override=text, ids_override=counter.encode(text))


def leak_segments(n_segments: int = 5) -> PostStep:
    """Leak: the target file, split at random newlines into ``n_segments`` segments, replaces
    context lines at random non-overlapping positions (segments in random order), line for line,
    so the token count stays about the same."""

    def fn(window: Window, ctx: RankContext) -> Window:
        target = ctx.target_text.rstrip("\n").split("\n") if ctx.target_text.strip() else []
        lines, eligible = _content_lines(window, ctx)
        if not target or not eligible:
            return window
        rng = ctx.rng("leak")
        k = min(n_segments, len(target))
        cuts = sorted(rng.sample(range(1, len(target)), k - 1))
        bounds = [0, *cuts, len(target)]
        segs = [target[a:b] for a, b in zip(bounds, bounds[1:])]
        rng.shuffle(segs)
        free = len(eligible) - sum(map(len, segs))
        if free < 0:  # less context than target: the segments overwrite all of it, in order
            flat = [ln for s in segs for ln in s][:len(eligible)]
            for i, ln in zip(eligible, flat):
                lines[i] = ln
            ctx.extra["leak_positions"] = [0]
            return _rewrite(window, ctx, lines)
        slots = sorted(rng.sample(range(free + len(segs)), len(segs)))
        start_positions = []
        used = 0
        for j, (slot, seg) in enumerate(zip(slots, segs)):
            start = slot - j + used
            start_positions.append(start)
            for t, ln in enumerate(seg):
                lines[eligible[start + t]] = ln
            used += len(seg)
        ctx.extra["leak_positions"] = start_positions
        return _rewrite(window, ctx, lines)

    return PostStep(f"leak_segments({n_segments})", fn)


def masked_leak(seg_lines: int = 5, p_noise: float = 0.15) -> PostStep:
    """Masked Leak: the target cut into ``seg_lines``-line segments that share one line with each
    neighbour (stride ``seg_lines - 1``), each placed at an independent random position; then every
    context token except the format's special tokens is replaced, with probability ``p_noise``, by
    a different ordinary token."""

    def fn(window: Window, ctx: RankContext) -> Window:
        target = ctx.target_text.rstrip("\n").split("\n") if ctx.target_text.strip() else []
        lines, eligible = _content_lines(window, ctx)
        rng = ctx.rng("masked_leak")
        if target and eligible:
            stride = max(seg_lines - 1, 1)
            for a in range(0, max(len(target) - 1, 1), stride):
                seg = target[a:a + seg_lines]
                span = min(len(seg), len(eligible))
                start = rng.randrange(len(eligible) - span + 1)
                for t in range(span):
                    lines[eligible[start + t]] = seg[t]
        text = "\n".join(lines)
        counter = ctx.extra["counter"]
        ids = np.asarray(counter.encode(text), dtype=np.int64)
        plain = counter.plain_ids()
        if len(ids) and len(plain) > 1:
            nrng = np.random.default_rng(ctx.int_seed("masked_leak_noise"))
            is_plain = np.isin(ids, plain)
            hit = (nrng.random(len(ids)) < p_noise) & is_plain
            # a different ordinary token: shift the drawn index by 1..len(plain)-1 from the original
            pos = np.searchsorted(plain, ids[hit])
            shift = nrng.integers(1, len(plain), size=int(hit.sum()))
            ids[hit] = plain[(pos + shift) % len(plain)]
        id_list = ids.tolist()
        return Window(window.header, window.items, text_override=counter.decode(id_list),
                      ids_override=id_list)

    return PostStep(f"masked_leak({seg_lines}, {p_noise})", fn)
