"""Runs of the study: resolving a run's config, its folder, its record, checkpoints and resume.

The study is a grid of training runs that differ only in composer, mode, loss and RoPE base
(SPEC section 4, "Run count"). Every run lives in ``results/<profile>/runs/<run_id>/``::

    run.json          the run record (composer, mode, loss, theta, train length and tokens, status)
    config.json       the fully resolved config the run trained with
    data_order.json   the hash and the first ids of the data order (same for a whole grid)
    metrics.csv       one row per optimizer step (loss, lr, grad norm, tokens, tokens/s)
    tb/               TensorBoard event files
    checkpoints/step-<N>/, checkpoints/final/
                      ``save_pretrained`` folders (safetensors + tokenizer) with ``trainer_state.pt``
                      (optimizer, scheduler, RNG states, data position); git-ignored

A finished run is never overwritten by a different config: :func:`prepare_run_dir` raises
:class:`RunExistsError` saying which run and what to do.
"""

from __future__ import annotations

import copy
import re
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from ..config import ConfigError, config_hash
from ..io import read_json, write_json
from ..paths import REPO_ROOT, results_dir

STAGES = ("base", "repo")
SECTION = {"base": "base_training", "repo": "repo_training"}
#: Keys that change how a run is observed, not what it computes (left out of its identity).
#: ``incontext_every``: copy scores logged every N steps (forward passes only, no random state
#: used), see :mod:`rlctx_utils.evaluation.incontext`; ``probe_data``: whose validation split
#: they use; ``sequences``: pre-tokenized arrays of the same tokens (rlctx gpu bundle).
VOLATILE_KEYS = ("debug", "log_every", "save_every", "threads", "progress", "out_dir", "incontext_every",
                 "probe_data", "sequences")


class RunError(ValueError):
    """A run that cannot be set up as asked (unknown run id, bad grid entry...)."""


class RunExistsError(RunError):
    """A run folder already holds a run that this command must not overwrite."""


def format_theta(theta: float) -> str:
    t = float(theta)
    return str(int(t)) if t.is_integer() else str(t)


def default_run_id(stage: str, run: dict[str, Any]) -> str:
    """``base`` for stage A; ``<composer>-<mode>-<loss>-theta<theta>`` for stage B."""
    if stage == "base":
        return "base"
    return f"{run['composer']}-{run.get('mode', 'original')}-{run['loss']}-theta{format_theta(run['rope_theta'])}"


def grid_runs(cfg: dict[str, Any]) -> list[dict[str, Any]]:
    """The stage-B grid of a profile: ``[[repo_training.runs]]`` entries merged over the section.

    Each entry names what differs (composer, mode, loss, rope_theta, optionally seq_len and id);
    everything else comes from ``[repo_training]``. The list keeps the profile's order.
    """
    sec = cfg.get("repo_training", {})
    out = []
    for entry in sec.get("runs", []) or []:
        if not isinstance(entry, dict):
            raise RunError("each [[repo_training.runs]] entry must be a table")
        run = {k: v for k, v in sec.items() if k != "runs"}
        run.update(entry)
        run["run_id"] = entry.get("id") or default_run_id("repo", run)
        run.pop("id", None)
        out.append(run)
    ids = [r["run_id"] for r in out]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        raise RunError(f"duplicate run ids in the grid: {dup}")
    return out


_ID_RE = re.compile(r"^[A-Za-z0-9_.\-]+$")


def resolve_run(cfg: dict[str, Any], stage: str, run_id: str | None = None) -> dict[str, Any]:
    """The resolved config of one run (stage section + grid entry + profile-wide keys).

    Stage B: ``run_id`` may name a grid entry; otherwise the section's own composer/mode/loss/theta
    make the run and ``run_id`` (if given) just names it.
    """
    if stage not in STAGES:
        raise RunError(f"unknown stage {stage!r}: give one of {STAGES}")
    sec = cfg.get(SECTION[stage])
    if not isinstance(sec, dict):
        raise ConfigError(f"profile {cfg.get('profile')!r} has no [{SECTION[stage]}] section")
    run: dict[str, Any] | None = None
    if stage == "repo" and run_id:
        run = next((r for r in grid_runs(cfg) if r["run_id"] == run_id), None)
    if run is None:
        run = {k: copy.deepcopy(v) for k, v in sec.items() if k != "runs"}
        if stage == "base":
            run.setdefault("composer", None)
            run.setdefault("loss", "full")
        run["run_id"] = run_id or run.get("run_id") or default_run_id(stage, run)
    if not _ID_RE.match(run["run_id"]):
        raise RunError(f"run id {run['run_id']!r} may only hold letters, digits, '.', '_' and '-'")
    check_counts(run, SECTION[stage])
    run["stage"] = stage
    run["profile"] = cfg.get("profile")
    run.setdefault("seed", cfg.get("seed", 0))
    for k in ("base_length", "extended_length"):
        if k in cfg:
            run.setdefault(k, cfg[k])
    run["model"] = copy.deepcopy(cfg.get("model", {}))
    run["tokenizer_cfg"] = copy.deepcopy(cfg.get("tokenizer", {}))
    run["data_cfg"] = copy.deepcopy(cfg.get("data", {}))
    run["debug"] = {**(cfg.get("debug") or {}), **(run.get("debug") or {})}  # test hooks, not identity
    if stage == "repo" and run.get("composer") == "file_level":
        # File-level runs: the completion file alone at the base length (SPEC section 5).
        run["seq_len"] = int(run.get("file_level_seq_len") or run.get("base_length") or run["seq_len"])
    return run


