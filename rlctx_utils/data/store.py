"""Parquet storage of datapoints and of the file-level corpus, written through ``datasets``.

A mined dataset is a folder::

    DIR/data/train-00000.parquet …       datapoints in the Long Code Arena schema (+ provenance)
    DIR/data/validation-00000.parquet …
    DIR/data/benchmark-00000.parquet …
    DIR/corpus/corpus-00000.parquet …    deduplicated .py files of the training repositories
    DIR/manifest.json                    counts, skips by reason, config, versions

Rows follow the hub's features exactly (``repo``, ``commit_hash``, ``completion_file``,
``repo_snapshot`` as a sequence of ``{filename, content}``, ``completion_lines`` with int32 lists,
``completion_lines_raw`` with int64 lists and ``other`` for random) plus the columns ``split``,
``source`` and ``meta`` (JSON text). Files are written in small shards, each atomically, so memory
stays bounded however large the snapshots are; any parquet reader (``datasets.load_dataset
("parquet", ...)``, pandas, pyarrow) can read them.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from datasets import Dataset, Features, List, Value

from ..io import atomic_path
from .errors import DataError
from .types import CATEGORIES, RAW_NAME, Datapoint

SPLITS = ("train", "validation", "benchmark")

#: The hub's features of ``JetBrains-Research/lca-project-level-code-completion``.
LCA_FEATURES = Features({
    "repo": Value("string"),
    "commit_hash": Value("string"),
    "completion_file": {"filename": Value("string"), "content": Value("string")},
    "completion_lines": {c: List(Value("int32")) for c in
                         ("infile", "inproject", "common", "commited", "non_informative", "random")},
    "repo_snapshot": {"filename": List(Value("string")), "content": List(Value("string"))},
    "completion_lines_raw": {c: List(Value("int64")) for c in
                             ("commited", "common", "infile", "inproject", "non_informative", "other")},
})
#: Our files: the hub's features plus provenance.
FEATURES = Features({**LCA_FEATURES, "split": Value("string"), "source": Value("string"),
                     "meta": Value("string")})
CORPUS_FEATURES = Features({"repo": Value("string"), "path": Value("string"),
                            "content": Value("string"), "sha1": Value("string")})

_PARQUET_KW: dict[str, Any] = {}
#: A shard is also cut when its rows hold this many characters of file content: Arrow's string
#: columns have 32-bit offsets (2 GiB per column), which 64 snapshots of a large repository
#: (pygments: about 40 MB each) overflow.
SHARD_CHARS = 256 * 2**20


def record(dp: Datapoint) -> dict[str, Any]:
    """The row written for one datapoint."""
    rec = dp.to_lca_record()
    rec["meta"] = json.dumps(dp.meta, sort_keys=True, default=str)
    return rec


def _write_shard(rows: list[dict[str, Any]], features: Features, path: Path) -> None:
    from datasets.utils.logging import disable_progress_bar, enable_progress_bar, is_progress_bar_enabled

    was_enabled = is_progress_bar_enabled()
    disable_progress_bar()  # one bar per shard would drown the per-repository bars
    try:
        with atomic_path(path) as tmp:
            ds = (Dataset.from_list(rows, features=features) if rows else
                  Dataset.from_dict({k: [] for k in features}, features=features))
            ds.to_parquet(str(tmp), **_PARQUET_KW)
    finally:
        if was_enabled:
            enable_progress_bar()


def save_datapoints(datapoints: Iterable[Datapoint], out_dir: str | os.PathLike[str],
                    shard_rows: int = 64, prefix: str = "") -> dict[str, list[Path]]:
    """Write datapoints to ``out_dir/<prefix><split>-NNNNN.parquet`` shards (one set per split).

    Returns the written files per split. Datapoints are consumed lazily; at most ``shard_rows``
    rows (and about :data:`SHARD_CHARS` characters of content) per split are held in memory.
    """
    out = Path(out_dir)
    buffers: dict[str, list[dict[str, Any]]] = {}
    chars: dict[str, int] = {}
    written: dict[str, list[Path]] = {}

    def flush(split: str) -> None:
        rows = buffers.pop(split, [])
        chars.pop(split, None)
        if rows:
            files = written.setdefault(split, [])
            path = out / f"{prefix}{split}-{len(files):05d}.parquet"
            _write_shard(rows, FEATURES, path)
            files.append(path)

    for dp in datapoints:
        buf = buffers.setdefault(dp.split, [])
        buf.append(record(dp))
        chars[dp.split] = chars.get(dp.split, 0) + len(dp.completion_content or "") + sum(
            len(t) for t in dp.snapshot.values() if isinstance(t, str))
        if len(buf) >= shard_rows or chars[dp.split] >= SHARD_CHARS:
            flush(dp.split)
    for split in list(buffers):
        flush(split)
    return written


def _data_files(path: Path, split: str | None, prefix: str = "") -> list[Path]:
    if path.is_file():
        return [path]
    if (path / "data").is_dir():
        path = path / "data"
    if not path.is_dir():
        raise DataError(f"{path}: no such file or folder of parquet datapoints")
    files = sorted(path.glob(f"{prefix}*.parquet"))
    if split is not None:
        files = [f for f in files if f.name[len(prefix):].startswith(f"{split}-")]
    return files


def iter_datapoints(path_or_dir: str | os.PathLike[str], split: str | None = None,
                    with_snapshot: bool = True, batch_size: int = 8) -> Iterator[Datapoint]:
    """Stream datapoints from one parquet file or a mined folder (optionally one split)."""
    files = _data_files(Path(path_or_dir), split)
    for f in files:
        pf = pq.ParquetFile(f)
        cols = [c for c in pf.schema_arrow.names if with_snapshot or c != "repo_snapshot"]
        for batch in pf.iter_batches(batch_size=batch_size, columns=cols):
            for rec in batch.to_pylist():
                dp = Datapoint.from_lca_record(rec, split=rec.get("split") or split)
                meta = rec.get("meta")
                dp.meta = json.loads(meta) if meta else {}
                yield dp


def load_datapoints(path_or_dir: str | os.PathLike[str], split: str | None = None,
                    with_snapshot: bool = True) -> list[Datapoint]:
    """All datapoints of a mined folder or parquet file; ``split`` picks train/validation/benchmark."""
    if split is not None and split not in SPLITS and split != "test":
        raise DataError(f"unknown split {split!r}: use one of {SPLITS}")
    return list(iter_datapoints(path_or_dir, split, with_snapshot=with_snapshot))


def content_sha1(text: str) -> str:
    """Hash of a file's content after normalizing line endings and trailing whitespace.

    Used to find the same file in several repositories (vendored copies) across splits.
    """
    norm = "\n".join(ln.rstrip() for ln in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"))
    return hashlib.sha1(norm.strip("\n").encode("utf-8", "surrogatepass")).hexdigest()


def save_corpus(rows: Iterable[dict[str, str]], out_dir: str | os.PathLike[str],
                shard_rows: int = 2000) -> list[Path]:
    """Write corpus rows ``{repo, path, content, sha1}`` to ``out_dir/corpus-NNNNN.parquet``."""
    out = Path(out_dir)
    files: list[Path] = []
    buf: list[dict[str, str]] = []
    for row in rows:
        buf.append(row)
        if len(buf) >= shard_rows:
            files.append(out / f"corpus-{len(files):05d}.parquet")
            _write_shard(buf, CORPUS_FEATURES, files[-1])
            buf = []
    if buf or not files:
        files.append(out / f"corpus-{len(files):05d}.parquet")
        _write_shard(buf, CORPUS_FEATURES, files[-1])
    return files


def corpus_files(path: str | os.PathLike[str]) -> list[Path]:
    p = Path(path)
    if p.is_file():
        return [p]
    if (p / "corpus").is_dir():
        p = p / "corpus"
    files = sorted(p.glob("corpus-*.parquet"))
    if not files:
        raise DataError(f"{path}: no corpus-*.parquet files (mine data first: rlctx mine ...)")
    return files


def load_corpus(path: str | os.PathLike[str], with_paths: bool = False) -> Iterator[Any]:
    """The file-level corpus: yields file contents (or ``(repo, path, content)`` with ``with_paths``)."""
    for f in corpus_files(path):
        for batch in pq.ParquetFile(f).iter_batches(batch_size=256):
            d = batch.to_pydict()
            if with_paths:
                yield from zip(d["repo"], d["path"], d["content"])
            else:
                yield from d["content"]


__all__ = ["CATEGORIES", "RAW_NAME", "FEATURES", "LCA_FEATURES", "SPLITS", "save_datapoints",
           "load_datapoints", "iter_datapoints", "save_corpus", "load_corpus", "content_sha1"]
