"""Context composers (issue 3): definitions, ordering, modes, formats, budget, odd input, seeds."""

from __future__ import annotations

import random

import pytest

from rlctx_utils.composers import (COMPOSERS, MODES, PAPER_COMPOSERS, Composition, ComposerError, Piece,
                                   UnknownComposerError, compose, composer_info, get_composer, lines_iou,
                                   path_distance, register_composer, render_completion, render_file)
from rlctx_utils.composers import python_ast, steps
from rlctx_utils.composers._fixtures import TOY_COMPLETION, toy_repository

CPATH, CTEXT = TOY_COMPLETION


def run(tok, name, snapshot=None, *, cpath=CPATH, ctext=CTEXT, **kw) -> Composition:
    kw.setdefault("max_tokens", 4096)
    return compose(name, toy_repository() if snapshot is None else snapshot, cpath, ctext,
                   tokenizer=tok, **kw)


# -- definitions (SPEC section 4) ----------------------------------------------------------------

@pytest.mark.parametrize("a,b,d", [
    ("pkg/a.py", "pkg/b.py", 0),          # same folder
    ("pkg/x/a.py", "pkg/y/b.py", 2),      # sibling folders
    ("pkg/a.py", "pkg/sub/b.py", 1),      # one folder down
    ("a.py", "b.py", 0),                  # both at the root
    ("a.py", "pkg/sub/b.py", 2),
    ("x/y/a.py", "x/z/w/b.py", 3),        # c=1: (3-1-1)+(4-1-1)
    ("src/m.py", "tests/t.py", 2),
])
def test_path_distance_worked_examples(a, b, d):
    assert path_distance(a, b) == d
    assert path_distance(b, a) == d


def test_lines_iou_worked_examples():
    a = "import os\nx = 1\n    return value\n\n  def f(self):\n"
    b = "def f(self):\nreturn value  \nimport sys\nx = 1\n"
    # A = {import os, return value, def f(self):}; B = {def f(self):, return value, import sys}
    # ("x = 1" has 5 characters and counts; blank lines do not)
    assert lines_iou(a, b) == pytest.approx(3 / 5)
    assert lines_iou("abcd\nabc", "abcd\nabc") == 0.0  # every line shorter than 5 characters
    assert lines_iou("same line\n", "same line") == 1.0
    assert lines_iou("", "anything here") == 0.0


# -- ordering, tie-breaks and modes --------------------------------------------------------------

def _ranked_paths(comp):
    return [p for p, _ in comp.ranked]


def test_path_distance_order_and_iou_tiebreak(py_tokenizer):
    c = run(py_tokenizer, "path_distance_py")
    # distances from toy/stats.py: toy/* 0; toy/io/* 1; tests/* 2
    assert [k[0] for _, k in c.ranked] == sorted((k[0] for _, k in c.ranked), reverse=True)
    assert _ranked_paths(c)[:2] == ["tests/test_util.py", "tests/test_core.py"] or \
        _ranked_paths(c)[:2] == ["tests/test_core.py", "tests/test_util.py"]
    same = [(p, k) for p, k in c.ranked if k[0] == 0]
    assert {p for p, _ in same} == {"toy/__init__.py", "toy/core.py", "toy/util.py"}
    ious = [k[1] for _, k in same]
    assert ious == sorted(ious)  # higher IoU later
    assert same[-1][0] == c.pieces[-1].path  # the most relevant piece is last
    assert c.paths == _ranked_paths(c)  # everything fits: context order == ranking
    assert "assets/logo.png" not in c.paths and "README.md" not in c.paths


def test_ties_broken_by_path_when_keys_equal(py_tokenizer):
    snap = {"p/b.py": "x = 1\n", "p/a.py": "y = 2\n", "p/c.py": "z = 3\n"}
    c = run(py_tokenizer, "path_distance_py", snap, cpath="p/new.py", ctext="w = 4\n")
    assert c.paths == ["p/a.py", "p/b.py", "p/c.py"]
    lca = run(py_tokenizer, "lca_path_distance", snap, cpath="p/new.py", ctext="w = 4\n")
    assert lca.paths == ["p/c.py", "p/a.py", "p/b.py"]  # snapshot order reversed: first file last


