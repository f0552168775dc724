"""``rlctx gpu bundle``: everything one GPU run of a profile needs, in one folder (no network there).

Layout of the bundle (``.gpu-bundle/`` by default, git-ignored)::

    manifest.json        profile, overrides, the profile file's sha256, the plan (runs, evaluations),
                         the time estimate, and every file below with its sha256 and size
    wheels/*.whl         what the GPU machine's Python 3.12 lacks (rlctx_utils/gpu/wheels.py)
    tokenizer/           the profile's tokenizer (results/<profile>/tokenizer, trained if missing)
    sequences/<key>/     the base run's windows and every grid run's sequences, composed and
                         tokenized once (training/source.py: save_sequences); runs that differ only
                         in loss or RoPE base share one folder
    benchmark/data/      the benchmark split of the mined data without repository snapshots (parquet)
    tasks/               the evaluation prompts of every setting the run evaluates
                         (evaluation/task_store.py), so the GPU machine composes nothing

A rerun reuses what is already there and matches (sequences, tasks, wheels) and rewrites the
manifest; the manifest is written last.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path
from typing import Any

from ..io import sha256_file as sha256
from ..io import read_json, write_json
from ..paths import CONFIGS, REPO_ROOT, results_dir

DEFAULT_DIR = REPO_ROOT / ".gpu-bundle"
MAX_MIB = 60
#: Assumed for the estimate (no GPU has measured it yet): model FLOPs utilisation of a small model
#: and the measured dense bf16 peak of the lent H200.
EST_MFU = 0.25
PEAK_TFLOPS = 790.0
#: Fixed costs in the estimate, seconds: unpacking the wheels, each child process's start (imports;
#: six of them), the paper-shape speed check (a 1.5B model built, 4 steps of 2 x 16K tokens), each
#: training run (model load, checkpoint), each evaluation (batching, writing), the four notebooks.
OVERHEAD_S = {"install": 20, "process": 10, "processes": 6, "speed": 60, "run": 3, "eval": 0.5, "notebooks": 40}


class BundleError(RuntimeError):
    """A bundle that cannot be built as asked; the message says what to do."""




def profile_fingerprint(profile: str, overrides: list[str]) -> str:
    from ..config import profile_path

    text = profile_path(profile).read_bytes()
    return hashlib.sha256(text + json.dumps(list(overrides)).encode()).hexdigest()[:16]


def resolved_runs(profile: str, overrides: list[str]) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]]:
    """(profile config, base run, grid runs) exactly as the GPU run will resolve them."""
    from ..config import load_profile
    from ..training.runs import grid_runs, resolve_run

    cfg = load_profile(profile, overrides)
    base = resolve_run(cfg, "base")
    grid = [resolve_run(cfg, "repo", r["run_id"]) for r in grid_runs(cfg)]
    return cfg, base, grid


def eval_settings(cfg: dict[str, Any], base: dict[str, Any], grid: list[dict[str, Any]]) -> dict[str, Any]:
    """What the run evaluates: per checkpoint (run id) its (composer, mode, max context) settings."""
    from ..evaluation import presets

    sweep_ids = list((cfg.get("eval") or {}).get("sweep_runs") or [])
    out: dict[str, list[tuple[str, str, int]]] = {}
    for run in [base, *grid]:
        own = run.get("composer") or presets.FILE_LEVEL
        mode = run.get("mode") or "original" if run["stage"] == "repo" else "original"
        todo = []
        for s in presets.preset_settings(cfg):
            if s.composer == presets.OWN:
                todo.append((own, mode, s.max_context))
            else:
                todo.append((s.composer, "original", s.max_context))
        out[run["run_id"]] = list(dict.fromkeys(todo))
    sweep = {rid: [(presets.PATH_DISTANCE, "original", s.max_context) for s in presets.sweep_settings(cfg)]
             for rid in sweep_ids if rid in out}
    return {"presets": out, "sweep": sweep}


def _tokenizer(profile: str, base: dict[str, Any], data_dir: Path, given: str | None) -> Path:
    """The profile's tokenizer folder: given, results/<profile>/tokenizer, or trained there now."""
    if given:
        p = Path(given)
        if not (p / "tokenizer.json").exists():
            raise BundleError(f"--tokenizer {p} holds no tokenizer.json")
        return p
    p = results_dir(profile) / "tokenizer"
    if (p / "tokenizer.json").exists():
        return p
    from ..data.store import load_corpus
    from ..tokenizer import train_tokenizer

    vocab = int((base.get("tokenizer_cfg") or {}).get("vocab_size", 8192))
    print(f"no tokenizer at {p}: training a {vocab}-token BPE on the corpus (as base training would)", flush=True)
    train_tokenizer([text for _, _, text in load_corpus(data_dir, with_paths=True)], vocab_size=vocab, out_dir=p)
    return p


