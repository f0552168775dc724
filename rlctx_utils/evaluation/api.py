"""Evaluations as stored results: checkpoints, benchmarks, eval ids, skip-or-run, summaries.

One evaluation = one checkpoint x one benchmark x one (composer, maximum context) x one protocol.
It writes three files under ``results/<profile>/evals/``:

- ``<eval_id>.parquet``: one record per target line (see :data:`runner.LINE_COLUMNS`), so that
  statistics can pair outcomes line by line;
- ``<eval_id>.summary.csv``: rows in the tidy results schema (:mod:`rlctx_utils.schema`), one per
  line type and per evaluation role the computation serves (Path Distance at the extended length
  is PD-ext, the Or-ext of a Path Distance checkpoint, and a point of the sweep);
- ``<eval_id>.json``: the sidecar (config, git SHA, versions, wall time), written last.

Rerunning an evaluation whose files exist with the same config does nothing; the same id with a
different config is an error (:class:`EvalConflictError`) and nothing is overwritten.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from .. import schema
from ..config import config_hash
from ..data.types import CATEGORIES, Datapoint
from ..io import atomic_path, output_lock, read_json, remove_stale_temporaries, write_sidecar
from ..names import BEYOND_PAPER
from ..paths import REPO_ROOT, results_dir
from . import metrics, presets
from .protocols import get_protocol
from .runner import EvalError


class EvalConflictError(EvalError):
    """An evaluation with the same id but a different config already exists."""


class BenchmarkError(EvalError):
    """A benchmark name or path that cannot be loaded."""


# ---------------------------------------------------------------------------------------------
# Checkpoints and their run records

@dataclass
class CheckpointInfo:
    """What the tables need to know about an evaluated checkpoint (from its run record)."""

    ref: str  # path (relative to the repository when inside it) or hub id
    name: str  # display name (the tables' row label)
    run_id: str | None = None
    stage: str | None = None
    model: str | None = None
    composer: str | None = None
    mode: str | None = None
    loss: str | None = None
    theta: float | None = None
    train_tokens: float | None = None
    train_length: int | None = None
    fingerprint: str | None = None
    record: dict[str, Any] = field(default_factory=dict)

    @property
    def own_composer(self) -> str | None:
        """The composer the checkpoint was trained with; a base model's is File-level (single files).
        None for a model without a run record."""
        if self.composer:
            return self.composer
        if self.stage == "base":
            return presets.FILE_LEVEL
        return None


def _rel(p: Path) -> str:
    try:
        return str(p.resolve().relative_to(REPO_ROOT.resolve()))
    except ValueError:
        return str(p.resolve())


def find_run_record(checkpoint: str | os.PathLike[str]) -> Path | None:
    """``run.json`` of the run a checkpoint folder belongs to (``<run>/checkpoints/<name>/``)."""
    p = Path(checkpoint).expanduser()
    if not p.exists():
        return None
    for d in [p, *list(p.resolve().parents)[:3]]:
        if (d / "run.json").is_file():
            return d / "run.json"
    return None


def _num(x: Any, kind=float):
    try:
        return kind(x) if x is not None else None
    except (TypeError, ValueError):
        return None


def read_run_record(checkpoint: str | os.PathLike[str]) -> CheckpointInfo:
    """A checkpoint's metadata, tolerant of missing keys and of checkpoints without a run record
    (hub models: composer, loss, tokens unknown)."""
    from ..names import checkpoint_label

    p = Path(checkpoint).expanduser()
    rec_path = find_run_record(p)
    rec: dict[str, Any] = read_json(rec_path) if rec_path else {}
    is_path = p.exists()
    ref = _rel(p) if is_path else str(checkpoint)
    composer = rec.get("composer") or None
    theta = _num(rec.get("rope_theta") if rec.get("rope_theta") is not None else rec.get("theta"))
    tokens = next((_num(rec[k]) for k in ("train_tokens", "tokens", "tokens_seen", "tokens_trained")
                   if rec.get(k) is not None), None)
    model = rec.get("model")
    if isinstance(model, dict):
        model = model.get("preset") or model.get("name_or_path")
    untrained = rec.get("stage") == "repo" and _num(rec.get("stop_step"), int) == 0
    if untrained:  # the base weights under a new RoPE base, no training: a base model, not a composer run
        composer = None
        rec = {**rec, "composer": None, "mode": None, "loss": None}
    info = CheckpointInfo(
        ref=ref, name="", run_id=rec.get("run_id"), stage="base" if untrained else rec.get("stage"),
        model=model, composer=composer,
        mode=rec.get("mode") or (None if composer in (None, presets.FILE_LEVEL) else "original"),
        loss=rec.get("loss"), theta=theta, train_tokens=tokens,
        train_length=_num(rec.get("train_length") or rec.get("seq_len"), int), record=rec)
    if rec:
        step = "" if p.name in ("final", "") or p == rec_path.parent else f" @{p.name}"
        if composer is None and info.stage == "base":
            name = "Base model" + (f", θ={theta:,.0f}" if theta else "") + (" (no training)" if untrained else "")
        else:
            name = checkpoint_label(composer, info.mode, info.loss, theta)
            if composer not in (None, presets.FILE_LEVEL) and theta and theta != 500000:
                name += f", θ={theta:,.0f}"
            if info.loss == "full":
                name += ", full"
        extra = beyond_paper(rec)
        if extra:
            name += f" ({extra})"
        info.name = name + step
        info.fingerprint = f"{rec.get('run_id')}:{rec.get('config_hash')}:{p.name}"
    else:
        info.name = Path(str(checkpoint)).name if is_path else str(checkpoint)
        info.fingerprint = ref
    return info


def beyond_paper(rec: dict[str, Any]) -> str | None:
    """What makes a run one the paper does not have: ``LoRA r16``, ``YaRN x2`` (from its run record)."""
    parts = []
    lora = rec.get("lora") or {}
    if isinstance(lora, dict) and lora.get("r") and lora.get("enabled", True):
        parts.append(f"LoRA r{int(lora['r'])}")
    variant = rec.get("rope_variant") or "default"
    if variant != "default":
        factor = (rec.get("rope_kwargs") or {}).get("factor")
        parts.append(f"{'YaRN' if variant == 'yarn' else variant} x{factor:g}" if factor else str(variant))
    return ", ".join(parts) or None


def model_theta(model) -> float | None:
    """RoPE base the loaded model runs with (transformers 5 keeps it in ``rope_parameters``)."""
    rp = getattr(model.config, "rope_parameters", None) or {}
    if isinstance(rp, dict) and "rope_theta" in rp:
        return float(rp["rope_theta"])
    t = getattr(model.config, "rope_theta", None)
    return float(t) if t is not None else None


def resolve_composer(composer: str, info: CheckpointInfo) -> str:
    """``own`` -> the checkpoint's training composer (read from its run record)."""
    if composer != presets.OWN:
        return composer
    own = info.own_composer
    if own is None:
        raise EvalError(f"checkpoint {info.ref!r} has no run record naming its training composer, so "
                        "'own' is unknown; pass --composer file_level or path_distance_py")
    if own == "mixed":  # the paper evaluates Mixed context with its realistic composers drawn per datapoint
        return own
    return own


