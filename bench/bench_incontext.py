"""Cost of the in-context measures per checkpoint: copying, within-file and the perplexity protocol.

The cost depends on the model's shape and the benchmark's size, not on its weights, so without a
trained checkpoint (``--checkpoint PATH``) the script builds the profile's preset at random
initialisation with the profile's tokenizer. Without the profile's mined benchmark
(``results/<profile>/data``) it builds ``--datapoints`` stand-in datapoints from CPython's
standard library (each package a repository snapshot, one module its completion file). Writes
``results/bench/incontext_<profile>.csv`` (+ ``.json``): seconds per measure and setting, and the
whole in-context evaluation of one checkpoint.

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
    timings: dict[str, float] = {}
    res = incontext.measure_checkpoint(model, tok, dps, cfg=cfg, seed=seed,
                                       batch_tokens=int(cfg["eval"].get("batch_tokens", 8192)), timings=timings)
    L, w = incontext.incontext_config(cfg)["length"], incontext.incontext_config(cfg)["within_file"]
    for m in incontext.MEASURES:
        r = res.set_index("measure").loc[m]
        tokens = int(r["n"]) * (2 * L if m.startswith("copy") else w[-1])
        rows.append({"measure": m, "setting": "", "seconds": round(timings[m], 2), "n": int(r["n"]),
                     "tokens": tokens})
    first = True
    for s in presets.preset_settings(cfg):
        composer = presets.PATH_DISTANCE if s.composer == presets.OWN else s.composer
        t0 = time.perf_counter()
        rec = incontext.file_loss_records(model, tok, dps, composer=composer, max_context=s.max_context,
                                          completion_max=completion_budget(cfg, s.max_context), seed=seed,
                                          batch_tokens=int(cfg["eval"].get("batch_tokens", 8192)))
        ctx = rec[rec["context_tokens"] > 0]  # forwarded with context; the no-context pass once per checkpoint
        tokens = int((ctx["context_tokens"] + ctx["file_tokens"]).sum()) + (int(rec["file_tokens"].sum()) if first else 0)
        first = False
        rows.append({"measure": "perplexity", "setting": s.label, "seconds": round(time.perf_counter() - t0, 2),
                     "n": len(rec), "tokens": tokens})
    df = pd.DataFrame(rows)
    # Or-ext is PD-ext for Path Distance runs and computed once: count it as one more setting anyway
    total = float(df["seconds"].sum())
    tok_s = float(df["tokens"].sum()) / total
    out = BENCH_RESULTS / f"incontext_{args.profile}.csv"
    with atomic_path(out) as tmp:
        df.to_csv(tmp, index=False)
    write_sidecar(out, {"profile": args.profile, "model": what, "benchmark": bench, "datapoints": len(dps),
                        "threads": args.threads, "total_s_per_checkpoint": round(total, 1),
                        "tokens_per_checkpoint": int(df["tokens"].sum()), "forward_tokens_per_s": round(tok_s),
                        "load_average": list(os.getloadavg())}, wall_time_s=total)
    print(df.to_string(index=False))
    print(f"total per checkpoint: {total:.1f} s, {int(df['tokens'].sum()):,} tokens forwarded ({tok_s:,.0f}/s; "
          f"{len(dps)} datapoints, {what}; load average {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
