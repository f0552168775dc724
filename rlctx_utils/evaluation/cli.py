"""``rlctx eval``: evaluate checkpoints on a benchmark under the paper's settings.

Examples::

    rlctx eval --profile smoke --checkpoint results/smoke/runs/base/checkpoints/final \\
        --composer path_distance_py --max-context 1024 --protocol thesis
    rlctx eval --profile cpu --checkpoint runs --preset all          # every finished run, 4 settings
    rlctx eval --profile cpu --checkpoint runs --sweep               # the extrapolation sweep
    rlctx eval --profile cpu --checkpoint runs --preset all --protocol perplexity  # file loss, context vs none
    rlctx eval --profile paper --checkpoint infly/OpenCoder-1.5B-Base \\
        --benchmark lca:large_context --preset FL-base,PD-ext --protocol lca
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def _checkpoints(spec: list[str], profile: str) -> list[str]:
    """``runs``: every run of the profile with a final checkpoint; ``run:ID``: that run's final
    checkpoint; otherwise paths or hub ids."""
    from ..paths import results_dir

    out: list[str] = []
    for s in spec:
        if s.startswith("run:"):
            final = results_dir(profile) / "runs" / s[4:] / "checkpoints" / "final"
            if not final.is_dir():
                from .runner import EvalError
                raise EvalError(f"run {s[4:]!r} has no final checkpoint ({final}): train it first "
                                f"(rlctx train {profile} --stage repo --run-id {s[4:]})")
            out.append(str(final))
        elif s == "runs":
            found = sorted(str(p) for p in (results_dir(profile) / "runs").glob("*/checkpoints/final")
                           if p.is_dir())
            if not found:
                from .runner import EvalError
                raise EvalError(f"no finished runs under {results_dir(profile) / 'runs'}: train first "
                                "(rlctx train ...) or pass --checkpoint PATH")
            out += found
        else:
            out.append(s)
    return out


def _settings(args, cfg) -> list[tuple[str, int]]:
    from . import presets
    from .runner import EvalError

    todo: list[tuple[str, int]] = []
    if args.preset:
        names = [x.strip() for x in args.preset.split(",") if x.strip()]
        table = {s.role: s for s in presets.preset_settings(cfg)}
        if names == ["all"]:
            names = list(table)
        for n in names:
            if n not in table:
                raise EvalError(f"unknown preset {n!r}: give all or a comma list of {sorted(table)}")
            todo.append((table[n].composer, table[n].max_context))
    if args.sweep:
        todo += [(s.composer, s.max_context) for s in presets.sweep_settings(cfg)]
    if args.composer or args.max_context:
        if not (args.composer and args.max_context):
            raise EvalError("--composer and --max-context go together")
        todo.append((args.composer, int(args.max_context)))
    if not todo:
        raise EvalError("nothing to evaluate: give --composer and --max-context, --preset all, or --sweep")
    return list(dict.fromkeys(todo))


def profile_benchmark(spec: str, cfg: dict, *, limit: int | None = None, lca_path: str | None = None):
    """The benchmark a profile evaluates: ``[eval] per_repo`` keeps the first N datapoints of each
    repository (name suffix ``-perN``; every repository stays in the bootstrap), then ``limit``."""
    from .api import Benchmark, load_benchmark

    per_repo = int((cfg.get("eval") or {}).get("per_repo") or 0)
    if not per_repo:
        return load_benchmark(spec, limit=limit, lca_path=lca_path)
    bench = load_benchmark(spec, lca_path=lca_path)
    seen: dict[str, int] = {}
    kept = []
    for dp in bench.datapoints:
        seen[dp.repo] = seen.get(dp.repo, 0) + 1
        if seen[dp.repo] <= per_repo:
            kept.append(dp)
    name = f"{bench.name}-per{per_repo}"
    if limit:
        kept, name = kept[:int(limit)], f"{name}-first{int(limit)}"
    return Benchmark(name, kept)


def cmd_eval(args: argparse.Namespace) -> int:
    from ..config import load_profile
    from ..data.types import CATEGORIES
    from .api import load_benchmark, default_benchmark, run_eval
    from .runner import EvalError

    if not args.quiet and not sys.stderr.isatty():  # a log (papermill, nohup): a bar line every 10 s
        os.environ.setdefault("TQDM_MININTERVAL", "10")
    if args.profile is None:
        args.profile = "smoke"
        print("rlctx eval: profile smoke (the default; --profile NAME for another)", file=sys.stderr)
    cfg = load_profile(args.profile, args.set)
    ev = cfg.get("eval") or {}
    settings = _settings(args, cfg)
    bench = profile_benchmark(args.benchmark or default_benchmark(args.profile, cfg), cfg,
                              limit=args.limit if args.limit is not None else ev.get("limit"), lca_path=args.lca)
    protocols = [p.strip() for p in (args.protocol or ev.get("protocol", "thesis")).split(",")]
    categories = tuple(c.strip() for c in args.categories.split(",")) if args.categories \
        else tuple(ev.get("categories") or CATEGORIES)
    unknown = sorted(set(categories) - set(CATEGORIES))
    if unknown:
        raise EvalError(f"unknown line categories {unknown}: give a comma list of {list(CATEGORIES)}")
    for ck in _checkpoints(args.checkpoint, args.profile):
        model = tok = None
        for composer, n in settings:
            for proto in protocols:
                if model is None and not args.dry_run:
                    from ..models import load_model
                    from ..tokenizer import load_tokenizer
                    tok = load_tokenizer(ck)
                    model = load_model(ck, dtype=args.dtype, device=args.device)
                if args.dry_run:
                    print(f"would evaluate {ck} {composer}@{n} {proto} on {bench.name}")
                    continue
                res = run_eval(ck, composer=composer, max_context=n, protocol=proto, profile=args.profile,
                               benchmark=bench, cfg=cfg, model=model, tokenizer=tok, engine=args.engine,
                               batch_tokens=args.batch_tokens, out_dir=args.out_dir, categories=categories,
                               progress=not args.quiet)
                s = res["summary"]
                first = s.drop_duplicates("line_type").set_index("line_type")
                cells = ", ".join(f"{lt} EM {first.at[lt, 'em']:.1f} tok-acc {first.at[lt, 'token_acc']:.1f}"
                                  for lt in ("inproject", "infile", "micro") if lt in first.index)
                if "file" in first.index:  # perplexity protocol
                    cells = (f"{int(first.at['file', 'n_lines'])} files, loss {first.at['file', 'file_loss']:.3f}, "
                             f"with - without context {first.at['file', 'file_loss_delta']:+.3f} nats")
                state = "exists, skipped" if res["skipped"] else "done"
                print(f"{res['eval_id']}: {state}; {cells}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="single-line completion exact match (LCA / thesis protocols)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--profile", default=None, help="profile (configs/<profile>.toml; default smoke, said on "
                   "stderr); results go to results/<profile>/evals/")
    p.add_argument("--checkpoint", nargs="+", required=True,
                   help="checkpoint folders or hub ids; 'runs' = every finished run of the profile; "
                   "'run:ID' = one run's final checkpoint")
    p.add_argument("--benchmark", help="lca:<config>[:<path>], a mined data folder or a parquet file "
                   "(default: the profile's [eval] benchmark, else results/<profile>/data)")
    p.add_argument("--lca", help="local folder of LCA parquet files for --benchmark lca:<config>")
    p.add_argument("--composer", help="file_level, path_distance_py, own (the checkpoint's training composer) "
                   "or any registered composer")
    p.add_argument("--max-context", type=int, help="maximum prompt length in tokens")
    p.add_argument("--preset", help="all, or a comma list of FL-base, PD-base, PD-ext, Or-ext")
    p.add_argument("--sweep", action="store_true", help="Path Distance at base/4 ... 8x extended length")
    p.add_argument("--protocol", help="lca, thesis, thesis-shared (one context per group of a file's lines: the cpu profile's, for speed), thesis-separate, perplexity (completion-file loss with the "
                   "setting's context minus without: how lca-baselines select composers), or a comma list such "
                   "as lca,thesis (default: the profile's [eval] protocol)")
    p.add_argument("--limit", type=int, help="first N datapoints of the benchmark only")
    p.add_argument("--categories", help="comma list of line categories to evaluate (default: the profile's "
                   "[eval] categories, else all six)")
    p.add_argument("--engine", default="fast", choices=["fast", "reference"])
    p.add_argument("--batch-tokens", type=int, help="tokens per forward batch (default [eval] batch_tokens)")
    p.add_argument("--device", default=None)
    p.add_argument("--dtype", default="auto")
    p.add_argument("--out-dir", type=Path, help="write evaluations here instead of results/<profile>/evals")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="profile override")
    p.add_argument("--dry-run", action="store_true", help="list what would be evaluated")
    p.add_argument("--quiet", action="store_true", help="no progress bars (shown on stderr, terminal or not)")
    p.set_defaults(func=cmd_eval)


def launch_eval(profile: str, checkpoints: list[str], *, preset: str | None = None, sweep: bool = False,
                protocol: str | None = None, extra: list[str] | None = None) -> int:
    """Run ``rlctx eval`` as a subprocess (notebooks 06 and 08); stored evaluations are skipped, so a
    stopped stage resumes where it was. Raises :class:`~rlctx_utils.launcher.LaunchError` on failure."""
    from ..launcher import rlctx_command, run_relayed

    args = ["eval", "--profile", profile, "--checkpoint", *checkpoints]
    if preset:
        args += ["--preset", preset]
    if sweep:
        args.append("--sweep")
    if protocol:
        args += ["--protocol", protocol]
    return run_relayed(rlctx_command([*args, *(extra or [])]), what=f"rlctx eval --profile {profile}")
