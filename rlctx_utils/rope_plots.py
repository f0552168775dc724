"""Figures that explain RoPE and the base-frequency change (notebook ``02_rope_scaling``).

Each function returns a matplotlib figure; :func:`rlctx_utils.plots.save_figure` writes it as PNG
and PDF. The analytic figures need only :mod:`rlctx_utils.rope`; the empirical ones need a trained
base checkpoint (:func:`empirical_curves`) or the stored held-out curves of
:mod:`rlctx_utils.evaluation.positions` (:func:`positions_figure`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import FixedLocator, FuncFormatter  # noqa: E402

from . import rope  # noqa: E402
from .models import PRESETS  # noqa: E402
from .paths import results_dir  # noqa: E402

#: OpenCoder-1.5B: 2,240 / 14 heads = 160 dimensions per head, trained at 4K, extended to 16K.
PAPER_HEAD_DIM = 160
PAPER_BASE, PAPER_EXTENDED = 4096, 16384
THETA_OLD, THETA_NEW = 10_000.0, 500_000.0
C_OLD, C_NEW = "#0072B2", "#D55E00"  # the paper's File-level blue and Path Distance vermillion
VARIANT_COLORS = {"theta 10k": "#000000", "ABF theta 500k": C_NEW, "linear": "#009E73",
                  "dynamic NTK": "#CC79A7", "YaRN": "#0072B2", "llama3": "#E69F00"}


def fmt_tokens(n: float) -> str:
    """4096 -> '4K', 16384 -> '16K', 512 -> '512'."""
    n = int(n)
    return f"{n // 1024}K" if n >= 1024 and n % 1024 == 0 else f"{n:,}"


def head_dim_of_preset(preset: str) -> int:
    p = PRESETS[preset]
    return p["hidden_size"] // p["num_attention_heads"]


def _windows(ax: plt.Axes, windows: dict[str, float], *, axis: str = "y") -> None:
    styles = ["--", ":", "-.", (0, (5, 1, 1, 1))]
    for (label, w), ls in zip(windows.items(), styles):
        line = ax.axhline if axis == "y" else ax.axvline
        line(w, color="0.35", ls=ls, lw=1.1)
        if axis == "y":
            ax.annotate(label, (1.0, w), xycoords=("axes fraction", "data"), xytext=(3, 0),
                        textcoords="offset points", va="center", fontsize=8.5, color="0.25")


def wavelength_figure(profile_head_dim: int, base_length: int, extended_length: int,
                      profile: str) -> plt.Figure:
    """Wavelength of every rotary pair for theta 10k and 500k, against the training windows.

    Left: the paper's model (head dim 160, windows 4K and 16K). Right: this profile's model.
    """
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    panels = [(axes[0], PAPER_HEAD_DIM, PAPER_BASE, PAPER_EXTENDED, "OpenCoder-1.5B (paper)"),
              (axes[1], profile_head_dim, base_length, extended_length, f"profile '{profile}' model")]
    for ax, hd, b, e, title in panels:
        i = np.arange(hd // 2)
        for theta, c, m in ((THETA_OLD, C_OLD, "o"), (THETA_NEW, C_NEW, "s")):
            wl = rope.wavelengths({"rope_type": "default", "rope_theta": theta}, hd)
            n_b = rope.dims_full_rotation(theta, hd, b) // 2
            n_e = rope.dims_full_rotation(theta, hd, e) // 2
            ax.plot(i, wl, marker=m, ms=3 if hd > 40 else 4, lw=1.3, color=c,
                    label=f"theta = {theta:,.0f}: {n_b}/{hd // 2} pairs turn fully in {fmt_tokens(b)}, "
                          f"{n_e} in {fmt_tokens(e)}")
        _windows(ax, {f"{fmt_tokens(b)} (train)": b, f"{fmt_tokens(e)} (extended)": e})
        ax.set_yscale("log")
        ax.set_xlabel(f"rotary pair index i (dimensions 2i, 2i+1 of {hd})")
        ax.set_ylabel("wavelength 2π/ω_i (tokens, log scale)")
        ax.set_title(f"{title}: head dim {hd}", fontsize=10)
        ax.legend(loc="lower right", fontsize=8)
    fig.suptitle("RoPE wavelengths: pairs above a window line never complete a turn inside it", fontsize=11)
    fig.tight_layout()
    return fig


def scaling_variants(base_length: int = PAPER_BASE, extended_length: int = PAPER_EXTENDED,
                     theta: float = THETA_OLD) -> dict[str, dict[str, Any]]:
    """``rope_parameters`` of each variant that extends ``base_length`` to ``extended_length``."""
    f = extended_length / base_length
    o = base_length
    return {
        "theta 10k": rope.rope_parameters("default", theta),
        "ABF theta 500k": rope.rope_parameters("default", THETA_NEW),
        "linear": rope.rope_parameters("linear", theta, factor=f),
        "dynamic NTK": rope.rope_parameters("dynamic", theta, factor=f),
        "YaRN": rope.rope_parameters("yarn", theta, factor=f, original_max_position_embeddings=o),
        "llama3": rope.rope_parameters("llama3", theta, factor=f, original_max_position_embeddings=o),
    }


def variants_figure(head_dim: int = PAPER_HEAD_DIM, base_length: int = PAPER_BASE,
                    extended_length: int = PAPER_EXTENDED, title: str = "OpenCoder-1.5B") -> plt.Figure:
    """Wavelengths under each scaling variant, and how much each stretches every pair."""
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    i = np.arange(head_dim // 2)
    ref = rope.wavelengths(rope.rope_parameters("default", THETA_OLD), head_dim)
    f = extended_length / base_length
    for name, params in scaling_variants(base_length, extended_length).items():
        wl = rope.wavelengths(params, head_dim, seq_len=extended_length, max_position_embeddings=base_length)
        ls = "-" if name in ("theta 10k", "ABF theta 500k") else "--"
        lw = 2.2 if name == "ABF theta 500k" else 1.4
        label = name if name in ("theta 10k", "ABF theta 500k") else f"{name} ×{f:g}"
        ax.plot(i, wl, ls=ls, lw=lw, color=VARIANT_COLORS[name], label=label)
        ax2.plot(i, wl / ref, ls=ls, lw=lw, color=VARIANT_COLORS[name], label=label)
    _windows(ax, {f"{fmt_tokens(base_length)} (train)": base_length,
                  f"{fmt_tokens(extended_length)} (extended)": extended_length})
    ax.set_yscale("log")
    ax.set_ylabel("wavelength (tokens, log scale)")
    ax.set_title(f"{title}: wavelengths when extending {fmt_tokens(base_length)} → "
                 f"{fmt_tokens(extended_length)}", fontsize=10)
    ax2.set_yscale("log")
    ax2.axhline(f, color="0.35", ls=":", lw=1)
    ticks = [1, 2, 4, 10, 20, 50]
    ax2.yaxis.set_major_locator(FixedLocator(ticks))
    ax2.yaxis.set_major_formatter(FuncFormatter(lambda y, _: f"×{y:g}"))
    ax2.yaxis.set_minor_formatter(FuncFormatter(lambda y, _: ""))
    ax2.set_ylabel("wavelength / wavelength at theta 10k (log)")
    ax2.set_title("stretch of each pair (dynamic NTK shown at the extended length)", fontsize=10)
    for a in (ax, ax2):
        a.set_xlabel(f"rotary pair index i (head dim {head_dim})")
    ax2.legend(loc="upper left", fontsize=8)
    fig.suptitle("Scaling variants: ABF stretches slow pairs most, YaRN/llama3 only those slower than the window",
                 fontsize=11)
    fig.tight_layout()
    return fig


def rotation_figure(head_dim: int = PAPER_HEAD_DIM, base_length: int = PAPER_BASE,
                    extended_length: int = PAPER_EXTENDED, title: str = "OpenCoder-1.5B") -> plt.Figure:
    """Rotation angle over positions for a few pairs, and turns completed by the end of each window.

    Left: angle (in turns) of four pairs over positions up to the extended window, theta 10k (solid)
    and 500k (dashed); the training window is shaded. Right: turns each pair completes within the
    training window at theta 10k (what the base model saw) versus within the extended window at
    theta 10k and at 500k. Where the 10k/extended curve lies above the 10k/train curve and below
    one turn, the model meets angles it never saw.
    """
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    half = head_dim // 2
    wl10 = rope.wavelengths(rope.rope_parameters("default", THETA_OLD), head_dim)
    # pairs whose wavelength is closest to 1/4, 1, 4 and 16 training windows (at theta 10k)
    pairs = sorted({int(np.argmin(np.abs(np.log(wl10 / (base_length * k))))) for k in (0.25, 1, 4, 16)})
    pos = np.geomspace(1, extended_length, 400)
    colors = plt.cm.viridis(np.linspace(0.0, 0.85, len(pairs)))
    for p, c in zip(pairs, colors):
        for theta, ls in ((THETA_OLD, "-"), (THETA_NEW, "--")):
            ang = rope.rotation_angles(theta, head_dim, pos, [p])[0] / (2 * math.pi)
            ax.plot(pos, ang, ls=ls, color=c, lw=1.5,
                    label=f"pair {p} (λ = {wl10[p]:,.0f} tokens at 10k)" if theta == THETA_OLD else None)
    ax.axvspan(1, base_length, color=C_OLD, alpha=0.08, lw=0)
    ax.axvline(base_length, color="0.35", ls="--", lw=1)
    ax.axhline(1.0, color="0.35", ls=":", lw=1)
    ax.text(base_length, 0.97, f"training window {fmt_tokens(base_length)} ", transform=ax.get_xaxis_transform(),
            fontsize=8, color="0.25", ha="right", va="top")
    ax.annotate("1 full turn", (base_length, 1.0), xytext=(-3, 3), textcoords="offset points", fontsize=8,
                color="0.25", ha="right")
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: fmt_tokens(x) if x >= 1 else ""))
    ax.set_yscale("log")
    ax.set_ylim(1e-5, 1e4)
    ax.set_xlabel("position (tokens, log scale)")
    ax.set_ylabel("rotation angle p·ω_i (full turns, log scale)")
    ax.set_title(f"{title}: angle of four pairs over positions\n(solid theta 10k, dashed 500k)", fontsize=10)
    ax.legend(loc="upper left", fontsize=8)

    i = np.arange(half)
    w10 = rope.inv_freq(rope.rope_parameters("default", THETA_OLD), head_dim) / (2 * math.pi)
    w500 = rope.inv_freq(rope.rope_parameters("default", THETA_NEW), head_dim) / (2 * math.pi)
    ax2.plot(i, w10 * base_length, color=C_OLD, lw=2, label=f"theta 10k within {fmt_tokens(base_length)} (seen in training)")
    ax2.plot(i, w10 * extended_length, color=C_OLD, ls="--", lw=1.5,
             label=f"theta 10k within {fmt_tokens(extended_length)}")
    ax2.plot(i, w500 * extended_length, color=C_NEW, lw=2, label=f"theta 500k within {fmt_tokens(extended_length)}")
    unseen = (w10 * extended_length > w10 * base_length) & (w10 * base_length < 1)
    if unseen.any():
        ax2.fill_between(i, w10 * base_length, np.minimum(w10 * extended_length, 1.0), where=unseen,
                         color=C_OLD, alpha=0.15, lw=0, label="angles never seen in training (theta 10k)")
    ax2.axhline(1.0, color="0.35", ls=":", lw=1)
    ax2.annotate("1 full turn", (0.0, 1.0), xytext=(2, 3), textcoords="offset points", fontsize=8, color="0.25")
    ax2.set_yscale("log")
    ax2.set_xlabel(f"rotary pair index i (head dim {head_dim})")
    ax2.set_ylabel("turns completed within the window (log)")
    ax2.set_title(f"turns per pair: for every slow pair, 500k at {fmt_tokens(extended_length)} "
                  f"stays below\nwhat 10k reached at {fmt_tokens(base_length)}, i.e. within angles seen in training",
                  fontsize=10)
    ax2.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------------------------ empirical


def find_checkpoint(profile: str, given: str | None, candidates: tuple[str, ...]) -> Path | None:
    """``given`` if it is a folder; for ``"auto"`` the first existing ``runs/<pattern>/checkpoints/final``;
    None for ``""``/``"none"`` or a missing folder."""
    if given is None or str(given).strip().lower() in ("", "none"):
        return None
    if given != "auto":
        p = Path(given)
        return p if p.is_dir() else None
    runs = results_dir(profile) / "runs"
    for pattern in candidates:
        for d in sorted(runs.glob(pattern)):
            ck = d / "checkpoints" / "final"
            if (ck / "config.json").exists():
                return ck
    return None


def empirical_curves(base_checkpoint: Path, extended_checkpoint: Path | None, texts: list[str],
                     base_length: int, max_len: int, *, max_docs: int = 16,
                     theta_new: float = THETA_NEW) -> dict[str, dict[str, np.ndarray]]:
    """Loss by position beyond the training length: base, base with theta raised, extended model."""
    from .models import load_model
    from .tokenizer import load_tokenizer

    tok = load_tokenizer(base_checkpoint)
    curves: dict[str, dict[str, np.ndarray]] = {}
    model = load_model(base_checkpoint, device="cpu")
    theta0 = model.config.rope_parameters["rope_theta"]
    curves[f"base, theta {theta0:,.0f} (trained at {fmt_tokens(base_length)})"] = rope.loss_by_position(
        model, tok, texts, max_len, max_docs=max_docs)
    rope.apply_rope(model, theta=theta_new)
    curves[f"base, theta raised to {theta_new:,.0f}, no training"] = rope.loss_by_position(
        model, tok, texts, max_len, max_docs=max_docs)
    if extended_checkpoint is not None:
        ext = load_model(extended_checkpoint, device="cpu")
        th = ext.config.rope_parameters["rope_theta"]
        curves[f"after extension training, theta {th:,.0f}"] = rope.loss_by_position(
            ext, load_tokenizer(extended_checkpoint), texts, max_len, max_docs=max_docs)
    return curves


def smooth(y: np.ndarray, window: int) -> np.ndarray:
    """Centered moving average (edges use the available points)."""
    if window <= 1:
        return y
    k = np.ones(window)
    return np.convolve(y, k, mode="same") / np.convolve(np.ones_like(y), k, mode="same")


def loss_by_position_figure(curves: dict[str, dict[str, np.ndarray]], base_length: int,
                            extended_length: int, *, note: str = "") -> plt.Figure:
    fig, ax = plt.subplots(figsize=(8, 4.3))
    colors = [C_OLD, "#999999", C_NEW, "#009E73"]
    for (name, c), col in zip(curves.items(), colors):
        w = max(1, len(c["loss"]) // 64)
        ax.plot(c["position"], smooth(c["loss"], w), color=col, lw=1.8,
                label=f"{name} ({int(c['count'][0])} files)")
    ymax = max(float(np.percentile(c["loss"], 99)) for c in curves.values())
    ax.axvline(base_length, color="0.35", ls="--", lw=1)
    ax.text(base_length, 0.98, f" base training length {fmt_tokens(base_length)}", transform=ax.get_xaxis_transform(),
            fontsize=8, va="top", color="0.25")
    if extended_length != base_length:
        ax.axvline(extended_length, color="0.35", ls=":", lw=1)
        ax.text(extended_length, 0.90, f" extended {fmt_tokens(extended_length)}", transform=ax.get_xaxis_transform(),
                fontsize=8, va="top", color="0.25")
    ax.set_xscale("log", base=2)
    ax.set_ylim(None, ymax * 1.05)
    ax.set_xlabel("position in the file (tokens, log scale)")
    ax.set_ylabel("next-token loss (nats, moving average)")
    ax.set_title("Loss by position on held-out files, beyond the training length" + (f"\n{note}" if note else ""),
                 fontsize=10)
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    return fig


#: How the held-out loss-by-position figure draws each kind of run: (label, colour, line style).
def _position_style(rec: dict[str, Any]) -> tuple[str, str, str]:
    from .names import COLORS, COMPOSER_LABELS

    composer, theta, loss = rec.get("composer"), float(rec.get("theta") or 0), rec.get("loss_type")
    untrained = str(rec.get("run_id", "")).endswith("untrained")
    if composer is None or untrained:
        label = "base model" + (", θ raised to 500k, no training" if untrained else f", θ {theta:,.0f}")
        return label, ("#999999" if untrained else "#000000"), (":" if untrained else "-")
    label = COMPOSER_LABELS.get(composer, composer)
    if rec.get("mode") not in (None, "original"):
        label += f" ({rec['mode']})"
    label += f", θ {theta / 1000:g}k, {loss} loss, trained at {fmt_tokens(int(rec.get('train_length') or 0))}"
    ls = "--" if (loss == "full" and composer != "file_level") or theta < THETA_NEW else "-"
    return label, COLORS.get(composer, "#444444"), ls


def log_bins(positions: np.ndarray, loss: np.ndarray, count: np.ndarray, per_octave: int = 4):
    """Count-weighted mean loss in log-spaced position bins (``per_octave`` bins per doubling):
    the curve a log axis can show without the noise of single positions."""
    edges = np.unique(np.round(2 ** np.arange(0, np.log2(positions.max()) + 1 / per_octave, 1 / per_octave)))
    edges = np.append(edges, positions.max() + 1)
    xs, ys = [], []
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (positions >= lo) & (positions < hi)
        if m.any():
            xs.append(float(np.sqrt(lo * (hi - 1)) if hi - 1 > lo else lo))
            ys.append(float(np.average(loss[m], weights=count[m])))
    return np.array(xs), np.array(ys)


def positions_figure(curves: Any, base_length: int, extended_length: int, run_ids: list[str], *,
                     note: str = "", per_octave: int = 2, start: int = 16) -> plt.Figure:
    """Next-token loss by position on the held-out benchmark, one curve per run (stored curves of
    :mod:`rlctx_utils.evaluation.positions`, averaged in log-spaced bins from ``start``). Top: the
    loss; bottom: its difference to the first run (the base model), which removes what every model
    shares (the same text at the same positions) and leaves what the RoPE base and training change."""
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(8.5, 7.2), sharex=True, gridspec_kw={"height_ratios": [1.2, 1]})
    ref = None
    for rid in run_ids:
        c = curves[(curves["run_id"] == rid) & (curves["position"] >= start)].sort_values("position")
        if c.empty:
            continue
        rec = {**c.iloc[0].to_dict(), "run_id": rid}
        rec = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in rec.items()}
        label, color, ls = _position_style(rec)
        x, y = log_bins(c["position"].to_numpy(), c["loss"].to_numpy(), c["count"].to_numpy(), per_octave)
        ax.plot(x, y, color=color, ls=ls, lw=1.6, marker="o", ms=3, label=label)
        if ref is None:
            ref = (label, y)
        ax2.plot(x, y - ref[1], color=color, ls=ls, lw=1.6, marker="o", ms=3)
    for a in (ax, ax2):
        for xv, style in ((base_length, "--"), (extended_length, ":")):
            a.axvline(xv, color="0.35", ls=style, lw=1)
    for xv, txt, yy in ((base_length, f" base length {fmt_tokens(base_length)}", 0.98),
                        (extended_length, f" extended {fmt_tokens(extended_length)}", 0.90)):
        ax.text(xv, yy, txt, transform=ax.get_xaxis_transform(), fontsize=8, va="top", color="0.25")
    ax2.axhline(0, color="0.3", lw=0.8)
    ax2.set_xscale("log", base=2)
    ax2.set_xlabel("position in the sequence (tokens, log scale): Path Distance context, then the completion file")
    ax.set_ylabel(f"next-token loss (nats; {per_octave} bins per doubling)")
    ax2.set_ylabel(f"difference to {ref[0] if ref else 'the first run'} (nats)", fontsize=8.5)
    ax.set_title("Loss by position on the held-out benchmark" + (f"\n{note}" if note else ""), fontsize=10)
    ax.legend(loc="upper left", fontsize=7.5)
    fig.tight_layout()
    return fig
