"""Llama-architecture models: presets for each profile and loading of released checkpoints.

The paper extends OpenCoder-1.5B-Base, a Llama-architecture decoder (SPEC section 5). The artifact
runs the same study at several scales, so every model here is a ``transformers``
:class:`~transformers.LlamaForCausalLM` (or, for released checkpoints, whatever class the hub config
names): the same code trains a 0.1M-parameter model on a laptop and the 1.9B-parameter OpenCoder on
GPUs.

Presets (:data:`PRESETS`) are ``LlamaConfig`` keyword arguments; :func:`build_model` adds the
vocabulary size, the RoPE base frequency and the training length. Sizes were chosen from speed
measurements on a 2-core CPU (``bench/bench_models.py``, ``results/bench/models.csv``):

* ``smoke``: d=64, 2 layers, 4 heads. Trains in seconds; CI only, numbers mean nothing.
* ``cpu``: d=128, 4 layers, 4 heads (head dim 32). The toy study (a base model and about twelve short
  extension runs, 3 hours on 2 cores) needs tens of thousands of tokens per second-hour; the
  output layer dominates the cost at this size, so depth is cheap and width is not. Four layers
  (not two) leave room for induction-style copying from context, which repository context feeds.
  Planning numbers (MEASURED.md, quiet machine): d=128/2 layers ~5,200 tok/s at 512 tokens,
  d=256/4 layers ~2,000; this preset sits between (about 3M parameters, 0.85M non-embedding).
* ``gpu-small``: d=640, 10 layers, 10 heads (head dim 64), about 70M parameters with a 16k
  vocabulary: roughly an hour for the whole grid on one Colab-class GPU.
* ``opencoder-1.5b-shape``: OpenCoder-1.5B-Base's architecture (24 layers, hidden 2,240, 14 heads of
  160 dimensions, no grouped-query attention, SwiGLU width 6,144, untied embeddings, vocabulary
  96,640, trained at 4,096 tokens with theta 10,000), for GPU memory and speed benchmarks without
  downloading weights. The width 6,144 and 14 heads are our reading of the released config; they
  reproduce its published size of 1.9B parameters.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

import torch
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedModel


class ModelError(ValueError):
    """A preset or model option that cannot be used; the message says what to change."""


class ModelNotFoundError(OSError):
    """A model that is neither a local folder nor reachable on the hub (one-line message)."""


def _ffn(d: int) -> int:
    """SwiGLU width: 8/3 of the model width rounded up to a multiple of 64 (as Llama does)."""
    return -(-(8 * d // 3) // 64) * 64


#: Llama ``LlamaConfig`` keyword arguments per preset (vocabulary, RoPE and length come from
#: :func:`build_model`). ``max_position_embeddings`` is the base model's training length.
PRESETS: dict[str, dict[str, Any]] = {
    "smoke": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
                  intermediate_size=_ffn(64), max_position_embeddings=256),
    "cpu": dict(hidden_size=128, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=4,
                intermediate_size=_ffn(128), max_position_embeddings=512),
    "gpu-small": dict(hidden_size=640, num_hidden_layers=10, num_attention_heads=10,
                      num_key_value_heads=10, intermediate_size=_ffn(640),
                      max_position_embeddings=1024),
    "opencoder-1.5b-shape": dict(hidden_size=2240, num_hidden_layers=24, num_attention_heads=14,
                                 num_key_value_heads=14, intermediate_size=6144,
                                 max_position_embeddings=4096, rms_norm_eps=1e-5),
}

#: The vocabulary size each preset is meant to be used with (the profile's ``[tokenizer]``).
PRESET_VOCAB: dict[str, int] = {"smoke": 2048, "cpu": 8192, "gpu-small": 16384,
                                "opencoder-1.5b-shape": 96640}

_COMMON: dict[str, Any] = dict(hidden_act="silu", rms_norm_eps=1e-5, initializer_range=0.02,
                               tie_word_embeddings=False, attention_bias=False, mlp_bias=False,
                               attention_dropout=0.0, use_cache=True)


def preset_config(preset: str | dict[str, Any], vocab_size: int, *, rope_theta: float = 10000.0,
                  max_position_embeddings: int | None = None, **overrides: Any) -> LlamaConfig:
    """The :class:`~transformers.LlamaConfig` of a preset (name or dict of config kwargs)."""
    if isinstance(preset, str):
        if preset not in PRESETS:
            raise ModelError(f"unknown model preset {preset!r}: give one of {sorted(PRESETS)} "
                             "or a dict of LlamaConfig arguments")
        kwargs = dict(PRESETS[preset])
    elif isinstance(preset, dict):
        kwargs = dict(preset)
    else:
        raise ModelError(f"model preset must be a name or a dict, got {type(preset).__name__}")
    if not isinstance(vocab_size, int) or vocab_size < 16:
        raise ModelError(f"vocab_size must be an int >= 16, got {vocab_size!r}")
    if rope_theta <= 1:
        raise ModelError(f"rope_theta must be > 1, got {rope_theta!r}")
    kwargs = {**_COMMON, **kwargs, **overrides}
    if max_position_embeddings is not None:
        kwargs["max_position_embeddings"] = int(max_position_embeddings)
    kwargs.setdefault("max_position_embeddings", 4096)
    d, h = kwargs["hidden_size"], kwargs["num_attention_heads"]
    if d % h or (d // h) % 2:
        raise ModelError(f"hidden_size {d} must split into {h} heads of an even size (RoPE rotates pairs)")
    kwargs.setdefault("num_key_value_heads", h)
    kwargs.setdefault("intermediate_size", _ffn(d))
    attn = kwargs.pop("attn_implementation", "sdpa")
    rope = kwargs.pop("rope_parameters", None) or {"rope_type": "default", "rope_theta": float(rope_theta)}
    cfg = LlamaConfig(vocab_size=vocab_size, rope_parameters=dict(rope), **kwargs)
    cfg._attn_implementation = attn
    return cfg


def build_model(preset: str | dict[str, Any], vocab_size: int, *, rope_theta: float = 10000.0,
                max_position_embeddings: int | None = None, seed: int = 0,
                **overrides: Any) -> LlamaForCausalLM:
    """A freshly initialised Llama model from a preset, deterministic in ``seed``, fp32.

    ``max_position_embeddings`` defaults to the preset's base training length; it is only
    bookkeeping for plain RoPE (positions beyond it still work) but is the reference length for
    dynamic-NTK scaling. The global torch RNG is left untouched.
    """
    cfg = preset_config(preset, vocab_size, rope_theta=rope_theta,
                        max_position_embeddings=max_position_embeddings, **overrides)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(cfg)
    return model.to(torch.float32)


def count_parameters(model: torch.nn.Module) -> dict[str, int]:
    """Total parameters and the non-embedding ones (token embeddings and untied output layer excluded).

    The non-embedding count is the one scaling laws use: embedding lookups cost no compute, though
    the output layer does (it dominates tiny models; see the speed benchmark).
    """
    seen: set[int] = set()
    total = 0
    for p in model.parameters():
        if id(p) not in seen:
            seen.add(id(p))
            total += p.numel()
    emb_ids: set[int] = set()
    emb = 0
    for getter in ("get_input_embeddings", "get_output_embeddings"):
        mod = getattr(model, getter, lambda: None)()
        if mod is not None and id(mod.weight) not in emb_ids:
            emb_ids.add(id(mod.weight))
            emb += mod.weight.numel()
    return {"total": total, "embedding": emb, "non_embedding": total - emb}


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_dtype(dtype: str | torch.dtype, device: str) -> torch.dtype:
    """``auto``: bf16 on GPUs that support it (fp16 otherwise), fp32 on CPU (bf16 is ~25x slower there)."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype == "auto":
        if str(device).startswith("cuda"):
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    names = {"fp32": torch.float32, "float32": torch.float32, "bf16": torch.bfloat16,
             "bfloat16": torch.bfloat16, "fp16": torch.float16, "float16": torch.float16}
    if dtype not in names:
        raise ModelError(f"unknown dtype {dtype!r}: give auto, fp32, bf16 or fp16")
    return names[dtype]


