"""Mining datapoints from the history of a git repository (SPEC section 2).

The paper walked the history of each repository commit by commit. A commit that ADDS ``.py`` files
yields one datapoint per added file: the *completion file* is the added file, the *snapshot* is
every file of the first parent's tree (the repository just before the commit). Everything is read
from the object store with dulwich: nothing is checked out, nothing is written to the repository.

Choices the paper leaves open, made here and configurable in :class:`MiningConfig`:
- only commits reachable from ``HEAD`` are walked;
- merge commits are skipped (their additions were already made by the branch they merge);
- root commits are skipped (there is no snapshot before them);
- a renamed or copied-and-renamed file is not an addition (git rename detection, 60% similarity);
- when the same path is added several times, the most recent addition is kept;
- a shallow clone (or a repository with missing objects) is mined as far as its history goes: a
  commit whose parent is not available is skipped (``commit_parent_not_available``), a commit or
  tree that cannot be read stops the walk there (``missing_object``);
- files whose name is not UTF-8 are left out of snapshots and completions (``non_utf8_path``).
Every skipped file or commit is counted in ``stats`` under its reason.
"""

from __future__ import annotations

import datetime as _dt
import re
import stat
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from dulwich.diff_tree import CHANGE_ADD, CHANGE_COPY, CHANGE_RENAME, RenameDetector, tree_changes
from dulwich.errors import NotGitRepository
from dulwich.objects import Blob, Commit
from dulwich.repo import BaseRepo, Repo

from .config import MiningConfig
from .errors import DataError
from .snapshots import decode_text, utf8_name
from .types import Datapoint

GITLINK = 0o160000


@dataclass
class RepoMining:
    """What one repository mined into: datapoints (unlabelled) and the files of its newest tree."""

    name: str
    datapoints: list[Datapoint]
    added_files: dict[str, dict[str, str | None]]  # commit -> other .py files added by it
    head_files: dict[str, str | None]
    stats: Counter = field(default_factory=Counter)
    commits: int = 0


@dataclass
class _Candidate:
    commit: bytes
    time: int
    parent_tree: bytes | None
    path: str
    content: str
    added: dict[str, bytes]  # every .py path added by the commit -> blob id


def repo_name(path: str | Path, repo: Repo | None = None) -> str:
    """``owner__name`` as in LCA when the origin remote points at a hosting site, else the folder name."""
    if repo is not None:
        try:
            url = repo.get_config().get((b"remote", b"origin"), b"url").decode()
            m = re.search(r"[:/]([^/:]+)/([^/]+?)(?:\.git)?/?$", url)
            if m:
                return f"{m.group(1)}__{m.group(2)}"
        except KeyError:
            pass
    return Path(path).resolve().name


class _BlobReader:
    """Decoded blob contents, cached by blob id (successive snapshots share most blobs)."""

    def __init__(self, repo: BaseRepo, cfg: MiningConfig, stats: Counter):
        self.store = repo.object_store
        self.cfg = cfg
        self.stats = stats
        self.cache: dict[bytes, str | None] = {}

    def text(self, sha: bytes, path: str, mode: int) -> str | None:
        if stat.S_ISLNK(mode) or mode == GITLINK:
            return None
        if sha not in self.cache:
            obj = self.store[sha]
            data = obj.as_raw_string() if isinstance(obj, Blob) else b""
            if len(data) > self.cfg.max_file_bytes:
                self.stats["snapshot_file_too_large"] += 1
                self.cache[sha] = None
            else:
                self.cache[sha] = decode_text(data, path)
        return self.cache[sha]

    def tree_files(self, tree: bytes | None) -> dict[str, str | None]:
        if tree is None:
            return {}
        out: dict[str, str | None] = {}
        try:
            for entry in self.store.iter_tree_contents(tree):
                path = entry.path.decode("utf-8", "surrogateescape")
                if entry.mode == GITLINK:
                    self.stats["submodule"] += 1
                    continue
                if not utf8_name(path):
                    self.stats["non_utf8_path"] += 1
                    continue
                try:
                    out[path] = self.text(entry.sha, path, entry.mode)
                except KeyError:  # a blob missing from the object store
                    self.stats["missing_object"] += 1
                    out[path] = None
        except KeyError:  # a sub-tree missing from the object store
            self.stats["missing_object"] += 1
        return out


def _year(ts: int) -> int:
    return _dt.datetime.fromtimestamp(ts, _dt.timezone.utc).year


