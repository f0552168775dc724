"""Shared fixtures: a real tokenizer and tiny real data, built locally (no network at test time)."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(scope="session")
def py_tokenizer(tmp_path_factory):
    """A byte-level BPE (vocabulary 2,048) trained on CPython's standard library source.

    It carries the special tokens of SPEC section 3 as single ids, like OpenCoder's tokenizer, and is
    saved and reloaded as a transformers fast tokenizer, so tests exercise the real loading path.
    """
    from rlctx_utils.tokenizer import load_tokenizer, stdlib_corpus, train_tokenizer

    out = tmp_path_factory.mktemp("tokenizer")
    train_tokenizer(stdlib_corpus(max_files=150, seed=0), vocab_size=2048, out_dir=out)
    return load_tokenizer(str(out))
