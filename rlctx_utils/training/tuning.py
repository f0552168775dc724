"""The stage-A tuning sweep: which base-training recipe gives a toy model that reads its context.

A from-scratch model on a 2-core CPU gets minutes, not the billions of tokens after which induction
heads appear in natural-language models. The sweep compares recipes at **equal wall time** and
judges them on the **validation split only** (the benchmark stays the test set):

* ``val_loss``: mean next-token loss over seeded starts of validation-repository files at the
  training length;
* ``copy_code`` / ``copy_random``: loss on the second copy of a repeated validation code chunk (or
  random-token sequence) minus on the first (negative = the model copies: induction heads);
* ``val_within_file``: loss at positions [32, 64) minus [256, 512) of those files.

A profile's ``[tuning]`` section lists the variants; each one is an ordinary stage-A run (the
study's own :func:`~rlctx_utils.training.loop.train`, nothing re-implemented) of ``[base_training]``
with a few keys changed::

    [tuning]
    budget_minutes = 8          # quiet-machine wall time every variant gets
    measure_every = 25          # steps between probe scores (metrics.csv columns)
    throughput = "results/bench/models.csv"
    validation = "results/cpu/data"   # whose validation split judges every variant (default: the profile's)
    [tuning.profile]            # optional: profile keys as the sweep saw them (see frozen_profile)
    base_length = 512
    [[tuning.variants]]
    name = "reference"          # today's recipe
    [[tuning.variants]]
    name = "lr3e-3-4k"
    lr = 3e-3
    sequences_per_step = 8
    model = {hidden_size = 192, num_hidden_layers = 4, num_attention_heads = 6}   # optional
    vocab_size = 4096                                                             # optional
    budget_minutes = 12                                                           # optional: its own budget

Equal wall time without timing a shared machine: a variant's step count is ``budget x tokens/s /
tokens per step``, with tokens/s the quiet-machine training speed of its model shape, vocabulary
and length from the committed speed benchmark (``bench/bench_models.py`` -> ``results/bench/
models.csv``; the nearest measured shape when its own is missing). So the sweep is deterministic
(same config, same steps, same losses) and its x axis is "minutes on a quiet 2-core machine".

Outputs in ``results/<profile>/tuning/``: ``runs/<name>/`` (the runs' logs; checkpoints ignored by
git), ``variants.csv`` (one row per variant: what it changes, speed, steps, tokens) and
``curves.csv`` (tidy: variant, step, tokens, minutes, measure, value), read by notebook 04.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import pandas as pd

from ..config import ConfigError
from ..io import atomic_path, repo_relative
from ..paths import REPO_ROOT, results_dir
from .runs import resolve_run

#: Probe columns of metrics.csv that the sweep reads (see rlctx_utils.evaluation.incontext).
MEASURES = ("val_loss", "copy_code", "copy_random", "val_within_file")
#: Keys of a variant that are not [base_training] keys.
VARIANT_KEYS = ("name", "model", "vocab_size", "note", "budget_minutes")


def tuning_dir(profile: str, results_root: str | Path | None = None) -> Path:
    return Path(results_root or results_dir(profile)) / "tuning"


def _section(cfg: dict[str, Any]) -> dict[str, Any]:
    sec = cfg.get("tuning")
    if not isinstance(sec, dict) or not sec.get("variants"):
        raise ConfigError(f"profile {cfg.get('profile')!r} has no [[tuning.variants]]: add some (see "
                          "rlctx_utils/training/tuning.py)")
    names = [v.get("name") for v in sec["variants"]]
    if any(not n for n in names) or len(set(names)) != len(names):
        raise ConfigError(f"every [[tuning.variants]] needs a unique name, got {names}")
    return sec


def model_shape(cfg: dict[str, Any], variant: dict[str, Any]) -> dict[str, int]:
    """hidden_size, layers, heads and vocabulary of a variant (its own or the profile's)."""
    from ..models import PRESETS

    model = variant.get("model") or (cfg.get("model") or {}).get("preset", "cpu")
    kw = dict(PRESETS[model]) if isinstance(model, str) else {**PRESETS[(cfg.get("model") or {}).get("preset", "cpu")],
                                                             **model}
    vocab = int(variant.get("vocab_size") or (cfg.get("tokenizer") or {}).get("vocab_size", 8192))
    return {"hidden_size": int(kw["hidden_size"]), "layers": int(kw["num_hidden_layers"]),
            "heads": int(kw["num_attention_heads"]), "vocab_size": vocab}


def quiet_throughput(shape: dict[str, int], seq_len: int, table: str | Path) -> tuple[float, str]:
    """Quiet-machine training tokens/s of a shape from the speed benchmark, and which row gave it.

    The row with the same width, depth, vocabulary and the nearest length; a width between two
    measured ones (same depth and vocabulary) interpolates geometrically; else the nearest row by
    relative distance in width, depth and vocabulary, scaled by the ratio of compute per token
    (``12 L d^2 + 2 d V``: attention and MLP plus the output layer), which is what dominates here.
    """
    t = pd.read_csv(table)
    exact = t[(t.hidden_size == shape["hidden_size"]) & (t.layers == shape["layers"])
              & (t.vocab_size == shape["vocab_size"])]
    if not exact.empty:
        row = exact.iloc[(exact.seq_len - seq_len).abs().argsort().iloc[0]]
        return float(row.tokens_per_s_median), f"{row['shape']} V{int(row.vocab_size)} L{int(row.seq_len)}"

    same = t[(t.layers == shape["layers"]) & (t.vocab_size == shape["vocab_size"])]
    if not same.empty:
        same = same[same.seq_len == same.seq_len.iloc[(same.seq_len - seq_len).abs().argsort().iloc[0]]]
        lo, hi = same[same.hidden_size < shape["hidden_size"]], same[same.hidden_size > shape["hidden_size"]]
        if not lo.empty and not hi.empty:  # between two measured widths: geometric interpolation in width
            a = lo.loc[lo.hidden_size.idxmax()]
            b = hi.loc[hi.hidden_size.idxmin()]
            w = math.log(shape["hidden_size"] / a.hidden_size) / math.log(b.hidden_size / a.hidden_size)
            tps = math.exp((1 - w) * math.log(a.tokens_per_s_median) + w * math.log(b.tokens_per_s_median))
            return tps, f"between {a['shape']} and {b['shape']} V{shape['vocab_size']} L{int(a.seq_len)} (geometric in width)"

    def cost(d: float, layers: float, v: float) -> float:
        return 12 * layers * d * d + 2 * d * v

    t = t.assign(dist=(t.hidden_size / shape["hidden_size"]).apply(math.log).abs()
                 + (t.layers / shape["layers"]).apply(math.log).abs()
                 + (t.vocab_size / shape["vocab_size"]).apply(math.log).abs()
                 + (t.seq_len / seq_len).apply(math.log).abs())
    row = t.sort_values("dist").iloc[0]
    scale = cost(row.hidden_size, row.layers, row.vocab_size) / cost(shape["hidden_size"], shape["layers"],
                                                                      shape["vocab_size"])
    return (float(row.tokens_per_s_median) * scale,
            f"{row['shape']} V{int(row.vocab_size)} L{int(row.seq_len)} x{scale:.2f} (compute per token)")


def variant_run(cfg: dict[str, Any], variant: dict[str, Any], *, out_root: Path) -> dict[str, Any]:
    """The resolved stage-A run of one variant, with its step count set by the wall-time budget."""
    sec = _section(cfg)
    v = dict(variant)
    c = frozen_profile(cfg)
    base = c["base_training"]
    unknown = sorted(set(v) - set(VARIANT_KEYS) - set(base) - _optional_training_keys())
    if unknown:
        raise ConfigError(f"tuning variant {v['name']!r}: unknown keys {unknown}")
    base.update({k: val for k, val in v.items() if k not in VARIANT_KEYS})
    if v.get("model"):
        c["model"] = {"preset": v["model"]}
    if v.get("vocab_size"):
        vocab = int(v["vocab_size"])
        c["tokenizer"] = {**(c.get("tokenizer") or {}), "vocab_size": vocab, "path": None}
        base["tokenizer"] = repo_relative(out_root / f"tokenizer-{vocab}")
    elif base.get("tokenizer", "auto") == "auto" and not (c.get("tokenizer") or {}).get("path"):
        # the study's tokenizer, not out_root's; repository-relative so the run's identity is the
        # same on every clone
        base["tokenizer"] = repo_relative(results_dir(cfg["profile"]) / "tokenizer")
    shape = model_shape(cfg, v)
    seq_len = int(base["seq_len"])
    table = Path(sec.get("throughput", "results/bench/models.csv"))
    tps, source = quiet_throughput(shape, seq_len, table if table.is_absolute() else REPO_ROOT / table)
    per_step = int(base["sequences_per_step"]) * seq_len
    minutes = float(v.get("budget_minutes", sec.get("budget_minutes", 8)))  # a variant may get longer
    steps = max(1, int(minutes * 60 * tps // per_step))
    base.update(stop_step=steps, schedule_steps=steps, save_every=0, keep_checkpoints=1,
                incontext_every=int(sec.get("measure_every", 25)),
                probe_data=str(sec.get("validation") or repo_relative(results_dir(cfg["profile"]) / "data")))
    if int(base.get("warmup_steps", 0)) >= steps:
        base["warmup_steps"] = max(1, steps // 10)
    run = resolve_run(c, "base", run_id=v["name"])
    run["tuning"] = {"tokens_per_s": round(tps, 1), "speed_from": source, "tokens_per_step": per_step,
                     "shape": shape}
    return run


def frozen_profile(cfg: dict[str, Any]) -> dict[str, Any]:
    """The profile as the sweep saw it: every key of ``[tuning.profile]`` (``base_length``, a whole
    ``[data]``, ``[base_training]``, ``[model]`` section ...) *replaces* the profile's. A study that
    changes its regime after the sweep freezes the sweep's own context there, so ``rlctx tune`` keeps
    rerunning (and resuming, and collecting) the very runs it committed."""
    c = copy.deepcopy(cfg)
    c.update(copy.deepcopy((cfg.get("tuning") or {}).get("profile") or {}))
    return c


def _optional_training_keys() -> set[str]:
    from ..config import OPTIONAL_KEYS

    return set(OPTIONAL_KEYS["base_training"])


def variant_table(cfg: dict[str, Any], *, out_root: Path) -> pd.DataFrame:
    """One row per variant: what it changes, its quiet-machine speed, steps and tokens."""
    rows = []
    for v in _section(cfg)["variants"]:
        run = variant_run(cfg, v, out_root=out_root)
        t = run["tuning"]
        changes = "; ".join(f"{k}={v[k]}" for k in v if k not in ("name", "note")) or "(the profile's [base_training])"
        rows.append({"variant": v["name"], "changes": changes, "note": v.get("note", ""),
                     "hidden_size": t["shape"]["hidden_size"], "layers": t["shape"]["layers"],
                     "heads": t["shape"]["heads"], "vocab_size": t["shape"]["vocab_size"],
                     "seq_len": int(run["seq_len"]), "sequences_per_step": int(run["sequences_per_step"]),
                     "lr": float(run["lr"]), "schedule": run.get("schedule", "cosine"),
                     "repeat_fraction": float(run.get("repeat_fraction", 0.0)),
                     "repeat_warmup_steps": int(run.get("repeat_warmup_steps", 0)),
                     "tokens_per_s": t["tokens_per_s"], "speed_from": t["speed_from"],
                     "steps": int(run["stop_step"]), "tokens": int(run["stop_step"]) * t["tokens_per_step"]})
    return pd.DataFrame(rows)


def run_sweep(cfg: dict[str, Any], *, names: list[str] | None = None, results_root: str | Path | None = None,
              progress: bool = True) -> pd.DataFrame:
    """Train every variant (a finished one is skipped, a stopped one resumes) and collect the curves."""
    from .loop import train

    out = tuning_dir(cfg["profile"], results_root)
    for v in _section(cfg)["variants"]:
        if names and v["name"] not in names:
            continue
        run = variant_run(cfg, v, out_root=out)
        print(f"== tuning variant {v['name']}: {run['stop_step']} steps ({run['tuning']['tokens_per_s']:.0f} "
              f"tok/s from {run['tuning']['speed_from']})", flush=True)
        run.pop("tuning")
        _ensure_tokenizer(run, v)
        train(run, out_dir=out, resume=True, progress=progress)
    return collect(cfg, results_root=results_root)


def _ensure_tokenizer(run: dict[str, Any], variant: dict[str, Any]) -> None:
    """A variant with its own vocabulary: train its BPE on the run's corpus once (as the study's was)."""
    if not variant.get("vocab_size"):
        return
    path = Path(run["tokenizer"])
    path = path if path.is_absolute() else REPO_ROOT / path
    if (path / "tokenizer.json").exists():
        return
    from ..tokenizer import train_tokenizer
    from .loop import load_training_data

    print(f"training a {int(variant['vocab_size'])}-token BPE for variant {variant['name']} into {path}", flush=True)
    texts = [text for _, text in load_training_data(run, path.parent)]
    train_tokenizer(texts, vocab_size=int(variant["vocab_size"]), out_dir=path)


def collect(cfg: dict[str, Any], *, results_root: str | Path | None = None) -> pd.DataFrame:
    """variants.csv and the tidy curves.csv from the variants' metrics.csv (what exists so far)."""
    out = tuning_dir(cfg["profile"], results_root)
    table = variant_table(cfg, out_root=out)
    rows = []
    for v in table.itertuples():
        m = out / "runs" / v.variant / "metrics.csv"
        if not m.exists():
            continue
        df = pd.read_csv(m)
        have = [c for c in MEASURES if c in df.columns]
        df = df.dropna(subset=have, how="all") if have else df.iloc[0:0]
        for r in df.itertuples():
            tokens = int(r.step) * int(v.sequences_per_step) * int(v.seq_len)
            for meas in have:
                val = getattr(r, meas)
                if pd.notna(val):
                    rows.append({"variant": v.variant, "step": int(r.step), "tokens": tokens,
                                 "minutes": round(tokens / v.tokens_per_s / 60, 3), "measure": meas,
                                 "value": float(val)})
    curves = pd.DataFrame(rows, columns=["variant", "step", "tokens", "minutes", "measure", "value"])
    out.mkdir(parents=True, exist_ok=True)
    for name, df in (("variants.csv", table), ("curves.csv", curves)):
        with atomic_path(out / name) as tmp:
            df.to_csv(tmp, index=False)
    return curves


def final_scores(curves: pd.DataFrame) -> pd.DataFrame:
    """Each variant's last logged value of every measure (one row per variant)."""
    if curves.empty:
        return pd.DataFrame(columns=["variant", "minutes", *MEASURES])
    last = curves.sort_values("step").groupby(["variant", "measure"]).tail(1)
    wide = last.pivot(index="variant", columns="measure", values="value").reset_index()
    mins = curves.groupby("variant")["minutes"].max().rename("minutes").reset_index()
    return mins.merge(wide, on="variant")


def frontier_table(curves: pd.DataFrame, variants: pd.DataFrame, base_metrics: str | Path | None = None,
                   base_speed: float | None = None, base_length: int = 0):
    """The measured frontier (what issue 15 asks the REPORT to show when a target is not reached):
    per variant its quiet-machine minutes, tokens, and last validation loss and in-context scores;
    plus, when given, the study's base run (its own ``metrics.csv`` probes; minutes from
    ``base_speed`` tokens/s). Returns a :class:`rlctx_utils.tables.Table` (Markdown + LaTeX)."""
    from ..tables import Table

    last = final_scores(curves).set_index("variant")
    tok = variants.set_index("variant")
    rows = {}
    for v, r in last.iterrows():
        steps = int(curves[curves["variant"] == v]["step"].max())
        per_step = int(tok.at[v, "sequences_per_step"]) * int(tok.at[v, "seq_len"]) if v in tok.index else 0
        rows[v] = {"quiet minutes": float(r["minutes"]), "tokens (M)": steps * per_step / 1e6,
                   "length": float(tok.at[v, "seq_len"]) if v in tok.index else float("nan"),
                   **{m: float(r[m]) for m in MEASURES if m in r}}
    notes = ["Last probe of each tuning variant (validation split of configs/data/cpu-v1.toml, at its training "
             "length); copy scores: 2nd minus 1st copy (negative = copies), within-file: loss at [32,64) minus "
             "[256,512). Minutes are quiet-machine minutes from results/bench/models.csv."]
    if base_metrics and Path(base_metrics).exists():
        m = pd.read_csv(base_metrics)
        probe = m.dropna(subset=["val_loss"]) if "val_loss" in m.columns else m.iloc[0:0]
        if len(probe):
            p = probe.iloc[-1]
            tokens = float(m["train_tokens"].max()) if "train_tokens" in m.columns else float("nan")
            rows["the study's base"] = {
                "quiet minutes": tokens / base_speed / 60 if base_speed else float("nan"),
                "tokens (M)": tokens / 1e6, "length": float(base_length or "nan"),
                **{k: float(p[k]) for k in MEASURES if k in p}}
            notes.append("The study's base run: probes on the profile's own validation split at its base length, "
                         "so its validation loss is not comparable with the sweep's rows.")
    values = pd.DataFrame.from_dict(rows, orient="index").sort_values("quiet minutes", kind="stable")
    values.index.name = "variant"
    return Table(values, "Stage-A frontier of the cpu study: validation loss and in-context scores against "
                 "quiet-machine minutes of a 2-core CPU.", notes=notes, digits=3)


def profile_frontier(cfg: dict[str, Any], *, results_root: str | Path | None = None):
    """:func:`frontier_table` of a profile: its sweep (``results/<p>/tuning/``) and its base run, whose
    quiet-machine minutes come from the speed table at the base run's shape and length. None when the
    profile has no sweep stored."""
    out = tuning_dir(cfg["profile"], results_root)
    if not (out / "curves.csv").exists():
        return None
    curves, variants = pd.read_csv(out / "curves.csv"), pd.read_csv(out / "variants.csv")
    base = Path(results_root or results_dir(cfg["profile"])) / "runs" / "base" / "metrics.csv"
    sec = cfg.get("tuning") or {}
    table = Path(sec.get("throughput", "results/bench/models.csv"))
    speed, length = None, int(cfg["base_training"]["seq_len"])
    try:
        shape = model_shape({k: v for k, v in cfg.items() if k != "tuning"}, {})
        speed, _ = quiet_throughput(shape, length, table if table.is_absolute() else REPO_ROOT / table)
    except (ConfigError, FileNotFoundError, KeyError, ValueError):
        pass
    return frontier_table(curves, variants, base, speed, length)
