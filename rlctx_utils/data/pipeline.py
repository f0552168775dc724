"""A mining run: many repositories -> labelled, split, leakage-checked parquet in one folder.

Steps (each repository independently, then once for the whole run):

1. *Mine* each repository (git history or PyPI release series) with the paper's filters.
2. *Label* every datapoint: raw line categories, the LCA sample of target lines (seeded per
   datapoint), the size bucket of its snapshot (characters of ``.py``).
3. *Checkpoint* the repository into ``DIR/.work/repos/<name>/`` (datapoints, corpus candidates,
   content hashes, skip counts, ``done.json``) in one atomic rename: an interrupted run resumes
   without redoing finished repositories. A finished repository is reused only when its mining
   config, its split, its *source key* (the git HEAD; for PyPI the pinned release list and
   sha256s) and the common-name list of the line categories are unchanged: a new commit, a changed
   spec or a new list mines it again.
4. *Finalize*: splits are repository-disjoint by construction (each repository has one split).
   A file whose normalized content appears in a benchmark repository is removed from validation and
   training, one appearing in a validation repository from training (vendored copies must not sit on
   both sides of a split). Validation keeps at most ``max_per_repo_validation`` datapoints per
   repository (the newest). The corpus is every distinct ``.py`` file of the training repositories'
   newest tree. ``DIR/data``, ``DIR/corpus`` and ``DIR/manifest.json`` are then written atomically.

Nothing is written outside ``DIR``. The run holds ``DIR/.rlctx.lock`` (see
:func:`rlctx_utils.io.output_lock`): a second writer on the same folder is refused; the temporaries
a killed run left in ``DIR`` are removed when the next run starts.
"""

from __future__ import annotations

import re
import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..io import atomic_dir, output_lock, read_json, remove_stale_temporaries, sidecar, write_json
from .config import MiningConfig
from .errors import DataError, DownloadError, MiningConfigError
from .git_miner import RepoMining
from .lines import classify_lines, sample_lines, size_bucket
from .snapshots import py_chars
from .store import SPLITS, content_sha1, iter_datapoints, save_corpus, save_datapoints
from .types import CATEGORIES, Datapoint


@dataclass
class RepoSource:
    """One repository to mine: its name, split and a function that mines it."""

    name: str
    split: str
    mine: Callable[[], RepoMining]
    kind: str = "git"
    #: What the repository's content is (git HEAD, PyPI release pins): resume only when it is unchanged.
    key: str = ""


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)[:120] or "_"


def labels_key() -> str:
    """What the line categories depend on besides the mining config (the common-name list): a
    finished repository labelled with another list is mined again, not resumed."""
    import hashlib

    from .lines import common_names
    return hashlib.sha256("\n".join(sorted(common_names())).encode()).hexdigest()[:12]


def label(dp: Datapoint, added: dict[str, str | None], cfg: MiningConfig) -> Datapoint:
    """Attach raw and sampled line categories and the size bucket to a datapoint."""
    others = {p: t for p, t in added.items() if p != dp.completion_path}
    dp.completion_lines_raw = classify_lines(dp.completion_content, dp.snapshot, others,
                                             completion_path=dp.completion_path)
    dp.completion_lines = sample_lines(dp.completion_lines_raw, f"{cfg.seed}:{dp.id}")
    n = py_chars(dp.snapshot)
    dp.meta.update({"py_chars": n, "bucket": size_bucket(n, cfg.bucket_thresholds),
                    "n_files": len(dp.snapshot)})
    return dp


