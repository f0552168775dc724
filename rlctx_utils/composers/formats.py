"""How files are written into a sequence (SPEC section 3).

Three formats:

- ``opencoder`` (the paper's): ``<file_sep># {path}\\n{content}\\n`` per file, content with trailing
  whitespace stripped; optional ``<repo_name>{repo}\\n`` header.
- ``qwen`` (Qwen2.5-Coder's repository format): ``<|file_sep|>{path}\\n{content}\\n``; optional
  ``<|repo_name|>{repo}\\n`` header; the completion file may be written as repository-level
  fill-in-the-middle (``<|fim_prefix|>…<|fim_suffix|>…<|fim_middle|>…``).
- ``lca`` (the Long Code Arena baselines'): ``{path}METASEP\\n{content}`` with no separator between
  files and no header (content kept as is).

Context pieces and the completion file use the same rendering, so ``context + render_completion``
is the sequence a model sees. The most relevant piece is always the last one before the completion.
"""

from __future__ import annotations

from dataclasses import dataclass

from .types import ComposerError


@dataclass(frozen=True)
class Format:
    """A file rendering: ``header`` opens a piece; ``sep`` is the special token it starts with."""

    name: str
    file_sep: str  # the token every rendered file starts with ("" if none)
    path_template: str  # "{sep}# {path}\n" ...
    repo_template: str | None  # None: no repository header
    strip_content: bool  # rstrip content and end the file with "\n"

    def header(self, path: str) -> str:
        return self.path_template.format(sep=self.file_sep, path=path)

    def file(self, path: str, text: str) -> str:
        if self.strip_content:
            return f"{self.header(path)}{text.rstrip()}\n"
        return self.header(path) + text

    def repo(self, repo_name: str | None) -> str:
        if not repo_name or self.repo_template is None:
            return ""
        return self.repo_template.format(repo=repo_name)


FORMATS: dict[str, Format] = {
    "opencoder": Format("opencoder", "<file_sep>", "{sep}# {path}\n", "<repo_name>{repo}\n", True),
    "qwen": Format("qwen", "<|file_sep|>", "{sep}{path}\n", "<|repo_name|>{repo}\n", True),
    "lca": Format("lca", "", "{path}METASEP\n", None, False),
}

#: Qwen2.5-Coder's fill-in-the-middle tokens.
QWEN_FIM = ("<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>")


def get_format(fmt: str | Format) -> Format:
    if isinstance(fmt, Format):
        return fmt
    try:
        return FORMATS[fmt]
    except KeyError:
        raise ComposerError(f"unknown format {fmt!r}; choose one of {sorted(FORMATS)}") from None


def render_file(path: str, text: str, fmt: str | Format = "opencoder") -> str:
    """A context file as it appears in the sequence (header, content, closing newline)."""
    return get_format(fmt).file(path, text)


def render_repo_header(repo_name: str | None, fmt: str | Format = "opencoder") -> str:
    """The repository-name header (``""`` without a name or in the LCA format)."""
    return get_format(fmt).repo(repo_name)


def render_completion(path: str, text: str, fmt: str | Format = "opencoder", *,
                      fim: tuple[int, int] | None = None) -> str:
    """The completion file's own header and content, verbatim (nothing stripped or appended).

    ``context + render_completion(path, text)`` is the model's input; in evaluation ``text`` is the
    prefix above the target line. ``fim=(start, end)`` (Qwen format only) writes repository-level
    fill-in-the-middle with ``text[start:end]`` as the middle, placed last.
    """
    f = get_format(fmt)
    if fim is None:
        return f.header(path) + text
    if f.name != "qwen":
        raise ComposerError("repository-level FIM is only defined for the qwen format")
    start, end = fim
    if not 0 <= start <= end <= len(text):
        raise ComposerError(f"bad FIM span {fim} for a text of {len(text)} characters")
    pre, suf, mid = QWEN_FIM
    return f"{f.header(path)}{pre}{text[:start]}{suf}{text[end:]}{mid}{text[start:end]}"
