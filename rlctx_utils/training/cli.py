"""``rlctx train``: run stage A (base pretraining) or stage B (repository-level pretraining).

Examples::

    rlctx train smoke --stage base                       # from-scratch base model
    rlctx train smoke --stage repo                       # the [repo_training] run
    rlctx train smoke --stage repo --run-id path_distance_py-original-masked-theta500000
    rlctx train smoke --stage repo --grid                # every [[repo_training.runs]] entry
    rlctx train cpu --stage repo lr=1e-4 --max-steps 50  # bare keys go to the stage's section
    accelerate launch --config_file configs/accelerate/ddp.yaml -m rlctx_utils.cli train paper --stage repo
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..config import load_profile
from ..launcher import LaunchError
from .runs import SECTION, grid_runs, resolve_run


def _qualify(overrides: list[str], stage: str) -> list[str]:
    out = []
    for o in overrides:
        key = o.split("=", 1)[0]
        out.append(o if "." in key else f"{SECTION[stage]}.{o}")
    return out


def resolve_runs(config: str, overrides: list[str], *, stage: str, run_id: str | None = None,
                 grid: bool = False, max_steps: int | None = None) -> list[dict[str, Any]]:
    """The resolved runs a ``rlctx train`` command line asks for."""
    cfg = load_profile(config, _qualify(overrides, stage))
    if grid:
        if stage != "repo":
            from .runs import RunError

            raise RunError("--grid applies to --stage repo (the grid is [[repo_training.runs]])")
        runs = [resolve_run(cfg, "repo", r["run_id"]) for r in grid_runs(cfg)]
    else:
        runs = [resolve_run(cfg, stage, run_id)]
    if max_steps is not None:
        if max_steps < 0:
            from .runs import RunError

            raise RunError(f"--max-steps {max_steps}: give a number of optimizer steps >= 0")
        for r in runs:
            r["stop_step"] = int(max_steps)
    return runs


def cmd_train(args: argparse.Namespace) -> int:
    from .loop import train

    runs = resolve_runs(args.config, args.overrides, stage=args.stage, run_id=args.run_id,
                        grid=args.grid, max_steps=args.max_steps)
    for run in runs:
        rec = train(run, out_dir=args.out_dir, resume=args.resume, progress=not args.no_progress)
        print(f"{rec['run_id']}: {rec.get('status')} at step {rec.get('step')}, "
              f"loss {rec.get('final_loss') if rec.get('final_loss') is not None else float('nan'):.4f}, "
              f"{rec.get('train_tokens', 0):,} tokens",
              file=sys.stderr)
    return 0


class _OverridesAnywhere(argparse.ArgumentParser):
    """Accepts ``key=value`` overrides anywhere on the line, before or after the options."""

    def parse_known_args(self, args=None, namespace=None):  # type: ignore[override]
        args = list(sys.argv[1:] if args is None else args)
        overrides = [a for a in args if not a.startswith("-") and "=" in a]
        rest = [a for a in args if a not in overrides]
        ns, extra = super().parse_known_args(rest, namespace)
        ns.overrides = list(getattr(ns, "overrides", None) or []) + overrides
        return ns, extra


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("train", help="pretrain a base model (stage A) or extend it on repositories (stage B)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config", help="profile name (smoke, cpu, gpu-small, paper) or path to a .toml")
    p.add_argument("overrides", nargs="*", help="key=value overrides, anywhere on the line (bare keys go to "
                   "the stage's section)")
    p.add_argument("--stage", choices=("base", "repo"), default="repo")
    p.add_argument("--run-id", default=None, help="a grid entry's id, or a name for the run")
    p.add_argument("--grid", action="store_true", help="train every [[repo_training.runs]] entry in turn")
    p.add_argument("--resume", action="store_true", help="continue an unfinished run from its last checkpoint")
    p.add_argument("--max-steps", type=int, default=None, help="stop after N optimizer steps (sets stop_step)")
    p.add_argument("--out-dir", default=None, help="results root (default results/<profile>)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.__class__ = _OverridesAnywhere
    p.set_defaults(func=cmd_train)

    t = subparsers.add_parser("tune", help="the stage-A tuning sweep of a profile's [[tuning.variants]] "
                              "(equal wall time, judged on validation)",
                              description="Train every [[tuning.variants]] entry of the profile as a stage-A run "
                              "(skipped when finished, resumed when stopped) and write results/<profile>/tuning/"
                              "{variants,curves}.csv. Example: rlctx tune cpu --variant reference")
    t.add_argument("config", help="profile name or path to a .toml")
    t.add_argument("overrides", nargs="*", help="section.key=value overrides")
    t.add_argument("--variant", action="append", default=[], help="only this variant (repeatable)")
    t.add_argument("--plan", action="store_true", help="print the variants' steps and speeds, train nothing")
    t.add_argument("--collect", action="store_true", help="only rebuild the CSVs from the runs' logs")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.__class__ = _OverridesAnywhere
    t.set_defaults(func=cmd_tune)

    r = subparsers.add_parser("release", help="commit a finished run's weights as the profile's released base "
                              "model (results/<profile>/release/<run_id>/; reused instead of retraining unless "
                              "RETRAIN_BASE=1)")
    r.add_argument("config", help="profile name")
    r.add_argument("--run-id", default="base")
    r.add_argument("--out-dir", default=None, help="results root (default results/<profile>)")
    r.set_defaults(func=cmd_release)


def cmd_tune(args: argparse.Namespace) -> int:
    from .tuning import collect, final_scores, run_sweep, variant_table, tuning_dir

    cfg = load_profile(args.config, args.overrides)
    if args.plan:
        print(variant_table(cfg, out_root=tuning_dir(cfg["profile"])).to_string(index=False))
        return 0
    curves = collect(cfg) if args.collect else run_sweep(cfg, names=args.variant or None,
                                                         progress=not args.no_progress)
    print(final_scores(curves).to_string(index=False))
    return 0


def cmd_release(args: argparse.Namespace) -> int:
    from ..paths import results_dir
    from .release import release_dir, write_release

    root = args.out_dir or results_dir(args.config)
    meta = write_release(f"{root}/runs/{args.run_id}", release_dir(args.config, args.run_id, args.out_dir))
    print(f"released {args.run_id} of {args.config}: {meta['weights_bytes'] / 2**20:.1f} MiB, step {meta['step']}, "
          f"{meta['train_tokens']:,} tokens -> {release_dir(args.config, args.run_id, args.out_dir)}")
    return 0


def launch(config: str, *, stage: str, run_id: str | None = None, overrides: list[str] | None = None,
           out_dir: str | None = None, resume: bool = True, max_steps: int | None = None,
           accelerate_config: str | None = None, log_every_s: float = 30.0) -> int:
    """Run ``rlctx train`` as a subprocess (notebooks never train inside their kernel).

    Output lines are relayed (the progress bar is off; every step is in ``metrics.csv``). With
    ``accelerate_config`` the command goes through ``accelerate launch --config_file``. Raises
    :class:`TrainingLaunchError` with the last lines of output if the command fails.
    """
    from ..launcher import rlctx_command, run_relayed

    args = [config, "--stage", stage, "--no-progress", *(overrides or [])]
    if run_id:
        args += ["--run-id", run_id]
    if out_dir:
        args += ["--out-dir", str(out_dir)]
    if max_steps is not None:
        args += ["--max-steps", str(max_steps)]
    if resume:
        args.append("--resume")
    return run_relayed(rlctx_command(["train", *args], accelerate_config),
                       what=f"rlctx train {config} --stage {stage}", error=TrainingLaunchError)


class TrainingLaunchError(LaunchError):
    """``rlctx train`` launched from a notebook failed; the message holds its last output lines."""
