"""In-context measures of a checkpoint: does the model use what is earlier in its window?

Line-completion exact match is close to 0 for a toy model and averages over everything a model
does, so three direct measures show whether it reads its context at all (issue 15):

*copying*
    mean next-token loss on the second copy of a repeated sequence minus on the first copy
    (``x x``). Negative = the model copies (an induction head predicts token i of the second copy
    from the token that followed token i-1 in the first). Two kinds: ``random`` (tokens uniform over
    the tokenizer's ordinary, non-special ids, seeded) and ``code`` (a real code chunk drawn, seeded,
    from the benchmark's completion files). Both copies are scored on the same tokens: tokens
    ``1 .. L-1`` of the chunk (token 0 of the first copy has nothing before it, token 0 of the
    second copy follows the chunk's last token, which no copy rule can predict), so a model that
    ignores the first copy scores about 0.
*within-file*
    mean next-token loss of the completion file alone (rendered as in training, no repository
    context) at positions ``[32, 64)`` minus at ``[256, 512)``, over files long enough for both
    windows. Positive = later tokens are easier = the model uses in-file context.
*repository context* (the ``perplexity`` evaluation protocol, :func:`file_loss_records`)
    the completion file's mean token loss with an evaluation setting's composer context minus the
    same tokens' loss with no context; stored with the evaluations (``rlctx eval --protocol
    perplexity``).

Each checkpoint's copying and within-file scores are stored as ``results/<profile>/incontext/
<run_id>.csv`` (one row per measure: the two means, their difference, a 95% bootstrap interval:
over sequences for random tokens, over repositories for code chunks and files) with a JSON sidecar
written last; a result with the same identity is not recomputed (:func:`run_incontext`).

Training can log the copying scores every N steps (``[base_training] incontext_every = N``, or the
same key in ``[repo_training]``) as extra columns of the run's ``metrics.csv``
(:class:`TrainingProbe`); :func:`curve_from_metrics` reads that copying curve back, and
:func:`copying_curve` computes it from a run's saved checkpoints.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..config import config_hash
from ..io import atomic_path, read_json, write_sidecar
from ..paths import results_dir
from .runner import EvalError

#: Defaults of ``[eval.incontext]`` (a profile may override any of them).
DEFAULTS: dict[str, Any] = {
    "sequences": 64,        # repeated sequences of each kind
    "length": 120,          # tokens of one copy
    "within_file": [32, 64, 256, 512],  # early window [a, b) and late window [c, d) of the file
    "bootstrap": 2000,      # bootstrap resamples of each interval
}
#: Keys ``[eval.incontext]`` accepts.
CONFIG_KEYS = tuple(DEFAULTS)
#: Measures of one checkpoint, in table order.
MEASURES = ("copy_random", "copy_code", "within_file")
MEASURE_LABELS = {"copy_random": "copying, random tokens (2nd − 1st copy)",
                  "copy_code": "copying, code chunk (2nd − 1st copy)",
                  "within_file": "within-file ([32,64) − [256,512))"}
#: Columns of a stored per-checkpoint result.
RESULT_COLUMNS = ["measure", "first", "second", "score", "ci_low", "ci_high", "n", "n_clusters"]
#: Extra ``metrics.csv`` columns written by the training hook.
TRAINING_FIELDS = ("copy_random_first", "copy_random_second", "copy_random",
                   "copy_code_first", "copy_code_second", "copy_code", "val_loss", "val_within_file")
#: Validation windows the training hook scores for ``val_loss`` / ``val_within_file``.
VALIDATION_WINDOWS = 32
#: Sequences of each kind the training hook scores (cheap: a few forward passes).
TRAINING_SEQUENCES = 8


def incontext_config(cfg: dict[str, Any] | None) -> dict[str, Any]:
    """``[eval.incontext]`` of a profile over :data:`DEFAULTS`; unknown keys are an error."""
    over = ((cfg or {}).get("eval") or {}).get("incontext") or {}
    if not isinstance(over, dict):
        raise EvalError("[eval] incontext must be a table ([eval.incontext] with keys "
                        f"{', '.join(CONFIG_KEYS)})")
    unknown = sorted(set(over) - set(CONFIG_KEYS))
    if unknown:
        raise EvalError(f"unknown [eval.incontext] keys {unknown}: give only {list(CONFIG_KEYS)}")
    out = {**DEFAULTS, **over}
    w = [int(x) for x in out["within_file"]]
    if len(w) != 4 or not (1 <= w[0] < w[1] <= w[2] < w[3]):
        raise EvalError(f"[eval.incontext] within_file must be [a, b, c, d] with 1 <= a < b <= c < d, got {w}")
    out["within_file"] = w
    out["sequences"], out["length"], out["bootstrap"] = int(out["sequences"]), int(out["length"]), int(out["bootstrap"])
    if out["length"] < 2 or out["sequences"] < 1:
        raise EvalError("[eval.incontext] needs length >= 2 and sequences >= 1")
    return out


# ---------------------------------------------------------------------------------------------
# Probe sequences

def ordinary_ids(tokenizer: Any) -> np.ndarray:
    """Ids of the tokenizer's ordinary tokens: every id but the special and added special ones."""
    special = set(int(i) for i in (getattr(tokenizer, "all_special_ids", None) or []))
    for i, tok in (getattr(tokenizer, "added_tokens_decoder", None) or {}).items():
        if getattr(tok, "special", False):
            special.add(int(i))
    ids = np.array([i for i in range(len(tokenizer)) if i not in special], dtype=np.int64)
    if len(ids) < 2:
        raise EvalError("the tokenizer has fewer than two ordinary token ids")
    return ids