def test_modes_on_ranked_pieces(py_tokenizer):
    full = run(py_tokenizer, "path_distance_py", max_tokens=100_000)
    order = full.paths  # N ... 1
    # a budget that holds about three pieces
    sizes = [p.n_tokens for p in full.pieces]
    budget = sum(sizes[-3:]) - 2
    orig = run(py_tokenizer, "path_distance_py", max_tokens=budget)
    rev = run(py_tokenizer, "path_distance_py", max_tokens=budget, mode="reversed")
    irr = run(py_tokenizer, "path_distance_py", max_tokens=budget, mode="irrelevant")
    assert orig.paths == order[-3:] and orig.pieces[0].cut and not orig.pieces[-1].cut
    assert rev.paths == orig.paths[::-1]
    assert sorted(rev.context_ids) == sorted(orig.context_ids)
    assert rev.pieces[-1].cut  # the partly kept least relevant piece sits right before the completion
    assert irr.paths == order[::-1][-len(irr.paths):]
    assert irr.paths[-1] == order[0]  # least relevant last
    for c in (orig, rev, irr):
        assert c.n_tokens == budget and c.truncated
        assert c.n_tokens_full == full.n_tokens_full


def test_text_files_groups(py_tokenizer):
    c = run(py_tokenizer, "text_files")
    assert c.paths == ["config/data.json", "config/settings.yaml", "scripts/run.sh", "docs/index.rst",
                       "README.md"]  # .md/.rst group: docs/ at distance 1 before README.md at 0


def test_mode_errors_and_registry(py_tokenizer):
    assert set(PAPER_COMPOSERS) <= set(COMPOSERS) and len(PAPER_COMPOSERS) == 15
    assert MODES == ("original", "reversed", "irrelevant")
    with_modes = {n for n in PAPER_COMPOSERS if len(get_composer(n).modes) == 3}
    assert with_modes == {"path_distance_py", "lines_iou_py", "code_chunks_py", "half_memory_py",
                          "declarations_py", "text_chunks_py", "text_files", "leak"}
    with pytest.raises(ComposerError, match="no mode"):
        run(py_tokenizer, "random_py", mode="reversed")
    with pytest.raises(UnknownComposerError, match="unknown composer"):
        run(py_tokenizer, "nope")
    with pytest.raises(ComposerError, match="stage"):
        run(py_tokenizer, "random_py", stage="test")
    with pytest.raises(ComposerError, match="max_tokens"):
        run(py_tokenizer, "random_py", max_tokens=-1)
    with pytest.raises(ComposerError, match="full completion"):
        run(py_tokenizer, "path_distance_py", stage="eval", completion_full_text=CTEXT)
    info = composer_info("declarations_py")
    assert info["reduce"] == ["keep_declarations"] and info["rank"][0].startswith("path_distance")


def test_new_composer_in_a_few_lines(py_tokenizer):
    comp = register_composer(COMPOSERS["path_distance_py"].derive(
        "pd_no_tests_example", "Path Distance .py without tests", select=steps.py_files & ~steps.under("tests/")),
        replace=True)
    try:
        c = run(py_tokenizer, comp.name)
        assert c.paths and not any(p.startswith("tests/") for p in c.paths)
        with pytest.raises(ComposerError, match="already registered"):
            register_composer(comp)
    finally:
        COMPOSERS.pop(comp.name)


# -- reductions (tree-sitter) --------------------------------------------------------------------

SRC = '''"""Module doc."""
import os
from a.b import c  # why


@decorated
def f(x,
      y) -> int:
    """Doc of f."""
    # a comment
    return x + y  # trailing


class A(Base):
    """Doc of A."""

    def g(self):
        s = "not a docstring"
        return s
'''


