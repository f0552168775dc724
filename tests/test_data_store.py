"""Parquet storage in the LCA schema and the real-LCA loader (hub-schema files written here)."""

from __future__ import annotations

import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rlctx_utils.data import CATEGORIES, Datapoint, load_datapoints, load_lca, save_datapoints
from rlctx_utils.data.errors import LCAUnavailableError
from rlctx_utils.data.store import FEATURES, LCA_FEATURES


def dp(i: int, split: str) -> Datapoint:
    return Datapoint(repo=f"o__r{i % 2}", commit_hash=f"{i:040x}", completion_path=f"p/m{i}.py",
                     completion_content=f"def f{i}():\n    return {i}\n",
                     snapshot={"a.py": "x = 1\n", "img.png": None},
                     completion_lines={"infile": [1], "random": [0]},
                     completion_lines_raw={"infile": [1], "random": [0], "common": []},
                     split=split, source="test", meta={"bucket": "small", "py_chars": 6})


def test_roundtrip_and_schema(tmp_path):
    dps = [dp(i, s) for i, s in enumerate(["train"] * 5 + ["benchmark"] * 2)]
    written = save_datapoints(dps, tmp_path / "data", shard_rows=2)
    assert len(written["train"]) == 3 and len(written["benchmark"]) == 1
    back = load_datapoints(tmp_path, split="train")
    assert [d.id for d in back] == [d.id for d in dps[:5]]
    assert back[0].snapshot == {"a.py": "x = 1\n", "img.png": None}
    assert back[0].meta == {"bucket": "small", "py_chars": 6}
    assert back[0].completion_lines["infile"] == [1] and back[0].completion_lines_raw["random"] == [0]
    schema = pq.read_schema(written["train"][0])
    for name in LCA_FEATURES:
        assert schema.field(name).type == FEATURES.arrow_schema.field(name).type
    assert "commited" in schema.field("completion_lines").type.names
    assert "other" in schema.field("completion_lines_raw").type.names
    # any datasets user can read the files
    import datasets
    ds = datasets.load_dataset("parquet", data_files=str(tmp_path / "data" / "train-*.parquet"),
                               split="train", cache_dir=str(tmp_path / "hf"))
    assert ds.num_rows == 5 and ds[0]["repo_snapshot"]["filename"] == ["a.py", "img.png"]


def test_shards_are_cut_by_content_size(tmp_path, monkeypatch):
    """Large snapshots start a new shard before Arrow's 2 GiB string offsets could overflow."""
    from rlctx_utils.data import store

    monkeypatch.setattr(store, "SHARD_CHARS", 40)  # each row holds about 30 characters
    written = save_datapoints([dp(i, "train") for i in range(5)], tmp_path / "data", shard_rows=64)
    assert len(written["train"]) == 3
    assert [d.id for d in load_datapoints(tmp_path, split="train")] == [dp(i, "train").id for i in range(5)]


def _hub_table(n: int) -> pa.Table:
    """Rows exactly as on the hub: int32 sampled lines, int64 raw lines with `other`."""
    i32, i64 = pa.list_(pa.int32()), pa.list_(pa.int64())
    schema = pa.schema([
        ("repo", pa.string()), ("commit_hash", pa.string()),
        ("completion_file", pa.struct([("filename", pa.string()), ("content", pa.string())])),
        ("completion_lines", pa.struct([(c, i32) for c in
                                        ("infile", "inproject", "common", "commited", "non_informative", "random")])),
        ("repo_snapshot", pa.struct([("filename", pa.list_(pa.string())), ("content", pa.list_(pa.string()))])),
        ("completion_lines_raw", pa.struct([(c, i64) for c in
                                            ("commited", "common", "infile", "inproject", "non_informative", "other")])),
    ])
    rows = [{"repo": f"owner__repo{i}", "commit_hash": "ab" * 20,
             "completion_file": {"filename": "src/x.py", "content": "import os\nos.path.join('a')\nfoo()\n"},
             "completion_lines": {"infile": [], "inproject": [2], "common": [1], "commited": [],
                                  "non_informative": [0], "random": []},
             "repo_snapshot": {"filename": ["src/y.py", "logo.png"], "content": ["def foo(): pass\n", None]},
             "completion_lines_raw": {"commited": [], "common": [1], "infile": [], "inproject": [2],
                                      "non_informative": [0], "other": []}} for i in range(n)]
    return pa.Table.from_pylist(rows, schema=schema)


def test_load_lca_from_local_hub_layout(tmp_path):
    for config, n in (("large_context", 3), ("small_context", 1)):
        d = tmp_path / "data" / config
        d.mkdir(parents=True)
        pq.write_table(_hub_table(n), d / "test-00000-of-00001.parquet")
    got = load_lca("large_context", path=tmp_path)
    assert len(got) == 3
    d0 = got[0]
    assert d0.repo == "owner__repo0" and d0.completion_path == "src/x.py"
    assert d0.snapshot == {"src/y.py": "def foo(): pass\n", "logo.png": None}
    assert d0.completion_lines["inproject"] == [2] and d0.completion_lines_raw["random"] == []
    assert d0.target_lines() == [(0, "non_informative"), (1, "common"), (2, "inproject")]
    assert set(d0.to_lca_record()["completion_lines"]) == set(CATEGORIES)
    assert len(load_lca("small_context", path=tmp_path / "data" / "small_context" / "test-00000-of-00001.parquet")) == 1


def test_load_lca_offline_is_one_line(tmp_path):
    code = ("import os; os.environ['HF_HUB_OFFLINE']='1'; os.environ['HF_DATASETS_OFFLINE']='1'; "
            f"os.environ['HF_HOME']={str(tmp_path)!r}\n"
            "from rlctx_utils.data import load_lca\n"
            "try:\n    load_lca('large_context')\nexcept Exception as e:\n    print(type(e).__name__ + ': ' + str(e))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120).stdout
    assert out.startswith("LCAUnavailableError") and len(out.strip().splitlines()) == 1
    assert "path=" in out
    with pytest.raises(LCAUnavailableError):
        load_lca("large_context", path=tmp_path / "missing")
