"""Every composer of the study, declared, and the one entry point :func:`compose`.

Each declaration below reads as the row of SPEC section 4 it implements. A new composer is one
``register_composer(...)`` call, usually deriving from an existing one::

    from rlctx_utils.composers import COMPOSERS, register_composer, steps
    register_composer(COMPOSERS["path_distance_py"].derive(
        "path_distance_no_tests", "Path Distance .py without test files",
        select=steps.py_files & ~steps.under("tests/")))
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import probes
from .formats import get_format
from .pipeline import MODES, STAGES, Composer, Request, run_composer
from .steps import (RankContext, RankKey, all_text, by_imported, by_length, by_lines_iou, by_path_distance,
                    by_random, by_snapshot_order, by_text_group, drop_lines, keep_declarations,
                    keep_docs_comments, lca_declarations_mask, py_files, strip_docs_comments_imports,
                    text_files)
from .text import normalize_path, normalize_text
from .tokens import counter_for
from .types import Composition, ComposerError, UnknownComposerError

ALL_MODES = MODES
#: The largest budget a composition may have (2**24 tokens, 1,024 times the paper's largest window):
#: a composer that fills its window (Duplication, Random tokens) does work and holds memory in
#: proportion to the budget, so a budget meant as "unlimited" would exhaust the machine.
MAX_TOKENS = 1 << 24

# -- the 15 composers of the paper ---------------------------------------------------------------

FILE_LEVEL = Composer("file_level", "No repository context: the completion file alone.",
                      build=probes.build_file_level)
PATH_DISTANCE_PY = Composer(
    "path_distance_py", ".py files, nearest path last; ties: higher lines IoU later.",
    select=py_files, rank=(by_path_distance, by_lines_iou), modes=ALL_MODES)
LINES_IOU_PY = Composer("lines_iou_py", ".py files ranked by lines IoU alone, highest last.",
                        select=py_files, rank=(by_lines_iou,), modes=ALL_MODES)
CODE_CHUNKS_PY = PATH_DISTANCE_PY.derive(
    "code_chunks_py", "Path Distance .py without docstrings, comments and imports.",
    reduce=(strip_docs_comments_imports,))
HALF_MEMORY_PY = PATH_DISTANCE_PY.derive(
    "half_memory_py", "Path Distance .py, each line of the context (file headers included) dropped with "
    "probability 0.5 (window still filled).",
    reduce=(drop_lines(0.5),))
DECLARATIONS_PY = PATH_DISTANCE_PY.derive(
    "declarations_py", "Path Distance .py reduced to function and class declarations.",
    reduce=(keep_declarations,))
TEXT_CHUNKS_PY = PATH_DISTANCE_PY.derive(
    "text_chunks_py", "Path Distance .py reduced to docstrings and comments.",
    reduce=(keep_docs_comments,))
TEXT_FILES = Composer(
    "text_files", "Text files; groups [.json] < [.yaml .yml] < [.sh] < [.md .txt .rst], nearest last in a group.",
    select=text_files, rank=(by_text_group, by_path_distance), modes=ALL_MODES)
RANDOM_FILES = Composer("random_files", "All files, random order.", select=all_text, rank=(by_random,))
RANDOM_PY = RANDOM_FILES.derive("random_py", ".py files, random order.", select=py_files)
MIXED = Composer("mixed", "One composer per datapoint, drawn from: " + ", ".join(probes.MIXED_POOL)
                 + " (never duplication in evaluation).", build=probes.build_mixed)
RANDOM_TOKENS = Composer("random_tokens", "Uniform, independent random non-special tokens.",
                         build=probes.build_random_tokens, family="probe")
DUPLICATION = Composer("duplication", "The completion file repeated until the window is full.",
                       candidates=probes.duplication_candidates, leaks=True, family="probe")
LEAK = PATH_DISTANCE_PY.derive(
    "leak", "Path Distance .py with 5 segments of the completion file replacing context lines.",
    post=(probes.leak_segments(5),), leaks=True, family="probe")
MASKED_LEAK = PATH_DISTANCE_PY.derive(
    "masked_leak", "Path Distance .py with overlapping 5-line target segments, then 15% token noise.",
    post=(probes.masked_leak(5, 0.15),), leaks=True, family="probe", modes=("original",))

# -- the LCA-baselines composers that differ from the above --------------------------------------
# Restricted to .py files like ours, so each differs from its counterpart only by the named rule.

by_snapshot_later = RankKey("snapshot_index", lambda ctx, c: c.index, True)

LCA_PATH_DISTANCE = Composer(
    "lca_path_distance", "LCA baselines: .py files by path distance, nearest last; ties by snapshot "
    "order (earlier later), no IoU.", select=py_files, rank=(by_path_distance, by_snapshot_order),
    family="lca")
LCA_FILE_LENGTH = Composer(
    "lca_file_length", "LCA baselines: .py files by length, longest first, shortest last.",
    select=py_files, rank=(by_length, by_snapshot_order), family="lca")
LCA_IMPORTS_FIRST = Composer(
    "lca_imports_first", "LCA baselines: files the completion file does not import, then those it "
    "imports (last), each group in snapshot order.", select=py_files,
    rank=(by_imported, by_snapshot_later), family="lca")
LCA_HALF_MEMORY_PATH_DISTANCE = LCA_PATH_DISTANCE.derive(
    "lca_half_memory_path_distance", "LCA baselines: their path distance with half of the content lines "
    "dropped (paths kept, as in their code).", reduce=(drop_lines(0.5, protect_headers=True),))
LCA_DECLARATIONS_MASK_HALF = LCA_PATH_DISTANCE.derive(
    "lca_declarations_mask_half", "LCA baselines: their path distance; the farther half of the files "
    "reduced to def/class lines (each followed by 'pass').", reduce=(lca_declarations_mask(0.5),))
LCA_DECLARATIONS_MASK_ONE = LCA_PATH_DISTANCE.derive(
    "lca_declarations_mask_one", "LCA baselines: their path distance; every file but the nearest "
    "reduced to def/class lines.", reduce=(lca_declarations_mask(None),))

COMPOSERS: dict[str, Composer] = {}


def register_composer(composer: Composer, *, replace: bool = False) -> Composer:
    """Add a composer to the registry (``replace=True`` to overwrite an existing name)."""
    if not isinstance(composer, Composer):
        raise ComposerError(f"expected a Composer, got {type(composer).__name__}")
    if composer.name in COMPOSERS and not replace:
        raise ComposerError(f"a composer named {composer.name!r} is already registered")
    for m in composer.modes:
        if m not in MODES:
            raise ComposerError(f"composer {composer.name!r}: unknown mode {m!r}; modes are {MODES}")
    COMPOSERS[composer.name] = composer
    return composer


for _c in (FILE_LEVEL, PATH_DISTANCE_PY, LINES_IOU_PY, CODE_CHUNKS_PY, HALF_MEMORY_PY, DECLARATIONS_PY,
           TEXT_CHUNKS_PY, TEXT_FILES, RANDOM_FILES, RANDOM_PY, MIXED, RANDOM_TOKENS, DUPLICATION, LEAK,
           MASKED_LEAK, LCA_PATH_DISTANCE, LCA_FILE_LENGTH, LCA_IMPORTS_FIRST, LCA_HALF_MEMORY_PATH_DISTANCE,
           LCA_DECLARATIONS_MASK_HALF, LCA_DECLARATIONS_MASK_ONE):
    register_composer(_c)

#: The 15 composers of the paper, in SPEC order.
PAPER_COMPOSERS: tuple[str, ...] = (
    "file_level", "path_distance_py", "lines_iou_py", "code_chunks_py", "half_memory_py",
    "declarations_py", "text_chunks_py", "text_files", "random_files", "random_py", "mixed",
    "random_tokens", "duplication", "leak", "masked_leak")


def get_composer(name: str) -> Composer:
    try:
        return COMPOSERS[name]
    except KeyError:
        raise UnknownComposerError(f"unknown composer {name!r}; registered: {', '.join(COMPOSERS)}") from None


def composer_info(name: str | None = None) -> dict[str, Any] | list[dict[str, Any]]:
    """The declared chain of one composer (or of all, as a list), as plain data."""
    if name is None:
        return [c.info() for c in COMPOSERS.values()]
    return get_composer(name).info()


def run_request(req: Request) -> Composition:
    req.ctx.extra.setdefault("fmt", req.fmt)
    req.ctx.extra.setdefault("counter", req.counter)
    return run_composer(req)


def compose(name: str, snapshot: Mapping[str, str | bytes | None], completion_path: str,
            completion_text: str, *, mode: str = "original", stage: str = "train", tokenizer: Any,
            max_tokens: int, seed: int = 0, fmt: str = "opencoder", repo_name: str | None = None,
            completion_full_text: str | None = None, reference: bool = False) -> Composition:
    """Compose the context for one completion file.

    ``snapshot`` maps path -> text (``None`` for non-text files); ``completion_text`` is the whole
    completion file in the ``train`` stage and the prefix above the target line in the ``eval``
    stage (nothing after it can influence the result). Only the leak probes (``duplication``,
    ``leak``, ``masked_leak``) may be given ``completion_full_text`` in the eval stage; the result is
    then flagged ``leaks_target``. ``reference=True`` computes the budget cut by its definition
    (encode the whole composed context, keep the last ``max_tokens`` tokens) instead of the fast
    path; both give the same result.
    """
    comp = get_composer(name)
    if mode not in comp.modes:
        raise ComposerError(f"composer {name!r} has no mode {mode!r}; its modes: {', '.join(comp.modes)}")
    if stage not in STAGES:
        raise ComposerError(f"stage must be one of {STAGES}, got {stage!r}")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 0:
        raise ComposerError(f"max_tokens must be a non-negative integer, got {max_tokens!r}")
    if max_tokens > MAX_TOKENS:  # checked before any text is built: Duplication would fill it all
        raise ComposerError(f"max_tokens={max_tokens:,} is more than {MAX_TOKENS:,} tokens, the most a "
                            "composed context may hold; give a smaller budget (the paper's largest is 16,384)")
    if tokenizer is None:
        raise ComposerError("compose needs a tokenizer to count the budget")
    if completion_full_text is not None and not comp.leaks and comp.build is not probes.build_mixed:
        raise ComposerError(f"composer {name!r} may not see the full completion file")
    f = get_format(fmt)
    text = normalize_text(completion_text or "")
    sees_target = stage == "train" or completion_full_text is not None
    target = normalize_text(completion_full_text) if (stage == "eval" and completion_full_text is not None) else text
    ctx = RankContext(name, normalize_path(completion_path), text, stage, int(seed), target,
                      {"sees_target": sees_target})
    req = Request(comp, snapshot, ctx, mode, max_tokens, f, counter_for(tokenizer), repo_name, reference)
    return run_request(req)