def test_reductions():
    code = python_ast.strip_text_and_imports(SRC)
    assert "Module doc" not in code and "import" not in code and "#" not in code and "Doc of" not in code
    assert "return x + y\n" in code and 's = "not a docstring"' in code
    text = python_ast.text_only(SRC)
    assert text.split("\n") == ['"""Module doc."""', "# why", '    """Doc of f."""', "    # a comment",
                                "    # trailing", '    """Doc of A."""']
    decl = python_ast.declarations(SRC)
    assert decl.split("\n") == ["def f(x,", "      y) -> int:", "class A(Base):", "    def g(self):"]
    assert python_ast.imported_modules(SRC) == {"a.b"}


def test_reductions_survive_unparsable_code():
    bad = "def ok():\n    return 1\n\ndef broken(:\n  # c\n  )))\nclass\n\x00\n"
    assert "def ok():" in python_ast.declarations(bad)
    assert "# c" in python_ast.text_only(bad)
    assert "# c" not in python_ast.strip_text_and_imports(bad)


def test_reduced_composers_rank_like_path_distance(py_tokenizer):
    pd = run(py_tokenizer, "path_distance_py")
    for name in ("code_chunks_py", "declarations_py", "text_chunks_py", "half_memory_py"):
        c = run(py_tokenizer, name)
        assert c.ranked == pd.ranked
        assert set(c.paths) <= set(pd.paths)
    decl = run(py_tokenizer, "declarations_py")
    core = next(p for p in decl.pieces if p.path == "toy/core.py")
    assert core.text == "def add(a, b):\ndef mul(a, b):\nclass Vector:\n    def __init__(self, xs):\n    def norm(self):"
    half = run(py_tokenizer, "half_memory_py", seed=3)
    core = next(p for p in half.pieces if p.path == "toy/core.py")
    assert 0 < len(core.text.split("\n")) < len(toy_repository()["toy/core.py"].split("\n"))


# -- formats -------------------------------------------------------------------------------------

def test_formats(py_tokenizer):
    assert render_file("a/b.py", "x = 1\n\n  ") == "<file_sep># a/b.py\nx = 1\n"
    assert render_file("a/b.py", "x = 1\n", "qwen") == "<|file_sep|>a/b.py\nx = 1\n"
    assert render_file("a/b.py", "x = 1\n", "lca") == "a/b.pyMETASEP\nx = 1\n"
    assert render_completion("a/b.py", "x = ") == "<file_sep># a/b.py\nx = "
    assert render_completion("a.py", "abcdef", "qwen", fim=(2, 4)) == \
        "<|file_sep|>a.py\n<|fim_prefix|>ab<|fim_suffix|>ef<|fim_middle|>cd"
    c = run(py_tokenizer, "path_distance_py", repo_name="me/toy")
    assert c.context.startswith("<repo_name>me/toy\n<file_sep># ")
    assert c.context.endswith(render_file(c.pieces[-1].path, c.pieces[-1].text))
    q = run(py_tokenizer, "path_distance_py", repo_name="me/toy", fmt="qwen")
    assert q.context.startswith("<|repo_name|>me/toy\n<|file_sep|>")
    lca = run(py_tokenizer, "path_distance_py", fmt="lca")
    assert lca.context.endswith("toy/core.pyMETASEP\n" + toy_repository()["toy/core.py"]) or \
        lca.context.endswith(lca.pieces[-1].path + "METASEP\n" + lca.pieces[-1].text)
    fsep = py_tokenizer.convert_tokens_to_ids("<file_sep>")
    assert c.context_ids.count(fsep) == len(c.pieces)


# -- budget semantics ----------------------------------------------------------------------------

def _repo_with_size(n_files=14, seed=0):
    rnd = random.Random(seed)
    words = ["alpha", "beta", "gamma", "delta", "value", "result", "items", "count", "self", "data"]
    snap = {}
    for i in range(n_files):
        folder = rnd.choice(["pkg", "pkg/sub", "tests", "docs", "pkg/sub/deep"])
        ext = rnd.choice([".py", ".py", ".py", ".md", ".json"])
        lines = []
        for j in range(rnd.randint(3, 40)):
            ind = "    " * rnd.randint(0, 2)
            lines.append(ind + " ".join(rnd.choice(words) for _ in range(rnd.randint(1, 6)))
                         + rnd.choice(["", ":", "  ", " # note", "()"]))
        if rnd.random() < 0.2:
            lines.insert(0, "# héllo wörld ✓")
        snap[f"{folder}/f{i}{ext}"] = "\n".join(lines) + rnd.choice(["", "\n", "\n\n  \n"])
    return snap


