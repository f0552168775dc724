"""Line categories of a completion file (SPEC section 6), as in Long Code Arena.

Every non-blank line of a completion file gets the first category that applies:

1. ``commited`` - it calls a function or class declared in *another file added by the same commit*;
2. ``inproject`` - it calls a function or class declared in a ``.py`` file of the snapshot;
3. ``infile`` - it calls a function or class declared in the completion file itself;
4. ``common`` - it calls a "common" name (``__init__``, ``get``, ``run`` …: the 31 names of the Long
   Code Arena baselines' ``COMMON_APIS``, JetBrains-Research/lca-baselines,
   ``code_completion/eval/common_apis.py``; the list is data in
   ``rlctx_utils/resources/common_names.txt``);
5. ``non_informative`` - shorter than 5 or longer than 150 characters (stripped), or containing
   ``print``, an import, a ``def``/``class`` header, a comment, or only docstring text;
6. ``random`` - everything else.

"Declared" means a ``def`` or ``class`` name (at any nesting depth); "calls" means the name is the
callee of a call, either bare (``foo(...)``) or as an attribute (``obj.foo(...)``). Names are found
with tree-sitter, which is error tolerant: Python 2 files and files with syntax errors still get
categories from the parts that parse. Blank lines are never targets (our choice: there is nothing to
complete). Line indices are 0-based indices into ``content.split("\\n")``.

:func:`classify_lines` returns the *raw* lists (every line of each category); :func:`sample_lines`
draws the targets the way LCA does: about 5 lines per file for ``non_informative`` and ``random``,
up to 10 for the other categories.
"""

from __future__ import annotations

import functools
import hashlib
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import tree_sitter
import tree_sitter_python

from ..paths import RESOURCES
from .types import CATEGORIES

#: Sampled lines per file and category (LCA: ~5 for non_informative/random, <= ~10 for the others).
SAMPLE_SIZES: dict[str, int] = {"commited": 10, "inproject": 10, "infile": 10, "common": 10,
                                "non_informative": 5, "random": 5}
MIN_LINE_CHARS = 5
MAX_LINE_CHARS = 150

_LANG = tree_sitter.Language(tree_sitter_python.language())
_CALLS = tree_sitter.Query(_LANG, """
(call function: (identifier) @callee)
(call function: (attribute attribute: (identifier) @callee))
""")
_DECLS = tree_sitter.Query(_LANG, """
(function_definition name: (identifier) @decl)
(class_definition name: (identifier) @decl)
""")
_NOISE = tree_sitter.Query(_LANG, """
(comment) @comment
(import_statement) @import
(import_from_statement) @import
(future_import_statement) @import
(function_definition name: (identifier) @header)
(class_definition name: (identifier) @header)
(expression_statement (string) @doc)
""")


def _parse(text: str) -> tree_sitter.Tree:
    return tree_sitter.Parser(_LANG).parse(text.encode("utf-8", "surrogatepass"))


@functools.lru_cache(maxsize=1)
def common_names() -> frozenset[str]:
    """The common-name list shipped in ``resources/common_names.txt`` (one name a line, # comments)."""
    text = (RESOURCES / "common_names.txt").read_text(encoding="utf-8")
    return frozenset(ln.split("#", 1)[0].strip() for ln in text.splitlines()
                     if ln.split("#", 1)[0].strip())


def _names(nodes: Iterable[tree_sitter.Node]) -> set[str]:
    return {n.text.decode("utf-8", "replace") for n in nodes if n.text}


@functools.lru_cache(maxsize=50_000)
def _declared_cached(digest: str, text: str) -> frozenset[str]:  # noqa: ARG001 - digest is the key
    caps = tree_sitter.QueryCursor(_DECLS).captures(_parse(text).root_node)
    return frozenset(_names(caps.get("decl", [])))


def declared_names(text: str) -> frozenset[str]:
    """Names of every ``def`` and ``class`` in a Python source (cached by content)."""
    if not text:
        return frozenset()
    return _declared_cached(hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest(), text)


