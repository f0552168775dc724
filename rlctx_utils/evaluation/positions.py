"""Loss by position across (and beyond) the window, on the held-out benchmark.

Exact match is near zero for a toy model, and the target-line measures average over positions. The
curve of next-token loss against position shows directly what the RoPE base and the extension
training change: a model that cannot use positions beyond its training length has a loss that rises
there, one that uses the repository context has a loss that falls along it.

For every benchmark datapoint the sequence is the one repository-level training builds
(:func:`rlctx_utils.training.sequences.build_repo_sequence`): Path Distance .py context cut from the
left, then the completion file cut to a quarter of the window, ``max_len`` tokens in all (the
default is twice the profile's extended length). Every position carries a loss (context and
completion alike). One stored result per checkpoint:

- ``results/<profile>/positions/<run_id>.csv``: ``position`` (1-based index of the predicted
  token), ``loss`` (mean nats over sequences reaching that position), ``count``;
- ``<run_id>.json``: the sidecar (identity: checkpoint fingerprint, benchmark fingerprint, composer,
  max_len, seed), written last. A result with the same identity is not recomputed.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..config import config_hash
from ..io import atomic_path, read_json, write_sidecar
from ..paths import results_dir
from .runner import EvalError

COMPOSER = "path_distance_py"


def positions_dir(profile: str, out_dir: str | Path | None = None, results_root: str | Path | None = None) -> Path:
    """Where the curves live: ``out_dir``, else ``<results_root or results/<profile>>/positions``."""
    return Path(out_dir) if out_dir else Path(results_root or results_dir(profile)) / "positions"


def heldout_sequences(datapoints: Iterable[Any], tokenizer: Any, *, max_len: int, seed: int,
                      composer: str = COMPOSER, fmt: str = "opencoder") -> list[list[int]]:
    """Token ids of the training-style sequence of every datapoint (context + completion)."""
    from ..training.sequences import build_repo_sequence

    out = []
    for dp in datapoints:
        seq = build_repo_sequence(dp, composer=composer, mode="original", tokenizer=tokenizer, seq_len=max_len,
                                  seed=seed, loss="full", completion_max=max(1, max_len // 4), fmt=fmt)
        if len(seq.input_ids) >= 2:
            out.append(seq.input_ids)
    if not out:
        raise EvalError("no benchmark datapoint gives a sequence of two tokens or more")
    return out


def loss_by_position(model: Any, sequences: Sequence[Sequence[int]], *, progress: bool = False,
                     desc: str = "loss by position") -> pd.DataFrame:
    """Mean next-token loss at every position over ``sequences`` (:func:`rlctx_utils.rope.mean_loss_by_position`)."""
    from ..rope import mean_loss_by_position

    return pd.DataFrame(mean_loss_by_position(model, sequences, progress=progress, desc=desc))


def _identity(info: Any, bench: Any, max_len: int, seed: int, fmt: str) -> dict[str, Any]:
    return {"checkpoint": info.ref, "checkpoint_fingerprint": info.fingerprint, "benchmark": bench.name,
            "benchmark_fingerprint": bench.fingerprint, "composer": COMPOSER, "max_len": int(max_len),
            "seed": int(seed), "fmt": fmt}


def run_positions(profile: str, run_ids: Sequence[str] | None = None, *, max_len: int | None = None,
                  cfg: dict[str, Any] | None = None, out_dir: str | Path | None = None,
                  results_root: str | Path | None = None, benchmark: Any = None,
                  progress: bool = True) -> pd.DataFrame:
    """Compute (or skip, when stored) the loss-by-position curve of each run's final checkpoint.

    ``run_ids`` None = every run with a final checkpoint. Runs whose checkpoint is absent (a fresh
    clone holds only the committed curves) keep their stored curve; returns one row per run with
    ``run_id``, ``state`` (done / skipped / missing) and ``wall_time_s``.
    """
    from ..config import load_profile
    from .api import checkpoints_to_measure, default_benchmark, load_benchmark

    cfg = cfg if cfg is not None else load_profile(profile)
    max_len = int(max_len or 2 * int(cfg["extended_length"]))
    seed = int((cfg.get("eval") or {}).get("seed", cfg.get("seed", 0)))
    fmt = str((cfg.get("repo_training") or {}).get("fmt", "opencoder"))
    runs_root = Path(results_root or results_dir(profile)) / "runs"
    if run_ids is None:  # the profile's [eval] positions_runs, else every run with a final checkpoint
        run_ids = list((cfg.get("eval") or {}).get("positions_runs") or []) or \
            sorted(p.parent.parent.name for p in runs_root.glob("*/checkpoints/final") if p.is_dir())
    out = positions_dir(profile, out_dir, results_root)
    rows = []
    state = {"bench": benchmark}

    def identity_of(info: Any) -> dict[str, Any]:
        if state["bench"] is None:
            state["bench"] = load_benchmark(default_benchmark(profile, cfg))
        return _identity(info, state["bench"], max_len, seed, fmt)

    for rid, ck, path, info, ident in checkpoints_to_measure(run_ids, runs_root, out, identity_of, rows):
        bench = state["bench"]
        from ..models import load_model
        from ..tokenizer import load_tokenizer

        t0 = time.time()
        tok = load_tokenizer(str(ck))
        model = load_model(str(ck))
        seqs = heldout_sequences(bench.datapoints, tok, max_len=max_len, seed=seed, fmt=fmt)
        curve = loss_by_position(model, seqs, progress=progress, desc=rid)
        wall = time.time() - t0
        with atomic_path(path) as tmp:
            curve.round({"loss": 5}).to_csv(tmp, index=False)
        write_sidecar(path, {"identity": ident, "run_record": info.record, "n_sequences": len(seqs),
                             "config_hash": config_hash(ident)}, wall_time_s=wall)
        rows.append({"run_id": rid, "state": "done", "wall_time_s": round(wall, 1)})
    return pd.DataFrame(rows, columns=["run_id", "state", "wall_time_s"])


def load_positions(profile: str, out_dir: str | Path | None = None) -> pd.DataFrame:
    """Every stored curve: ``run_id``, ``position``, ``loss``, ``count`` and the run's record fields
    (``composer``, ``mode``, ``loss_type``, ``theta``, ``train_length``)."""
    d = positions_dir(profile, out_dir)
    frames = []
    for f in sorted(d.glob("*.csv")) if d.is_dir() else []:
        side = f.with_suffix(".json")
        if not side.exists():
            continue  # unfinished: the sidecar is written last
        rec = (read_json(side).get("config") or {}).get("run_record") or {}
        c = pd.read_csv(f)
        c["run_id"] = f.stem
        c["composer"] = rec.get("composer")
        c["mode"] = rec.get("mode")
        c["loss_type"] = rec.get("loss")
        c["theta"] = rec.get("rope_theta")
        c["train_length"] = rec.get("train_length")
        frames.append(c)
    if not frames:
        return pd.DataFrame(columns=["position", "loss", "count", "run_id", "composer", "mode", "loss_type",
                                     "theta", "train_length"])
    return pd.concat(frames, ignore_index=True)


def window_means(curves: pd.DataFrame, edges: Sequence[int]) -> pd.DataFrame:
    """Mean loss of each run in position windows ``[edges[i], edges[i+1])`` (count-weighted)."""
    rows = []
    for rid, c in curves.groupby("run_id", sort=False):
        for lo, hi in zip(edges[:-1], edges[1:]):
            w = c[(c["position"] >= lo) & (c["position"] < hi)]
            if len(w):
                rows.append({"run_id": rid, "window": f"{lo}–{hi}", "lo": lo, "hi": hi,
                             "loss": float(np.average(w["loss"], weights=w["count"]))})
    return pd.DataFrame(rows, columns=["run_id", "window", "lo", "hi", "loss"])
