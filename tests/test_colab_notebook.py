"""The Colab notebook's install cell, run as Colab would run it twice, with stand-ins for git and make:
no nvidia-smi is no error (a CPU runtime is told, and switched to the smoke profile), a rerun neither
clones a nested copy nor reinstalls, and the install keeps Colab's torch (TORCH=system)."""

from __future__ import annotations

import os
import stat

import jupytext

from rlctx_utils.paths import NOTEBOOKS

FAKE_GIT = """#!/bin/sh
echo "git $*" >> "$CALLS"
dest=$(eval echo \\${$#})
mkdir -p "$dest/.git" "$dest/notebooks/colab" && touch "$dest/notebooks/colab/gpu_small.py"
"""
FAKE_MAKE = """#!/bin/sh
echo "make $* (in $(pwd))" >> "$CALLS"
"""


def test_colab_install_cell_is_idempotent_without_a_gpu(tmp_path, monkeypatch, capsys):
    nb = jupytext.read(NOTEBOOKS / "colab" / "gpu_small.py")
    params = next(c.source for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    install = next(c.source for c in nb.cells if c.cell_type == "code" and "git" in c.source and "clone" in c.source)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in (("git", FAKE_GIT), ("make", FAKE_MAKE)):
        (bin_dir / name).write_text(body)
        (bin_dir / name).chmod(stat.S_IRWXU)
    calls = tmp_path / "calls.txt"
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")  # no nvidia-smi
    monkeypatch.setenv("CALLS", str(calls))
    content = tmp_path / "content"
    content.mkdir()
    monkeypatch.chdir(content)
    ns: dict = {}
    exec(params, ns)
    exec(install, ns)
    exec(install, ns)  # the rerun, from inside the clone
    out = capsys.readouterr().out
    assert "No GPU" in out and ns["profile"] == "smoke"
    lines = calls.read_text().splitlines()
    assert sum(line.startswith("git clone") for line in lines) == 1
    assert not (content / "rlctx" / "rlctx").exists()
    makes = [line for line in lines if line.startswith("make")]
    assert len(makes) == 2 and all("setup TORCH=system" in m and f"{content}/rlctx" in m for m in makes)
    assert os.getcwd() == str(content / "rlctx")
