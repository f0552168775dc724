"""The cpu data spec of issue 15 (configs/data/cpu.toml, once cpu-v2) and the decontamination check on crafted inputs."""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

import pytest

from rlctx_utils.data.decontamination import (MIN_CHARS, check, check_dir, find_matches, held_out_index,
                                              whitespace_hash)
from rlctx_utils.data.pypi import load_spec
from rlctx_utils.data.store import save_corpus, save_datapoints
from rlctx_utils.data.types import Datapoint

ROOT = Path(__file__).resolve().parents[1]
V2 = ROOT / "configs" / "data" / "cpu.toml"

HELD = "def held_out(a, b):\n    total = a + b\n    return total * 2  # a benchmark file long enough\n"
OTHER = "class Unrelated:\n    def method(self):\n        return 'nothing in common with the benchmark'\n"


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


# --- the spec -------------------------------------------------------------------------------------

def test_cpu_v2_spec_counts_match_its_header():
    spec = load_spec(V2)
    by = {s: [p for p in spec.packages if p.split == s] for s in ("train", "validation", "benchmark")}
    header = V2.read_text().split("\nprofile")[0]
    m = re.search(r"(\d+) pure-Python packages for training, (\d+) for\s*\n#\s*validation and (\d+) held-out",
                  header)
    assert m, "the header states the counts per split"
    assert [len(by["train"]), len(by["validation"]), len(by["benchmark"])] == [int(g) for g in m.groups()]
    assert len(by["benchmark"]) >= 20 and 60 <= len(by["train"]) <= 80 and len(by["validation"]) >= 6
    assert all(len(p.releases) >= 5 for p in by["benchmark"])
    assert spec.profile == "cpu" and "max_per_repo_benchmark" in spec.mining


def test_cpu_v2_releases_are_in_version_order():
    from packaging.version import Version

    for p in load_spec(V2).packages:
        versions = [Version(r.version) for r in p.releases]
        assert versions == sorted(versions) and len(set(versions)) == len(versions), p.name
        assert all(r.date is not None for r in p.releases), p.name


def test_cpu_v2_keeps_the_cpu_spec_pins():
    """The old benchmark stays in the new one (same sdists), the old training packages stay training."""
    old, new = load_spec(ROOT / "configs" / "data" / "cpu-v1.toml"), load_spec(V2)
    new_by_name = {p.name: p for p in new.packages}
    for p in old.packages:
        if p.split == "benchmark":
            assert new_by_name[p.name].split == "benchmark" and new_by_name[p.name].releases == p.releases
        else:
            assert new_by_name[p.name].split == p.split


def test_cpu_v2_held_out_packages_are_not_installed():
    """No validation or benchmark package is installed in this environment (whose site-packages feed
    nothing, but must not hold held-out code either)."""
    installed = {_norm(d.metadata["Name"] or "") for d in metadata.distributions()}
    held = {_norm(p.name) for p in load_spec(V2).packages if p.split != "train"}
    assert not held & installed


# --- the check ------------------------------------------------------------------------------------

def _dp(split: str, repo: str, path: str, content: str, snapshot: dict[str, str | None]) -> Datapoint:
    return Datapoint(repo=repo, commit_hash=f"{abs(hash((repo, path))):040x}"[:40], completion_path=path,
                     completion_content=content, snapshot=snapshot, split=split)


def test_whitespace_hash_ignores_only_whitespace():
    assert whitespace_hash("a  =\t1\r\n\n b") == whitespace_hash("a = 1 b")
    assert whitespace_hash("a = 1") != whitespace_hash("a = 2")


def test_find_matches_exact_whitespace_short_and_clean():
    bench = _dp("benchmark", "pypi__b", "b/new.py", HELD, {"b/old.py": OTHER.upper(), "b/__init__.py": "x = 1\n",
                                                          "README": "not python " * 20})
    idx = held_out_index([bench, _dp("train", "pypi__t", "t/x.py", OTHER, {})])
    assert idx.files == 2 and idx.skipped_short == 1       # train datapoints and non-.py files not indexed
    reindented = HELD.replace("    ", "\t") + "\n\n"
    n, found = find_matches(idx, "corpus", [("t:a.py", HELD), ("t:b.py", reindented), ("t:c.py", OTHER),
                                            ("t:d.py", "x = 1\n"), ("t:e.py", "")])
    assert n == 3                                           # the short and the empty file are not compared
    assert [(m.where, m.kind, m.held_out) for m in found] == [("t:a.py", "exact", "benchmark/pypi__b:b/new.py"),
                                                             ("t:b.py", "whitespace", "benchmark/pypi__b:b/new.py")]
    assert len("x = 1") < MIN_CHARS


def test_check_is_clean_only_without_matches_outside_informational_corpora():
    idx = held_out_index([_dp("validation", "pypi__v", "v/a.py", HELD, {})])
    rep = check(idx, {"corpus": [("t:c.py", OTHER)], "train_candidates": [("t:v.py", HELD)]})
    assert rep.clean() and rep.as_dict()["corpora"]["train_candidates"]["matches"] == 1
    rep = check(idx, {"corpus": [("t:c.py", OTHER), ("t:v.py", HELD)]})
    assert not rep.clean() and rep.as_dict()["corpora"]["corpus"]["listed"][0]["held_out"] == "validation/pypi__v:v/a.py"


def test_check_dir_finds_a_benchmark_file_in_corpus_and_training_snapshots(tmp_path):
    bench = _dp("benchmark", "pypi__b", "b/new.py", HELD, {"b/util.py": OTHER})
    train = _dp("train", "pypi__t", "t/mod.py", OTHER.replace("Unrelated", "Own") + "# own\n" * 10,
                {"t/vendored/util.py": OTHER})
    save_datapoints([bench, train], tmp_path / "data")
    save_corpus([{"repo": "pypi__t", "path": "t/mod.py", "content": HELD, "sha1": ""}], tmp_path / "corpus")
    rep = check_dir(tmp_path, snapshots=True)
    got = {c: v["matches"] for c, v in rep.as_dict()["corpora"].items()}
    assert got == {"corpus": 1, "train_completions": 0, "train_snapshots": 1} and not rep.clean()
    assert "train_snapshots" not in check_dir(tmp_path).checked


def test_check_dir_needs_a_mined_folder(tmp_path):
    from rlctx_utils.data.errors import DataError

    with pytest.raises(DataError, match="not a mined folder"):
        check_dir(tmp_path)
