"""``rlctx mine git|pypi`` and ``rlctx data stats|pin``: building repository datasets."""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

from .errors import DataError


def _mining_config(profile: str, overrides: list[str], extra: dict[str, Any] | None = None):
    from ..config import apply_overrides, load_profile
    from .config import MiningConfig

    cfg = load_profile(profile)  # profile < the spec's [mining] < command-line overrides
    cfg.setdefault("data", {}).update(extra or {})
    cfg = apply_overrides(cfg, overrides)
    return MiningConfig.from_mapping(cfg.get("data", {}), seed=cfg.get("seed", 0)), cfg


def _print_summary(manifest: dict[str, Any]) -> None:
    for split, c in manifest["splits"].items():
        print(f"{split:>10}: {c.get('repositories', 0):3d} repositories, {c.get('datapoints', 0):6d} datapoints")
    print(f"    corpus: {manifest['corpus'].get('files', 0)} files, {manifest['corpus'].get('chars', 0):,} chars")
    skips = manifest.get("skips", {})
    if skips:
        print("     skips: " + ", ".join(f"{k}={v}" for k, v in skips.items()))
    if manifest.get("leakage_drops"):
        print("   leakage: " + ", ".join(f"{k}={v}" for k, v in manifest["leakage_drops"].items()))
    for repo, info in sorted((manifest.get("per_repository") or {}).items()):
        if info.get("error"):  # the package and the reason, not only a count
            print(f"     error: {repo} ({info.get('split')}) was skipped: {info['error']}")
    shallow = skips.get("commit_parent_not_available", 0)
    if shallow:
        print(f"   history: {shallow} commits had no parent available (shallow clone?) and were skipped; "
              "fetch the full history (git fetch --unshallow) to mine them")
    print(f"      time: {manifest.get('mining_wall_time_s')} s ({manifest.get('resumed_repositories', 0)} "
          "repositories resumed)")


