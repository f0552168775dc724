"""``python3 -m rlctx_utils.gpu run``: the whole GPU run of a bundle, on a machine with no network.

Standard library only at import time: the bundle's wheels are installed (into a private folder,
``<bundle>/.site``, put on ``PYTHONPATH``; a distribution the machine already has is left alone)
before anything else is imported, and every stage runs as a child process (a crash or a kill
leaves this driver alive to pack what is done). Stages, in order of value:

1. ``install``   the wheels; an import check that prints the versions and the GPU
2. ``speed``     the paper-shape speed check (opencoder-1.5b-shape, bf16, 16K tokens, gradient
                 checkpointing): tokens/s, peak memory, MFU against the measured 790 TFLOP/s
3. ``base``      base pretraining from the pre-tokenized windows
4. ``grid``      every grid run from the pre-tokenized sequences
5. ``eval``      every checkpoint in the four settings (prompts from the bundle)
6. ``sweep``     the extrapolation sweep of the profile's sweep runs
7. ``notebooks`` 04, 05, 06, 08 executed on the results (drawing only)

After every stage the results so far are packed into ``$OUT/rlctx-gpu-<profile>.tar.gz`` (at most
16 MiB; ``./gpu-out`` when ``OUT`` is unset): ``results/<profile>/`` without checkpoints or data,
the speed check's ``results/bench/`` files, and ``results/<profile>/gpu_run/`` (``gpu_run.json``
with each stage's status and wall time, one log per stage, the executed notebooks). A stage still
running at ``--deadline-s`` is stopped and the archive packed; a rerun skips finished runs and
stored evaluations. ``--device cpu`` runs the same path on a CPU (the test suite does, at smoke
scale), so a GPU run can only fail on what needs the GPU.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path
from typing import Any

REPO_ROOT = Path(os.environ.get("RLCTX_ROOT", Path(__file__).resolve().parents[2]))
STAGES = ("install", "speed", "base", "grid", "eval", "sweep", "notebooks")
ARCHIVE_MAX_BYTES = 16 * 2**20
NOTEBOOKS = ("04_base_pretraining", "05_repo_pretraining", "06_evaluation", "08_extrapolation")


class RunError(RuntimeError):
    """The run cannot start (bad bundle, wrong device...); the message says what to do."""


def archive_name(profile: str) -> str:
    return f"rlctx-gpu-{profile}.tar.gz"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verify(bundle: Path) -> dict[str, Any]:
    """The bundle's manifest, after checking every file's sha256 and the profile's."""
    mpath = bundle / "manifest.json"
    if not mpath.is_file():
        raise RunError(f"no bundle at {bundle} (no manifest.json): build it with make gpu-bundle, and carry it")
    manifest = json.loads(mpath.read_text())
    bad = [name for name, f in manifest["files"].items()
           if not (bundle / name).is_file() or (bundle / name).stat().st_size != f["bytes"]
           or _sha256(bundle / name) != f["sha256"]]
    if bad:
        raise RunError(f"{len(bad)} bundle file(s) missing or changed (first: {bad[0]}): rebuild with make gpu-bundle")
    prof = REPO_ROOT / "configs" / f"{manifest['profile']}.toml"
    fp = hashlib.sha256(prof.read_bytes() + json.dumps(list(manifest["overrides"])).encode()).hexdigest()[:16]
    if fp != manifest["profile_sha256"]:
        raise RunError(f"configs/{manifest['profile']}.toml changed since the bundle was built: rebuild it")
    return manifest


def install_wheel(wheel: Path, site: Path) -> None:
    """Unpack a wheel into ``site`` (a wheel is a zip laid out for site-packages): its
    ``*.data/purelib`` and ``platlib`` go to the top; scripts and headers are not needed here."""
    with zipfile.ZipFile(wheel) as z:
        for m in z.infolist():
            parts = Path(m.filename).parts
            if not parts or m.filename.startswith("/") or ".." in parts:
                raise RunError(f"{wheel.name} holds an unsafe path {m.filename!r}")
            if parts[0].endswith(".data"):
                if len(parts) < 3 or parts[1] not in ("purelib", "platlib"):
                    continue
                parts = parts[2:]
            dest = site.joinpath(*parts)
            if m.is_dir():
                dest.mkdir(parents=True, exist_ok=True)
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            with z.open(m) as src, open(dest, "wb") as fh:
                shutil.copyfileobj(src, fh)
    (site / f"{wheel.name}.installed").touch()


