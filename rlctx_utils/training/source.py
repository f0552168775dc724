"""The data order of a run: which sequence each optimizer step sees.

Comparisons across the grid are only fair if every run sees the same datapoints in the same order
(SPEC section 5: "Same data order and hyperparameters for every run"). Here the order is a
function of the seed and of the datapoint ids only, never of the composer:

* items are sorted by id, then shuffled with a generator seeded by ``(seed, epoch)``;
* step ``k`` consumes positions ``k*B .. (k+1)*B - 1`` of that endless order (``B`` sequences per
  step), and process ``r`` of ``P`` builds positions ``r, r+P, ...`` of the step;
* a sequence is built lazily from its datapoint with a per-datapoint seed derived from
  ``(seed, datapoint id)``, so it does not depend on what was built before it (exact resume).

:meth:`SequenceSource.order_hash` fingerprints the first epoch; a grid's runs share it.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Iterable, Sequence as Seq
from pathlib import Path
from typing import Any

import numpy as np

from .sequences import IGNORE, TrainSequence, corpus_item, derive_seed, make_labels


class DataError(ValueError):
    """Training data that is missing or empty; the message says how to make it."""


class SequenceSource:
    """An endless, seeded order over items, each turned into a :class:`TrainSequence` on demand."""

    def __init__(self, ids: Seq[str], build: Callable[[int], TrainSequence], seed: int, n_prefix: int = 0):
        if not ids or len(ids) <= n_prefix:
            raise DataError("no training items: the data set is empty")
        #: the last ``n_prefix`` items come first, in order, before the endless shuffled order of
        #: the others (a curriculum's warm-up phase)
        self.n_prefix = int(n_prefix)
        pool = len(ids) - self.n_prefix
        self._prefix = list(range(pool, len(ids)))
        self._sorted = sorted(range(pool), key=lambda i: ids[i])
        self.ids = list(ids)
        self.build = build
        self.seed = int(seed)
        self._orders: dict[int, list[int]] = {}

    def __len__(self) -> int:
        return len(self.ids)

    def order(self, epoch: int) -> list[int]:
        """Item indices in the order of ``epoch`` (a seeded shuffle of the id-sorted items)."""
        if epoch not in self._orders:
            idx = list(self._sorted)
            random.Random(derive_seed(self.seed, f"order:{epoch}")).shuffle(idx)
            self._orders = {epoch: idx}  # keep one epoch in memory
        return self._orders[epoch]

    def item_at(self, pos: int) -> int:
        pos = int(pos)
        if pos < self.n_prefix:
            return self._prefix[pos]
        epoch, k = divmod(pos - self.n_prefix, len(self._sorted))
        return self.order(epoch)[k]

    def get(self, pos: int) -> TrainSequence:
        return self.build(self.item_at(pos))

    def ids_in_order(self, n: int | None = None) -> list[str]:
        n = len(self.ids) if n is None else n  # the prefix and the first epoch
        return [self.ids[self.item_at(p)] for p in range(n)]

    def order_hash(self) -> str:
        """SHA-256 (first 16 hex digits) of the first epoch's id order."""
        return hashlib.sha256("\n".join(self.ids_in_order()).encode()).hexdigest()[:16]


def datapoint_source(datapoints: Seq[Any], *, build_kwargs: dict[str, Any], seed: int) -> SequenceSource:
    """Stage B: one sequence per datapoint, composed lazily (see :func:`build_repo_sequence`)."""
    from .sequences import build_repo_sequence

    dps = list(datapoints)
    return SequenceSource([dp.id for dp in dps],
                          lambda i: build_repo_sequence(dps[i], seed=seed, **build_kwargs), seed)


def _encode_batch(tokenizer: Any, texts: list[str]) -> list[list[int]]:
    return [list(x) for x in tokenizer(texts, add_special_tokens=False)["input_ids"]]


REPEAT_KINDS = ("code", "random")