def cmd_mine_git(args: argparse.Namespace) -> int:
    from .git_miner import mine_git_repo, repo_name
    from .pipeline import RepoSource, mine_all

    if args.profile is None:
        args.profile = "smoke"
        print("rlctx mine git: profile smoke's [data] filters (the default; --profile NAME for another)",
              file=sys.stderr)
    if args.repo_name and len(args.repo_name) != len(args.repos):
        raise DataError(f"--repo-name given {len(args.repo_name)} times for {len(args.repos)} repositories: "
                        "give one name per repository, in the same order")
    bad = [n for n in args.repo_name if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", n)]
    if bad:
        raise DataError(f"--repo-name {bad[0]!r}: use letters, digits, '_', '.' and '-' (it names files)")
    cfg, prof = _mining_config(args.profile, args.set)
    splits = {n: "benchmark" for n in args.benchmark} | {n: "validation" for n in args.validation}
    sources = []
    seen: list[str] = []
    for i, d in enumerate(args.repos):
        from dulwich.repo import Repo
        try:
            repo = Repo(d)
            name = args.repo_name[i] if args.repo_name else repo_name(d, repo)
        except Exception as exc:
            raise DataError(f"{d}: not a git repository ({exc})") from None
        try:
            head = repo.head().decode()
        except KeyError:  # an empty repository
            head = ""
        seen += [name, Path(d).name]
        sources.append(RepoSource(name, splits.get(name, splits.get(Path(d).name, "train")),
                                  (lambda d=d, name=name: mine_git_repo(d, cfg, name=name,
                                                                        progress=not args.quiet)), "git",
                                  key=f"git:{head}"))
    for flag, names in (("--benchmark", args.benchmark), ("--validation", args.validation)):
        unknown = [n for n in names if n not in seen]
        if unknown:
            raise DataError(f"{flag} {', '.join(unknown)} matches none of the repositories given; their names "
                            f"are: {', '.join(dict.fromkeys(seen))}")
    run_cfg = {"command": "mine git", "profile": args.profile, "repos": [str(r) for r in args.repos],
               "data": prof.get("data", {}), "splits": splits}
    manifest = mine_all(sources, args.out, cfg, run_cfg, force=args.force, progress=not args.quiet)
    _print_summary(manifest)
    return 0


def cmd_mine_pypi(args: argparse.Namespace) -> int:
    from .pipeline import RepoSource, mine_all
    from .pypi import load_spec, mine_package, package_key

    spec = load_spec(args.spec)
    profile = args.profile or spec.profile or "smoke"
    if not args.profile:
        how = "named by the spec" if spec.profile else "the default"
        print(f"rlctx mine pypi: profile {profile} ({how}; --profile NAME for another)", file=sys.stderr)
    cfg, prof = _mining_config(profile, args.set, spec.mining)
    if args.download_only:
        from .pypi import fetch_sdist
        t0 = time.perf_counter()
        n = 0
        for p in spec.packages:
            for r in p.releases:
                fetch_sdist(p, r, offline=args.offline)
                n += 1
        print(f"{n} sdists in the cache ({time.perf_counter() - t0:.1f} s)")
        return 0
    sources = [RepoSource(p.repo, p.split, (lambda p=p: mine_package(p, cfg, offline=args.offline,
                                                                     progress=not args.quiet)), "pypi",
                          key=package_key(p))
               for p in spec.packages]
    run_cfg = {"command": "mine pypi", "profile": profile, "spec": str(args.spec),
               "data": prof.get("data", {}), "spec_mining": spec.mining}
    manifest = mine_all(sources, args.out, cfg, run_cfg, force=args.force, progress=not args.quiet)
    _print_summary(manifest)
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    from .stats import dataset_summary
    print(json.dumps(dataset_summary(args.dir), indent=2, default=str))
    return 0


def cmd_decontamination(args: argparse.Namespace) -> int:
    from ..io import write_json
    from .decontamination import check_dir, python_tree_items, site_packages

    extra = {}
    if args.site_packages:
        for sp in site_packages():
            extra[f"site-packages:{sp}"] = python_tree_items(sp)
    if args.stdlib:
        import os
        extra["stdlib"] = python_tree_items(Path(os.__file__).parent, skip=("__pycache__", "site-packages"))
    rep = check_dir(args.dir, extra=extra, min_chars=args.min_chars, snapshots=args.snapshots)
    out = rep.as_dict()
    if args.json:
        write_json(args.json, out)
    for name, c in out["corpora"].items():
        note = " (informational: removed by the miner)" if c["informational"] else ""
        print(f"{name}: {c['files']} files, {c['matches']} held-out matches{note}")
        for m in c["listed"][:5]:
            print(f"    {m['where']} = {m['held_out']} ({m['kind']})")
    print(f"{out['held_out_files']} held-out files checked: {'clean' if out['clean'] else 'CONTAMINATED'}")
    return 0 if out["clean"] else 1


def cmd_pin(args: argparse.Namespace) -> int:
    from .pypi import pin
    entry = pin(args.name, args.versions)
    print(f'[[package]]\nname = "{entry["name"]}"\nsplit = "{args.split}"\nreleases = [')
    for r in entry["releases"]:
        print(f'  {{version = "{r["version"]}", filename = "{r["filename"]}", sha256 = "{r["sha256"]}", '
              f'date = {r["date"]}}},')
    print("]")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    mine = subparsers.add_parser("mine", help="mine repositories into LCA-format datapoints")
    msub = mine.add_subparsers(dest="source", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--out", required=True, type=Path, help="output folder (resumed if it exists)")
        p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="profile override, e.g. data.max_per_repo=50")
        p.add_argument("--force", action="store_true", help="start over in an output folder mined with another config")
        p.add_argument("--quiet", action="store_true", help="no progress bars")

    g = msub.add_parser("git", help="mine the history of local git repositories")
    g.add_argument("repos", nargs="+", help="paths of git repositories")
    g.add_argument("--profile", default=None, help="profile whose [data] section gives the filters (default "
                   "smoke, said on stderr)")
    g.add_argument("--repo-name", action="append", default=[], metavar="NAME",
                   help="name of each repository, once per repository in order (default: owner__name from the "
                   "origin URL, else the folder name)")
    g.add_argument("--benchmark", action="append", default=[], metavar="NAME",
                   help="repository (name or folder name) for the benchmark split")
    g.add_argument("--validation", action="append", default=[], metavar="NAME",
                   help="repository (name or folder name) for the validation split")
    common(g)
    g.set_defaults(func=cmd_mine_git)

    p = msub.add_parser("pypi", help="mine the release series of pinned PyPI packages")
    p.add_argument("--spec", required=True, type=Path, help="data spec, e.g. configs/data/smoke.toml")
    p.add_argument("--profile", default=None, help="profile (default: the spec's `profile`)")
    p.add_argument("--offline", action="store_true", help="use only sdists already in the cache")
    p.add_argument("--download-only", action="store_true", help="fill the sdist cache and stop")
    common(p)
    p.set_defaults(func=cmd_mine_pypi)

    data = subparsers.add_parser("data", help="inspect mined datasets and write data specs")
    dsub = data.add_subparsers(dest="data_command", required=True)
    s = dsub.add_parser("stats", help="summary statistics of a mined folder (JSON)")
    s.add_argument("dir", type=Path)
    s.set_defaults(func=cmd_stats)
    dc = dsub.add_parser("decontamination", help="check that no validation or benchmark file content "
                         "appears in the training side of a mined folder (exit 1 if it does)")
    dc.add_argument("dir", type=Path)
    dc.add_argument("--site-packages", action="store_true", help="also check this environment's site-packages")
    dc.add_argument("--stdlib", action="store_true", help="also check the interpreter's standard library")
    dc.add_argument("--snapshots", action="store_true",
                    help="also check every training snapshot's .py files (stage B context; slow)")
    dc.add_argument("--min-chars", type=int, default=64, help="skip files shorter than this (whitespace-normalised)")
    dc.add_argument("--json", type=Path, help="write the full report here")
    dc.set_defaults(func=cmd_decontamination)
    pn = dsub.add_parser("pin", help="print a data-spec entry with sha256 pins from PyPI")
    pn.add_argument("name")
    pn.add_argument("versions", nargs="+")
    pn.add_argument("--split", default="train", choices=("train", "validation", "benchmark"))
    pn.set_defaults(func=cmd_pin)
