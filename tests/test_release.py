"""A released base model is reused on a fresh clone; RETRAIN_BASE=1 retrains it to the same log."""

from __future__ import annotations

import shutil

import pytest

from rlctx_utils.config import load_profile
from rlctx_utils.io import read_json
from rlctx_utils.training.loop import train
from rlctx_utils.training.release import ReleaseError, release_dir, verify, write_release
from rlctx_utils.training.runs import resolve_run

from test_incontext import _module
from rlctx_utils.data.store import save_corpus


@pytest.fixture()
def smoke_base(tmp_path, py_tokenizer):
    data = tmp_path / "data"
    save_corpus([{"repo": "r", "path": f"m{i}.py", "content": _module(f"k{i}", 10), "sha1": str(i)}
                 for i in range(6)], data / "corpus")
    tok = tmp_path / "tok"
    py_tokenizer.save_pretrained(str(tok))
    cfg = load_profile("smoke", [f'base_training.tokenizer="{tok}"', f'base_training.corpus="{data}"',
                                 "base_training.stop_step=4", "base_training.sequences_per_step=2",
                                 "base_training.save_every=0"])
    run = resolve_run(cfg, "base")
    root = tmp_path / "res"
    train(run, out_dir=root, progress=False)
    return run, root


def test_release_is_reused_and_a_retrain_repeats_its_log(smoke_base, monkeypatch):
    run, root = smoke_base
    d = root / "runs" / "base"
    rel = release_dir("smoke", "base", root)
    meta = write_release(d, rel)
    assert "model.safetensors" in meta["files"] and "trainer_state.pt" not in meta["files"]
    released_log = (rel / "metrics.csv").read_text()
    weights = (d / "checkpoints" / "final" / "model.safetensors").read_bytes()

    # a fresh clone: the committed log, no checkpoint -> the release is put in place, nothing trains
    shutil.rmtree(d / "checkpoints")
    monkeypatch.delenv("RETRAIN_BASE", raising=False)
    rec = train(run, out_dir=root, progress=False)
    assert (d / "checkpoints" / "final" / "model.safetensors").read_bytes() == weights
    assert (d / "metrics.csv").read_text() == released_log and rec["status"] == "finished"

    # RETRAIN_BASE=1: trained again from scratch, the same log to the last digit
    shutil.rmtree(d / "checkpoints")
    monkeypatch.setenv("RETRAIN_BASE", "1")
    train(run, out_dir=root, progress=False)
    strip = lambda text: [",".join(x.split(",")[:5]) for x in text.splitlines()]  # step, loss, lr, grad, tokens
    assert strip((d / "metrics.csv").read_text()) == strip(released_log)
    assert read_json(d / "run.json")["final_loss"] == read_json(rel / "run.json")["final_loss"]


def test_damaged_or_missing_releases_are_refused(smoke_base, tmp_path):
    run, root = smoke_base
    with pytest.raises(ReleaseError, match="no finished run"):
        write_release(tmp_path / "nothing", tmp_path / "rel")
    rel = release_dir("smoke", "base", root)
    write_release(root / "runs" / "base", rel)
    (rel / "model.safetensors").write_bytes(b"not weights")
    with pytest.raises(ReleaseError, match="does not match"):
        verify(rel)
