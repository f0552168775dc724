"""The small typed steps composers are declared from.

A composer (see :mod:`.pipeline`) is a chain::

    select files -> split into chunks -> rank (several keys) -> order (mode) -> reduce -> render
    -> budget cut -> post-process

- :class:`FileFilter` decides which snapshot files are candidates (``py_files``, ``extensions``…);
  filters combine with ``&``, ``|`` and ``~``.
- :class:`Splitter` cuts a file into chunks (``whole_file`` for every composer of the paper).
- :class:`RankKey` scores a candidate; the first key is primary, later keys break ties, and the path
  breaks any tie left. Each key says whether higher values are more relevant.
- :class:`Transform` reduces a piece's text *after* ranking (so that, e.g., Declarations .py ranks
  files exactly like Path Distance .py), only for the pieces that are actually needed.
- :class:`PostStep` rewrites the finished window (the leak probes).

Random steps draw from :meth:`RankContext.rng`, seeded by (seed, composer, purpose, path), so a
file's randomness does not depend on which other files were looked at: stopping early gives the
same result as composing everything.
"""

from __future__ import annotations

import functools
import hashlib
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import python_ast
from .text import CACHE, line_set, path_distance, set_iou

if TYPE_CHECKING:
    from .pipeline import Window


# -- the per-datapoint context the steps see ----------------------------------------------------

@dataclass
class RankContext:
    """What a step may look at for one datapoint.

    ``completion_text`` is what the composer is allowed to see: the whole completion file in the
    train stage, the prefix above the target line in the eval stage. ``target_text`` is the whole
    file where a leak probe was given it (else ``completion_text``).
    """

    composer: str
    completion_path: str
    completion_text: str
    stage: str
    seed: int
    target_text: str
    extra: dict[str, Any] = field(default_factory=dict)

    @functools.cached_property
    def completion_lines(self) -> frozenset[str]:
        return line_set(self.completion_text)

    def rng(self, *parts: object) -> random.Random:
        """A generator seeded by (seed, composer, *parts): reproducible and order-independent."""
        return random.Random("|".join([str(self.seed), self.composer, *map(str, parts)]))

    def int_seed(self, *parts: object) -> int:
        key = "|".join([str(self.seed), self.composer, *map(str, parts)]).encode()
        return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little")


# -- filters -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class FileFilter:
    """Which snapshot files a composer may use: ``fn(path, text) -> bool``."""

    name: str
    fn: Callable[[str, str], bool]

    def __call__(self, path: str, text: str) -> bool:
        return self.fn(path, text)

    def __and__(self, other: "FileFilter") -> "FileFilter":
        return FileFilter(f"({self.name} & {other.name})", lambda p, t: self.fn(p, t) and other.fn(p, t))

    def __or__(self, other: "FileFilter") -> "FileFilter":
        return FileFilter(f"({self.name} | {other.name})", lambda p, t: self.fn(p, t) or other.fn(p, t))

    def __invert__(self) -> "FileFilter":
        return FileFilter(f"~{self.name}", lambda p, t: not self.fn(p, t))


def extensions(*exts: str) -> FileFilter:
    """Files whose name ends with one of ``exts`` (case-insensitive, e.g. ``".py"``)."""
    low = tuple(e.lower() for e in exts)
    return FileFilter("ext" + "".join(low), lambda p, t: p.lower().endswith(low))


def under(prefix: str) -> FileFilter:
    """Files below a folder (``under("tests/")``)."""
    return FileFilter(f"under({prefix})", lambda p, t: p.startswith(prefix))


all_text = FileFilter("all_text", lambda p, t: True)
py_files = extensions(".py")

#: Text files composer: groups in ascending relevance (SPEC section 4, composer 8).
TEXT_GROUPS: tuple[tuple[str, ...], ...] = ((".json",), (".yaml", ".yml"), (".sh",), (".md", ".txt", ".rst"))
text_files = extensions(*[e for g in TEXT_GROUPS for e in g])


# -- splitters -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Splitter:
    """Cuts a file's text into chunks: ``fn(path, text) -> list[str]``."""

    name: str
    fn: Callable[[str, str], list[str]]


whole_file = Splitter("whole_file", lambda p, t: [t])


def line_windows(n_lines: int) -> Splitter:
    """Consecutive chunks of ``n_lines`` lines (an example splitter for new composers)."""
    def fn(path: str, text: str) -> list[str]:
        lines = text.split("\n")
        return ["\n".join(lines[i:i + n_lines]) for i in range(0, len(lines), n_lines)]
    return Splitter(f"line_windows({n_lines})", fn)


# -- ranking keys --------------------------------------------------------------------------------

@dataclass(frozen=True)
class RankKey:
    """One ranking criterion: ``fn(ctx, candidate) -> number`` in natural units.

    ``higher_is_relevant`` says which way it sorts: an IoU of 0.9 is more relevant than 0.1, a path
    distance of 0 more than 4.
    """

    name: str
    fn: Callable[[RankContext, Any], float]
    higher_is_relevant: bool = True


by_path_distance = RankKey("path_distance",
                           lambda ctx, c: path_distance(ctx.completion_path, c.path), False)