def _copy_tree(src: Path, dst: Path) -> None:
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src, dst)


def _sequences(bundle: Path, tokenizer: Any, base: dict[str, Any], grid: list[dict[str, Any]],
               data_dir: Path, tok_hash: str) -> dict[str, Any]:
    """Compose and tokenize every run's sequences once; returns {key: info} with each run's tokens."""
    from ..data.store import load_corpus, load_datapoints
    from ..training.loop import build_source
    from ..training.source import composition, positions_needed, save_sequences, sequences_key

    groups: dict[str, list[dict[str, Any]]] = {}
    for run in [base, *grid]:
        groups.setdefault(sequences_key(run), []).append(run)
    corpus = datapoints = None
    info: dict[str, Any] = {}
    for key, runs in groups.items():
        d = bundle / "sequences" / key
        need = max(positions_needed(r) for r in runs)
        params = composition(runs[0])
        stamp = {"params": params, "tokenizer": tok_hash, "n_positions": need}
        t0 = time.time()
        if (d / "meta.json").exists() and (d / "bundle.json").exists() and read_json(d / "bundle.json") == stamp:
            meta = read_json(d / "meta.json")
            how = "kept"
        else:
            if runs[0]["stage"] == "base":
                corpus = corpus if corpus is not None else [(p, t) for _, p, t in load_corpus(data_dir, with_paths=True)]
                data = corpus
            else:
                datapoints = datapoints if datapoints is not None else load_datapoints(data_dir, split="train")
                data = datapoints
            run = {k: v for k, v in runs[0].items() if k != "sequences"}
            meta = save_sequences(d, build_source(run, tokenizer, data), n_positions=need, params=params)
            write_json(d / "bundle.json", stamp)
            how = "built"
        print(f"sequences {key}: {meta['n_sequences']} sequences, {meta['n_tokens']:,} tokens for "
              f"{len(runs)} run(s) ({how}, {time.time() - t0:.0f} s)", flush=True)
        info[key] = {"runs": [r["run_id"] for r in runs], "n_sequences": meta["n_sequences"],
                     "n_tokens": meta["n_tokens"], "n_positions": need}
    return info


def _slim_benchmark(data: Path, out: Path) -> None:
    """The benchmark datapoints without their repository snapshots (the stored prompts hold the
    composed contexts; the run evaluates from them only: RLCTX_EVAL_TASKS_ONLY)."""
    import dataclasses

    from ..data.store import iter_datapoints, save_datapoints

    if out.exists():
        shutil.rmtree(out)
    save_datapoints((dataclasses.replace(dp, snapshot={}) for dp in iter_datapoints(data, split="benchmark",
                                                                               with_snapshot=False)),
                    out / "data")


def _run_tokens(bundle: Path, run: dict[str, Any]) -> tuple[int, int]:
    """(tokens, sum of squared sequence lengths) the run trains on, through the stored sequences."""
    from ..training.source import array_source, positions_needed

    src = array_source(bundle / "sequences", run)
    lens = [len(src.get(p)) for p in range(positions_needed(run))]
    return sum(lens), sum(n * n for n in lens)


def _tasks(bundle: Path, cfg: dict[str, Any], settings: dict[str, Any], tokenizer: Any, bench: Any) -> dict[str, Any]:
    from ..data.types import CATEGORIES
    from ..evaluation import task_store
    from ..evaluation.runner import build_tasks

    ev = cfg.get("eval") or {}
    protocols = [p.strip() for p in str(ev.get("protocol", "thesis")).split(",") if p.strip()]
    categories = tuple(ev.get("categories") or CATEGORIES)
    seed = int(ev.get("seed", cfg.get("seed", 0)))
    unique = sorted({s for group in ("presets", "sweep") for ss in settings[group].values() for s in ss})
    out: dict[str, Any] = {}
    for composer, mode, n in unique:
        for proto in protocols:
            kw = dict(composer=composer, max_context=int(n), protocol=proto, mode=mode, fmt="opencoder",
                      seed=seed, categories=categories)
            key = task_store.task_key(bench.datapoints, tokenizer, **kw)
            t0 = time.time()
            path = bundle / "tasks" / f"{key}.json"
            if path.exists() and (bundle / "tasks" / f"{key}.npz.xz").exists():
                meta = read_json(path)
            else:
                tasks = build_tasks(bench.datapoints, tokenizer, **kw)
                lens = [len(t.prompt) + len(t.cont) for t in tasks]
                task_store.save_tasks(bundle / "tasks", key, tasks,
                                      setting={**kw, "n_tokens": sum(lens), "n_tokens_sq": sum(x * x for x in lens)})
                meta = read_json(path)
            n_tok = meta["setting"]["n_tokens"]
            out[f"{composer}|{mode}|{n}|{proto}"] = {"key": key, "n_tasks": meta["n_tasks"], "n_tokens": n_tok,
                                                     "n_tokens_sq": meta["setting"]["n_tokens_sq"]}
            print(f"tasks {composer} ({mode}) @ {n} {proto}: {meta['n_tasks']} lines, {n_tok:,} tokens "
                  f"({time.time() - t0:.0f} s)", flush=True)
    return out


