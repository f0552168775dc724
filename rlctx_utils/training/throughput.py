"""Training speed of a model shape: tokens/s, peak memory and model FLOPs utilisation (MFU).

The paper-shape check of a GPU run (``bench/bench_training.py --gpu`` and ``rlctx gpu run``): an
OpenCoder-1.5B-shaped model (random weights, no download) at 16K tokens, bf16 autocast, gradient
checkpointing, one sequence per micro batch, through the study's own :func:`train_step`.
MFU = (6 N + 6 L d T) tokens/s / peak, with N the non-embedding parameters plus the output layer
(the embedding lookup computes nothing), L layers, d width, T the sequence length (the attention
term 12 L d T halved for the causal mask), peak the GPU's dense bf16 FLOP/s (790 TFLOP/s
measured on the lent H200; 989 is an H100 SXM's datasheet number).

``device="cpu"`` runs the same code in fp32 (the CPU rehearsal of a GPU run; its MFU means nothing).

    python -m rlctx_utils.training.throughput --preset opencoder-1.5b-shape --seq-len 16384 \\
        --steps 3 --per-step 2 --peak-tflops 790 --out results/bench/training_gpu_h200.csv
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any


def measure(preset: str, *, seq_len: int, steps: int, per_step: int, micro_sequences: int = 1,
            peak_tflops: float = 790.0, device: str = "cuda", flash: bool = False,
            vocab: int | None = None, checkpointing: bool = True) -> dict[str, Any]:
    import torch
    from accelerate import Accelerator

    from ..models import PRESET_VOCAB, build_model, count_parameters
    from .loop import make_optimizer, make_scheduler, train_step
    from .sequences import TrainSequence, make_labels

    cuda = device != "cpu"
    if cuda and not torch.cuda.is_available():
        raise RuntimeError("the speed check needs a CUDA GPU (or --device cpu for a rehearsal)")
    vocab = int(vocab or PRESET_VOCAB.get(preset, 96640))
    t_build = time.perf_counter()
    model = build_model(preset, vocab, rope_theta=500000.0, max_position_embeddings=seq_len, seed=0)
    model.config._attn_implementation = "flash_attention_2" if flash else "sdpa"
    if checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    acc = Accelerator(mixed_precision="bf16" if cuda else "no", cpu=not cuda)
    run = dict(lr=5e-5, min_lr=5e-8, warmup_steps=1, schedule_steps=100, stop_step=100, clip=2.0,
               weight_decay=0.01, packing=False, micro_batch_tokens=seq_len, micro_batch_sequences=micro_sequences)
    opt = make_optimizer(model, run)
    sch = make_scheduler(opt, run)
    model, opt = acc.prepare(model, opt)
    build_s = time.perf_counter() - t_build
    g = torch.Generator().manual_seed(0)

    def seqs() -> list[TrainSequence]:
        out = []
        for _ in range(per_step):
            ids = torch.randint(10, vocab, (seq_len,), generator=g).tolist()
            out.append(TrainSequence(ids, make_labels(ids, seq_len * 3 // 4, "masked")))
        return out

    sync = torch.cuda.synchronize if cuda else (lambda: None)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    train_step(model, acc, opt, sch, seqs(), run)  # warm-up (allocations, kernels)
    sync()
    t0 = time.perf_counter()
    for _ in range(steps):
        train_step(model, acc, opt, sch, seqs(), run)
    sync()
    dt = time.perf_counter() - t0
    tps = steps * per_step * seq_len / dt
    p = count_parameters(acc.unwrap_model(model))
    cfg = acc.unwrap_model(model).config
    n = p["non_embedding"] + cfg.hidden_size * vocab  # the output layer computes, the embedding does not
    flops_per_token = 6 * n + 12 * cfg.num_hidden_layers * cfg.hidden_size * seq_len / 2  # causal: half
    mfu = tps * flops_per_token / (peak_tflops * 1e12)
    return {"preset": preset, "seq_len": seq_len, "sequences_per_step": per_step, "steps": steps,
            "micro_sequences": micro_sequences, "gradient_checkpointing": checkpointing,
            "mixed_precision": "bf16" if cuda else "no", "tokens_per_s": round(tps, 1), "mfu": round(mfu, 4),
            "peak_tflops": peak_tflops, "flops_per_token": round(flops_per_token), "n_params": p["total"],
            "step_s": round(dt / steps, 3), "build_s": round(build_s, 1),
            "gpu": torch.cuda.get_device_name(0) if cuda else "cpu", "attn": cfg._attn_implementation,
            "max_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 1) if cuda else None,
            "torch": torch.__version__}


def main(argv: list[str] | None = None) -> int:
    import pandas as pd

    from ..io import atomic_path, write_sidecar

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="opencoder-1.5b-shape")
    ap.add_argument("--seq-len", type=int, default=16384)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--per-step", type=int, default=2)
    ap.add_argument("--micro-sequences", type=int, default=1)
    ap.add_argument("--peak-tflops", type=float, default=790.0)
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    ap.add_argument("--flash", action="store_true", help="FlashAttention-2 (needs flash_attn)")
    ap.add_argument("--no-checkpointing", action="store_true")
    ap.add_argument("--out", required=True, help="CSV to write (a JSON sidecar goes beside it)")
    args = ap.parse_args(argv)
    t0 = time.time()
    try:
        row = measure(args.preset, seq_len=args.seq_len, steps=args.steps, per_step=args.per_step,
                      micro_sequences=args.micro_sequences, peak_tflops=args.peak_tflops, device=args.device,
                      flash=args.flash, checkpointing=not args.no_checkpointing)
    except RuntimeError as exc:
        print(f"speed check: error: {exc}", file=sys.stderr)
        return 2
    print(row, flush=True)
    out = Path(args.out)
    with atomic_path(out) as tmp:
        pd.DataFrame([row]).to_csv(tmp, index=False)
    write_sidecar(out, vars(args), time.time() - t0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