# ---------------------------------------------------------------------------------------------
# Benchmarks

@dataclass
class Benchmark:
    name: str
    datapoints: list[Datapoint]

    @property
    def fingerprint(self) -> str:
        h = hashlib.sha1("\n".join(dp.id for dp in self.datapoints).encode()).hexdigest()[:16]
        return f"{len(self.datapoints)}:{h}"


def default_benchmark(profile: str | None, cfg: dict[str, Any] | None) -> str:
    """The profile's ``[eval] benchmark``, else the benchmark split of its mined data folder."""
    ev = (cfg or {}).get("eval") or {}
    if ev.get("benchmark"):
        return str(ev["benchmark"])
    if profile:
        return str(results_dir(profile) / "data")
    raise BenchmarkError("no benchmark given: pass --benchmark lca:large_context, a folder or a parquet file")


def load_benchmark(spec: str, *, limit: int | None = None, lca_path: str | None = None) -> Benchmark:
    """Datapoints of a benchmark.

    ``lca:<config>`` (e.g. ``lca:large_context``): the real LCA benchmark from the hub or, with
    ``lca_path`` or ``lca:<config>:<path>``, from local parquet files. A folder (a mining run's
    output) or a parquet file: our LCA-format benchmark (its ``benchmark`` split when it has one).
    ``limit`` keeps the first N datapoints (the benchmark gets a distinct name).
    """
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise BenchmarkError(f"--limit {limit}: give the number of datapoints to keep (an integer >= 1), "
                             "or leave it out for the whole benchmark")
    if spec.startswith("lca:"):
        from ..data.lca import load_lca

        parts = spec.split(":", 2)
        config = parts[1] or "large_context"
        path = parts[2] if len(parts) > 2 else lca_path
        dps = load_lca(config, path)
        name = f"lca-{config}"
    else:
        from ..data.store import load_datapoints

        p = Path(spec).expanduser()
        if not p.exists():
            raise BenchmarkError(f"benchmark {spec!r} is neither lca:<config> nor an existing folder or parquet "
                                 "file; mine one with `rlctx mine pypi --spec configs/data/<profile>.toml --out DIR` "
                                 "(or `rlctx mine git REPO... --out DIR`) or pass --benchmark lca:large_context")
        dps = load_datapoints(p, split="benchmark") if p.is_dir() else load_datapoints(p)
        if p.is_file() and any(dp.split == "benchmark" for dp in dps):
            dps = [dp for dp in dps if dp.split == "benchmark"]
        name = p.stem if p.is_file() else (p.parent.name if p.name == "data" else p.name) + "-benchmark"
    if not dps:
        raise BenchmarkError(f"benchmark {spec!r} holds no datapoints")
    if limit:
        dps = dps[: int(limit)]
        name += f"-first{int(limit)}"
    return Benchmark(name, dps)


