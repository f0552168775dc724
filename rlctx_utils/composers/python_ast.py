"""Python source reductions with tree-sitter: docstrings, comments, imports, declarations.

tree-sitter parses any byte string: a file with syntax errors gives a tree with ``ERROR`` nodes and
everything around them is still found, so these functions never raise on bad Python. Results are
memoized per text (see :mod:`.text`).

- :func:`strip_text_and_imports` (Code Chunks .py): the code without docstrings, comments and
  import statements.
- :func:`text_only` (Text Chunks .py): only docstrings and comments, in source order.
- :func:`declarations` (Declarations .py): only the ``def``/``class`` headers (up to the colon),
  nested ones indented as in the source.
- :func:`imported_modules`: dotted module names in import statements (the LCA imports-first rule).
"""

from __future__ import annotations

import functools

import tree_sitter
import tree_sitter_python

from .text import CACHE

_IMPORT_TYPES = frozenset({"import_statement", "import_from_statement", "future_import_statement"})
_DEF_TYPES = frozenset({"function_definition", "class_definition"})


@functools.lru_cache(maxsize=1)
def _parser() -> tree_sitter.Parser:
    return tree_sitter.Parser(tree_sitter.Language(tree_sitter_python.language()))


def parse(text: str) -> tuple[bytes, tree_sitter.Tree]:
    """UTF-8 bytes of ``text`` and its tree-sitter tree (never raises on syntax errors)."""
    data = text.encode("utf-8", errors="replace")
    return data, _parser().parse(data)


_QUERY_SRC = """
(comment) @comment
(import_statement) @import
(import_from_statement) @import
(future_import_statement) @import
(expression_statement (string)) @string
(expression_statement (concatenated_string)) @string
(function_definition) @def
(class_definition) @def
"""


@functools.lru_cache(maxsize=1)
def _query() -> tree_sitter.Query:
    return tree_sitter.Query(tree_sitter.Language(tree_sitter_python.language()), _QUERY_SRC)


def _is_docstring(node: tree_sitter.Node) -> bool:
    """A string statement that opens a module, class or function body."""
    if node.named_child_count != 1:
        return False
    parent = node.parent
    if parent is None:
        return False
    if parent.type == "module" or (parent.type == "block" and parent.parent is not None
                                   and parent.parent.type in _DEF_TYPES):
        first = next((c for c in parent.named_children if c.type != "comment"), None)
        return first is not None and first.id == node.id
    return False


def _line_start(data: bytes, pos: int) -> int:
    return data.rfind(b"\n", 0, pos) + 1


def _indent(data: bytes, pos: int) -> bytes:
    """Leading whitespace of the line holding byte ``pos``."""
    head = data[_line_start(data, pos):pos]
    return head[:len(head) - len(head.lstrip())]


def analyse(text: str) -> dict[str, object]:
    """One parse and one query per text: byte spans of comments, imports, docstrings and the
    headers of declarations (``(start, end, indent)``), in source order. Memoized."""
    hit = CACHE.get(("ast", text))
    if hit is not None:
        return hit
    data, tree = parse(text)
    caps = tree_sitter.QueryCursor(_query()).captures(tree.root_node)
    spans: dict[str, list[tuple[int, int, bytes]]] = {"comment": [], "import": [], "doc": [], "def": []}
    for node in caps.get("comment", []):
        spans["comment"].append((node.start_byte, node.end_byte, _indent(data, node.start_byte)))
    for node in caps.get("import", []):
        spans["import"].append((node.start_byte, node.end_byte, b""))
    for node in caps.get("string", []):
        if _is_docstring(node):
            spans["doc"].append((node.start_byte, node.end_byte, _indent(data, node.start_byte)))
    for node in caps.get("def", []):
        body = node.child_by_field_name("body")
        end = node.end_byte
        if body is not None:
            # the header ends at the declaration's own ':' token (a direct child of the node), not at
            # the last ':' before the body, which may sit in a trailing comment ("# noqa: C901")
            colon = next((c for c in reversed(node.children) if c.type == ":" and c.end_byte <= body.start_byte),
                         None)
            end = colon.end_byte if colon is not None else body.start_byte
        spans["def"].append((node.start_byte, end, b" " * node.start_point[1]))
    for v in spans.values():
        v.sort()
    out = {"data": data, **spans}
    return CACHE.put(("ast", text), out, len(text))


