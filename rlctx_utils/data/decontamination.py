"""Decontamination check: no held-out file content in anything a model was trained on.

The miner (:mod:`rlctx_utils.data.pipeline`) already drops from training every completion file and
corpus file whose content hash (:func:`rlctx_utils.data.store.content_sha1`: line endings and
trailing whitespace normalised) appears in a validation or benchmark repository. This module checks
the result afterwards, with a stricter normalisation as well, against every training-side text:

* ``corpus``: the file-level corpus (``DIR/corpus``), the base model's training text and, in the
  small profiles, the tokenizer's (``rlctx_utils.training.loop._train_profile_tokenizer``);
* ``train_completions``: the completion files of the training datapoints (stage B targets);
* ``train_snapshots`` (with ``snapshots=True``: it decodes every training snapshot, minutes of CPU
  on the cpu-v2 data): the ``.py`` files of the training datapoints' snapshots (stage B context);
* ``train_candidates``: every ``.py`` file of the training repositories' newest trees *before* the
  miner's filter (``DIR/.work``, when it is still there): matches here are what the filter removed,
  reported so one can see which training packages vendor held-out code (and whether an older
  tokenizer, trained on an unfiltered or differently filtered corpus, saw it);
* any other named corpus the caller passes (the virtual environment's site-packages, the stdlib).

Held-out files are the completion files and the snapshot ``.py`` files of the validation and
benchmark datapoints. Two hashes are compared: ``exact`` (the miner's ``content_sha1``) and
``whitespace`` (every run of whitespace collapsed to one space, so re-indented or re-wrapped copies
match too). Files whose whitespace-normalised text is shorter than ``min_chars`` (empty
``__init__.py`` files, one-line version modules) carry no held-out content and are skipped.
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .store import content_sha1

#: Files shorter than this (characters after whitespace normalisation) are not compared.
MIN_CHARS = 64
HELD_OUT_SPLITS = ("validation", "benchmark")


def whitespace_normalised(text: str) -> str:
    """``text`` with every run of whitespace (spaces, tabs, newlines) replaced by one space."""
    return " ".join(text.split())


def whitespace_hash(text: str) -> str:
    return hashlib.sha1(whitespace_normalised(text).encode("utf-8", "surrogatepass")).hexdigest()


@dataclass
class HeldOutIndex:
    """Hashes of held-out file contents -> where each was first seen (``split/repo:path``)."""

    exact: dict[str, str] = field(default_factory=dict)
    whitespace: dict[str, str] = field(default_factory=dict)
    files: int = 0
    skipped_short: int = 0

    def add(self, where: str, text: str | None, min_chars: int = MIN_CHARS) -> None:
        if not text:
            return
        if len(whitespace_normalised(text)) < min_chars:
            self.skipped_short += 1
            return
        self.files += 1
        self.exact.setdefault(content_sha1(text), where)
        self.whitespace.setdefault(whitespace_hash(text), where)


@dataclass(frozen=True)
class Match:
    corpus: str
    where: str        # the training-side file
    held_out: str     # the held-out file it copies (split/repo:path)
    kind: str         # "exact" or "whitespace" (whitespace-only differences)

    def as_dict(self) -> dict[str, str]:
        return {"corpus": self.corpus, "where": self.where, "held_out": self.held_out, "kind": self.kind}


@dataclass
class DecontaminationReport:
    held_out_files: int
    held_out_skipped_short: int
    checked: dict[str, int] = field(default_factory=dict)
    matches: dict[str, list[Match]] = field(default_factory=dict)
    informational: tuple[str, ...] = ("train_candidates",)

    def clean(self) -> bool:
        """True when no corpus a model trains on holds held-out content (informational ones aside)."""
        return not any(self.matches.get(c) for c in self.checked if c not in self.informational)

    def as_dict(self, max_listed: int = 50) -> dict[str, Any]:
        return {"clean": self.clean(), "held_out_files": self.held_out_files,
                "held_out_skipped_short": self.held_out_skipped_short,
                "corpora": {c: {"files": n, "matches": len(self.matches.get(c, [])),
                                "informational": c in self.informational,
                                "listed": [m.as_dict() for m in self.matches.get(c, [])[:max_listed]]}
                            for c, n in self.checked.items()}}


def held_out_index(datapoints: Iterable[Any], min_chars: int = MIN_CHARS) -> HeldOutIndex:
    """Index the completion files and snapshot ``.py`` files of validation/benchmark datapoints."""
    idx = HeldOutIndex()
    seen_snapshots: set[tuple[str, str]] = set()
    for dp in datapoints:
        if dp.split not in HELD_OUT_SPLITS:
            continue
        idx.add(f"{dp.split}/{dp.repo}:{dp.completion_path}", dp.completion_content, min_chars)
        key = (dp.repo, dp.commit_hash)
        if key in seen_snapshots:
            continue
        seen_snapshots.add(key)
        for path, text in dp.snapshot.items():
            if path.endswith(".py"):
                idx.add(f"{dp.split}/{dp.repo}:{path}", text, min_chars)
    return idx


def find_matches(index: HeldOutIndex, corpus: str, items: Iterable[tuple[str, str | None]],
                 min_chars: int = MIN_CHARS) -> tuple[int, list[Match]]:
    """Files of ``items`` (``(where, text)`` pairs) whose content is a held-out file's."""
    n, out = 0, []
    for where, text in items:
        if not text or len(whitespace_normalised(text)) < min_chars:
            continue
        n += 1
        h = content_sha1(text)
        if h in index.exact:
            out.append(Match(corpus, where, index.exact[h], "exact"))
            continue
        w = whitespace_hash(text)
        if w in index.whitespace:
            out.append(Match(corpus, where, index.whitespace[w], "whitespace"))
    return n, out


