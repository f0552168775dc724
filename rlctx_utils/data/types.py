"""The datapoint every module of the artifact passes around.

A datapoint is one completion file plus the repository snapshot it was written against (SPEC
section 2), with the target lines of each line category (SPEC section 6). Field names follow the Long
Code Arena project-level completion dataset, so our benchmarks and the real one are interchangeable.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

#: LCA line categories, in the priority order of SPEC section 6 ("commited" is spelled as on the hub).
CATEGORIES: tuple[str, ...] = ("commited", "inproject", "infile", "common", "non_informative", "random")
#: In ``completion_lines_raw`` the hub calls the ``random`` category ``other``.
RAW_NAME = {"random": "other"}


@dataclass
class Datapoint:
    """One completion file and its repository snapshot.

    ``snapshot`` maps path -> text, with ``None`` for files that are not text (binary). Line indices
    in ``completion_lines`` are 0-based line numbers of ``completion_content.split("\\n")``.
    """

    repo: str
    commit_hash: str
    completion_path: str
    completion_content: str
    snapshot: dict[str, str | None]
    completion_lines: dict[str, list[int]] = field(default_factory=dict)
    completion_lines_raw: dict[str, list[int]] = field(default_factory=dict)
    split: str = "train"
    source: str = ""
    #: Provenance that is not part of the LCA schema (commit time, size bucket, ...); stored as JSON.
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        """Stable identifier: repository, commit and path."""
        key = f"{self.repo}\0{self.commit_hash}\0{self.completion_path}".encode()
        return hashlib.sha1(key).hexdigest()[:16]

    def to_lca_record(self) -> dict[str, Any]:
        """The record in the hub's schema (plus ``split`` and ``source`` provenance columns)."""
        paths = sorted(self.snapshot)
        return {
            "repo": self.repo,
            "commit_hash": self.commit_hash,
            "completion_file": {"filename": self.completion_path, "content": self.completion_content},
            "repo_snapshot": {"filename": paths, "content": [self.snapshot[p] for p in paths]},
            "completion_lines": {c: list(self.completion_lines.get(c, [])) for c in CATEGORIES},
            "completion_lines_raw": {RAW_NAME.get(c, c): list(self.completion_lines_raw.get(c, []))
                                     for c in CATEGORIES},
            "split": self.split,
            "source": self.source,
        }

    @classmethod
    def from_lca_record(cls, rec: dict[str, Any], split: str | None = None,
                        source: str | None = None) -> "Datapoint":
        """Build from a hub record (or one written by :meth:`to_lca_record`)."""
        snap = rec.get("repo_snapshot") or {"filename": [], "content": []}
        lines = rec.get("completion_lines") or {}
        raw = rec.get("completion_lines_raw") or {}
        inv = {v: k for k, v in RAW_NAME.items()}
        return cls(
            repo=rec["repo"],
            commit_hash=rec["commit_hash"],
            completion_path=rec["completion_file"]["filename"],
            completion_content=rec["completion_file"]["content"],
            snapshot=dict(zip(snap["filename"], snap["content"])),
            completion_lines={k: list(v or []) for k, v in lines.items() if v is not None},
            completion_lines_raw={inv.get(k, k): list(v or []) for k, v in raw.items() if v is not None},
            split=split if split is not None else rec.get("split", "test"),
            source=source if source is not None else rec.get("source", ""),
        )

    def target_lines(self, categories: tuple[str, ...] = CATEGORIES) -> list[tuple[int, str]]:
        """(line index, category) for every sampled target line, sorted by line index."""
        out = [(i, c) for c in categories for i in self.completion_lines.get(c, [])]
        return sorted(out)