def random_chunks(tokenizer: Any, *, n: int, length: int, seed: int) -> list[list[int]]:
    """``n`` sequences of ``length`` tokens drawn uniformly from :func:`ordinary_ids` (seeded)."""
    ids = ordinary_ids(tokenizer)
    rng = np.random.default_rng([int(seed), 0x51C0])
    return [ids[rng.integers(0, len(ids), size=length)].tolist() for _ in range(n)]


def _encode(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"]) if text else []


def _unique_files(datapoints: Iterable[Any]) -> list[Any]:
    """One datapoint per distinct (repository, completion file content), in a stable order."""
    seen, out = set(), []
    for dp in sorted(datapoints, key=lambda d: d.id):
        key = (dp.repo, dp.completion_content)
        if key not in seen:
            seen.add(key)
            out.append(dp)
    return out


def code_chunks(datapoints: Iterable[Any], tokenizer: Any, *, n: int, length: int,
                seed: int) -> tuple[list[list[int]], list[str]]:
    """``n`` chunks of ``length`` tokens of real code, each from a completion file (tokenized on its
    own) at a seeded offset; files are drawn without replacement while they last (then again).
    Returns (chunks, the repository of each)."""
    files = [(dp.repo, ids) for dp in _unique_files(datapoints)
             if len(ids := _encode(tokenizer, dp.completion_content)) >= length]
    if not files:
        raise EvalError(f"no completion file has {length} tokens or more: lower [eval.incontext] length")
    rng = np.random.default_rng([int(seed), 0xC0DE])
    chunks, repos = [], []
    while len(chunks) < n:
        for k in rng.permutation(len(files))[: n - len(chunks)]:
            repo, ids = files[int(k)]
            start = int(rng.integers(0, len(ids) - length + 1))
            chunks.append(ids[start:start + length])
            repos.append(repo)
    return chunks, repos


# ---------------------------------------------------------------------------------------------
# Token losses

def _device(model: Any):
    try:
        return next(model.parameters()).device
    except (StopIteration, AttributeError):
        import torch

        return torch.device("cpu")


def token_losses(model: Any, sequences: Sequence[Sequence[int]], *, batch_tokens: int = 8192) -> list[np.ndarray]:
    """Next-token loss (nats) of every token of every sequence: ``out[k][i]`` is the loss of
    predicting token ``i`` from tokens ``0 .. i-1``; ``out[k][0]`` is NaN.

    Sequences are sorted by length and right-padded into batches of at most ``batch_tokens``
    tokens (padding only follows real tokens, so a causal model never lets a real token see it);
    the output layer runs on one row at a time.
    """
    import torch

    from .runner import _parts

    device = _device(model)
    parts = _parts(model) if hasattr(model, "config") else None
    out: list[np.ndarray | None] = [None] * len(sequences)
    order = sorted(range(len(sequences)), key=lambda k: len(sequences[k]))
    batches, cur = [], []
    for k in order:
        n = len(sequences[k])
        if cur and (len(cur) + 1) * n > max(batch_tokens, n):
            batches.append(cur)
            cur = []
        cur.append(k)
    if cur:
        batches.append(cur)
    was_training = getattr(model, "training", False)
    if hasattr(model, "eval"):
        model.eval()
    try:
        with torch.no_grad():
            for rows in batches:
                width = max(len(sequences[k]) for k in rows)
                ids = torch.zeros((len(rows), width), dtype=torch.long, device=device)
                for b, k in enumerate(rows):
                    ids[b, : len(sequences[k])] = torch.as_tensor(list(sequences[k]), dtype=torch.long)
                if parts is not None:
                    hidden = parts[0](input_ids=ids, use_cache=False).last_hidden_state
                    head = parts[1]
                else:
                    hidden, head = model(input_ids=ids).logits, None
                for b, k in enumerate(rows):
                    n = len(sequences[k])
                    res = np.full(n, np.nan)
                    if n >= 2:
                        h = hidden[b, : n - 1]
                        logits = (head(h) if head is not None else h).float()
                        nll = torch.nn.functional.cross_entropy(logits, ids[b, 1:n], reduction="none")
                        res[1:] = nll.double().cpu().numpy()
                    out[k] = res
    finally:
        if hasattr(model, "train"):
            model.train(was_training)
    return out  # type: ignore[return-value]


def copy_losses(model: Any, chunks: Sequence[Sequence[int]], *, batch_tokens: int = 8192) -> tuple[np.ndarray, np.ndarray]:
    """(first, second): per chunk, the mean loss of tokens ``1 .. L-1`` in the first and in the
    second copy of ``chunk + chunk``."""
    seqs = [list(c) + list(c) for c in chunks]
    losses = token_losses(model, seqs, batch_tokens=batch_tokens)
    first, second = [], []
    for c, lo in zip(chunks, losses):
        L = len(c)
        first.append(float(np.mean(lo[1:L])))
        second.append(float(np.mean(lo[L + 1: 2 * L])))
    return np.array(first), np.array(second)


# ---------------------------------------------------------------------------------------------
# Scores with intervals

def _interval(diff: np.ndarray, clusters: Sequence[Any], *, n_resamples: int, seed: int) -> tuple[float, float]:
    from ..stats import cluster_bootstrap_ci

    if len(diff) < 2 or len(set(clusters)) < 2 or n_resamples < 1:
        return math.nan, math.nan
    ci = cluster_bootstrap_ci(diff, list(clusters), n_resamples=n_resamples, seed=seed)
    return ci.low, ci.high


def _row(measure: str, a: np.ndarray, b: np.ndarray, score: np.ndarray, clusters: Sequence[Any], *,
         n_resamples: int, seed: int) -> dict[str, Any]:
    lo, hi = _interval(score, clusters, n_resamples=n_resamples, seed=seed)
    return {"measure": measure, "first": float(np.mean(a)), "second": float(np.mean(b)),
            "score": float(np.mean(score)), "ci_low": lo, "ci_high": hi, "n": int(len(score)),
            "n_clusters": int(len(set(clusters)))}


def copy_score(model: Any, chunks: Sequence[Sequence[int]], clusters: Sequence[Any] | None = None, *,
               measure: str = "copy_random", n_resamples: int = 2000, seed: int = 0,
               batch_tokens: int = 8192) -> dict[str, Any]:
    """Copying score of ``chunks``: ``first``, ``second`` (mean losses), ``score`` = second - first
    (negative = the model copies) with a percentile bootstrap interval over ``clusters`` (one per
    chunk: the chunk itself for random tokens, its repository for code)."""
    first, second = copy_losses(model, chunks, batch_tokens=batch_tokens)
    clusters = list(range(len(chunks))) if clusters is None else list(clusters)
    return _row(measure, first, second, second - first, clusters, n_resamples=n_resamples, seed=seed)


def within_file_losses(model: Any, datapoints: Iterable[Any], tokenizer: Any, *, windows: Sequence[int],
                       fmt: str = "opencoder", batch_tokens: int = 8192) -> pd.DataFrame:
    """Per completion file long enough for both windows: mean loss at token positions ``[a, b)``
    (``early``) and ``[c, d)`` (``late``) of the file alone, rendered as in training (position =
    index of the predicted token). Columns ``datapoint, repository, n_tokens, early, late``."""
    from ..composers import render_completion

    a, b, c, d = (int(x) for x in windows)
    rows, seqs = [], []
    for dp in _unique_files(datapoints):
        ids = _encode(tokenizer, render_completion(dp.completion_path, dp.completion_content, fmt))
        if len(ids) >= d:
            rows.append({"datapoint": dp.id, "repository": dp.repo, "n_tokens": len(ids)})
            seqs.append(ids[:d])
    losses = token_losses(model, seqs, batch_tokens=batch_tokens) if seqs else []
    for r, lo in zip(rows, losses):
        r["early"], r["late"] = float(np.mean(lo[a:b])), float(np.mean(lo[c:d]))
    return pd.DataFrame(rows, columns=["datapoint", "repository", "n_tokens", "early", "late"])


def within_file_score(model: Any, datapoints: Iterable[Any], tokenizer: Any, *, windows: Sequence[int],
                      fmt: str = "opencoder", n_resamples: int = 2000, seed: int = 0,
                      batch_tokens: int = 8192) -> dict[str, Any]:
    """Within-file score: early-window loss minus late-window loss (positive = uses in-file
    context), bootstrap by repository; ``first``/``second`` hold the early/late means."""
    f = within_file_losses(model, datapoints, tokenizer, windows=windows, fmt=fmt, batch_tokens=batch_tokens)
    if f.empty:
        return {"measure": "within_file", "first": math.nan, "second": math.nan, "score": math.nan,
                "ci_low": math.nan, "ci_high": math.nan, "n": 0, "n_clusters": 0}
    early, late = f["early"].to_numpy(), f["late"].to_numpy()
    return _row("within_file", early, late, early - late, f["repository"].tolist(), n_resamples=n_resamples,
                seed=seed)


def measure_checkpoint(model: Any, tokenizer: Any, datapoints: Sequence[Any], *, cfg: dict[str, Any] | None = None,
                       seed: int = 0, fmt: str = "opencoder", batch_tokens: int = 8192,
                       timings: dict[str, float] | None = None) -> pd.DataFrame:
    """The three scores of one loaded model (:data:`MEASURES` rows, :data:`RESULT_COLUMNS`)."""
    ic = incontext_config(cfg)
    n, L, B = ic["sequences"], ic["length"], ic["bootstrap"]
    rows = []
    t0 = time.perf_counter()
    rows.append(copy_score(model, random_chunks(tokenizer, n=n, length=L, seed=seed), measure="copy_random",
                           n_resamples=B, seed=seed, batch_tokens=batch_tokens))
    t1 = time.perf_counter()
    chunks, repos = code_chunks(datapoints, tokenizer, n=n, length=L, seed=seed)
    rows.append(copy_score(model, chunks, repos, measure="copy_code", n_resamples=B, seed=seed,
                           batch_tokens=batch_tokens))
    t2 = time.perf_counter()
    rows.append(within_file_score(model, datapoints, tokenizer, windows=ic["within_file"], fmt=fmt,
                                  n_resamples=B, seed=seed, batch_tokens=batch_tokens))
    t3 = time.perf_counter()
    if timings is not None:
        timings.update(copy_random=t1 - t0, copy_code=t2 - t1, within_file=t3 - t2)
    return pd.DataFrame(rows, columns=RESULT_COLUMNS)


# ---------------------------------------------------------------------------------------------
# Stored results, one per run

def incontext_dir(profile: str, out_dir: str | Path | None = None, results_root: str | Path | None = None) -> Path:
    """``out_dir``, else ``<results_root or results/<profile>>/incontext``."""
    return Path(out_dir) if out_dir else Path(results_root or results_dir(profile)) / "incontext"


def _identity(info: Any, bench: Any, ic: dict[str, Any], seed: int, fmt: str) -> dict[str, Any]:
    return {"checkpoint": info.ref, "checkpoint_fingerprint": info.fingerprint, "benchmark": bench.name,
            "benchmark_fingerprint": bench.fingerprint, "incontext": ic, "seed": int(seed), "fmt": fmt}


def run_incontext(profile: str, run_ids: Sequence[str] | None = None, *, cfg: dict[str, Any] | None = None,
                  out_dir: str | Path | None = None, results_root: str | Path | None = None,
                  benchmark: Any = None, checkpoint: str = "final") -> pd.DataFrame:
    """Compute (or skip, when stored) the copying and within-file scores of each run's checkpoint.

    ``run_ids`` None = every run with a final checkpoint. A run without its checkpoint (a fresh
    clone holds only the committed results) keeps what is stored. Returns one row per run:
    ``run_id``, ``state`` (done / skipped / stored / missing), ``wall_time_s`` and the seconds
    of each measure.
    """
    from ..config import load_profile
    from .api import checkpoints_to_measure, default_benchmark, load_benchmark

    cfg = cfg if cfg is not None else load_profile(profile)
    ic = incontext_config(cfg)
    seed = int((cfg.get("eval") or {}).get("seed", cfg.get("seed", 0)))
    fmt = str((cfg.get("repo_training") or {}).get("fmt", "opencoder"))
    batch_tokens = int((cfg.get("eval") or {}).get("batch_tokens", 8192))
    runs_root = Path(results_root or results_dir(profile)) / "runs"
    if run_ids is None:
        run_ids = sorted(p.parent.parent.name for p in runs_root.glob(f"*/checkpoints/{checkpoint}") if p.is_dir())
    out = incontext_dir(profile, out_dir, results_root)
    rows = []
    cols = ["run_id", "state", "wall_time_s", *[f"{m}_s" for m in MEASURES]]
    state = {"bench": benchmark}

    def identity_of(info: Any) -> dict[str, Any]:
        if state["bench"] is None:
            state["bench"] = load_benchmark(default_benchmark(profile, cfg))
        return _identity(info, state["bench"], ic, seed, fmt)

    for rid, ck, path, info, ident in checkpoints_to_measure(run_ids, runs_root, out, identity_of, rows,
                                                            checkpoint=checkpoint):
        bench = state["bench"]
        from ..models import load_model
        from ..tokenizer import load_tokenizer

        t0 = time.time()
        tok = load_tokenizer(str(ck))
        model = load_model(str(ck))
        timings: dict[str, float] = {}
        res = measure_checkpoint(model, tok, bench.datapoints, cfg=cfg, seed=seed, fmt=fmt,
                                 batch_tokens=batch_tokens, timings=timings)
        wall = time.time() - t0
        with atomic_path(path) as tmp:
            res.round({c: 5 for c in ("first", "second", "score", "ci_low", "ci_high")}).to_csv(tmp, index=False)
        write_sidecar(path, {"identity": ident, "checkpoint": info.name, "run_record": info.record, "timings_s": timings,
                             "config_hash": config_hash(ident)}, wall_time_s=wall)
        rows.append({"run_id": rid, "state": "done", "wall_time_s": round(wall, 1),
                     **{f"{k}_s": round(v, 2) for k, v in timings.items()}})
    return pd.DataFrame(rows, columns=cols)


def load_incontext(profile: str, out_dir: str | Path | None = None,
                   results_root: str | Path | None = None) -> pd.DataFrame:
    """Every stored result (sidecar present): :data:`RESULT_COLUMNS` plus ``run_id`` and the run's
    display name ``checkpoint`` and ``composer``, ``mode``, ``loss_type``, ``theta``, ``stage``,
    ``stop_step``."""
    d = incontext_dir(profile, out_dir, results_root)
    frames = []
    for f in sorted(d.glob("*.csv")) if d.is_dir() else []:
        side = f.with_suffix(".json")
        if not side.exists():
            continue  # unfinished: the sidecar is written last
        conf = read_json(side).get("config") or {}
        rec = conf.get("run_record") or {}
        c = pd.read_csv(f)
        c["run_id"] = f.stem
        c["checkpoint"] = conf.get("checkpoint") or f.stem
        for k, src in (("composer", "composer"), ("mode", "mode"), ("loss_type", "loss"), ("theta", "rope_theta"),
                       ("stage", "stage"), ("stop_step", "stop_step")):
            c[k] = rec.get(src)
        frames.append(c)
    cols = [*RESULT_COLUMNS, "run_id", "checkpoint", "composer", "mode", "loss_type", "theta", "stage", "stop_step"]
    return pd.concat(frames, ignore_index=True)[cols] if frames else pd.DataFrame(columns=cols)


# ---------------------------------------------------------------------------------------------
# The copying curve over training

def _step_of(path: Path) -> int | None:
    """Optimizer step of a checkpoint folder (its ``trainer_state.pt``, else ``step-<N>``)."""
    st = path / "trainer_state.pt"
    if st.exists():
        from ..training.loop import safe_load  # tensors and plain data only: a crafted file is refused

        return int(safe_load(st)["step"])
    m = re.fullmatch(r"step-(\d+)", path.name)
    return int(m.group(1)) if m else None


def copying_curve(checkpoints: str | Path | Sequence[str | Path], *, datapoints: Sequence[Any] | None = None,
                  n: int = TRAINING_SEQUENCES, length: int = DEFAULTS["length"], seed: int = 0,
                  batch_tokens: int = 8192) -> pd.DataFrame:
    """Copying scores of several checkpoints of one run, one row per step.

    ``checkpoints`` is a list of checkpoint folders or a run folder (its saved ``step-<N>`` and
    ``final`` checkpoints). The same probe sequences are scored at every step: ``n`` random-token
    sequences and, with ``datapoints``, ``n`` code chunks. Columns ``step`` and
    :data:`TRAINING_FIELDS` (code columns NaN without datapoints).
    """
    from ..models import load_model
    from ..tokenizer import load_tokenizer

    if isinstance(checkpoints, (str, Path)) and (Path(checkpoints) / "checkpoints").is_dir():
        cks = [p for p in (Path(checkpoints) / "checkpoints").iterdir() if (p / "config.json").exists()]
    elif isinstance(checkpoints, (str, Path)):
        cks = [Path(checkpoints)]
    else:
        cks = [Path(p) for p in checkpoints]
    if not cks:
        raise EvalError(f"no checkpoints in {checkpoints}: a run saves step-<N> folders with save_every")
    probe = None
    rows = []
    for ck in cks:
        tok = load_tokenizer(str(ck))
        if probe is None:
            probe = TrainingProbe(tok, datapoints, n=n, length=length, seed=seed, batch_tokens=batch_tokens)
        rows.append({"step": _step_of(ck), "checkpoint": str(ck), **probe(load_model(str(ck)))})
    return pd.DataFrame(rows).sort_values("step", kind="stable").reset_index(drop=True)


def curve_from_metrics(metrics_csv: str | Path) -> pd.DataFrame:
    """The copying curve a run logged while training (rows of ``metrics.csv`` with copy scores)."""
    m = pd.read_csv(metrics_csv)
    have = [c for c in TRAINING_FIELDS if c in m.columns]
    if not have:
        return pd.DataFrame(columns=["step", *TRAINING_FIELDS])
    m = m[["step", *have]].dropna(subset=have, how="all")
    return m.reindex(columns=["step", *TRAINING_FIELDS]).reset_index(drop=True)


def validation_windows(datapoints: Sequence[Any], tokenizer: Any, *, seq_len: int, n: int, seed: int,
                       fmt: str = "opencoder") -> list[list[int]]:
    """Up to ``n`` windows of ``seq_len`` tokens, each the start of one ``.py`` file of the
    validation repositories' snapshots (rendered as in training; files shorter than the window are
    skipped), drawn with a seeded generator from the path-sorted files."""
    from ..composers import render_completion

    files: dict[tuple[str, str], str] = {}
    for dp in datapoints:
        for path, text in (dp.snapshot or {}).items():
            if text and path.endswith(".py"):
                files.setdefault((dp.repo, path), text)
    keys = sorted(files)
    np.random.default_rng(seed).shuffle(keys)
    out: list[list[int]] = []
    for key in keys:
        ids = _encode(tokenizer, render_completion(key[1], files[key], fmt))
        if len(ids) >= seq_len:
            out.append(ids[:seq_len])
            if len(out) >= n:
                break
    return out


class TrainingProbe:
    """Fixed probe sequences scored at a training step: ``n`` random-token sequences (seeded) and,
    when ``datapoints`` (the validation split) are given, ``n`` code chunks from their completion
    files and validation windows: ``val_loss`` (mean next-token loss over the windows) and
    ``val_within_file`` (loss at positions [32, 64) minus [256, 512), windows of 512 tokens or more)."""

    def __init__(self, tokenizer: Any, datapoints: Sequence[Any] | None = None, *, n: int = TRAINING_SEQUENCES,
                 length: int = DEFAULTS["length"], seed: int = 0, batch_tokens: int = 8192,
                 seq_len: int | None = None, n_windows: int = VALIDATION_WINDOWS):
        self.random = random_chunks(tokenizer, n=n, length=length, seed=seed)
        self.code: list[list[int]] = []
        self.windows: list[list[int]] = []
        if datapoints:
            try:
                self.code, _ = code_chunks(datapoints, tokenizer, n=n, length=length, seed=seed)
            except EvalError:
                self.code = []
            if seq_len:
                self.windows = validation_windows(datapoints, tokenizer, seq_len=int(seq_len), n=n_windows, seed=seed)
        self.batch_tokens = batch_tokens

    def __call__(self, model: Any) -> dict[str, float]:
        out: dict[str, float] = {}
        for kind, chunks in (("copy_random", self.random), ("copy_code", self.code)):
            if chunks:
                a, b = copy_losses(model, chunks, batch_tokens=self.batch_tokens)
                out.update({f"{kind}_first": float(a.mean()), f"{kind}_second": float(b.mean()),
                            kind: float(b.mean() - a.mean())})
            else:
                out.update({f"{kind}_first": math.nan, f"{kind}_second": math.nan, kind: math.nan})
        out["val_loss"] = out["val_within_file"] = math.nan
        if self.windows:
            losses = np.stack(token_losses(model, self.windows, batch_tokens=self.batch_tokens))
            out["val_loss"] = float(losses[:, 1:].mean())  # token 0 has no loss (NaN)
            if losses.shape[1] >= 512:
                out["val_within_file"] = float(losses[:, 32:64].mean() - losses[:, 256:512].mean())
        return out


def training_probe(run: dict[str, Any], tokenizer: Any) -> TrainingProbe | None:
    """The probe of a run with ``incontext_every > 0`` (None otherwise). Code chunks come from the
    *validation* split of the run's mined data folder, or of ``probe_data`` when set (runs trained
    on different corpora are then judged on one validation split); training choices are judged on
    validation, never on the benchmark. Without one, only the random-token columns are filled."""
    every = int(run.get("incontext_every") or 0)
    if every <= 0:
        return None
    folder = run.get("probe_data") or (run.get("data_dir") if run.get("stage") == "repo" else run.get("corpus"))
    folder = results_dir(run["profile"]) / "data" if folder in (None, "auto") else Path(folder)
    dps: list[Any] = []
    try:
        from ..data.store import load_datapoints

        dps = load_datapoints(folder, split="validation") if folder.is_dir() else []
    except Exception:  # no mined validation split (tests, a custom corpus): random tokens only
        dps = []
    if not dps:
        print(f"incontext_every: no validation datapoints under {folder}; logging the random-token copy "
              "score only", flush=True)
    return TrainingProbe(tokenizer, dps, n=TRAINING_SEQUENCES, seed=int(run.get("seed", 0)),
                         seq_len=int(run["seq_len"]) if run.get("stage") == "base" else None)


# ---------------------------------------------------------------------------------------------
# The perplexity protocol: repository context as completion-file loss

#: Columns of a perplexity evaluation's per-datapoint records.
FILE_COLUMNS = ["datapoint", "repository", "completion_path", "context_tokens", "file_tokens", "truncated",
                "file_loss", "file_loss_nocontext", "file_loss_delta"]


def file_loss_records(model: Any, tokenizer: Any, datapoints: Sequence[Any], *, composer: str, max_context: int,
                      completion_max: int, mode: str = "original", seed: int = 0, fmt: str = "opencoder",
                      batch_tokens: int = 8192) -> pd.DataFrame:
    """One record per datapoint: the completion file's mean token loss with the setting's context
    and with none (the ``perplexity`` protocol).

    The sequence is the one repository-level training builds
    (:func:`rlctx_utils.training.sequences.build_repo_sequence`): the completion file cut to at most
    ``completion_max`` tokens (its end cut), the composer's context cut from the left to fill the
    rest of ``max_context``. The no-context sequence is the same completion tokens alone. Both are
    scored on completion tokens ``1 .. n-1`` (token 0 has nothing before it without context), so
    File-level (empty context) gives a delta of exactly 0. ``file_loss_delta`` = with - without:
    negative = the repository context helps. This is the perplexity by which the Long Code Arena
    baselines select composers; one forward pass per datapoint and setting (plus one without
    context).
    """
    from ..training.sequences import build_repo_sequence

    if int(max_context) < 2:
        raise EvalError(f"max_context must be at least 2 tokens, got {max_context}")
    comp_max = max(1, min(int(completion_max), int(max_context)))
    meta, with_ctx, alone = [], [], []
    for dp in datapoints:
        s = build_repo_sequence(dp, composer=composer, mode=mode, tokenizer=tokenizer, seq_len=int(max_context),
                                seed=seed, loss="masked", completion_max=comp_max, fmt=fmt)
        if s.n_completion < 2:
            continue
        meta.append({"datapoint": dp.id, "repository": dp.repo, "completion_path": dp.completion_path,
                     "context_tokens": s.n_context, "file_tokens": s.n_completion,
                     "truncated": s.n_completion < len(_encode(tokenizer, _render(dp, fmt)))})
        with_ctx.append(s.input_ids)
        alone.append(s.input_ids[s.n_header + s.n_context:])
    if not meta:
        raise EvalError("no benchmark datapoint has a completion file of two tokens or more")
    la = _cached_losses(model, alone, batch_tokens=batch_tokens)
    # without context (File-level; a completion file that fills the window) the two passes are one
    need = [k for k, m in enumerate(meta) if m["context_tokens"] > 0 or len(with_ctx[k]) != len(alone[k])]
    lw = list(la)
    for k, lo in zip(need, token_losses(model, [with_ctx[k] for k in need], batch_tokens=batch_tokens)):
        lw[k] = lo
    for m, a, b, seq in zip(meta, lw, la, with_ctx):
        start = len(seq) - m["file_tokens"]
        m["file_loss"] = float(np.mean(a[start + 1:]))
        m["file_loss_nocontext"] = float(np.mean(b[1:]))
        m["file_loss_delta"] = m["file_loss"] - m["file_loss_nocontext"]
    df = pd.DataFrame(meta, columns=FILE_COLUMNS)
    return df.astype({"context_tokens": "int64", "file_tokens": "int64", "truncated": "bool"})


_NOCONTEXT_CACHE: dict[tuple[int, int], tuple[Any, dict[tuple[int, ...], np.ndarray]]] = {}


def _cached_losses(model: Any, sequences: list[list[int]], *, batch_tokens: int) -> list[np.ndarray]:
    """:func:`token_losses` remembering the last model's results per token sequence: the settings
    of one checkpoint share their no-context sequences (the same completion tokens), so they are
    scored once. The cache holds one model (its weights' version counter guards against training
    in between)."""
    try:
        first = next(model.parameters())
        key = (id(model), int(first._version))
    except (StopIteration, AttributeError):
        return token_losses(model, sequences, batch_tokens=batch_tokens)
    hit = _NOCONTEXT_CACHE.get(key)
    if hit is None or hit[0] is not model:
        _NOCONTEXT_CACHE.clear()
        hit = _NOCONTEXT_CACHE.setdefault(key, (model, {}))
    memo = hit[1]
    todo = list(dict.fromkeys(tuple(s) for s in sequences if tuple(s) not in memo))
    for seq, lo in zip(todo, token_losses(model, [list(t) for t in todo], batch_tokens=batch_tokens)):
        memo[seq] = lo
    return [memo[tuple(s)] for s in sequences]


def _render(dp: Any, fmt: str) -> str:
    from ..composers import render_completion

    return render_completion(dp.completion_path, dp.completion_content, fmt)


def summarize_file_loss(records: pd.DataFrame) -> pd.DataFrame:
    """The summary of a perplexity evaluation: one row, ``line_type`` ``file`` (every completion
    file), ``n_lines`` = number of files, mean ``file_loss`` and ``file_loss_delta`` over files."""
    return pd.DataFrame([{"line_type": "file", "n_lines": int(len(records)),
                          "file_loss": float(records["file_loss"].mean()),
                          "file_loss_delta": float(records["file_loss_delta"].mean())}])


def delta_interval(records: pd.DataFrame, *, n_resamples: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """Mean ``file_loss_delta`` and its 95% bootstrap interval over repositories."""
    d = records["file_loss_delta"].to_numpy(dtype=float)
    lo, hi = _interval(d, records["repository"].tolist(), n_resamples=n_resamples, seed=seed)
    return float(d.mean()) if len(d) else math.nan, lo, hi
