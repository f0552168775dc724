"""Context composers: the study's independent variable (SPEC sections 3-4).

A composer turns a repository snapshot and a completion file into the context placed before the
completion file: choose and rank files (or chunks), keep the most relevant ones that fit the token
budget, most relevant last. Every composer is a short declaration in :mod:`.registry` over the
typed steps of :mod:`.steps`, executed by :mod:`.pipeline`.

Entry point::

    from rlctx_utils.composers import compose
    comp = compose("path_distance_py", snapshot, "pkg/new.py", text, tokenizer=tok, max_tokens=16384)
    comp.context, comp.context_ids, comp.pieces, comp.n_tokens_full
"""

from .formats import FORMATS, render_completion, render_file, render_repo_header
from .pipeline import MODES, STAGES, Composer
from .registry import (COMPOSERS, PAPER_COMPOSERS, compose, composer_info, get_composer,
                       register_composer)
from .text import lines_iou, path_distance
from .types import Candidate, Composition, ComposerError, Piece, UnknownComposerError

__all__ = [
    "COMPOSERS", "FORMATS", "MODES", "PAPER_COMPOSERS", "STAGES", "Candidate", "Composer", "ComposerError",
    "Composition", "Piece", "UnknownComposerError", "compose", "composer_info", "get_composer",
    "lines_iou", "path_distance", "register_composer", "render_completion", "render_file",
    "render_repo_header",
]
