"""Composer throughput: composed datapoints per second at a 16K-token budget on real repositories.

    python bench/bench_composers.py [--budget 16384] [--per-repo 30] [--vocab 16384]

Repositories are PyPI source distributions of pure-Python packages with 200K-800K characters of
``.py`` (downloaded once into ``.cache/sdists`` with ``pip download --no-binary :all:``). Each
datapoint is one ``.py`` file of 800-25,000 characters as completion file and the rest of the
package as snapshot. The tokenizer is OpenCoder-like: a byte-level BPE (``--vocab`` ids) trained on
the standard library with ``<file_sep>`` and ``<repo_name>`` as single tokens (cached in
``.cache/``).

Two passes per composer over the same datapoints, on one core (TOKENIZERS_PARALLELISM=false):
``cold`` starts with empty caches (every file tokenized and parsed once per repository),
``warm`` reuses them, as training does when consecutive datapoints share a snapshot's files.
Writes ``results/bench/composers.csv`` and its ``composers.json`` sidecar. The machine is shared
with other jobs: repeat before trusting a difference below ~2x.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pandas as pd  # noqa: E402

from rlctx_utils.composers import COMPOSERS, compose  # noqa: E402
from rlctx_utils.composers import text as ctext  # noqa: E402
from rlctx_utils.composers._fixtures import completion_files, fetch_sdist, read_sdist  # noqa: E402
from rlctx_utils.composers.tokens import counter_for  # noqa: E402
from rlctx_utils.io import atomic_path, write_sidecar  # noqa: E402
from rlctx_utils.paths import BENCH_RESULTS, cache_dir  # noqa: E402

#: Pure-Python packages with 200K-800K characters of .py (checked when the bench runs).
SDISTS = ("requests==2.32.3", "attrs==24.2.0", "click==8.1.7", "jinja2==3.1.4")


def fetch_sdists(names: tuple[str, ...] = SDISTS) -> list[Path]:
    """Source archives in ``.cache/sdists`` (downloaded with pip if missing)."""
    return [fetch_sdist(spec) for spec in names]


def bench_tokenizer(vocab: int):
    from rlctx_utils.tokenizer import load_tokenizer, stdlib_corpus, train_tokenizer

    out = cache_dir() / f"bench_tokenizer_{vocab}"
    if not (out / "tokenizer.json").exists():
        train_tokenizer(stdlib_corpus(max_files=1500, seed=0), vocab_size=vocab, out_dir=out)
    return load_tokenizer(str(out))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--budget", type=int, default=16384)
    ap.add_argument("--per-repo", type=int, default=30)
    ap.add_argument("--vocab", type=int, default=16384)
    ap.add_argument("--composers", nargs="*", default=None)
    ap.add_argument("--out", default=str(BENCH_RESULTS / "composers.csv"))
    args = ap.parse_args(argv)
    try:
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core
    except (AttributeError, OSError):
        pass
    t_start = time.time()
    tok = bench_tokenizer(args.vocab)
    repos = []
    for path in fetch_sdists():
        snap = read_sdist(path)
        py = sum(len(t) for p, t in snap.items() if p.endswith(".py") and t)
        repos.append((path.name, snap, py, completion_files(snap, args.per_repo, seed=0)))
    names = args.composers or list(COMPOSERS)
    rows = []
    for name in names:
        for phase in ("cold", "warm"):
            if phase == "cold":
                ctext.CACHE.clear()
                counter_for(tok).cache.clear()
            n = 0
            tokens = 0
            t0 = time.perf_counter()
            for repo, snap, py_chars, dps in repos:
                for i, (cpath, text, rest) in enumerate(dps):
                    c = compose(name, rest, cpath, text, tokenizer=tok, max_tokens=args.budget, seed=i,
                                repo_name=repo)
                    n += 1
                    tokens += c.n_tokens
            dt = time.perf_counter() - t0
            rows.append({"composer": name, "phase": phase, "datapoints": n, "seconds": round(dt, 3),
                         "datapoints_per_s": round(n / dt, 1), "mean_context_tokens": round(tokens / max(n, 1))})
            print(f"{name:32s} {phase}: {n / dt:7.1f} datapoints/s  ({tokens / max(n, 1):.0f} tokens)", flush=True)
    df = pd.DataFrame(rows)
    with atomic_path(args.out) as tmp:
        df.to_csv(tmp, index=False)
    config = {"budget": args.budget, "per_repo": args.per_repo, "vocab": args.vocab, "cores": 1,
              "repositories": [{"archive": r, "py_chars": py, "datapoints": len(d)} for r, _, py, d in repos],
              "note": "2-core machine shared with other jobs; timings noisy (~10%, sometimes 2x)"}
    write_sidecar(args.out, config, time.time() - t_start)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
