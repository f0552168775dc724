"""The ``rlctx`` command line.

Each stage module registers its own sub-commands through a ``register(subparsers)`` function, so
this file only lists them. Heavy imports (torch, transformers) happen inside the commands.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# (module, description) -- each module defines register(subparsers) adding its sub-commands.
_COMMAND_MODULES = (
    "rlctx_utils.data.cli",
    "rlctx_utils.training.cli",
    "rlctx_utils.evaluation.cli",
    "rlctx_utils.notebooks",
    "rlctx_utils.report",
    "rlctx_utils.gpu.cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rlctx", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for mod_name in _COMMAND_MODULES:
        try:
            mod = importlib.import_module(mod_name)
        except ModuleNotFoundError as exc:
            if exc.name == mod_name:  # stage not built yet
                continue
            raise
        mod.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        rc = args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # one-line errors for expected failures
        if getattr(exc, "user_facing", False) or exc.__class__.__name__.endswith("Error") and \
                exc.__class__.__module__.startswith("rlctx_utils"):
            print(f"rlctx {args.command}: error: {exc}", file=sys.stderr)
            return 2
        if isinstance(exc, OSError) and exc.errno is not None:  # full disk, read-only folder, a file in the way
            from .io import os_error_message
            print(f"rlctx {args.command}: error: {os_error_message(exc)}", file=sys.stderr)
            return 2
        raise
    return int(rc or 0)


if __name__ == "__main__":
    sys.exit(main())