# ---------------------------------------------------------------------------------------------
# Stored evaluations

def _slug(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.+-]+", "_", s).strip("_") or "x"


def eval_id(info: CheckpointInfo, composer: str, max_context: int, protocol: str, benchmark: str) -> str:
    """``<checkpoint>__<composer>-<max context>__<protocol>__<benchmark>``."""
    ck = info.run_id or info.ref
    if info.run_id and info.fingerprint and not info.fingerprint.endswith(":final"):
        ck += "@" + info.fingerprint.rsplit(":", 1)[-1]
    return "__".join(_slug(x) for x in (ck, f"{composer}-{max_context}", protocol, benchmark))


def evals_dir(profile: str, out_dir: str | os.PathLike[str] | None = None) -> Path:
    return Path(out_dir) if out_dir else results_dir(profile) / "evals"


def summary_rows(lines: pd.DataFrame, *, info: CheckpointInfo, profile: str, cfg: dict[str, Any] | None,
                 composer: str, max_context: int, protocol: str, benchmark: str, theta: float | None,
                 mode: str = "original", note: str | None = None) -> pd.DataFrame:
    """The tidy summary of one evaluation: one row per line type x role the computation serves."""
    proto = get_protocol(protocol)
    if proto.target_tokenization == "file":  # perplexity: whole completion files, no target lines
        from .incontext import summarize_file_loss

        summ = summarize_file_loss(lines)
    else:
        summ = metrics.summarize(lines, file_average=proto.file_average)
    roles = presets.roles_of(composer, max_context, info.own_composer, cfg)
    if mode != (info.mode or "original"):  # Or-ext is the checkpoint's own composer in its own mode
        roles = [r for r in roles if r != "Or-ext"]
    if mode != "original":  # the other settings use the original mode
        roles = [r for r in roles if r == "Or-ext"]
    roles = roles or ["custom"]
    parts = []
    for role in roles:
        s = summ.copy()
        s["eval_role"] = role
        label = presets.setting_label(role, composer, max_context)
        s["eval_setting"] = label if mode == "original" or role == "Or-ext" else f"{label} ({mode})"
        s["table"] = "eval-sweep" if role == "sweep" else "eval"
        parts.append(s)
    df = pd.concat(parts, ignore_index=True)
    df["source"] = profile
    df["checkpoint"] = info.name
    df["model"] = info.model
    df["composer"] = info.composer
    df["mode"] = info.mode
    df["loss"] = info.loss
    df["theta"] = theta if theta is not None else info.theta
    df["train_tokens"] = info.train_tokens
    df["train_length"] = info.train_length
    df["eval_composer"] = composer
    df["max_context"] = max_context
    df["protocol"] = protocol
    df["benchmark"] = benchmark
    extra = beyond_paper(info.record or {})
    df["note"] = f"{BEYOND_PAPER}: {extra}" + (f"; {note}" if note else "") if extra else note
    return schema.conform(df)


@dataclass
class EvalRequest:
    """Everything that decides an evaluation's result (its identity)."""

    checkpoint: str
    checkpoint_fingerprint: str | None
    benchmark: str
    benchmark_fingerprint: str
    composer: str
    mode: str
    max_context: int
    protocol: str
    fmt: str
    seed: int
    categories: list[str]
    #: protocol-specific settings (perplexity: the completion budget); left out when None, so the
    #: identities of the line-completion evaluations stay what they were
    options: dict[str, Any] | None = None

    def identity(self) -> dict[str, Any]:
        d = asdict(self)
        if d["options"] is None:
            d.pop("options")
        return d


