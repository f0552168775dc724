"""Statistics of a mined dataset (notebook 03_data, ``rlctx data stats``), next to LCA's numbers.

Everything is computed from the parquet files without loading snapshots' contents twice: one
streaming pass collects one row per datapoint (repository, split, bucket, lengths, line counts).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from ..io import read_json
from .store import iter_datapoints, load_corpus
from .types import CATEGORIES

#: LCA ``large_context`` as used by the paper (SPEC section 6).
LCA_LARGE = {"datapoints": 270, "inproject_lines": 2595, "infile_lines": 2691}
#: The paper's training set (SPEC section 2).
PAPER_TRAIN = {"repositories": 1640, "commits": 160_801, "completion_files": 361_052,
               "completion_chars": 1.7e9, "validation_datapoints": 2560}


def datapoint_table(data_dir: str | Path, count_tokens: Callable[[str], int] | None = None) -> pd.DataFrame:
    """One row per datapoint: repo, split, bucket, chars, lines, tokens (if a counter is given),
    snapshot size and the raw and sampled line counts per category."""
    rows = []
    for dp in iter_datapoints(data_dir):
        row: dict[str, Any] = {
            "repo": dp.repo, "split": dp.split, "commit_hash": dp.commit_hash, "bucket": dp.meta.get("bucket"),
            "completion_chars": len(dp.completion_content),
            "completion_lines": dp.completion_content.count("\n") + 1,
            "snapshot_files": len(dp.snapshot), "snapshot_py_chars": dp.meta.get("py_chars"),
            "release": dp.meta.get("release"),
        }
        if count_tokens is not None:
            row["completion_tokens"] = count_tokens(dp.completion_content)
        for c in CATEGORIES:
            row[f"raw_{c}"] = len(dp.completion_lines_raw.get(c, []))
            row[f"lines_{c}"] = len(dp.completion_lines.get(c, []))
        rows.append(row)
    return pd.DataFrame(rows)


def category_counts(table: pd.DataFrame, sampled: bool = True) -> pd.DataFrame:
    """Line-category counts per (split, bucket)."""
    pre = "lines_" if sampled else "raw_"
    cols = [pre + c for c in CATEGORIES]
    out = table.groupby(["split", "bucket"])[cols].sum()
    out.columns = list(CATEGORIES)
    return out


def lca_comparison(table: pd.DataFrame, split: str = "benchmark") -> pd.DataFrame:
    """Our benchmark split next to LCA large_context (datapoints and inproject/infile lines)."""
    t = table[table.split == split]
    ours = {"datapoints": len(t), "inproject_lines": int(t["lines_inproject"].sum()) if len(t) else 0,
            "infile_lines": int(t["lines_infile"].sum()) if len(t) else 0}
    return pd.DataFrame({"LCA large_context": LCA_LARGE, f"ours ({split})": ours})


def corpus_table(data_dir: str | Path) -> pd.DataFrame:
    return pd.DataFrame([{"repo": r, "path": p, "chars": len(c)}
                         for r, p, c in load_corpus(data_dir, with_paths=True)])


def dataset_summary(data_dir: str | Path) -> dict[str, Any]:
    """The manifest's counts plus per-split totals recomputed from the files."""
    data_dir = Path(data_dir)
    manifest = read_json(data_dir / "manifest.json")
    table = datapoint_table(data_dir)
    per_split = {}
    if len(table):
        for split, t in table.groupby("split"):
            per_split[split] = {"repositories": int(t.repo.nunique()), "datapoints": len(t),
                                "completion_chars": int(t.completion_chars.sum()),
                                "buckets": t.bucket.value_counts().to_dict(),
                                "sampled_lines": {c: int(t[f"lines_{c}"].sum()) for c in CATEGORIES}}
    return {"splits": per_split, "skips": manifest.get("skips"), "corpus": manifest.get("corpus"),
            "leakage_drops": manifest.get("leakage_drops"), "wall_time_s": manifest.get("mining_wall_time_s")}


def train_quick_tokenizer(texts: Iterable[str], vocab_size: int = 4096):
    """A byte-level BPE trained on ``texts`` with the ``tokenizers`` library, for token counts when
    the project's tokenizer has not been built yet."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(texts, trainer)
    return tok


def load_or_train_tokenizer(path: str | Path, corpus: Iterable[str], vocab_size: int = 2048,
                            max_files: int = 400):
    """The tokenizer at ``path`` (a ``tokenizer.json`` or a folder holding one), or a quick BPE
    trained on the first ``max_files`` corpus files when ``path`` is empty."""
    from itertools import islice

    from tokenizers import Tokenizer

    if path:
        p = Path(path)
        return Tokenizer.from_file(str(p / "tokenizer.json" if p.is_dir() else p))
    return train_quick_tokenizer(islice(corpus, max_files), vocab_size)


def split_overview(table: pd.DataFrame, manifest: dict[str, Any]) -> pd.DataFrame:
    """Repositories, datapoints, characters (and tokens) per split, plus the corpus."""
    rows = {}
    for split in ("train", "validation", "benchmark"):
        t = table[table.split == split] if len(table) else table
        rows[split] = {"repositories": manifest["splits"][split].get("repositories", 0),
                       "datapoints": len(t),
                       "completion_chars": int(t.completion_chars.sum()) if len(t) else 0,
                       "completion_tokens": int(t.completion_tokens.sum()) if "completion_tokens" in t else None,
                       "median_snapshot_files": float(t.snapshot_files.median()) if len(t) else None}
    c = manifest.get("corpus", {})
    rows["corpus (.py files)"] = {"repositories": manifest["splits"]["train"].get("repositories", 0),
                                  "datapoints": c.get("files", 0), "completion_chars": c.get("chars", 0),
                                  "completion_tokens": None, "median_snapshot_files": None}
    return pd.DataFrame(rows).T


def paper_comparison(table: pd.DataFrame, manifest: dict[str, Any]) -> pd.DataFrame:
    """Our training split next to the paper's training set (SPEC section 2)."""
    t = table[table.split == "train"] if len(table) else table
    ours = {"repositories": manifest["splits"]["train"].get("repositories", 0),
            "commits": int(t.groupby(["repo", "commit_hash"]).ngroups) if len(t) else 0,
            "completion_files": len(t), "completion_chars": int(t.completion_chars.sum()) if len(t) else 0,
            "validation_datapoints": int((table.split == "validation").sum()) if len(table) else 0}
    return pd.DataFrame({"paper": PAPER_TRAIN, "ours": ours})


def write_csv(table: pd.DataFrame, path: str | Path) -> Path:
    """Write a table as CSV atomically."""
    from ..io import atomic_path

    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False)
    return Path(path)


def stored_statistics(stats_dir: str | Path) -> tuple[pd.DataFrame, dict[str, Any]] | None:
    """The datapoint table and a manifest-shaped summary that notebook 03 wrote to ``stats_dir``
    (committed for the ``cpu`` profile), or None: what notebook 03 shows before the data is mined."""
    stats_dir = Path(stats_dir)
    csv, summary = stats_dir / "03_data_datapoints.csv", stats_dir / "03_data_summary.json"
    if not (csv.exists() and summary.exists()):
        return None
    s = read_json(summary)
    splits = {k: {"repositories": int(v.get("repositories") or 0), "datapoints": int(v.get("datapoints") or 0)}
              for k, v in s["overview"].items() if k in ("train", "validation", "benchmark")}
    return pd.read_csv(csv), {"splits": splits, "skips": s.get("skips") or {}, "corpus": s.get("corpus") or {},
                              "leakage_drops": s.get("leakage_drops"), "mining_wall_time_s": None}