def _mine_one(src: RepoSource, cfg: MiningConfig, repo_dir: Path) -> dict[str, Any]:
    t0 = time.perf_counter()
    with atomic_dir(repo_dir) as tmp:
        try:
            mined = src.mine()
        except DownloadError:  # transient or a wrong pin: stop, nothing is marked done
            raise
        except DataError as exc:  # an unsafe archive or broken repository: count and go on
            info = {"repo": src.name, "split": src.split, "error": str(exc),
                    "stats": {f"repository_error:{type(exc).__name__}": 1}, "datapoints": 0,
                    "config_hash": cfg.hash(), "source_key": src.key, "labels_key": labels_key()}
            write_json(tmp / "done.json", info)
            return info
        for dp in mined.datapoints:
            dp.split = src.split
            dp.repo = src.name
        dps = [label(dp, mined.added_files.get(dp.commit_hash, {}), cfg) for dp in mined.datapoints]
        save_datapoints(dps, tmp, shard_rows=cfg.shard_rows)
        completion_hashes = sorted({content_sha1(dp.completion_content) for dp in dps})
        head_py = {p: t for p, t in mined.head_files.items() if p.endswith(".py") and t}
        head_hashes = sorted({content_sha1(t) for t in head_py.values()})
        corpus = [{"repo": src.name, "path": p, "content": t, "sha1": content_sha1(t)}
                  for p, t in sorted(head_py.items())]
        save_corpus(corpus, tmp)
        info = {"repo": src.name, "split": src.split, "kind": src.kind, "commits": mined.commits,
                "datapoints": len(dps), "stats": dict(mined.stats),
                "completion_hashes": completion_hashes, "head_hashes": head_hashes,
                "head_files": len(mined.head_files), "head_py_chars": sum(map(len, head_py.values())),
                "wall_time_s": round(time.perf_counter() - t0, 3), "config_hash": cfg.hash(),
                "source_key": src.key, "labels_key": labels_key()}
        write_json(tmp / "done.json", info)
    return info