def project_declared_names(files: Mapping[str, str | None], exclude: str | None = None) -> set[str]:
    """Union of :func:`declared_names` over the ``.py`` files of a snapshot (minus ``exclude``)."""
    out: set[str] = set()
    for path, text in files.items():
        if path != exclude and path.endswith(".py") and text:
            out |= declared_names(text)
    return out


@dataclass
class _LineFacts:
    calls: dict[int, set[str]]
    noise: set[int]
    has_error: bool


def _line_facts(text: str) -> _LineFacts:
    tree = _parse(text)
    root = tree.root_node
    calls: dict[int, set[str]] = {}
    for node in tree_sitter.QueryCursor(_CALLS).captures(root).get("callee", []):
        calls.setdefault(node.start_point[0], set()).add(node.text.decode("utf-8", "replace"))
    noise: set[int] = set()
    caps = tree_sitter.QueryCursor(_NOISE).captures(root)
    for node in caps.get("comment", []) + caps.get("header", []):
        noise.add(node.start_point[0])
    for node in caps.get("import", []):
        noise.update(range(node.start_point[0], node.end_point[0] + 1))
    for node in caps.get("doc", []):
        if node.parent is not None and node.parent.named_child_count == 1:
            noise.update(range(node.start_point[0], node.end_point[0] + 1))
    return _LineFacts(calls, noise, root.has_error)


def classify_lines(completion_text: str, snapshot: Mapping[str, str | None] | None = None,
                   commit_added_files: Mapping[str, str | None] | None = None,
                   completion_path: str | None = None,
                   common: frozenset[str] | None = None) -> dict[str, list[int]]:
    """All lines of each category (the LCA ``completion_lines_raw``), keyed by :data:`CATEGORIES`.

    ``snapshot`` is the repository before the commit; ``commit_added_files`` are the *other* files
    the same commit added (the completion file itself is ignored if present there).
    """
    common = common_names() if common is None else common
    committed = project_declared_names(commit_added_files or {}, exclude=completion_path)
    project = project_declared_names(snapshot or {}, exclude=completion_path)
    infile = set(declared_names(completion_text))
    facts = _line_facts(completion_text)
    out: dict[str, list[int]] = {c: [] for c in CATEGORIES}
    for i, line in enumerate(completion_text.split("\n")):
        stripped = line.strip()
        if not stripped:
            continue
        called = facts.calls.get(i, set())
        if called & committed:
            cat = "commited"
        elif called & project:
            cat = "inproject"
        elif called & infile:
            cat = "infile"
        elif called & common:
            cat = "common"
        elif (len(stripped) < MIN_LINE_CHARS or len(stripped) > MAX_LINE_CHARS
              or "print" in stripped or i in facts.noise):
            cat = "non_informative"
        else:
            cat = "random"
        out[cat].append(i)
    return out


def sample_lines(raw: Mapping[str, list[int]], seed: int | str,
                 sizes: Mapping[str, int] = SAMPLE_SIZES) -> dict[str, list[int]]:
    """Draw the target lines of each category from the raw lists (sorted, without replacement).

    Same ``raw`` and ``seed`` -> same sample. Pass a per-datapoint seed (e.g. ``f"{seed}:{dp.id}"``)
    so datapoints do not share a random stream.
    """
    out: dict[str, list[int]] = {}
    for cat in CATEGORIES:
        pool = sorted(raw.get(cat, []))
        k = min(sizes.get(cat, 0), len(pool))
        rng = random.Random(f"{seed}|{cat}")
        out[cat] = sorted(rng.sample(pool, k)) if k < len(pool) else pool
    return out


#: LCA's size buckets, by characters of ``.py`` in the snapshot (upper bounds, exclusive).
LCA_BUCKET_THRESHOLDS = (48_000, 192_000, 768_000)
BUCKETS = ("small", "medium", "large", "huge")


def size_bucket(py_chars: int, thresholds: tuple[int, int, int] | list[int] = LCA_BUCKET_THRESHOLDS) -> str:
    """``small`` / ``medium`` / ``large`` / ``huge`` for a snapshot with ``py_chars`` characters of
    ``.py`` (LCA: < 48K, < 192K, < 768K, larger; profiles scale the thresholds)."""
    for name, bound in zip(BUCKETS, thresholds):
        if py_chars < bound:
            return name
    return BUCKETS[-1]
