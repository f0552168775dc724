"""Evaluation: protocols, stop rules, left cut, no leak to the composer, engines, stored results."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

from rlctx_utils import schema
from rlctx_utils.composers import compose, render_completion
from rlctx_utils.composers._fixtures import toy_repository
from rlctx_utils.data.types import Datapoint
from rlctx_utils.evaluation import metrics, presets, protocols
from rlctx_utils.evaluation.protocols import PROTOCOLS, Protocol
from rlctx_utils.evaluation.runner import build_tasks, cut_left, run_tasks, tasks_frame

# Two small completion files: short enough for a tiny model to memorise them in a few seconds.
FILE_A = '''"""Statistics helpers."""
from toy.core import add
from toy.util import total


def mean(xs):
    return total(xs) / len(xs)


def sum2(a, b):
    return add(a, b)


class Counter:
    def __init__(self):
        self.n = 0

    def bump(self, k=1):
        self.n = add(self.n, k)
        return self.n
'''
FILE_B = '''import os
from toy.io.reader import read


def load_all(folder):
    out = []
    for name in sorted(os.listdir(folder)):
        if name.endswith(".txt"):
            out.extend(read(os.path.join(folder, name)))
    return out


def count(folder):
    return len(load_all(folder))
'''


def _datapoints() -> list[Datapoint]:
    snap = toy_repository()
    return [
        Datapoint(repo="toy__toy", commit_hash="a" * 40, completion_path="toy/stats.py", completion_content=FILE_A,
                  snapshot=snap, completion_lines={"inproject": [6, 10, 19], "infile": [18], "common": [15]}),
        Datapoint(repo="toy__toy", commit_hash="b" * 40, completion_path="toy/io/load.py", completion_content=FILE_B,
                  snapshot=snap, completion_lines={"inproject": [8], "infile": [13], "random": [6]}),
    ]


@pytest.fixture(scope="module")
def dps():
    return _datapoints()


@pytest.fixture(scope="module")
def memorizer(py_tokenizer):
    """A smoke-size model trained until it has memorised FILE_A and FILE_B (both protocols then
    complete most lines), so agreement tests have matches to agree on."""
    from rlctx_utils.models import build_model

    tok = py_tokenizer
    model = build_model("smoke", len(tok), seed=0, rope_theta=500000.0, max_position_embeddings=1024)
    texts = [render_completion(p, c) for p, c in (("toy/stats.py", FILE_A), ("toy/io/load.py", FILE_B))]
    seqs = [tok(t, add_special_tokens=False).input_ids for t in texts]
    n = max(len(s) for s in seqs)
    ids = torch.tensor([s + [tok.pad_token_id] * (n - len(s)) for s in seqs])
    labels = ids.clone()
    labels[ids == tok.pad_token_id] = -100
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    torch.manual_seed(0)
    model.train()
    for _ in range(150):
        loss = model(input_ids=ids, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        if loss.item() < 0.02:
            break
    model.eval()
    return model


# ---------------------------------------------------------------------------------------------
# Protocols: prompts, stop rules, normalisation

def test_prefixes_and_continuations():
    text = "a = 1\n\nb = 2\n    c = 3\n"
    assert protocols.completion_prefix(text, 0, "lca") == ""
    assert protocols.completion_prefix(text, 3, "lca") == "a = 1\n\nb = 2"
    assert protocols.completion_prefix(text, 3, "thesis") == "a = 1\n\nb = 2\n"
    # the line above is empty: LCA's prefix ends with the newline of the line before it
    assert protocols.completion_prefix(text, 2, "lca") == "a = 1\n"
    assert protocols.continuation_text("    c = 3", 3, "lca") == "\n    c = 3\n"
    assert protocols.continuation_text("    c = 3", 3, "thesis") == "    c = 3\n"
    assert protocols.continuation_text("a = 1", 0, "lca") == "a = 1\n"
    with pytest.raises(protocols.ProtocolError):
        protocols.completion_prefix(text, 99, "lca")
    with pytest.raises(protocols.ProtocolError):
        protocols.get_protocol("nope")


def test_stop_rule_newline_token_with_indentation(py_tokenizer):
    tok = py_tokenizer
    nl = protocols.newline_ids(tok)
    eos = protocols.eos_ids(tok)
    texts = protocols.token_texts(tok)
    # one token: a newline plus the indentation of the next line
    indent_nl = [i for i in tok("a\n        b", add_special_tokens=False).input_ids if texts[i].startswith("\n ")]
    assert len(indent_nl) == 1 and indent_nl[0] in nl
    ind = texts[indent_nl[0]][1:]
    body = tok("x = foo(a, b)", add_special_tokens=False).input_ids
    assert len(body) >= 6
    gen = body + indent_nl + tok("y = 2", add_special_tokens=False).input_ids
    stop, why = protocols.stop_position(gen, nl, eos, "lca")
    assert (stop, why) == (len(body), "newline")
    text = tok.decode(gen[: stop + 1])
    assert protocols.lca_prediction(text) == "x = foo(a, b)"
    # LCA: the leading newline (the line above was not terminated) never ends the line
    lead = indent_nl + tok("return a", add_special_tokens=False).input_ids + indent_nl + body + indent_nl
    stop, why = protocols.stop_position(lead, nl, eos, "lca")
    assert stop >= 5 and why == "newline"
    pred = protocols.lca_prediction(tok.decode(lead[: stop + 1]))
    assert pred == ind + "return a" and protocols.exact_match(pred, "    return a", "lca")
    assert not protocols.exact_match(pred, "    return a", "thesis")
    # the thesis' rule: the first newline token ends the line
    stop, why = protocols.stop_position(lead, nl, eos, "thesis")
    assert (stop, why) == (0, "newline")


def test_stop_rule_eos_cap_and_no_state(py_tokenizer):
    tok = py_tokenizer
    nl, eos = protocols.newline_ids(tok), protocols.eos_ids(tok)
    word = tok("abc", add_special_tokens=False).input_ids[0]
    e = tok.eos_token_id
    assert protocols.stop_position([word, word, e, word], nl, eos, "lca") == (2, "eos")
    assert protocols.stop_position([word] * 150, nl, eos, "lca") == (99, "cap")
    assert protocols.stop_position([word] * 10, nl, eos, "lca") == (None, "open")
    # a pure function: a line ending by the cap does not make the next one stop early
    first = protocols.stop_position([word] * 100, nl, eos, "lca")
    short = [word, next(iter(nl)), word, word]
    assert first == (99, "cap")
    assert protocols.stop_position(short, nl, eos, "lca") == (None, "open")
    assert protocols.lca_prediction("\n\n  x = 1\n  y") == "  x = 1"
    assert protocols.lca_prediction("") == ""


def test_teacher_forced_line_end(py_tokenizer):
    tok = py_tokenizer
    texts = protocols.token_texts(tok)
    target = tok("x = 1\n", add_special_tokens=False).input_ids
    assert "\n" in texts[target[-1]]
    other_end = [i for i in tok("1\n    b", add_special_tokens=False).input_ids if texts[i].startswith("\n ")][0]
    assert protocols.teacher_forced_hits(target[:-1] + [other_end], target, texts) == [True] * len(target)
    wrong = tok("y", add_special_tokens=False).input_ids[0]
    assert protocols.teacher_forced_hits([wrong] + target[1:], target, texts)[0] is False
    assert protocols.teacher_forced_text(target, texts) == "x = 1"


# ---------------------------------------------------------------------------------------------
# The left cut, and what the composer sees

def test_cut_left_exact_boundaries():
    ctx, comp = [1, 2, 3, 4], [10, 11, 12]
    assert cut_left(ctx, comp, 7) == ([1, 2, 3, 4, 10, 11, 12], False)
    assert cut_left(ctx, comp, 6) == ([2, 3, 4, 10, 11, 12], True)
    assert cut_left(ctx, comp, 3) == ([10, 11, 12], True)
    assert cut_left(ctx, comp, 2) == ([11, 12], True)
    assert cut_left([], comp, 3) == ([10, 11, 12], False)


@pytest.mark.parametrize("protocol", ["lca", "thesis"])
def test_composer_never_sees_target(py_tokenizer, dps, protocol):
    seen = []

    def spy(name, snapshot, path, text, **kw):
        comp = compose(name, snapshot, path, text, **kw)
        seen.append((path, text, kw["stage"], comp))
        return comp

    tasks = build_tasks(dps, py_tokenizer, composer="path_distance_py", max_context=200, protocol=protocol,
                        compose_fn=spy)
    assert len(seen) == len(tasks) == sum(len(dp.target_lines()) for dp in dps)
    by_path = {dp.completion_path: dp.completion_content for dp in dps}
    for (path, text, stage, comp), t in zip(seen, tasks):
        lines = by_path[path].split("\n")
        assert stage == "eval"
        assert text == protocols.completion_prefix(by_path[path], t.line, protocol)
        assert "\n".join(lines[: t.line + 1]) not in text or t.line == 0 and lines[0] == ""
        assert len(t.prompt) <= 200
        # the prompt is the end of context + completion prefix (cut from the left), nothing after it
        full = comp.context + render_completion(path, text)
        assert full.endswith(py_tokenizer.decode(t.prompt) + t.lead)
        assert py_tokenizer.decode(t.prompt + t.cont).endswith(lines[t.line] + "\n")
        assert t.truncated == (len(t.prompt) == 200)


# ---------------------------------------------------------------------------------------------
# Engines and protocols on real models

def _frame(model, tok, dps, protocol, engine, composer="file_level", max_context=512, **kw):
    tasks = build_tasks(dps, tok, composer=composer, max_context=max_context, protocol=protocol)
    return tasks_frame(run_tasks(model, tok, tasks, protocol, engine=engine, **kw))


@pytest.mark.parametrize("protocol", ["thesis", "lca"])
@pytest.mark.parametrize("composer,max_context", [("file_level", 512), ("path_distance_py", 160)])
def test_fast_engine_equals_reference(py_tokenizer, memorizer, dps, protocol, composer, max_context):
    """The fast engine's shortcuts (shared prefixes, batching, teacher-forced greedy prefix, masked
    batched decoding, early end) change no decision: same predictions and matches line by line."""
    ref = _frame(memorizer, py_tokenizer, dps, protocol, "reference", composer, max_context)
    fast = _frame(memorizer, py_tokenizer, dps, protocol, "fast", composer, max_context, batch_tokens=600)
    assert list(ref["prediction"]) == list(fast["prediction"])
    assert list(ref["match"]) == list(fast["match"])
    assert list(ref["token_acc"]) == list(fast["token_acc"])
    assert (ref["line_loss"] - fast["line_loss"]).abs().max() < 1e-3
    if composer == "file_level":  # untruncated prompts of one file share their prefix
        assert not ref["truncated"].any()
    else:
        assert ref["truncated"].all()


def test_fast_engine_random_model_long_generations(py_tokenizer, dps):
    """A random model rarely ends a line: generation runs to the token cap in a batch of rows with
    different valid cache lengths."""
    from rlctx_utils.models import build_model

    model = build_model("smoke", len(py_tokenizer), seed=3).eval()
    proto = Protocol("lca-short", trailing_newline=False, generate=True, strip=True, file_average=True,
                     min_tokens=6, max_new_tokens=24)
    ref = _frame(model, py_tokenizer, dps, proto, "reference")
    # small batches of different lengths: open rows of several batches are decoded together
    fast = _frame(model, py_tokenizer, dps, proto, "fast", batch_tokens=300)
    assert list(ref["prediction"]) == list(fast["prediction"])
    assert (ref["stop"] == "cap").any()
    # no empty prediction caused by an earlier line: stopped-on-newline lines generated >= 6 tokens
    assert (ref.loc[ref["stop"] == "newline", "n_generated"] >= 6).all()


def test_thesis_equals_greedy_generation(py_tokenizer, memorizer, dps):
    """Teacher-forced argmax matches exactly when greedy generation (same prompt, no strip, stop at
    the first newline token) reproduces the target tokens and ends the line the same way."""
    tok = py_tokenizer
    greedy = Protocol("greedy", trailing_newline=True, generate=True, strip=False, file_average=False,
                      min_tokens=1, max_new_tokens=100)
    tasks = build_tasks(dps, tok, composer="file_level", max_context=512, protocol="thesis")
    th = tasks_frame(run_tasks(memorizer, tok, tasks, "thesis", engine="fast"))
    texts = protocols.token_texts(tok)
    gtasks = build_tasks(dps, tok, composer="file_level", max_context=512, protocol="thesis")
    run_tasks(memorizer, tok, gtasks, greedy, engine="reference")
    for i, t in enumerate(gtasks):
        # regenerate the tokens to compare token by token
        ids = torch.tensor([t.prompt])
        out = memorizer.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=len(t.cont),
                                 do_sample=False, pad_token_id=tok.pad_token_id)[0, len(t.prompt):].tolist()
        same = out[: len(t.cont) - 1] == t.cont[:-1] and len(out) == len(t.cont) and \
            protocols.ends_line_like(out[-1], t.cont[-1], texts)
        assert bool(th["match"].iloc[i]) == same
        if same:
            assert th["prediction"].iloc[i] == t.target
    assert th["match"].mean() > 0.5  # the memoriser completes most lines


def test_protocol_agreement_reported(py_tokenizer, memorizer, dps):
    """On a model that memorised the files, LCA and thesis agree on most lines; the literal
    separate tokenization of the target breaks every indented line (reported, not hidden)."""
    lca = _frame(memorizer, py_tokenizer, dps, "lca", "fast")
    th = _frame(memorizer, py_tokenizer, dps, "thesis", "fast")
    sep = _frame(memorizer, py_tokenizer, dps, "thesis-separate", "fast")
    agr = metrics.agreement(lca, th)
    assert agr["n_lines"] == len(lca) == len(th)
    assert agr["both"] + agr["neither"] + agr["only_a"] + agr["only_b"] == agr["n_lines"]
    assert lca["match"].mean() > 0.5 and th["match"].mean() > 0.5
    indented = sep["target"].str.startswith(" ")
    assert indented.any() and not sep.loc[indented, "match"].any()
    assert metrics.agreement(th, sep)["only_a"] >= 1


# ---------------------------------------------------------------------------------------------
# Metrics and presets

def test_edit_similarity_and_averages():
    assert metrics.edit_similarity("abc", "abc") == 100.0
    assert metrics.edit_similarity("", "") == 100.0
    assert metrics.edit_similarity("abc", "") == 0.0
    assert metrics.edit_similarity("abc", "abd") == pytest.approx(100 * 4 / 6)
    lines = pd.DataFrame({
        "datapoint": ["f1", "f1", "f1", "f2"], "category": ["inproject"] * 3 + ["infile"],
        "match": [True, False, False, True], "line_loss": [1.0, 2.0, 3.0, 4.0],
        "token_acc": [1.0, 0.5, 0.0, 1.0], "edit_sim": [100.0, 50.0, 0.0, 100.0]})
    by_line = metrics.summarize(lines, file_average=False).set_index("line_type")
    by_file = metrics.summarize(lines, file_average=True).set_index("line_type")
    assert by_line.at["inproject", "em"] == pytest.approx(100 / 3)
    assert by_line.at["micro", "em"] == pytest.approx(50.0)
    assert by_file.at["micro", "em"] == pytest.approx((100 / 3 + 100) / 2)  # per file, then over files
    assert by_line.at["macro", "em"] == pytest.approx((100 / 3 + 100) / 2)
    assert by_line.at["inproject", "token_acc"] == pytest.approx(50.0)
    assert list(by_line.index) == ["inproject", "infile", "micro", "macro"]


def test_presets_scale_with_profile():
    cfg = {"base_length": 4096, "extended_length": 16384}
    assert [s.label for s in presets.preset_settings(cfg)] == ["FL-4K", "PD-4K", "PD-16K", "Or-16K"]
    assert presets.sweep_sizes(cfg) == [1024 * 2 ** i for i in range(8)]
    assert presets.roles_of("path_distance_py", 16384, "path_distance_py", cfg) == ["PD-ext", "Or-ext", "sweep"]
    assert presets.roles_of("file_level", 4096, "lines_iou_py", cfg) == ["FL-base"]
    assert presets.roles_of("lines_iou_py", 16384, "lines_iou_py", cfg) == ["Or-ext"]
    assert presets.sweep_sizes({**cfg, "eval": {"sweep": [8192, 2048]}}) == [2048, 8192]
    with pytest.raises(presets.PresetError):
        presets.preset_settings({})


# ---------------------------------------------------------------------------------------------
# Stored evaluations and the command line, end to end on a saved checkpoint

def test_eval_cli_end_to_end(py_tokenizer, memorizer, dps, tmp_path):
    from rlctx_utils.cli import main
    from rlctx_utils.data.store import save_datapoints
    from rlctx_utils.evaluation import api

    run = tmp_path / "runs" / "path_distance_py-original-masked-theta500000"
    ck = run / "checkpoints" / "final"
    memorizer.save_pretrained(ck)
    py_tokenizer.save_pretrained(ck)
    (run / "run.json").write_text(json.dumps({
        "run_id": run.name, "stage": "repo", "composer": "path_distance_py", "mode": "original",
        "loss": "masked", "rope_theta": 500000, "train_length": 1024, "config_hash": "abc",
        "model": {"preset": "smoke"}}))
    for dp in dps:
        dp.split = "benchmark"
    save_datapoints(dps, tmp_path / "bench")
    out = tmp_path / "evals"
    argv = ["eval", "--profile", "smoke", "--checkpoint", str(ck), "--benchmark", str(tmp_path / "bench"),
            "--composer", "own", "--max-context", "1024", "--protocol", "lca,thesis", "--out-dir", str(out)]
    assert main(argv) == 0
    files = sorted(p.name for p in out.iterdir())
    assert len([f for f in files if f.endswith(".parquet")]) == 2
    lines = pd.read_parquet(next(out.glob("*thesis*.parquet")))
    assert {"datapoint", "repository", "line", "category", "prompt_tokens", "truncated", "prediction",
            "target", "match", "line_loss", "token_acc", "edit_sim"} <= set(lines.columns)
    assert len(lines) == sum(len(dp.target_lines()) for dp in dps)
    res = api.collect_results("smoke", out_dir=out)
    schema.validate(res)
    # Path Distance at the extended length: PD-ext, Or-ext of this checkpoint, and a sweep point
    assert set(res["eval_role"]) == {"PD-ext", "Or-ext", "sweep"}
    assert set(res["eval_setting"]) == {"PD-1K", "Or-1K"}
    assert set(res["protocol"]) == {"lca", "thesis"}
    assert {"inproject", "infile", "micro", "macro"} <= set(res["line_type"])
    row = res[(res.line_type == "inproject") & (res.eval_role == "PD-ext") & (res.protocol == "thesis")].iloc[0]
    assert row["checkpoint"] == "Path Distance .py" and row["theta"] == 500000 and row["n_lines"] == 4
    # rerun: nothing recomputed; same id with a different config: an error, nothing overwritten
    mtime = {p: p.stat().st_mtime_ns for p in out.iterdir()}
    assert main(argv) == 0
    assert {p: p.stat().st_mtime_ns for p in out.iterdir()} == mtime
    assert main(argv + ["--set", "seed=99"]) == 2
    assert {p: p.stat().st_mtime_ns for p in out.iterdir()} == mtime
    # notebook 06 renders the tables of these evaluations and the protocols' agreement
    from rlctx_utils.notebooks import run_notebook

    run_notebook("notebooks/06_evaluation.py", parameters={"profile": "smoke", "evals_dir": str(out),
                                                           "tables_dir": str(tmp_path / "tables")},
                 out_dir=tmp_path / "nb")
    md = (tmp_path / "tables" / "table3_smoke_thesis_token_acc.md").read_text()
    assert "Path Distance .py" in md and "PD-1K" in md


def test_summary_roles_follow_mode():
    """Or-ext is the checkpoint's own composer in its own mode; the other settings use original."""
    from rlctx_utils.evaluation.api import CheckpointInfo, summary_rows

    lines = pd.DataFrame({"datapoint": ["a"], "category": ["inproject"], "match": [True], "line_loss": [1.0],
                          "token_acc": [1.0], "edit_sim": [100.0]})
    cfg = {"base_length": 256, "extended_length": 1024}
    info = CheckpointInfo(ref="x", name="PD (reversed)", composer="path_distance_py", mode="reversed", stage="repo")

    def roles(mode, who=info):
        d = summary_rows(lines, info=who, profile="smoke", cfg=cfg, composer="path_distance_py", max_context=1024,
                         protocol="thesis", benchmark="b", theta=None, mode=mode)
        return sorted(set(zip(d["eval_role"], d["eval_setting"])))

    assert roles("original") == [("PD-ext", "PD-1K"), ("sweep", "PD-1K")]
    assert roles("reversed") == [("Or-ext", "Or-1K")]
    fl = CheckpointInfo(ref="y", name="File-level", composer="file_level", stage="repo")
    assert roles("reversed", fl) == [("custom", "PD-1K (reversed)")]
