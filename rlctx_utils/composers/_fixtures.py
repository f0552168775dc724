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
import subprocess
import sys
from pathlib import Path

from .types import ComposerError


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


def fetch_sdist(spec: str, folder: str | os.PathLike[str] | None = None) -> Path:
    """``NAME==VERSION`` as a source archive in ``.cache/sdists`` (a data-building step: it runs
    ``pip download --no-binary :all: --no-deps`` when the archive is not there yet)."""
    from rlctx_utils.paths import cache_dir

    name, _, version = spec.partition("==")
    if not name or not version:
        raise ComposerError(f"expected NAME==VERSION, got {spec!r}")
    dest = Path(folder) if folder else cache_dir() / "sdists"
    dest.mkdir(parents=True, exist_ok=True)

    def find() -> list[Path]:
        stem = f"{name}-{version}".lower().replace("_", "-")
        return sorted(p for p in dest.iterdir()
                      if p.name.lower().replace("_", "-").startswith(stem) and p.suffix in (".gz", ".zip", ".bz2"))

    hits = find()
    if not hits:
        res = subprocess.run([sys.executable, "-m", "pip", "download", "--no-binary", ":all:", "--no-deps",
                              spec, "-d", str(dest), "-q"], capture_output=True, text=True)
        hits = find()
        if res.returncode != 0 or not hits:
            raise ComposerError(f"could not download the source archive of {spec} (pip said: "
                                f"{res.stderr.strip().splitlines()[-1] if res.stderr.strip() else res.returncode}); "
                                f"put it in {dest} by hand")
    return hits[0]


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
