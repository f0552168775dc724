"""Stage A and B end to end on the smoke preset: masks, data order, RoPE change, runs, resume, grid."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rlctx_utils.config import load_profile
from rlctx_utils.data import Datapoint
from rlctx_utils.io import read_json
from rlctx_utils.paths import REPO_ROOT
from rlctx_utils.training.runs import RunExistsError, grid_runs, resolve_run
from rlctx_utils.training.sequences import IGNORE

TINY = ["stop_step=3", "save_every=1", "sequences_per_step=4", "warmup_steps=1", "schedule_steps=6"]


def _module(name: str, n: int) -> str:
    body = "\n".join(f"def {name}_{i}(x):\n    \"\"\"Return x plus {i}.\"\"\"\n    return x + {i}\n" for i in range(n))
    return f"import os\n\n{body}"


def make_datapoints(k: int = 6) -> list[Datapoint]:
    """Tiny repositories: a package with sibling modules and a README; the completion file is new."""
    dps = []
    for r in range(k):
        snap = {f"pkg/mod_{j}.py": _module(f"f{r}{j}", 3 + j) for j in range(3)}
        snap["README.md"] = f"# Repo {r}\n\nA tiny repository for tests.\n"
        snap["pkg/data.bin"] = None
        dps.append(Datapoint(repo=f"owner/repo{r}", commit_hash=f"{r:040x}", completion_path="pkg/new.py",
                             completion_content=_module(f"g{r}", 12 + r), snapshot=snap))
    return dps


@pytest.fixture(scope="module")
def tok_dir(py_tokenizer, tmp_path_factory):
    d = tmp_path_factory.mktemp("tok")
    py_tokenizer.save_pretrained(str(d))
    return d


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory):
    from rlctx_utils.data.store import save_corpus
    from rlctx_utils.tokenizer import stdlib_corpus

    d = tmp_path_factory.mktemp("corpus")
    rows = [{"repo": "stdlib", "path": f"lib/m{i}.py", "content": t, "sha1": str(i)}
            for i, t in enumerate(stdlib_corpus(max_files=30, seed=1, max_chars=20_000))]
    save_corpus(rows, d)
    return d


def base_run(tok_dir, corpus_dir, extra=()):
    cfg = load_profile("smoke", [f"base_training.{o}" for o in
                                 [*TINY, f'tokenizer="{tok_dir}"', f'corpus="{corpus_dir}"', *extra]])
    return resolve_run(cfg, "base")


@pytest.fixture(scope="module")
def base_out(tok_dir, corpus_dir, tmp_path_factory):
    """A trained smoke base model (stage A, 3 steps) in a results root."""
    from rlctx_utils.training.loop import train

    out = tmp_path_factory.mktemp("results")
    rec = train(base_run(tok_dir, corpus_dir), out_dir=out, progress=False)
    assert rec["status"] == "finished"
    return out


def test_masked_loss_is_exactly_on_completion_tokens(py_tokenizer):
    from rlctx_utils.composers import render_completion
    from rlctx_utils.training.sequences import build_repo_sequence

    dp = make_datapoints(1)[0]
    kw = dict(composer="path_distance_py", mode="original", tokenizer=py_tokenizer, seq_len=256, seed=0)
    masked = build_repo_sequence(dp, loss="masked", **kw)
    full = build_repo_sequence(dp, loss="full", **kw)
    assert masked.input_ids == full.input_ids
    assert masked.n_context > 0
    start = masked.n_header + masked.n_context
    assert [i for i, x in enumerate(masked.labels) if x != IGNORE] == list(range(start, len(masked)))
    assert [i for i, x in enumerate(full.labels) if x != IGNORE] == list(range(1, len(full)))
    comp_ids = py_tokenizer(render_completion(dp.completion_path, dp.completion_content),
                            add_special_tokens=False)["input_ids"]
    # The labelled tokens are the completion file, cut at the end to a quarter of the window.
    assert masked.input_ids[start:] == comp_ids[:256 // 4]
    assert masked.n_completion == 64 < len(comp_ids)
    # The context fills the rest of the window: the end of the composer's (longer) context.
    assert len(masked) == 256
    big = build_repo_sequence(dp, loss="masked", **{**kw, "seq_len": 4096})
    assert big.n_context > masked.n_context
    assert masked.input_ids[:masked.n_context] == big.input_ids[big.n_context - masked.n_context:big.n_context]
    fl = build_repo_sequence(dp, composer="file_level", mode="original", tokenizer=py_tokenizer,
                             seq_len=512, seed=0, completion_max=512)
    assert fl.n_context == 0 and fl.input_ids == comp_ids[:512]


def test_data_order_is_the_same_whichever_composer(py_tokenizer):
    from rlctx_utils.training.source import datapoint_source

    dps = make_datapoints(6)
    kw = dict(mode="original", tokenizer=py_tokenizer, seq_len=256, loss="masked")
    a = datapoint_source(dps, build_kwargs={**kw, "composer": "path_distance_py"}, seed=7)
    b = datapoint_source(list(reversed(dps)), build_kwargs={**kw, "composer": "file_level"}, seed=7)
    c = datapoint_source(dps, build_kwargs={**kw, "composer": "path_distance_py"}, seed=8)
    assert a.ids_in_order(18) == b.ids_in_order(18) and a.order_hash() == b.order_hash()
    assert a.ids_in_order() != c.ids_in_order()
    assert a.get(3).meta["id"] == b.get(3).meta["id"]
    assert a.get(3).input_ids == a.get(3).input_ids  # lazily rebuilt, identical


def test_accelerate_configs_load():
    from accelerate.commands.config.config_args import load_config_from_file
    from accelerate.commands.launch import launch_command_parser

    known = {a.dest for a in launch_command_parser()._actions}
    kinds = {}
    for p in sorted((REPO_ROOT / "configs" / "accelerate").glob("*.yaml")):
        cfg = load_config_from_file(str(p))
        kinds[p.stem] = str(cfg.distributed_type).split(".")[-1]
        for section in ("fsdp_config", "deepspeed_config"):
            for key in (getattr(cfg, section, None) or {}):
                assert key in known or f"{key}" in {"zero_stage", "gradient_accumulation_steps", "gradient_clipping",
                                                    "offload_optimizer_device", "offload_param_device",
                                                    "zero3_init_flag", "zero3_save_16bit_model"}, (p.name, key)
    assert kinds == {"cpu": "NO", "ddp": "MULTI_GPU", "fsdp": "FSDP", "deepspeed_zero2": "DEEPSPEED",
                     "deepspeed_zero3": "DEEPSPEED"}


def test_paper_profile_is_spec_section_5():
    cfg = load_profile("paper")
    run = resolve_run(cfg, "repo")
    assert (run["lr"], run["min_lr"], run["warmup_steps"], run["schedule_steps"], run["stop_step"]) == \
        (5e-5, 5e-8, 256, 3500, 512)
    assert (run["sequences_per_step"], run["micro_batch_sequences"], run["packing"]) == (128, 1, False)
    assert (tuple(run["betas"]), run["weight_decay"], run["clip"]) == ((0.9, 0.999), 0.01, 2.0)
    assert (run["seq_len"], run["completion_max_tokens"], run["rope_theta"]) == (16384, 4096, 500000)
    runs = grid_runs(cfg)
    assert len(runs) == 43
    assert "path_distance_py-original-masked-theta500000" in {r["run_id"] for r in runs}
    fl = resolve_run(cfg, "repo", "file_level-original-full-theta10000")
    assert fl["seq_len"] == 4096 and fl["rope_theta"] == 10000


def test_stage_b_changes_rope_base_and_records_run(base_out, py_tokenizer):
    from rlctx_utils.training.loop import train

    cfg = load_profile("smoke", [f"repo_training.{o}" for o in TINY])
    run = resolve_run(cfg, "repo", "path_distance_py-original-masked-theta500000")
    rec = train(run, out_dir=base_out, data=make_datapoints(6), progress=False)
    assert rec["status"] == "finished" and rec["composer"] == "path_distance_py"
    assert rec["rope_theta"] == 500000 and rec["train_length"] == 1024 and rec["train_tokens"] > 0
    base_cfg = read_json(base_out / "runs" / "base" / "checkpoints" / "final" / "config.json")
    final = base_out / "runs" / run["run_id"] / "checkpoints" / "final"
    new_cfg = read_json(final / "config.json")
    assert base_cfg["rope_parameters"]["rope_theta"] == 10000
    assert new_cfg["rope_parameters"]["rope_theta"] == 500000
    from rlctx_utils.models import load_model

    model = load_model(str(final), device="cpu")
    inv = model.model.rotary_emb.inv_freq
    dim = model.config.hidden_size // model.config.num_attention_heads
    expected = 1.0 / (500000.0 ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim))
    assert torch.allclose(inv.float(), expected, rtol=1e-5)
    assert (final / "model.safetensors").exists() and (final / "trainer_state.pt").exists()
    assert (final / "tokenizer.json").exists()
    d = base_out / "runs" / run["run_id"]
    assert list((d / "tb").glob("events.out.tfevents.*"))
    assert read_json(d / "data_order.json")["order_hash"] == rec["data_order_hash"]

    # Rerunning the same config does nothing; a different config is refused, nothing lost.
    again = train(run, out_dir=base_out, data=make_datapoints(6), progress=False)
    assert again["finished_at"] == rec["finished_at"]
    other = dict(run, lr=5e-4)
    with pytest.raises(RunExistsError, match="different config"):
        train(other, out_dir=base_out, data=make_datapoints(6), progress=False)
    assert read_json(d / "run.json")["finished_at"] == rec["finished_at"]


def test_smoke_grid_trains_with_the_same_data_order(base_out):
    from rlctx_utils.training.cli import resolve_runs
    from rlctx_utils.training.loop import train

    base = base_out / "runs" / "base" / "checkpoints" / "final"
    runs = resolve_runs("smoke", ["stop_step=1", "sequences_per_step=2", "save_every=0",
                                  f'base_checkpoint="{base}"'], stage="repo", grid=True)
    assert [r["composer"] for r in runs] == ["file_level", "path_distance_py", "path_distance_py"]
    recs = [train(r, out_dir=base_out / "grid", data=make_datapoints(4), progress=False) for r in runs]
    assert len({r["data_order_hash"] for r in recs}) == 1
    assert recs[0]["train_length"] == 256  # file-level: the completion alone at the base length


def test_untrained_run_saves_base_weights_under_the_new_rope_base(base_out):
    """stop_step = 0: the base model with theta raised and no training (SPEC finding 2)."""
    from safetensors.torch import load_file

    from rlctx_utils.training.loop import train

    cfg = load_profile("smoke", [f"repo_training.{o}" for o in TINY])
    run = resolve_run(cfg, "repo", "path_distance_py-original-masked-theta500000")
    base_final = base_out / "runs" / "base" / "checkpoints" / "final"
    run.update(run_id="base-theta500000-untrained", stop_step=0, composer="file_level",
               base_checkpoint=str(base_final))
    rec = train(run, out_dir=base_out / "untrained", data=make_datapoints(2), progress=False)
    assert rec["status"] == "finished" and rec["step"] == 0 and rec["train_tokens"] == 0
    final = base_out / "untrained" / "runs" / run["run_id"] / "checkpoints" / "final"
    assert read_json(final / "config.json")["rope_parameters"]["rope_theta"] == 500000
    base = load_file(str(base_final / "model.safetensors"))
    new = load_file(str(final / "model.safetensors"))
    assert base.keys() == new.keys() and all(torch.equal(base[k], new[k]) for k in base)


def test_finished_record_without_checkpoint_is_trained_again(tok_dir, corpus_dir, tmp_path):
    """A fresh clone has the committed logs but no checkpoints: the run is retrained, identically."""
    import shutil

    from rlctx_utils.training.loop import train

    run = base_run(tok_dir, corpus_dir, extra=["stop_step=2"])
    first = train(run, out_dir=tmp_path, progress=False)
    d = tmp_path / "runs" / "base"
    losses = _losses(d)
    shutil.rmtree(d / "checkpoints")
    again = train(run, out_dir=tmp_path, progress=False)
    assert again["status"] == "finished" and (d / "checkpoints" / "final").is_dir()
    assert _losses(d) == losses and again["finished_at"] >= first["finished_at"]


def _cli(args, env_extra=None, **kw):
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "rlctx_utils.cli", "train", *args], env=env,
                          capture_output=True, text=True, cwd=REPO_ROOT, **kw)


def _final_weights(d: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(d / "checkpoints" / "final" / "model.safetensors"))


def _losses(d: Path) -> list[str]:
    return [ln.split(",")[1] for ln in (d / "metrics.csv").read_text().splitlines()[1:]]


@pytest.mark.slow
def test_resume_after_kill_equals_uninterrupted_run(tok_dir, corpus_dir, tmp_path):
    """A CPU run killed (SIGKILL) mid-way and resumed gives the same losses and final weights."""
    from rlctx_utils.training.loop import train

    args = ["smoke", "--stage", "base", "--no-progress", f'tokenizer="{tok_dir}"', f'corpus="{corpus_dir}"',
            "stop_step=5", "save_every=2", "sequences_per_step=4", "warmup_steps=1", "schedule_steps=8",
            "threads=1"]
    r = _cli([*args, "--out-dir", str(tmp_path / "a"), "debug.kill_at_step=3"])
    assert r.returncode == -9, r.stderr[-2000:]  # killed by SIGKILL after step 3 (checkpoint at 2)
    d = tmp_path / "a" / "runs" / "base"
    assert read_json(d / "run.json")["status"] == "running"
    cfg = load_profile("smoke", [a if "." in a.split("=")[0] else f"base_training.{a}" for a in args[4:]])
    with pytest.raises(RunExistsError, match="--resume"):  # an unfinished run is not silently restarted
        train(resolve_run(cfg, "base"), out_dir=tmp_path / "a", progress=False)
    r = _cli([*args, "--out-dir", str(tmp_path / "a"), "--resume"])
    assert r.returncode == 0, r.stderr[-2000:]
    # Uninterrupted reference, in process.
    train(resolve_run(cfg, "base"), out_dir=tmp_path / "b", progress=False)
    ref = tmp_path / "b" / "runs" / "base"
    assert _losses(d) == _losses(ref) and len(_losses(d)) == 5
    wa, wb = _final_weights(d), _final_weights(ref)
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


@pytest.mark.slow
def test_two_gloo_processes_equal_one_process(tok_dir, corpus_dir, tmp_path):
    """torchrun with 2 CPU processes (gloo) matches one process at the same global batch."""
    common = ["smoke", "--stage", "base", "--no-progress", f'tokenizer="{tok_dir}"', f'corpus="{corpus_dir}"',
              "stop_step=2", "save_every=0", "sequences_per_step=6", "micro_batch_tokens=512",
              "warmup_steps=1", "schedule_steps=4", "threads=1", "eps=1.0"]  # eps: no Adam sign amplification
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                          "--master_port", str(29500 + os.getpid() % 1000), "-m", "rlctx_utils.cli", "train",
                          *common, "--out-dir", str(tmp_path / "two")],
                         env=env, capture_output=True, text=True, cwd=REPO_ROOT)
    assert two.returncode == 0, two.stderr[-3000:]
    from rlctx_utils.training.loop import train

    cfg = load_profile("smoke", [f"base_training.{a}" for a in common[4:]])
    train(resolve_run(cfg, "base"), out_dir=tmp_path / "one", progress=False)
    a, b = tmp_path / "two" / "runs" / "base", tmp_path / "one" / "runs" / "base"
    assert read_json(a / "run.json")["processes"] == 2 and read_json(b / "run.json")["processes"] == 1
    la, lb = [float(x) for x in _losses(a)], [float(x) for x in _losses(b)]
    assert la == pytest.approx(lb, rel=1e-5)
    wa, wb = _final_weights(a), _final_weights(b)
    for k in wa:
        assert torch.allclose(wa[k], wb[k], atol=1e-7, rtol=1e-5), k