def estimate(model: dict[str, int], run_tokens: dict[str, tuple[int, int]], settings: dict[str, Any],
             tasks: dict[str, Any], protocols: list[str], *, mfu: float = EST_MFU,
             peak_tflops: float = PEAK_TFLOPS, checkpointing: bool = False) -> dict[str, Any]:
    """Seconds the run should take on the GPU, from FLOPs at ``mfu`` of ``peak_tflops``.

    Training: 6 N per token plus 6 L d T per token of a T-token sequence (causal attention), x 4/3
    with gradient checkpointing. Evaluation: 2 N + 2 L d T per prompt token, every prompt computed
    whole (the engine shares the prefix of a file's lines, so this is an upper bound). N counts
    every parameter. Plus the fixed costs of :data:`OVERHEAD_S`. An estimate until measured."""
    n, L, d = model["n_params"], model["layers"], model["hidden"]
    rate = mfu * peak_tflops * 1e12
    ck = 4 / 3 if checkpointing else 1.0
    train_s = {rid: (6 * n * tok + 6 * L * d * sq) * ck / rate for rid, (tok, sq) in run_tokens.items()}
    n_evals, eval_tokens, eval_flops = 0, 0, 0.0
    for group in ("presets", "sweep"):
        for ss in settings[group].values():
            for composer, mode, size in ss:
                for proto in protocols:
                    t = tasks[f"{composer}|{mode}|{size}|{proto}"]
                    n_evals += 1
                    eval_tokens += t["n_tokens"]
                    eval_flops += 2 * n * t["n_tokens"] + 2 * L * d * t["n_tokens_sq"]
    eval_s = eval_flops / rate
    o = OVERHEAD_S
    fixed = (o["install"] + o["process"] * o["processes"] + o["speed"] + o["run"] * len(run_tokens)
             + o["eval"] * n_evals + o["notebooks"])
    total = sum(train_s.values()) + eval_s + fixed
    return {"assumed_mfu": mfu, "peak_tflops": peak_tflops, **model,
            "train_tokens": sum(t for t, _ in run_tokens.values()), "train_s": round(sum(train_s.values()), 1),
            "per_run_train_s": {k: round(v, 1) for k, v in train_s.items()}, "evaluations": n_evals,
            "eval_tokens": eval_tokens, "eval_s": round(eval_s, 1), "fixed_s": round(fixed, 1),
            "total_s": round(total, 1),
            "note": "estimated from FLOPs at an assumed MFU, not measured: replace with the run's stage times"}


