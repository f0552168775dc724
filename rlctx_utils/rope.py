"""Rotary position embeddings (RoPE): the base-frequency change and the scaling variants.

How RoPE encodes position. A head of ``d`` dimensions is split into ``d/2`` pairs; pair ``i``
is rotated by the angle ``p * w_i`` at position ``p``, with inverse frequency
``w_i = theta ** (-2i/d)``. The attention score between a query at ``p`` and a key at ``q`` then
depends on ``p - q`` only through the angles ``(p - q) * w_i``. Fast pairs (small ``i``) turn many
times within a window; slow pairs (large ``i``) turn less than once. A pair whose *wavelength*
``2 pi / w_i`` exceeds the training window never completed a turn in training, so at longer
distances it produces angles the model has never seen: this is why a model trained at 4K with
``theta = 10,000`` fails at 16K (SPEC section 1, finding 2).

The paper's fix is the *adjusted base frequency* (ABF, as in Code Llama): raise ``theta`` from
10,000 to 500,000 and train briefly at the new length. Every wavelength grows (by up to 50x for the
slowest pairs), so the angles reached at 16K with the new base stay close to the range the slow
pairs covered at 4K with the old one; the short training adapts the model to the shifted fast
pairs. The alternatives the paper did not test (it names YaRN as future work) rescale the
frequencies instead of the base:

* ``linear`` (position interpolation): every ``w_i`` divided by ``factor``.
* ``dynamic`` (dynamic NTK): the base is raised as a function of the current sequence length,
  only once it exceeds the training length; no change inside the training window.
* ``yarn``: pairs that turn many times in the original window are left alone, pairs that turn less
  than once are interpolated by ``factor``, with a linear ramp between; plus an attention
  temperature ``0.1 ln(factor) + 1``.
* ``llama3``: the same idea with the boundaries given as wavelengths (Llama 3.1).

:func:`rope_parameters` writes every variant as the ``config.rope_parameters`` dict of the pinned
``transformers`` (5.23), :func:`apply_rope` applies it to a built model (rebuilding its rotary
modules, whose frequencies are computed at construction), and :func:`inv_freq` recomputes the
frequencies independently (numpy, float64) so the figures and the tests can check transformers.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

VARIANTS = ("default", "linear", "dynamic", "yarn", "llama3")
_ALIASES = {"abf": "default", "plain": "default", "ntk": "dynamic", "pi": "linear"}
_EXTRA_KEYS = {
    "default": set(),
    "linear": set(),
    "dynamic": set(),
    "yarn": {"attention_factor", "beta_fast", "beta_slow", "mscale", "mscale_all_dim", "truncate"},
    "llama3": {"low_freq_factor", "high_freq_factor"},
}


class RopeConfigError(ValueError):
    """A RoPE variant or parameter that cannot be used; the message says what to change."""


def _variant(variant: str) -> str:
    v = _ALIASES.get(str(variant).lower(), str(variant).lower())
    if v not in VARIANTS:
        raise RopeConfigError(f"unknown RoPE variant {variant!r}: give one of {list(VARIANTS)} (or 'abf')")
    return v


def rope_parameters(variant: str = "default", theta: float = 10000.0, *, factor: float | None = None,
                    original_max_position_embeddings: int | None = None, **kw: Any) -> dict[str, Any]:
    """The ``config.rope_parameters`` dict for one RoPE variant (transformers 5.23 format).

    ``default`` (alias ``abf``) is plain RoPE with base ``theta``: the paper's method is this with
    ``theta=500000``. ``linear`` and ``dynamic`` need ``factor``; ``yarn`` and ``llama3`` also need
    ``original_max_position_embeddings`` (the training length being extended). Extra keyword
    arguments are the variant's own options (``beta_fast``/``beta_slow``/``attention_factor`` for
    yarn, ``low_freq_factor``/``high_freq_factor`` for llama3).
    """
    v = _variant(variant)
    if not (isinstance(theta, (int, float)) and theta > 1):
        raise RopeConfigError(f"theta must be a number > 1, got {theta!r}")
    out: dict[str, Any] = {"rope_type": v, "rope_theta": float(theta)}
    unknown = set(kw) - _EXTRA_KEYS[v]
    if unknown:
        raise RopeConfigError(f"RoPE variant {v!r} takes no option(s) {sorted(unknown)}; "
                              f"it accepts {sorted(_EXTRA_KEYS[v]) or 'none besides theta/factor'}")
    if v == "default":
        if factor not in (None, 1, 1.0):
            raise RopeConfigError("the default variant takes no factor (raise theta instead, or pick "
                                  "linear/dynamic/yarn/llama3)")
        return out
    if factor is None or not isinstance(factor, (int, float)) or factor < 1:
        raise RopeConfigError(f"RoPE variant {v!r} needs factor >= 1 (new length / training length), "
                              f"got {factor!r}")
    out["factor"] = float(factor)
    if v in ("yarn", "llama3"):
        if original_max_position_embeddings is None:
            raise RopeConfigError(f"RoPE variant {v!r} needs original_max_position_embeddings "
                                  "(the training length being extended)")
        out["original_max_position_embeddings"] = int(original_max_position_embeddings)
    if v == "llama3":
        kw = {"low_freq_factor": 1.0, "high_freq_factor": 4.0, **kw}
        if kw["high_freq_factor"] <= kw["low_freq_factor"]:
            raise RopeConfigError("llama3 needs high_freq_factor > low_freq_factor")
    out.update({k: (float(x) if isinstance(x, int) and not isinstance(x, bool) else x) for k, x in kw.items()})
    return out


def _config_of(model_or_config: Any) -> Any:
    return getattr(model_or_config, "config", model_or_config)


def head_dim_of(config: Any) -> int:
    """Rotary dimension of a transformers config (``head_dim`` or ``hidden_size / heads``)."""
    hd = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    return int(hd * (config.rope_parameters or {}).get("partial_rotary_factor", 1.0))


def apply_rope(model_or_config: Any, variant: str = "default", theta: float | None = None, *,
               factor: float | None = None, original_max_position_embeddings: int | None = None,
               max_position_embeddings: int | None = None, **kw: Any) -> Any:
    """Set a RoPE variant on a config or a built model, in place; returns what it was given.

    ``theta=None`` keeps the current base. For ``yarn``/``llama3`` the training length defaults to
    the config's ``max_position_embeddings`` before the change, and the new nominal length to
    ``factor`` times it. ``max_position_embeddings`` sets
    the config's new nominal length (for ``dynamic`` this length is the reference beyond which the
    base grows, so it must stay the training length). On a model, every rotary-embedding module is
    rebuilt so that the new frequencies take effect (transformers computes them at construction);
    ``save_pretrained`` then records the change and reloading keeps it.
    """
    import torch

    config = _config_of(model_or_config)
    if not hasattr(config, "rope_parameters"):
        raise RopeConfigError(f"{type(config).__name__} has no rope_parameters; is this a RoPE model?")
    current = dict(config.rope_parameters or {})
    if theta is None:
        theta = current.get("rope_theta", getattr(config, "default_theta", 10000.0))
    v = _variant(variant)
    if v == "dynamic" and max_position_embeddings is not None:
        raise RopeConfigError("dynamic NTK scales beyond config.max_position_embeddings, which must stay "
                              "the training length; pass factor only")
    if v in ("yarn", "llama3") and original_max_position_embeddings is None:
        original_max_position_embeddings = int(config.max_position_embeddings)
    params = rope_parameters(v, theta, factor=factor,
                             original_max_position_embeddings=original_max_position_embeddings, **kw)
    if "partial_rotary_factor" in current:
        params["partial_rotary_factor"] = current["partial_rotary_factor"]
    config.rope_parameters = params
    if v in ("yarn", "llama3") and max_position_embeddings is None:
        max_position_embeddings = int(round(original_max_position_embeddings * params["factor"]))
    if max_position_embeddings is not None:
        config.max_position_embeddings = int(max_position_embeddings)
    config.validate_rope()

    if model_or_config is not config and isinstance(model_or_config, torch.nn.Module):
        _rebuild_rotary(model_or_config)
    return model_or_config


def _rebuild_rotary(model: Any) -> int:
    """Replace every ``*RotaryEmbedding`` module by a fresh one built from the current config."""
    targets = [(name, mod) for name, mod in model.named_modules()
               if type(mod).__name__.endswith("RotaryEmbedding") and hasattr(mod, "inv_freq")]
    if not targets:
        raise RopeConfigError(f"{type(model).__name__} has no rotary embedding module to rebuild")
    for name, mod in targets:
        new = type(mod)(config=mod.config).to(mod.inv_freq.device)
        parent = model.get_submodule(name.rsplit(".", 1)[0]) if "." in name else model
        setattr(parent, name.rsplit(".", 1)[-1], new)
    return len(targets)


def model_inv_freq(model: Any) -> np.ndarray:
    """The inverse frequencies a built model actually uses (its first rotary module's buffer)."""
    for _, mod in model.named_modules():
        if type(mod).__name__.endswith("RotaryEmbedding") and hasattr(mod, "inv_freq"):
            return mod.inv_freq.detach().float().cpu().numpy().astype(np.float64)
    raise RopeConfigError(f"{type(model).__name__} has no rotary embedding module")


# --------------------------------------------------------------------------------------------
# Independent (numpy, float64) computation of the frequencies of every variant.


def _default_inv_freq(theta: float, dim: int) -> np.ndarray:
    return theta ** (-np.arange(0, dim, 2, dtype=np.float64) / dim)


def inv_freq(config_or_params: Any, head_dim: int | None = None, *, seq_len: int | None = None,
             max_position_embeddings: int | None = None, as_torch: bool = False) -> Any:
    """Inverse frequency ``w_i`` of each rotary pair ``i = 0 .. head_dim/2 - 1`` (radians/token).

    ``config_or_params`` is a transformers config, a model, or a :func:`rope_parameters` dict (then
    ``head_dim`` is required). ``dynamic`` depends on the current length: ``seq_len`` (default: the
    reference length, where it equals plain RoPE) and ``max_position_embeddings`` (the reference;
    taken from the config when one is given).
    """
    config = _config_of(config_or_params)
    if isinstance(config, dict):
        params = config
        if head_dim is None:
            raise RopeConfigError("head_dim is needed when giving a rope_parameters dict")
    else:
        params = dict(config.rope_parameters or {})
        head_dim = head_dim or head_dim_of(config)
        max_position_embeddings = max_position_embeddings or getattr(config, "max_position_embeddings", None)
    v = _variant(params.get("rope_type", "default"))
    theta = float(params.get("rope_theta", 10000.0))
    dim = int(head_dim)
    base = _default_inv_freq(theta, dim)
    if v == "default":
        out = base
    elif v == "linear":
        out = base / params["factor"]
    elif v == "dynamic":
        ref = max_position_embeddings
        if ref is None:
            raise RopeConfigError("dynamic RoPE needs max_position_embeddings (the training length)")
        L = max(seq_len or ref, ref)
        f = params["factor"]
        new_theta = theta * ((f * L / ref) - (f - 1)) ** (dim / (dim - 2))
        out = _default_inv_freq(new_theta, dim)
    elif v == "yarn":
        out = _yarn_inv_freq(params, theta, dim)
    else:  # llama3
        out = _llama3_inv_freq(params, base)
    if as_torch:
        import torch

        return torch.from_numpy(out.copy())
    return out


def _yarn_inv_freq(params: dict[str, Any], theta: float, dim: int) -> np.ndarray:
    """YaRN ("NTK-by-parts"): keep pairs that turn more than ``beta_fast`` times in the original
    window, interpolate by ``factor`` those that turn fewer than ``beta_slow`` times, ramp linearly
    (over pair indices) in between."""
    f = params["factor"]
    L = params["original_max_position_embeddings"]
    beta_fast = params.get("beta_fast") or 32
    beta_slow = params.get("beta_slow") or 1

    def pair_index_with(rotations: float) -> float:
        # index i at which L * w_i / (2 pi) == rotations, solved for i (as a fraction of dim)
        return dim * math.log(L / (rotations * 2 * math.pi)) / (2 * math.log(theta))

    lo, hi = pair_index_with(beta_fast), pair_index_with(beta_slow)
    if params.get("truncate", True):
        lo, hi = math.floor(lo), math.ceil(hi)
    lo, hi = max(lo, 0), min(hi, dim - 1)
    if lo == hi:
        hi += 0.001
    ramp = np.clip((np.arange(dim // 2, dtype=np.float64) - lo) / (hi - lo), 0.0, 1.0)
    base = _default_inv_freq(theta, dim)
    return base * (1 - ramp) + (base / f) * ramp


def _llama3_inv_freq(params: dict[str, Any], base: np.ndarray) -> np.ndarray:
    """Llama 3.1: keep wavelengths below ``L/high_freq_factor``, divide by ``factor`` those above
    ``L/low_freq_factor``, interpolate smoothly in between."""
    f = params["factor"]
    L = params["original_max_position_embeddings"]
    lo_f, hi_f = params.get("low_freq_factor", 1.0), params.get("high_freq_factor", 4.0)
    wl = 2 * math.pi / base
    smooth = (L / wl - lo_f) / (hi_f - lo_f)
    mid = (1 - smooth) * base / f + smooth * base
    out = np.where(wl > L / lo_f, base / f, base)
    return np.where((wl >= L / hi_f) & (wl <= L / lo_f), mid, out)


def attention_factor(params: dict[str, Any]) -> float:
    """The factor YaRN multiplies cos/sin by (``0.1 ln(factor) + 1``); 1 for the other variants."""
    if _variant(params.get("rope_type", "default")) != "yarn":
        return 1.0
    if params.get("attention_factor") is not None:
        return float(params["attention_factor"])
    f = params["factor"]

    def m(scale: float, ms: float = 1.0) -> float:
        return 1.0 if scale <= 1 else 0.1 * ms * math.log(scale) + 1.0

    if params.get("mscale") and params.get("mscale_all_dim"):
        return m(f, params["mscale"]) / m(f, params["mscale_all_dim"])
    return m(f)


def wavelengths(config_or_params: Any, head_dim: int | None = None, **kw: Any) -> np.ndarray:
    """Wavelength ``2 pi / w_i`` of each rotary pair, in tokens: the distance of one full turn."""
    return 2 * math.pi / inv_freq(config_or_params, head_dim, **kw)


def dims_full_rotation(theta: float, head_dim: int, window: int) -> int:
    """How many of the ``head_dim`` dimensions complete at least one full turn within ``window``.

    Counted in dimensions (each rotating pair counts twice), so the result lies in
    ``0 .. head_dim``: with ``theta = 10,000`` and ``head_dim = 128``, 92 of 128 dimensions turn
    fully within 4,096 tokens; the other 36 only ever saw part of a turn in training.
    """
    wl = wavelengths({"rope_type": "default", "rope_theta": theta}, head_dim)
    return int(2 * np.count_nonzero(wl <= window))


def rotation_angles(theta: float, head_dim: int, positions: Sequence[int] | np.ndarray,
                    pairs: Iterable[int]) -> np.ndarray:
    """Angle in radians (unwrapped) of each rotary pair in ``pairs`` at each position: shape (pairs, positions)."""
    w = _default_inv_freq(theta, head_dim)
    pos = np.asarray(positions, dtype=np.float64)
    return np.stack([pos * w[i] for i in pairs])


# --------------------------------------------------------------------------------------------
# Empirical: loss at each position of held-out files.


def loss_by_position(model: Any, tokenizer: Any, texts: Iterable[str], max_len: int, *,
                     max_docs: int = 64, pack: bool = False, device: str | None = None,
                     batch_size: int = 1) -> dict[str, np.ndarray]:
    """Mean next-token loss at each position ``1 .. max_len - 1`` over held-out documents.

    With ``pack=False`` only documents of at least ``max_len`` tokens are used (each from its
    start), so position ``p`` really is ``p`` tokens into one file; with ``pack=True`` documents
    are concatenated (separated by the end-of-text token) and cut into windows. The curve shows how
    well a model uses positions beyond its training length: it rises there when RoPE cannot
    extrapolate. Returns ``position``, ``loss`` (mean nats), ``count`` (windows per position).
    """
    eos = tokenizer.eos_token_id
    windows: list[list[int]] = []
    if pack:
        stream: list[int] = []
        for t in texts:
            stream.extend(tokenizer(t, add_special_tokens=False).input_ids)
            if eos is not None:
                stream.append(eos)
            while len(stream) >= max_len and len(windows) < max_docs:
                windows.append(stream[:max_len])
                stream = stream[max_len:]
            if len(windows) >= max_docs:
                break
    else:
        for t in texts:
            ids = tokenizer(t, add_special_tokens=False).input_ids
            if len(ids) >= max_len:
                windows.append(ids[:max_len])
                if len(windows) >= max_docs:
                    break
    if not windows:
        raise RopeConfigError(f"no held-out document has {max_len} tokens; pass longer texts or pack=True")
    return mean_loss_by_position(model, windows, batch_size=batch_size, device=device)


def mean_loss_by_position(model: Any, windows: Sequence[Sequence[int]], *, batch_size: int = 1,
                          device: str | None = None, progress: bool = False,
                          desc: str = "loss by position") -> dict[str, np.ndarray]:
    """Mean next-token loss at each position ``1 .. n - 1`` over token windows of any lengths.

    Windows of equal length are batched together; each position averages over the windows that
    reach it. Returns ``position``, ``loss`` (mean nats) and ``count`` (windows per position), for
    the positions some window reaches.
    """
    import torch
    from tqdm.auto import tqdm

    device = device or next(model.parameters()).device
    n = max(len(w) for w in windows)
    total, count = np.zeros(n - 1, dtype=np.float64), np.zeros(n - 1, dtype=np.int64)
    by_len: dict[int, list[Sequence[int]]] = {}
    for w in windows:
        if len(w) >= 2:
            by_len.setdefault(len(w), []).append(w)
    batches = [(k, g[i:i + batch_size]) for k, g in by_len.items() for i in range(0, len(g), batch_size)]
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for k, batch in tqdm(batches, desc=desc, unit="batch", disable=not progress):
            x = torch.tensor([list(w) for w in batch], device=device)
            logits = model(input_ids=x).logits.float()
            nll = torch.nn.functional.cross_entropy(
                logits[:, :-1].reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1), reduction="none")
            total[: k - 1] += nll.view(x.shape[0], -1).sum(0).double().cpu().numpy()
            count[: k - 1] += x.shape[0]
    model.train(was_training)
    keep = count > 0
    return {"position": np.arange(1, n)[keep], "loss": total[keep] / count[keep], "count": count[keep]}
