"""The wheels a lent GPU machine lacks, resolved here from the pinned environment.

The GPU machine reaches no package index. Its Python (3.12) has torch, transformers, accelerate,
peft, pandas, pyarrow, tokenizers, matplotlib, seaborn and scipy; it lacks what the study adds
(:data:`ROOTS`). :func:`plan` walks the dependency closure of :data:`ROOTS` through this
environment's installed metadata (the pinned versions of ``requirements.lock``), leaves out
:data:`PRESENT` and everything they pull in, and :func:`download` fetches each remaining wheel
for CPython 3.12 on manylinux x86_64 (pure-Python ones are ``py3-none-any``). On the GPU machine
:func:`installable` keeps only the wheels whose distribution is not installed there, so a package
the machine already has is never shadowed.
"""

from __future__ import annotations

import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

#: What the study needs beyond the GPU machine's stack (tensorboard is optional: metrics.csv holds
#: every logged number).
ROOTS = ("tree-sitter", "tree-sitter-python", "dulwich", "papermill", "nbclient", "ipykernel", "jupytext",
         "tomli_w", "datasets")
#: On the GPU machine already (with all they depend on).
PRESENT = ("torch", "transformers", "accelerate", "peft", "pandas", "pyarrow", "tokenizers", "matplotlib",
           "seaborn", "scipy", "numpy")
#: glibc 2.28 at most (2018): a newer build (debugpy offers 2.34) falls back to its pure-Python wheel.
PLATFORMS = ("manylinux2014_x86_64", "manylinux_2_17_x86_64", "manylinux_2_28_x86_64")
TARGET_MARKERS = {"python_version": "3.12", "python_full_version": "3.12.3", "sys_platform": "linux",
                  "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix",
                  "implementation_name": "cpython", "platform_python_implementation": "CPython"}


class WheelError(RuntimeError):
    """A wheel that cannot be resolved or downloaded; the message says what to do."""


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requires(name: str) -> list[str]:
    """Dependencies of an installed distribution here (none for one not installed here)."""
    from packaging.requirements import Requirement

    try:
        dist = metadata.distribution(name)
    except metadata.PackageNotFoundError:
        return []
    out = []
    for raw in dist.requires or []:
        req = Requirement(raw)
        if req.marker is not None and not req.marker.evaluate({**TARGET_MARKERS, "extra": ""}):
            continue
        out.append(normalize(req.name))
    return out


def closure(names: tuple[str, ...] | list[str]) -> set[str]:
    seen: set[str] = set()
    todo = [normalize(n) for n in names]
    while todo:
        n = todo.pop()
        if n in seen:
            continue
        seen.add(n)
        todo.extend(_requires(n))
    return seen


def _pip_target_args(python_version: str) -> list[str]:
    abi = "cp" + python_version.replace(".", "")
    return ["--only-binary", ":all:", "--python-version", python_version, "--implementation", "cp",
            "--abi", abi, "--abi", "abi3", "--abi", "none", *[a for p in PLATFORMS for a in ("--platform", p)],
            "--platform", "any"]


def _pip(args: list[str], what: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        lines = [x for x in (proc.stderr or proc.stdout).strip().splitlines() if not x.startswith("WARNING")]
        raise WheelError(f"pip {what} failed ({(lines or ['no output'])[-1]}): the bundle needs PyPI once "
                         "(or pass --no-wheels)")


def resolve(roots: tuple[str, ...] = ROOTS, *, python_version: str = "3.12",
            constraints: Path | None = None) -> dict[str, tuple[str, list[str]]]:
    """{name: (version, [dependency names])} of the closure of ``roots`` on the GPU's Python, as pip
    resolves it (``--dry-run --report``: metadata only) under the pinned ``requirements.lock``."""
    import json
    import tempfile

    from packaging.requirements import Requirement

    from ..paths import REPO_ROOT

    lock = constraints or REPO_ROOT / "requirements.lock"
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        _pip(["install", "--dry-run", "--ignore-installed", "--quiet", "--report", str(report),
              *_pip_target_args(python_version), "--target", str(Path(tmp) / "t"), "-c", str(lock), *roots],
             "resolve")
        items = json.loads(report.read_text())["install"]
    env = {**TARGET_MARKERS, "python_version": python_version}
    graph: dict[str, tuple[str, list[str]]] = {}
    for it in items:
        md = it["metadata"]
        deps = []
        for raw in md.get("requires_dist") or []:
            req = Requirement(raw)
            if req.marker is None or req.marker.evaluate({**env, "extra": ""}):
                deps.append(normalize(req.name))
        graph[normalize(md["name"])] = (md["version"], deps)
    return graph


def plan(roots: tuple[str, ...] = ROOTS, present: tuple[str, ...] = PRESENT, *,
         python_version: str = "3.12") -> list[tuple[str, str]]:
    """(name, version) of every wheel to bundle: the closure of ``roots`` on the target less what
    :data:`PRESENT` brings (their closure in this environment), sorted by name."""
    graph = resolve(roots, python_version=python_version)
    # pip evaluates markers with the running Python (3.11 here), so dependencies only the target's
    # Python has (papermill's aiohttp on 3.12) are resolved in a second pass
    for _ in range(5):
        missing = sorted({d for _, deps in graph.values() for d in deps} - set(graph))
        if not missing:
            break
        graph.update(resolve(tuple(missing), python_version=python_version))
    seen: set[str] = set()
    todo = [normalize(r) for r in roots]
    while todo:
        n = todo.pop()
        if n in seen or n not in graph:
            continue
        seen.add(n)
        todo.extend(graph[n][1])
    have = closure(present) | {normalize(p) for p in present}
    return sorted((n, graph[n][0]) for n in seen - have)


def download(pins: list[tuple[str, str]], dest: Path, *, python_version: str = "3.12") -> list[Path]:
    """``pip download`` each pinned wheel (no dependencies: the plan is the closure) into ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    _pip(["download", "--quiet", "--no-deps", *_pip_target_args(python_version), "-d", str(dest),
          *[f"{n}=={v}" for n, v in pins]], "download")
    want = {n for n, _ in pins}
    return sorted(w for w in dest.glob("*.whl") if wheel_name(w)[0] in want)


def wheel_name(path: Path) -> tuple[str, str]:
    """(normalized distribution name, version) from a wheel's file name."""
    parts = Path(path).name.split("-")
    return normalize(parts[0]), parts[1]


def installable(wheels: list[Path]) -> tuple[list[Path], list[str]]:
    """The wheels whose distribution is not installed here, and a note for each one skipped."""
    todo, skipped = [], []
    for w in wheels:
        name, version = wheel_name(w)
        try:
            have = metadata.version(name)
        except metadata.PackageNotFoundError:
            todo.append(w)
            continue
        skipped.append(f"{name} {have} already installed (bundle: {version})")
    return todo, skipped
