"""The training loop of both stages, through ``accelerate`` (one CPU process up to multi-GPU).

Loss normalisation (the same for every run of the grid): a step's loss is the **sum** of the token
losses of all its micro batches on all processes, divided by the **count** of loss tokens of the
whole step (all-reduced before the first forward pass). Each micro batch backpropagates
``loss_sum * P / N_step`` (``P`` processes: data-parallel wrappers average gradients over
processes, which the factor undoes), so the step's gradient is exactly that of the global mean,
whatever the split into micro batches and processes (``tests/test_training_loss.py``). Averaging
per-micro-batch means instead would weight a short completion file like a long one.

Gradient accumulation is explicit: gradients are synchronised only on a step's last micro batch
(``no_sync`` before it); processes with fewer micro batches run zero-weighted dummy ones so every
process runs the same number of forward passes (FSDP and ZeRO-3 need that).

Optimiser and schedule (SPEC section 5 in the ``paper`` profile): AdamW, linear warm-up to ``lr``
over ``warmup_steps``, then a cosine to ``min_lr`` over the rest of ``schedule_steps``; training
stops at ``stop_step`` (512 in the paper, far before the schedule ends) and that checkpoint is the
one evaluated.
"""

from __future__ import annotations

import contextlib
import csv
import io
import math
import os
import random
import shutil
import signal
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..paths import results_dir
from ..io import (atomic_dir, output_lock, read_json, remove_stale_temporaries, repo_relative, write_bytes,
                  write_json, write_text)
from .packing import collate, count_loss_tokens, forward_loss_sum, group_micro_batches
from .runs import (RunError, latest_checkpoint, list_checkpoints, prepare_run_dir, relpath, run_dir,
                   write_record)

METRIC_FIELDS = ("step", "loss", "lr", "grad_norm", "tokens", "loss_tokens", "micro_batches",
                 "step_time_s", "tokens_per_s", "train_tokens", "elapsed_s")


class TrainingError(RuntimeError):
    """Training cannot start or go on (missing base checkpoint, tokenizer, data...)."""


# ----------------------------------------------------------------------------------- schedule
SCHEDULES = ("cosine", "wsd")