def existing(path: Path, request: EvalRequest) -> bool:
    """True when ``path`` holds this evaluation already; raises on a different config."""
    side = path.with_suffix(".json")
    if not side.exists():
        return False
    rec = read_json(side)
    old = (rec.get("config") or {}).get("identity")
    if old != request.identity():
        diff = sorted(k for k in set(old or {}) | set(request.identity())
                      if (old or {}).get(k) != request.identity().get(k))
        raise EvalConflictError(
            f"evaluation {path.stem!r} exists with a different config (differs in {diff}); nothing was "
            f"overwritten: delete {path.parent}/{path.stem}.* to redo it")
    return path.exists() and path.with_suffix(".summary.csv").exists()


def completion_budget(cfg: dict[str, Any] | None, max_context: int) -> int:
    """Tokens of the completion file in a perplexity evaluation: the profile's usual budget
    (``[repo_training] completion_max_tokens``, else a quarter of the extended length, as training
    sequences are built), never more than ``max_context``."""
    cfg = cfg or {}
    budget = (cfg.get("repo_training") or {}).get("completion_max_tokens")
    if not budget:
        ext = cfg.get("extended_length")
        budget = int(ext) // 4 if ext else int(max_context) // 4
    return max(1, min(int(budget), int(max_context)))


def run_eval(checkpoint: str | os.PathLike[str], *, composer: str, max_context: int, protocol: str | None = None,
             profile: str = "smoke", benchmark: str | Benchmark | None = None, limit: int | None = None,
             cfg: dict[str, Any] | None = None, model=None, tokenizer=None, mode: str | None = None,
             fmt: str = "opencoder", seed: int | None = None, categories: tuple[str, ...] = CATEGORIES,
             engine: str = "fast", batch_tokens: int | None = None, device: str | None = None,
             dtype: str = "auto", out_dir: str | os.PathLike[str] | None = None, progress: bool = True,
             lca_path: str | None = None) -> dict[str, Any]:
    """Evaluate one checkpoint in one setting and store the results (skipped when already there).

    ``protocol="perplexity"`` stores one record per datapoint (the completion file's loss with the
    setting's context and without, :func:`rlctx_utils.evaluation.incontext.file_loss_records`)
    instead of one per target line; the summary has ``line_type`` ``file`` with ``file_loss`` and
    ``file_loss_delta``.

    Returns ``{"eval_id", "path", "skipped", "summary", "lines"}`` (``lines`` is None when skipped).
    """
    from ..config import load_profile
    from .runner import evaluate

    if cfg is None:
        try:
            cfg = load_profile(profile)
        except Exception:  # a custom profile name without a file: presets need lengths
            cfg = {}
    ev = cfg.get("eval") or {}
    protocol = protocol or ev.get("protocol") or "thesis"
    get_protocol(protocol)
    seed = int(seed if seed is not None else ev.get("seed", cfg.get("seed", 0)))
    batch_tokens = int(batch_tokens or ev.get("batch_tokens", 8192))
    info = read_run_record(checkpoint)
    resolved = resolve_composer(composer, info)
    mode = mode or (info.mode if composer == presets.OWN and info.mode else "original")
    bench = benchmark if isinstance(benchmark, Benchmark) else load_benchmark(
        benchmark or default_benchmark(profile, cfg), limit=limit, lca_path=lca_path)
    file_protocol = get_protocol(protocol).target_tokenization == "file"
    options = None
    if file_protocol:  # whole files: no line categories; the completion budget decides the result
        categories = ()
        options = {"completion_max": completion_budget(cfg, int(max_context))}
    request = EvalRequest(checkpoint=info.ref, checkpoint_fingerprint=info.fingerprint, benchmark=bench.name,
                          benchmark_fingerprint=bench.fingerprint, composer=resolved, mode=mode,
                          max_context=int(max_context), protocol=protocol, fmt=fmt, seed=seed,
                          categories=list(categories), options=options)
    eid = eval_id(info, resolved if mode == "original" else f"{resolved}-{mode}", max_context, protocol, bench.name)
    if not file_protocol and set(categories) != set(ev.get("categories") or CATEGORIES):
        # other line categories than the profile's are another evaluation (its own files, no clash)
        eid += "__" + "+".join(c for c in CATEGORIES if c in categories)
    out = evals_dir(profile, out_dir)
    path = out / f"{eid}.parquet"
    # one writer per evaluation (a second one, even with another config, is refused); other
    # evaluations may write the same folder at the same time
    with output_lock(out, f"rlctx eval {eid}", lock_name=f".{eid}.lock"):
        remove_stale_temporaries(out, prefix=f".{eid}.")
        return _run_eval_locked(path, out, eid, request, info, checkpoint, model, tokenizer, dtype, device,
                                file_protocol, bench, resolved, mode, max_context, options, seed, fmt,
                                batch_tokens, protocol, categories, engine, ev, progress, cfg, profile)