def resolve_attn(attn_implementation: str, device: str, dtype: torch.dtype) -> str:
    """``auto``: FlashAttention-2 on CUDA in half precision when ``flash_attn`` is installed, else sdpa."""
    if attn_implementation != "auto":
        return attn_implementation
    if (str(device).startswith("cuda") and dtype in (torch.bfloat16, torch.float16)
            and importlib.util.find_spec("flash_attn") is not None):
        return "flash_attention_2"
    return "sdpa"


def looks_like_path(name_or_path: str | os.PathLike[str]) -> bool:
    """A string that can only mean a local folder (hub ids are ``owner/name``)."""
    s = str(name_or_path)
    return (isinstance(name_or_path, Path) or s.startswith((".", "/", "~")) or s.count("/") > 1
            or os.sep != "/" and os.sep in s or Path(s).exists())


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return (text[:200] + "...") if len(text) > 200 else text


#: Where a user gives a local model or tokenizer folder instead of a hub id (the options that exist).
MODEL_FLAG = "rlctx eval --checkpoint DIR, or rlctx train ... --stage repo base_checkpoint=DIR"
TOKENIZER_FLAG = "rlctx eval --checkpoint DIR (a checkpoint holds its tokenizer) or rlctx train ... tokenizer=DIR"


def not_found_message(kind: str, name: str, flag: str, exc: BaseException | None = None) -> str:
    why = f" ({type(exc).__name__}: {_one_line(exc)})" if exc is not None else ""
    if looks_like_path(name):
        return f"{kind} folder {name!r} does not exist or holds no {kind}{why}; pass a folder saved with save_pretrained: {flag}"
    return (f"{kind} {name!r} not found locally and the hub is unreachable or has no such repo{why}; "
            f"download it where the hub is reachable (huggingface-cli download {name} --local-dir DIR) "
            f"and pass the local folder: {flag}")


