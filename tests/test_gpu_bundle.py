"""One prepared GPU run at smoke scale on the CPU: bundle -> run (--device cpu) -> import.

The same code paths as the real run (pre-tokenized training, stored prompts, the speed check,
packing after every stage, safe import); only the wheels (no network in tests) and the notebooks
(covered by their own tests) are left out here.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from rlctx_utils.paths import REPO_ROOT

from test_evaluation import _datapoints
from test_training_runs import make_datapoints, tok_dir  # noqa: F401 (fixture)

SWEEP_RUN = "path_distance_py-original-masked-theta500000"
TINY = ["base_training.stop_step=2", "base_training.sequences_per_step=4", "base_training.save_every=2",
        "base_training.warmup_steps=1", "base_training.schedule_steps=4",
        "repo_training.stop_step=2", "repo_training.sequences_per_step=2", "repo_training.save_every=2",
        "repo_training.warmup_steps=1", f'eval.sweep_runs=["{SWEEP_RUN}"]', "eval.sweep=[128, 2048]"]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    from rlctx_utils.data.store import save_corpus, save_datapoints
    from rlctx_utils.tokenizer import stdlib_corpus

    d = tmp_path_factory.mktemp("mined")
    train = [dp for dp in make_datapoints(6)]
    for dp in train:
        dp.split = "train"
    bench = _datapoints()
    for dp in bench:
        dp.split = "benchmark"
    save_datapoints([*train, *bench], d / "data")
    save_corpus([{"repo": "stdlib", "path": f"lib/m{i}.py", "content": t, "sha1": str(i)}
                 for i, t in enumerate(stdlib_corpus(max_files=20, seed=1, max_chars=8_000))], d / "corpus")
    return d


def test_bundle_run_import_end_to_end_on_cpu(data_dir, tok_dir, tmp_path):
    from rlctx_utils.gpu.archive import ArchiveError, import_archive
    from rlctx_utils.gpu.bundle import build_bundle

    bundle = tmp_path / "bundle"
    m = build_bundle("smoke", bundle, overrides=TINY, data_dir=data_dir, tokenizer=str(tok_dir), wheels=False)
    assert set(m["sequences"]) == {"base-L256", "file_level-original-L256", "path_distance_py-original-L1024"}
    assert m["sequences"]["path_distance_py-original-L1024"]["runs"] == [
        "path_distance_py-original-masked-theta500000", "path_distance_py-original-full-theta500000"]
    assert m["total_mib"] < 60 and m["estimate"]["total_s"] > 0 and m["estimate"]["evaluations"] == 16
    assert all(len(f["sha256"]) == 64 for f in m["files"].values())

    out, results = tmp_path / "out", tmp_path / "gpu-results"
    proc = subprocess.Popen([sys.executable, "-m", "rlctx_utils.gpu", "run", "--bundle", str(bundle), "--out",
                             str(out), "--results", str(results), "--device", "cpu", "--skip", "notebooks",
                             "--deadline-s", "3000"],  # a shared 2-core machine can be slow; the GPU run keeps 540
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO_ROOT)
    try:
        stdout, stderr = proc.communicate(timeout=1500)
    except subprocess.TimeoutExpired:
        proc.terminate()  # the driver stops its child and packs
        stdout, stderr = proc.communicate()
    assert proc.returncode == 0, stdout[-3000:] + stderr[-2000:]
    assert "[gpu-run" in stdout and "packed" in stdout  # progress on stdout
    state = json.loads((results / "smoke" / "gpu_run" / "gpu_run.json").read_text())
    assert {k: v["status"] for k, v in state["stages"].items()} == {
        s: "done" for s in ("install", "speed", "base", "grid", "eval", "sweep")}
    archive = out / "rlctx-gpu-smoke.tar.gz"
    assert archive.stat().st_size < 16 * 2**20
    with tarfile.open(archive) as tar:
        names = tar.getnames()
    assert not any("checkpoints" in n or "/data/" in n for n in names)
    assert "results/bench/training_cpu_rehearsal.csv" in names
    assert any(f"{SWEEP_RUN}__path_distance_py-2048__thesis__smoke-benchmark" in n for n in names)
    logs = results / "smoke" / "gpu_run" / "logs"
    assert "no stored prompts" not in (logs / "eval.log").read_text() + (logs / "sweep.log").read_text()

    # the run trained from the arrays exactly what composing would have (same config hash, data order)
    rec = json.loads((results / "smoke" / "runs" / SWEEP_RUN / "run.json").read_text())
    from rlctx_utils.config import config_hash, load_profile
    from rlctx_utils.training.runs import identity, resolve_run

    local = resolve_run(load_profile("smoke", TINY), "repo", SWEEP_RUN)
    assert rec["status"] == "finished" and rec["config_hash"] == config_hash(identity(local))

    dest = tmp_path / "imported"
    done = import_archive(archive, results=dest)
    assert done["folders"] == ["results/bench", "results/smoke"] and done["written"] == len(names) - done["same"]
    evals = sorted((dest / "smoke" / "evals").glob("*.summary.csv"))
    assert len(evals) == m["estimate"]["evaluations"]  # Or-1K of a Path Distance run is its PD-1K
    assert import_archive(archive, results=dest)["written"] == 0  # a rerun skips identical files
    victim = evals[0]
    victim.write_text("changed\n")
    with pytest.raises(ArchiveError, match="other contents"):
        import_archive(archive, results=dest)
    assert victim.read_text() == "changed\n"  # nothing written


def _tar(path: Path, members: list[tarfile.TarInfo], data: bytes = b"x") -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for m in members:
            tar.addfile(m, io.BytesIO(data) if m.isfile() else None)
    return path


@pytest.mark.parametrize("name,kind", [("results/../../evil.txt", "file"), ("/etc/evil", "file"),
                                       ("results/cpu/link", "symlink"), ("notes.txt", "file"),
                                       ("results/paper/results.csv", "file")])
def test_import_refuses_unsafe_archives(tmp_path, name, kind):
    from rlctx_utils.gpu.archive import ArchiveError, import_archive

    m = tarfile.TarInfo(name)
    if kind == "symlink":
        m.type, m.linkname = tarfile.SYMTYPE, "/etc/passwd"
    else:
        m.size = 1
    ok = tarfile.TarInfo("results/smoke/evals/a.csv")
    ok.size = 1
    arch = _tar(tmp_path / "a.tar.gz", [ok, m])
    with pytest.raises(ArchiveError, match="refusing"):
        import_archive(arch, results=tmp_path / "res")
    assert not (tmp_path / "res").exists()


def test_install_wheel_unpacks_purelib_and_refuses_escapes(tmp_path):
    from rlctx_utils.gpu.run import RunError, install_wheel

    w = tmp_path / "demo-1.0-py3-none-any.whl"
    with zipfile.ZipFile(w, "w") as z:
        z.writestr("demo/__init__.py", "X = 1\n")
        z.writestr("demo-1.0.dist-info/METADATA", "Name: demo\nVersion: 1.0\n")
        z.writestr("demo-1.0.data/purelib/demo_extra.py", "Y = 2\n")
        z.writestr("demo-1.0.data/scripts/demo", "#!/bin/sh\n")
    site = tmp_path / "site"
    install_wheel(w, site)
    assert (site / "demo" / "__init__.py").exists() and (site / "demo_extra.py").exists()
    assert not (site / "demo").joinpath("scripts").exists() and (site / f"{w.name}.installed").exists()
    bad = tmp_path / "bad-1.0-py3-none-any.whl"
    with zipfile.ZipFile(bad, "w") as z:
        z.writestr("../evil.py", "")
    with pytest.raises(RunError, match="unsafe"):
        install_wheel(bad, tmp_path / "site2")


def test_per_repo_keeps_every_repository(tmp_path):
    from rlctx_utils.data.store import save_datapoints
    from rlctx_utils.evaluation.cli import profile_benchmark

    dps = [*_datapoints(), *_datapoints()]
    for i, dp in enumerate(dps):
        dp.split, dp.repo, dp.commit_hash = "benchmark", f"o__r{i // 2}", f"{i:040x}"
    save_datapoints(dps, tmp_path / "data")
    full = profile_benchmark(str(tmp_path), {})
    capped = profile_benchmark(str(tmp_path), {"eval": {"per_repo": 1}})
    assert len(full.datapoints) == 4 and full.name == f"{tmp_path.name}-benchmark"
    assert [dp.repo for dp in capped.datapoints] == ["o__r0", "o__r1"] and capped.name.endswith("-per1")
    assert profile_benchmark(str(tmp_path), {"eval": {"per_repo": 1}}, limit=1).name.endswith("-per1-first1")
