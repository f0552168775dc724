"""Composer fidelity and evaluation edge cases of issue 12: declaration headers, half-memory headers,
the published common-name list, Duplication's budget, Mixed's per-datapoint draw in evaluation,
eval --limit, one writer per evaluation, messages that name commands that exist."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from rlctx_utils.cli import main
from rlctx_utils.composers import ComposerError, compose, python_ast
from rlctx_utils.composers._fixtures import toy_repository
from rlctx_utils.data.lines import classify_lines, common_names
from rlctx_utils.data.types import Datapoint
from rlctx_utils.paths import REPO_ROOT


# -- 11. a declaration header ends at its own ':' ----------------------------------------------------

def test_declaration_headers_stop_at_their_own_colon():
    src = ("class A(B):  # noqa: E501\n"
           "    def f(self, x: int = {1: 2}) -> dict[str, int]:  # noqa: C901\n"
           "        return x\n"
           "def h(a,\n"
           "      b: 'x:y'):  # type: ignore\n"
           "    # comment: here\n"
           "    return 1\n")
    assert python_ast.declarations(src) == (
        "class A(B):\n"
        "    def f(self, x: int = {1: 2}) -> dict[str, int]:\n"
        "def h(a,\n"
        "      b: 'x:y'):")


# -- 12. half-memory drops header lines too (the definition), protection is an explicit option -----

def _big_repo() -> dict[str, str]:
    return {f"pkg/m{i}.py": "".join(f"def f{i}_{j}(x):\n    return x + {j}\n" for j in range(6)) for i in range(40)}


def test_half_memory_drops_file_headers(py_tokenizer):
    snap = _big_repo()
    kw = dict(tokenizer=py_tokenizer, max_tokens=100_000)
    half = compose("half_memory_py", snap, "pkg/new.py", "x = 1\n", seed=3, **kw)
    n_headers = half.context.count("<file_sep>")
    assert 0 < n_headers < len(half.pieces) * 0.8, (n_headers, len(half.pieces))
    ref = compose("half_memory_py", snap, "pkg/new.py", "x = 1\n", seed=3, reference=True, **kw)
    assert half.context_ids == ref.context_ids  # the budget cut is still the definition's
    lca = compose("lca_half_memory_path_distance", snap, "pkg/new.py", "x = 1\n", seed=3, **kw)
    assert lca.context.count("<file_sep>") == len(lca.pieces)  # LCA baselines keep every path
    from rlctx_utils.composers import steps
    assert steps.drop_lines(0.5, protect_headers=True).render is None
    assert steps.drop_lines(0.5).render is not None


# -- 13. the published common-name list -------------------------------------------------------

LCA_COMMON = {"index", "__init__", "__getitem__", "__len__", "__iter__", "main", "train", "run", "update",
              "reset", "forward", "__str__", "__repr__", "__call__", "delete", "save", "Migration", "Meta",
              "get", "__eq__", "setup", "load", "start", "setUp", "create", "tearDown", "test", "execute",
              "post", "Solution", "findDecision"}


def test_common_names_are_the_lca_baselines_list():
    assert common_names() == LCA_COMMON and len(LCA_COMMON) == 31
    text = "xs = []\nfor item in range(10):\n    xs.append(item * 2)\nobj.run(xs)\n"
    raw = classify_lines(text, {})
    assert raw["common"] == [3] and 2 in raw["random"]  # append is not an LCA common name


# -- 14. Duplication's work is bounded before any text is built ------------------------------------

def test_duplication_budget_is_bounded(py_tokenizer, tmp_path):
    # in a process limited to 3 GB of address space (so that a failure cannot exhaust the machine):
    # refused in one line, not out of memory
    tok = tmp_path / "tok"
    py_tokenizer.save_pretrained(str(tok))
    code = ("import resource, sys\n"
            "from rlctx_utils.tokenizer import load_tokenizer\n"
            "from rlctx_utils.composers import compose\n"
            f"tok = load_tokenizer({str(tok)!r})\n"
            "resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))\n"
            "try:\n"
            "    compose('duplication', {}, 'pkg/m.py', 'x = 1\\n', tokenizer=tok, max_tokens=10**9)\n"
            "except MemoryError:\n"
            "    sys.exit(3)\n"
            "except ValueError as e:\n"
            "    print(e)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=REPO_ROOT,
                       env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0 and "more than" in r.stdout, (r.returncode, r.stderr[-500:])
    with pytest.raises(ComposerError, match="more than 16,777,216 tokens"):
        compose("duplication", {}, "pkg/m.py", "x = 1\n", tokenizer=py_tokenizer, max_tokens=10**9)


# -- 10. Mixed draws one composer per datapoint in evaluation --------------------------------------

def _datapoints(n: int) -> list[Datapoint]:
    snap = toy_repository()
    text = "".join(f"def g{j}(x):\n    return x + {j}\n" for j in range(6))
    return [Datapoint(repo=f"o__r{i}", commit_hash=f"{i:040x}", completion_path=f"toy/new{i}.py",
                      completion_content=text, snapshot=snap, completion_lines={"infile": [1, 3, 5]})
            for i in range(n)]


def test_mixed_draws_per_datapoint_in_evaluation(py_tokenizer):
    from rlctx_utils.composers import compose as real
    from rlctx_utils.evaluation.runner import build_tasks

    drawn: dict[str, set[str]] = {}

    def spy(name, snapshot, path, prefix, **kw):
        comp = real(name, snapshot, path, prefix, **kw)
        drawn.setdefault(path, set()).add(comp.info["drawn"])
        return comp

    build_tasks(_datapoints(24), py_tokenizer, composer="mixed", max_context=128, protocol="thesis", seed=0,
                compose_fn=spy)
    assert all(len(v) == 1 for v in drawn.values())  # the lines of one datapoint share its draw
    assert len({next(iter(v)) for v in drawn.values()}) >= 3  # datapoints draw different composers
    assert "duplication" not in set().union(*drawn.values())


# -- 8. eval --limit ---------------------------------------------------------------------------

def test_eval_limit_must_be_positive(tmp_path, capsys):
    from rlctx_utils.data.store import save_datapoints
    from rlctx_utils.evaluation.api import load_benchmark
    from rlctx_utils.evaluation.runner import EvalError

    dps = _datapoints(3)
    for dp in dps:
        dp.split = "benchmark"
    save_datapoints(dps, tmp_path / "data")
    assert len(load_benchmark(str(tmp_path), limit=2).datapoints) == 2
    for bad in (-1, 0):
        with pytest.raises(EvalError, match="--limit"):
            load_benchmark(str(tmp_path), limit=bad)
    assert main(["eval", "--profile", "smoke", "--checkpoint", "x", "--benchmark", str(tmp_path),
                 "--composer", "file_level", "--max-context", "64", "--limit", "-1", "--dry-run"]) == 2
    err = capsys.readouterr().err.strip()
    errors = [ln for ln in err.splitlines() if ": error:" in ln]
    assert "Traceback" not in err and len(errors) == 1 and "--limit -1" in errors[0]


def test_missing_benchmark_names_a_command_that_exists(tmp_path):
    from rlctx_utils.evaluation.api import load_benchmark
    from rlctx_utils.evaluation.runner import EvalError

    with pytest.raises(EvalError) as e:
        load_benchmark(str(tmp_path / "nope"))
    assert "rlctx data" not in str(e.value) and "rlctx mine pypi" in str(e.value)


# -- 6. one writer per evaluation ---------------------------------------------------------------

def test_second_writer_of_one_evaluation_is_refused(tmp_path):
    from rlctx_utils.data.store import save_datapoints
    from rlctx_utils.evaluation.api import eval_id, load_benchmark, read_run_record, run_eval
    from rlctx_utils.io import OutputLockedError

    dps = _datapoints(2)
    for dp in dps:
        dp.split = "benchmark"
    save_datapoints(dps, tmp_path / "data")
    bench = load_benchmark(str(tmp_path))
    ck = "someone/some-model"
    eid = eval_id(read_run_record(ck), "file_level", 64, "thesis", bench.name)
    out = tmp_path / "evals"
    out.mkdir()
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (out / f".{eid}.lock").write_text(f"{other.pid}\nrlctx eval\n")
        with pytest.raises(OutputLockedError, match=f"pid {other.pid}"):
            run_eval(ck, composer="file_level", max_context=64, protocol="thesis", benchmark=bench, cfg={},
                     out_dir=out, progress=False)
    finally:
        other.kill()
        other.wait()
