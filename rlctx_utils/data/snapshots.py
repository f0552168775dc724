"""Repository snapshots read safely from archives, folders and blobs.

A *repository snapshot* (SPEC section 2) maps every file path of a repository to its text, with
``None`` for files that are not text. The paper built snapshots from git; our PyPI miner builds them
from source distributions (sdists), which are untrusted input: an archive can hold paths that climb
out of the folder (``../../etc``), absolute paths, links, device files, or a few kilobytes that expand
to gigabytes (a decompression bomb). Nothing here ever extracts to disk: members are read into memory
with per-file and total size caps, unsafe members are skipped and counted in ``stats``.
"""

from __future__ import annotations

import codecs
import io
import os
import posixpath
import re
import stat
import tarfile
import tokenize
import zipfile
import zlib
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from .errors import UnsafeArchiveError

#: Files larger than this keep their path with null content (and are counted as ``too_large``).
MAX_FILE_BYTES = 1_000_000
#: Total bytes of kept file contents per archive; more is treated as a decompression bomb.
MAX_TOTAL_BYTES = 256_000_000
#: Sum of the sizes the archive *declares* for all members (kept or not); more is a bomb.
MAX_DECLARED_BYTES = 2_000_000_000
#: Most members an archive may have.
MAX_MEMBERS = 100_000
#: Largest PAX extended header or GNU long-name/long-link record a tar member may carry. tarfile
#: reads such a record whole, so without this cap a 1 MB archive that declares a 1 GB header
#: makes the reader allocate gigabytes (the per-file caps apply to contents, not headers).
MAX_HEADER_BYTES = 1_000_000

_COOKIE = re.compile(rb"^[ \t\f]*#.*?coding[:=][ \t]*([-\w.]+)")


def decode_text(data: bytes, path: str = "", stats: Counter | None = None) -> str | None:
    """Text of a file, or ``None`` when it is binary.

    UTF-8 (a BOM is dropped) is tried first. Python files may declare another encoding in a PEP 263
    cookie (common in Python 2 code, e.g. ``# -*- coding: latin-1 -*-``); that codec is honoured.
    Anything with a NUL byte or that does not decode is binary, as in the LCA snapshots.
    """
    if b"\x00" in data:
        _count(stats, "binary")
        return None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    if path.endswith(".py"):
        head = data.split(b"\n", 2)[:2]
        if any(_COOKIE.match(line) for line in head):
            try:
                enc, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
                codecs.lookup(enc)
                text = data.decode(enc)
                # a codec such as unicode_escape can produce lone surrogates ("\\ud800"), which no
                # UTF-8 writer (parquet, JSON, the tokenizer) accepts: such a file is not text
                text.encode("utf-8")
                _count(stats, "decoded_with_cookie")
                return text
            except (SyntaxError, LookupError, UnicodeError, ValueError, TypeError):
                pass
    _count(stats, "non_utf8")
    return None


def _count(stats: Counter | None, key: str, n: int = 1) -> None:
    if stats is not None:
        stats[key] += n


def utf8_name(name: str) -> bool:
    """Whether a file name (decoded with ``surrogateescape``) is valid UTF-8: one that is not cannot be
    written to parquet or JSON; such files are skipped and counted as ``non_utf8_path``."""
    try:
        name.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def safe_member_path(name: str) -> str | None:
    """Normalized relative POSIX path of an archive member, or ``None`` if it is unsafe.

    Unsafe: absolute paths, Windows drive letters or backslashes, ``..`` components, NUL bytes,
    control characters.
    """
    if not name or "\x00" in name or "\\" in name or any(ord(ch) < 32 for ch in name):
        return None
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        return None
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if not parts or any(p == ".." for p in parts):
        return None
    return posixpath.join(*parts)


class _HeaderBombError(UnsafeArchiveError):
    pass


class _BoundedTarInfo(tarfile.TarInfo):
    """A TarInfo that refuses PAX and GNU long-name records larger than :data:`MAX_HEADER_BYTES`
    before tarfile reads them into memory."""

    def _check(self) -> None:
        if self.size > MAX_HEADER_BYTES:
            raise _HeaderBombError(f"a tar header record declares {self.size:,} bytes (more than "
                                   f"{MAX_HEADER_BYTES:,}: bomb?)")

    def _proc_gnulong(self, tarfile):  # type: ignore[override]
        self._check()
        return super()._proc_gnulong(tarfile)

    def _proc_pax(self, tarfile):  # type: ignore[override]
        self._check()
        return super()._proc_pax(tarfile)


