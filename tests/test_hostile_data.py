"""Hostile and unusual input to the data layer (issue 12): crafted archives and git repositories built
here, stale resumes, two writers on one folder, leftovers of killed runs, one-line errors."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from rlctx_utils.cli import main
from rlctx_utils.data import load_datapoints
from rlctx_utils.data.config import MiningConfig
from rlctx_utils.data.errors import MiningConfigError, SpecError, UnsafeArchiveError
from rlctx_utils.data.git_miner import mine_git_repo
from rlctx_utils.data.pypi import load_spec
from rlctx_utils.data.snapshots import decode_text, read_archive

from test_data_git import Git, body
from test_data_pypi import py, sdist


def one_line_error(capsys) -> str:
    """The one error line a failing command printed (other stderr lines are information)."""
    err = capsys.readouterr().err.strip()
    lines = [ln for ln in err.splitlines() if ": error:" in ln]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


# -- 1. header bombs -----------------------------------------------------------------------------

def _header_bomb(path: Path, kind: bytes, declared: int = 256 << 20) -> None:
    """A gzip tar whose first header is a PAX ('x') or GNU long-name ('L') record declaring
    ``declared`` bytes, followed by that many zero bytes: a few hundred KB on disk (gzip members of
    zeros, concatenated)."""
    info = tarfile.TarInfo("././@PaxHeader" if kind == b"x" else "././@LongLink")
    info.size = declared
    info.type = kind
    header = info.tobuf(format=tarfile.USTAR_FORMAT) if kind == b"x" else \
        info.tobuf(format=tarfile.GNU_FORMAT)[-512:]
    chunk = 16 << 20
    zeros = gzip.compress(bytes(chunk), compresslevel=9)
    with open(path, "wb") as fh:
        fh.write(gzip.compress(header))
        for _ in range(declared // chunk):
            fh.write(zeros)


@pytest.mark.parametrize("kind", [b"x", b"L"])
def test_tar_header_bomb_is_refused_without_allocating(tmp_path, kind):
    import tracemalloc

    bomb = tmp_path / "bomb-1.0.tar.gz"
    _header_bomb(bomb, kind)
    assert bomb.stat().st_size < 1_000_000
    tracemalloc.start()
    try:
        with pytest.raises(UnsafeArchiveError) as err:
            read_archive(bomb)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 50 << 20, f"reading one header allocated {peak >> 20} MB"
    assert "header record declares 268,435,456 bytes" in str(err.value)


# -- 3. names and texts that are not UTF-8 -------------------------------------------------------

def test_non_utf8_member_name_and_surrogate_cookie(tmp_path):
    path = tmp_path / "pkg-1.0.tar.gz"
    with tarfile.open(path, "w:gz", format=tarfile.GNU_FORMAT, encoding="latin-1") as tf:
        for name, data in ((b"pkg-1.0/caf\xe9.py".decode("latin-1"), b"x = 1\n"),
                           ("pkg-1.0/ok.py", b"y = 2\n")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    from collections import Counter
    stats: Counter = Counter()
    files = read_archive(path, stats=stats)
    assert list(files) == ["ok.py"] and stats["non_utf8_path"] == 1
    for name in files:
        name.encode("utf-8")  # what parquet and JSON need
    # a unicode_escape cookie decoding to a lone surrogate is not text
    raw = b"# -*- coding: unicode_escape -*-\nx = '\\ud800'\n\xff\n"
    text = decode_text(raw, "m.py")
    assert text is None or text.encode("utf-8")


def test_mining_survives_non_utf8_names_and_surrogates(tmp_path, monkeypatch, capsys):
    cache = tmp_path / "cache"
    d = cache / "sdists"
    d.mkdir(parents=True)
    monkeypatch.setenv("RLCTX_CACHE", str(cache))
    # not UTF-8 (\xff), so the cookie is honoured, and the escape decodes to a lone surrogate
    evil_py = b"# -*- coding: unicode_escape -*-\n" + b"x = '\\ud800\xff'  # padding padding\n" * 40
    base = {"m/__init__.py": py("core_fn")}
    shas = [sdist(d, "weird", "1.0", base),
            _sdist_bytes(d, "weird", "1.1", {**base, "m/new.py": py("new_fn", call="core_fn"),
                                             "m/surrogate.py": evil_py},
                         raw_names={b"weird-1.1/m/caf\xe9.py": py("cafe_fn").encode()})]
    spec = tmp_path / "spec.toml"
    spec.write_text('profile = "smoke"\n[[package]]\nname = "weird"\nsplit = "train"\nreleases = [\n' +
                    "".join(f'  {{version = "{v}", filename = "weird-{v}.tar.gz", sha256 = "{s}"}},\n'
                            for v, s in zip(("1.0", "1.1"), shas)) + "]\n")
    out = tmp_path / "out"
    assert main(["mine", "pypi", "--spec", str(spec), "--out", str(out), "--offline", "--quiet"]) == 0
    paths = sorted(dp.completion_path for dp in load_datapoints(out, split="train"))
    assert paths == ["m/new.py"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["skips"]["non_utf8_path"] == 1


def _sdist_bytes(d: Path, name: str, version: str, files: dict[str, str | bytes],
                 raw_names: dict[bytes, bytes]) -> str:
    """Like ``sdist`` plus members whose names are raw (possibly non-UTF-8) bytes."""
    path = d / f"{name}-{version}.tar.gz"
    top = f"{name}-{version}"
    with tarfile.open(path, "w:gz", format=tarfile.GNU_FORMAT, encoding="utf-8",
                      errors="surrogateescape") as tf:
        items = [(f"{top}/{k}", v if isinstance(v, bytes) else v.encode()) for k, v in files.items()]
        items += [(k.decode("utf-8", "surrogateescape"), v) for k, v in raw_names.items()]
        for n, data in items:
            info = tarfile.TarInfo(n)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_git_tree_entry_not_utf8(tmp_path):
    g = Git(tmp_path / "r")
    g.write("core.py", body("core_fn"))
    g.commit("root")
    g.write("a.py", body("a_fn", call="core_fn"))
    (g.path / os.fsdecode(b"caf\xe9.py")).write_bytes(body("cafe_fn").encode())
    g.commit("add")
    mined = mine_git_repo(g.path, MiningConfig(), progress=False)
    assert [dp.completion_path for dp in mined.datapoints] == ["a.py"]
    assert mined.stats["non_utf8_path"] >= 1
    for dp in mined.datapoints:
        for p in dp.snapshot:
            p.encode("utf-8")


# -- 4. shallow clones and missing objects -------------------------------------------------------

def _history(path: Path, n: int = 4) -> Git:
    g = Git(path)
    g.write("core.py", body("core_fn"))
    g.commit("root", date="2020-01-01T00:00:00")
    for i in range(1, n):
        g.write(f"m{i}.py", body(f"f{i}", call="core_fn"))
        g.commit(f"c{i}", date=f"2020-01-0{i + 1}T00:00:00")
    return g


@pytest.mark.parametrize("depth", [1, 2])
def test_shallow_clone_is_mined_as_far_as_it_goes(tmp_path, depth, capsys):
    src = _history(tmp_path / "src")
    clone = tmp_path / f"shallow{depth}"
    subprocess.run(["git", "clone", "-q", "--depth", str(depth), f"file://{src.path}", str(clone)],
                   check=True, capture_output=True)
    out = tmp_path / "out"
    assert main(["mine", "git", str(clone), "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "1 commits had no parent available" in printed
    got = sorted(dp.completion_path for dp in load_datapoints(out, split="train"))
    assert got == (["m3.py"] if depth == 2 else [])


def test_missing_object_is_counted_not_a_traceback(tmp_path, capsys):
    g = _history(tmp_path / "r")
    # delete the loose object of the root commit's tree blob for core.py
    sha = g("rev-parse", "HEAD~2:core.py").strip()
    (g.path / ".git" / "objects" / sha[:2] / sha[2:]).unlink()
    out = tmp_path / "out"
    assert main(["mine", "git", str(g.path), "--out", str(out), "--quiet"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["skips"].get("missing_object", 0) >= 1


# -- 5. resume is keyed on the repository's content ------------------------------------------------

def test_resume_notices_a_new_commit(tmp_path, capsys):
    g = _history(tmp_path / "r", n=2)
    out = tmp_path / "out"
    assert main(["mine", "git", str(g.path), "--out", str(out), "--quiet"]) == 0
    assert [dp.completion_path for dp in load_datapoints(out, split="train")] == ["m1.py"]
    g.write("m9.py", body("f9", call="core_fn"))
    g.commit("c9", date="2020-02-01T00:00:00")
    capsys.readouterr()
    assert main(["mine", "git", str(g.path), "--out", str(out), "--quiet"]) == 0
    assert "(0 repositories resumed)" in capsys.readouterr().out
    assert sorted(dp.completion_path for dp in load_datapoints(out, split="train")) == ["m1.py", "m9.py"]
    capsys.readouterr()
    assert main(["mine", "git", str(g.path), "--out", str(out), "--quiet"]) == 0  # unchanged: resumed
    assert "(1 repositories resumed)" in capsys.readouterr().out


def test_resume_notices_a_changed_spec(tmp_path, monkeypatch, capsys):
    cache = tmp_path / "cache"
    d = cache / "sdists"
    d.mkdir(parents=True)
    monkeypatch.setenv("RLCTX_CACHE", str(cache))
    base = {"m/__init__.py": py("core_fn")}
    rel = {"1.0": sdist(d, "p", "1.0", base), "1.1": sdist(d, "p", "1.1", {**base, "m/a.py": py("a_fn")}),
           "1.2": sdist(d, "p", "1.2", {**base, "m/a.py": py("a_fn"), "m/b.py": py("b_fn")})}

    def write_spec(versions):
        spec = tmp_path / "spec.toml"
        spec.write_text('profile = "smoke"\n[[package]]\nname = "p"\nreleases = [\n' + "".join(
            f'  {{version = "{v}", filename = "p-{v}.tar.gz", sha256 = "{rel[v]}"}},\n' for v in versions) + "]\n")
        return spec

    out = tmp_path / "out"
    args = ["mine", "pypi", "--out", str(out), "--offline", "--quiet", "--spec"]
    assert main([*args, str(write_spec(["1.0", "1.1"]))]) == 0
    assert [dp.completion_path for dp in load_datapoints(out, split="train")] == ["m/a.py"]
    capsys.readouterr()
    assert main([*args, str(write_spec(["1.0", "1.1", "1.2"]))]) == 0
    assert "(0 repositories resumed)" in capsys.readouterr().out
    assert sorted(dp.completion_path for dp in load_datapoints(out, split="train")) == ["m/a.py", "m/b.py"]


# -- 6. two writers on one folder ----------------------------------------------------------------

@pytest.fixture
def other_process():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield proc
    proc.kill()
    proc.wait()


def test_second_writer_is_refused_and_stale_lock_taken_over(tmp_path, other_process, capsys):
    g = _history(tmp_path / "r", n=2)
    out = tmp_path / "out"
    out.mkdir()
    (out / ".rlctx.lock").write_text(f"{other_process.pid}\nrlctx mine git\n")
    assert main(["mine", "git", str(g.path), "--out", str(out), "--quiet", "--force"]) == 2
    err = one_line_error(capsys)
    assert f"pid {other_process.pid}" in err and not (out / "manifest.json").exists()
    other_process.kill()
    other_process.wait()  # now a dead pid: its lock is stale and taken over
    assert main(["mine", "git", str(g.path), "--out", str(out), "--quiet"]) == 0
    assert (out / "manifest.json").exists() and not (out / ".rlctx.lock").exists()


def test_lock_helper(tmp_path, other_process):
    from rlctx_utils.io import OutputLockedError, output_lock

    with output_lock(tmp_path / "x", "first") as lock:
        assert lock.read_text().split("\n")[0] == str(os.getpid())
        with output_lock(tmp_path / "x"):  # the same process: nested use is fine
            pass
        assert lock.exists()
    assert not lock.exists()
    (tmp_path / "x" / ".rlctx.lock").write_text(f"{other_process.pid}\nrlctx train\n")
    with pytest.raises(OutputLockedError, match=f"pid {other_process.pid}: rlctx train"):
        with output_lock(tmp_path / "x"):
            pass


# -- 7. a single value for a list-valued key -----------------------------------------------------

def test_exclude_repos_single_name(tmp_path, capsys):
    a = _history(tmp_path / "alpha", n=2)
    b = _history(tmp_path / "beta", n=2)
    out = tmp_path / "out"
    assert main(["mine", "git", str(a.path), str(b.path), "--out", str(out), "--quiet",
                 "--set", "data.exclude_repos=beta"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["excluded_repositories"] == ["beta"]
    assert {dp.repo for dp in load_datapoints(out, split="train")} == {"alpha"}
    assert MiningConfig.from_mapping({"exclude_repos": "beta"}).exclude_repos == ("beta",)


# -- 9. a cached file that does not match its pin is never deleted --------------------------------

def test_mismatching_cached_sdist_is_kept_and_reported(tmp_path, monkeypatch, capsys):
    cache = tmp_path / "cache"
    d = cache / "sdists"
    d.mkdir(parents=True)
    monkeypatch.setenv("RLCTX_CACHE", str(cache))
    base = {"m/__init__.py": py("core_fn")}
    sdist(d, "p", "1.0", base)
    sha = sdist(d, "p", "1.1", {**base, "m/a.py": py("a_fn")})
    mine = d / "p-1.0.tar.gz"
    before = mine.read_bytes()
    spec = tmp_path / "spec.toml"
    spec.write_text('profile = "smoke"\n[[package]]\nname = "p"\nreleases = [\n'
                    f'  {{version = "1.0", filename = "p-1.0.tar.gz", sha256 = "{"0" * 64}"}},\n'
                    f'  {{version = "1.1", filename = "p-1.1.tar.gz", sha256 = "{sha}"}},\n]\n')
    assert main(["mine", "pypi", "--spec", str(spec), "--out", str(tmp_path / "o"), "--offline", "--quiet"]) == 2
    err = one_line_error(capsys)
    assert "does not match" in err and "p-1.0.tar.gz" in err and "not in" not in err
    assert mine.read_bytes() == before


# -- 10. a benchmark name that matches nothing ---------------------------------------------------

def test_benchmark_name_must_match_a_repository(tmp_path, capsys):
    a = _history(tmp_path / "alpha", n=2)
    assert main(["mine", "git", str(a.path), "--out", str(tmp_path / "o"), "--quiet",
                 "--benchmark", "alfa"]) == 2
    err = one_line_error(capsys)
    assert "alfa" in err and "alpha" in err
    assert not (tmp_path / "o").exists()


# -- 15. one-line messages -----------------------------------------------------------------------

@pytest.mark.parametrize("override,expect", [
    ("data.max_per_rep=5", "did you mean 'data.max_per_repo'"),
    ("data.min_chars=abc", "expected an integer"),
    ("dataa.min_chars=5", "did you mean 'data'"),
])
def test_mining_overrides_are_checked(tmp_path, capsys, override, expect):
    a = _history(tmp_path / "alpha", n=2)
    assert main(["mine", "git", str(a.path), "--out", str(tmp_path / "o"), "--quiet", "--set", override]) == 2
    assert expect in one_line_error(capsys)


def test_mining_config_rejects_unknown_keys():
    with pytest.raises(MiningConfigError, match="did you mean 'max_per_repo'"):
        MiningConfig.from_mapping({"max_per_rep": 5})
    with pytest.raises(MiningConfigError, match="must be an integer"):
        MiningConfig.from_mapping({"min_chars": "abc"})


def test_bad_spec_date_and_missing_version(tmp_path):
    ok = '{version = "1", filename = "x-1.tar.gz", sha256 = "' + "a" * 64 + '"'
    for release, msg in ((ok + ', date = "yesterday"}', "YYYY-MM-DD"),
                         ('{filename = "x-1.tar.gz", sha256 = "' + "a" * 64 + '"}', "no version")):
        spec = tmp_path / "s.toml"
        spec.write_text(f'[[package]]\nname = "x"\nreleases = [{release}, {ok}}}]\n')
        with pytest.raises(SpecError, match=msg):
            load_spec(spec)


def test_output_path_that_is_a_file_or_read_only(tmp_path, capsys):
    a = _history(tmp_path / "alpha", n=2)
    f = tmp_path / "afile"
    f.write_text("x")
    assert main(["mine", "git", str(a.path), "--out", str(f), "--quiet"]) == 2
    assert "is a file" in one_line_error(capsys)
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        if os.access(ro, os.W_OK):
            pytest.skip("running as a user that ignores permissions")
        assert main(["mine", "git", str(a.path), "--out", str(ro / "o"), "--quiet"]) == 2
        assert "Permission denied" in one_line_error(capsys)
    finally:
        ro.chmod(0o755)


def test_full_disk_is_one_line(tmp_path, capsys, monkeypatch):
    import errno

    from rlctx_utils import io as rio

    a = _history(tmp_path / "alpha", n=2)

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "o" / "x"))

    monkeypatch.setattr(rio, "write_text", full)
    monkeypatch.setattr("rlctx_utils.data.pipeline.write_json", lambda *a, **k: full())
    assert main(["mine", "git", str(a.path), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    assert "No space left on device" in one_line_error(capsys)


def test_broken_archive_names_package_and_reason(tmp_path, monkeypatch, capsys):
    cache = tmp_path / "cache"
    d = cache / "sdists"
    d.mkdir(parents=True)
    monkeypatch.setenv("RLCTX_CACHE", str(cache))
    sha0 = sdist(d, "p", "1.0", {"m/__init__.py": py("core_fn")})
    bomb = d / "p-1.1.tar.gz"
    _header_bomb(bomb, b"x")
    sha1 = hashlib.sha256(bomb.read_bytes()).hexdigest()
    spec = tmp_path / "spec.toml"
    spec.write_text('profile = "smoke"\n[[package]]\nname = "p"\nreleases = [\n'
                    f'  {{version = "1.0", filename = "p-1.0.tar.gz", sha256 = "{sha0}"}},\n'
                    f'  {{version = "1.1", filename = "p-1.1.tar.gz", sha256 = "{sha1}"}},\n]\n')
    assert main(["mine", "pypi", "--spec", str(spec), "--out", str(tmp_path / "o"), "--offline", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "error: pypi__p (train) was skipped: p-1.1.tar.gz: a tar header record declares" in printed


# -- 16. leftovers of a killed run are cleaned up --------------------------------------------------

def test_stale_temporaries_of_mining_are_removed(tmp_path, capsys):
    a = _history(tmp_path / "alpha", n=2)
    out = tmp_path / "out"
    assert main(["mine", "git", str(a.path), "--out", str(out), "--quiet"]) == 0
    junk = [out / ".data.old.4242", out / ".data.rlctx-tmp-abc123", out / ".manifest.rlctx-tmp-x.json",
            out / ".work" / "repos" / ".alpha.rlctx-tmp-zz", out / ".corpus.rlctx-old-77"]
    for j in junk:
        if j.suffix == ".json":
            j.write_text("{}")
        else:
            (j / "sub").mkdir(parents=True)
    keep = out / ".keep_me"
    keep.write_text("user file")
    assert main(["mine", "git", str(a.path), "--out", str(out), "--quiet"]) == 0
    assert not any(j.exists() for j in junk) and keep.exists()


def test_stale_download_folders_are_removed(tmp_path, other_process):
    from rlctx_utils.data.pypi import remove_stale_downloads

    dead = tmp_path / ".dl-999999999-abc"
    live = tmp_path / f".dl-{other_process.pid}-def"
    for d in (dead, live):
        (d / "partial.tar.gz").parent.mkdir()
        (d / "partial.tar.gz").write_bytes(b"x")
    assert remove_stale_downloads(tmp_path) == [dead]
    assert live.exists() and not dead.exists()


def test_resume_notices_a_new_common_name_list(tmp_path, capsys, monkeypatch):
    g = _history(tmp_path / "r", n=2)
    out = tmp_path / "out"
    assert main(["mine", "git", str(g.path), "--out", str(out), "--quiet"]) == 0
    monkeypatch.setattr("rlctx_utils.data.pipeline.labels_key", lambda: "another-list")
    capsys.readouterr()
    assert main(["mine", "git", str(g.path), "--out", str(out), "--quiet"]) == 0
    assert "(0 repositories resumed)" in capsys.readouterr().out