class Driver:
    def __init__(self, bundle: Path, out: Path, results: Path, device: str, deadline_s: float,
                 skip: set[str], peak_tflops: float, python: str = sys.executable):
        self.bundle, self.out, self.results, self.device = bundle.resolve(), out, results, device
        self.deadline_s, self.skip, self.peak_tflops, self.python = deadline_s, skip, peak_tflops, python
        self.t0 = time.time()
        self.manifest = verify(self.bundle)
        self.profile = self.manifest["profile"]
        self.root = results / self.profile
        self.log_dir = self.root / "gpu_run" / "logs"
        self.site = self.bundle / ".site"
        self.state: dict[str, Any] = {"profile": self.profile, "device": device, "stages": {},
                                      "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                      "bundle_built_at": self.manifest.get("built_at"),
                                      "estimate": self.manifest.get("estimate")}
        state = self.root / "gpu_run" / "gpu_run.json"
        if state.exists():  # a rerun keeps the earlier stages' record
            prev = json.loads(state.read_text())
            self.state["previous"] = {k: prev.get(k) for k in ("started_at", "stages", "wall_s")}

    # -------------------------------------------------------------------------- helpers
    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        paths = [str(self.site), str(REPO_ROOT), env.get("PYTHONPATH", "")]
        env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
        env["RLCTX_EVAL_TASKS"] = str(self.bundle / "tasks")
        env["RLCTX_EVAL_TASKS_ONLY"] = "1"  # the bundle's benchmark has no snapshots to compose from
        env.setdefault("TOKENIZERS_PARALLELISM", "false")
        env.setdefault("HF_HUB_OFFLINE", "1")
        env.setdefault("TRANSFORMERS_OFFLINE", "1")
        env.setdefault("HF_DATASETS_OFFLINE", "1")
        env.setdefault("MPLBACKEND", "Agg")
        env["PYTHONUNBUFFERED"] = "1"
        if self.device == "cpu":
            env["CUDA_VISIBLE_DEVICES"] = ""
        return env

    def left(self) -> float:
        return self.deadline_s - (time.time() - self.t0)

    def say(self, msg: str) -> None:
        print(f"[gpu-run {time.time() - self.t0:6.0f}s] {msg}", flush=True)

    def child(self, stage: str, args: list[str], log) -> int:
        """Run one child, relaying its lines (prefixed) to stdout and the stage log; stop it at the deadline."""
        log.write("$ " + " ".join(args) + "\n")
        log.flush()
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=self.env(),
                                cwd=str(REPO_ROOT), start_new_session=True, bufsize=1)
        assert proc.stdout is not None
        import selectors

        sel = selectors.DefaultSelector()
        sel.register(proc.stdout, selectors.EVENT_READ)
        try:
            return self._relay(stage, proc, sel, log)
        except KeyboardInterrupt:  # SIGINT/SIGTERM of the driver: the child's group goes too
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise

    def _relay(self, stage: str, proc: subprocess.Popen, sel: Any, log) -> int:
        assert proc.stdout is not None
        while True:
            if self.left() <= 0:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
                log.write("stopped at the deadline\n")
                return -9
            if sel.select(timeout=1.0):
                line = proc.stdout.readline()
                if not line:
                    break
                log.write(line)
                log.flush()
                if "it/s]" not in line and "s/it]" not in line:
                    print(f"  {stage}| {line.rstrip()}", flush=True)
            elif proc.poll() is not None:
                rest = proc.stdout.read()
                if rest:
                    log.write(rest)
                break
        return proc.wait()

    def py(self, *args: str) -> list[str]:
        return [self.python, *args]

    def rlctx(self, *args: str) -> list[str]:
        return self.py("-m", "rlctx_utils.cli", *args)

    # --------------------------------------------------------------------------- stages
    def stage_install(self, log) -> int:
        from . import wheels as W  # standard library + importlib only

        wheel_files = sorted((self.bundle / "wheels").glob("*.whl"))
        todo, skipped = W.installable(wheel_files)
        for s in skipped:
            log.write(f"skip: {s}\n")
        self.site.mkdir(parents=True, exist_ok=True)
        have = {p.name for p in self.site.iterdir()}
        todo = [w for w in todo if f"{w.name}.installed" not in have]
        self.say(f"installing {len(todo)} of {len(wheel_files)} wheels into {self.site} "
                 f"({len(skipped)} already on this machine)")
        for w in todo:
            install_wheel(w, self.site)
        check = ("import sys, torch, transformers, accelerate, tokenizers, pyarrow, pandas, tree_sitter, "
                 "tree_sitter_python, dulwich, datasets, jupytext, papermill, tomli_w, rlctx_utils.composers;"
                 "print('python', sys.version.split()[0], 'torch', torch.__version__, 'transformers', "
                 "transformers.__version__, 'accelerate', accelerate.__version__, 'tokenizers', tokenizers.__version__);"
                 "cuda = torch.cuda.is_available();"
                 "print('cuda', cuda, torch.cuda.get_device_name(0) if cuda else '', "
                 "'bf16', cuda and torch.cuda.is_bf16_supported());"
                 f"sys.exit(0 if cuda or {self.device!r} == 'cpu' else 3)")
        rc = self.child("install", self.py("-c", check), log)
        if rc == 3:
            raise RunError("no CUDA GPU is visible: pass --device cpu for a CPU rehearsal")
        return rc

    def speed_csv(self) -> Path:
        return self.results / "bench" / ("training_gpu_paper_shape.csv" if self.device != "cpu"
                                         else "training_cpu_rehearsal.csv")

    def stage_speed(self, log) -> int:
        out = self.speed_csv()
        if self.device == "cpu":
            shape = ["--preset", "smoke", "--seq-len", "256", "--steps", "1", "--per-step", "2", "--device", "cpu"]
        else:
            shape = ["--preset", "opencoder-1.5b-shape", "--seq-len", "16384", "--steps", "3", "--per-step", "2"]
        return self.child("speed", self.py("-m", "rlctx_utils.training.throughput", *shape, "--micro-sequences", "1",
                                           "--peak-tflops", str(self.peak_tflops), "--out", str(out)), log)

    def _prepare_results(self) -> None:
        """The tokenizer and benchmark where the profile's runs and evaluations look for them."""
        tok = self.root / "tokenizer"
        if not (tok / "tokenizer.json").exists():
            shutil.copytree(self.bundle / "tokenizer", tok, dirs_exist_ok=True)
        bench = self.root / "data" / "data"
        bench.mkdir(parents=True, exist_ok=True)
        for f in (self.bundle / "benchmark" / "data").glob("*.parquet"):
            if not (bench / f.name).exists():
                shutil.copy2(f, bench / f.name)

    def _train(self, stage: str, log) -> int:
        self._prepare_results()
        seq = str(self.bundle / "sequences")
        section = "base_training" if stage == "base" else "repo_training"
        extra = ["--stage", "base"] if stage == "base" else ["--stage", "repo", "--grid"]
        return self.child(stage, self.rlctx("train", self.profile, *extra, "--resume", "--no-progress",
                                            "--out-dir", str(self.root), *self.manifest["overrides"],
                                            f'{section}.sequences="{seq}"'), log)

    def stage_base(self, log) -> int:
        return self._train("base", log)

    def stage_grid(self, log) -> int:
        return self._train("grid", log)

    def _checkpoints(self, run_ids: list[str]) -> list[str]:
        out = []
        for rid in run_ids:
            p = self.root / "runs" / rid / "checkpoints" / "final"
            if p.is_dir():
                out.append(str(p))
        return out

    def _eval(self, stage: str, log, run_ids: list[str], flag: list[str]) -> int:
        self._prepare_results()
        cks = self._checkpoints(run_ids)
        if not cks:
            log.write("no finished checkpoint to evaluate\n")
            return 1
        sets = [a for o in self.manifest["overrides"] for a in ("--set", o)]
        return self.child(stage, self.rlctx("eval", "--profile", self.profile, "--checkpoint", *cks, *flag,
                                            "--benchmark", str(self.root / "data"), "--out-dir",
                                            str(self.root / "evals"), *sets), log)

    def stage_eval(self, log) -> int:
        return self._eval("eval", log, [self.manifest["base_run"], *self.manifest["grid_runs"]], ["--preset", "all"])

    def stage_sweep(self, log) -> int:
        if not self.manifest["sweep_runs"]:
            log.write("the profile lists no [eval] sweep_runs\n")
            return 0
        return self._eval("sweep", log, self.manifest["sweep_runs"], ["--sweep"])

    def stage_notebooks(self, log) -> int:
        ex = self.root / "gpu_run" / "executed"
        scratch = self.out / ".notebook-outputs"  # tables and figures are redrawn after import
        rc = 0
        params = {"04_base_pretraining": {"train": "False", "out_dir": repr(str(self.root))},
                  "05_repo_pretraining": {"train": "False", "out_dir": repr(str(self.root))},
                  "06_evaluation": {"evals_dir": repr(str(self.root / "evals")), "tables_dir": repr(str(scratch))},
                  "08_extrapolation": {}}
        for nb in NOTEBOOKS:
            p = [a for k, v in params[nb].items() for a in ("-p", k, v)]
            if nb != "06_evaluation":
                p += ["-p", "figures_dir", repr(str(scratch))]
            one = self.child("notebooks", self.py("-m", "rlctx_utils.notebooks", "run", nb, "--profile", self.profile,
                                                  "--out-dir", str(ex), *p), log)
            rc = rc or one
            if one == -9:
                break
        return rc

    # ----------------------------------------------------------------------------- pack
    def pack(self) -> Path:
        """Write the archive of everything so far (atomically); drop TensorBoard files if over 16 MiB."""
        self.state["wall_s"] = round(time.time() - self.t0, 1)
        (self.root / "gpu_run").mkdir(parents=True, exist_ok=True)
        state = self.root / "gpu_run" / "gpu_run.json"
        tmp_state = state.with_suffix(".json.tmp")
        tmp_state.write_text(json.dumps(self.state, indent=1, sort_keys=True) + "\n")
        os.replace(tmp_state, state)
        files = []
        for p in sorted(self.root.rglob("*")):
            rel = p.relative_to(self.root).parts
            if not p.is_file() or rel[0] in ("data", "cache") or "checkpoints" in rel or p.name.startswith("."):
                continue
            files.append(p)
        files += [p for p in (self.speed_csv(), self.speed_csv().with_suffix(".json")) if p.is_file()]  # reruns too
        self.out.mkdir(parents=True, exist_ok=True)
        dest = self.out / archive_name(self.profile)
        for drop_tb in (False, True):
            tmp = dest.with_name(f".{dest.name}.tmp")
            with tarfile.open(tmp, "w:gz") as tar:
                for f in files:
                    if drop_tb and "tb" in f.relative_to(self.results).parts:
                        continue
                    tar.add(f, arcname=f"results/{f.relative_to(self.results).as_posix()}", recursive=False)
            if tmp.stat().st_size <= ARCHIVE_MAX_BYTES or drop_tb:
                break
        os.replace(tmp, dest)
        size = dest.stat().st_size
        if size > ARCHIVE_MAX_BYTES:
            self.say(f"warning: {dest.name} is {size / 2**20:.1f} MiB, over the 16 MiB that comes back")
        return dest

    def run(self, stages: list[str]) -> int:
        est = (self.manifest.get("estimate") or {}).get("total_s")
        self.say(f"profile {self.profile}, device {self.device}, deadline {self.deadline_s:.0f} s"
                 + (f", estimated {est / 60:.1f} min (from FLOPs, not measured)" if est else ""))
        self.log_dir.mkdir(parents=True, exist_ok=True)

        def _term(signum: int, frame: Any) -> None:
            raise KeyboardInterrupt

        signal.signal(signal.SIGTERM, _term)
        failed = 0
        try:
            failed = self._stages(stages)
        except KeyboardInterrupt:
            self.state["interrupted"] = True
            dest = self.pack()
            self.say(f"interrupted; packed {dest} ({dest.stat().st_size / 2**20:.2f} MiB)")
            return 130
        self.say(f"finished in {time.time() - self.t0:.0f} s; {failed} stage(s) not done")
        return 0 if failed == 0 else 1

    def _stages(self, stages: list[str]) -> int:
        failed = 0
        for stage in stages:
            if stage in self.skip:
                continue
            if self.left() <= 0:
                self.state["stages"][stage] = {"status": "not started (deadline)"}
                continue
            self.say(f"== {stage}")
            t = time.time()
            with open(self.log_dir / f"{stage}.log", "a") as log:
                try:
                    rc = getattr(self, f"stage_{stage}")(log)
                except RunError:
                    raise
                except Exception as exc:  # a driver-side failure of one stage: record it, go on
                    log.write(f"driver error: {exc!r}\n")
                    rc = 1
            status = "done" if rc == 0 else ("stopped at the deadline" if rc == -9 else f"failed (exit {rc})")
            self.state["stages"][stage] = {"status": status, "wall_s": round(time.time() - t, 1)}
            self.say(f"{stage}: {status} in {time.time() - t:.0f} s")
            failed += rc != 0
            dest = self.pack()
            self.say(f"packed {dest} ({dest.stat().st_size / 2**20:.2f} MiB)")
            if stage == "install" and rc != 0:
                self.say("the install check failed: the other stages need it; see gpu_run/logs/install.log")
                break
        return failed


def run_bundle(bundle: str | Path, *, out: str | Path | None = None, results: str | Path | None = None,
               device: str = "auto", deadline_s: float = 540.0, skip: list[str] | None = None,
               stages: list[str] | None = None, peak_tflops: float = 790.0) -> int:
    out = Path(out or os.environ.get("OUT") or "gpu-out")
    results = Path(results) if results else REPO_ROOT / "results"
    if device == "auto":
        device = "cpu" if os.environ.get("CUDA_VISIBLE_DEVICES") == "" else "cuda"
    unknown = sorted(set(skip or []) - set(STAGES)) + sorted(set(stages or []) - set(STAGES))
    if unknown:
        raise RunError(f"unknown stage(s) {unknown}: give some of {list(STAGES)}")
    drv = Driver(Path(bundle), out, results, device, deadline_s, set(skip or []), peak_tflops)
    return drv.run(list(stages or STAGES))
