"""The git miner on real repositories made in the test (git CLI), end to end through the CLI."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from rlctx_utils.cli import main
from rlctx_utils.data import load_corpus, load_datapoints
from rlctx_utils.data.config import MiningConfig
from rlctx_utils.data.git_miner import mine_git_repo


def body(name: str, n: int = 40, call: str = "") -> str:
    """A Python file of about 40 * n characters declaring ``name``."""
    lines = [f"def {name}(x):", f'    """Function {name}."""']
    lines += [f"    v{i} = x * {i} + len(str(x))  # step {i}" for i in range(n)]
    if call:
        lines.append(f"    w = {call}(x)")
    lines.append("    return x")
    return "\n".join(lines) + "\n"


class Git:
    def __init__(self, path: Path):
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        self("init", "-q", "-b", "main")

    def __call__(self, *args: str, date: str = "2020-01-01T00:00:00") -> str:
        env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
               "GIT_COMMITTER_EMAIL": "t@t", "GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date,
               "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_SYSTEM": "/dev/null"}
        return subprocess.run(["git", *args], cwd=self.path, env=env, check=True,
                              capture_output=True, text=True).stdout

    def write(self, rel: str, data: str | bytes) -> None:
        p = self.path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data if isinstance(data, bytes) else data.encode())

    def commit(self, msg: str, date: str = "2020-01-01T00:00:00") -> None:
        self("add", "-A", date=date)
        self("commit", "-q", "--allow-empty", "-m", msg, date=date)


@pytest.fixture(scope="module")
def history(tmp_path_factory) -> Path:
    """A repository whose history exercises every rule of the miner."""
    g = Git(tmp_path_factory.mktemp("repos") / "demo")
    g.write("README.md", "# demo\n")
    g.write("pkg/core.py", body("core_fn"))
    g.commit("root", date="2009-06-01T00:00:00")                       # root commit: skipped
    g.write("pkg/old.py", body("old_fn"))
    g.commit("old", date="2009-12-01T00:00:00")                        # before 2010: skipped
    g.write("pkg/a.py", body("a_fn", call="core_fn"))
    g.write("pkg/b.py", body("b_fn", call="a_fn"))
    g.write("pkg/tiny.py", "x = 1\n")                                  # too short
    g.write("pkg/huge.py", body("huge_fn", n=800))                     # too long
    g.write("assets/logo.png", b"\x89PNG\r\n\x00\x00\x00binary")
    g.write("pkg/latin.py", "# -*- coding: latin-1 -*-\n".encode() + body("latin_fn").encode()
            + "s = 'caf\xe9'\n".encode("latin-1"))
    g.commit("add a, b", date="2015-03-01T00:00:00")                   # 3 datapoints (a, b, latin)
    g("mv", "pkg/b.py", "pkg/b_renamed.py")
    g.commit("rename b", date="2015-04-01T00:00:00")                   # rename: not an addition
    g("rm", "-q", "pkg/a.py")
    g.commit("delete a", date="2015-05-01T00:00:00")                   # deletion: nothing
    g.write("pkg/a.py", body("a_fn_v2", call="core_fn"))
    g.commit("re-add a", date="2016-01-01T00:00:00")                   # same path: newest wins
    g("checkout", "-q", "-b", "feature")
    g.write("pkg/feat.py", body("feat_fn", call="core_fn"))
    g.commit("feature", date="2016-02-01T00:00:00")                    # 1 datapoint
    g("checkout", "-q", "main")
    g.write("pkg/main_side.py", body("side_fn"))
    g.commit("main side", date="2016-02-02T00:00:00")                  # 1 datapoint
    g("merge", "-q", "--no-ff", "feature", "-m", "merge", date="2016-03-01T00:00:00")  # merge: skipped
    return g.path


def test_miner_rules(history):
    m = mine_git_repo(history, MiningConfig(), progress=False)
    by_path = {dp.completion_path: dp for dp in m.datapoints}
    assert set(by_path) == {"pkg/a.py", "pkg/b.py", "pkg/latin.py", "pkg/feat.py", "pkg/main_side.py"}
    assert "a_fn_v2" in by_path["pkg/a.py"].completion_content          # newest addition of the path
    assert by_path["pkg/latin.py"].completion_content.endswith("s = 'café'\n")
    snap = by_path["pkg/b.py"].snapshot                                 # first parent, before the commit
    assert set(snap) == {"README.md", "pkg/core.py", "pkg/old.py"}
    assert "pkg/b.py" not in snap
    assert m.stats["root_commit"] == 1
    assert m.stats["commit_before_min_year"] == 1
    assert m.stats["merge_commit"] == 1
    assert m.stats["renamed_not_added"] == 1
    assert m.stats["completion_too_short"] == 1 and m.stats["completion_too_long"] == 1
    assert m.stats["duplicate_path"] == 1
    times = [dp.meta["commit_time"] for dp in m.datapoints]
    assert times == sorted(times, reverse=True)
    # max_per_repo keeps the newest; a later snapshot holds a binary file with null content
    m2 = mine_git_repo(history, MiningConfig(max_per_repo=2), progress=False)
    assert [dp.completion_path for dp in m2.datapoints] == ["pkg/main_side.py", "pkg/feat.py"]
    assert m2.stats["over_max_per_repo"] == 3
    assert m2.datapoints[0].snapshot["assets/logo.png"] is None
    m3 = mine_git_repo(history, MiningConfig(min_year=2000, include_root_commits=True), progress=False)
    assert {"pkg/core.py", "pkg/old.py"} <= {dp.completion_path for dp in m3.datapoints}


def test_empty_repository(tmp_path):
    Git(tmp_path / "empty")
    m = mine_git_repo(tmp_path / "empty", MiningConfig(), progress=False)
    assert m.datapoints == [] and m.stats["empty_repository"] == 1


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def p_stat(p: Path) -> tuple[int, int]:
    st = p.lstat()
    return st.st_size, st.st_mtime_ns


def test_cli_end_to_end_splits_labels_resume(history, tmp_path, capsys):
    other = Git(tmp_path / "other")
    other.write("lib/base.py", body("base_fn"))
    other.commit("root", date="2018-01-01T00:00:00")
    other.write("lib/use.py", body("use_fn", call="base_fn"))
    other.write("lib/vendored.py", body("core_fn"))  # same content as demo's pkg/core.py
    other.commit("add", date="2018-02-01T00:00:00")
    Git(tmp_path / "void")

    out = tmp_path / "out"
    before = {p: p_stat(tmp_path / p) for p in _tree(tmp_path)} | {f"H/{p}": p_stat(history / p)
                                                                     for p in _tree(history)}
    argv = ["mine", "git", str(history), str(other.path), str(tmp_path / "void"), "--out", str(out),
            "--benchmark", "other", "--quiet"]
    assert main(argv) == 0
    manifest = (out / "manifest.json").read_text()
    assert '"empty_repository": 1' in manifest and '"git_sha"' in manifest
    train = load_datapoints(out, split="train")
    bench = load_datapoints(out, split="benchmark")
    assert {dp.repo for dp in train} == {"demo"} and {dp.repo for dp in bench} == {"other"}
    assert len(train) == 5 and len(bench) == 2
    use = next(dp for dp in bench if dp.completion_path == "lib/use.py")
    assert use.completion_lines_raw["inproject"], "call to base_fn is an in-project line"
    assert use.meta["bucket"] == "small" and use.commit_hash
    # vendored copy of a training repository's file: the corpus must not contain it
    corpus = list(load_corpus(out))
    assert corpus and not any("def core_fn" in c for c in corpus)
    # nothing written outside the output folder (the mined repositories are untouched)
    after = {p: p_stat(tmp_path / p) for p in _tree(tmp_path) if not p.startswith("out")} | \
        {f"H/{p}": p_stat(history / p) for p in _tree(history)}
    assert after == before
    # resume: finished repositories are not mined again
    capsys.readouterr()
    assert main(argv) == 0
    assert "3 repositories resumed" in capsys.readouterr().out
    # a different configuration refuses to mix into the same folder (one-line error, exit 2)
    assert main(argv + ["--set", "data.min_chars=10"]) == 2
    assert "different configuration" in capsys.readouterr().err