def lr_factor(step: int, *, warmup_steps: int, schedule_steps: int, lr: float, min_lr: float,
              schedule: str = "cosine", decay_steps: int = 0) -> float:
    """Multiplier of ``lr`` for optimizer step ``step`` (0-based): linear warm-up, then the schedule.

    Warm-up reaches ``lr`` at step ``warmup_steps - 1`` (the first step already uses lr/warmup).
    ``cosine`` then goes from ``lr`` to ``min_lr`` at ``schedule_steps`` and stays there.
    ``wsd`` (warmup-stable-decay) holds ``lr`` and decays linearly to ``min_lr`` over the last
    ``decay_steps`` steps before ``schedule_steps`` (a fifth of the schedule when 0).
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}: give one of {SCHEDULES}")
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    floor = min_lr / lr if lr else 0.0
    if schedule == "wsd":
        decay = int(decay_steps) or max(1, (schedule_steps - warmup_steps) // 5)
        start = schedule_steps - decay
        if step < start:
            return 1.0
        t = min(1.0, (step - start) / max(1, decay))
        return 1.0 - (1.0 - floor) * t
    span = max(1, schedule_steps - warmup_steps)
    t = min(1.0, (step - warmup_steps) / span)
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * t))


def make_optimizer(model: torch.nn.Module, run: dict[str, Any]) -> torch.optim.Optimizer:
    """AdamW; weight decay on matrices only (norm weights and biases are not decayed)."""
    decay, no_decay = [], []
    for _, p in model.named_parameters():
        if p.requires_grad:
            (decay if p.ndim >= 2 else no_decay).append(p)
    betas = tuple(run.get("betas", (0.9, 0.999)))
    return torch.optim.AdamW(
        [{"params": decay, "weight_decay": float(run.get("weight_decay", 0.01))},
         {"params": no_decay, "weight_decay": 0.0}],
        lr=float(run["lr"]), betas=betas, eps=float(run.get("eps", 1e-8)))


def make_scheduler(optimizer: torch.optim.Optimizer, run: dict[str, Any]) -> torch.optim.lr_scheduler.LambdaLR:
    kw = dict(warmup_steps=int(run.get("warmup_steps", 0)),
              schedule_steps=int(run.get("schedule_steps", run["stop_step"])),
              lr=float(run["lr"]), min_lr=float(run.get("min_lr", 0.0)),
              schedule=str(run.get("schedule", "cosine")), decay_steps=int(run.get("decay_steps", 0)))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, **kw))


# -------------------------------------------------------------------------------- distributed
def _all_reduce(accelerator: Any, value: float | int, op: str = "sum") -> float:
    t = torch.tensor([float(value)], dtype=torch.float64, device=accelerator.device)
    if accelerator.num_processes > 1:
        import torch.distributed as dist

        dist.all_reduce(t, op=dist.ReduceOp.MAX if op == "max" else dist.ReduceOp.SUM)
    return float(t.item())


def accumulate_gradients(model: torch.nn.Module, accelerator: Any, seqs: list, run: dict[str, Any], *,
                         pad_id: int = 0) -> dict[str, float]:
    """Forward and backward passes of one step's share ``seqs``; gradients left in ``.grad``.

    Each micro batch backpropagates ``loss_sum * P / N_step``; gradients are synchronised across
    processes on the last micro batch only.
    """
    packing = bool(run.get("packing", True))
    groups = group_micro_batches(seqs, packing=packing, max_tokens=int(run["micro_batch_tokens"]),
                                 max_sequences=int(run.get("micro_batch_sequences") or 0) or None)
    batches = [collate(g, packing=packing, pad_id=pad_id) for g in groups]
    local_count = sum(count_loss_tokens(b) for b in batches)
    local_tokens = sum(len(s) for s in seqs)
    global_count = _all_reduce(accelerator, local_count)
    n_micro = int(_all_reduce(accelerator, len(batches), "max"))
    if global_count <= 0:
        raise TrainingError("a step holds no loss token (all completions empty?)")
    procs = accelerator.num_processes
    weights = [1.0] * len(batches)
    while len(batches) < n_micro:  # zero-weighted dummy passes keep processes in lockstep
        batches.append(batches[0] if batches else
                       {"input_ids": torch.zeros((1, 2), dtype=torch.long),
                        "position_ids": torch.arange(2).view(1, 2),
                        "labels": torch.full((1, 2), -100, dtype=torch.long)})
        weights.append(0.0)
    local_loss = 0.0
    state = accelerator.gradient_state
    for i, (batch, w) in enumerate(zip(batches, weights)):
        last = i == n_micro - 1
        state._set_sync_gradients(last)
        batch = {k: v.to(accelerator.device) for k, v in batch.items()}
        ctx = contextlib.nullcontext() if last else accelerator.no_sync(model)
        with ctx, accelerator.autocast():
            loss_sum = forward_loss_sum(model, batch)
            accelerator.backward(loss_sum * (w * procs / global_count))
        local_loss += w * float(loss_sum.detach())
    state._set_sync_gradients(True)
    return {"loss": _all_reduce(accelerator, local_loss) / global_count,
            "tokens": _all_reduce(accelerator, local_tokens), "loss_tokens": global_count,
            "micro_batches": n_micro}


def train_step(model: torch.nn.Module, accelerator: Any, optimizer: Any, scheduler: Any,
               seqs: list, run: dict[str, Any], *, pad_id: int = 0) -> dict[str, float]:
    """One optimizer step over this process's share ``seqs`` of the step's sequences."""
    out = accumulate_gradients(model, accelerator, seqs, run, pad_id=pad_id)
    clip = float(run.get("clip", 0) or 0)
    params = [p for p in model.parameters() if p.requires_grad]
    if clip > 0:
        norm = accelerator.clip_grad_norm_(params, clip)
    else:
        norm = torch.nn.utils.clip_grad_norm_(params, float("inf"))
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    out["grad_norm"] = float(norm) if norm is not None else float("nan")
    return out


# ------------------------------------------------------------------------------------- setup
def resolve_mixed_precision(value: str | None) -> str:
    if value in (None, "auto"):
        if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
            return "bf16"
        return "no"
    return str(value)


def _tokenizer_path(run: dict[str, Any], out_root: Path) -> str:
    tok = run.get("tokenizer", "auto")
    if tok and tok != "auto":
        return str(tok)
    cfg_path = (run.get("tokenizer_cfg") or {}).get("path")
    if cfg_path:
        return str(cfg_path)
    return str(out_root / "tokenizer")


def _train_profile_tokenizer(run: dict[str, Any], out_root: Path, path: Path, main: bool, accelerator: Any):
    """No tokenizer yet for this profile: train one on the file-level corpus (as OpenCoder's was)."""
    from rlctx_utils.tokenizer import load_tokenizer, train_tokenizer

    if main:
        vocab = int((run.get("tokenizer_cfg") or {}).get("vocab_size", 8192))
        print(f"no tokenizer at {relpath(path)}: training a {vocab}-token BPE on the corpus", flush=True)
        texts = [text for _, text in load_training_data(run, out_root)]
        train_tokenizer(texts, vocab_size=vocab, out_dir=path)
    accelerator.wait_for_everyone()
    return load_tokenizer(str(path))


def base_checkpoint_path(run: dict[str, Any], out_root: Path) -> str:
    """``run:<id>`` -> that run's final checkpoint under the same results root; else as given."""
    ref = str(run.get("base_checkpoint") or "run:base")
    if ref.startswith("run:"):
        p = out_root / "runs" / ref[4:] / "checkpoints" / "final"
        if not (p / "config.json").exists():
            raise TrainingError(f"base checkpoint {relpath(p)} does not exist: train the base model first "
                                f"(rlctx train {run['profile']} --stage base) or set "
                                f"repo_training.base_checkpoint=PATH_OR_HUB_ID")
        return str(p)
    return ref


def load_training_data(run: dict[str, Any], out_root: Path) -> Any:
    """Stage A: the file-level corpus; stage B: the training datapoints (from the data stage).

    ``auto`` is the profile's mined folder ``results/<profile>/data`` (whatever the runs root).
    """
    if run["stage"] == "base":
        from rlctx_utils.data.store import load_corpus

        path = run.get("corpus", "auto")
        path = results_dir(run["profile"]) / "data" if path in (None, "auto") else Path(path)
        return [(p, text) for _, p, text in load_corpus(path, with_paths=True)]
    from rlctx_utils.data.store import load_datapoints

    path = run.get("data_dir", "auto")
    path = results_dir(run["profile"]) / "data" if path in (None, "auto") else Path(path)
    return load_datapoints(path, split=run.get("split", "train"))


def build_source(run: dict[str, Any], tokenizer: Any, data: Any):
    from .source import array_source, corpus_source, datapoint_source

    if run.get("sequences"):  # pre-tokenized once for the whole grid (rlctx gpu bundle)
        return array_source(run["sequences"], run)
    if run["stage"] == "base":
        return corpus_source(data, tokenizer=tokenizer, seq_len=int(run["seq_len"]),
                             seed=int(run["seed"]), fmt=run.get("fmt", "opencoder"),
                             repeat_fraction=float(run.get("repeat_fraction", 0.0)),
                             repeat_kind=str(run.get("repeat_kind", "code")),
                             repeat_warmup=int(run.get("repeat_warmup_steps", 0)) * int(run["sequences_per_step"]),
                             repeat_alphabet=int(run.get("repeat_alphabet", 0)),
                             repeat_span=int(run.get("repeat_span", 0)),
                             repeat_isolated=bool(run.get("repeat_isolated", False)))
    kw = dict(composer=run["composer"], mode=run.get("mode", "original"), tokenizer=tokenizer,
              seq_len=int(run["seq_len"]), loss=run.get("loss", "masked"),
              completion_max=run.get("completion_max_tokens") or None,
              fmt=run.get("fmt", "opencoder"), repo_name_header=bool(run.get("repo_name_header", False)))
    return datapoint_source(data, build_kwargs=kw, seed=int(run["seed"]))


def build_initial_model(run: dict[str, Any], tokenizer: Any, out_root: Path) -> tuple[torch.nn.Module, str | None]:
    """Stage A: a fresh model of the profile's preset. Stage B: the base checkpoint, RoPE changed."""
    from rlctx_utils.models import build_model, load_model

    attn = run.get("attn_implementation", "auto")
    if run["stage"] == "base":
        model_cfg = run.get("model") or {}
        preset = model_cfg.get("preset")
        if not preset:
            raise TrainingError("stage A needs [model].preset (a from-scratch model)")
        model = build_model(preset, len(tokenizer), rope_theta=float(run.get("rope_theta", 10000.0)),
                            max_position_embeddings=int(run["seq_len"]), seed=int(run["seed"]))
        if attn != "auto":
            model.config._attn_implementation = attn
        return model, None
    from rlctx_utils.rope import apply_rope

    base = base_checkpoint_path(run, out_root)
    model = load_model(base, dtype=run.get("dtype", "fp32"), attn_implementation=attn, device="cpu")
    kw = dict(run.get("rope_kwargs") or {})
    apply_rope(model, run.get("rope_variant", "default"), theta=float(run["rope_theta"]), **kw)
    if run.get("rope_variant", "default") == "default":  # bookkeeping: the new training length
        model.config.max_position_embeddings = max(int(model.config.max_position_embeddings or 0),
                                                   int(run["seq_len"]))
    return model, base


def _maybe_lora(model: torch.nn.Module, run: dict[str, Any]) -> torch.nn.Module:
    lora = run.get("lora") or {}
    if not lora or not lora.get("enabled", True) or not lora.get("r"):
        return model
    from peft import LoraConfig, get_peft_model

    cfg = LoraConfig(r=int(lora["r"]), lora_alpha=int(lora.get("alpha", 2 * int(lora["r"]))),
                     lora_dropout=float(lora.get("dropout", 0.0)),
                     target_modules=list(lora.get("target_modules", ["q_proj", "k_proj", "v_proj", "o_proj"])),
                     task_type="CAUSAL_LM")
    return get_peft_model(model, cfg)


# ------------------------------------------------------------------------------- checkpoints
def _rng_state() -> dict[str, Any]:
    """RNG states as plain data and tensors only, so that ``torch.load(weights_only=True)`` reads them
    (a NumPy array would need the unsafe unpickler)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    st = {"python": random.getstate(),
          "numpy": {"kind": str(kind), "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64).copy()),
                    "pos": int(pos), "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
          "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def _set_rng_state(st: dict[str, Any]) -> None:
    random.setstate(st["python"])
    n = st["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    torch.set_rng_state(st["torch"])
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(st["cuda"])


def safe_load(path: Path) -> Any:
    """``torch.load`` with ``weights_only=True``: tensors and plain data only; a file holding anything
    else (a crafted pickle that would run code, or a state written before this format) is refused."""
    import pickle

    try:
        return torch.load(path, weights_only=True, map_location="cpu")
    except (pickle.UnpicklingError, RuntimeError, EOFError, AttributeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TrainingError(
            f"{path} cannot be loaded safely ({first[:160]}); it was not loaded (it may be crafted, or "
            f"written by an older version): delete {path.parent} to resume from an earlier checkpoint, "
            "or delete the run folder to restart") from None


def _export_model(accelerator: Any, model: torch.nn.Module) -> torch.nn.Module:
    """The plain transformers model to save (LoRA adapters merged into a copy)."""
    inner = accelerator.unwrap_model(model)
    if hasattr(inner, "merge_and_unload"):
        import copy

        return copy.deepcopy(inner).merge_and_unload()
    return inner


def save_checkpoint(accelerator: Any, model: torch.nn.Module, optimizer: Any, scheduler: Any,
                    tokenizer: Any, path: Path, *, step: int, positions: int, extra: dict[str, Any]) -> None:
    """A ``save_pretrained`` folder (safetensors + tokenizer) plus ``trainer_state.pt``.

    Written into a temporary folder and renamed, so a killed run never leaves half a checkpoint.
    FSDP / DeepSpeed shard the optimizer: their state goes to ``accelerate_state/`` via
    ``accelerator.save_state``.
    """
    from accelerate.utils import DistributedType

    sharded = accelerator.distributed_type in (DistributedType.FSDP, DistributedType.DEEPSPEED)
    state_dict = accelerator.get_state_dict(model) if sharded else None
    accelerator.wait_for_everyone()
    tmp_state = path.parent / f".{path.name}.accelerate_state"
    if sharded:
        accelerator.save_state(str(tmp_state))
    if accelerator.is_main_process:
        with atomic_dir(path) as tmp:
            export = _export_model(accelerator, model)
            export.save_pretrained(str(tmp), safe_serialization=True, state_dict=state_dict
                                   if state_dict is not None and export is accelerator.unwrap_model(model) else None)
            tokenizer.save_pretrained(str(tmp))
            inner = accelerator.unwrap_model(model)
            if hasattr(inner, "peft_config"):
                inner.save_pretrained(str(tmp / "adapter"))
            torch.save({"step": step, "positions": positions, "optimizer": None if sharded else optimizer.state_dict(),
                        "scheduler": scheduler.state_dict(), "rng": _rng_state(), **extra},
                       tmp / "trainer_state.pt")
            if sharded and tmp_state.exists():
                os.replace(tmp_state, tmp / "accelerate_state")
    accelerator.wait_for_everyone()
    if accelerator.num_processes > 1:  # every process keeps its own RNG stream
        buf = io.BytesIO()
        torch.save(_rng_state(), buf)
        write_bytes(path / f"rng-{accelerator.process_index}.pt", buf.getvalue())
    accelerator.wait_for_everyone()


def load_checkpoint_state(accelerator: Any, model: torch.nn.Module, optimizer: Any, scheduler: Any,
                          path: Path) -> dict[str, Any]:
    """Restore weights, optimizer, scheduler and RNG from ``path``; returns the trainer state."""
    from safetensors.torch import load_file

    st = safe_load(path / "trainer_state.pt")
    inner = accelerator.unwrap_model(model)
    if hasattr(inner, "peft_config"):
        from peft import set_peft_model_state_dict

        adapter = path / "adapter" / "adapter_model.safetensors"
        set_peft_model_state_dict(inner, load_file(str(adapter)))
    elif (path / "accelerate_state").exists():
        accelerator.load_state(str(path / "accelerate_state"))
    else:
        sd = {}
        for f in sorted(path.glob("*.safetensors")):
            sd.update(load_file(str(f)))
        missing, unexpected = inner.load_state_dict(sd, strict=False)
        missing = [m for m in missing if not m.endswith("rotary_emb.inv_freq")]
        if missing or unexpected:
            raise TrainingError(f"checkpoint {path} does not match the model: missing {missing[:3]}, "
                                f"unexpected {unexpected[:3]}")
    if st.get("optimizer") is not None:
        optimizer.load_state_dict(st["optimizer"])
    scheduler.load_state_dict(st["scheduler"])
    rng_file = path / f"rng-{accelerator.process_index}.pt"
    _set_rng_state(safe_load(rng_file) if rng_file.exists() else st["rng"])
    return st


# ------------------------------------------------------------------------------------ logging
class MetricsLog:
    """``metrics.csv`` (rewritten atomically, small) and TensorBoard scalars, main process only."""

    def __init__(self, d: Path, enabled: bool, resume_step: int = 0, extra_fields: tuple[str, ...] = ()):
        self.path = d / "metrics.csv"
        self.enabled = enabled
        self.fields = METRIC_FIELDS + tuple(extra_fields)
        self.rows: list[dict[str, Any]] = []
        if enabled and self.path.exists():
            with open(self.path, newline="") as fh:
                self.rows = [r for r in csv.DictReader(fh) if int(r["step"]) <= resume_step]
        self.tb = None
        if enabled:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(d / "tb"), purge_step=resume_step + 1 if resume_step else None)
            except ImportError:  # pragma: no cover
                self.tb = None

    def log(self, row: dict[str, Any]) -> None:
        if not self.enabled:
            return
        self.rows.append(row)
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=self.fields, extrasaction="ignore", lineterminator="\n")
        w.writeheader()
        w.writerows(self.rows)
        write_text(self.path, buf.getvalue())
        if self.tb is not None:
            for k in ("loss", "lr", "grad_norm", "tokens_per_s"):
                self.tb.add_scalar(f"train/{k}", float(row[k]), int(row["step"]))
            for k in self.fields[len(METRIC_FIELDS):]:
                if row.get(k) not in (None, ""):
                    self.tb.add_scalar(f"incontext/{k}", float(row[k]), int(row["step"]))

    def close(self) -> None:
        if self.tb is not None:
            self.tb.flush()
            self.tb.close()


# ---------------------------------------------------------------------------------------- run
def train(run: dict[str, Any], *, out_dir: str | Path | None = None, resume: bool = False,
          tokenizer: Any = None, data: Any = None, progress: bool = True) -> dict[str, Any]:
    """Train one resolved run (see :func:`rlctx_utils.training.runs.resolve_run`); returns run.json.

    ``tokenizer`` and ``data`` (corpus items or datapoints) may be given directly (tests,
    notebooks); otherwise they are loaded from the profile's locations. The run folder is locked
    for the duration (a second writer of the same run is refused, see :func:`rlctx_utils.io.output_lock`)
    and the temporaries a killed run left in it are removed first.
    """
    threads = int(run.get("threads") or 0)
    if threads > 0:
        torch.set_num_threads(threads)
    out_root = Path(out_dir) if out_dir else None
    if int(os.environ.get("RANK", "0") or 0) != 0:  # other ranks of a distributed run: rank 0 holds the lock
        return _train(run, out_root, resume, tokenizer, data, progress)
    folder = run_dir(run, out_root)
    if folder.exists() and not folder.is_dir():
        raise TrainingError(f"{folder} is a file, not a run folder: remove it or pick another --run-id/--out-dir")
    with output_lock(folder, f"rlctx train {run['profile']} --run-id {run['run_id']}"):
        remove_stale_temporaries(folder)
        remove_stale_temporaries(folder / "checkpoints")
        return _train(run, out_root, resume, tokenizer, data, progress)


def _train(run: dict[str, Any], out_root: Path | None, resume: bool, tokenizer: Any, data: Any,
           progress: bool) -> dict[str, Any]:
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from tqdm.auto import tqdm

    d, action = prepare_run_dir(run, out_root, resume=resume)
    out_root = d.parent.parent
    if action == "done":
        return read_json(d / "run.json")

    accelerator = Accelerator(mixed_precision=resolve_mixed_precision(run.get("mixed_precision")),
                              cpu=bool(run.get("cpu", False)) or not torch.cuda.is_available())
    set_seed(int(run["seed"]))
    main = accelerator.is_main_process

    base_ref = None
    if tokenizer is None:
        if run["stage"] == "repo":
            base_ref = base_checkpoint_path(run, out_root)
        from rlctx_utils.tokenizer import load_tokenizer

        tok_path = base_ref or _tokenizer_path(run, out_root)
        if run["stage"] == "base" and run.get("tokenizer", "auto") in (None, "auto") \
                and not Path(tok_path, "tokenizer.json").exists():
            tokenizer = _train_profile_tokenizer(run, out_root, Path(tok_path), main, accelerator)
        else:
            tokenizer = load_tokenizer(tok_path)
    pad_id = int(tokenizer.pad_token_id) if tokenizer.pad_token_id is not None else 0
    if data is None and not run.get("sequences"):
        data = load_training_data(run, out_root)
    source = build_source(run, tokenizer, data)
    order_hash = source.order_hash()
    if main:
        write_json(d / "data_order.json", {"order_hash": order_hash, "n_items": len(source),
                                           "first_ids": source.ids_in_order(min(64, len(source)))})

    model, base_ref = build_initial_model(run, tokenizer, out_root)
    gc = run.get("gradient_checkpointing", "auto")
    if gc is True or (gc == "auto" and torch.cuda.is_available()):
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.config.use_cache = False
    model = _maybe_lora(model, run)
    model.train()
    optimizer = make_optimizer(model, run)
    scheduler = make_scheduler(optimizer, run)
    model, optimizer = accelerator.prepare(model, optimizer)

    start_step, train_tokens, elapsed = 0, 0.0, 0.0
    if action == "resume":
        cp = latest_checkpoint(d)
        if cp is not None:
            st = load_checkpoint_state(accelerator, model, optimizer, scheduler, cp[1])
            start_step, train_tokens = int(st["step"]), float(st.get("train_tokens", 0))
            elapsed = float(st.get("elapsed_s", 0.0))
    stop = int(run["stop_step"])
    per_step = int(run["sequences_per_step"])
    # optional copying curve (``incontext_every = N``): copy scores every N steps as extra columns
    from rlctx_utils.evaluation.incontext import TRAINING_FIELDS, training_probe

    probe = training_probe(run, tokenizer)
    every = int(run.get("incontext_every") or 0)
    log = MetricsLog(d, main, start_step, TRAINING_FIELDS if probe is not None else ())
    rec_fields = dict(status="running", data_order_hash=order_hash,
                      base_checkpoint=repo_relative(base_ref) if base_ref and Path(base_ref).exists() else base_ref,
                      processes=accelerator.num_processes, sequences_per_step=per_step,
                      stop_step=stop, mixed_precision=accelerator.mixed_precision)
    if main:
        write_record(d, run, step=start_step, train_tokens=int(train_tokens), **rec_fields)
    kill_at = int((run.get("debug") or {}).get("kill_at_step") or 0)
    save_every = int(run.get("save_every") or 0)
    keep = int(run.get("keep_checkpoints", 2))
    bar = tqdm(total=stop, initial=start_step, disable=not (main and progress), desc=run["run_id"],
               unit="step", dynamic_ncols=True)
    rank, procs = accelerator.process_index, accelerator.num_processes
    for step in range(start_step, stop):
        t0 = time.perf_counter()
        positions = range(step * per_step, (step + 1) * per_step)
        seqs = [source.get(p) for p in positions[rank::procs]]
        lr = scheduler.get_last_lr()[0]
        out = train_step(model, accelerator, optimizer, scheduler, seqs, run, pad_id=pad_id)
        dt = time.perf_counter() - t0
        elapsed += dt
        train_tokens += out["tokens"]
        row = {"step": step + 1, "loss": f"{out['loss']:.6f}", "lr": f"{lr:.6e}",
               "grad_norm": f"{out['grad_norm']:.4f}", "tokens": int(out["tokens"]),
               "loss_tokens": int(out["loss_tokens"]), "micro_batches": out["micro_batches"],
               "step_time_s": f"{dt:.3f}", "tokens_per_s": f"{out['tokens'] / dt:.1f}",
               "train_tokens": int(train_tokens), "elapsed_s": f"{elapsed:.1f}"}
        if probe is not None and (step + 1) % every == 0:
            with accelerator.autocast():
                row.update({k: f"{v:.5f}" for k, v in probe(model).items()})
            model.train()
        log.log(row)
        bar.update(1)
        bar.set_postfix(loss=f"{out['loss']:.3f}", tok_s=f"{out['tokens'] / dt:,.0f}")
        done = step + 1
        if (save_every and done % save_every == 0) or done == stop:
            name = "final" if done == stop else f"step-{done}"
            extra = {"train_tokens": train_tokens, "elapsed_s": elapsed}
            save_checkpoint(accelerator, model, optimizer, scheduler, tokenizer,
                            d / "checkpoints" / name, step=done, positions=done * per_step, extra=extra)
            if name == "final":  # resumable from final too
                pass
            elif main:
                for _, old in list_checkpoints(d)[:-keep] if keep > 0 else []:
                    shutil.rmtree(old, ignore_errors=True)
            if main:
                write_record(d, run, step=done, train_tokens=int(train_tokens), **rec_fields)
        if kill_at and done == kill_at:
            log.close()
            os.kill(os.getpid(), signal.SIGKILL)
    bar.close()
    log.close()
    if not (d / "checkpoints" / "final").is_dir() and stop > 0 and main:
        raise TrainingError(f"run {run['run_id']!r} ended at step {stop} without a final checkpoint")
    if stop == 0:
        # No training (e.g. the base model with RoPE theta raised and nothing else): the initial
        # weights, under this run's RoPE settings, are the run's final checkpoint.
        save_checkpoint(accelerator, model, optimizer, scheduler, tokenizer, d / "checkpoints" / "final",
                        step=0, positions=0, extra={"train_tokens": 0.0, "elapsed_s": 0.0})
    accelerator.wait_for_everyone()
    rec = None
    if main:
        last_loss = float(log.rows[-1]["loss"]) if log.rows else None  # None (JSON null): no step was taken
        rec_fields["status"] = "finished"
        rec = write_record(d, run, step=stop, train_tokens=int(train_tokens), final_loss=last_loss,
                           final_checkpoint=relpath(d / "checkpoints" / "final"), wall_time_s=round(elapsed, 1),
                           finished_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"), **rec_fields)
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return rec if rec is not None else read_json(d / "run.json")
