"""An example of a researcher's own composer: Path Distance .py without the repository's tests.

A profile names this file (``[composers] modules = ["examples/composers/no_tests.py"]``, see
``configs/smoke-own-composer.toml``), so ``rlctx train``, ``rlctx eval`` and the notebooks all know
the composer by its name. A composer is one declaration over the steps of
``rlctx_utils.composers.steps``: here the Path Distance .py composer's, with test files filtered out.
"""

from rlctx_utils.composers import COMPOSERS, register_composer, steps

test_file = steps.FileFilter(
    "test_file", lambda path, text: "/tests/" in f"/{path}" or path.rsplit("/", 1)[-1].startswith("test_"))

register_composer(COMPOSERS["path_distance_py"].derive(
    "path_distance_no_tests", "Path Distance .py without test files (tests/ folders, test_*.py).",
    select=steps.py_files & ~test_file))
