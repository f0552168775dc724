"""Small repositories for tests, the composers notebook and the benchmark.

- :func:`toy_repository`: a hand-written snapshot whose ranks are easy to check by eye.
- :func:`read_sdist`: a PyPI source distribution as a snapshot (path -> text or None), through the
  project's safe archive reader (:func:`rlctx_utils.data.snapshots.read_archive`).
- :func:`completion_files`: the ``.py`` files of a snapshot that can serve as completion files
  (SPEC section 2 length rules), with the snapshot minus that file.
"""

from __future__ import annotations

import os
import random


def toy_repository() -> dict[str, str | None]:
    """A small package with sources, tests, docs, configs and a binary file."""
    return {
        "README.md": "# toy\n\nA toy package used to show how composers rank files.\n",
        "setup.cfg": "[metadata]\nname = toy\n",
        "pyproject.toml": "[project]\nname = 'toy'\n",
        "docs/index.rst": "Toy\n===\n\nUsage: ``toy.core.add(1, 2)``.\n",
        "config/settings.yaml": "debug: true\nlevel: 3\n",
        "config/data.json": '{"numbers": [1, 2, 3]}\n',
        "scripts/run.sh": "#!/bin/sh\npython -m toy\n",
        "toy/__init__.py": '"""The toy package."""\nfrom toy.core import add, mul\n\n__all__ = ["add", "mul"]\n',
        "toy/core.py": ('"""Core arithmetic."""\nimport math\n\n\ndef add(a, b):\n    """Sum of a and b."""\n'
                        "    return a + b\n\n\ndef mul(a, b):\n    # product\n    return a * b\n\n\n"
                        "class Vector:\n    def __init__(self, xs):\n        self.xs = list(xs)\n\n"
                        "    def norm(self):\n        return math.sqrt(sum(x * x for x in self.xs))\n"),
        "toy/util.py": ('import os\nfrom toy.core import add\n\n\ndef total(xs):\n    out = 0\n'
                        "    for x in xs:\n        out = add(out, x)\n    return out\n"),
        "toy/io/reader.py": ('"""Read numbers."""\nfrom toy.util import total\n\n\ndef read(path):\n'
                             "    with open(path) as fh:\n        return [int(x) for x in fh]\n"),
        "toy/io/broken.py": "def oops(:\n    return 1\n  class\n",
        "tests/test_core.py": ("from toy.core import add, mul\n\n\ndef test_add():\n    assert add(1, 2) == 3\n\n\n"
                               "def test_mul():\n    assert mul(2, 3) == 6\n"),
        "tests/test_util.py": "from toy.util import total\n\n\ndef test_total():\n    assert total([1, 2]) == 3\n",
        "assets/logo.png": None,
    }


#: The completion file that goes with :func:`toy_repository`.
TOY_COMPLETION = ("toy/stats.py",
                  '"""Statistics."""\nfrom toy.core import add\nfrom toy.util import total\n\n\n'
                  "def mean(xs):\n    return total(xs) / len(xs)\n\n\ndef sum2(a, b):\n    return add(a, b)\n")


def read_sdist(path: str | os.PathLike[str]) -> dict[str, str | None]:
    """A source archive as a snapshot (top folder stripped), never extracted to disk."""
    from rlctx_utils.data.snapshots import read_archive

    return read_archive(path)


def completion_files(snapshot: dict[str, str | None], n: int, seed: int = 0,
                     min_chars: int = 800, max_chars: int = 25_000) -> list[tuple[str, str, dict[str, str | None]]]:
    """Up to ``n`` (path, text, snapshot without that file) triples, ``.py`` files of 800-25,000 chars."""
    paths = sorted(p for p, t in snapshot.items()
                   if p.endswith(".py") and t is not None and min_chars <= len(t) <= max_chars)
    random.Random(seed).shuffle(paths)
    out = []
    for p in paths[:n]:
        rest = {q: t for q, t in snapshot.items() if q != p}
        out.append((p, snapshot[p] or "", rest))
    return out
