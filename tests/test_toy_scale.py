"""The toy-scale findings: verdicts follow the numbers (synthetic per-line evaluations)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rlctx_utils import published, toy_scale
from rlctx_utils.config import load_profile
from rlctx_utils.io import write_sidecar
from rlctx_utils.paths import PAPER_RESULTS
from rlctx_utils.toy_scale import (BASE, DUP, DUP_FULL, FL10K, FL500K, PD, PD_FULL, UNTRAINED, Estimate,
                                   paired, run_id)

LINES_IOU = run_id("lines_iou_py")
REPOS = 5
PER_REPO = 12


def _record(rid: str) -> dict:
    if rid == BASE:
        return {"run_id": rid, "stage": "base", "composer": None, "rope_theta": 10000, "train_length": 256}
    if rid == UNTRAINED:
        return {"run_id": rid, "stage": "base", "composer": None, "rope_theta": 500000, "stop_step": 0,
                "train_length": 256}
    composer, mode, loss, theta = rid.split("-")
    return {"run_id": rid, "stage": "repo", "composer": composer, "mode": mode, "loss": loss,
            "rope_theta": int(theta[len("theta"):]), "stop_step": 3, "train_tokens": 1e6,
            "train_length": 256 if composer == "file_level" else 1024}


def _lines(value: float, rng: np.random.Generator) -> pd.DataFrame:
    n = REPOS * PER_REPO
    acc = np.clip(value / 100 + rng.normal(0, 0.01, n), 0, 1)
    return pd.DataFrame({"datapoint": [f"d{i // 3}" for i in range(n)], "repository": [f"r{i // PER_REPO}" for i in range(n)],
                         "line": np.arange(n), "category": "inproject", "match": acc > 0.995,
                         "token_acc": acc, "line_loss": 5 - 3 * acc, "prompt_tokens": 200 + rng.integers(0, 2, n)})


def _store(d, rid, composer, n, value, rng, record=None):
    path = d / f"{rid}__{composer}-{n}__thesis__bench.parquet"
    _lines(value, rng).to_parquet(path, index=False)
    write_sidecar(path, {"identity": {"protocol": "thesis", "composer": composer, "mode": "original",
                                      "max_context": n, "benchmark": "bench"},
                         "checkpoint_record": record or _record(rid)})


def _evals(d, overrides=None):
    """Synthetic smoke-profile evaluations (base 256, extended 1024) with chosen token accuracies."""
    rng = np.random.default_rng(0)
    v = {  # (run, composer, max_context) -> token accuracy (%)
        (BASE, "file_level", 256): 25, (BASE, "path_distance_py", 256): 30, (BASE, "path_distance_py", 1024): 20,
        (UNTRAINED, "path_distance_py", 1024): 5,
        (FL10K, "path_distance_py", 1024): 15,
        (FL500K, "file_level", 256): 24, (FL500K, "path_distance_py", 256): 30,
        (FL500K, "path_distance_py", 1024): 40, (FL500K, "path_distance_py", 512): 35,
        (PD, "file_level", 256): 26, (PD, "path_distance_py", 256): 32, (PD, "path_distance_py", 1024): 42,
        (PD, "path_distance_py", 2048): 43,
        (PD_FULL, "file_level", 256): 28, (PD_FULL, "path_distance_py", 256): 34,
        (PD_FULL, "path_distance_py", 1024): 44,
        (LINES_IOU, "path_distance_py", 1024): 41.5,
        (DUP, "path_distance_py", 1024): 30, (DUP_FULL, "path_distance_py", 1024): 40,
    }
    v.update(overrides or {})
    for (rid, composer, n), value in v.items():
        _store(d, rid, composer, n, value, rng)


@pytest.fixture(scope="module")
def paper():
    return published.load(PAPER_RESULTS / "results.csv")


def _verdicts(tmp_path, paper, overrides=None):
    _evals(tmp_path, overrides)
    fs = toy_scale.findings("smoke", paper, load_profile("smoke"), evals_out=tmp_path)
    return {f.number: f for f in fs}


def test_clear_effects_give_reproduced_verdicts(tmp_path, paper):
    fs = _verdicts(tmp_path, paper)
    assert {n: f.verdict for n, f in fs.items()} == {n: "reproduced" for n in range(1, 7)}
    # the paper's side is the published numbers: File-level 45.2 at PD-16K inproject
    assert any(r.paper == "45.2" for r in fs[3].rows)
    md = toy_scale.render_markdown(list(fs.values()), profile="smoke")
    assert md.count("**Verdict: reproduced.**") == 6 and "| 2 | Most of the long-context gain" in md


def test_verdicts_follow_the_numbers(tmp_path, paper):
    fs = _verdicts(tmp_path, paper, {
        (FL500K, "path_distance_py", 1024): 14,       # theta 500k no better than 10k; FL far behind PD
        (LINES_IOU, "path_distance_py", 1024): 39,    # composers 3 points apart
        (PD_FULL, "path_distance_py", 1024): 38,      # full below masked at PD-ext
        (BASE, "path_distance_py", 256): 25,          # no in-context gain for the base model
    })
    assert fs[2].verdict == "partly"                  # only (b): training after raising theta helps
    assert fs[3].verdict == "not reproduced"          # File-level gets a small share of the gain
    assert fs[4].verdict == "partly"                  # Duplication still hurt more by masking
    assert fs[6].verdict == "partly"                  # only after extension
    assert fs[1].verdict == "not reproduced"          # composer spread large next to a ~0 RoPE gain


def test_runs_beyond_the_paper_are_no_composer_of_their_own(tmp_path, paper):
    """A LoRA run of Path Distance .py is not a ninth realistic composer (it would take the
    composer's row and name in finding 1 and be 'the best composer' of finding 3)."""
    lora = PD + "-lora16"
    _store(tmp_path, lora, "path_distance_py", 1024, 60, np.random.default_rng(3),
           record={**_record(PD), "run_id": lora, "lora": {"r": 16}})
    fs = _verdicts(tmp_path, paper)
    assert {n: f.verdict for n, f in fs.items()} == {n: "reproduced" for n in range(1, 7)}
    assert not any("LoRA" in r.quantity for r in fs[1].rows + fs[3].rows)
    s = toy_scale.Study("smoke", paper, load_profile("smoke"), evals_out=tmp_path)
    assert lora not in s.realistic_runs() and PD in s.realistic_runs()
    assert s.label(lora) == "Path Distance .py (LoRA r16)"


def test_missing_runs_are_not_tested(tmp_path, paper):
    fs = toy_scale.findings("smoke", paper, load_profile("smoke"), evals_out=tmp_path)
    assert {f.verdict for f in fs} == {"not tested"}


def test_paired_difference_resamples_repositories():
    rng = np.random.default_rng(1)
    a, b = _lines(50, rng), _lines(40, rng)
    e = paired(a, b, "token_acc")
    assert isinstance(e, Estimate) and e.n_repos == REPOS and e.n_lines == REPOS * PER_REPO
    assert 9 < e.value < 11 and e.low < e.value < e.high and not e.within_noise
    same = paired(a, a, "token_acc")
    assert same.value == 0 and same.within_noise


@pytest.mark.notebook
def test_toy_scale_notebook_on_the_committed_cpu_results(tmp_path):
    """Notebook 09 renders our Tables 2 and 4, the per-line table, the findings and the effects figure
    from the committed cpu evaluations (what `make figures` does), writing only into tmp_path."""
    import json

    from rlctx_utils.notebooks import run_notebook
    from rlctx_utils.paths import RESULTS

    if not list((RESULTS / "cpu" / "evals").glob("*.summary.csv")):
        pytest.skip("no committed cpu evaluations")
    run_notebook("09_toy_scale", parameters={
        "profile": "cpu", "tables_dir": str(tmp_path / "t"), "figures_dir": str(tmp_path / "f"),
        "report_md": str(tmp_path / "toy.md"), "findings_dir": str(tmp_path)}, out_dir=tmp_path / "nb")
    md = (tmp_path / "toy.md").read_text()
    assert md.startswith("# At toy scale") and md.count("**Verdict:") == 6
    found = json.loads((tmp_path / "findings.json").read_text())
    assert [f["number"] for f in found["findings"]] == [1, 2, 3, 4, 5, 6]
    # the committed report section is what the committed results give
    committed = json.loads((RESULTS / "cpu" / "findings.json").read_text())
    assert [f["verdict"] for f in found["findings"]] == [f["verdict"] for f in committed["findings"]]
    assert (tmp_path / "t" / "table2_cpu_token_acc.md").exists() and (tmp_path / "t" / "table4_cpu_em.tex").exists()
    assert (tmp_path / "f" / "toy_scale_cpu_effects.png").stat().st_size > 10_000