def check(index: HeldOutIndex, corpora: dict[str, Iterable[tuple[str, str | None]]],
          min_chars: int = MIN_CHARS, informational: Iterable[str] = ("train_candidates",)) -> DecontaminationReport:
    """Compare every named corpus with the held-out index."""
    rep = DecontaminationReport(index.files, index.skipped_short, informational=tuple(informational))
    for name, items in corpora.items():
        rep.checked[name], rep.matches[name] = find_matches(index, name, items, min_chars)
    return rep


def _train_items(data_dir: Path) -> tuple[Iterator[tuple[str, str]], Iterator[tuple[str, str]]]:
    from .store import iter_datapoints

    def completions() -> Iterator[tuple[str, str]]:
        for dp in iter_datapoints(data_dir / "data", "train", with_snapshot=False):
            yield f"train/{dp.repo}:{dp.completion_path}@{dp.commit_hash[:8]}", dp.completion_content

    def snapshots() -> Iterator[tuple[str, str]]:
        seen: set[str] = set()
        for dp in iter_datapoints(data_dir / "data", "train"):
            for path, text in dp.snapshot.items():
                if path.endswith(".py") and text:
                    h = content_sha1(text)
                    if h not in seen:  # consecutive snapshots share most files
                        seen.add(h)
                        yield f"train/{dp.repo}:{path}", text

    return completions(), snapshots()


def _corpus_items(path: Path) -> Iterator[tuple[str, str]]:
    from .store import load_corpus

    for repo, p, text in load_corpus(path, with_paths=True):
        yield f"{repo}:{p}", text


def candidate_items(data_dir: Path) -> Iterator[tuple[str, str]]:
    """The unfiltered per-repository corpus candidates of the training repositories (``DIR/.work``)."""
    from ..io import read_json

    repos = data_dir / ".work" / "repos"
    for done in sorted(repos.glob("*/done.json")) if repos.is_dir() else []:
        info = read_json(done)
        if info.get("split") == "train" and not info.get("error"):
            yield from _corpus_items(done.parent)


def python_tree_items(root: Path, skip: Iterable[str] = ("__pycache__",)) -> Iterator[tuple[str, str]]:
    """Every readable ``.py`` file under ``root`` (e.g. a site-packages folder)."""
    skip = set(skip)
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in skip)
        for f in sorted(filenames):
            if f.endswith(".py"):
                p = Path(dirpath) / f
                try:
                    text = p.read_bytes().decode("utf-8")
                except (OSError, UnicodeDecodeError):
                    continue
                yield str(p.relative_to(root)), text


def site_packages() -> list[Path]:
    """The running interpreter's site-packages folders (the project's virtual environment)."""
    import site
    import sysconfig

    paths = {Path(sysconfig.get_paths()["purelib"]), Path(sysconfig.get_paths()["platlib"])}
    paths.update(Path(p) for p in getattr(site, "getsitepackages", lambda: [])())
    return sorted(p for p in paths if p.is_dir() and str(p).startswith(sys.prefix))


def check_dir(data_dir: str | Path, extra: dict[str, Iterable[tuple[str, str | None]]] | None = None,
              min_chars: int = MIN_CHARS, snapshots: bool = False) -> DecontaminationReport:
    """Check a mined folder: its held-out splits against its training side (and ``extra`` corpora)."""
    from .errors import DataError
    from .store import iter_datapoints

    data_dir = Path(data_dir)
    if not (data_dir / "data").is_dir() or not (data_dir / "corpus").is_dir():
        raise DataError(f"{data_dir}: not a mined folder (no data/ and corpus/); run `rlctx mine pypi` first")
    index = held_out_index((dp for s in HELD_OUT_SPLITS for dp in iter_datapoints(data_dir / "data", s)),
                           min_chars)
    completions, snapshot_items = _train_items(data_dir)
    corpora: dict[str, Iterable[tuple[str, str | None]]] = {
        "corpus": _corpus_items(data_dir / "corpus"), "train_completions": completions}
    if snapshots:
        corpora["train_snapshots"] = snapshot_items
    if (data_dir / ".work" / "repos").is_dir():
        corpora["train_candidates"] = candidate_items(data_dir)
    corpora.update(extra or {})
    return check(index, corpora, min_chars)
