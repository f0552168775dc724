"""Training throughput: our packed loop vs a plain padded-batch loop on the same composed data.

    python bench/bench_training.py [--preset cpu] [--seq-len 2048] [--steps 3] [--per-step 16]
    python bench/bench_training.py --composer file_level --seq-len 512 --per-step 32 \
        --out results/bench/training_file_level.csv
    python bench/bench_training.py --gpu --preset opencoder-1.5b-shape --seq-len 16384 --steps 4 \\
        --per-step 8 --micro-sequences 1                                   # GPU: tokens/s and MFU

CPU part. Datapoints are repository-level sequences composed with Path Distance .py: from the
profile's mined data when ``results/<profile>/data`` exists, otherwise from CPython's standard
library (each package folder is a repository snapshot, one of its files the completion file).
Both loops see the same sequences, the same model initialisation and AdamW:

* ``padded``: micro batches of ``--pad-batch`` sequences in data order, padded to the longest one
  (attention mask), loss averaged per micro batch -- the plain loop most training scripts use;
* ``packed``: :mod:`rlctx_utils.training` -- sequences packed into rows of ``--row-tokens`` tokens,
  no padding, no cross-sequence attention, loss normalised over the step.

Tokens per second count real (non-padding) tokens. Writes ``results/bench/training.csv`` and its
sidecar. The machine may be shared with other jobs (noted in the sidecar): repeat before trusting
a difference below ~1.3x.

GPU part (``--gpu``): an OpenCoder-1.5B-shaped model (random weights, no download) at 16K tokens,
bf16 autocast, gradient checkpointing, one sequence per micro batch; reports tokens/s and model
FLOPs utilisation MFU = (6 N + 12 L d T) tokens/s / peak, with N the non-embedding parameters plus
the output layer, L layers, d width, T sequence length, peak the GPU's dense bf16 FLOP/s
(``--peak-tflops``: 790 TFLOP/s measured on the lent H200; 989 is an H100 SXM's datasheet). Writes ``results/bench/training_gpu.csv``.
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pandas as pd  # noqa: E402
import torch  # noqa: E402

from rlctx_utils.data import Datapoint  # noqa: E402
from rlctx_utils.io import atomic_path, write_sidecar  # noqa: E402
from rlctx_utils.models import build_model, count_parameters  # noqa: E402
from rlctx_utils.paths import BENCH_RESULTS, cache_dir, results_dir  # noqa: E402
from rlctx_utils.training.packing import collate_padded, forward_loss_sum  # noqa: E402
from rlctx_utils.training.loop import make_optimizer, make_scheduler, train_step  # noqa: E402
from rlctx_utils.training.source import datapoint_source  # noqa: E402


def stdlib_datapoints(limit: int, seed: int = 0) -> list[Datapoint]:
    """Package folders of the standard library as repositories (real Python, no network)."""
    import random

    root = Path(os.__file__).parent
    dps = []
    for pkg in sorted(p for p in root.iterdir() if p.is_dir() and (p / "__init__.py").exists()):
        files = {}
        for f in sorted(pkg.rglob("*.py")):
            if "test" in f.parts or "__pycache__" in f.parts:
                continue
            try:
                files[str(f.relative_to(root))] = f.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                continue
        for path, text in files.items():
            if 800 <= len(text) <= 25_000 and len(files) > 2:
                snap = {p: t for p, t in files.items() if p != path}
                dps.append(Datapoint(repo=f"cpython/{pkg.name}", commit_hash="0" * 40, completion_path=path,
                                     completion_content=text, snapshot=snap))
    random.Random(seed).shuffle(dps)
    return dps[:limit]


def get_tokenizer(profile: str, vocab: int):
    from rlctx_utils.tokenizer import load_tokenizer, stdlib_corpus, train_tokenizer

    prof = results_dir(profile) / "tokenizer"
    if (prof / "tokenizer.json").exists():
        return load_tokenizer(str(prof))
    cached = cache_dir() / f"bench_tokenizer_{vocab}"
    if (cached / "tokenizer.json").exists():
        return load_tokenizer(str(cached))
    return train_tokenizer(stdlib_corpus(max_files=400, seed=0), vocab_size=vocab, out_dir=cached)


def padded_step(model, optimizer, scheduler, seqs, batch: int, pad_id: int, clip: float) -> None:
    """The plain loop: fixed-size micro batches padded to their longest sequence, mean loss each."""
    groups = [seqs[i:i + batch] for i in range(0, len(seqs), batch)]
    for g in groups:
        b = collate_padded(g, pad_id)
        n = int((b["labels"][:, 1:] != -100).sum())
        loss = forward_loss_sum(model, b) / max(n, 1) / len(groups)
        loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)


def bench_cpu(args) -> pd.DataFrame:
    from accelerate import Accelerator

    tok = get_tokenizer(args.profile, args.vocab)
    data_dir = results_dir(args.profile) / "data"
    if (data_dir / "data").exists():
        from rlctx_utils.data.store import load_datapoints

        dps, origin = load_datapoints(data_dir, split="train"), f"results/{args.profile}/data"
    else:
        dps, origin = stdlib_datapoints(args.per_step * (args.steps + 1), seed=0), "stdlib"
    src = datapoint_source(dps, build_kwargs=dict(composer=args.composer, mode="original", tokenizer=tok,
                                                  seq_len=args.seq_len, loss="masked",
                                                  completion_max=args.seq_len if args.composer == "file_level" else None),
                           seed=0)
    steps = [[src.get(s * args.per_step + i) for i in range(args.per_step)] for s in range(args.steps + 1)]
    run = dict(lr=1e-4, min_lr=1e-5, warmup_steps=1, schedule_steps=100, stop_step=100, clip=2.0,
               weight_decay=0.01, packing=True, micro_batch_tokens=args.row_tokens)
    base = build_model(args.preset, len(tok), rope_theta=500000.0, max_position_embeddings=args.seq_len, seed=0)
    rows = []
    for mode in ("padded", "packed") * args.repeats:
        model = copy.deepcopy(base).train()
        opt = make_optimizer(model, run)
        sch = make_scheduler(opt, run)
        acc = Accelerator(cpu=True) if mode == "packed" else None
        if acc is not None:
            model, opt = acc.prepare(model, opt)
        timed, tokens, padded_tokens = 0.0, 0, 0
        for k, seqs in enumerate(steps):
            t0 = time.perf_counter()
            if mode == "padded":
                padded_step(model, opt, sch, seqs, args.pad_batch, tok.pad_token_id or 0, 2.0)
            else:
                train_step(model, acc, opt, sch, seqs, run, pad_id=tok.pad_token_id or 0)
            dt = time.perf_counter() - t0
            if k == 0:
                continue  # warm-up step
            timed += dt
            tokens += sum(len(s) for s in seqs)
            if mode == "padded":
                padded_tokens += sum(max(len(s) for s in seqs[i:i + args.pad_batch]) * len(seqs[i:i + args.pad_batch])
                                     for i in range(0, len(seqs), args.pad_batch))
            else:
                padded_tokens += sum(len(s) for s in seqs)
        rows.append({"loop": mode, "composer": args.composer, "preset": args.preset, "seq_len": args.seq_len, "sequences_per_step": args.per_step,
                     "steps": args.steps, "tokens": tokens, "computed_tokens": padded_tokens,
                     "padding_fraction": round(1 - tokens / padded_tokens, 4), "seconds": round(timed, 2),
                     "tokens_per_s": round(tokens / timed, 1), "threads": torch.get_num_threads(),
                     "data": origin})
        print(rows[-1], flush=True)
    df = pd.DataFrame(rows)
    agg = df.groupby("loop")["tokens_per_s"].median()
    df["speedup_packed_vs_padded"] = round(float(agg["packed"] / agg["padded"]), 3)
    return df


def bench_gpu(args) -> pd.DataFrame:
    """The paper-shape speed check (rlctx_utils/training/throughput.py, shared with rlctx gpu run)."""
    from rlctx_utils.training.throughput import measure

    if not torch.cuda.is_available():
        raise SystemExit("--gpu needs a CUDA GPU")
    row = measure(args.preset, seq_len=args.seq_len, steps=args.steps, per_step=args.per_step,
                  micro_sequences=args.micro_sequences, peak_tflops=args.peak_tflops, flash=args.flash,
                  vocab=96640)
    print(row)
    return pd.DataFrame([row])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--preset", default="cpu")
    ap.add_argument("--vocab", type=int, default=8192)
    ap.add_argument("--seq-len", type=int, default=2048)
    ap.add_argument("--per-step", type=int, default=16)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--pad-batch", type=int, default=4)
    ap.add_argument("--row-tokens", type=int, default=4096)
    ap.add_argument("--composer", default="path_distance_py",
                    help="file_level gives variable lengths (the completion alone), where padding costs most")
    ap.add_argument("--gpu", action="store_true")
    ap.add_argument("--flash", action="store_true", help="FlashAttention-2 (needs flash_attn)")
    ap.add_argument("--micro-sequences", type=int, default=1)
    ap.add_argument("--peak-tflops", type=float, default=790.0, help="dense bf16 peak (790: measured on the lent H200)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    t0 = time.time()
    df = bench_gpu(args) if args.gpu else bench_cpu(args)
    out = Path(args.out) if args.out else BENCH_RESULTS / ("training_gpu.csv" if args.gpu else "training.csv")
    with atomic_path(out) as tmp:
        df.to_csv(tmp, index=False)
    write_sidecar(out, vars(args), time.time() - t0,
                  note="2-core CPU shared with other jobs while measured; repeat before trusting <1.3x"
                  if not args.gpu else "")
    print(df.to_string(index=False))


if __name__ == "__main__":
    main()