def build_bundle(profile: str, out: str | Path = DEFAULT_DIR, *, overrides: list[str] | None = None,
                 data_dir: str | Path | None = None, tokenizer: str | None = None, wheels: bool = True,
                 python_version: str = "3.12", max_mib: float = MAX_MIB) -> dict[str, Any]:
    """Build (or refresh) the bundle of ``profile``; returns the manifest."""
    from ..evaluation.cli import profile_benchmark
    from ..evaluation import task_store
    from ..models import build_model, count_parameters
    from ..tokenizer import load_tokenizer

    t_start = time.time()
    overrides = list(overrides or [])
    bundle = Path(out) if out else DEFAULT_DIR
    cfg, base, grid = resolved_runs(profile, overrides)
    data = Path(data_dir) if data_dir else results_dir(profile) / "data"
    spec = (cfg.get("data") or {}).get("spec") or f"configs/data/{profile}.toml"
    if not list((data / "data").glob("train-*.parquet")) or not list((data / "corpus").glob("*.parquet")):
        raise BundleError(f"no mined data in {data}: mine it first (rlctx mine pypi --spec {spec} --out {data})")
    bench_files = sorted((data / "data").glob("benchmark-*.parquet"))
    if not bench_files:
        raise BundleError(f"{data} has no benchmark split: mine the profile's data again")
    bundle.mkdir(parents=True, exist_ok=True)
    (bundle / "manifest.json").unlink(missing_ok=True)  # an incomplete bundle has no manifest

    tok_dir = _tokenizer(profile, base, data, tokenizer)
    _copy_tree(tok_dir, bundle / "tokenizer")
    tok = load_tokenizer(str(bundle / "tokenizer"))
    tok_hash = task_store.tokenizer_fingerprint(tok)
    sequences = _sequences(bundle, tok, base, grid, data, tok_hash)
    run_tokens = {r["run_id"]: _run_tokens(bundle, r) for r in [base, *grid]}

    ev = cfg.get("eval") or {}
    bench = profile_benchmark(str(data), cfg, limit=ev.get("limit"))
    _slim_benchmark(data, bundle / "benchmark")
    settings = eval_settings(cfg, base, grid)
    tasks = _tasks(bundle, cfg, settings, tok, bench)
    keep = {v["key"] for v in tasks.values()}
    for f in (bundle / "tasks").glob("*"):
        if f.name.split(".", 1)[0] not in keep:
            f.unlink()

    wheel_pins: list[tuple[str, str]] = []
    if wheels:
        from . import wheels as W

        wheel_pins = W.plan(python_version=python_version)
        got = W.download(wheel_pins, bundle / "wheels", python_version=python_version)
        names = {W.wheel_name(w)[0] for w in got}
        missing = [n for n, _ in wheel_pins if n not in names]
        if missing:
            raise BundleError(f"no wheel downloaded for {missing}")
        for w in (bundle / "wheels").glob("*.whl"):
            if w not in got:
                w.unlink()
    elif (bundle / "wheels").exists():
        shutil.rmtree(bundle / "wheels")

    model = build_model((base.get("model") or {})["preset"], len(tok), seed=0)
    dims = {"n_params": count_parameters(model)["total"], "layers": int(model.config.num_hidden_layers),
            "hidden": int(model.config.hidden_size)}
    del model
    protocols = [p.strip() for p in str(ev.get("protocol", "thesis")).split(",") if p.strip()]
    gc = base.get("gradient_checkpointing", "auto")
    est = estimate(dims, run_tokens, settings, tasks, protocols, checkpointing=gc in (True, "auto"))
    files = {}
    for f in sorted(p for p in bundle.rglob("*") if p.is_file() and p.name != "manifest.json"
                    and ".site" not in p.relative_to(bundle).parts):
        files[str(f.relative_to(bundle))] = {"sha256": sha256(f), "bytes": f.stat().st_size}
    total = sum(v["bytes"] for v in files.values())
    manifest = {
        "format": 1, "profile": profile, "overrides": overrides,
        "profile_sha256": profile_fingerprint(profile, overrides),
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "python_version": python_version,
        "base_run": base["run_id"], "grid_runs": [r["run_id"] for r in grid],
        "sweep_runs": list(settings["sweep"]), "settings": settings, "protocols": protocols,
        "benchmark": {"name": bench.name, "n_datapoints": len(bench.datapoints), "limit": ev.get("limit"),
                      "per_repo": ev.get("per_repo"), "snapshots": False},
        "sequences": sequences, "run_tokens": {k: v[0] for k, v in run_tokens.items()}, "tasks": tasks, "tokenizer_fingerprint": tok_hash,
        "wheels": [f"{n}=={v}" for n, v in wheel_pins], "estimate": est,
        "total_bytes": total, "total_mib": round(total / 2**20, 2), "files": files,
        "build_s": round(time.time() - t_start, 1),
    }
    if total > max_mib * 2**20:
        raise BundleError(f"the bundle is {total / 2**20:.1f} MiB, over {max_mib} MiB: shrink the profile "
                          f"(fewer steps or benchmark lines) and rebuild")
    write_json(bundle / "manifest.json", manifest)
    return manifest


def describe(manifest: dict[str, Any]) -> str:
    est = manifest["estimate"]
    by_dir: dict[str, int] = {}
    for name, f in manifest["files"].items():
        by_dir[name.split("/", 1)[0]] = by_dir.get(name.split("/", 1)[0], 0) + f["bytes"]
    parts = ", ".join(f"{k} {v / 2**20:.1f}" for k, v in sorted(by_dir.items()))
    return (f"bundle of {manifest['profile']}: {manifest['total_mib']} MiB ({parts} MiB); "
            f"{1 + len(manifest['grid_runs'])} runs, {est['train_tokens']:,} training tokens, "
            f"{est['evaluations']} evaluations ({est['eval_tokens']:,} prompt tokens); estimated "
            f"{est['total_s'] / 60:.1f} min on the GPU (train {est['train_s']:.0f} s + eval {est['eval_s']:.0f} s "
            f"+ fixed {est['fixed_s']} s at an assumed MFU of {est['assumed_mfu']:.0%} of "
            f"{est['peak_tflops']:.0f} TFLOP/s)")
