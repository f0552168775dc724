"""``rlctx gpu import``: a GPU run's archive unpacked into ``results/``, and nothing outside it.

Every member must be a plain file or folder named ``results/<profile>/...`` or ``results/bench/...``
(no absolute path, no ``..``, no link or device); anything else refuses the whole archive before a
file is written. A file already there with the same bytes is left alone; one with other bytes is
an error unless ``force`` (reruns never clobber silently). Files are written atomically.
"""

from __future__ import annotations

import re
import tarfile
from pathlib import Path, PurePosixPath
from typing import Any

_PROFILE = re.compile(r"^[A-Za-z0-9_.\-]+$")


class ArchiveError(RuntimeError):
    """An archive that cannot be imported; the message says why."""


def _check(member: tarfile.TarInfo) -> PurePosixPath | None:
    """The member's path inside results/ (None for a folder entry); raises on anything unsafe."""
    name = member.name
    p = PurePosixPath(name)
    if name.startswith("/") or "\\" in name or ".." in p.parts or not p.parts or p.parts[0] != "results":
        raise ArchiveError(f"refusing the archive: member {name!r} is not under results/")
    if member.isdir():
        return None
    if not member.isfile():
        raise ArchiveError(f"refusing the archive: member {name!r} is not a plain file (link or device)")
    if len(p.parts) < 3 or not _PROFILE.match(p.parts[1]) or p.parts[1] in (".", "paper", "executed"):
        raise ArchiveError(f"refusing the archive: {name!r} is not in results/<profile>/ or results/bench/")
    return PurePosixPath(*p.parts[1:])


def import_archive(archive: str | Path, *, results: str | Path | None = None, force: bool = False) -> dict[str, Any]:
    from ..io import atomic_path
    from ..paths import RESULTS

    archive = Path(archive)
    if not archive.is_file():
        raise ArchiveError(f"no archive at {archive}: give the .tar.gz that the GPU run wrote to $OUT")
    root = Path(results) if results else RESULTS
    try:
        tar = tarfile.open(archive, "r:*")
    except tarfile.TarError as exc:
        raise ArchiveError(f"{archive} is not a readable tar archive ({exc})") from None
    with tar:
        members = [(m, _check(m)) for m in tar.getmembers()]
        files = [(m, rel) for m, rel in members if rel is not None]
        if not files:
            raise ArchiveError(f"{archive} holds no results")
        conflicts, todo, same = [], [], 0
        for m, rel in files:
            data = tar.extractfile(m).read()  # type: ignore[union-attr]
            dest = root.joinpath(*rel.parts)
            if dest.exists():
                if dest.is_file() and dest.read_bytes() == data:
                    same += 1
                    continue
                if not force:
                    conflicts.append(str(dest))
                    continue
            todo.append((dest, data))
        if conflicts:
            raise ArchiveError(f"{len(conflicts)} file(s) already exist with other contents (first: {conflicts[0]}); "
                               "nothing was written: pass --force to overwrite them")
        for dest, data in todo:
            with atomic_path(dest) as tmp:
                tmp.write_bytes(data)
    folders = sorted({f"results/{rel.parts[0]}" for _, rel in files})
    return {"written": len(todo), "same": same, "results": str(root), "folders": folders}
