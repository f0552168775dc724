"""Profiles: one TOML file per scale under ``configs/`` (smoke, cpu, gpu-small, paper).

A profile is a nested dict with one section per stage (``[data]``, ``[tokenizer]``, ``[model]``,
``[base_training]``, ``[repo_training]``, ``[eval]``, ``[notebooks]``). Every random choice of the
artifact takes its seed from the profile (``seed`` at the top level, or a stage's own ``seed``).
Command lines override any key with ``dotted.key=value`` (the value is read as TOML, else as a
string).
"""

from __future__ import annotations

import copy
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


def apply_overrides(cfg: dict[str, Any], overrides: list[str] | None) -> dict[str, Any]:
    """Return a copy of ``cfg`` with ``a.b.c=value`` overrides applied."""
    cfg = copy.deepcopy(cfg)
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form dotted.key=value")
        key, raw = item.split("=", 1)
        node = cfg
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: {part!r} is not a section")
        node[parts[-1]] = _parse_value(raw.strip())
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
    return apply_overrides(cfg, overrides)


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
