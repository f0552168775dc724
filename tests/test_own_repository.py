"""The README's worked examples, run as written (at smoke scale, on data built in the test).

"Your own repository": mine git histories (with their own names), evaluate a checkpoint on them, rerun
with other line categories. "Your own composer": a profile names the module that registers a
composer; training and evaluation, run as subprocesses (as the notebooks run them), know it.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest

from rlctx_utils.cli import main
from rlctx_utils.paths import REPO_ROOT

from test_data_git import Git, body  # tests/ is on sys.path (pytest rootdir import mode)
from test_evaluation import _datapoints as _eval_datapoints
from test_training_runs import make_datapoints

EXAMPLE_MODULE = "examples/composers/no_tests.py"
OWN = "path_distance_no_tests"


def _checkpoint(tokenizer, folder, theta=10_000.0):
    from rlctx_utils.models import build_model

    model = build_model("smoke", len(tokenizer), seed=0, rope_theta=theta, max_position_embeddings=1024)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(str(folder))
    return folder


def test_your_own_repository(py_tokenizer, tmp_path, capsys):
    proj = Git(tmp_path / "src" / "proj")  # a local repository: no origin URL to take a name from
    proj.write("proj/base.py", body("base_fn"))
    proj.commit("root", date="2019-01-01T00:00:00")
    for i in range(3):
        proj.write(f"proj/m{i}.py", body(f"m{i}", call="base_fn"))
        proj.commit(f"m{i}", date=f"2019-02-0{i + 1}T00:00:00")
    lib = Git(tmp_path / "src" / "lib")
    lib.write("lib/core.py", body("core"))
    lib.commit("root", date="2020-01-01T00:00:00")
    lib.write("lib/use.py", body("use", call="core"))
    lib.commit("use", date="2020-02-01T00:00:00")
    data = tmp_path / "mine" / "data"

    # 1. rlctx mine git: the histories -> LCA-format datapoints, corpus, manifest.json
    assert main(["mine", "git", str(proj.path), str(lib.path), "--repo-name", "me__proj", "--repo-name", "me__lib",
                 "--benchmark", "me__lib", "--out", str(data), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "profile smoke" in err  # the default profile is said, not silently used
    manifest = json.loads((data / "manifest.json").read_text())
    assert manifest["repositories"] == {"benchmark": ["me__lib"], "train": ["me__proj"], "validation": []}
    assert manifest["splits"]["benchmark"]["datapoints"] >= 1 and manifest["splits"]["train"]["datapoints"] >= 3
    assert main(["mine", "git", str(proj.path), "--repo-name", "a", "--repo-name", "b", "--out", str(data)]) == 2

    # 2. rlctx eval: a checkpoint on the mined benchmark, one composer and window
    ck = _checkpoint(py_tokenizer, tmp_path / "ck")
    evals = tmp_path / "mine" / "evals"
    argv = ["eval", "--checkpoint", str(ck), "--benchmark", str(data), "--composer", "path_distance_py",
            "--max-context", "512", "--out-dir", str(evals)]
    assert main(argv) == 0
    out, err = capsys.readouterr()
    assert "profile smoke" in err and "lines:" in err  # progress although stderr is not a terminal
    # 3. the same evaluation on other line categories is another evaluation, not a clash
    assert main(argv + ["--categories", "inproject"]) == 0
    ids = sorted(p.name.removesuffix(".parquet") for p in evals.glob("*.parquet"))
    assert len(ids) == 2 and ids[1].endswith("__inproject") and ids[0] + "__inproject" == ids[1]
    lines = pd.read_parquet(evals / f"{ids[1]}.parquet")
    assert set(lines["category"]) <= {"inproject"} and set(lines["repository"]) == {"me__lib"}
    assert main(argv) == 0 and "exists, skipped" in capsys.readouterr().out


def _own_profile(tmp_path, base, data, module=EXAMPLE_MODULE):
    tiny = ("stop_step = 2\nsequences_per_step = 2\nsave_every = 0\nwarmup_steps = 1\nschedule_steps = 4\n"
            "seq_len = 512\ncompletion_max_tokens = 128\n")
    p = tmp_path / "own.toml"
    p.write_text(f'extends = "smoke"\n\n[composers]\nmodules = ["{module}"]\n\n'
                 f'[repo_training]\nbase_checkpoint = "{base}"\ndata_dir = "{data}"\n{tiny}\n'
                 f'[[repo_training.runs]]\ncomposer = "{OWN}"\nmode = "original"\nloss = "masked"\n'
                 f'rope_theta = 500000\n\n[eval]\nbenchmark = "{data}"\nlimit = 2\n')
    return p


def test_your_own_composer_in_every_process(py_tokenizer, tmp_path):
    from rlctx_utils.composers import COMPOSERS, compose
    from rlctx_utils.config import load_profile
    from rlctx_utils.data.store import save_datapoints
    from rlctx_utils.evaluation.cli import launch_eval
    from rlctx_utils.training.cli import launch, resolve_runs

    dps = make_datapoints(4)
    for dp in dps:
        dp.snapshot["tests/test_mod.py"] = "def test_f():\n    assert True\n"
    save_datapoints(dps, tmp_path / "data")
    bench = _eval_datapoints()  # completion files with categorised target lines
    for b in bench:
        b.split = "benchmark"
    save_datapoints(bench, tmp_path / "bench")
    base = _checkpoint(py_tokenizer, tmp_path / "base")
    profile = _own_profile(tmp_path, base, tmp_path / "data")

    # declare (the module the profile names) and compose a datapoint in this process
    cfg = load_profile(str(profile))
    assert OWN in COMPOSERS and cfg["repo_training"]["runs"][0]["composer"] == OWN
    dp = dps[0]
    comp = compose(OWN, dp.snapshot, dp.completion_path, dp.completion_content, tokenizer=py_tokenizer,
                   max_tokens=4096)
    used = {p.path for p in comp.pieces}
    assert used and "tests/test_mod.py" not in used and "pkg/mod_0.py" in used
    assert "tests/test_mod.py" in {p.path for p in compose("path_distance_py", dp.snapshot, dp.completion_path,
                                                             dp.completion_content, tokenizer=py_tokenizer,
                                                             max_tokens=4096).pieces}
    # train the profile's one grid row and evaluate it: both subprocesses, as the notebooks launch them
    (run,) = resolve_runs(str(profile), [], stage="repo", grid=True)
    results = tmp_path / "results"
    assert launch(str(profile), stage="repo", run_id=run["run_id"], out_dir=str(results)) == 0
    run_dir = results / "runs" / run["run_id"]
    rec = json.loads((run_dir / "run.json").read_text())
    assert rec["status"] == "finished" and rec["composer"] == OWN
    evals = tmp_path / "evals"
    launch_eval(str(profile), [str(run_dir / "checkpoints" / "final")],
                extra=["--composer", "own", "--max-context", "1024", "--benchmark", str(tmp_path / "bench"),
                       "--out-dir", str(evals)])
    (summary,) = evals.glob("*.summary.csv")
    assert OWN in summary.name and len(pd.read_parquet(summary.with_name(summary.name.replace(".summary.csv",
                                                                                               ".parquet"))))
    assert set(pd.read_csv(summary)["composer"]) == {OWN}


def test_composer_modules_errors_are_one_line(tmp_path):
    from rlctx_utils.composers import ComposerError
    from rlctx_utils.config import load_profile

    bad = tmp_path / "bad.py"
    bad.write_text("raise RuntimeError('boom')\n")
    for module, message in ((str(bad), "failed on import: RuntimeError: boom"),
                            ("no_such_pkg.composers", "cannot import 'no_such_pkg.composers'"),
                            ("missing/file.py", "no file 'missing/file.py'")):
        p = tmp_path / "p.toml"
        p.write_text(f'extends = "smoke"\n[composers]\nmodules = ["{module}"]\n')
        with pytest.raises(ComposerError, match=message):
            load_profile(str(p))
    assert (REPO_ROOT / EXAMPLE_MODULE).exists()