def _drop_ranges(data: bytes, ranges: list[tuple[int, int]]) -> str:
    """Remove byte ranges. A line that lost text loses its trailing whitespace too, and disappears
    if nothing but whitespace is left; lines that were blank in the source stay."""
    if not ranges:
        return data.decode("utf-8", errors="replace")
    ranges.sort()
    out = bytearray()
    pos = 0
    touched: set[int] = set()  # output offsets of the starts of lines that lost text
    for start, end in ranges:
        if end <= pos:
            continue
        start = max(start, pos)
        out += data[pos:start]
        touched.add(out.rfind(b"\n") + 1)
        pos = end
    out += data[pos:]
    kept = []
    offset = 0
    for ln in bytes(out).split(b"\n"):
        if offset in touched:
            stripped = ln.rstrip()
            if stripped.strip():
                kept.append(stripped)
        else:
            kept.append(ln)
        offset += len(ln) + 1
    return b"\n".join(kept).decode("utf-8", errors="replace")


def strip_text_and_imports(text: str) -> str:
    """Code Chunks reduction: drop docstrings, comments and import statements."""
    hit = CACHE.get(("code", text))
    if hit is not None:
        return hit
    a = analyse(text)
    ranges = [(s, e) for kind in ("comment", "import", "doc") for s, e, _ in a[kind]]  # type: ignore[attr-defined]
    return CACHE.put(("code", text), _drop_ranges(a["data"], ranges), len(text))  # type: ignore[arg-type]


def _join_spans(data: bytes, spans: list[tuple[int, int, bytes]]) -> str:
    return b"\n".join(ind + data[s:e].rstrip() for s, e, ind in spans).decode("utf-8", errors="replace")


def text_only(text: str) -> str:
    """Text Chunks reduction: docstrings and comments only, each with its line's indentation."""
    hit = CACHE.get(("textonly", text))
    if hit is not None:
        return hit
    a = analyse(text)
    spans = sorted(a["comment"] + a["doc"])  # type: ignore[operator]
    return CACHE.put(("textonly", text), _join_spans(a["data"], spans), len(text))  # type: ignore[arg-type]


def declarations(text: str) -> str:
    """Declarations reduction: each ``def``/``class`` header from its keyword to its colon."""
    hit = CACHE.get(("decl", text))
    if hit is not None:
        return hit
    a = analyse(text)
    return CACHE.put(("decl", text), _join_spans(a["data"], a["def"]), len(text))  # type: ignore[arg-type]


def _walk(root: tree_sitter.Node):
    """Pre-order traversal with a cursor (no recursion limit)."""
    cursor = root.walk()
    while True:
        yield cursor.node
        if cursor.goto_first_child():
            continue
        while not cursor.goto_next_sibling():
            if not cursor.goto_parent():
                return


def imported_modules(text: str, dotted_only: bool = True) -> set[str]:
    """Module names in ``import``/``from`` statements (``dotted_only``: only names with a dot)."""
    data, tree = parse(text)
    names: set[str] = set()
    for node in _walk(tree.root_node):
        if node.type not in ("import_statement", "import_from_statement"):
            continue
        for child in node.named_children:
            if child.type == "aliased_import":
                child = child.child_by_field_name("name") or child
            if child.type == "dotted_name":
                name = data[child.start_byte:child.end_byte].decode("utf-8", errors="replace")
                if "." in name or not dotted_only:
                    names.add(name)
    return names
