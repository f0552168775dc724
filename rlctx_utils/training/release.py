"""Released base models: a profile's stage-A checkpoint committed once, as papers release theirs.

The base model of the ``cpu`` study may take longer to train than one ``make reproduce`` allows. It
is then trained once and released in the repository::

    results/<profile>/release/<run_id>/
        model.safetensors, config.json, generation_config.json   the weights (fp32, at most 40 MB)
        tokenizer.json, tokenizer_config.json, ...               its tokenizer
        run.json, metrics.csv, config.json (as run_config.json)  its training record and log
        release.json                                              sha256 of every file, the run's
                                                                  config hash and data-order hash

A fresh clone has the run's committed log (``results/<profile>/runs/<run_id>/``) but no checkpoint.
Where a release of that run exists with the same config hash, :func:`restore` puts its weights in
the run's ``checkpoints/final`` instead of training again (:func:`rlctx_utils.training.runs.prepare_run_dir`
calls it); ``RETRAIN_BASE=1`` in the environment trains it again instead, which repeats the
released log exactly (the run is seeded: ``tests/test_release.py`` shows it on the smoke profile).

``rlctx release PROFILE [--run-id base]`` writes a release from a finished run.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from ..io import sha256_file as _sha256
from ..io import atomic_dir, read_json, write_json
from ..paths import results_dir

#: The most a release may weigh (the repository keeps results small).
MAX_BYTES = 40 * 1024 * 1024
#: Checkpoint files that are not part of a release (optimizer and RNG state are for resuming).
LEFT_OUT = ("trainer_state.pt", "rng", "accelerate_state", "adapter")
RETRAIN_ENV = "RETRAIN_BASE"


class ReleaseError(RuntimeError):
    """A release that cannot be written or used; the message says what to do."""


def release_dir(profile: str, run_id: str = "base", results_root: str | Path | None = None) -> Path:
    return Path(results_root or results_dir(profile)) / "release" / run_id




def write_release(run_dir: str | Path, out: str | Path) -> dict[str, Any]:
    """Copy a finished run's final weights, tokenizer and log into ``out`` (atomic); returns release.json."""
    run_dir, out = Path(run_dir), Path(out)
    rec_path = run_dir / "run.json"
    final = run_dir / "checkpoints" / "final"
    if not rec_path.exists() or read_json(rec_path).get("status") != "finished" or not (final / "config.json").exists():
        raise ReleaseError(f"{run_dir} holds no finished run with a final checkpoint: train it first")
    rec = read_json(rec_path)
    files = [p for p in sorted(final.iterdir()) if p.is_file() and p.name not in LEFT_OUT]
    size = sum(p.stat().st_size for p in files)
    if size > MAX_BYTES:
        raise ReleaseError(f"the checkpoint weighs {size / 2**20:.1f} MiB, over the {MAX_BYTES // 2**20} MiB a "
                           "release may take: release a smaller model")
    with atomic_dir(out) as tmp:
        for p in files:
            shutil.copy2(p, tmp / p.name)
        shutil.copy2(rec_path, tmp / "run.json")
        shutil.copy2(run_dir / "metrics.csv", tmp / "metrics.csv")
        if (run_dir / "config.json").exists():
            shutil.copy2(run_dir / "config.json", tmp / "run_config.json")
        meta = {"run_id": rec["run_id"], "profile": rec.get("profile"), "config_hash": rec.get("config_hash"),
                "data_order_hash": rec.get("data_order_hash"), "step": rec.get("step"),
                "train_tokens": rec.get("train_tokens"), "final_loss": rec.get("final_loss"),
                "weights_bytes": size,
                "files": {p.name: _sha256(tmp / p.name) for p in sorted(tmp.iterdir()) if p.is_file()}}
        write_json(tmp / "release.json", meta)
    return meta


def verify(release: str | Path) -> dict[str, Any]:
    """release.json, after checking every file's sha256 (a damaged release is refused)."""
    release = Path(release)
    meta = read_json(release / "release.json")
    for name, digest in meta["files"].items():
        p = release / name
        if not p.is_file() or _sha256(p) != digest:
            raise ReleaseError(f"released file {p} is missing or does not match release.json: restore it "
                               "from git (git checkout -- results/) or retrain with RETRAIN_BASE=1")
    return meta


def restore(run: dict[str, Any], run_dir: str | Path, config_hash: str, *,
            results_root: str | Path | None = None) -> bool:
    """Put the released weights of ``run`` into ``run_dir/checkpoints/final`` when a release with this
    config hash exists (and ``RETRAIN_BASE`` is not set); True when it did."""
    if os.environ.get(RETRAIN_ENV, "").strip() not in ("", "0"):
        return False
    rel = release_dir(run["profile"], run["run_id"], results_root)
    if not (rel / "release.json").exists():
        return False
    meta = verify(rel)
    if meta.get("config_hash") != config_hash:
        print(f"release {rel} is of another config (hash {meta.get('config_hash')} vs {config_hash}): not used",
              flush=True)
        return False
    final = Path(run_dir) / "checkpoints" / "final"
    skip = {"run.json", "metrics.csv", "run_config.json", "release.json"}
    with atomic_dir(final) as tmp:
        for name in meta["files"]:
            if name not in skip:
                shutil.copy2(rel / name, tmp / name)
    print(f"run {run['run_id']!r}: using the released weights in {rel} ({meta['weights_bytes'] / 2**20:.1f} MiB; "
          f"set {RETRAIN_ENV}=1 to train it again)", flush=True)
    return True