#: Step and size settings: (minimum value, what the key means).
_COUNTS = {"stop_step": (0, "the optimizer step to stop at (0: no training)"),
           "save_every": (0, "steps between checkpoints (0: only the final one)"),
           "sequences_per_step": (1, "sequences per optimizer step"),
           "seq_len": (1, "tokens per training sequence"),
           "micro_batch_tokens": (1, "tokens per micro batch"),
           "keep_checkpoints": (0, "step checkpoints kept")}


def check_counts(run: dict[str, Any], section: str = "") -> None:
    """Refuse negative or non-integer step counts and sizes (``stop_step=-1`` would "finish" at once
    with a record pointing at a checkpoint that was never written)."""
    for key, (low, what) in _COUNTS.items():
        if key not in run or run[key] is None:
            continue
        v = run[key]
        if isinstance(v, bool) or not isinstance(v, int) or v < low:
            where = f"{section}.{key}" if section else key
            raise RunError(f"{where} = {v!r}: {what} must be an integer >= {low}")


def identity(run: dict[str, Any]) -> dict[str, Any]:
    """The part of a run's config that decides its result (what must match to resume or skip)."""
    return {k: v for k, v in run.items() if k not in VOLATILE_KEYS}


def run_dir(run: dict[str, Any], out_dir: str | Path | None = None) -> Path:
    root = Path(out_dir) if out_dir else results_dir(run["profile"])
    return root / "runs" / run["run_id"]


def relpath(p: Path) -> str:
    try:
        return str(Path(p).resolve().relative_to(REPO_ROOT.resolve()))
    except ValueError:
        return str(p)


def prepare_run_dir(run: dict[str, Any], out_dir: str | Path | None = None, *,
                    resume: bool = False) -> tuple[Path, str]:
    """Create or check the run folder. Returns (folder, action) with action in
    ``new`` / ``resume`` / ``done`` (finished with the same config: nothing to do).

    Raises :class:`RunExistsError` when the folder holds a different config, or an unfinished run
    and ``resume`` is not set.
    """
    d = run_dir(run, out_dir)
    rec_path = d / "run.json"
    h = config_hash(identity(run))
    if rec_path.exists():
        rec = read_json(rec_path)
        if rec.get("config_hash") != h:
            state = "finished" if rec.get("status") == "finished" else "unfinished"
            raise RunExistsError(
                f"run {run['run_id']!r} in {relpath(d)} is a {state} run with a different config "
                f"(hash {rec.get('config_hash')} vs {h}); it is not overwritten: pick another "
                f"--run-id or delete that folder")
        if rec.get("status") == "finished":
            if (d / "checkpoints" / "final").is_dir():
                return d, "done"
            from .release import restore

            if restore(run, d, h, results_root=out_dir):  # a released base model (results/<p>/release/)
                return d, "done"
            # Finished runs are committed without their checkpoints (results/ holds logs only): a
            # fresh clone retrains the run, which the seeded config makes repeat the committed log.
            print(f"run {run['run_id']!r}: finished in the record but {relpath(d / 'checkpoints' / 'final')} "
                  "is missing (checkpoints are not in git); training it again", file=sys.stderr)
            for name in ("metrics.csv", "run.json", "data_order.json"):
                (d / name).unlink(missing_ok=True)
            shutil.rmtree(d / "tb", ignore_errors=True)
            write_json(d / "config.json", run)
            return d, "new"
        if not resume:
            raise RunExistsError(
                f"run {run['run_id']!r} in {relpath(d)} exists and is unfinished (step "
                f"{rec.get('step', 0)}); pass --resume to continue it or delete the folder to restart")
        return d, "resume"
    if (d / "checkpoints").exists() or (d / "metrics.csv").exists():
        raise RunExistsError(f"{relpath(d)} holds files but no run.json; delete it or pick another --run-id")
    d.mkdir(parents=True, exist_ok=True)
    write_json(d / "config.json", run)
    return d, "new"


def write_record(d: Path, run: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """Write ``run.json``: what the evaluation and the tables read about a run."""
    rec_path = d / "run.json"
    rec = read_json(rec_path) if rec_path.exists() else {}
    rec.update({
        "run_id": run["run_id"], "stage": run["stage"], "profile": run["profile"],
        "composer": run.get("composer"), "mode": run.get("mode"), "loss": run.get("loss"),
        "rope_theta": run.get("rope_theta"), "rope_variant": run.get("rope_variant", "default"),
        "train_length": run.get("seq_len"), "seed": run.get("seed"),
        "config_hash": config_hash(identity(run)),
    })
    for key in ("lora", "rope_kwargs"):  # what tells a run beyond the paper's grid apart (evaluation labels)
        if run.get(key):
            rec[key] = run[key]
    rec.update(fields)
    rec["updated_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    write_json(rec_path, rec)
    return rec


def list_checkpoints(d: Path) -> list[tuple[int, Path]]:
    """(step, folder) of the complete ``step-<N>`` checkpoints of a run, oldest first."""
    out = []
    for p in (d / "checkpoints").glob("step-*"):
        m = re.fullmatch(r"step-(\d+)", p.name)
        if m and (p / "trainer_state.pt").exists():
            out.append((int(m.group(1)), p))
    return sorted(out)


def latest_checkpoint(d: Path) -> tuple[int, Path] | None:
    cps = list_checkpoints(d)
    return cps[-1] if cps else None
