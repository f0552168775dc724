"""Mining configuration: the paper's filters (SPEC section 2), each one a setting.

Values come from the ``[data]`` section of a profile (``configs/<profile>.toml``); a PyPI spec may
override them in its own ``[mining]`` table, and the command line with ``--set data.key=value``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from .errors import MiningConfigError
from .lines import LCA_BUCKET_THRESHOLDS
from .snapshots import MAX_FILE_BYTES, MAX_TOTAL_BYTES


#: Keys of a profile's ``[data]`` section that are not mining settings.
_OTHER_DATA_KEYS = frozenset({"spec"})


@dataclass(frozen=True)
class MiningConfig:
    """Filters and caps of a mining run.

    Paper defaults: commits from 2010 on, completion files of 800 to 25,000 characters (inclusive),
    one completion file per (repository, path), the 1,000 most recent per repository, benchmark
    repositories excluded. Validation takes at most 5 datapoints per repository (paper: 2,560
    datapoints, <= 5 per repository).
    """

    min_year: int = 2010
    min_chars: int = 800
    max_chars: int = 25_000
    max_per_repo: int = 1000
    max_per_repo_validation: int = 5
    max_per_repo_benchmark: int = 1000
    exclude_repos: tuple[str, ...] = ()
    include_merges: bool = False
    include_root_commits: bool = False
    bucket_thresholds: tuple[int, int, int] = LCA_BUCKET_THRESHOLDS
    max_file_bytes: int = MAX_FILE_BYTES
    max_total_bytes: int = MAX_TOTAL_BYTES
    corpus_max_chars: int = 200_000
    seed: int = 0
    shard_rows: int = 64
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @classmethod
    def from_mapping(cls, data: dict[str, Any], seed: int | None = None) -> "MiningConfig":
        """Build from a ``[data]`` section (a spec's ``[mining]`` table merged in).

        Keys of ``[data]`` that other stages read (``spec``) are ignored; any other unknown key is
        refused with the closest valid name, a value of the wrong type in one line. A single name
        given to ``exclude_repos`` is a one-element list (never a tuple of its characters).
        """
        import difflib

        fields = {f.name: f for f in dataclasses.fields(cls) if f.name != "extra"}
        kwargs: dict[str, Any] = {}
        for key, value in data.items():
            if key in _OTHER_DATA_KEYS:
                continue
            if key not in fields:
                near = difflib.get_close_matches(key, sorted(fields), n=1, cutoff=0.5)
                hint = f"did you mean {near[0]!r}?" if near else f"known keys: {', '.join(sorted(fields))}"
                raise MiningConfigError(f"unknown mining setting {key!r}: {hint}")
            default = fields[key].default
            if key == "exclude_repos":
                if isinstance(value, str):
                    value = (value,)
                if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
                    raise MiningConfigError(f"exclude_repos must be a list of repository names, got {value!r}")
                value = tuple(value)
            elif key == "bucket_thresholds":
                if not isinstance(value, (list, tuple)) or not all(
                        isinstance(v, int) and not isinstance(v, bool) for v in value):
                    raise MiningConfigError(f"bucket_thresholds must be 3 increasing integers, got {value!r}")
                value = tuple(value)
            elif isinstance(default, bool):
                if not isinstance(value, bool):
                    raise MiningConfigError(f"{key} must be true or false, got {value!r}")
            elif isinstance(default, int):
                if not isinstance(value, int) or isinstance(value, bool):
                    raise MiningConfigError(f"{key} must be an integer, got {value!r}")
            kwargs[key] = value
        if seed is not None and "seed" not in kwargs:
            kwargs["seed"] = seed
        cfg = cls(**kwargs)
        cfg.check()
        return cfg

    def check(self) -> None:
        if not 0 <= self.min_chars <= self.max_chars:
            raise MiningConfigError(f"min_chars={self.min_chars} and max_chars={self.max_chars} "
                                    "must satisfy 0 <= min_chars <= max_chars")
        if len(self.bucket_thresholds) != 3 or list(self.bucket_thresholds) != sorted(self.bucket_thresholds):
            raise MiningConfigError(f"bucket_thresholds must be 3 increasing numbers, got {self.bucket_thresholds}")
        if self.max_per_repo < 1:
            raise MiningConfigError("max_per_repo must be at least 1")

    def as_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d.pop("extra")
        return d

    def hash(self) -> str:
        """Hash of the settings that change what a repository mines into (used for resume)."""
        keep = {k: v for k, v in self.as_dict().items() if k not in ("shard_rows",)}
        return hashlib.sha256(json.dumps(keep, sort_keys=True, default=list).encode()).hexdigest()[:16]
