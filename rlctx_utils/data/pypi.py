"""Mining PyPI source distributions: consecutive releases act as commits.

Without GitHub, the richest source of real Python repositories on a machine that reaches PyPI is
the source distributions (sdists) of pure-Python packages: most hold the package, its tests, docs and
configuration. A *data spec* (``configs/data/<profile>.toml``) pins packages, the releases to use
(oldest first) and the sha256 of each sdist. Release N+1 plays the commit and release N its parent:
the ``.py`` files present in N+1 but not in N (and not renamed from a file of N) are the completion
files; release N is the snapshot. Internally the releases become an in-memory git repository so the
git miner (rename detection, filters, skip counts) is reused unchanged.

Sdists are downloaded once into ``cache_dir()/sdists`` (checked against the pinned sha256) and read
without extraction by :func:`rlctx_utils.data.snapshots.read_archive_bytes`. Spec format::

    profile = "smoke"              # profile whose [data] section gives the filters
    [mining]                       # optional overrides of MiningConfig for this spec
    max_per_repo_benchmark = 40
    [[package]]
    name = "tabulate"
    split = "train"                # train | validation | benchmark
    releases = [
      {version = "0.8.9", filename = "tabulate-0.8.9.tar.gz", sha256 = "…", date = 2021-02-22},
      …
    ]
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import tomllib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..io import sha256_file
from ..paths import cache_dir
from .config import MiningConfig
from .errors import DownloadError, SpecError
from .git_miner import RepoMining, build_memory_repo, mine_git_repo
from .snapshots import read_archive_bytes

INDEX_URL = "https://pypi.org/simple"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_SDIST = re.compile(r"\.(tar\.gz|tgz|tar\.bz2|tar\.xz|zip)$")


@dataclass(frozen=True)
class Release:
    version: str
    filename: str
    sha256: str
    date: _dt.date | None = None

    @property
    def timestamp(self) -> int:
        d = self.date or _dt.date(2020, 1, 1)
        return int(_dt.datetime(d.year, d.month, d.day, tzinfo=_dt.timezone.utc).timestamp())


@dataclass(frozen=True)
class Package:
    name: str
    split: str
    releases: tuple[Release, ...]

    @property
    def repo(self) -> str:
        """Repository name in the LCA style: ``pypi__<name>``."""
        return f"pypi__{self.name.lower()}"


@dataclass
class PypiSpec:
    path: Path
    packages: list[Package]
    profile: str | None = None
    mining: dict[str, Any] = field(default_factory=dict)


def load_spec(path: str | Path) -> PypiSpec:
    """Read and validate a data spec."""
    from .store import SPLITS

    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise SpecError(f"{path}: data spec not found") from exc
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{path}: not valid TOML ({exc})") from exc
    pkgs = []
    seen: set[str] = set()
    for i, p in enumerate(raw.get("package", [])):
        where = f"{path.name}: package #{i + 1}"
        name = p.get("name", "")
        if not isinstance(name, str) or not _NAME.match(name):
            raise SpecError(f"{where}: invalid name {name!r}")
        if name.lower() in seen:
            raise SpecError(f"{where}: {name} listed twice")
        seen.add(name.lower())
        split = p.get("split", "train")
        if split not in SPLITS:
            raise SpecError(f"{where} ({name}): split {split!r} is not one of {SPLITS}")
        rels = []
        releases = p.get("releases", [])
        if not isinstance(releases, list) or not all(isinstance(r, dict) for r in releases):
            raise SpecError(f"{where} ({name}): releases must be a list of tables "
                            "{version = ..., filename = ..., sha256 = ..., date = ...}")
        for r in releases:
            if "version" not in r:
                raise SpecError(f"{where} ({name}): a release has no version; give version = \"X.Y\"")
            fn, sha = r.get("filename", ""), str(r.get("sha256", "")).lower()
            if not fn or "/" in fn or "\\" in fn or not _SDIST.search(fn):
                raise SpecError(f"{where} ({name}): bad sdist filename {fn!r}")
            if not re.fullmatch(r"[0-9a-f]{64}", sha):
                raise SpecError(f"{where} ({name} {r.get('version')}): sha256 must be 64 hex digits")
            date = r.get("date")
            if isinstance(date, _dt.datetime):
                date = date.date()
            elif isinstance(date, str):
                try:
                    date = _dt.date.fromisoformat(date[:10])
                except ValueError:
                    raise SpecError(f"{where} ({name} {r.get('version')}): date {date!r} is not a date; "
                                    "write it as YYYY-MM-DD") from None
            elif date is not None and not isinstance(date, _dt.date):
                raise SpecError(f"{where} ({name} {r.get('version')}): date {date!r} is not a date; "
                                "write it as YYYY-MM-DD")
            rels.append(Release(str(r["version"]), fn, sha, date))
        if len(rels) < 2:
            raise SpecError(f"{where} ({name}): needs at least 2 releases (release N+1 is a commit on N)")
        pkgs.append(Package(name, split, tuple(rels)))
    if not pkgs:
        raise SpecError(f"{path}: no [[package]] entries")
    return PypiSpec(path, pkgs, raw.get("profile"), dict(raw.get("mining", {})))


def sdist_cache() -> Path:
    return cache_dir() / "sdists"




def _session():
    """pip's own HTTP session (honours pip's configuration: index, certificates, proxies)."""
    from pip._internal.network.session import PipSession
    return PipSession()


def index_files(name: str, index_url: str = INDEX_URL) -> list[dict[str, Any]]:
    """Files of a project on the package index (PEP 691 JSON simple API)."""
    sess = _session()
    resp = sess.get(f"{index_url}/{name}/", headers={"Accept": "application/vnd.pypi.simple.v1+json"},
                    timeout=60)
    if resp.status_code != 200:
        raise DownloadError(f"{name}: index answered HTTP {resp.status_code}")
    return resp.json().get("files", [])


def remove_stale_downloads(dest: Path) -> list[Path]:
    """Remove the download folders (``.dl-<pid>-*``) of processes that no longer exist: a download
    killed mid-way leaves one behind. Folders of live downloads (another miner sharing the cache)
    are left alone; unnamed ones of earlier versions are removed after a day."""
    import shutil

    from ..io import _pid_alive

    removed = []
    for d in dest.glob(".dl-*"):
        m = re.match(r"\.dl-(\d+)-", d.name)
        try:
            stale = (not _pid_alive(int(m.group(1)))) if m else (time.time() - d.stat().st_mtime > 86400)
        except OSError:
            continue
        if stale and d.is_dir() and not d.is_symlink():
            shutil.rmtree(d, ignore_errors=True)
            removed.append(d)
    return removed


def fetch_sdist(pkg: Package, rel: Release, dest: Path | None = None, offline: bool = False) -> Path:
    """Path of a release's sdist in the cache, downloading it first if needed (sha256 checked)."""
    dest = dest or sdist_cache()
    path = dest / rel.filename
    if path.exists():
        got = sha256_file(path)
        if got == rel.sha256:
            return path
        # Never delete a file someone put there (our own downloads land only after their check).
        raise DownloadError(f"{path}: sha256 {got} does not match the pin {rel.sha256} of {pkg.name} "
                            f"{rel.version} in the spec; move that file away (it is kept) to download "
                            "the pinned one, or fix the spec's sha256")
    if offline:
        raise DownloadError(f"{rel.filename} is not in {dest}; run `rlctx mine pypi` once with network "
                            "access to PyPI to download it")
    dest.mkdir(parents=True, exist_ok=True)
    remove_stale_downloads(dest)
    with tempfile.TemporaryDirectory(dir=dest, prefix=f".dl-{os.getpid()}-") as tmp:
        tmp_file = Path(tmp) / rel.filename
        try:
            files = {f["filename"]: f for f in index_files(pkg.name)}
            if rel.filename not in files:
                raise DownloadError(f"{pkg.name}: {rel.filename} is not on the index")
            resp = _session().get(files[rel.filename]["url"], timeout=300, stream=True)
            resp.raise_for_status()
            with open(tmp_file, "wb") as fh:
                for chunk in resp.iter_content(1 << 20):
                    fh.write(chunk)
        except ImportError:  # pip's internals moved: fall back to the command line
            subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", pkg.name,
                            "--no-build-isolation", "-d", tmp, f"{pkg.name}=={rel.version}"],
                           check=True, capture_output=True, timeout=600)
        except DownloadError:
            raise
        except Exception as exc:  # network errors of every kind
            raise DownloadError(f"{pkg.name} {rel.version}: download failed ({exc})") from exc
        if not tmp_file.exists():
            raise DownloadError(f"{pkg.name} {rel.version}: {rel.filename} was not downloaded")
        got = sha256_file(tmp_file)
        if got != rel.sha256:
            raise DownloadError(f"{rel.filename}: sha256 {got} does not match the pinned {rel.sha256}")
        tmp_file.replace(path)
    return path