by_lines_iou = RankKey("lines_iou", lambda ctx, c: set_iou(ctx.completion_lines, line_set(c.text)), True)
by_random = RankKey("random", lambda ctx, c: ctx.rng("rank", c.path, c.chunk).random(), True)
#: LCA baselines' tie order: earlier in the snapshot is more relevant (their stable sort, reversed).
by_snapshot_order = RankKey("snapshot_index", lambda ctx, c: c.index, False)
#: LCA file-length composer: shorter files are more relevant (placed last).
by_length = RankKey("n_chars", lambda ctx, c: len(c.text), False)


def _text_group(ctx: RankContext, c: Any) -> int:
    low = c.path.lower()
    for i, group in enumerate(TEXT_GROUPS):
        if low.endswith(group):
            return i
    return -1


by_text_group = RankKey("text_group", _text_group, True)


def _is_imported(ctx: RankContext, c: Any) -> int:
    """1 if the completion file imports the candidate's module (LCA imports-first rule), else 0.

    The rule, as the LCA baselines wrote it: take the dotted module names (with at least one dot)
    of the completion file's imports; a file counts as imported when its module name (path without
    extension, ``/`` -> ``.``) contains one of them as a substring, or is contained in one.
    """
    mods = ctx.extra.get("imports")
    if mods is None:
        mods = ctx.extra["imports"] = python_ast.imported_modules(ctx.completion_text)
    module = c.path.rsplit(".", 1)[0].replace("/", ".").lstrip(".")
    return int(any(m in module or module in m for m in mods))


by_imported = RankKey("imported", _is_imported, True)


# -- reductions (after ranking) ------------------------------------------------------------------

@dataclass(frozen=True)
class Transform:
    """Rewrites a piece's text: ``fn(text, ctx, candidate) -> text``.

    ``seeded`` transforms depend on the seed, so their token counts are not cached across calls.
    """

    name: str
    fn: Callable[[str, RankContext, Any], str]
    seeded: bool = False
    #: Optional rewrite of the *rendered* piece (its header line included): ``render(rendered,
    #: header, ctx, candidate) -> rendered``. A composer with one is cut on the joined text (its
    #: pieces need not start with the format's separator token).
    render: Callable[[str, str, RankContext, Any], str] | None = None


strip_docs_comments_imports = Transform("strip_docs_comments_imports",
                                        lambda t, ctx, c: python_ast.strip_text_and_imports(t))
keep_declarations = Transform("keep_declarations", lambda t, ctx, c: python_ast.declarations(t))
keep_docs_comments = Transform("keep_docs_comments", lambda t, ctx, c: python_ast.text_only(t))


def drop_lines(p: float = 0.5, *, protect_headers: bool = False) -> Transform:
    """Half-memory: each line of the context is dropped independently with probability ``p``
    (seeded per file), the file's header line (``<file_sep># path``) included, as the definition
    says ("each line of the context").

    ``protect_headers=True`` keeps every header and drops content lines only (what the Long Code
    Arena baselines' half-memory composer does: it forgets lines of the file content and always
    writes the path); it is off by default.
    """
    def fn(text: str, ctx: RankContext, c: Any) -> str:
        rnd = ctx.rng("drop_lines", c.path, c.chunk).random
        return "\n".join(ln for ln in text.split("\n") if rnd() >= p)

    def render(rendered: str, header: str, ctx: RankContext, c: Any) -> str:
        if header and rendered.startswith(header) and ctx.rng("drop_header", c.path, c.chunk).random() < p:
            return rendered[len(header):]
        return rendered

    if protect_headers:
        return Transform(f"drop_lines({p}, headers kept)", fn, seeded=True)
    return Transform(f"drop_lines({p})", fn, seeded=True, render=render)


def lca_declarations_mask(fraction: float | None) -> Transform:
    """LCA baselines' declaration mask: keep only ``def``/``class`` lines, the first line after each becomes ``pass``.

    It is applied to the first ``fraction`` of the files in context order (the farthest ones);
    ``fraction=None`` masks every file but the most relevant one (their "mask one" variant). Lines
    are matched by their first word, as in the baselines (no parsing).
    """
    def mask(text: str) -> str:
        hit = CACHE.get(("lca_mask", text))
        if hit is not None:
            return hit
        out, pending = [], False
        for ln in text.split("\n"):
            s = ln.strip()
            if s.startswith("def") or s.startswith("class"):
                out.append(ln)
                pending = True
            elif pending:  # the first body line becomes an unindented "pass", the rest goes
                out.append("pass")
                pending = False
        return CACHE.put(("lca_mask", text), "\n".join(ln for ln in out if ln), len(text))

    def fn(text: str, ctx: RankContext, c: Any) -> str:
        pos, n = ctx.extra["position"][(c.path, c.chunk)], ctx.extra["n_ranked"]
        masked = (pos < n * fraction) if fraction is not None else (pos + 1.5 < n)
        return mask(text) if masked else text
    # not seeded: the output depends on the text and the position only, so token counts cache
    return Transform(f"lca_declarations_mask({fraction})", fn)


# -- post-processing of the finished window ------------------------------------------------------

@dataclass(frozen=True)
class PostStep:
    """Rewrites the window after the budget cut: ``fn(window, ctx) -> window``."""

    name: str
    fn: Callable[["Window", RankContext], "Window"]