def load_model(name_or_path: str | os.PathLike[str], *, dtype: str | torch.dtype = "auto",
               attn_implementation: str = "auto", device: str | None = None,
               local_files_only: bool | None = None, **kwargs: Any) -> PreTrainedModel:
    """Load a causal LM from a local ``save_pretrained`` folder or a hub id, ready for evaluation.

    Released models the study uses: ``infly/OpenCoder-1.5B-Base`` (the paper's), and for comparison
    ``Qwen/Qwen2.5-Coder-1.5B`` and ``deepseek-ai/deepseek-coder-1.3b-base``. The hub cache is tried
    first, so a downloaded model loads offline. Returns the model in eval mode on ``device``.
    """
    from transformers import AutoModelForCausalLM

    device = device or default_device()
    torch_dtype = resolve_dtype(dtype, device)
    attn = resolve_attn(attn_implementation, device, torch_dtype)
    name = str(name_or_path)
    opts = dict(dtype=torch_dtype, attn_implementation=attn, **kwargs)
    if Path(name).expanduser().is_dir():
        try:
            model = AutoModelForCausalLM.from_pretrained(str(Path(name).expanduser()), local_files_only=True, **opts)
        except (OSError, ValueError) as exc:
            raise ModelNotFoundError(not_found_message("model", name, MODEL_FLAG, exc)) from None
    elif looks_like_path(name):
        raise ModelNotFoundError(not_found_message("model", name, MODEL_FLAG))
    else:
        model = None
        last: BaseException | None = None
        tries = [True] if local_files_only else [True, False]
        for local in tries:
            try:
                model = AutoModelForCausalLM.from_pretrained(name, local_files_only=local, **opts)
                break
            except Exception as exc:  # hub errors come in many classes (OSError, HTTP, offline mode)
                last = exc
        if model is None:
            raise ModelNotFoundError(not_found_message("model", name, MODEL_FLAG, last)) from None
    return model.to(device).eval()
