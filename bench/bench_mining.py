"""Mining throughput: a synthetic git history and the cached PyPI spec of a profile.

    python bench/bench_mining.py [--commits 200] [--spec configs/data/smoke.toml]

Writes ``results/bench/mining.json`` (with the usual sidecar fields). The machine is shared with
other jobs, so repeat before trusting a difference below ~2x.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rlctx_utils.data.config import MiningConfig  # noqa: E402
from rlctx_utils.data.git_miner import mine_git_repo  # noqa: E402
from rlctx_utils.data.pipeline import RepoSource, mine_all  # noqa: E402
from rlctx_utils.io import repo_relative, sidecar, write_json  # noqa: E402
from rlctx_utils.paths import BENCH_RESULTS  # noqa: E402


def make_repo(root: Path, commits: int) -> Path:
    """A linear history: each commit adds two ~2 KB .py files and edits one."""
    env = {**os.environ, "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@b", "GIT_COMMITTER_NAME": "b",
           "GIT_COMMITTER_EMAIL": "b@b", "GIT_CONFIG_GLOBAL": "/dev/null"}
    run = lambda *a, **kw: subprocess.run(["git", *a], cwd=root, env={**env, **kw}, check=True,  # noqa: E731
                                          capture_output=True)
    root.mkdir(parents=True)
    run("init", "-q", "-b", "main")
    for c in range(commits):
        for k in range(2):
            p = root / f"pkg{c % 7}" / f"mod_{c}_{k}.py"
            p.parent.mkdir(exist_ok=True)
            p.write_text("\n".join(f"def f_{c}_{k}_{i}(x):\n    return helper_{i % 5}(x) + {i}"
                                   for i in range(40)) + "\n")
        (root / "README.md").write_text(f"v{c}\n")
        date = f"2015-01-01T00:00:{c % 60:02d}"
        run("add", "-A")
        run("commit", "-q", "-m", f"c{c}", GIT_AUTHOR_DATE=f"{date}", GIT_COMMITTER_DATE=f"{date}")
    return root


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--commits", type=int, default=200)
    ap.add_argument("--spec", default="configs/data/smoke.toml")
    ap.add_argument("--out", type=Path, default=BENCH_RESULTS / "mining.json")
    args = ap.parse_args()
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        repo = make_repo(Path(tmp) / "synthetic", args.commits)
        cfg = MiningConfig()
        t0 = time.perf_counter()
        mined = mine_git_repo(repo, cfg, progress=False)
        walk = time.perf_counter() - t0
        t0 = time.perf_counter()
        manifest = mine_all([RepoSource("synthetic", "train", lambda: mine_git_repo(repo, cfg, progress=False))],
                            Path(tmp) / "out", cfg, progress=False)
        full = time.perf_counter() - t0
        n = manifest["splits"]["train"]["datapoints"]
        results["git_synthetic"] = {"commits": mined.commits, "datapoints": n, "walk_s": round(walk, 3),
                                    "walk_commits_per_s": round(mined.commits / walk, 1),
                                    "end_to_end_s": round(full, 3),
                                    "end_to_end_datapoints_per_s": round(n / full, 1)}
        if Path(args.spec).exists():
            from rlctx_utils.data.errors import DownloadError
            from rlctx_utils.data.pypi import load_spec, mine_package

            spec = load_spec(args.spec)
            try:
                t0 = time.perf_counter()
                sources = [RepoSource(p.repo, p.split, (lambda p=p: mine_package(p, cfg, offline=True,
                                                                                 progress=False)), "pypi")
                           for p in spec.packages]
                manifest = mine_all(sources, Path(tmp) / "pypi", cfg, progress=False)
                full = time.perf_counter() - t0
                n = sum(s.get("datapoints", 0) for s in manifest["splits"].values())
                releases = sum(len(p.releases) for p in spec.packages)
                results["pypi_" + Path(args.spec).stem] = {
                    "packages": len(spec.packages), "releases": releases, "datapoints": n,
                    "end_to_end_s": round(full, 3), "releases_per_s": round(releases / full, 2),
                    "datapoints_per_s": round(n / full, 1)}
            except DownloadError as exc:
                results["pypi_" + Path(args.spec).stem] = {"skipped": str(exc)}
    write_json(args.out, {"results": results, **sidecar(vars(args) | {"out": repo_relative(args.out)}, None,
                                                        note="2 shared CPU cores; noisy")})
    print(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
