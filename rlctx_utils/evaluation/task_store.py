"""Evaluation inputs built once: the line tasks of a benchmark setting, stored as arrays.

Building a setting's prompts (composing the repository context of every target line and
tokenizing it) is CPU work that does not depend on the checkpoint: every checkpoint with the same
tokenizer gets the same prompts. ``rlctx gpu bundle`` builds them here for every setting of a
profile, and :func:`rlctx_utils.evaluation.runner.evaluate` reads them from the folder named by
``RLCTX_EVAL_TASKS`` (or its ``task_store`` argument) when one matches, so a GPU spends its
minutes on the model only. A setting not in the store is built as usual.

A stored set is ``<key>.json`` (format, the setting, one record per line task without its token
ids) and ``<key>.npz.xz`` (prompts and continuations end to end, with offsets; xz finds the
contexts that the lines of one file share). The key hashes everything the tasks depend on:
benchmark datapoints (ids and completion files), tokenizer vocabulary, composer, maximum context,
protocol, mode, format, seed, categories. With ``RLCTX_EVAL_TASKS_ONLY=1`` (a bundle whose
benchmark left the repository snapshots out) a setting that is not stored is an error instead.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..io import atomic_path, write_json

FORMAT = 1
ENV = "RLCTX_EVAL_TASKS"
ONLY_ENV = "RLCTX_EVAL_TASKS_ONLY"
_META = ("datapoint", "repository", "completion_path", "line", "category", "target", "truncated", "lead")


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """Hash of the vocabulary (token -> id): equal for the same tokenizer on any version."""
    cached = getattr(tokenizer, "_rlctx_vocab_hash", None)
    if cached:
        return cached
    vocab = sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1])
    h = hashlib.sha256(json.dumps(vocab, ensure_ascii=False).encode()).hexdigest()[:16]
    try:
        tokenizer._rlctx_vocab_hash = h
    except AttributeError:  # pragma: no cover
        pass
    return h


def task_key(datapoints: Sequence[Any], tokenizer: Any, *, composer: str, max_context: int, protocol: str,
             mode: str, fmt: str, seed: int, categories: Sequence[str]) -> str:
    dps = [(dp.id, dp.completion_path, hashlib.sha1((dp.completion_content or "").encode()).hexdigest()[:12])
           for dp in datapoints]
    blob = json.dumps({"format": FORMAT, "datapoints": dps, "tokenizer": tokenizer_fingerprint(tokenizer),
                       "composer": composer, "max_context": int(max_context), "protocol": str(protocol),
                       "mode": mode, "fmt": fmt, "seed": int(seed), "categories": list(categories)},
                      sort_keys=True)
    label = f"{composer}-{mode}-{int(max_context)}-{protocol}".replace("/", "_")
    return f"{label}-{hashlib.sha256(blob.encode()).hexdigest()[:12]}"


def _flat(rows: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    off = np.zeros(len(rows) + 1, dtype=np.int64)
    off[1:] = np.cumsum([len(r) for r in rows])
    top = max((max(r) for r in rows if r), default=0)
    return np.asarray([t for r in rows for t in r], dtype=np.uint16 if top < 2**16 else np.int32), off


def save_tasks(store: str | os.PathLike[str], key: str, tasks: Sequence[Any], setting: dict[str, Any]) -> Path:
    """Write one setting's tasks (their inputs only) under ``store``; returns the ``.json`` path."""
    d = Path(store)
    prompt, prompt_off = _flat([list(t.prompt) for t in tasks])
    cont, cont_off = _flat([list(t.cont) for t in tasks])
    import lzma

    buf = io.BytesIO()
    np.savez(buf, prompt=prompt, prompt_off=prompt_off, cont=cont, cont_off=cont_off)
    with atomic_path(d / f"{key}.npz.xz") as tmp:
        tmp.write_bytes(lzma.compress(buf.getvalue(), preset=6))
    rows = [{k: getattr(t, k) for k in _META} for t in tasks]
    return write_json(d / f"{key}.json", {"format": FORMAT, "setting": setting, "n_tasks": len(rows),
                                          "tasks": rows})


def load_tasks(store: str | os.PathLike[str] | None, key: str) -> list[Any] | None:
    """The stored tasks of ``key`` (fresh objects, no results yet), or None when not stored."""
    if not store:
        return None
    d = Path(store)
    if not (d / f"{key}.json").is_file() or not (d / f"{key}.npz.xz").is_file():
        return None
    import lzma

    from .runner import LineTask

    meta = json.loads((d / f"{key}.json").read_text())
    if meta.get("format") != FORMAT:
        return None
    with np.load(io.BytesIO(lzma.decompress((d / f"{key}.npz.xz").read_bytes())), allow_pickle=False) as z:
        p, po, c, co = (z[k] for k in ("prompt", "prompt_off", "cont", "cont_off"))
    out = []
    for i, r in enumerate(meta["tasks"]):
        out.append(LineTask(prompt=p[po[i]:po[i + 1]].astype(np.int64).tolist(),
                            cont=c[co[i]:co[i + 1]].astype(np.int64).tolist(), **r))
    return out
