"""The paper's published numbers, converted into the tidy results schema.

The CSV files transcribed from the paper live unchanged in ``results/paper/source/`` (see
``results/paper/PROVENANCE.md``). :func:`build` turns them into one tidy frame
(``results/paper/results.csv``) in :mod:`rlctx_utils.schema`. Derived numbers, such as Table 1's
repository-context boost (RCB), are *not* carried over: the tables compute them, and the tests check
that the computed values equal the printed ones.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from . import schema
from .io import atomic_path
from .names import LABEL_TO_COMPOSER
from .paths import PAPER_RESULTS

SOURCE_DIR = PAPER_RESULTS / "source"
TIDY_PATH = PAPER_RESULTS / "results.csv"

BENCHMARK = "lca-large_context"
#: Target lines of LCA large_context (SPEC section 6).
N_LINES = {"inproject": 2595, "infile": 2691}
BASE_LENGTH, EXTENDED_LENGTH = 4096, 16384
#: Training tokens as stated in the paper (approximate): 512 steps at 16K, file-level at 4K.
REPO_TOKENS = 1.0e9
FILE_LEVEL_TOKENS = 72e6

SETTINGS = {  # paper label -> (role, max context)
    "FL-4K": ("FL-base", BASE_LENGTH),
    "PD-4K": ("PD-base", BASE_LENGTH),
    "PD-16K": ("PD-ext", EXTENDED_LENGTH),
    "Or-16K": ("Or-ext", EXTENDED_LENGTH),
}
ROLE_COMPOSER = {"FL-base": "file_level", "PD-base": "path_distance_py", "PD-ext": "path_distance_py"}

DRAFT_NOTE = "draft table, not in the compiled paper"


def _theta(text: str) -> float | None:
    m = re.search(r"θ=([\d,]+)", text)
    return float(m.group(1).replace(",", "")) if m else None


def _setting_columns(frame: pd.DataFrame, own: pd.Series | None = None) -> pd.DataFrame:
    """Add eval_role, max_context and eval_composer from the paper's setting labels."""
    frame = frame.copy()
    frame["eval_role"] = frame["eval_setting"].map(lambda s: SETTINGS[s][0])
    frame["max_context"] = frame["eval_setting"].map(lambda s: SETTINGS[s][1])
    comp = frame["eval_role"].map(ROLE_COMPOSER)
    if own is not None:
        comp = comp.where(frame["eval_role"] != "Or-ext", own)
    frame["eval_composer"] = comp
    return frame


def _common(frame: pd.DataFrame, table: str, source: str = "paper") -> pd.DataFrame:
    frame = frame.copy()
    frame["source"] = source
    frame["table"] = table
    frame["protocol"] = "paper"
    frame["benchmark"] = BENCHMARK
    frame["n_lines"] = frame["line_type"].map(N_LINES)
    return frame


def _checkpoint_meta(composer_label: str) -> dict:
    """Model, training composer, theta, tokens and length of one of the paper's checkpoints."""
    if composer_label.startswith("Base model"):
        return {"composer": None, "theta": _theta(composer_label), "train_tokens": 0.0,
                "train_length": None}
    if composer_label.startswith("File-level"):
        return {"composer": "file_level", "theta": _theta(composer_label),
                "train_tokens": FILE_LEVEL_TOKENS, "train_length": BASE_LENGTH}
    return {"composer": LABEL_TO_COMPOSER[composer_label], "theta": 500000.0,
            "train_tokens": REPO_TOKENS, "train_length": EXTENDED_LENGTH}


def _table3(src: Path) -> pd.DataFrame:
    raw = pd.read_csv(src / "table3_checkpoints.csv")
    meta = pd.DataFrame([_checkpoint_meta(c) for c in raw["composer"]])
    df = pd.concat([raw.drop(columns=["composer"]), meta], axis=1)
    df = df.rename(columns={"exact_match": "em", "eval_composer": "eval_setting"})
    df["model"] = "OpenCoder-1.5B-Base"
    df["mode"] = df["mode"].where(df["composer"].notna() & (df["composer"] != "file_level"))
    df["loss"] = df["loss"].where(df["composer"].notna())
    df = _setting_columns(df, own=df["composer"].fillna("file_level"))
    return _common(df, "table3")


def _table4(src: Path) -> pd.DataFrame:
    raw = pd.read_csv(src / "table4_masked_vs_full.csv")
    df = raw.rename(columns={"exact_match": "em", "eval_composer": "eval_setting"})
    df["composer"] = df["composer"].map(LABEL_TO_COMPOSER)
    df["checkpoint"] = [
        (lab + ("" if m == "original" else f" ({m})") + f", {loss}")
        for lab, m, loss in zip(raw["composer"], raw["mode"], raw["loss"])
    ]
    df["model"] = "OpenCoder-1.5B-Base"
    df["theta"] = 500000.0
    df["train_tokens"] = REPO_TOKENS
    df["train_length"] = EXTENDED_LENGTH
    df = _setting_columns(df, own=df["composer"])
    return _common(df, "table4")


