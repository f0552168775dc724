"""Atomic writes and run records.

Every file the artifact writes goes through these helpers: a write lands completely or not at
all, so an interrupted run never leaves a half-written table, figure or checkpoint behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

from .paths import REPO_ROOT


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed onto ``path``.

    The temporary file keeps ``path``'s suffix (or ``suffix``) so libraries that infer the format
    from the extension (matplotlib, pandas) still work. On error the temporary file is removed and
    ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=suffix or path.suffix, dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; on success it replaces ``path`` whole."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        yield tmp
        if path.exists():
            old = path.with_name(f".{path.name}.old.{os.getpid()}")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    return write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def read_json(path: str | os.PathLike[str]) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def repo_relative(path: str | os.PathLike[str]) -> str:
    """``path`` relative to the repository when it lies inside it (for records that get committed)."""
    p = Path(path).resolve()
    try:
        return p.relative_to(REPO_ROOT.resolve()).as_posix()
    except ValueError:
        return str(path)


def git_sha(root: Path = REPO_ROOT) -> str | None:
    """Commit of the working tree (with ``-dirty`` when it has uncommitted changes), or None."""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                             text=True, check=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


_VERSIONED = ("torch", "transformers", "tokenizers", "datasets", "accelerate", "peft", "numpy",
              "pandas", "scipy", "matplotlib", "tree-sitter", "tree-sitter-python", "dulwich",
              "papermill")


def versions() -> dict[str, str | None]:
    """Python, platform and the versions of the libraries the results depend on."""
    out: dict[str, str | None] = {"python": sys.version.split()[0], "platform": platform.platform()}
    for name in _VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def sidecar(config: dict[str, Any], wall_time_s: float | None = None, **extra: Any) -> dict[str, Any]:
    """The JSON record written next to every result: config, git SHA, versions, wall time."""
    rec = {
        "config": config,
        "git_sha": git_sha(),
        "versions": versions(),
        "wall_time_s": wall_time_s,
        "written_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    rec.update(extra)
    return rec


def write_sidecar(result_path: str | os.PathLike[str], config: dict[str, Any],
                  wall_time_s: float | None = None, **extra: Any) -> Path:
    """Write ``<result>.json`` beside a result file (``foo.parquet`` -> ``foo.json``)."""
    p = Path(result_path)
    return write_json(p.with_suffix(".json"), sidecar(config, wall_time_s, **extra))