def pin(name: str, versions: list[str], index_url: str = INDEX_URL) -> dict[str, Any]:
    """A spec entry for ``name`` with the sdists of ``versions`` (looked up on the index)."""
    files = index_files(name, index_url)
    rels = []
    for v in versions:
        cands = [f for f in files if _SDIST.search(f["filename"]) and
                 re.fullmatch(rf"{re.escape(name)}-{re.escape(v)}\.(tar\.gz|tgz|tar\.bz2|zip)",
                              f["filename"], flags=re.I) or
                 re.fullmatch(rf"{re.escape(name.replace('-', '_'))}-{re.escape(v)}\.(tar\.gz|zip)",
                              f["filename"], flags=re.I)]
        if not cands:
            raise DownloadError(f"{name}: no sdist for version {v}")
        f = cands[0]
        date = (f.get("upload-time") or "")[:10] or None
        rels.append({"version": v, "filename": f["filename"], "sha256": f["hashes"]["sha256"],
                     "date": date})
    return {"name": name, "releases": rels}


#: Paths an sdist adds that are not part of the repository tree.
def is_sdist_metadata(path: str) -> bool:
    first = path.split("/", 1)[0]
    return path == "PKG-INFO" or first.endswith(".egg-info")


def mine_package(pkg: Package, cfg: MiningConfig, offline: bool = False,
                 progress: bool = True) -> RepoMining:
    """Mine one package's release series (downloading missing sdists unless ``offline``)."""
    stats: Counter = Counter()
    releases = []
    for rel in pkg.releases:
        path = fetch_sdist(pkg, rel, offline=offline)
        files = read_archive_bytes(path, max_file_bytes=cfg.max_file_bytes,
                                   max_total_bytes=cfg.max_total_bytes, stats=stats)
        meta = [p for p in files if is_sdist_metadata(p)]
        for p in meta:
            del files[p]
        stats["sdist_metadata_file"] += len(meta)
        releases.append((rel.version, rel.timestamp, files))
    repo, messages = build_memory_repo(releases)
    mined = mine_git_repo(repo, cfg, name=pkg.repo, source=f"pypi:{pkg.name}", progress=progress)
    mined.stats.update(stats)
    order = [r.version for r in pkg.releases]
    for dp in mined.datapoints:
        version = messages[dp.commit_hash]
        dp.meta["release"] = version
        dp.meta["previous_release"] = order[order.index(version) - 1]
        dp.source = f"pypi:{pkg.name}=={version}"
    return mined


def package_key(pkg: Package) -> str:
    """What a package's mined datapoints depend on in the spec: its releases and their pins."""
    blob = json.dumps([[r.version, r.filename, r.sha256, str(r.date)] for r in pkg.releases])
    return "pypi:" + hashlib.sha256(blob.encode()).hexdigest()[:16]


def spec_summary(spec: PypiSpec) -> str:
    return json.dumps({p.name: [p.split, [r.version for r in p.releases]] for p in spec.packages})
