"""Evaluation speed: the fast engine against a straightforward per-line ``model.generate`` loop.

Both engines score the same benchmark lines; the script checks that every prediction and match is
identical and records wall times and the speedup in ``results/bench/eval.csv`` (+ ``eval.json``).
It also measures how far the two published protocols agree line by line on the same lines
(``results/bench/eval_protocols.csv``).

The model: ``--checkpoint PATH`` (a trained run), or by default a smoke-size model trained for
``--steps`` optimizer steps on single files of the profile's corpus, so that it ends lines like a
real model does (a random model runs every line to the 100-token cap, which is no one's workload).

    python bench/bench_eval.py --profile smoke --datapoints 8 --steps 300
"""

from __future__ import annotations

import argparse
import random
import time

import pandas as pd
import torch

from rlctx_utils.composers import render_completion
from rlctx_utils.data.store import load_corpus
from rlctx_utils.evaluation import metrics
from rlctx_utils.evaluation.api import load_benchmark
from rlctx_utils.evaluation.runner import build_tasks, run_tasks, tasks_frame
from rlctx_utils.io import atomic_path, write_sidecar
from rlctx_utils.paths import BENCH_RESULTS, results_dir


def small_trained_model(profile: str, tok, steps: int, seq: int, seed: int):
    """A smoke-preset model trained briefly on the profile's corpus (single files, full loss)."""
    from rlctx_utils.models import build_model

    files = [t for t in load_corpus(results_dir(profile) / "data" / "corpus")][:2000]
    rng = random.Random(seed)
    model = build_model("smoke", len(tok), seed=seed, rope_theta=500000.0)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)
    model.train()
    for step in range(steps):
        batch = []
        while len(batch) < 8:
            ids = tok(render_completion("f.py", rng.choice(files)), add_special_tokens=False).input_ids
            if len(ids) > 32:
                start = rng.randrange(0, max(1, len(ids) - seq))
                chunk = ids[start:start + seq]
                batch.append(chunk + [tok.pad_token_id] * (seq - len(chunk)))
        x = torch.tensor(batch)
        y = x.clone()
        y[x == tok.pad_token_id] = -100
        loss = model(input_ids=x, labels=y).loss
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 50 == 0 or step == steps - 1:
            print(f"train step {step} loss {loss.item():.3f}", flush=True)
    return model.eval(), float(loss.item())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="smoke")
    ap.add_argument("--checkpoint")
    ap.add_argument("--datapoints", type=int, default=8)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--settings", default="file_level:256,path_distance_py:1024")
    ap.add_argument("--protocols", default="lca,thesis")
    ap.add_argument("--out", default="eval")
    ap.add_argument("--decode-tokens", type=int, default=None,
                    help="cache tokens decoded together (default: 2 x batch_tokens)")
    args = ap.parse_args()

    from rlctx_utils.config import load_profile
    from rlctx_utils.tokenizer import load_tokenizer

    cfg = load_profile(args.profile)
    torch.manual_seed(args.seed)
    t0 = time.time()
    if args.checkpoint:
        from rlctx_utils.models import load_model
        tok, model, train_loss = load_tokenizer(args.checkpoint), load_model(args.checkpoint, device="cpu"), None
        model_name = args.checkpoint
    else:
        tok_dir = cfg.get("tokenizer", {}).get("path") or results_dir(args.profile) / "tokenizer"
        try:
            tok = load_tokenizer(str(tok_dir))
        except Exception:
            from rlctx_utils.tokenizer import stdlib_corpus, train_tokenizer
            tok = train_tokenizer(stdlib_corpus(max_files=300, seed=0), vocab_size=2048)
        model, train_loss = small_trained_model(args.profile, tok, args.steps, 256, args.seed)
        model_name = f"smoke preset, {args.steps} steps on the {args.profile} corpus"
    train_s = time.time() - t0
    bench = load_benchmark(str(results_dir(args.profile) / "data"), limit=args.datapoints)
    rows, agree_rows, frames = [], [], {}
    for setting in args.settings.split(","):
        composer, n = setting.split(":")
        for proto in args.protocols.split(","):
            res = {}
            for engine in ("reference", "fast"):
                tasks = build_tasks(bench.datapoints, tok, composer=composer, max_context=int(n), protocol=proto)
                t = time.time()
                run_tasks(model, tok, tasks, proto, engine=engine, batch_tokens=int(cfg["eval"].get("batch_tokens", 8192)),
                          decode_tokens=args.decode_tokens or cfg["eval"].get("decode_tokens"))
                res[engine] = (tasks_frame(tasks), time.time() - t)
            ref, fast = res["reference"][0], res["fast"][0]
            same_pred = int((ref["prediction"] == fast["prediction"]).sum())
            same_match = int((ref["match"] == fast["match"]).sum())
            frames[(composer, n, proto)] = fast
            row = {"setting": f"{composer}@{n}", "protocol": proto, "lines": len(ref),
                   "truncated_share": float(ref["truncated"].mean()),
                   "reference_s": round(res["reference"][1], 2), "fast_s": round(res["fast"][1], 2),
                   "speedup": round(res["reference"][1] / max(res["fast"][1], 1e-9), 2),
                   "identical_predictions": same_pred, "identical_matches": same_match,
                   "em_reference": 100 * ref["match"].mean(), "em_fast": 100 * fast["match"].mean(),
                   "max_abs_line_loss_diff": float((ref["line_loss"] - fast["line_loss"]).abs().max()),
                   "mean_generated_reference": float(ref["n_generated"].mean())}
            print(row, flush=True)
            rows.append(row)
        if all((composer, n, p) in frames for p in ("lca", "thesis")):
            a, b = frames[(composer, n, "lca")], frames[(composer, n, "thesis")]
            agr = metrics.agreement(a, b)
            agr.update(setting=f"{composer}@{n}", em_lca=100 * a["match"].mean(), em_thesis=100 * b["match"].mean(),
                       token_acc_lca=100 * a["token_acc"].mean(), token_acc_thesis=100 * b["token_acc"].mean(),
                       edit_sim_lca=a["edit_sim"].mean(), edit_sim_thesis=b["edit_sim"].mean())
            agree_rows.append(agr)
    wall = time.time() - t0
    config = vars(args) | {"model": model_name, "train_loss": train_loss, "train_s": round(train_s, 1),
                           "benchmark": bench.name, "threads": torch.get_num_threads(),
                           "note": "2-core CPU shared with other agents: timings noisy (load 3-8)"}
    out = BENCH_RESULTS / f"{args.out}.csv"
    with atomic_path(out) as tmp:
        pd.DataFrame(rows).to_csv(tmp, index=False)
    write_sidecar(out, config, wall_time_s=wall)
    if agree_rows:
        out2 = BENCH_RESULTS / f"{args.out}_protocols.csv"
        with atomic_path(out2) as tmp:
            pd.DataFrame(agree_rows).to_csv(tmp, index=False)
        write_sidecar(out2, config, wall_time_s=wall)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
