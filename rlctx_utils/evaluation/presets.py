"""The paper's evaluation settings, scaled to a profile.

The paper evaluates every checkpoint under four settings (SPEC section 6) and sweeps the maximum
context of one of them:

========== ==================================== =========== ===================
role       composer                             paper       at a profile
========== ==================================== =========== ===================
FL-base    File-level (no repository context)   FL-4K       base_length
PD-base    Path Distance .py                    PD-4K       base_length
PD-ext     Path Distance .py                    PD-16K      extended_length
Or-ext     the checkpoint's own training one    Or-16K      extended_length
sweep      Path Distance .py                    1K ... 128K base/4 ... 8 x extended
========== ==================================== =========== ===================

A profile may override the sweep sizes with ``[eval] sweep = [...]``. The repository-context boost
RCB = EM(PD-ext) - EM(FL-base) is computed by the tables, not here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .. import schema

FILE_LEVEL = "file_level"
PATH_DISTANCE = "path_distance_py"
OWN = "own"

ROLE_COMPOSER = {"FL-base": FILE_LEVEL, "PD-base": PATH_DISTANCE, "PD-ext": PATH_DISTANCE,
                 "Or-ext": OWN}


class PresetError(ValueError):
    """A profile without the lengths the presets need, or an unknown preset name."""


@dataclass(frozen=True)
class EvalSetting:
    """One evaluation setting: a composer (``own`` = the checkpoint's) at a maximum context."""

    role: str
    composer: str
    max_context: int

    @property
    def label(self) -> str:
        return setting_label(self.role, self.composer, self.max_context)


def setting_label(role: str, composer: str, max_context: int) -> str:
    """'PD-16K' for a preset role; for other settings a label built from the composer."""
    if role in schema.ROLE_PREFIX:
        return schema.setting_label(role, max_context)
    prefix = {FILE_LEVEL: "FL", PATH_DISTANCE: "PD", OWN: "Or"}.get(composer, composer)
    return f"{prefix}-{schema.size_label(max_context)}"


def lengths(cfg: dict[str, Any]) -> tuple[int, int]:
    try:
        return int(cfg["base_length"]), int(cfg["extended_length"])
    except (KeyError, TypeError, ValueError):
        raise PresetError("the profile needs integer base_length and extended_length at its top level") from None


def preset_settings(cfg: dict[str, Any]) -> list[EvalSetting]:
    """The four settings of the paper's tables, at the profile's lengths."""
    base, ext = lengths(cfg)
    return [EvalSetting("FL-base", FILE_LEVEL, base), EvalSetting("PD-base", PATH_DISTANCE, base),
            EvalSetting("PD-ext", PATH_DISTANCE, ext), EvalSetting("Or-ext", OWN, ext)]


def sweep_sizes(cfg: dict[str, Any]) -> list[int]:
    """Maximum contexts of the extrapolation sweep: powers of two from base/4 to 8 x extended
    (the paper's 1K ... 128K for 4K/16K), unless ``[eval] sweep`` lists them."""
    explicit = (cfg.get("eval") or {}).get("sweep")
    if explicit:
        return sorted({int(x) for x in explicit})
    base, ext = lengths(cfg)
    out, n = [], max(1, base // 4)
    while n <= 8 * ext:
        out.append(n)
        n *= 2
    return out


def sweep_settings(cfg: dict[str, Any]) -> list[EvalSetting]:
    return [EvalSetting("sweep", PATH_DISTANCE, n) for n in sweep_sizes(cfg)]


def roles_of(composer: str, max_context: int, own_composer: str | None,
             cfg: dict[str, Any] | None) -> list[str]:
    """Every role a computed (resolved composer, max context) pair serves for one checkpoint.

    One computation can serve several roles: Path Distance at the extended length is PD-ext, the
    Or-ext of a checkpoint trained with Path Distance, and a point of the sweep.
    """
    if cfg is None or "base_length" not in cfg:
        return ["sweep"] if composer == PATH_DISTANCE else ["custom"]
    base, ext = lengths(cfg)
    roles = []
    if composer == FILE_LEVEL and max_context == base:
        roles.append("FL-base")
    if composer == PATH_DISTANCE and max_context == base:
        roles.append("PD-base")
    if composer == PATH_DISTANCE and max_context == ext:
        roles.append("PD-ext")
    if own_composer is not None and composer == own_composer and max_context == ext:
        roles.append("Or-ext")
    if composer == PATH_DISTANCE and max_context in sweep_sizes(cfg):
        roles.append("sweep")
    return roles or ["custom"]


def default_protocol(cfg: dict | None) -> str:
    """The protocol a profile's tables and findings are read under: the first of its ``[eval] protocol``."""
    return str(((cfg or {}).get("eval") or {}).get("protocol") or "thesis").split(",")[0].strip()


def incontext_checkpoints(cfg: dict | None, checkpoints: str) -> list[str]:
    """What the in-context measures (perplexity protocol, copying, within-file) run on: the profile's
    ``[eval] incontext_runs`` (as ``run:ID``) when ``checkpoints`` is ``runs`` and the profile lists
    some (their cost is about 4 CPU-minutes a checkpoint on the cpu benchmark), else ``checkpoints``."""
    listed = list(((cfg or {}).get("eval") or {}).get("incontext_runs") or [])
    if checkpoints.strip() == "runs" and listed:
        return [f"run:{r}" for r in listed]
    return checkpoints.split()


def profile_protocol(profile: str) -> str:
    """:func:`default_protocol` of a profile by name; ``thesis`` for a name with no profile (the
    notebooks draw the published curves for any name)."""
    from ..config import ConfigError, load_profile

    try:
        return default_protocol(load_profile(profile))
    except ConfigError:
        return "thesis"
