"""Run a stage's command line as a subprocess from a notebook, relaying its output.

Notebooks never train or evaluate inside their kernel: a crash, an out-of-memory kill or a
``KeyboardInterrupt`` then leaves the kernel alive and the stage resumable (training resumes from its
last checkpoint, evaluations skip what is stored).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence

#: Lines of library chatter not worth relaying into a notebook.
QUIET = ("Writing model shards",)


class LaunchError(RuntimeError):
    """A launched stage command failed; the message holds its last output lines."""


def rlctx_command(args: Sequence[str], accelerate_config: str | None = None) -> list[str]:
    """``python -m rlctx_utils.cli ARGS``, through ``accelerate launch`` when a config is given."""
    head = ([sys.executable, "-m", "accelerate.commands.launch", "--config_file", accelerate_config]
            if accelerate_config else [sys.executable])
    return [*head, "-m", "rlctx_utils.cli", *args]


def run_relayed(cmd: Sequence[str], *, what: str, error: type[Exception] = LaunchError,
                keep_last: int = 20) -> int:
    """Run ``cmd``, print its output line by line, raise ``error`` with the tail on failure."""
    print("$", " ".join(str(c) for c in cmd[1:]), flush=True)
    proc = subprocess.Popen([str(c) for c in cmd], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    tail: list[str] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        tail = (tail + [line.rstrip()])[-keep_last:]
        if not any(q in line for q in QUIET):
            print(line.rstrip(), flush=True)
    rc = proc.wait()
    if rc != 0:
        raise error(f"{what} failed (exit {rc}):\n" + "\n".join(tail))
    return rc