BUDGET_CASES = [(n, m) for n in sorted(COMPOSERS) for m in get_composer(n).modes
                if n not in ("random_tokens", "file_level")]


@pytest.mark.parametrize("name,mode", BUDGET_CASES)
def test_budget_equals_definition(py_tokenizer, name, mode):
    """Fast path == 'encode the whole composed context, keep the last max_tokens tokens'."""
    snap = _repo_with_size(seed=len(name))
    ctext = "import alpha\n\ndef beta(gamma):\n    return gamma.value\n" * 3
    for fmt in ("opencoder", "qwen", "lca"):
        for budget in (0, 7, 150, 50_000):
            kw = dict(mode=mode, max_tokens=budget, fmt=fmt, seed=11, repo_name="o/r" if budget != 7 else None)
            fast = run(py_tokenizer, name, snap, cpath="pkg/sub/new.py", ctext=ctext, **kw)
            ref = run(py_tokenizer, name, snap, cpath="pkg/sub/new.py", ctext=ctext, reference=True, **kw)
            assert fast.context_ids == ref.context_ids, (fmt, budget)
            assert fast.n_tokens_full == ref.n_tokens_full, (fmt, budget)
            assert fast.paths == ref.paths and fast.truncated == ref.truncated
            assert fast.n_tokens <= budget
            if not get_composer(name).post and fmt == "opencoder":
                assert fast.context == ref.context
                assert sum(p.n_tokens for p in fast.pieces) + fast.info["header_tokens"] == fast.n_tokens


def test_budget_definition_by_hand(py_tokenizer):
    """The reference itself: the last max_tokens tokens of the whole rendered context."""
    snap = toy_repository()
    full = run(py_tokenizer, "path_distance_py", repo_name="me/toy", max_tokens=10**6)
    whole = "<repo_name>me/toy\n" + "".join(render_file(p.path, p.text) for p in full.pieces)
    ids = py_tokenizer(whole, add_special_tokens=False)["input_ids"]
    assert full.context == whole and full.context_ids == ids and full.n_tokens_full == len(ids)
    for budget in (1, 33, 200):
        c = run(py_tokenizer, "path_distance_py", snap, repo_name="me/toy", max_tokens=budget)
        assert c.context_ids == ids[-budget:]
        assert c.truncated and c.n_tokens_full == len(ids)