def mine_git_repo(repo: str | Path | BaseRepo, cfg: MiningConfig, name: str | None = None,
                  source: str = "git", progress: bool = True,
                  rename_max_files: int = 1000) -> RepoMining:
    """Walk one repository and return its datapoints after the paper's per-repository filters.

    Datapoints come back without line categories (see :mod:`rlctx_utils.data.pipeline`), newest
    first; ``added_files`` holds, per commit, the other ``.py`` files it added (for ``commited``).
    """
    from tqdm.auto import tqdm

    if isinstance(repo, (str, Path)):
        try:
            r: BaseRepo = Repo(str(repo))
        except NotGitRepository as exc:
            raise DataError(f"{repo}: not a git repository") from exc
        name = name or repo_name(repo, r)
    else:
        r = repo
        name = name or "repo"
    stats: Counter = Counter()
    reader = _BlobReader(r, cfg, stats)
    try:
        head = r.head()
    except KeyError:
        stats["empty_repository"] += 1
        return RepoMining(name, [], {}, {}, stats)

    store = r.object_store
    detector = RenameDetector(store, max_files=rename_max_files)
    cands: list[_Candidate] = []
    commits = 0
    try:
        walker = iter(r.get_walker(include=[head]))
    except KeyError:
        raise DataError(f"{name}: HEAD {head.decode()} is not in the object store (broken repository); "
                        "repair it (git fsck) or clone it again") from None
    bar = tqdm(desc=f"mine {name}", unit="commit", disable=not progress, leave=False)
    while True:
        try:
            entry = next(walker)
        except StopIteration:
            break
        except KeyError:  # a commit of the history is missing: mine what was walked so far
            stats["missing_object"] += 1
            break
        bar.update(1)
        commit: Commit = entry.commit
        commits += 1
        parents = commit.parents
        if len(parents) > 1 and not cfg.include_merges:
            stats["merge_commit"] += 1
            continue
        if not parents and not cfg.include_root_commits:
            stats["root_commit"] += 1
            continue
        if _year(commit.commit_time) < cfg.min_year:
            stats["commit_before_min_year"] += 1
            continue
        if parents and parents[0] not in store:  # shallow clone: the snapshot is not there
            stats["commit_parent_not_available"] += 1
            continue
        try:
            parent_tree = store[parents[0]].tree if parents else None
            added: dict[str, tuple[bytes, int]] = {}
            for ch in tree_changes(store, parent_tree, commit.tree, rename_detector=detector):
                if ch.type in (CHANGE_RENAME, CHANGE_COPY):
                    if ch.new.path.endswith(b".py"):
                        stats["renamed_not_added"] += 1
                    continue
                if ch.type != CHANGE_ADD or not ch.new.path.endswith(b".py"):
                    continue
                path = ch.new.path.decode("utf-8", "surrogateescape")
                if not utf8_name(path):
                    stats["non_utf8_path"] += 1
                    continue
                added[path] = (ch.new.sha, ch.new.mode)
        except KeyError:  # a tree or blob of this commit is missing
            stats["missing_object"] += 1
            continue
        for path, (sha, mode) in added.items():
            if stat.S_ISLNK(mode) or mode == GITLINK:
                stats["completion_not_regular_file"] += 1
                continue
            try:
                text = reader.text(sha, path, mode)
            except KeyError:
                stats["missing_object"] += 1
                continue
            if text is None:
                stats["completion_binary_or_too_large"] += 1
                continue
            n = len(text)
            if n < cfg.min_chars:
                stats["completion_too_short"] += 1
                continue
            if n > cfg.max_chars:
                stats["completion_too_long"] += 1
                continue
            cands.append(_Candidate(commit.id, commit.commit_time, parent_tree, path, text,
                                    {p: s for p, (s, _) in added.items()}))

    bar.close()
    # One completion file per (repository, path): the most recent addition wins.
    cands.sort(key=lambda c: (-c.time, c.path))
    seen: set[str] = set()
    kept: list[_Candidate] = []
    for c in cands:
        if c.path in seen:
            stats["duplicate_path"] += 1
            continue
        seen.add(c.path)
        kept.append(c)
    if len(kept) > cfg.max_per_repo:
        stats["over_max_per_repo"] += len(kept) - cfg.max_per_repo
        kept = kept[:cfg.max_per_repo]

    snapshots: dict[bytes | None, dict[str, str | None]] = {}
    added_files: dict[str, dict[str, str | None]] = {}
    dps: list[Datapoint] = []
    for c in kept:
        if c.parent_tree not in snapshots:
            snapshots[c.parent_tree] = reader.tree_files(c.parent_tree)
        commit_hex = c.commit.decode()
        if commit_hex not in added_files:
            added_files[commit_hex] = {}
            for p_, s_ in c.added.items():
                try:
                    added_files[commit_hex][p_] = reader.text(s_, p_, 0o100644)
                except KeyError:
                    stats["missing_object"] += 1
        dps.append(Datapoint(repo=name, commit_hash=commit_hex, completion_path=c.path,
                             completion_content=c.content, snapshot=snapshots[c.parent_tree],
                             source=source, meta={"commit_time": c.time}))
    try:
        head_files = reader.tree_files(store[head].tree)
    except KeyError:
        stats["missing_object"] += 1
        head_files = {}
    return RepoMining(name, dps, added_files, head_files, stats, commits)


def build_memory_repo(releases: list[tuple[str, int, dict[str, bytes | None]]]
                      ) -> tuple[BaseRepo, dict[str, str]]:
    """An in-memory git repository with one commit per release (oldest first).

    ``releases`` holds ``(message, unix time, {path: bytes or None})``; ``None`` (a file too large
    to read) becomes a one-byte binary placeholder so it keeps its path with null content. This lets
    the PyPI miner reuse the git miner (and its rename detection) unchanged. Also returns the
    message (release) of each commit, by hex id.
    """
    from dulwich.index import commit_tree
    from dulwich.repo import MemoryRepo

    repo = MemoryRepo()
    store = repo.object_store
    parent: list[bytes] = []
    messages: dict[str, str] = {}
    for message, when, files in releases:
        entries = []
        for path in sorted(files):
            data = files[path]
            blob = Blob.from_string(b"\x00" if data is None else data)
            store.add_object(blob)
            entries.append((path.encode("utf-8", "surrogateescape"), blob.id, 0o100644))
        tree = commit_tree(store, entries)
        c = Commit()
        c.tree = tree
        c.parents = parent
        c.author = c.committer = b"rlctx <rlctx@localhost>"
        c.author_time = c.commit_time = int(when)
        c.author_timezone = c.commit_timezone = 0
        c.message = message.encode()
        store.add_object(c)
        parent = [c.id]
        messages[c.id.decode()] = message
    if parent:
        repo.refs[b"refs/heads/main"] = parent[0]
        repo.refs.set_symbolic_ref(b"HEAD", b"refs/heads/main")
    return repo, messages
