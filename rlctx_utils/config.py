"""Profiles: one TOML file per scale under ``configs/`` (smoke, cpu, gpu-small, paper).

A profile is a nested dict with one section per stage (``[data]``, ``[tokenizer]``, ``[model]``,
``[base_training]``, ``[repo_training]``, ``[eval]``, ``[notebooks]``). Every random choice of the
artifact takes its seed from the profile (``seed`` at the top level, or a stage's own ``seed``).
Command lines override any key with ``dotted.key=value`` (the value is read as TOML, else as a
string). An override must name a key the artifact knows (a key of a shipped profile's section, or
one of :data:`OPTIONAL_KEYS`): a misspelled key is refused with the closest valid name, and a value
of the wrong type (``lr=abc``) is refused in one line. A single value given to a list-valued key
(``data.exclude_repos=NAME``) becomes a one-element list.
"""

from __future__ import annotations

import copy
import difflib
import functools
import hashlib
import json
import os
import random
import tomllib
from pathlib import Path
from typing import Any

from .paths import CONFIGS

PROFILES = ("smoke", "cpu", "gpu-small", "paper")


class ConfigError(ValueError):
    """A profile or an override that cannot be used; the message says what to change."""


def profile_path(profile: str | os.PathLike[str]) -> Path:
    p = Path(profile)
    if p.suffix == ".toml" and p.exists():
        return p
    cand = CONFIGS / f"{profile}.toml"
    if cand.exists():
        return cand
    known = sorted(x.stem for x in CONFIGS.glob("*.toml"))
    raise ConfigError(f"unknown profile {str(profile)!r}: give one of {known} or a path to a .toml file")


def _parse_value(raw: str) -> Any:
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


_TRAINING_KEYS = frozenset({
    "attn_implementation", "base_checkpoint", "base_length", "betas", "clip", "completion_max_tokens",
    "composer", "corpus", "cpu", "data_dir", "debug", "dtype", "eps", "file_level_seq_len", "fmt",
    "gradient_checkpointing", "incontext_every", "keep_checkpoints", "log_every", "lora", "loss", "lr",
    "micro_batch_sequences", "micro_batch_tokens", "min_lr", "mixed_precision", "mode", "packing",
    "probe_data", "progress", "repeat_alphabet", "repeat_fraction", "repeat_isolated", "repeat_span", "repeat_kind", "repeat_warmup_steps", "repo_name_header", "rope_kwargs", "rope_theta", "rope_variant", "run_id", "save_every",
    "schedule", "decay_steps", "schedule_steps", "seed", "seq_len", "sequences", "sequences_per_step", "split", "stop_step", "threads",
    "tokenizer", "warmup_steps", "weight_decay"})

#: Keys the code reads that a shipped profile need not set (besides every key some profile sets).
#: A module that reads a new optional key adds it here.
OPTIONAL_KEYS: dict[str, set[str]] = {
    "": {"profile", "seed", "base_length", "extended_length", "debug"},
    "data": {"min_year", "min_chars", "max_chars", "max_per_repo", "max_per_repo_validation",
             "max_per_repo_benchmark", "exclude_repos", "include_merges", "include_root_commits",
             "bucket_thresholds", "max_file_bytes", "max_total_bytes", "corpus_max_chars", "seed",
             "shard_rows", "spec"},
    "tokenizer": {"path", "vocab_size", "seed"},
    "model": {"preset", "name_or_path"},
    "base_training": set(_TRAINING_KEYS),
    "repo_training": set(_TRAINING_KEYS) | {"runs"},
    "eval": {"batch_tokens", "benchmark", "categories", "decode_tokens", "limit", "protocol", "seed",
             "sweep", "sweep_runs", "incontext", "incontext_runs", "per_repo", "positions_runs"},
}
#: Sections (or keys) whose content is free-form: test hooks, adapter and RoPE settings.
FREE_FORM = frozenset({"debug", "notebooks", "lora", "rope_kwargs"})


@functools.lru_cache(maxsize=1)
def _shipped_keys() -> dict[str, frozenset[str]]:
    """Keys of every section of the shipped profiles (``configs/*.toml``), by section ("" = top level)."""
    out: dict[str, set[str]] = {k: set(v) for k, v in OPTIONAL_KEYS.items()}
    for f in sorted(CONFIGS.glob("*.toml")):
        try:
            raw = tomllib.loads(f.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError):
            continue
        for key, val in raw.items():
            out.setdefault("", set()).add(key)
            if isinstance(val, dict):
                out.setdefault(key, set()).update(val)
    return {k: frozenset(v) for k, v in out.items()}