def mine_all(sources: Iterable[RepoSource], out_dir: str | Path, cfg: MiningConfig,
             run_config: dict[str, Any] | None = None, force: bool = False,
             progress: bool = True) -> dict[str, Any]:
    """Mine every source into ``out_dir`` (resuming finished repositories) and finalize it."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise DataError(f"--out {out} is a file, not a folder: pass a folder path")
    with output_lock(out, "rlctx mine"):
        remove_stale_temporaries(out)
        remove_stale_temporaries(out / ".work", depth=2)
        return _mine_all(list(sources), out, cfg, run_config, force, progress)


def _mine_all(sources: list[RepoSource], out: Path, cfg: MiningConfig, run_config: dict[str, Any] | None,
              force: bool, progress: bool) -> dict[str, Any]:
    from tqdm.auto import tqdm

    work = out / ".work"
    names = [s.name for s in sources]
    if len(set(names)) != len(names):
        raise DataError(f"repository names must be unique, got {names}")
    bad = [s.split for s in sources if s.split not in SPLITS]
    if bad:
        raise DataError(f"unknown split(s) {bad}: use {SPLITS}")
    cfg_file = work / "config.json"
    if cfg_file.exists() and not force:
        old = read_json(cfg_file)
        if old.get("config_hash") != cfg.hash():
            raise MiningConfigError(f"{out} was mined with a different configuration; pass a new --out "
                                    "folder or --force to start over")
    if force and work.exists():
        shutil.rmtree(work)
    write_json(cfg_file, {"config_hash": cfg.hash(), "config": cfg.as_dict()})

    t0 = time.perf_counter()
    infos: list[dict[str, Any]] = []
    resumed = 0
    excluded = [s.name for s in sources if s.name in cfg.exclude_repos]
    todo = [s for s in sources if s.name not in cfg.exclude_repos]
    for src in tqdm(todo, desc="repositories", unit="repo", disable=not progress):
        repo_dir = work / "repos" / _safe(src.name)
        done = repo_dir / "done.json"
        if done.exists():
            info = read_json(done)
            if info.get("config_hash") == cfg.hash() and info.get("split") == src.split \
                    and info.get("source_key", "") == src.key and info.get("labels_key") == labels_key():
                infos.append(info)
                resumed += 1
                continue
        infos.append(_mine_one(src, cfg, repo_dir))
    manifest = finalize(out, infos, cfg, run_config or {}, excluded=excluded)
    manifest["resumed_repositories"] = resumed
    manifest["mining_wall_time_s"] = round(time.perf_counter() - t0, 3)
    write_json(out / "manifest.json", {**manifest, **sidecar(run_config or {}, manifest["mining_wall_time_s"])})
    return manifest


def _kept(infos: list[dict[str, Any]], work: Path, cfg: MiningConfig, drops: Counter) -> Iterator[Datapoint]:
    bench = {h for i in infos if i["split"] == "benchmark" for h in
             i.get("completion_hashes", []) + i.get("head_hashes", [])}
    val = {h for i in infos if i["split"] == "validation" for h in
           i.get("completion_hashes", []) + i.get("head_hashes", [])}
    for info in infos:
        if info.get("error"):
            continue
        split = info["split"]
        cap = {"train": cfg.max_per_repo, "validation": cfg.max_per_repo_validation,
               "benchmark": cfg.max_per_repo_benchmark}[split]
        n = 0
        for dp in iter_datapoints(work / "repos" / _safe(info["repo"]), split):
            h = content_sha1(dp.completion_content)
            if split != "benchmark" and h in bench:
                drops[f"{split}:content_in_benchmark"] += 1
                continue
            if split == "train" and h in val:
                drops["train:content_in_validation"] += 1
                continue
            if n >= cap:
                drops[f"{split}:over_max_per_repo"] += 1
                continue
            n += 1
            yield dp


def finalize(out: Path, infos: list[dict[str, Any]], cfg: MiningConfig, run_config: dict[str, Any],
             excluded: list[str] | None = None) -> dict[str, Any]:
    """Write ``out/data``, ``out/corpus`` and return the manifest (see the module docstring)."""
    work = out / ".work"
    drops: Counter = Counter()
    counts: dict[str, Counter] = {s: Counter() for s in SPLITS}
    per_repo: dict[str, Counter] = {}

    def tally(dps: Iterator[Datapoint]) -> Iterator[Datapoint]:
        for dp in dps:
            c = counts[dp.split]
            c["datapoints"] += 1
            c[f"bucket:{dp.meta.get('bucket')}"] += 1
            c["completion_chars"] += len(dp.completion_content)
            for cat in CATEGORIES:
                c[f"lines:{cat}"] += len(dp.completion_lines.get(cat, []))
                c[f"raw:{cat}"] += len(dp.completion_lines_raw.get(cat, []))
            per_repo.setdefault(dp.repo, Counter())["datapoints"] += 1
            yield dp

    with atomic_dir(out / "data") as tmp:
        save_datapoints(tally(_kept(infos, work, cfg, drops)), tmp, shard_rows=cfg.shard_rows)

    eval_hashes = {h for i in infos if i["split"] != "train" for h in
                   i.get("completion_hashes", []) + i.get("head_hashes", [])}
    corpus_stats: Counter = Counter()

    def corpus_rows() -> Iterator[dict[str, str]]:
        from .store import load_corpus
        seen: set[str] = set()
        for info in infos:
            if info["split"] != "train" or info.get("error"):
                continue
            for repo, path, content in load_corpus(work / "repos" / _safe(info["repo"]), with_paths=True):
                h = content_sha1(content)
                if h in eval_hashes:
                    corpus_stats["content_in_eval_split"] += 1
                elif h in seen:
                    corpus_stats["duplicate_content"] += 1
                elif len(content) > cfg.corpus_max_chars:
                    corpus_stats["too_long"] += 1
                elif not content.strip():
                    corpus_stats["empty"] += 1
                else:
                    seen.add(h)
                    corpus_stats["files"] += 1
                    corpus_stats["chars"] += len(content)
                    yield {"repo": repo, "path": path, "content": content, "sha1": h}

    with atomic_dir(out / "corpus") as tmp:
        save_corpus(corpus_rows(), tmp)

    skips: Counter = Counter()
    for info in infos:
        skips.update(info.get("stats", {}))
    repos = {s: sorted(i["repo"] for i in infos if i["split"] == s) for s in SPLITS}
    return {
        "splits": {s: {"repositories": len(repos[s]), **dict(counts[s])} for s in SPLITS},
        "repositories": repos,
        "excluded_repositories": sorted(excluded or []),
        "per_repository": {i["repo"]: {"split": i["split"], "mined": i.get("datapoints", 0),
                                       "kept": per_repo.get(i["repo"], Counter())["datapoints"],
                                       "commits": i.get("commits"), "error": i.get("error"),
                                       "head_py_chars": i.get("head_py_chars"),
                                       "skips": i.get("stats", {}), "wall_time_s": i.get("wall_time_s")}
                           for i in infos},
        "skips": dict(sorted(skips.items())),
        "leakage_drops": dict(sorted(drops.items())),
        "corpus": dict(corpus_stats),
        "mining_config": cfg.as_dict(),
        "config_hash": cfg.hash(),
    }
