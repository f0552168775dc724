"""Hostile and unusual input to training (issue 12): a crafted trainer state, two writers on one run,
negative step counts, misspelled keys, leftovers of killed runs."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from rlctx_utils.cli import main
from rlctx_utils.io import read_json, write_json

from test_training_runs import TINY, corpus_dir, tok_dir  # noqa: F401  (fixtures)


def _args(tok_dir, corpus_dir, out, *extra):
    return ["train", "smoke", "--stage", "base", "--no-progress", f'tokenizer="{tok_dir}"',
            f'corpus="{corpus_dir}"', *TINY, "--out-dir", str(out), *extra]


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert not any("Traceback" in ln for ln in err)
    err = [ln for ln in err if ": error:" in ln]
    assert len(err) == 1, err
    return err[0]


class _Evil:
    """Unpickling this runs code: what a crafted checkpoint could do."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('pwned')",))


@pytest.fixture(scope="module")
def finished(tok_dir, corpus_dir, tmp_path_factory):  # noqa: F811
    out = tmp_path_factory.mktemp("hostile_train")
    assert main(_args(tok_dir, corpus_dir, out)) == 0
    return out


def test_trainer_state_loads_with_weights_only(finished):
    d = finished / "runs" / "base" / "checkpoints"
    for name in ("final", "step-2"):
        st = torch.load(d / name / "trainer_state.pt", weights_only=True)
        assert st["step"] == int(name.split("-")[-1]) if name != "final" else st["step"] == 3
        assert set(st["rng"]) >= {"python", "numpy", "torch"}


def test_crafted_trainer_state_is_not_executed(finished, tmp_path, capsys, tok_dir, corpus_dir):  # noqa: F811
    import shutil

    out = tmp_path / "o"
    shutil.copytree(finished, out)
    d = out / "runs" / "base"
    shutil.rmtree(d / "checkpoints" / "final")
    rec = read_json(d / "run.json")
    rec["status"] = "running"
    write_json(d / "run.json", rec)
    marker = tmp_path / "pwned"
    torch.save({"step": 2, "payload": _Evil(str(marker))}, d / "checkpoints" / "step-2" / "trainer_state.pt")
    assert main(_args(tok_dir, corpus_dir, out, "--resume")) == 2
    assert not marker.exists(), "the crafted pickle ran"
    err = one_line_error(capsys)
    assert "cannot be loaded safely" in err and "step-2" in err


def test_negative_steps_are_refused(tmp_path, capsys, tok_dir, corpus_dir):  # noqa: F811
    assert main(_args(tok_dir, corpus_dir, tmp_path / "a", "stop_step=-1")) == 2
    assert "stop_step = -1" in one_line_error(capsys)
    assert main(_args(tok_dir, corpus_dir, tmp_path / "b", "--max-steps", "-3")) == 2
    assert "--max-steps -3" in one_line_error(capsys)
    assert not any((tmp_path / x / "runs" / "base" / "run.json").exists() for x in "ab")


@pytest.mark.parametrize("override,expect", [("lrr=5", "did you mean 'base_training.lr'"),
                                             ("lr=abc", "expected a number"),
                                             ("data.min_chars=abc", "expected an integer")])
def test_training_overrides_are_checked(tmp_path, capsys, tok_dir, corpus_dir, override, expect):  # noqa: F811
    assert main(_args(tok_dir, corpus_dir, tmp_path, override)) == 2
    assert expect in one_line_error(capsys)


def test_second_trainer_of_one_run_is_refused(tmp_path, capsys, tok_dir, corpus_dir):  # noqa: F811
    d = tmp_path / "runs" / "base"
    d.mkdir(parents=True)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (d / ".rlctx.lock").write_text(f"{other.pid}\nrlctx train smoke --run-id base\n")
        assert main(_args(tok_dir, corpus_dir, tmp_path, "lr=1e-3")) == 2
        err = one_line_error(capsys)
        assert f"pid {other.pid}" in err and not (d / "config.json").exists()
    finally:
        other.kill()
        other.wait()


def test_leftovers_of_a_killed_run_are_removed(finished, tmp_path, tok_dir, corpus_dir):  # noqa: F811
    import shutil

    out = tmp_path / "o"
    shutil.copytree(finished, out)
    d = out / "runs" / "base"
    junk = [d / "checkpoints" / ".step-4.rlctx-tmp-ab12", d / "checkpoints" / ".final.k3j4h5g6",
            d / "checkpoints" / ".step-2.accelerate_state", d / ".run.rlctx-tmp-zz.json",
            d / ".metrics.q1w2e3r4.csv.old.123"]
    for j in junk:
        (j / "x").mkdir(parents=True) if "json" not in j.name and "csv" not in j.name else j.write_text("x")
    (d / ".rlctx.lock").write_text("999999999\nrlctx train (killed)\n")  # a dead holder
    assert main(_args(tok_dir, corpus_dir, out)) == 0  # finished: nothing to train, leftovers go
    left = [j for j in junk if j.exists()]
    assert not left and not (d / ".rlctx.lock").exists()
    assert (d / "checkpoints" / "final").is_dir() and (d / "run.json").exists()
