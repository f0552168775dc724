"""Run the stage notebooks with papermill.

Notebooks are stored as jupytext percent ``.py`` files under ``notebooks/``. :func:`run_notebook`
converts one to ``.ipynb`` in a build folder, executes it with papermill (kernel ``python3``, the
repository root as working directory, parameters injected after the ``parameters`` cell) and moves
the executed notebook to ``results/executed/`` only when it ran to the end, so a failure never leaves
a half-executed notebook where a finished one is expected. The failed notebook is kept beside it as
``<name>.failed.ipynb`` for inspection.

Command line: ``rlctx notebook run NOTEBOOK [-p KEY VALUE]... [--out-dir DIR]`` (also
``python -m rlctx_utils.notebooks run ...``).
"""

from __future__ import annotations

import argparse
import ast
import os
import sys
import time
from pathlib import Path
from typing import Any

from .io import atomic_path
from .paths import NOTEBOOKS, REPO_ROOT, RESULTS

EXECUTED = RESULTS / "executed"


class NotebookError(RuntimeError):
    """A notebook failed; the message names the cell and the saved failed notebook."""


def resolve(notebook: str | os.PathLike[str]) -> Path:
    p = Path(notebook)
    for cand in (p, NOTEBOOKS / p, NOTEBOOKS / f"{p}.py"):
        if cand.is_file():
            return cand.resolve()
    known = sorted(x.stem for x in NOTEBOOKS.glob("[0-9]*.py"))
    raise NotebookError(f"no notebook {str(notebook)!r}; known: {known}")


def to_ipynb(src: Path, dest: Path) -> Path:
    """Convert a jupytext percent ``.py`` notebook to ``.ipynb`` with the kernel metadata papermill needs."""
    import jupytext

    nb = jupytext.read(src)
    nb.metadata.setdefault("kernelspec", {"display_name": "Python 3", "language": "python", "name": "python3"})
    nb.metadata.setdefault("language_info", {"name": "python"})
    dest.parent.mkdir(parents=True, exist_ok=True)
    jupytext.write(nb, dest, fmt="ipynb")
    return dest


def _parse(value: str) -> Any:
    try:
        return ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return value


def run_notebook(notebook: str | os.PathLike[str], *, parameters: dict[str, Any] | None = None,
                 out_dir: str | os.PathLike[str] = EXECUTED, kernel: str = "python3",
                 progress: bool = False, cwd: str | os.PathLike[str] | None = None) -> Path:
    """Execute one notebook; returns the executed ``.ipynb`` path.

    The kernel starts in ``cwd`` (default: the repository root); the tests also start it in
    ``notebooks/``, where JupyterLab starts it, and the notebook's first cell moves to the root."""
    import papermill as pm

    src = resolve(notebook)
    out_dir = Path(out_dir)
    build = out_dir / "build" / f"{src.stem}.ipynb"
    to_ipynb(src, build)
    final = out_dir / f"{src.stem}.ipynb"
    failed = out_dir / f"{src.stem}.failed.ipynb"
    env_root = os.environ.get("RLCTX_ROOT")
    os.environ["RLCTX_ROOT"] = str(REPO_ROOT)
    t0 = time.time()
    try:
        with atomic_path(final) as tmp:
            try:
                pm.execute_notebook(str(build), str(tmp), parameters=parameters or {}, kernel_name=kernel,
                                    cwd=str(cwd or REPO_ROOT), progress_bar=progress, log_output=False)
            except pm.PapermillExecutionError as exc:
                os.replace(tmp, failed)
                raise NotebookError(f"{src.name} failed in cell {exc.exec_count}: {exc.ename}: {exc.evalue} "
                                    f"(executed notebook kept at {failed})") from None
    finally:
        if env_root is None:
            os.environ.pop("RLCTX_ROOT", None)
        else:
            os.environ["RLCTX_ROOT"] = env_root
    failed.unlink(missing_ok=True)
    print(f"{src.name}: executed in {time.time() - t0:.1f} s -> {final}", file=sys.stderr)
    return final


def _cmd_run(args: argparse.Namespace) -> int:
    params = {k: _parse(v) for k, v in (args.param or [])}
    if args.profile:
        params["profile"] = args.profile
    for nb in args.notebooks:
        run_notebook(nb, parameters=params, out_dir=args.out_dir, progress=args.progress)
    return 0


def _add_commands(s: argparse._SubParsersAction) -> None:
    r = s.add_parser("run", help="run notebooks (jupytext .py -> executed .ipynb in results/executed/)")
    r.add_argument("notebooks", nargs="+", help="notebook name (e.g. 00_paper_results) or path")
    r.add_argument("-p", "--param", nargs=2, action="append", metavar=("KEY", "VALUE"),
                   help="papermill parameter (value read as a Python literal when possible)")
    r.add_argument("--profile", help="shorthand for -p profile NAME")
    r.add_argument("--out-dir", default=str(EXECUTED))
    r.add_argument("--progress", action="store_true")
    r.set_defaults(func=_cmd_run)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("notebook", help="execute stage notebooks with papermill")
    _add_commands(p.add_subparsers(dest="notebook_command", required=True))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rlctx_utils.notebooks")
    _add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except NotebookError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
