"""A researcher's own composers, named by the profile so that every process sees them.

``register_composer`` adds a composer to the registry of one Python process; training and evaluation
run as subprocesses (``rlctx train``, ``rlctx eval``, the notebooks' launches), so a profile names the
modules that register composers and :func:`~rlctx_utils.config.load_profile` imports them in every
process that loads the profile::

    [composers]
    modules = ["my_pkg.my_composers", "examples/composers/no_tests.py"]

An entry is an importable module name, or a ``.py`` file (relative paths from the repository root).
Each module is imported once per process.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .types import ComposerError

_LOADED: dict[str, str] = {}  # profile entry (resolved) -> module name


def _module_name(path: Path) -> str:
    return f"rlctx_user_composers_{path.stem}_{hashlib.sha1(str(path).encode()).hexdigest()[:8]}"


def import_composer_module(entry: str) -> str:
    """Import one ``[composers] modules`` entry (once per process); returns the module's name."""
    from ..paths import REPO_ROOT

    is_file = entry.endswith(".py") or "/" in entry or "\\" in entry
    key = str((Path(entry) if Path(entry).is_absolute() else REPO_ROOT / entry).resolve()) if is_file else entry
    if key in _LOADED:
        return _LOADED[key]
    try:
        if is_file:
            path = Path(key)
            if not path.is_file():
                raise ComposerError(f"[composers] modules: no file {entry!r} (relative paths start at "
                                    f"the repository root, {REPO_ROOT})")
            name = _module_name(path)
            spec = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            try:
                spec.loader.exec_module(module)
            except BaseException:
                sys.modules.pop(name, None)
                raise
        else:
            name = importlib.import_module(entry).__name__
    except ComposerError:
        raise
    except ModuleNotFoundError as exc:
        raise ComposerError(f"[composers] modules: cannot import {entry!r} ({exc}); give an installed module "
                            "name or the path of a .py file") from None
    except Exception as exc:  # the user's module failed: say which and why, in one line
        raise ComposerError(f"[composers] modules: {entry!r} failed on import: {type(exc).__name__}: {exc}") from None
    _LOADED[key] = name
    return name


def load_composer_modules(cfg: Mapping[str, Any]) -> list[str]:
    """Import every module the profile's ``[composers] modules`` names; returns their module names."""
    section = cfg.get("composers") or {}
    if not isinstance(section, Mapping):
        raise ComposerError("[composers] must be a table, e.g. [composers] modules = [\"my_pkg.composers\"]")
    modules = section.get("modules") or []
    if isinstance(modules, str):
        modules = [modules]
    if not isinstance(modules, list) or not all(isinstance(m, str) and m for m in modules):
        raise ComposerError(f"[composers] modules = {modules!r}: give a list of module names or .py paths")
    return [import_composer_module(m) for m in modules]
