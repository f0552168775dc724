"""Line categories (SPEC section 6) and the LCA sampling rule."""

from __future__ import annotations

from rlctx_utils.data.lines import (classify_lines, common_names, declared_names, sample_lines,
                                    size_bucket)
from rlctx_utils.data.types import CATEGORIES

SNAPSHOT = {
    "pkg/util.py": "def helper(x):\n    return x\n\nclass Loader:\n    def fetch(self):\n        pass\n",
    "README.md": "# readme\n",
    "logo.png": None,
}
ADDED = {"pkg/new.py": "def brand_new():\n    return 1\n"}

COMPLETION = "\n".join([
    "import os",                                    # 0 non_informative (import)
    "from pkg.util import helper",                  # 1 non_informative (import)
    "",                                             # 2 blank: never a target
    "def local_fn(a, b):",                          # 3 non_informative (declaration)
    "    # a comment here",                         # 4 non_informative (comment)
    "    total = brand_new() + helper(a)",          # 5 commited (wins over inproject)
    "    obj = Loader().fetch()",                   # 6 inproject
    "    value = local_fn(total, b)",               # 7 infile
    "    super().__init__()",                       # 8 common
    "    print(value)",                             # 9 non_informative (print)
    "    x = 1",                                    # 10 random
    "    return",                                   # 11 non_informative (< 5 chars after strip? 'return' is 6)
    "    y = [" + "1, " * 60 + "]",                 # 12 non_informative (> 150 chars)
    "    z = a.b + b.c",                            # 13 random
    '    """A docstring line',                      # 14 non_informative (docstring)
    '    continued here"""',                        # 15 non_informative (docstring)
    "    ok",                                       # 16 non_informative (< 5 chars)
])


def test_priority_order_and_categories():
    raw = classify_lines(COMPLETION, SNAPSHOT, ADDED, completion_path="pkg/mod.py")
    assert set(raw) == set(CATEGORIES)
    assert raw["commited"] == [5]
    assert raw["inproject"] == [6]
    assert raw["infile"] == [7]
    assert raw["common"] == [8]
    assert raw["random"] == [10, 11, 13]
    assert raw["non_informative"] == [0, 1, 3, 4, 9, 12, 14, 15, 16]
    every = sorted(i for v in raw.values() for i in v)
    assert len(every) == len(set(every))  # each line in exactly one category
    assert 2 not in every


def test_completion_file_in_commit_and_snapshot_is_ignored():
    text = "def f():\n    return g_value(1)\n\ndef g_value(x):\n    return x\n"
    raw = classify_lines(text, {"m.py": text}, {"m.py": text}, completion_path="m.py")
    assert raw["infile"] == [1]


def test_python2_and_broken_files_still_classify():
    py2 = "def f(x):\n    print 'hello %s' % x\n    return helper_fn(x)\nexcept Exception, e:\n  pass\n"
    raw = classify_lines(py2, {"h.py": "def helper_fn(y):\n    pass\n"})
    assert 2 in raw["inproject"]
    assert 1 in raw["non_informative"]
    assert classify_lines("", {}) == {c: [] for c in CATEGORIES}


def test_declared_names_and_common_list():
    assert declared_names("class A:\n    def m(self):\n        def inner(): pass\n") == {"A", "m", "inner"}
    names = common_names()
    for n in ("__init__", "main", "get", "run", "forward", "setUp"):
        assert n in names


def test_sampling_is_seeded_and_capped():
    raw = {"infile": list(range(30)), "random": list(range(100, 120)), "common": [1, 2],
           "non_informative": list(range(200, 203))}
    a, b = sample_lines(raw, seed=1), sample_lines(raw, seed=1)
    assert a == b
    assert len(a["infile"]) == 10 and len(a["random"]) == 5
    assert a["common"] == [1, 2] and a["non_informative"] == [200, 201, 202]
    assert a["commited"] == [] and a["inproject"] == []
    assert sample_lines(raw, seed=2) != a
    assert set(a["infile"]) <= set(raw["infile"]) and a["infile"] == sorted(a["infile"])


def test_size_buckets():
    assert size_bucket(0) == "small"
    assert size_bucket(48_000) == "medium"
    assert size_bucket(500_000) == "large"
    assert size_bucket(10**7) == "huge"
    assert size_bucket(50, (10, 100, 1000)) == "medium"