def corpus_source(items: Iterable[Any], *, tokenizer: Any, seq_len: int, seed: int,
                  fmt: str = "opencoder", batch: int = 256, repeat_fraction: float = 0.0,
                  repeat_kind: str = "code", repeat_warmup: int = 0, repeat_alphabet: int = 0,
                  repeat_span: int = 0, repeat_isolated: bool = False) -> SequenceSource:
    """Stage A: every file rendered and cut into windows of ``seq_len`` tokens (full loss).

    Files are tokenized in batches up front (the corpus is small at CPU scale); the windows are the
    items the seeded order shuffles. A window id is the file's content hash and the window index.

    ``repeat_fraction`` > 0 adds *repeat sequences* so that they make up that share of the items:
    a span written twice, ``x x`` (``seq_len // 2`` tokens each), which only a model that copies
    from its context can predict the second time. ``code``: a span of a corpus window (real code);
    ``random``: tokens drawn uniformly from the ordinary (non-special) vocabulary. Each repeat item
    is built from a seed derived from ``(seed, item id)``, like every other item. This is the
    curriculum that makes induction heads form within a CPU budget (results/cpu/tuning/).
    ``repeat_alphabet`` > 0 draws ``random`` repeats from that many ordinary ids only (a seeded
    choice): a small alphabet is where induction heads were seen to form within a few hundred steps.
    ``repeat_span`` > 0 makes a repeat item of blocks ``x1 x1 x2 x2 ...`` of that many tokens each
    (up to ``seq_len``) instead of one half written twice: with a small alphabet a long span repeats
    its own tokens many times, so the token to copy is ambiguous; short spans keep it unique (at 500
    ids and 1,024-token halves nothing copied within 250 steps; with 128-token blocks see
    results/cpu/tuning/).
    ``repeat_isolated`` makes every block pair ``x x`` of a repeat item its own document: positions
    restart and no token attends to (or is trained to predict from) another pair, exactly as
    packed sequences (``meta["doc_length"]``, read by :func:`~rlctx_utils.training.packing.collate`).
    A model then learns to copy at the pair's length (where induction heads form within a few
    hundred steps) while every step keeps the tokens of ``seq_len`` windows.
    ``repeat_warmup`` > 0 puts that many repeat sequences first (a warm-up phase of repeats only,
    before the mixed, shuffled order).
    """
    if not 0.0 <= float(repeat_fraction) < 1.0:
        raise DataError(f"repeat_fraction must be in [0, 1), got {repeat_fraction!r}")
    if repeat_kind not in REPEAT_KINDS:
        raise DataError(f"repeat_kind must be one of {REPEAT_KINDS}, got {repeat_kind!r}")
    from rlctx_utils.composers import render_completion

    windows: list[list[int]] = []
    ids: list[str] = []
    pending: list[tuple[str, str]] = []
    min_len = min(32, max(2, seq_len // 10))

    def flush() -> None:
        encoded = _encode_batch(tokenizer, [r for _, r in pending])
        for (key, _), toks in zip(pending, encoded):
            for w, start in enumerate(range(0, len(toks), seq_len)):
                win = toks[start:start + seq_len]
                if len(win) < 2 or (start > 0 and len(win) < min_len):
                    break
                windows.append(win)
                ids.append(f"{key}:{w}")
        pending.clear()

    for n, item in enumerate(items):
        path, text = corpus_item(item)
        if not text or not text.strip():
            continue
        key = hashlib.sha1(f"{path}\0{text}".encode()).hexdigest()[:16]
        pending.append((key, render_completion(path or f"file_{n}.py", text, fmt)))
        if len(pending) >= batch:
            flush()
    if pending:
        flush()
    if not windows:
        raise DataError("the file-level corpus holds no text")

    n_windows = len(windows)
    n_repeat = int(round(n_windows * repeat_fraction / (1.0 - repeat_fraction))) if repeat_fraction else 0
    ids.extend(f"repeat-{repeat_kind}:{k}" for k in range(n_repeat))
    ids.extend(f"repeat-warmup-{repeat_kind}:{k}" for k in range(int(repeat_warmup)))
    special = set(getattr(tokenizer, "all_special_ids", None) or [])
    ordinary = np.array([t for t in range(len(tokenizer)) if t not in special], dtype=np.int64)
    if repeat_alphabet:
        pick = np.random.default_rng(derive_seed(seed, "repeat-alphabet")).permutation(len(ordinary))
        ordinary = np.sort(ordinary[pick[: int(repeat_alphabet)]])
    if int(repeat_span) < 0:
        raise DataError(f"repeat_span must be >= 0, got {repeat_span!r}")
    half = max(1, seq_len // 2)
    block = min(int(repeat_span), half) if repeat_span else half

    def one_span(rng: np.random.Generator, n: int) -> list[int]:
        if repeat_kind == "random":
            return ordinary[rng.integers(0, len(ordinary), n)].tolist()
        w = windows[int(rng.integers(0, n_windows))]
        if repeat_span:  # blocks: a window long enough for a whole block (8 draws, then the longest)
            tries = [w] + [windows[int(rng.integers(0, n_windows))] for _ in range(7)] if len(w) < n else [w]
            w = next((x for x in tries if len(x) >= n), max(tries, key=len))
        start = int(rng.integers(0, max(1, len(w) - n + 1)))
        return w[start:start + n]

    def repeat_sequence(i: int) -> list[int]:
        rng = np.random.default_rng(derive_seed(seed, ids[i]))
        out: list[int] = []
        while len(out) + 2 * block <= max(2 * block, seq_len):
            span = one_span(rng, block)
            out += span + span
        return out

    if repeat_isolated and not repeat_span:
        raise DataError("repeat_isolated needs repeat_span (the block length of each isolated pair)")

    def build(i: int) -> TrainSequence:
        if i >= n_windows:
            w = repeat_sequence(i)
            labels = make_labels(w, 0, "full")
            meta: dict[str, Any] = {"id": ids[i]}
            if repeat_isolated:
                meta["doc_length"] = 2 * block
                for start in range(0, len(w), 2 * block):
                    labels[start] = IGNORE
            return TrainSequence(w, labels, n_completion=len(w), meta=meta)
        w = windows[i]
        return TrainSequence(w, make_labels(w, 0, "full"), n_completion=len(w), meta={"id": ids[i]})

    return SequenceSource(ids, build, seed, n_prefix=int(repeat_warmup))


# ------------------------------------------------------------------------ pre-tokenized sequences
#: What decides a run's token sequences (not its loss: masked and full runs share the tokens).
COMPOSITION_KEYS = {"base": ("stage", "seq_len", "seed", "fmt", "repeat_fraction", "repeat_kind",
                             "repeat_warmup_steps", "repeat_alphabet", "sequences_per_step"),
                    "repo": ("stage", "seq_len", "seed", "fmt", "composer", "mode", "completion_max_tokens",
                             "repo_name_header", "split")}
SEQUENCES_FORMAT = 1


def composition(run: dict[str, Any]) -> dict[str, Any]:
    """The part of a resolved run that decides its sequences' tokens (loss aside)."""
    defaults = {"fmt": "opencoder", "mode": "original", "completion_max_tokens": None,
                "repeat_fraction": 0.0, "repeat_kind": "code", "repeat_warmup_steps": 0, "repeat_alphabet": 0,
                "repo_name_header": False, "split": "train"}
    out = {k: run.get(k, defaults.get(k)) for k in COMPOSITION_KEYS[run["stage"]]}
    if run["stage"] == "base" and int(run.get("repeat_span") or 0):  # absent when 0: older identities hold
        out["repeat_span"] = int(run["repeat_span"])
    if run["stage"] == "base" and run.get("repeat_isolated"):
        out["repeat_isolated"] = True
    out["seq_len"], out["seed"] = int(out["seq_len"]), int(out["seed"])
    if out.get("completion_max_tokens") in (0, None):
        out["completion_max_tokens"] = None
    return out


def sequences_key(run: dict[str, Any]) -> str:
    """Folder name of a run's pre-tokenized sequences: runs that share it share the tokens."""
    c = composition(run)
    if c["stage"] == "base":
        return f"base-L{c['seq_len']}"
    return f"{c['composer']}-{c['mode']}-L{c['seq_len']}"


def positions_needed(run: dict[str, Any]) -> int:
    return int(run["stop_step"]) * int(run["sequences_per_step"])


def _save_array(path: Path, arr: np.ndarray) -> None:
    """``.npy`` written through ``lzma`` (xz): composed contexts repeat files, which xz's window finds."""
    import lzma

    from ..io import atomic_path

    with atomic_path(path) as tmp, lzma.open(tmp, "wb", preset=6) as fh:
        np.save(fh, arr, allow_pickle=False)


def _load_array(path: Path) -> np.ndarray:
    import lzma

    with lzma.open(path, "rb") as fh:
        return np.load(fh, allow_pickle=False)


def save_sequences(out_dir: str | Path, source: SequenceSource, *, n_positions: int,
                   params: dict[str, Any]) -> dict[str, Any]:
    """Build the sequences of positions ``0 .. n_positions - 1`` once and store them as arrays.

    ``tokens.npy.xz`` (uint16 when every id fits, else int32) holds the sequences end to end,
    ``offsets.npy.xz`` where each starts, ``loss_start.npy.xz`` where its completion starts (the
    masked loss starts there; the full loss covers all) and ``items.npy.xz`` which item of the
    source it is; ``meta.json`` holds every item id (the seeded order needs them all), the
    composition ``params`` and the order hash. Returns the metadata.
    """
    from ..io import write_json

    out = Path(out_dir)
    items = sorted({source.item_at(p) for p in range(int(n_positions))})
    seqs = [source.build(i) for i in items]
    flat = [t for s in seqs for t in s.input_ids]
    top = max(flat) if flat else 0
    dtype = np.uint16 if top < 2**16 else np.int32
    offsets = np.zeros(len(seqs) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(s) for s in seqs])
    out.mkdir(parents=True, exist_ok=True)
    _save_array(out / "tokens.npy.xz", np.asarray(flat, dtype=dtype))
    _save_array(out / "offsets.npy.xz", offsets)
    _save_array(out / "loss_start.npy.xz", np.asarray([s.n_header + s.n_context for s in seqs], dtype=np.int32))
    _save_array(out / "items.npy.xz", np.asarray(items, dtype=np.int32))
    meta = {"format": SEQUENCES_FORMAT, "params": params, "n_positions": int(n_positions),
            "n_sequences": len(seqs), "n_tokens": int(offsets[-1]), "order_hash": source.order_hash(),
            "seed": source.seed, "ids": source.ids}
    write_json(out / "meta.json", meta)  # written last: its presence marks a complete folder
    return meta


def array_source(path: str | Path, run: dict[str, Any]) -> SequenceSource:
    """The run's sequences from :func:`save_sequences` arrays (no tokenizer, composer or data needed).

    ``path`` is the folder itself or a folder of them named by :func:`sequences_key`. The order is
    the one the lazily composed source would have (same ids, same seed), and so are the tokens;
    labels follow the run's loss.
    """
    from ..io import read_json
    from .sequences import make_labels

    d = Path(path)
    if not (d / "meta.json").exists():
        d = d / sequences_key(run)
    if not (d / "meta.json").exists():
        raise DataError(f"no pre-tokenized sequences at {d}: build them with rlctx gpu bundle, or drop "
                        f"the 'sequences' setting to compose them from the data")
    meta = read_json(d / "meta.json")
    want = composition(run)
    if meta.get("format") != SEQUENCES_FORMAT or meta.get("params") != want:
        raise DataError(f"the sequences in {d} were composed for {meta.get('params')}, not for this run "
                        f"({want}): rebuild the bundle (rlctx gpu bundle)")
    tokens = _load_array(d / "tokens.npy.xz")
    offsets = _load_array(d / "offsets.npy.xz")
    loss_start = _load_array(d / "loss_start.npy.xz")
    row_of = {int(i): r for r, i in enumerate(_load_array(d / "items.npy.xz"))}
    loss = run.get("loss", "full")
    ids = list(meta["ids"])

    def build(i: int) -> TrainSequence:
        r = row_of.get(int(i))
        if r is None:
            raise DataError(f"{d} holds the sequences of the first {meta['n_positions']} positions only: "
                            f"rebuild the bundle for this run's stop_step")
        seq = tokens[offsets[r]:offsets[r + 1]].astype(np.int64).tolist()
        return TrainSequence(seq, make_labels(seq, int(loss_start[r]), loss),
                             n_context=int(loss_start[r]), n_completion=len(seq) - int(loss_start[r]),
                             meta={"id": ids[i]})

    src = SequenceSource(ids, build, int(meta["seed"]))
    if src.order_hash() != meta["order_hash"]:
        raise DataError(f"the order of {d} does not match its ids: rebuild the bundle")
    if positions_needed(run) > int(meta["n_positions"]):
        raise DataError(f"run {run.get('run_id')!r} needs {positions_needed(run)} sequences but {d} holds "
                        f"{meta['n_positions']}: rebuild the bundle for this profile (rlctx gpu bundle)")
    return src
