"""Cost of the in-context measures per checkpoint: copying, within-file and the perplexity protocol.

The cost depends on the model's shape and the benchmark's size, not on its weights, so without a
trained checkpoint (``--checkpoint PATH``) the script builds the profile's preset at random
initialisation with the profile's tokenizer. Without the profile's mined benchmark
(``results/<profile>/data``) it builds ``--datapoints`` stand-in datapoints from CPython's
standard library (each package a repository snapshot, one module its completion file). Writes
``results/bench/incontext_<profile>.csv`` (+ ``.json``): wall and CPU seconds per measure and
setting (CPU seconds / threads = the wall time on a quiet machine; the wall time depends on what
else shares the cores), tokens forwarded, and the sums for one checkpoint.

    python bench/bench_incontext.py --profile cpu --datapoints 45
"""

from __future__ import annotations

import argparse
import os
import random
import sysconfig
import time
from pathlib import Path

import pandas as pd
import torch

from rlctx_utils.config import load_profile
from rlctx_utils.data.types import Datapoint
from rlctx_utils.evaluation import incontext, presets
from rlctx_utils.evaluation.api import completion_budget, load_benchmark
from rlctx_utils.io import atomic_path, write_sidecar
from rlctx_utils.paths import BENCH_RESULTS, results_dir


def stdlib_datapoints(n: int, seed: int) -> list[Datapoint]:
    """Stand-in benchmark: packages of the standard library as snapshots, one module each as the file."""
    root = Path(sysconfig.get_paths()["stdlib"])
    pkgs = sorted(p for p in root.iterdir() if p.is_dir() and (p / "__init__.py").exists()
                  and p.name not in ("test", "idlelib", "lib2to3", "site-packages", "tkinter", "turtledemo"))
    rng = random.Random(seed)
    out = []
    while len(out) < n:
        pkg = rng.choice(pkgs)
        files = {str(f.relative_to(root)): f.read_text(errors="replace") for f in sorted(pkg.rglob("*.py"))
                 if f.stat().st_size < 200_000}
        if len(files) < 2:
            continue
        path = rng.choice(sorted(files))
        snap = {k: v for k, v in files.items() if k != path}
        out.append(Datapoint(repo=f"stdlib/{pkg.name}", commit_hash=f"{len(out):040x}", completion_path=path,
                             completion_content=files[path], snapshot=snap, split="benchmark"))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--checkpoint", help="a trained checkpoint (default: the profile's preset, random weights)")
    ap.add_argument("--datapoints", type=int, default=45, help="stand-in datapoints when no benchmark is mined")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = load_profile(args.profile)
    seed = int(cfg.get("seed", 0))
    from rlctx_utils.models import build_model, load_model
    from rlctx_utils.tokenizer import load_tokenizer

    if args.checkpoint:
        tok, model, what = load_tokenizer(args.checkpoint), load_model(args.checkpoint), args.checkpoint
    else:
        tok = load_tokenizer(str(results_dir(args.profile) / "tokenizer"))
        model = build_model(cfg["model"]["preset"], len(tok), seed=seed, rope_theta=500000.0,
                            max_position_embeddings=int(cfg["extended_length"]))
        what = f"preset {cfg['model']['preset']!r}, random weights"
    model.eval()
    data = results_dir(args.profile) / "data"
    if (data / "manifest.json").exists():
        dps, bench = load_benchmark(str(data)).datapoints, f"results/{args.profile}/data"
    else:
        dps, bench = stdlib_datapoints(args.datapoints, seed), f"{args.datapoints} stdlib stand-in datapoints"
    rows = []
    ic = incontext.incontext_config(cfg)
    L, n, w = ic["length"], ic["sequences"], ic["within_file"]
    bt = int(cfg["eval"].get("batch_tokens", 8192))

    def timed(fn):
        """(result, wall seconds, CPU seconds of this process: the wall time of a quiet machine
        times the threads used, whatever else shares the cores)"""
        w0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        return out, time.perf_counter() - w0, time.process_time() - c0

    r, wall, cpu = timed(lambda: incontext.copy_score(model, incontext.random_chunks(tok, n=n, length=L, seed=seed),
                                                      n_resamples=ic["bootstrap"], batch_tokens=bt))
    rows.append({"measure": "copy_random", "setting": "", "n": r["n"], "tokens": r["n"] * 2 * L,
                 "wall_s": wall, "cpu_s": cpu})
    chunks, repos = incontext.code_chunks(dps, tok, n=n, length=L, seed=seed)
    r, wall, cpu = timed(lambda: incontext.copy_score(model, chunks, repos, measure="copy_code",
                                                      n_resamples=ic["bootstrap"], batch_tokens=bt))
    rows.append({"measure": "copy_code", "setting": "", "n": r["n"], "tokens": r["n"] * 2 * L,
                 "wall_s": wall, "cpu_s": cpu})
    r, wall, cpu = timed(lambda: incontext.within_file_score(model, dps, tok, windows=w, n_resamples=ic["bootstrap"],
                                                             batch_tokens=bt))
    rows.append({"measure": "within_file", "setting": "", "n": r["n"], "tokens": r["n"] * w[-1],
                 "wall_s": wall, "cpu_s": cpu})
    first = True
    for s in presets.preset_settings(cfg):
        # Or-ext of a Path Distance checkpoint is its PD-ext (computed once); of another run, its own
        # composer at the same length: timed here as Path Distance again
        composer = presets.PATH_DISTANCE if s.composer == presets.OWN else s.composer
        rec, wall, cpu = timed(lambda: incontext.file_loss_records(
            model, tok, dps, composer=composer, max_context=s.max_context,
            completion_max=completion_budget(cfg, s.max_context), seed=seed, batch_tokens=bt))
        ctx = rec[rec["context_tokens"] > 0]  # forwarded with context; the no-context pass once per checkpoint
        tokens = int((ctx["context_tokens"] + ctx["file_tokens"]).sum()) + (int(rec["file_tokens"].sum()) if first else 0)
        first = False
        rows.append({"measure": "perplexity", "setting": s.label, "n": len(rec), "tokens": tokens,
                     "wall_s": wall, "cpu_s": cpu})
    df = pd.DataFrame(rows).round({"wall_s": 2, "cpu_s": 2})
    wall, cpu = float(df["wall_s"].sum()), float(df["cpu_s"].sum())
    out = BENCH_RESULTS / f"incontext_{args.profile}.csv"
    with atomic_path(out) as tmp:
        df.to_csv(tmp, index=False)
    write_sidecar(out, {"profile": args.profile, "model": what, "benchmark": bench, "datapoints": len(dps),
                        "threads": args.threads, "wall_s_per_checkpoint": round(wall, 1),
                        "cpu_s_per_checkpoint": round(cpu, 1), "tokens_per_checkpoint": int(df["tokens"].sum()),
                        "load_average": list(os.getloadavg())}, wall_time_s=wall)
    print(df.to_string(index=False))
    print(f"per checkpoint: {wall:.1f} s wall, {cpu:.1f} s CPU ({args.threads} threads: about {cpu / args.threads:.0f} s "
          f"on a quiet machine), {int(df['tokens'].sum()):,} tokens forwarded; {len(dps)} datapoints, {what}; "
          f"load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
