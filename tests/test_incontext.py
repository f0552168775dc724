"""In-context measures: copying, within-file, the perplexity protocol, the training hook, the report."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
import torch

from rlctx_utils import schema
from rlctx_utils.data.types import Datapoint
from rlctx_utils.evaluation import incontext


class CopyModel(torch.nn.Module):
    """A real module whose logits at position t put all mass on the token at position t + 1 - L:
    it copies a sequence repeated with period L, and knows nothing before the first period."""

    def __init__(self, vocab: int, period: int):
        super().__init__()
        self.vocab, self.period = vocab, period
        self.scale = torch.nn.Parameter(torch.tensor(30.0))

    def forward(self, input_ids, **kw):
        B, T = input_ids.shape
        logits = torch.zeros(B, T, self.vocab)
        for t in range(self.period - 1, T):
            logits[torch.arange(B), t, input_ids[:, t + 1 - self.period]] = self.scale
        return type("Out", (), {"logits": logits})()


def _module(name: str, n: int) -> str:
    return "import os\n\n" + "\n".join(
        f"def {name}_{i}(value, other=None):\n    \"\"\"Return value plus {i} unless other.\"\"\"\n"
        f"    if other is not None:\n        return other * {i}\n    return value + {i}\n" for i in range(n))


def datapoints(k: int = 4, split: str = "benchmark") -> list[Datapoint]:
    dps = []
    for r in range(k):
        snap = {f"pkg/mod_{j}.py": _module(f"f{r}{j}", 4 + j) for j in range(3)}
        dps.append(Datapoint(repo=f"owner/repo{r % 3}", commit_hash=f"{r:040x}", completion_path="pkg/new.py",
                             completion_content=_module(f"g{r}", 20 + r), snapshot=snap,
                             completion_lines={"inproject": [5], "infile": [9]}, split=split))
    return dps


@pytest.fixture(scope="module")
def random_model(py_tokenizer):
    from rlctx_utils.models import build_model

    return build_model("smoke", len(py_tokenizer), seed=0, rope_theta=500000.0, max_position_embeddings=1024).eval()


def test_ordinary_ids_exclude_special_tokens(py_tokenizer):
    from rlctx_utils.tokenizer import special_token_ids

    ids = set(incontext.ordinary_ids(py_tokenizer).tolist())
    assert not ids & set(special_token_ids(py_tokenizer).values())
    assert len(ids) == len(py_tokenizer) - len(set(py_tokenizer.all_special_ids))
    a = incontext.random_chunks(py_tokenizer, n=3, length=50, seed=7)
    assert a == incontext.random_chunks(py_tokenizer, n=3, length=50, seed=7)  # seeded
    assert a != incontext.random_chunks(py_tokenizer, n=3, length=50, seed=8)
    assert all(len(c) == 50 and set(c) <= ids for c in a)


def test_copying_score_of_a_copying_model_and_of_a_random_one(py_tokenizer, random_model):
    V, L = len(py_tokenizer), 120
    chunks = incontext.random_chunks(py_tokenizer, n=16, length=L, seed=0)
    r = incontext.copy_score(CopyModel(V, L), chunks, n_resamples=200)
    # first copy: uniform over the vocabulary (log V nats); second copy: copied exactly
    assert r["first"] == pytest.approx(math.log(V), abs=1e-4)
    assert r["second"] < 1e-6 and r["score"] < -0.99 * math.log(V)
    assert r["ci_low"] <= r["score"] <= r["ci_high"] and r["n"] == 16
    # copying with the wrong period is confidently wrong on the second copy: the score turns positive
    assert incontext.copy_score(CopyModel(V, L + 1), chunks, n_resamples=0)["score"] > 1
    r0 = incontext.copy_score(random_model, chunks, n_resamples=200)
    assert abs(r0["score"]) < 0.05 and r0["first"] > 7


def test_code_chunks_and_within_file(py_tokenizer, random_model):
    dps = datapoints()
    chunks, repos = incontext.code_chunks(dps, py_tokenizer, n=6, length=120, seed=1)
    assert len(chunks) == 6 and all(len(c) == 120 for c in chunks) and set(repos) <= {dp.repo for dp in dps}
    assert (chunks, repos) == incontext.code_chunks(dps, py_tokenizer, n=6, length=120, seed=1)
    V = len(py_tokenizer)
    r = incontext.copy_score(CopyModel(V, 120), chunks, repos, measure="copy_code", n_resamples=100)
    assert r["score"] < -7 and r["n_clusters"] == len(set(repos))
    f = incontext.within_file_losses(random_model, dps, py_tokenizer, windows=[32, 64, 256, 512])
    assert len(f) == len(dps) and (f["n_tokens"] >= 512).all()
    w = incontext.within_file_score(random_model, dps, py_tokenizer, windows=[32, 64, 256, 512], n_resamples=100)
    assert abs(w["score"]) < 0.1 and w["n"] == len(dps)
    # a model whose loss falls along the file scores positive (early - late)
    too_long = incontext.within_file_score(random_model, dps, py_tokenizer, windows=[32, 64, 256, 100_000])
    assert too_long["n"] == 0 and math.isnan(too_long["score"])
    with pytest.raises(Exception, match="within_file"):
        incontext.incontext_config({"eval": {"incontext": {"within_file": [64, 32, 256, 512]}}})
    with pytest.raises(Exception, match="unknown"):
        incontext.incontext_config({"eval": {"incontext": {"sequence": 3}}})


def _checkpoint(tmp_path, model, tok, run_id="path_distance_py-original-masked-theta500000"):
    run = tmp_path / "results" / "runs" / run_id
    ck = run / "checkpoints" / "final"
    model.save_pretrained(ck)
    tok.save_pretrained(ck)
    (run / "run.json").write_text(json.dumps({
        "run_id": run_id, "stage": "repo", "composer": "path_distance_py", "mode": "original",
        "loss": "masked", "rope_theta": 500000, "train_length": 1024, "config_hash": "abc",
        "model": {"preset": "smoke"}}))
    return ck


def test_perplexity_protocol_stores_skips_and_is_zero_without_context(py_tokenizer, random_model, tmp_path):
    from rlctx_utils.config import load_profile
    from rlctx_utils.evaluation import api

    ck = _checkpoint(tmp_path, random_model, py_tokenizer)
    bench = api.Benchmark("toy-benchmark", datapoints())
    cfg = load_profile("smoke")
    out = tmp_path / "evals"
    kw = dict(profile="smoke", benchmark=bench, cfg=cfg, out_dir=out, progress=False, protocol="perplexity")
    fl = api.run_eval(ck, composer="file_level", max_context=256, **kw)
    pdx = api.run_eval(ck, composer="path_distance_py", max_context=1024, **kw)
    rec = fl["lines"]
    assert list(rec.columns) == incontext.FILE_COLUMNS and len(rec) == 4
    assert (rec["context_tokens"] == 0).all() and (rec["file_loss_delta"] == 0).all()
    assert (rec["file_tokens"] == 256).all()  # the smoke completion budget (completion_max_tokens)
    recp = pdx["lines"]
    assert (recp["context_tokens"] > 0).all() and (recp["context_tokens"] + recp["file_tokens"] <= 1024).all()
    assert (recp["file_loss_delta"] != 0).all()
    # the same completion tokens with and without context: the no-context loss is the same in both
    assert recp["file_loss_nocontext"].tolist() == pytest.approx(rec["file_loss_nocontext"].tolist(), abs=1e-5)
    res = api.collect_results("smoke", out_dir=out)
    schema.validate(res)
    assert set(res["line_type"]) == {"file"} and set(res["protocol"]) == {"perplexity"}
    assert set(res["eval_role"]) >= {"FL-base", "PD-ext", "Or-ext"}
    row = res[res["eval_role"] == "PD-ext"].iloc[0]
    assert row["file_loss_delta"] == pytest.approx(recp["file_loss_delta"].mean()) and row["n_lines"] == 4
    assert pd.isna(row["em"])
    mtimes = {p: p.stat().st_mtime_ns for p in out.iterdir()}
    again = api.run_eval(ck, composer="file_level", max_context=256, **kw)
    assert again["skipped"] and {p: p.stat().st_mtime_ns for p in out.iterdir()} == mtimes
    # line-completion identities are unchanged by the protocol options (no 'options' key)
    thesis = api.EvalRequest("c", None, "b", "f", "file_level", "original", 256, "thesis", "opencoder", 0, [])
    assert "options" not in thesis.identity()


def test_eval_cli_perplexity_end_to_end(py_tokenizer, random_model, tmp_path, capsys):
    from rlctx_utils.cli import main
    from rlctx_utils.data.store import save_datapoints
    from rlctx_utils.evaluation import api, incontext_report

    ck = _checkpoint(tmp_path, random_model, py_tokenizer)
    save_datapoints(datapoints(), tmp_path / "bench")
    out = tmp_path / "evals"
    argv = ["eval", "--profile", "smoke", "--checkpoint", str(ck), "--benchmark", str(tmp_path / "bench"),
            "--preset", "all", "--protocol", "perplexity", "--out-dir", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "with - without context +0.000 nats" in printed  # FL-base
    res = api.collect_results("smoke", out_dir=out)
    assert set(res["eval_role"]) == {"FL-base", "PD-base", "PD-ext", "Or-ext", "sweep"}
    assert len(list(out.glob("*__perplexity__*.parquet"))) == 3  # FL-256, PD-256, PD-1K (= Or-ext)
    assert main(argv) == 0 and "exists, skipped" in capsys.readouterr().out
    ppl = incontext_report.perplexity_frame("smoke", out, n_resamples=50)
    assert set(ppl["eval_role"]) >= {"FL-base", "PD-base", "PD-ext", "Or-ext"}
    assert ppl.loc[ppl["eval_role"] == "FL-base", "delta"].iloc[0] == 0
    # notebook 06 (make figures: evaluate=False) draws the in-context table and figure from stored results
    from rlctx_utils.config import load_profile
    from rlctx_utils.notebooks import run_notebook

    cfg = load_profile("smoke", ["eval.incontext.sequences=4", "eval.incontext.bootstrap=20",
                                 f'eval.benchmark="{tmp_path / "bench"}"'])
    incontext.run_incontext("smoke", cfg=cfg, results_root=tmp_path / "results", out_dir=tmp_path / "incontext")
    run_notebook("notebooks/06_evaluation.py", parameters={
        "profile": "smoke", "evals_dir": str(out), "tables_dir": str(tmp_path / "tables"),
        "figures_dir": str(tmp_path / "figures")}, out_dir=tmp_path / "nb")
    md = (tmp_path / "tables" / "incontext_smoke.md").read_text()
    assert "Path Distance .py" in md and "Δ PD-1K" in md and "Copy, code" in md
    assert (tmp_path / "figures" / "incontext_smoke.png").exists()
    assert (tmp_path / "figures" / "incontext_smoke.pdf").exists()


def test_run_incontext_stores_skips_and_draws(py_tokenizer, random_model, tmp_path):
    from rlctx_utils.config import load_profile
    from rlctx_utils.evaluation import api, incontext_report
    from rlctx_utils.plots import save_figure
    from rlctx_utils.tables import write_table

    _checkpoint(tmp_path, random_model, py_tokenizer)
    cfg = load_profile("smoke", ["eval.incontext.sequences=4", "eval.incontext.bootstrap=50"])
    bench = api.Benchmark("toy-benchmark", datapoints())
    root = tmp_path / "results"
    st = incontext.run_incontext("smoke", cfg=cfg, results_root=root, benchmark=bench)
    assert st["state"].tolist() == ["done"] and st["copy_random_s"].iloc[0] >= 0
    stored = incontext.load_incontext("smoke", results_root=root)
    assert stored["measure"].tolist() == list(incontext.MEASURES)
    assert stored["checkpoint"].iloc[0] == "Path Distance .py" and (stored["n"] > 0).all()
    assert incontext.run_incontext("smoke", cfg=cfg, results_root=root, benchmark=bench)["state"].tolist() == ["skipped"]
    # no results at all: the report functions say so instead of drawing
    empty = incontext.load_incontext("smoke", results_root=tmp_path / "none")
    with pytest.raises(ValueError, match="no in-context results"):
        incontext_report.incontext_table(empty, incontext_report.perplexity_frame("smoke", tmp_path / "none"),
                                         profile="smoke")
    table = incontext_report.incontext_table(stored, pd.DataFrame(columns=["eval_role"]), profile="smoke")
    md, tex = write_table(table, "incontext_smoke", tmp_path / "tables", source="test", regenerate="test")
    assert "Path Distance .py" in md.read_text() and "Copy, random" in md.read_text()
    fig = incontext_report.incontext_figure(stored, pd.DataFrame(columns=["eval_role"]))
    png = save_figure(fig, "incontext_smoke", out_dir=tmp_path / "figs", caption="c", source="s", regenerate="r")
    assert png.exists() and png.with_suffix(".pdf").exists()


def test_training_hook_logs_copy_scores(py_tokenizer, tmp_path):
    from rlctx_utils.config import load_profile
    from rlctx_utils.data.store import save_corpus, save_datapoints
    from rlctx_utils.training.loop import train
    from rlctx_utils.training.runs import config_hash, identity, resolve_run

    data = tmp_path / "data"
    save_datapoints(datapoints(3, split="validation"), data)
    save_corpus([{"repo": "r", "path": f"m{i}.py", "content": _module(f"h{i}", 8), "sha1": str(i)}
                 for i in range(6)], data / "corpus")
    tok = tmp_path / "tok"
    py_tokenizer.save_pretrained(str(tok))
    base = ["stop_step=4", "save_every=0", "sequences_per_step=2", "warmup_steps=1", "schedule_steps=4",
            f'tokenizer="{tok}"', f'corpus="{data}"']
    cfg = load_profile("smoke", [f"base_training.{o}" for o in [*base, "incontext_every=2"]])
    run = resolve_run(cfg, "base")
    plain = resolve_run(load_profile("smoke", [f"base_training.{o}" for o in base]), "base")
    assert config_hash(identity(run)) == config_hash(identity(plain))  # observation only
    train(run, out_dir=tmp_path / "a", progress=False)
    m = pd.read_csv(tmp_path / "a" / "runs" / "base" / "metrics.csv")
    assert set(incontext.TRAINING_FIELDS) <= set(m.columns)
    logged = m.dropna(subset=["copy_random"])
    assert logged["step"].tolist() == [2, 4] and logged["copy_code"].notna().all()
    assert (logged["copy_random_first"] > 5).all()
    curve = incontext.curve_from_metrics(tmp_path / "a" / "runs" / "base" / "metrics.csv")
    assert curve["step"].tolist() == [2, 4]
    # the hook does not change training: same losses as a run without it
    train(plain, out_dir=tmp_path / "b", progress=False)
    m0 = pd.read_csv(tmp_path / "b" / "runs" / "base" / "metrics.csv")
    assert m0["loss"].tolist() == m["loss"].tolist() and "copy_random" not in m0.columns
    # the curve from saved checkpoints scores the same probe as the hook did at that step
    c = incontext.copying_curve(tmp_path / "a" / "runs" / "base", seed=int(run["seed"]))
    assert c["step"].tolist() == [4]
    assert c["copy_random"].iloc[0] == pytest.approx(logged["copy_random"].iloc[-1], abs=1e-4)


def test_metrics_log_keeps_copy_columns_on_resume(tmp_path):
    """A resumed run rewrites metrics.csv from the rows up to its checkpoint: the copy-score columns of
    those rows survive, and rows without a score leave the cells empty."""
    from rlctx_utils.training.loop import METRIC_FIELDS, MetricsLog

    base = {k: "1" for k in METRIC_FIELDS}
    log = MetricsLog(tmp_path, True, 0, incontext.TRAINING_FIELDS)
    log.log({**base, "step": 1})
    log.log({**base, "step": 2, **{k: "-0.5" for k in incontext.TRAINING_FIELDS}})
    log.log({**base, "step": 3})
    log.close()
    log = MetricsLog(tmp_path, True, 2, incontext.TRAINING_FIELDS)  # resumed from the step-2 checkpoint
    log.log({**base, "step": 3})
    log.close()
    m = pd.read_csv(tmp_path / "metrics.csv")
    assert m["step"].tolist() == [1, 2, 3] and list(m.columns) == [*METRIC_FIELDS, *incontext.TRAINING_FIELDS]
    assert m["copy_random"].isna().tolist() == [True, False, True] and m.at[1, "copy_code"] == -0.5
    assert incontext.curve_from_metrics(tmp_path / "metrics.csv")["step"].tolist() == [2]


def test_copying_curve_reads_checkpoint_steps_without_running_pickles(tmp_path):
    import pickle

    from rlctx_utils.training.loop import TrainingError

    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    ck = tmp_path / "step-7"
    ck.mkdir()
    with open(ck / "trainer_state.pt", "wb") as fh:
        pickle.dump({"step": Payload()}, fh)
    with pytest.raises(TrainingError, match="cannot be loaded safely"):
        incontext._step_of(ck)
    assert not marker.exists()
    (ck / "trainer_state.pt").unlink()
    assert incontext._step_of(ck) == 7
