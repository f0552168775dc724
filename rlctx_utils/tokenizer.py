"""Byte-level BPE tokenizer for the from-scratch models, and loading of released tokenizers.

The paper's model, OpenCoder-1.5B, reads code through a byte-level BPE vocabulary in which the
separators of the repository-level input format (SPEC section 3) are single special tokens:
``<file_sep>`` starts every file, ``<repo_name>`` the repository header, ``<|endoftext|>`` ends a
document, and the fill-in-the-middle tokens mark FIM sequences. The small models of the CPU and
smoke profiles get a tokenizer of the same kind, trained here with the ``tokenizers`` library on
the file-level corpus and saved as a ``transformers`` fast tokenizer, so every other module
treats it exactly like OpenCoder's (``tok("...").input_ids``, ``tok.decode``,
``tok.convert_tokens_to_ids("<file_sep>")``).

Design choices:

* Byte level with no normaliser and no prefix space: any Python source (any Unicode, tabs,
  ``\\r\\n``, trailing spaces) encodes and decodes back byte for byte.
* Special tokens take the first ids (0..6) and are never split; text that happens to contain
  ``<file_sep>`` literally is encoded as the special token (as OpenCoder's tokenizer does).
* Padding uses a dedicated ``<|pad|>`` token rather than reusing ``<|endoftext|>``, so masking the
  loss on padding can never mask a real end-of-document token. No token is added automatically
  (no BOS, no EOS): the composers write the separators themselves, as in the paper.
* Vocabulary size: the output layer and the softmax over it dominate the cost of a tiny model
  (``results/bench/models.csv``: a 16k vocabulary is 1.5-3x slower than 4k for a d=128 model), so
  the CPU profile uses 8,192 and the smoke profile 2,048.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterable
from pathlib import Path

from transformers import PreTrainedTokenizerBase, PreTrainedTokenizerFast

from .io import atomic_dir
from .models import TOKENIZER_FLAG, looks_like_path, not_found_message

#: Special tokens by role (SPEC section 3). ``pad`` is our own addition (see module docstring).
SPECIAL_TOKENS: dict[str, str] = {
    "eos": "<|endoftext|>",
    "file_sep": "<file_sep>",
    "repo_name": "<repo_name>",
    "fim_prefix": "<fim_prefix>",
    "fim_middle": "<fim_middle>",
    "fim_suffix": "<fim_suffix>",
    "pad": "<|pad|>",
}


class TokenizerError(ValueError):
    """Tokenizer options or training input that cannot be used."""


class TokenizerNotFoundError(OSError):
    """A tokenizer that is neither a local folder nor reachable on the hub (one-line message)."""


def _wrap(tok_obj) -> PreTrainedTokenizerFast:
    extra = [v for k, v in SPECIAL_TOKENS.items() if k not in ("eos", "pad")]
    return PreTrainedTokenizerFast(
        tokenizer_object=tok_obj,
        eos_token=SPECIAL_TOKENS["eos"],
        pad_token=SPECIAL_TOKENS["pad"],
        additional_special_tokens=extra,
        clean_up_tokenization_spaces=False,  # decoding must give back the exact source
        model_input_names=["input_ids", "attention_mask"],
    )


def train_tokenizer(texts: Iterable[str], vocab_size: int, out_dir: str | os.PathLike[str] | None = None,
                    *, min_frequency: int = 2, show_progress: bool = False) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE of ``vocab_size`` ids (special tokens included) on ``texts``.

    Deterministic: the same texts in the same order give the same vocabulary and merges. With
    ``out_dir`` the tokenizer is saved there atomically (``save_pretrained``) and can be reloaded
    with :func:`load_tokenizer`.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    n_special = len(SPECIAL_TOKENS)
    if not isinstance(vocab_size, int) or vocab_size < 256 + n_special + 1:
        raise TokenizerError(f"vocab_size must be an int >= {256 + n_special + 1} "
                             f"(256 bytes + {n_special} special tokens + merges), got {vocab_size!r}")
    if min_frequency < 1:
        raise TokenizerError(f"min_frequency must be >= 1, got {min_frequency}")
    if isinstance(texts, str):
        raise TokenizerError("texts must be an iterable of documents, not one string")
    n_docs = 0

    def counted() -> Iterable[str]:
        nonlocal n_docs
        for t in texts:
            if not isinstance(t, str):
                raise TokenizerError(f"texts must be strings, got {type(t).__name__}")
            n_docs += 1
            yield t

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, min_frequency=min_frequency, show_progress=show_progress,
        special_tokens=list(SPECIAL_TOKENS.values()),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(counted(), trainer=trainer)
    if n_docs == 0:
        raise TokenizerError("no training texts given")
    fast = _wrap(tok)
    if out_dir is not None:
        with atomic_dir(out_dir) as tmp:
            fast.save_pretrained(str(tmp))
    return fast


def load_tokenizer(name_or_path: str | os.PathLike[str], *,
                   local_files_only: bool | None = None) -> PreTrainedTokenizerBase:
    """A tokenizer from a local ``save_pretrained`` folder (ours or a model checkpoint) or a hub id.

    Offline, a hub id that is not in the local cache fails with one line saying to pass a folder.
    """
    from transformers import AutoTokenizer

    name = str(name_or_path)
    p = Path(name).expanduser()
    if p.is_dir():
        try:
            return AutoTokenizer.from_pretrained(str(p), local_files_only=True)
        except (OSError, ValueError) as exc:
            raise TokenizerNotFoundError(not_found_message("tokenizer", name, TOKENIZER_FLAG, exc)) from None
    if looks_like_path(name):
        raise TokenizerNotFoundError(not_found_message("tokenizer", name, TOKENIZER_FLAG))
    last: BaseException | None = None
    for local in ([True] if local_files_only else [True, False]):
        try:
            return AutoTokenizer.from_pretrained(name, local_files_only=local)
        except Exception as exc:  # hub errors come in many classes
            last = exc
    raise TokenizerNotFoundError(not_found_message("tokenizer", name, TOKENIZER_FLAG, last))


def special_token_ids(tokenizer: PreTrainedTokenizerBase) -> dict[str, int]:
    """Ids of :data:`SPECIAL_TOKENS` in ``tokenizer`` (roles it lacks are left out)."""
    out = {}
    for role, text in SPECIAL_TOKENS.items():
        i = tokenizer.convert_tokens_to_ids(text)
        if i is not None and i != tokenizer.unk_token_id:
            out[role] = int(i)
    return out


def stdlib_corpus(max_files: int | None = None, seed: int = 0, *, max_chars: int = 200_000) -> list[str]:
    """Real Python source: the ``.py`` files of the running interpreter's standard library.

    Useful to train test tokenizers and demo models without network. Files are read as UTF-8
    (undecodable ones skipped), site-packages excluded; the order is a shuffle of the sorted
    relative paths by ``seed``, so ``max_files`` takes a deterministic random subset.
    """
    root = Path(os.path.dirname(os.__file__))
    skip = {"site-packages", "dist-packages", "__pycache__"}
    paths: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in skip]
        paths.extend(Path(dirpath) / f for f in filenames if f.endswith(".py"))
    paths.sort()
    rng = random.Random(seed)
    rng.shuffle(paths)
    out: list[str] = []
    for p in paths:
        if max_files is not None and len(out) >= max_files:
            break
        try:
            text = p.read_bytes().decode("utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        if text.strip() and len(text) <= max_chars:
            out.append(text)
    return out
