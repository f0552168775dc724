"""Training speed of the tiny Llama presets on this CPU: tokens per second for fwd + bwd + AdamW.

Why: on a 2-core CPU the toy study's budget (about 3 hours for a base model and about twelve
extension runs) is set by training throughput, and at these sizes the output layer (vocabulary x
width) and the cross-entropy over the logits dominate. This script measures fp32, sdpa attention,
micro-batches of about 4k tokens (fastest on this machine), for a grid of model shapes, sequence
lengths and vocabulary sizes, and writes ``results/bench/models.csv`` (+ ``models.json`` sidecar).

Each configuration is timed ``--repeats`` times, with the repeats interleaved across the grid so a
burst of load from other processes does not hit one configuration only; the CSV gives the median
and every repeat. Timings on a shared machine are noisy (10% typical, up to 2x).

    python bench/bench_models.py                 # the full grid (10-25 minutes on 2 shared cores)
    python bench/bench_models.py --quick         # one repeat of a small grid (about a minute)
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rlctx_utils.io import repo_relative, write_sidecar, write_text  # noqa: E402
from rlctx_utils.models import PRESETS, build_model, count_parameters  # noqa: E402
from rlctx_utils.paths import BENCH_RESULTS  # noqa: E402

#: Shapes measured besides the presets: candidates for the ``cpu`` preset.
CANDIDATES: dict[str, dict] = {
    "d128-L2-H4": dict(hidden_size=128, num_hidden_layers=2, num_attention_heads=4),
    "d128-L4-H4": dict(hidden_size=128, num_hidden_layers=4, num_attention_heads=4),
    "d192-L4-H6": dict(hidden_size=192, num_hidden_layers=4, num_attention_heads=6),
    "d256-L4-H8": dict(hidden_size=256, num_hidden_layers=4, num_attention_heads=8),
}


def shape_of(name: str) -> dict:
    if name in PRESETS:
        return PRESETS[name]
    if name in CANDIDATES:
        return CANDIDATES[name]
    raise SystemExit(f"unknown shape {name!r}: give a preset {sorted(PRESETS)} or {sorted(CANDIDATES)}")


def time_training(shape: str, vocab: int, seq_len: int, tokens_per_batch: int, steps: int,
                  warmup: int, seed: int = 0) -> tuple[float, dict]:
    """Tokens per second of ``steps`` optimizer steps (after ``warmup`` untimed ones)."""
    model = build_model(shape_of(shape), vocab_size=vocab, max_position_embeddings=seq_len, seed=seed)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.999), weight_decay=0.01)
    batch = max(1, tokens_per_batch // seq_len)
    gen = torch.Generator().manual_seed(seed)
    x = torch.randint(0, vocab, (batch, seq_len), generator=gen)

    def step() -> None:
        out = model(input_ids=x, labels=x)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 2.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    for _ in range(warmup):
        step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    dt = time.perf_counter() - t0
    return batch * seq_len * steps / dt, {"batch": batch, **count_parameters(model)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shapes", nargs="+",
                    default=["d128-L2-H4", "d128-L4-H4", "d256-L4-H8"])
    ap.add_argument("--seq-lens", nargs="+", type=int, default=[512, 2048])
    ap.add_argument("--vocabs", nargs="+", type=int, default=[4096, 8192, 16384])
    ap.add_argument("--tokens-per-batch", type=int, default=4096)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="small grid, one repeat")
    ap.add_argument("--out", type=Path, default=BENCH_RESULTS / "models.csv")
    args = ap.parse_args(argv)
    if args.quick:
        args.shapes, args.seq_lens, args.vocabs, args.repeats = ["smoke", "d128-L2-H4"], [512], [4096, 8192], 1
        args.steps = 2

    torch.set_num_threads(torch.get_num_threads())
    grid = [(s, v, n) for s in args.shapes for n in args.seq_lens for v in args.vocabs]
    runs: dict[tuple, list[float]] = {g: [] for g in grid}
    info: dict[tuple, dict] = {}
    t_start = time.time()
    load_before = os.getloadavg()

    def write(done: int) -> None:
        fields = ["shape", "hidden_size", "layers", "heads", "vocab_size", "seq_len", "batch",
                  "params_total", "params_non_embedding", "tokens_per_s_median", "tokens_per_s_best",
                  "tokens_per_s_repeats", "repeats_done", "threads"]
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
        w.writeheader()
        for g in grid:
            shape = shape_of(g[0])
            w.writerow({
                "shape": g[0], "hidden_size": shape["hidden_size"], "layers": shape["num_hidden_layers"],
                "heads": shape["num_attention_heads"], "vocab_size": g[1], "seq_len": g[2],
                "batch": info[g]["batch"], "params_total": info[g]["total"],
                "params_non_embedding": info[g]["non_embedding"],
                "tokens_per_s_median": round(statistics.median(runs[g])), "repeats_done": done,
                "tokens_per_s_best": round(max(runs[g])),
                "tokens_per_s_repeats": ";".join(str(round(x)) for x in runs[g]),
                "threads": torch.get_num_threads(),
            })
        write_text(args.out, buf.getvalue())
        write_sidecar(args.out, vars(args) | {"out": repo_relative(args.out)}, time.time() - t_start,
                      what="training tokens/s, LlamaForCausalLM fp32 sdpa, fwd+bwd+clip+AdamW, random tokens",
                      load_average_before=load_before, load_average_after=os.getloadavg(),
                      cpu_count=os.cpu_count(),
                      noise="machine shared with other processes; repeats interleaved, median reported; "
                            "expect 10% noise, occasionally 2x")

    for r in range(args.repeats):
        for g in grid:
            tps, meta = time_training(*g, tokens_per_batch=args.tokens_per_batch, steps=args.steps,
                                      warmup=args.warmup)
            runs[g].append(tps)
            info[g] = meta
            print(f"repeat {r + 1}/{args.repeats} {g[0]:>12} vocab {g[1]:>6} seq {g[2]:>5}: "
                  f"{tps:8.0f} tok/s", flush=True)
        write(r + 1)  # results so far: an interrupted bench keeps its finished repeats

    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