def test_duplication_fills_the_window(py_tokenizer):
    one = py_tokenizer(render_file(CPATH, CTEXT), add_special_tokens=False)["input_ids"]
    c = run(py_tokenizer, "duplication", max_tokens=500)
    assert c.n_tokens == 500 and c.leaks_target
    assert c.context_ids == (one * (500 // len(one) + 1))[-500:]
    assert c.n_tokens_full == len(one) * -(-500 // len(one))
    ev = run(py_tokenizer, "duplication", max_tokens=500, stage="eval", ctext=CTEXT[:60])
    assert not ev.leaks_target and CTEXT[60:80] not in ev.context


# -- probes --------------------------------------------------------------------------------------

def test_random_tokens(py_tokenizer):
    c = run(py_tokenizer, "random_tokens", max_tokens=3000, seed=5)
    special = set(py_tokenizer.all_special_ids) | set(py_tokenizer.get_added_vocab().values())
    assert c.n_tokens == 3000 and not special & set(c.context_ids)
    assert len(set(c.context_ids)) > 1000
    assert run(py_tokenizer, "random_tokens", max_tokens=3000, seed=5).context_ids == c.context_ids
    assert run(py_tokenizer, "random_tokens", max_tokens=3000, seed=6).context_ids != c.context_ids


def test_leak_places_target_segments(py_tokenizer):
    target_lines = [ln for ln in CTEXT.split("\n") if len(ln.strip()) > 8]
    c = run(py_tokenizer, "leak", max_tokens=2000, seed=1)
    assert all(ln in c.context.split("\n") for ln in target_lines) and c.leaks_target
    base = run(py_tokenizer, "path_distance_py", max_tokens=2000)
    assert len(c.context.split("\n")) == len(base.context.split("\n"))  # line for line
    assert abs(c.n_tokens - base.n_tokens) < 0.25 * base.n_tokens
    assert c.context.count("<file_sep>") == base.context.count("<file_sep>")
    ev = run(py_tokenizer, "leak", max_tokens=2000, stage="eval", ctext=CTEXT[:40], completion_full_text=CTEXT)
    assert ev.leaks_target and "def sum2(a, b):" in ev.context


def test_masked_leak_noise(py_tokenizer):
    c = run(py_tokenizer, "masked_leak", max_tokens=3000, seed=2)
    fsep = py_tokenizer.convert_tokens_to_ids("<file_sep>")
    base = run(py_tokenizer, "path_distance_py", max_tokens=3000)
    assert c.context_ids.count(fsep) == base.context_ids.count(fsep)  # specials are never replaced
    assert c.n_tokens <= 3000 and c.leaks_target
    clean = run(py_tokenizer, "leak", max_tokens=3000, seed=2)  # same window before noise? not exactly
    assert c.context_ids != clean.context_ids


def test_mixed_draws_and_never_duplicates_in_eval(py_tokenizer):
    drawn_train = {run(py_tokenizer, "mixed", seed=s, max_tokens=300).info["drawn"] for s in range(60)}
    assert "duplication" in drawn_train and len(drawn_train) == 7
    drawn_eval = {run(py_tokenizer, "mixed", seed=s, stage="eval", max_tokens=300).info["drawn"]
                  for s in range(60)}
    assert "duplication" not in drawn_eval and len(drawn_eval) == 6
    c = run(py_tokenizer, "mixed", seed=4, max_tokens=300)
    assert c.composer == "mixed"
    assert run(py_tokenizer, "mixed", seed=4, max_tokens=300).context_ids == c.context_ids


# -- determinism ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["random_files", "random_py", "half_memory_py", "leak", "masked_leak",
                                  "lca_half_memory_path_distance"])
def test_seeds_reproduce(py_tokenizer, name):
    a = run(py_tokenizer, name, seed=1, max_tokens=400)
    b = run(py_tokenizer, name, seed=1, max_tokens=400)
    assert a.context_ids == b.context_ids and a.paths == b.paths
    others = [run(py_tokenizer, name, seed=s, max_tokens=400).context_ids for s in range(2, 6)]
    assert any(o != a.context_ids for o in others)


def test_independent_of_snapshot_dict_order(py_tokenizer):
    snap = toy_repository()
    shuffled = dict(sorted(snap.items(), key=lambda kv: hash(kv[0]) % 97))
    for name in ("path_distance_py", "random_files", "half_memory_py", "text_files"):
        assert run(py_tokenizer, name, snap, seed=3).context_ids == \
            run(py_tokenizer, name, shuffled, seed=3).context_ids


# -- odd input -----------------------------------------------------------------------------------

def _odd_snapshots():
    big = "".join(f"def f{i}(x):\n    return x + {i}  # {'pad' * 10}\n" for i in range(75_000))
    assert len(big) > 5_000_000
    return {
        "empty": {},
        "no_py": {"README.md": "hello world\n", "a.json": "{}", "bin": None},
        "non_utf8": {"pkg/latin.py": b"x = '\xe9t\xe9'\n# caf\xe9\n", "pkg/sur.py": "y = '\udce9'\n",
                     "pkg/crlf.py": "a = 1\r\nb = 2\r\n", "pkg/ok.py": "z = 3\n"},
        "unparsable": {"pkg/bad.py": "def (:\n\tclass\n)))\n'''unterminated\n", "pkg/ok.py": "def f():\n    pass\n"},
        "big": {"pkg/huge.py": big, "pkg/small.py": "def g():\n    return 1\n"},
        "dup_paths": [("pkg/a.py", "a = 1\n"), ("./pkg/a.py", "a = 2\n"), ("pkg//b.py", "b = 1\n"),
                      ("pkg/new.py", "old version of the completion file\n"), ("pkg\\c.py", "c = 1\n")],
        "empty_files": {"pkg/e.py": "", "pkg/w.py": "  \n\n", "pkg/n.py": None},
    }


ODD = _odd_snapshots()


@pytest.mark.parametrize("kind", sorted(ODD))
def test_every_composer_on_odd_input(py_tokenizer, kind):
    snap = ODD[kind]
    for name in COMPOSERS:
        for mode in get_composer(name).modes:
            for stage in ("train", "eval"):
                c = compose(name, snap, "pkg/new.py", "import os\nx = 1\n", mode=mode, stage=stage,
                            tokenizer=py_tokenizer, max_tokens=600, seed=1)
                assert isinstance(c, Composition) and all(isinstance(p, Piece) for p in c.pieces)
                assert len(c.context_ids) <= 600
                assert "pkg/new.py" not in c.paths or name == "duplication"
                assert "\r" not in c.context
                if kind in ("empty", "empty_files") and name not in ("random_tokens", "duplication", "mixed"):
                    assert c.context == "" and c.context_ids == []
    if kind == "dup_paths":
        c = compose("path_distance_py", snap, "pkg/new.py", "x\n", tokenizer=py_tokenizer, max_tokens=600)
        assert sorted(c.paths) == ["pkg/a.py", "pkg/b.py", "pkg/c.py"]
        assert next(p for p in c.pieces if p.path == "pkg/a.py").text == "a = 1\n"  # first wins
    if kind == "big":
        c = compose("path_distance_py", snap, "pkg/new.py", "x\n", tokenizer=py_tokenizer, max_tokens=600)
        assert c.paths == ["pkg/huge.py", "pkg/small.py"] and c.pieces[0].cut and c.n_tokens == 600
        big = snap["pkg/huge.py"]
        tail = big[big.index("\ndef ", len(big) - 20_000) + 1:]
        ids = py_tokenizer(tail + render_file("pkg/small.py", snap["pkg/small.py"]),
                           add_special_tokens=False)["input_ids"]
        assert c.context_ids == ids[-600:]  # tail encoding == the end of the whole file's encoding
    if kind == "non_utf8":
        c = compose("path_distance_py", snap, "pkg/new.py", "x\n", tokenizer=py_tokenizer, max_tokens=600)
        assert "caf\ufffd" in c.context and "a = 1\nb = 2\n" in c.context


def test_eval_sees_only_the_prefix(py_tokenizer):
    """In the eval stage the composer gets the prefix; the rest of the file cannot matter."""
    prefix = CTEXT[:CTEXT.index("def sum2")]
    for name in PAPER_COMPOSERS:
        a = run(py_tokenizer, name, stage="eval", ctext=prefix, seed=2, max_tokens=800)
        assert "return add(a, b)" not in a.context or name in ("random_files",)
        assert not a.leaks_target


# -- notebook ------------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.notebook
def test_composers_notebook_runs(py_tokenizer, tmp_path):
    from rlctx_utils import notebooks

    tok_dir = tmp_path / "tok"
    py_tokenizer.save_pretrained(str(tok_dir))
    out = notebooks.run_notebook("notebooks/01_composers.py", out_dir=tmp_path / "exec", cwd=notebooks.NOTEBOOKS, parameters={
        "snapshot": "toy", "max_tokens": 400, "figure_tokens": 150, "tokenizer_path": str(tok_dir),
        "figures_dir": str(tmp_path / "fig")})
    assert out.exists()
    for name in ("composers_modes", "composers_pieces"):
        assert (tmp_path / "fig" / f"{name}.png").stat().st_size > 1000
        assert (tmp_path / "fig" / f"{name}.pdf").exists()
