"""``rlctx gpu bundle|run|import``: one prepared GPU run (see :mod:`rlctx_utils.gpu`).

Examples::

    rlctx gpu bundle gpu-small                  # here: .gpu-bundle/ (wheels, sequences, prompts, manifest)
    python3 -m rlctx_utils.gpu run              # there (no network): trains, evaluates, packs $OUT/*.tar.gz
    rlctx gpu import gpu-out/rlctx-gpu-gpu-small.tar.gz   # here: into results/gpu-small/, results/bench/
"""

from __future__ import annotations

import argparse
import sys
from typing import Any


def _bundle(args: argparse.Namespace) -> int:
    from .bundle import build_bundle, describe

    bad = [o for o in args.overrides if "=" not in o or "." not in o.split("=", 1)[0]]
    if bad:
        from .bundle import BundleError

        raise BundleError(f"overrides must be section.key=value (e.g. repo_training.stop_step=8), not {bad[0]!r}")
    m = build_bundle(args.profile, args.out, overrides=args.overrides, data_dir=args.data,
                     tokenizer=args.tokenizer, wheels=not args.no_wheels, max_mib=args.max_mib)
    print(describe(m))
    return 0


def _run(args: argparse.Namespace) -> int:
    from .run import run_bundle

    return run_bundle(args.bundle, out=args.out, results=args.results, device=args.device,
                      deadline_s=args.deadline_s, skip=args.skip.split(",") if args.skip else None,
                      stages=args.stages.split(",") if args.stages else None, peak_tflops=args.peak_tflops)


def _import(args: argparse.Namespace) -> int:
    from .archive import import_archive

    done = import_archive(args.archive, results=args.results, force=args.force)
    print(f"imported {done['written']} file(s), {done['same']} already there, into {done['results']} "
          f"({', '.join(done['folders'])})")
    return 0


def add_commands(sub: Any) -> None:
    from .run import STAGES

    b = sub.add_parser("bundle", help="build the bundle of a profile (here, with network once for the wheels)")
    b.add_argument("profile", nargs="?", default="gpu-small")
    b.add_argument("overrides", nargs="*", help="section.key=value overrides, used by the run too")
    b.add_argument("--out", default=None, help="bundle folder (default .gpu-bundle)")
    b.add_argument("--data", default=None, help="mined data folder (default results/<profile>/data)")
    b.add_argument("--tokenizer", default=None, help="tokenizer folder (default results/<profile>/tokenizer)")
    b.add_argument("--no-wheels", action="store_true", help="no wheels (a machine that has every package)")
    b.add_argument("--max-mib", type=float, default=60.0)
    b.set_defaults(func=_bundle)
    r = sub.add_parser("run", help="the GPU run of a bundle (standard library until its wheels are in)")
    r.add_argument("--bundle", default=".gpu-bundle")
    r.add_argument("--out", default=None, help="where the archive goes (default $OUT, else ./gpu-out)")
    r.add_argument("--results", default=None, help="results root (default results/)")
    r.add_argument("--device", default="auto", choices=["auto", "cuda", "cpu"])
    r.add_argument("--deadline-s", type=float, default=540.0, help="stop the running stage and pack at this time")
    r.add_argument("--stages", default=None, help=f"comma list of {','.join(STAGES)} (default all)")
    r.add_argument("--skip", default=None, help="comma list of stages to leave out")
    r.add_argument("--peak-tflops", type=float, default=790.0, help="dense bf16 peak for MFU (790: measured H200)")
    r.set_defaults(func=_run)
    i = sub.add_parser("import", help="unpack a GPU run's archive into results/ (no path leaves it)")
    i.add_argument("archive")
    i.add_argument("--results", default=None, help="results root (default results/)")
    i.add_argument("--force", action="store_true", help="overwrite files that differ")
    i.set_defaults(func=_import)


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("gpu", help="one prepared GPU run: bundle here, run there, import here",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_commands(p.add_subparsers(dest="gpu_command", required=True))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m rlctx_utils.gpu", description=__doc__.splitlines()[0])
    add_commands(parser.add_subparsers(dest="gpu_command", required=True))
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if exc.__class__.__name__.endswith("Error") and exc.__class__.__module__.startswith("rlctx_utils"):
            print(f"rlctx gpu {args.gpu_command}: error: {exc}", file=sys.stderr)
            return 2
        raise
