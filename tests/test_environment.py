"""The pinned environment installs as the README says: requirements.lock resolves on the default index
(public versions only) and agrees with pyproject.toml; environment.yml (Binder, conda) installs the
same lock with CPU-only torch; `make setup TORCH=cpu` opts in to CPU wheels; `make lab` serves the
repository root and handles root users."""

from __future__ import annotations

import os
import re
import subprocess
import tomllib

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from rlctx_utils.paths import REPO_ROOT

CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def _lock() -> dict[str, str]:
    pins = {}
    for line in (REPO_ROOT / "requirements.lock").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            m = re.fullmatch(r"([A-Za-z0-9_.\-]+)==(\S+)", line)
            assert m, f"requirements.lock: {line!r} is not NAME==VERSION"
            pins[canonicalize_name(m[1])] = m[2]
    return pins


def _pyproject() -> dict:
    return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]


def test_lock_has_public_versions_only():
    """A local label (torch==2.13.0+cpu) exists only on PyTorch's own index: pip on PyPI cannot resolve it."""
    local = {n: v for n, v in _lock().items() if Version(v).local}
    assert not local, f"local version labels in requirements.lock: {local}"


def test_lock_agrees_with_pyproject():
    lock, project = _lock(), _pyproject()
    reqs = [Requirement(r) for r in project["dependencies"]]
    reqs += [Requirement(r) for extra in project["optional-dependencies"].values() for r in extra]
    for req in reqs:
        name = canonicalize_name(req.name)
        assert name in lock, f"{req} (pyproject.toml) is not in requirements.lock"
        assert req.specifier.contains(lock[name], prereleases=True), f"lock {name}=={lock[name]} breaks {req}"
    # every pin but torch's (a range, so Colab keeps its own CUDA build) is exact
    assert all(str(r.specifier).startswith("==") for r in reqs if r.name != "torch")


def test_environment_yml_installs_the_lock_with_cpu_torch():
    env = yaml.safe_load((REPO_ROOT / "environment.yml").read_text())
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert "python=3.11" in conda and "make" in conda
    assert f"--extra-index-url {CPU_INDEX}" in pip  # torch 2.13.0+cpu outranks PyPI's CUDA 2.13.0
    assert "-c requirements.lock" in pip  # every package at its locked version
    editable = [p for p in pip if p.startswith("-e .[")]
    assert len(editable) == 1 and set(editable[0][5:-1].split(",")) == set(_pyproject()["optional-dependencies"])
    assert not [p for p in pip if "==" in p], "pins belong in requirements.lock"


def test_binder_post_build_opens_py_notebooks_and_lets_make_use_the_environment():
    post = REPO_ROOT / "postBuild"
    assert os.access(post, os.X_OK)
    text = post.read_text()
    assert "jupytext-config set-default-viewer python" in text
    assert "ln -sfn" in text and ".venv/.installed" in text


def _make_n(*args: str) -> str:
    return subprocess.run(["make", "-n", *args], cwd=REPO_ROOT, capture_output=True, text=True, check=True).stdout


@pytest.mark.parametrize("torch", ["default", "cpu", "system"])
def test_make_setup_torch_variants(torch):
    out = _make_n("setup", f"TORCH={torch}", "-W", "pyproject.toml")
    locked = _lock()["torch"]
    assert "-c requirements.lock" in out or "-c .venv/constraints.txt" in out
    if torch == "cpu":
        assert f"--no-deps --index-url {CPU_INDEX} torch=={locked}" in out
    else:
        assert CPU_INDEX not in out
    if torch == "system":  # Colab: its torch stays, nothing reinstalls it
        assert "--system-site-packages" in out and "grep -v '^torch=='" in out


def test_make_lab_serves_the_repository_root_and_handles_root():
    out = _make_n("lab")
    assert f"--ServerApp.root_dir={REPO_ROOT}" in out
    assert 'if [ "$(id -u)" = 0 ]; then allow="--allow-root"' in out and "note: running as root" in out
