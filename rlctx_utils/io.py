"""Atomic writes and run records.

Every file the artifact writes goes through these helpers: a write lands completely or not at
all, so an interrupted run never leaves a half-written table, figure or checkpoint behind.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import platform
import re
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


#: Temporaries of :func:`atomic_path` / :func:`atomic_dir` are named ``.<name>.<TMP_TAG><random>``
#: and replaced folders ``.<name>.<OLD_TAG><pid>``, so that :func:`remove_stale_temporaries` can
#: recognise (only) its own leftovers of an interrupted run.
TMP_TAG = "rlctx-tmp-"
OLD_TAG = "rlctx-old-"
#: Leftovers named by earlier versions: ``.<name>.old.<pid>`` and ``.step-N.<8 random chars>``.
_LEGACY = re.compile(r"^\.(?:.+\.old\.\d+|(?:step-\d+|final|data|corpus)\.[a-z0-9_]{8}"
                     r"|step-\d+\.accelerate_state|final\.accelerate_state)$")
LOCK_NAME = ".rlctx.lock"


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed onto ``path``.

    The temporary file keeps ``path``'s suffix (or ``suffix``) so libraries that infer the format
    from the extension (matplotlib, pandas) still work. On error the temporary file is removed and
    ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.{TMP_TAG}", suffix=suffix or path.suffix, dir=path.parent)
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
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.{TMP_TAG}", dir=path.parent))
    try:
        yield tmp
        if path.exists():
            old = path.with_name(f".{path.name}.{OLD_TAG}{os.getpid()}")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def remove_stale_temporaries(folder: str | os.PathLike[str], *, depth: int = 1, prefix: str = ".") -> list[Path]:
    """Remove the temporaries an interrupted (killed) writer left in ``folder`` (and ``depth - 1``
    levels of sub-folders): only names made by :func:`atomic_path` / :func:`atomic_dir` and the
    checkpoint writer, and only those starting with ``prefix`` (one result's own temporaries in a
    shared folder). Call it while holding the lock that covers them (:func:`output_lock`), so that
    no live writer owns them. Returns what was removed."""
    root = Path(folder)
    removed: list[Path] = []
    if not root.is_dir():
        return removed
    for entry in sorted(root.iterdir()):
        name = entry.name
        if name.startswith(prefix) and (TMP_TAG in name or OLD_TAG in name or _LEGACY.match(name)) \
                and not entry.is_symlink():
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            removed.append(entry)
        elif depth > 1 and entry.is_dir() and not entry.is_symlink():
            removed += remove_stale_temporaries(entry, depth=depth - 1, prefix=prefix)
    return removed


class OutputLockedError(RuntimeError):
    """Another live process writes the same output folder."""

    user_facing = True


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    return True


@contextlib.contextmanager
def output_lock(folder: str | os.PathLike[str], what: str = "", *,
                lock_name: str = LOCK_NAME) -> Iterator[Path]:
    """Hold an exclusive lock on an output folder for the duration of the block.

    The lock is the file ``folder/.rlctx.lock`` holding the holder's pid and command; it is created
    with ``O_EXCL``, so of two writers only one gets it; the other gets :class:`OutputLockedError`
    naming the holder. A lock left by a process that no longer exists (``kill -9``) is taken over.
    The same process may take the lock again (nested use): the inner block is a no-op.
    """
    d = Path(folder)
    d.mkdir(parents=True, exist_ok=True)
    lock = d / lock_name
    me = os.getpid()
    desc = what or " ".join(sys.argv[:3])
    for _ in range(5):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                info = lock.read_text(encoding="utf-8").split("\n", 1)
                pid = int(info[0])
            except (OSError, ValueError):  # being written right now, or garbage
                info, pid = ["?", ""], -1
                if time.time() - _mtime(lock) < 2:
                    time.sleep(0.2)
                    continue
            if pid == me:
                yield lock
                return
            if _pid_alive(pid):
                holder = info[1].strip() if len(info) > 1 else ""
                raise OutputLockedError(
                    f"{d} is being written by another process (pid {pid}{': ' + holder if holder else ''}); "
                    f"wait for it to finish, or stop it, or pick another output folder "
                    f"(if pid {pid} is not an rlctx command, delete {lock})")
            # stale: its holder is dead; take it over (only one of several takers wins the rename)
            stale = lock.with_name(f"{lock.name}.stale.{me}")
            try:
                os.replace(lock, stale)
                stale.unlink(missing_ok=True)
            except FileNotFoundError:
                pass
            continue
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(f"{me}\n{desc}\n")
        break
    else:
        raise OutputLockedError(f"could not take the lock {lock}; delete it if no rlctx command runs there")
    try:
        yield lock
    finally:
        try:
            if lock.read_text(encoding="utf-8").split("\n", 1)[0] == str(me):
                lock.unlink()
        except (OSError, ValueError):
            pass


def _mtime(p: Path) -> float:
    try:
        return p.stat().st_mtime
    except OSError:
        return 0.0


def os_error_message(exc: OSError) -> str:
    """One line for an operating-system error while writing results: what failed and what to do."""
    where = f" {exc.filename}" if exc.filename else ""
    what = exc.strerror or str(exc)
    hint = {errno.ENOSPC: "free some disk space (or pass another output folder) and rerun: finished "
                          "parts are kept and resume",
            errno.EDQUOT: "free some disk space (quota exceeded) and rerun",
            errno.EACCES: "make it writable or pass another output folder",
            errno.EPERM: "make it writable or pass another output folder",
            errno.EROFS: "the file system is read-only: pass an output folder on a writable one",
            errno.ENOTDIR: "a file is in the way of a folder: remove it or pass another output path",
            errno.EEXIST: "remove it or pass another output path",
            errno.EISDIR: "a folder is where a file is expected: remove it or pass another path",
            }.get(exc.errno or -1, "check the path and rerun")
    return f"{what}:{where}; {hint}"


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


def sha256_file(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file's bytes (hex), read in 1 MiB blocks."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