def iter_archive(path: str | os.PathLike[str], *, max_file_bytes: int = MAX_FILE_BYTES,
                 max_total_bytes: int = MAX_TOTAL_BYTES,
                 max_declared_bytes: int = MAX_DECLARED_BYTES, max_members: int = MAX_MEMBERS,
                 stats: Counter | None = None) -> Iterator[tuple[str, bytes | None]]:
    """Yield ``(path, bytes or None)`` for the regular files of a tar or zip archive.

    Links, devices, FIFOs and unsafe paths are skipped (counted in ``stats``); files over
    ``max_file_bytes`` are yielded with ``None``. Raises :class:`UnsafeArchiveError` for bombs,
    archives with too many members, and archives that are not tar or zip.
    """
    path = Path(path)
    if zipfile.is_zipfile(path):
        yield from _iter_zip(path, max_file_bytes, max_total_bytes, max_declared_bytes, max_members,
                             stats)
        return
    try:
        tf = tarfile.open(path, "r:*", tarinfo=_BoundedTarInfo)
    except _HeaderBombError as exc:
        raise UnsafeArchiveError(f"{path.name}: {exc}") from None
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise UnsafeArchiveError(f"{path.name}: not a readable tar or zip archive ({exc})") from exc
    total = declared = members = 0
    with tf:
        try:
            for m in tf:
                members += 1
                if members > max_members:
                    raise UnsafeArchiveError(f"{path.name}: more than {max_members} members")
                declared += max(m.size, 0)
                if declared > max_declared_bytes:
                    raise UnsafeArchiveError(
                        f"{path.name}: declares more than {max_declared_bytes} bytes (bomb?)")
                if m.isdir():
                    continue
                if m.issym() or m.islnk():
                    _count(stats, "link")
                    continue
                if not m.isreg():
                    _count(stats, "special_file")
                    continue
                name = _member_name(m.name, stats)
                if name is None:
                    continue
                if m.size > max_file_bytes:
                    _count(stats, "too_large")
                    yield name, None
                    continue
                fh = tf.extractfile(m)
                data = fh.read(max_file_bytes + 1) if fh is not None else b""
                total += len(data)
                if total > max_total_bytes:
                    raise UnsafeArchiveError(
                        f"{path.name}: more than {max_total_bytes} bytes of content (bomb?)")
                yield name, data
        except _HeaderBombError as exc:
            raise UnsafeArchiveError(f"{path.name}: {exc}") from None
        except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
            raise UnsafeArchiveError(f"{path.name}: corrupt archive ({exc})") from exc


def _member_name(raw: str, stats: Counter | None) -> str | None:
    """An archive member's path inside the snapshot, or None (counted) when it is unsafe (absolute,
    ``..``) or not valid UTF-8."""
    name = safe_member_path(raw)
    if name is None:
        _count(stats, "unsafe_path")
        return None
    if not utf8_name(name):
        _count(stats, "non_utf8_path")
        return None
    return name


def _iter_zip(path: Path, max_file_bytes: int, max_total_bytes: int, max_declared_bytes: int,
              max_members: int, stats: Counter | None) -> Iterator[tuple[str, bytes | None]]:
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise UnsafeArchiveError(f"{path.name}: corrupt zip archive ({exc})") from exc
    with zf:
        infos = zf.infolist()
        if len(infos) > max_members:
            raise UnsafeArchiveError(f"{path.name}: more than {max_members} members")
        if sum(i.file_size for i in infos) > max_declared_bytes:
            raise UnsafeArchiveError(f"{path.name}: declares more than {max_declared_bytes} bytes (bomb?)")
        total = 0
        for info in infos:
            if info.is_dir():
                continue
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                _count(stats, "link")
                continue
            if stat.S_IFMT(mode) and not stat.S_ISREG(mode):
                _count(stats, "special_file")
                continue
            name = _member_name(info.filename, stats)
            if name is None:
                continue
            if info.file_size > max_file_bytes:
                _count(stats, "too_large")
                yield name, None
                continue
            try:
                with zf.open(info) as fh:  # never trust the declared size: bounded read
                    data = fh.read(max_file_bytes + 1)
            except (zipfile.BadZipFile, OSError, NotImplementedError, RuntimeError, zlib.error):
                _count(stats, "corrupt_member")
                continue
            if len(data) > max_file_bytes:
                _count(stats, "too_large")
                yield name, None
                continue
            total += len(data)
            if total > max_total_bytes:
                raise UnsafeArchiveError(f"{path.name}: more than {max_total_bytes} bytes of content (bomb?)")
            yield name, data


