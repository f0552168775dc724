"""Tokenizer: byte-exact round trips of real Python, whole special tokens, determinism, errors."""

from __future__ import annotations

import pytest

from rlctx_utils.tokenizer import (
    SPECIAL_TOKENS,
    TokenizerError,
    TokenizerNotFoundError,
    load_tokenizer,
    special_token_ids,
    stdlib_corpus,
    train_tokenizer,
)

TRICKY = [
    "",
    "def f(x):\r\n\treturn x  \t \n\n\n",
    "s = 'héllo wörld — ✓ 😀 漢字'\n# trailing spaces   \n",
    "x = '\\x00'\u00a0\u200b\ufeffy = 1\n",
    "    \n\t\t  \r\r\n",
    "a<file_sep>b<|endoftext|>c</file_sep><file_sep",
    "'''doc'''\nclass A:  # <repo_name> in a comment\n    pass",
]


def test_stdlib_round_trip_byte_for_byte(py_tokenizer):
    files = stdlib_corpus(max_files=60, seed=11)  # mostly files the tokenizer never saw
    assert len(files) == 60
    for text in files + TRICKY:
        ids = py_tokenizer(text, add_special_tokens=False).input_ids
        assert py_tokenizer.decode(ids) == text
        assert py_tokenizer.decode(ids).encode("utf-8") == text.encode("utf-8")


def test_special_tokens_are_single_ids_and_stay_whole(py_tokenizer):
    ids = special_token_ids(py_tokenizer)
    assert set(ids) == set(SPECIAL_TOKENS) and len(set(ids.values())) == len(SPECIAL_TOKENS)
    assert py_tokenizer.eos_token == SPECIAL_TOKENS["eos"] and py_tokenizer.pad_token == SPECIAL_TOKENS["pad"]
    assert py_tokenizer.pad_token_id != py_tokenizer.eos_token_id
    assert len(py_tokenizer) == 2048
    text = "<repo_name>me/proj\n<file_sep># a.py\nimport os\n<file_sep># b.py\nx = 1\n<|endoftext|>"
    enc = py_tokenizer(text, add_special_tokens=False).input_ids
    assert enc[0] == ids["repo_name"] and enc.count(ids["file_sep"]) == 2 and enc[-1] == ids["eos"]
    fim = "<fim_prefix>def f():\n<fim_suffix>\n    return 1<fim_middle>"
    enc = py_tokenizer(fim, add_special_tokens=False).input_ids
    assert [i for i in enc if i in ids.values()] == [ids["fim_prefix"], ids["fim_suffix"], ids["fim_middle"]]
    for role, tok in SPECIAL_TOKENS.items():  # each alone is exactly one id
        assert py_tokenizer(tok, add_special_tokens=False).input_ids == [ids[role]]
    # nothing is added automatically: composers write the separators themselves
    assert py_tokenizer("x = 1").input_ids == py_tokenizer("x = 1", add_special_tokens=False).input_ids


def test_training_is_deterministic_and_saves(tmp_path):
    texts = stdlib_corpus(max_files=30, seed=2)
    assert texts == stdlib_corpus(max_files=30, seed=2) and texts != stdlib_corpus(max_files=30, seed=3)
    a = train_tokenizer(texts, vocab_size=600, out_dir=tmp_path / "tok")
    b = train_tokenizer(iter(texts), vocab_size=600)
    assert a.get_vocab() == b.get_vocab() and len(a) == 600
    assert a.backend_tokenizer.to_str() == b.backend_tokenizer.to_str()
    again = load_tokenizer(tmp_path / "tok")
    assert again.get_vocab() == a.get_vocab()
    assert again(texts[0]).input_ids == a(texts[0]).input_ids
    # a larger vocabulary compresses better
    big = train_tokenizer(texts, vocab_size=1500)
    n = lambda t: sum(len(t(x, add_special_tokens=False).input_ids) for x in texts[:5])  # noqa: E731
    assert n(big) < n(a)


def test_errors(tmp_path):
    with pytest.raises(TokenizerError, match="vocab_size"):
        train_tokenizer(["x = 1"], vocab_size=100)
    with pytest.raises(TokenizerError, match="no training texts"):
        train_tokenizer([], vocab_size=512)
    with pytest.raises(TokenizerError, match="not one string"):
        train_tokenizer("x = 1", vocab_size=512)
    with pytest.raises(TokenizerNotFoundError) as e:
        load_tokenizer(tmp_path / "missing")
    # the hint names options that exist (issue 12, item 15: there is no --tokenizer option)
    assert "\n" not in str(e.value) and "--checkpoint DIR" in str(e.value) and "tokenizer=DIR" in str(e.value)
    with pytest.raises(TokenizerNotFoundError) as e:
        load_tokenizer("rlctx-test-nonexistent/no-tokenizer", local_files_only=True)
    assert "\n" not in str(e.value) and "not found locally" in str(e.value)
