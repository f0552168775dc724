"""Completion-prefix lengths in the window (issue 15, item 4)."""

from __future__ import annotations

import csv
import json

from rlctx_utils.data.types import Datapoint
from rlctx_utils.evaluation.lengths import length_table, line_prefix_tokens, main, write_csv

CODE = "import os\n\n\ndef f(x):\n    y = os.path.join(x, 'a')\n    return y\n\n\nclass C:\n    pass\n"


def _dp() -> Datapoint:
    return Datapoint(repo="pypi__r", commit_hash="0" * 40, completion_path="pkg/mod.py", completion_content=CODE,
                     snapshot={"pkg/other.py": "z = 1\n"}, completion_lines={"inproject": [0, 4, 9]},
                     split="benchmark")


def test_prefix_tokens_follow_the_thesis_prompt(py_tokenizer):
    from rlctx_utils.composers import render_completion

    recs = line_prefix_tokens([_dp()], py_tokenizer)
    assert [r["line"] for r in recs] == [0, 4, 9]
    header = len(py_tokenizer(render_completion("pkg/mod.py", ""), add_special_tokens=False).input_ids)
    assert recs[0]["prefix_tokens"] == header                 # line 0: only the file header
    p = [r["prefix_tokens"] for r in recs]
    assert p == sorted(p) and len(set(p)) == 3
    above = render_completion("pkg/mod.py", "".join(CODE.splitlines(keepends=True)[:4]))
    n_above = len(py_tokenizer(above, add_special_tokens=False).input_ids)
    assert n_above - 1 <= recs[1]["prefix_tokens"] <= n_above  # the newline may go with the target line
    whole = len(py_tokenizer(render_completion("pkg/mod.py", CODE), add_special_tokens=False).input_ids)
    assert {r["file_tokens"] for r in recs} == {whole} and whole > p[-1]


def test_length_table_shares(tmp_path):
    recs = [{"datapoint": f"d{i // 2}", "split": "benchmark", "category": "inproject", "prefix_tokens": v,
             "file_tokens": 1000 * (i // 2 + 1)} for i, v in enumerate([100, 300, 384, 385, 600, 900])]
    rows = length_table(recs, windows=[512, 1024])
    get = {(r["measure"], r["window"], r["statistic"]): r["value"] for r in rows}
    assert get[("prefix_tokens", "", "n")] == 6 and get[("file_tokens", "", "n")] == 3
    assert get[("prefix_tokens", 512, "share_room_ge_25pct")] == round(3 / 6, 4)   # <= 384 tokens
    assert get[("prefix_tokens", 1024, "share_room_ge_25pct")] == round(5 / 6, 4)  # <= 768 tokens
    assert get[("file_tokens", 1024, "share_fits")] == round(1 / 3, 4)
    assert get[("prefix_tokens", "", "p50")] == 384.5
    out = write_csv(rows, tmp_path / "lengths.csv")
    assert len(list(csv.DictReader(out.open()))) == len(rows)


def test_main_writes_the_csv(tmp_path, py_tokenizer):
    from rlctx_utils.data.store import save_datapoints

    py_tokenizer.save_pretrained(tmp_path / "tok")
    save_datapoints([_dp()], tmp_path / "mined" / "data")
    assert main([str(tmp_path / "mined"), "--tokenizer", str(tmp_path / "tok"), "--out",
                 str(tmp_path / "l.csv"), "--categories", "inproject"]) == 0
    assert "share_room_ge_25pct" in (tmp_path / "l.csv").read_text()
    side = json.loads((tmp_path / "l.json").read_text())
    assert side["config"]["windows"] == [512, 1024, 2048, 4096, 8192] and side["target_lines"] == 3
    assert main([str(tmp_path / "mined"), "--tokenizer", str(tmp_path / "tok"), "--out",
                 str(tmp_path / "m.csv"), "--split", "validation"]) == 2