def _closest(word: str, options: set[str] | frozenset[str]) -> str:
    near = difflib.get_close_matches(word, sorted(options), n=1, cutoff=0.5)
    return f"did you mean {near[0]!r}?" if near else f"known keys: {', '.join(sorted(options))}"


def check_key(parts: list[str], item: str, cfg: dict[str, Any] | None = None) -> None:
    """Refuse an override whose key the artifact does not know, naming the closest valid one."""
    known = _shipped_keys()
    sections = {k for k in known if k} | {k for k, v in (cfg or {}).items() if isinstance(v, dict)}
    top = set(known.get("", ())) | sections | set((cfg or {}))
    if parts[0] in FREE_FORM:
        return
    if len(parts) == 1:
        if parts[0] not in top:
            raise ConfigError(f"unknown key {parts[0]!r} in override {item!r}: {_closest(parts[0], top)}")
        return
    sec = parts[0]
    if sec not in sections:
        raise ConfigError(f"unknown section {sec!r} in override {item!r}: {_closest(sec, sections)}")
    keys = set(known.get(sec, ())) | set(((cfg or {}).get(sec) or {}) if isinstance((cfg or {}).get(sec), dict) else ())
    if parts[1] not in keys:
        hint = _closest(parts[1], keys)
        if hint.startswith("did you mean"):
            hint = f"did you mean {sec + '.' + difflib.get_close_matches(parts[1], sorted(keys), 1, 0.5)[0]!r}?"
        raise ConfigError(f"unknown key {sec + '.' + parts[1]!r} in override {item!r}: {hint}")


_TYPE_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string",
               list: "a list such as [1, 2]"}


def _coerce(old: Any, new: Any, key: str, raw: str) -> Any:
    """``new`` checked against the type of the value it replaces (one line when it does not fit)."""
    if old is None or new is None:
        return new
    if isinstance(old, list):
        return new if isinstance(new, list) else [new]  # one value for a list-valued key
    if isinstance(old, dict):
        raise ConfigError(f"{key} is a section, not a value: set one of its keys ({key}.KEY=VALUE)")
    if isinstance(old, bool):
        ok = isinstance(new, bool)
    elif isinstance(old, int):
        ok = isinstance(new, int) and not isinstance(new, bool)
    elif isinstance(old, float):
        ok = isinstance(new, (int, float)) and not isinstance(new, bool)
        new = float(new) if ok else new
    else:
        ok = True  # strings (paths, names, "auto") take whatever was given
    if not ok:
        want = _TYPE_NAMES.get(type(old), type(old).__name__)
        raise ConfigError(f"{key}={raw}: expected {want} (the profile has {key} = {old!r})")
    return new


def apply_overrides(cfg: dict[str, Any], overrides: list[str] | None, *, strict: bool = True) -> dict[str, Any]:
    """Return a copy of ``cfg`` with ``a.b.c=value`` overrides applied.

    ``strict`` (the default) refuses unknown keys and values of the wrong type (see the module
    docstring)."""
    cfg = copy.deepcopy(cfg)
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form dotted.key=value")
        key, raw = item.split("=", 1)
        node = cfg
        parts = key.strip().split(".")
        if any(not p for p in parts):
            raise ConfigError(f"override {item!r}: empty key part; write section.key=value")
        if strict:
            check_key(parts, item, cfg)
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: {part!r} is not a section")
        value = _parse_value(raw.strip())
        if strict:
            value = _coerce(node.get(parts[-1]), value, key.strip(), raw.strip())
        node[parts[-1]] = value
    return cfg


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def load_profile(profile: str | os.PathLike[str], overrides: list[str] | None = None) -> dict[str, Any]:
    """Load ``configs/<profile>.toml`` (following ``extends = "other"``) and apply overrides."""
    path = profile_path(profile)
    with open(path, "rb") as fh:
        cfg = tomllib.load(fh)
    parent = cfg.pop("extends", None)
    if parent:
        cfg = deep_merge(load_profile(parent), cfg)
    cfg.setdefault("profile", path.stem)
    cfg = apply_overrides(cfg, overrides)
    if (cfg.get("composers") or {}).get("modules"):  # the profile's own composers, in every process
        from .composers.plugins import load_composer_modules

        load_composer_modules(cfg)
    return cfg


def config_hash(cfg: Any) -> str:
    """Short stable hash of a config (keys sorted), used to tell runs apart."""
    blob = json.dumps(cfg, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and (when installed) torch."""
    random.seed(seed)
    try:
        import numpy as np

        np.random.seed(seed % 2**32)
    except ImportError:  # pragma: no cover
        pass
    try:
        import torch

        torch.manual_seed(seed)
    except ImportError:  # pragma: no cover
        pass