def _run_eval_locked(path, out, eid, request, info, checkpoint, model, tokenizer, dtype, device, file_protocol,
                     bench, resolved, mode, max_context, options, seed, fmt, batch_tokens, protocol, categories,
                     engine, ev, progress, cfg, profile) -> dict[str, Any]:
    from .runner import evaluate

    if existing(path, request):
        return {"eval_id": eid, "path": path, "skipped": True, "lines": None,
                "summary": schema.conform(pd.read_csv(out / f"{eid}.summary.csv"))}
    t0 = time.time()
    if model is None:
        from ..models import load_model
        from ..tokenizer import load_tokenizer

        tokenizer = tokenizer or load_tokenizer(str(checkpoint))
        model = load_model(str(checkpoint), dtype=dtype, device=device)
    if file_protocol:
        from .incontext import file_loss_records

        lines = file_loss_records(model, tokenizer, bench.datapoints, composer=resolved, mode=mode,
                                  max_context=int(max_context), completion_max=options["completion_max"],
                                  seed=seed, fmt=fmt, batch_tokens=batch_tokens)
    else:
        lines = evaluate(model, tokenizer, bench.datapoints, composer=resolved, max_context=int(max_context),
                         protocol=protocol, mode=mode, fmt=fmt, seed=seed, categories=categories, engine=engine,
                         batch_tokens=batch_tokens, decode_tokens=ev.get("decode_tokens"), progress=progress)
    wall = time.time() - t0
    summary = summary_rows(lines, info=info, profile=profile, cfg=cfg, composer=resolved,
                           max_context=int(max_context), protocol=protocol, benchmark=bench.name,
                           theta=model_theta(model), mode=mode)
    with atomic_path(path) as tmp:
        lines.to_parquet(tmp, index=False)
    with atomic_path(out / f"{eid}.summary.csv") as tmp:
        summary.to_csv(tmp, index=False)
    write_sidecar(path, {"identity": request.identity(), "engine": engine, "batch_tokens": batch_tokens,
                         "profile": profile, "checkpoint_record": info.record, "n_lines": len(lines),
                         "config_hash": config_hash(request.identity())}, wall_time_s=wall)
    return {"eval_id": eid, "path": path, "skipped": False, "summary": summary, "lines": lines}


def collect_results(profile: str, out_dir: str | os.PathLike[str] | None = None) -> pd.DataFrame:
    """Every stored evaluation summary of a profile, in the tidy schema (validated)."""
    d = evals_dir(profile, out_dir)
    files = sorted(d.glob("*.summary.csv")) if d.exists() else []
    frames = [pd.read_csv(f) for f in files if f.with_name(f.name.replace(".summary.csv", ".json")).exists()]
    if not frames:
        return schema.empty()
    return schema.validate(pd.concat([schema.conform(f) for f in frames], ignore_index=True))


def load_lines(profile: str, eval_id_: str, out_dir: str | os.PathLike[str] | None = None) -> pd.DataFrame:
    """The per-line records of one stored evaluation."""
    return pd.read_parquet(evals_dir(profile, out_dir) / f"{eval_id_}.parquet")


def checkpoints_to_measure(run_ids: list[str], runs_root: Path, out: Path, identity_of, rows: list[dict[str, Any]], *,
                           checkpoint: str = "final"):
    """The runs whose ``<runs_root>/<id>/checkpoints/<checkpoint>`` needs measuring into ``out/<id>.csv``.

    Yields ``(run_id, checkpoint folder, result path, CheckpointInfo, identity)`` for each one to
    compute; appends a row to ``rows`` for the others: ``stored``/``missing`` (no checkpoint here:
    a fresh clone keeps the committed result) or ``skipped`` (the stored sidecar has this identity,
    ``identity_of(info)``). Shared by the per-checkpoint results (loss by position, in-context scores).
    """
    from ..io import read_json

    for rid in run_ids:
        ck = runs_root / rid / "checkpoints" / checkpoint
        path = out / f"{rid}.csv"
        if not ck.is_dir():
            rows.append({"run_id": rid, "state": "stored" if path.exists() else "missing", "wall_time_s": 0.0})
            continue
        info = read_run_record(ck)
        ident = identity_of(info)
        side = path.with_suffix(".json")
        if path.exists() and side.exists() and (read_json(side).get("config") or {}).get("identity") == ident:
            rows.append({"run_id": rid, "state": "skipped", "wall_time_s": 0.0})
            continue
        yield rid, ck, path, info, ident