def strip_top_folder(files: dict[str, object]) -> dict[str, object]:
    """Drop the single top-level folder an sdist wraps its tree in (``pkg-1.0/``), if there is one."""
    tops = {p.split("/", 1)[0] for p in files}
    if len(tops) == 1 and all("/" in p for p in files):
        return {p.split("/", 1)[1]: v for p, v in files.items()}
    return files


def read_archive_bytes(path: str | os.PathLike[str], *, max_file_bytes: int = MAX_FILE_BYTES,
                       max_total_bytes: int = MAX_TOTAL_BYTES, strip_top: bool = True,
                       stats: Counter | None = None, **caps: int) -> dict[str, bytes | None]:
    """Like :func:`read_archive` but returns raw bytes (``None`` for oversize members)."""
    files: dict[str, bytes | None] = {}
    for name, data in iter_archive(path, max_file_bytes=max_file_bytes,
                                   max_total_bytes=max_total_bytes, stats=stats, **caps):
        if name in files:
            _count(stats, "duplicate_member")
        files[name] = data
    return strip_top_folder(files) if strip_top else files  # type: ignore[return-value]


def read_archive(path: str | os.PathLike[str], *, max_file_bytes: int = MAX_FILE_BYTES,
                 max_total_bytes: int = MAX_TOTAL_BYTES, strip_top: bool = True,
                 stats: Counter | None = None, **caps: int) -> dict[str, str | None]:
    """Snapshot of a source archive (``.tar.gz``, ``.tar.bz2``, ``.zip`` …): path -> text or None.

    The archive is never extracted; see the module docstring for what is skipped. The single
    top-level folder of an sdist is stripped so paths look like a repository checkout.
    """
    raw = read_archive_bytes(path, max_file_bytes=max_file_bytes, max_total_bytes=max_total_bytes,
                             strip_top=strip_top, stats=stats, **caps)
    return {p: (None if b is None else decode_text(b, p, stats)) for p, b in raw.items()}


def read_dir(path: str | os.PathLike[str], *, max_file_bytes: int = MAX_FILE_BYTES,
             max_total_bytes: int = MAX_TOTAL_BYTES, stats: Counter | None = None,
             skip_dirs: tuple[str, ...] = (".git", ".hg", ".svn", "__pycache__")) -> dict[str, str | None]:
    """Snapshot of a folder on disk. Symlinks are not followed; special files are skipped."""
    root = Path(path)
    out: dict[str, str | None] = {}
    total = 0
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if d not in skip_dirs)
        for fn in sorted(filenames):
            full = Path(dirpath) / fn
            rel = full.relative_to(root).as_posix()
            if not utf8_name(rel):
                _count(stats, "non_utf8_path")
                continue
            st = full.lstat()
            if stat.S_ISLNK(st.st_mode):
                _count(stats, "link")
                continue
            if not stat.S_ISREG(st.st_mode):
                _count(stats, "special_file")
                continue
            if st.st_size > max_file_bytes:
                _count(stats, "too_large")
                out[rel] = None
                continue
            data = full.read_bytes()
            total += len(data)
            if total > max_total_bytes:
                raise UnsafeArchiveError(f"{root}: more than {max_total_bytes} bytes of content")
            out[rel] = decode_text(data, rel, stats)
    return out


def py_chars(snapshot: dict[str, str | None]) -> int:
    """Characters of ``.py`` files in a snapshot: the measure LCA's size buckets use."""
    return sum(len(t) for p, t in snapshot.items() if p.endswith(".py") and t)