_TABLE1_MODELS = {
    "Qwen2.5-Coder 0.5B": ("Qwen2.5-Coder-0.5B", None, None),
    "Qwen2.5-Coder 1.5B": ("Qwen2.5-Coder-1.5B", None, None),
    "DeepSeek Coder 1.3B": ("DeepSeek-Coder-1.3B-Base", None, None),
    "OpenCoder 1.5B (no repo-level pretraining)": ("OpenCoder-1.5B-Base", None, 10000.0),
    "OpenCoder 1.5B + File-level pretraining": ("OpenCoder-1.5B-Base", "file_level", 500000.0),
    "OpenCoder 1.5B + Path Distance .py pretraining": ("OpenCoder-1.5B-Base", "path_distance_py", 500000.0),
}


def _table1(src: Path) -> pd.DataFrame:
    raw = pd.read_csv(src / "table1_model_comparison.csv")
    raw = raw[raw["eval_composer"] != "RCB"]  # derived: the tables compute it
    df = raw.rename(columns={"model": "checkpoint", "exact_match": "em", "eval_composer": "eval_setting"})
    info = df["checkpoint"].map(_TABLE1_MODELS)
    df["model"] = info.str[0]
    df["composer"] = info.str[1]
    df["theta"] = info.str[2]
    df["mode"] = df["composer"].map(lambda c: "original" if c == "path_distance_py" else None)
    df["loss"] = df["composer"].map(lambda c: "masked" if c else None)
    df = _setting_columns(df)
    return _common(df, "table1")


_FIG2_CHECKPOINTS = {"File-level": ("File-level 4K, θ=500,000", "file_level"),
                     "Path Distance .py": ("Path Distance .py", "path_distance_py")}


def _figure2(src: Path) -> pd.DataFrame:
    raw = pd.read_csv(src / "figure2_extrapolation.csv")
    df = raw.rename(columns={"exact_match": "em", "context_size": "max_context"})
    info = df["checkpoint"].map(_FIG2_CHECKPOINTS)
    df["checkpoint"] = info.str[0]
    df["composer"] = info.str[1]
    meta = pd.DataFrame([_checkpoint_meta("File-level θ=500,000" if c == "file_level" else
                                          "Path Distance .py") for c in df["composer"]])
    df["theta"] = 500000.0
    df["train_tokens"] = meta["train_tokens"].values
    df["train_length"] = meta["train_length"].values
    df["mode"] = df["composer"].map(lambda c: "original" if c != "file_level" else None)
    df["loss"] = "masked"
    df["model"] = "OpenCoder-1.5B-Base"
    df["eval_role"] = "sweep"
    df["eval_composer"] = "path_distance_py"
    df["eval_setting"] = [schema.setting_label("sweep", int(n)) for n in df["max_context"]]
    return _common(df, "figure2")


def _draft(src: Path) -> pd.DataFrame:
    raw = pd.read_csv(src / "extra_long_runs_draft.csv")
    df = raw.rename(columns={"run": "checkpoint", "exact_match": "em", "eval_composer": "eval_setting"})

    def meta(run: str) -> dict:
        tokens = re.search(r"([\d.]+)([MB]) tokens", run) or re.search(r"\(([\d.]+)([MB]) tokens\)", run)
        n = float(tokens.group(1)) * (1e6 if tokens.group(2) == "M" else 1e9) if tokens else None
        if "about 1B" in run:
            n = REPO_TOKENS
        iou = "Lines IoU" in run
        return {"composer": "lines_iou_py" if iou else "file_level",
                "theta": _theta(run) or 500000.0, "train_tokens": n,
                "train_length": EXTENDED_LENGTH if iou else BASE_LENGTH,
                "mode": "original" if iou else None, "loss": "masked"}

    m = pd.DataFrame([meta(r) for r in df["checkpoint"]])
    df = pd.concat([df.reset_index(drop=True), m], axis=1)
    df["model"] = "OpenCoder-1.5B-Base"
    df["note"] = DRAFT_NOTE
    df = _setting_columns(df, own=df["composer"])
    return _common(df, "extra_long_runs_draft", source="paper-draft")


def build(source_dir: Path = SOURCE_DIR) -> pd.DataFrame:
    """All published numbers as one tidy frame (validated against the schema)."""
    parts = [_table1(source_dir), _table3(source_dir), _table4(source_dir), _figure2(source_dir),
             _draft(source_dir)]
    return schema.validate(pd.concat([schema.conform(p[[c for c in p.columns if c in schema.COLUMNS]])
                                      for p in parts], ignore_index=True))


def write(path: Path = TIDY_PATH, source_dir: Path = SOURCE_DIR) -> Path:
    df = build(source_dir)
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False)
    return path


def load(path: Path = TIDY_PATH) -> pd.DataFrame:
    """The tidy published numbers (``results/paper/results.csv``)."""
    return schema.conform(pd.read_csv(path, keep_default_na=True))


if __name__ == "__main__":
    print(write())
