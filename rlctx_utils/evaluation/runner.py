"""Single-line completion of benchmark lines: prompts, a fast exact engine, and a reference engine.

:func:`build_tasks` turns datapoints into one :class:`LineTask` per target line: the composer is shown
the repository snapshot and only the completion file's text *above* the target line (never the
line itself or what follows), its context and the completion prefix are concatenated and cut from
the left to ``max_context`` tokens.

:func:`run_tasks` scores the tasks. Two engines give the same answers:

``reference``
    the straightforward loop: per line, one teacher-forced forward pass for the graded measures and,
    under the LCA protocol, ``model.generate`` with a stopping criterion.
``fast``
    exact shortcuts that do not change any decision (tests and ``bench/bench_eval.py`` compare it
    with ``reference`` line by line):

    1. *Shared prefixes.* Prompts are sorted; lines whose prompts share a long token prefix (the
       lines of one file when the context is not cut, since context and file header come first)
       compute that prefix's key/value cache once. A causal model's state at position t depends
       only on tokens 0..t, so the result equals computing each prompt on its own.
    2. *Batching.* The remaining suffixes are right-padded into batches; padding only ever sits
       *after* a row's real tokens, so causal attention never lets a real token see it.
    3. *Teacher forcing first.* One forward pass over prompt + the true continuation gives every
       graded measure and the thesis' argmax check; it also gives greedy decoding for free as long
       as greedy tokens equal the true ones (greedy token j+1 is the argmax after the true tokens
       1..j exactly when tokens 1..j were predicted), so generation only starts at the first wrong
       token, from the cache cut at that position (masked, not copied).
    4. *Batched greedy decoding* of the rows still open, with one attention mask per row that hides
       the cache entries beyond its valid length and explicit RoPE positions.

    Only the last-layer states of the positions that are scored go through the output layer.
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import torch
from transformers import StoppingCriteria

from ..data.types import CATEGORIES, Datapoint
from . import metrics
from .protocols import (Protocol, completion_prefix, continuation_text, eos_ids, exact_match,
                        get_protocol, lca_prediction, newline_ids, stop_position, target_line,
                        teacher_forced_hits, teacher_forced_text, token_texts)


class EvalError(ValueError):
    """An evaluation that cannot run as asked; the message says what to change."""


#: Columns of the per-line records (results/<profile>/evals/<eval_id>.parquet).
LINE_COLUMNS = ["datapoint", "repository", "completion_path", "line", "category", "prompt_tokens",
                "truncated", "prediction", "target", "match", "line_loss", "token_acc", "edit_sim",
                "n_target_tokens", "n_generated", "stop"]


@dataclass
class LineTask:
    """One target line, ready for the model."""

    datapoint: str
    repository: str
    completion_path: str
    line: int
    category: str
    prompt: list[int]
    cont: list[int]
    target: str
    truncated: bool
    #: text of the line above carried by the first target token (joint tokenization), e.g. "\n"
    lead: str = ""
    # filled by the engines
    result: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# Prompts

def _lead_ids(tokenizer) -> list[int]:
    """Ids the tokenizer puts before any text on its own (a BOS token for some hub models)."""
    with_sp = tokenizer("x").input_ids
    without = tokenizer("x", add_special_tokens=False).input_ids
    n = len(with_sp) - len(without)
    return list(with_sp[:n]) if n > 0 and list(with_sp[n:]) == list(without) else []


def _encode(tokenizer, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False).input_ids) if text else []


def split_joint(tokenizer, text: str, line_start: int) -> tuple[list[int], list[int], str]:
    """Tokenize ``text`` as one and split it before the first token that reaches past
    ``line_start`` (the target line's first character). Returns (prompt ids, target ids, the text
    before ``line_start`` that the first target token carries)."""
    ids = _encode(tokenizer, text)
    lo, hi = 0, len(ids)  # largest k with decode(ids[:k]) inside text[:line_start]
    while lo < hi:
        mid = (lo + hi + 1) // 2
        n = len(tokenizer.decode(ids[:mid], skip_special_tokens=False, clean_up_tokenization_spaces=False))
        if n <= line_start:
            lo = mid
        else:
            hi = mid - 1
    head = tokenizer.decode(ids[:lo], skip_special_tokens=False, clean_up_tokenization_spaces=False)
    return ids[:lo], ids[lo:], text[len(head):line_start]


def cut_left(context_ids: Sequence[int], completion_ids: Sequence[int], budget: int) -> tuple[list[int], bool]:
    """Concatenate context and completion and keep the last ``budget`` tokens.

    This is both protocols' rule: the completion prefix is kept whole while it fits and the context
    fills the rest from its right end (its most relevant pieces); a completion prefix longer than
    the budget is itself cut from the left. Returns (ids, whether anything was cut).
    """
    if budget < 1:
        raise EvalError(f"the prompt budget must be at least 1 token, got {budget}")
    full = list(context_ids) + list(completion_ids)
    return full[-budget:], len(full) > budget


def composer_seed(composer: str, seed: int, dp: Datapoint) -> int:
    """The seed the composer gets for a datapoint. Mixed draws its composer from the seed, so it gets
    a per-datapoint seed derived from (seed, datapoint id), as in training; every other composer
    gets ``seed`` itself (their random steps are already keyed on the file)."""
    if composer == "mixed":
        from ..training.sequences import derive_seed
        return derive_seed(seed, dp.id)
    return seed


def build_tasks(datapoints: Iterable[Datapoint], tokenizer, *, composer: str, max_context: int,
                protocol: str | Protocol, mode: str = "original", fmt: str = "opencoder", seed: int = 0,
                categories: tuple[str, ...] = CATEGORIES, compose_fn: Callable | None = None,
                render_fn: Callable | None = None, progress: bool = False) -> list[LineTask]:
    """One :class:`LineTask` per sampled target line of every datapoint.

    ``compose_fn``/``render_fn`` default to :func:`rlctx_utils.composers.compose` and
    :func:`rlctx_utils.composers.render_completion`; tests pass spies to check what the composer
    is shown. The composer gets ``stage="eval"`` and only the text above the target line.
    """
    if compose_fn is None or render_fn is None:
        from .. import composers as _c
        compose_fn = compose_fn or _c.compose
        render_fn = render_fn or _c.render_completion
    proto = get_protocol(protocol)
    lead = _lead_ids(tokenizer)
    budget = int(max_context) - len(lead)
    tasks: list[LineTask] = []
    dps = list(datapoints)
    it = dps
    if progress:
        from tqdm.auto import tqdm
        it = tqdm(dps, desc=f"prompts {composer}@{max_context}", unit="file")
    for dp in it:
        if proto.shared_context:
            tasks.extend(_shared_tasks(dp, tokenizer, proto, composer=composer, max_context=int(max_context),
                                       budget=budget, lead=lead, mode=mode, fmt=fmt, seed=seed,
                                       categories=categories, compose_fn=compose_fn, render_fn=render_fn))
            continue
        for line, cat in dp.target_lines(categories):
            target, prefix, comp_ids, cont, lead_text = _line_pieces(dp, line, tokenizer, proto, fmt=fmt,
                                                                     render_fn=render_fn)
            comp = compose_fn(composer, dp.snapshot, dp.completion_path, prefix, mode=mode, stage="eval",
                              tokenizer=tokenizer, max_tokens=int(max_context), seed=composer_seed(composer, seed, dp),
                              fmt=fmt)
            prompt, cut = cut_left(list(comp.context_ids), comp_ids, budget)
            tasks.append(LineTask(
                datapoint=dp.id, repository=dp.repo, completion_path=dp.completion_path, line=line,
                category=cat, prompt=lead + prompt, cont=cont, target=target,
                truncated=bool(cut or getattr(comp, "truncated", False)), lead=lead_text))
    return tasks


def _line_pieces(dp: Datapoint, line: int, tokenizer, proto: Protocol, *, fmt: str,
                 render_fn: Callable) -> tuple[str, str, list[int], list[int], str]:
    """What a target line contributes to its prompt, whatever the context: ``(target, prefix,
    completion ids, continuation ids, lead text)``. Scored protocols with joint tokenization split
    one encoding of the rendered file + continuation (the lead is the text of the token the two
    share); generation and separate tokenization encode the two apart."""
    target = target_line(dp.completion_content, line)
    prefix = completion_prefix(dp.completion_content, line, proto)
    rendered = render_fn(dp.completion_path, prefix, fmt)
    cont_text = continuation_text(target, line, proto)
    if not proto.generate and proto.target_tokenization == "joint":
        comp_ids, cont, lead_text = split_joint(tokenizer, rendered + cont_text, len(rendered))
    else:
        comp_ids, cont, lead_text = _encode(tokenizer, rendered), _encode(tokenizer, cont_text), ""
    return target, prefix, comp_ids, cont, lead_text


def shared_groups(rooms: Sequence[int]) -> list[list[int]]:
    """Groups of lines that share one context (``thesis-shared``), from the context room each line
    would get on its own (``rooms``, in file order, never increasing). Going backwards from the last
    line, a line joins the current group while the group's room (its last line's) is at least half
    its own; a line with no room joins only a group without room. Returns index lists in file order."""
    groups: list[list[int]] = []
    i = len(rooms) - 1
    while i >= 0:
        room, g = rooms[i], [i]
        j = i - 1
        while j >= 0 and (2 * room >= rooms[j] if room > 0 else rooms[j] <= 0):
            g.append(j)
            j -= 1
        groups.append(sorted(g))
        i = j
    return groups[::-1]


def _shared_tasks(dp: Datapoint, tokenizer, proto: Protocol, *, composer: str, max_context: int, budget: int,
                  lead: list[int], mode: str, fmt: str, seed: int, categories: tuple[str, ...],
                  compose_fn: Callable, render_fn: Callable) -> list[LineTask]:
    """The ``thesis-shared`` tasks of one datapoint: per group of lines one composition, cut to the
    room the group's last line leaves (see :func:`shared_groups`)."""
    items = [(line, cat, *_line_pieces(dp, line, tokenizer, proto, fmt=fmt, render_fn=render_fn))
             for line, cat in sorted(dp.target_lines(categories))]
    rooms = [budget - len(it[4]) for it in items]
    out: list[LineTask] = []
    for g in shared_groups(rooms):
        room = rooms[g[-1]]
        ctx: list[int] = []
        comp_truncated = False
        if room > 0:
            first_prefix = items[g[0]][3]
            comp = compose_fn(composer, dp.snapshot, dp.completion_path, first_prefix, mode=mode, stage="eval",
                              tokenizer=tokenizer, max_tokens=int(max_context),
                              seed=composer_seed(composer, seed, dp), fmt=fmt)
            ctx = list(comp.context_ids)
            comp_truncated = bool(getattr(comp, "truncated", False))
        kept = ctx[-room:] if room > 0 else []
        for k in g:
            line, cat, target, _, comp_ids, cont, lead_text = items[k]
            prompt, cut = cut_left(kept, comp_ids, budget)
            out.append(LineTask(datapoint=dp.id, repository=dp.repo, completion_path=dp.completion_path,
                                line=line, category=cat, prompt=lead + prompt, cont=cont, target=target,
                                truncated=bool(cut or len(kept) < len(ctx) or comp_truncated), lead=lead_text))
    return out


# ---------------------------------------------------------------------------------------------
# Scoring shared by both engines

@dataclass
class _Vocab:
    texts: list[str]
    newline: frozenset[int]
    eos: frozenset[int]


def _vocab(tokenizer, model) -> _Vocab:
    return _Vocab(token_texts(tokenizer), newline_ids(tokenizer), eos_ids(tokenizer, model))


def _finish(task: LineTask, proto: Protocol, tokenizer, voc: _Vocab, pred_ids: list[int],
            losses: list[float], generated: list[int] | None) -> None:
    """Fill ``task.result`` from the teacher-forced argmax/losses and (LCA) the generated tokens."""
    hits = teacher_forced_hits(pred_ids, task.cont, voc.texts)
    res = {"line_loss": float(sum(losses) / len(losses)) if losses else math.nan,
           "token_acc": float(sum(hits) / len(hits)) if hits else math.nan,
           "n_target_tokens": len(task.cont)}
    if proto.generate:
        assert generated is not None
        stop, reason = stop_position(generated, voc.newline, voc.eos, proto)
        kept = generated if stop is None else generated[: stop + 1]
        reason = "final" if stop is None else reason  # fast engine: prediction already final
        text = tokenizer.decode(kept, skip_special_tokens=True, clean_up_tokenization_spaces=False)
        pred = lca_prediction(text)
        res.update(prediction=pred, match=exact_match(pred, task.target, proto), n_generated=len(kept),
                   stop=reason)
    else:
        pred = teacher_forced_text(pred_ids, voc.texts, task.lead)
        res.update(prediction=pred, match=bool(hits) and all(hits), n_generated=0, stop="teacher_forced")
    res["edit_sim"] = metrics.edit_similarity(res["prediction"], task.target)
    task.result = res


def _score_logits(logits: torch.Tensor, cont: list[int]) -> tuple[list[int], list[float], list[int]]:
    """From logits at the positions before each continuation token (and after the last one):
    teacher-forced argmax, per-token loss, and the full argmax row (incl. the extra position)."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    arg = logits.argmax(dim=-1).tolist()
    tgt = torch.tensor(cont, device=logits.device)
    losses = (-logp[: len(cont)].gather(1, tgt[:, None])[:, 0]).tolist()
    return arg[: len(cont)], losses, arg


def _determined(gen: list[int], tokenizer, proto: Protocol) -> bool:
    """The LCA prediction can no longer change: after the leading newlines, the decoded text already
    holds a newline, so its first line is final (later tokens only append after it).

    Exact for tokenizers whose decoding of a sequence extends the decoding of its prefixes (byte-level
    BPE such as ours and OpenCoder's); the engines' agreement tests check it."""
    if not proto.generate:
        return False
    text = tokenizer.decode(gen, skip_special_tokens=True, clean_up_tokenization_spaces=False)
    return "\n" in text.lstrip("\n")


def _greedy_prefix(arg: list[int], cont: list[int], voc: _Vocab, proto: Protocol,
                   done: Callable[[list[int]], bool]) -> tuple[list[int], bool]:
    """Greedy tokens that follow from the teacher-forced pass: argmax j is the greedy token as long
    as tokens 0..j-1 equal the true continuation. Returns (tokens, whether generation is over)."""
    gen: list[int] = []
    for j, a in enumerate(arg):
        gen.append(int(a))
        if done(gen):
            return gen, True
        if j >= len(cont) or a != cont[j]:
            break
    return gen, False


# ---------------------------------------------------------------------------------------------
# Reference engine

class _StopRule(StoppingCriteria):
    """Stopping criterion for ``model.generate`` computed from this call's tokens only."""

    def __init__(self, prompt_len: int, voc: _Vocab, proto: Protocol):
        self.prompt_len, self.voc, self.proto = prompt_len, voc, proto

    def __call__(self, input_ids: torch.LongTensor, scores, **kwargs) -> torch.BoolTensor:
        gen = input_ids[0, self.prompt_len:].tolist()
        stop, _ = stop_position(gen, self.voc.newline, frozenset(), self.proto)
        return torch.full((input_ids.shape[0],), stop is not None, dtype=torch.bool, device=input_ids.device)


@torch.inference_mode()
def _run_reference(model, tokenizer, tasks: list[LineTask], proto: Protocol, voc: _Vocab,
                   progress: bool) -> None:
    from transformers import GenerationConfig, StoppingCriteriaList

    device = next(model.parameters()).device
    it = tasks
    if progress:
        from tqdm.auto import tqdm
        it = tqdm(tasks, desc="lines (reference)", unit="line")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(voc.eos or {0})
    for t in it:
        ids = torch.tensor([t.prompt + t.cont], device=device)
        logits = model(input_ids=ids).logits[0, len(t.prompt) - 1:]
        pred, losses, _ = _score_logits(logits, t.cont)
        generated = None
        if proto.generate:
            cfg = GenerationConfig(max_new_tokens=proto.max_new_tokens, do_sample=False, num_beams=1,
                                   eos_token_id=sorted(voc.eos) or None, pad_token_id=pad)
            prompt = torch.tensor([t.prompt], device=device)
            out = model.generate(prompt, attention_mask=torch.ones_like(prompt), generation_config=cfg,
                                 stopping_criteria=StoppingCriteriaList([_StopRule(len(t.prompt), voc, proto)]))
            generated = out[0, len(t.prompt):].tolist()
        _finish(t, proto, tokenizer, voc, pred, losses, generated)


# ---------------------------------------------------------------------------------------------
# Fast engine

def _lcp(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def plan_clusters(prompts: list[list[int]], *, min_share: int = 32) -> list[tuple[int, list[int]]]:
    """Group prompts that share a long token prefix: [(shared length, [indices])].

    Prompts are sorted, and consecutive ones join a group while their common prefix stays at least
    ``min_share`` tokens and at least half of the group's current one. The shared length leaves at
    least one prompt token of every member to its own pass (its logits score the first target token).
    """
    order = sorted(range(len(prompts)), key=lambda i: prompts[i])
    groups: list[tuple[int, list[int]]] = []
    cur: list[int] = []
    shared = 0
    for i in order:
        if cur:
            common = min(shared, _lcp(prompts[cur[-1]], prompts[i]))
            if common >= min_share and common * 2 >= shared:
                cur.append(i)
                shared = common
                continue
            groups.append((shared, cur))
        cur, shared = [i], len(prompts[i])
    if cur:
        groups.append((shared, cur))
    out = []
    for s, idx in groups:
        s = min(s, min(len(prompts[i]) for i in idx) - 1) if len(idx) > 1 else 0
        out.append((max(s, 0) if s >= min_share else 0, idx))
    return out


def nested_groups(tasks: list[LineTask]) -> list[list[int]]:
    """Per datapoint, groups of task indices whose prompts are all prefixes of the group's longest
    prompt (the lines of one ``thesis-shared`` context group; a line whose prompt is not such a
    prefix, e.g. a left-cut one, gets a group of its own)."""
    by_dp: dict[str, list[int]] = {}
    for i, t in enumerate(tasks):
        by_dp.setdefault(t.datapoint, []).append(i)
    groups = []
    for idx in by_dp.values():
        left = sorted(idx, key=lambda i: -len(tasks[i].prompt))
        while left:
            top = tasks[left[0]].prompt
            members = [i for i in left if top[: len(tasks[i].prompt)] == tasks[i].prompt]
            groups.append(sorted(members))
            left = [i for i in left if i not in set(members)]
    return groups


def _parts(model):
    """(decoder, output layer) when logits are exactly ``lm_head(last hidden state)``, else None."""
    cfg = model.config
    if any(getattr(cfg, k, None) for k in ("final_logit_softcapping", "logit_scale", "output_multiplier")):
        return None
    get_dec, get_out = getattr(model, "get_decoder", None), getattr(model, "get_output_embeddings", None)
    if get_dec is None or get_out is None:
        return None
    dec, head = get_dec(), get_out()
    if dec is None or head is None or dec is model:
        return None
    return dec, head


def _expand_cache(cache, batch: int):
    """A fresh cache holding ``batch`` copies of a one-row cache."""
    from transformers import DynamicCache

    data = [(layer.keys.expand(batch, -1, -1, -1).contiguous(), layer.values.expand(batch, -1, -1, -1).contiguous())
            for layer in cache.layers]
    return DynamicCache(ddp_cache_data=data)


class _Fast:
    def __init__(self, model, tokenizer, proto: Protocol, voc: _Vocab, batch_tokens: int, max_rows: int,
                 early_stop: bool = True, decode_tokens: int | None = None):
        self.model, self.tok, self.proto, self.voc = model, tokenizer, proto, voc
        self.early_stop = early_stop
        self.decode_tokens = decode_tokens or 2 * batch_tokens
        self.batch_tokens, self.max_rows = max(1, batch_tokens), max(1, max_rows)
        self.device = next(model.parameters()).device
        self.parts = _parts(model)
        self.pending: list = []  # (cache, cache length, [(task index, generated, valid length)])
        self.pending_rows = 0

    def _forward(self, ids, *, past=None, attention_mask=None, position_ids=None, select=None):
        """Run the model; return (logits at ``select`` [(row, pos)...] or all, cache)."""
        kw = dict(input_ids=ids, past_key_values=past, attention_mask=attention_mask,
                  position_ids=position_ids, use_cache=True)
        if self.parts is not None:
            dec, head = self.parts
            out = dec(**kw)
            h = out.last_hidden_state
            if select is not None:
                rows = torch.tensor([r for r, _ in select], device=h.device)
                pos = torch.tensor([p for _, p in select], device=h.device)
                h = h[rows, pos]
            return (head(h) if select is None or len(select) else h[:0]), out.past_key_values
        out = self.model(**kw)
        logits = out.logits
        if select is not None:
            rows = torch.tensor([r for r, _ in select], device=logits.device)
            pos = torch.tensor([p for _, p in select], device=logits.device)
            logits = logits[rows, pos]
        return logits, out.past_key_values

    def done(self, gen: list[int]) -> bool:
        """Generation of this line is over: the stop rule fired or (shortcut) the prediction is final."""
        if stop_position(gen, self.voc.newline, self.voc.eos, self.proto)[0] is not None:
            return True
        return self.early_stop and _determined(gen, self.tok, self.proto)

    def prefix_cache(self, ids: list[int]):
        if self.parts is not None:
            out = self.parts[0](input_ids=torch.tensor([ids], device=self.device), use_cache=True)
        else:
            out = self.model(input_ids=torch.tensor([ids], device=self.device), use_cache=True, logits_to_keep=1)
        return out.past_key_values

    def batches(self, tasks: list[LineTask], idx: list[int], shared: int) -> list[list[int]]:
        idx = sorted(idx, key=lambda i: len(tasks[i].prompt) + len(tasks[i].cont))
        out, cur, longest = [], [], 0
        for i in idx:
            n = len(tasks[i].prompt) - shared + len(tasks[i].cont)
            longest2 = max(longest, n)
            if cur and ((len(cur) + 1) * (longest2 + shared) > self.batch_tokens or len(cur) >= self.max_rows):
                out.append(cur)
                cur, longest2 = [], n
            cur.append(i)
            longest = longest2
        if cur:
            out.append(cur)
        return out

    @torch.inference_mode()
    def run_batch(self, tasks: list[LineTask], rows: list[int], shared: int, prefix) -> None:
        B = len(rows)
        seqs = [tasks[i].prompt[shared:] + tasks[i].cont for i in rows]
        L = max(len(s) for s in seqs)
        ids = torch.zeros((B, L), dtype=torch.long, device=self.device)
        for b, s in enumerate(seqs):
            ids[b, : len(s)] = torch.tensor(s)
        select = []
        spans = []
        for b, i in enumerate(rows):
            p_rel = len(tasks[i].prompt) - shared  # prompt tokens of this row inside the batch
            m = len(tasks[i].cont)
            start = len(select)
            select += [(b, p_rel - 1 + j) for j in range(m + 1)]
            spans.append((start, len(select)))
        past = _expand_cache(prefix, B) if prefix is not None else None
        logits, cache = self._forward(ids, past=past, select=select)
        open_rows = []  # (batch row, task index, generated, valid length)
        for b, i in enumerate(rows):
            t = tasks[i]
            lg = logits[spans[b][0]: spans[b][1]]
            pred, losses, arg = _score_logits(lg, t.cont)
            gen = None
            if self.proto.generate:
                gen, done = _greedy_prefix(arg, t.cont, self.voc, self.proto, self.done)
                if not done:
                    open_rows.append((b, i, gen, len(t.prompt) + len(gen) - 1))
            t.result = {"_pred": pred, "_losses": losses, "_gen": gen}
        finished = [i for i in rows if i not in {j for _, j, _, _ in open_rows}]
        if open_rows:
            cache.batch_select_indices(torch.tensor([b for b, *_ in open_rows], device=self.device))
            self.pending.append((cache, shared + L, [(i, g, v) for _, i, g, v in open_rows]))
            self.pending_rows += len(open_rows)
        self.finish(tasks, finished)
        # decode once enough rows wait (cache tokens bounded by ``decode_tokens``)
        if self.pending_rows >= 4 * self.max_rows or \
                sum(len(e) * n for _, n, e in self.pending) >= self.decode_tokens:
            self.flush(tasks)

    @torch.inference_mode()
    def run_nested(self, tasks: list[LineTask], idx: list[int]) -> None:
        """Teacher-forced scores of lines whose prompts are all prefixes of the longest one (a
        ``thesis-shared`` group): one pass over that prompt gives the key/value cache and every
        line's first-target-token logits (at its own prompt end); each line's target tokens then run
        against the cache cut at its own prompt length (entries beyond it masked, RoPE positions
        explicit), a few lines a batch. Exactly each line's own pass, at about one window per group."""
        longest = tasks[max(idx, key=lambda i: len(tasks[i].prompt))].prompt
        n = len(longest)
        first, cache = self._forward(torch.tensor([longest], device=self.device),
                                     select=[(0, len(tasks[i].prompt) - 1) for i in idx])
        first_of = {i: first[k] for k, i in enumerate(idx)}
        order = sorted(idx, key=lambda i: len(tasks[i].cont))
        per_batch = max(1, min(self.max_rows, self.batch_tokens // (n + max(len(tasks[i].cont) for i in idx))))
        for b0 in range(0, len(order), per_batch):
            rows = order[b0:b0 + per_batch]
            width = max(len(tasks[i].cont) for i in rows)
            ids = torch.zeros((len(rows), width), dtype=torch.long, device=self.device)
            mask = torch.zeros((len(rows), n + width), dtype=torch.long, device=self.device)
            pos = torch.zeros((len(rows), width), dtype=torch.long, device=self.device)
            for r, i in enumerate(rows):
                t = tasks[i]
                ids[r, : len(t.cont)] = torch.tensor(t.cont, device=self.device)
                mask[r, : len(t.prompt)] = 1
                mask[r, n: n + len(t.cont)] = 1
                pos[r] = len(t.prompt) + torch.arange(width, device=self.device)
            select = [(r, k) for r, i in enumerate(rows) for k in range(len(tasks[i].cont))]
            logits, _ = self._forward(ids, past=_expand_cache(cache, len(rows)), attention_mask=mask,
                                      position_ids=pos, select=select)
            k0 = 0
            for i in rows:
                t = tasks[i]
                lg = torch.cat([first_of[i][None], logits[k0: k0 + len(t.cont)]])
                k0 += len(t.cont)
                pred, losses, _ = _score_logits(lg, t.cont)
                t.result = {"_pred": pred, "_losses": losses, "_gen": None}
            self.finish(tasks, rows)

    def finish(self, tasks: list[LineTask], idx: list[int]) -> None:
        for i in idx:
            r = tasks[i].result
            _finish(tasks[i], self.proto, self.tok, self.voc, r["_pred"], r["_losses"], r["_gen"])

    @torch.inference_mode()
    def flush(self, tasks: list[LineTask]) -> None:
        """Decode every pending row at once: the caches of several batches are right-padded to one
        length and stacked (the padding is masked like the rest of the unused entries)."""
        if not self.pending:
            return
        from transformers import DynamicCache

        n = max(length for _, length, _ in self.pending)
        layers = []
        for li in range(len(self.pending[0][0].layers)):
            ks, vs = [], []
            for cache, length, _ in self.pending:
                k, v = cache.layers[li].keys, cache.layers[li].values
                if length < n:
                    pad = (0, 0, 0, n - length)
                    k, v = torch.nn.functional.pad(k, pad), torch.nn.functional.pad(v, pad)
                ks.append(k)
                vs.append(v)
            layers.append((torch.cat(ks), torch.cat(vs)))
        entries = [e for _, _, es in self.pending for e in es]
        self.pending, self.pending_rows = [], 0
        self.decode(DynamicCache(ddp_cache_data=layers), n, entries, tasks)
        self.finish(tasks, [i for i, _, _ in entries])

    def decode(self, cache, cache_len: int, open_rows, tasks) -> None:
        """Batched greedy decoding of rows whose generation is not finished.

        ``open_rows``: (task index, generated tokens, valid length). Row r continues after its first
        ``valid`` cache entries (prompt + agreed target tokens); the entries after them (the rest of
        the teacher-forced continuation, padding) are masked.
        """
        dev = self.device
        gens = [g for _, g, _ in open_rows]
        task_ids = [i for i, _, _ in open_rows]
        valid = torch.tensor([v for *_, v in open_rows], device=dev)
        mask = (torch.arange(cache_len, device=dev)[None, :] < valid[:, None]).long()
        step = 0
        while gens:
            R = len(gens)
            inp = torch.tensor([[g[-1]] for g in gens], device=dev)
            mask = torch.cat([mask, torch.ones((R, 1), dtype=mask.dtype, device=dev)], dim=1)
            pos = (valid + step)[:, None]
            logits, cache = self._forward(inp, past=cache, attention_mask=mask, position_ids=pos,
                                          select=[(r, 0) for r in range(R)])
            nxt = logits.argmax(dim=-1).tolist()
            keep = []
            for r in range(R):
                gens[r].append(int(nxt[r]))
                if not self.done(gens[r]):
                    keep.append(r)
                else:
                    tasks[task_ids[r]].result["_gen"] = gens[r]
            step += 1
            if len(keep) < R:
                if not keep:
                    break
                sel = torch.tensor(keep, device=dev)
                cache.batch_select_indices(sel)
                mask, valid = mask[sel], valid[sel]
                gens = [gens[r] for r in keep]
                task_ids = [task_ids[r] for r in keep]


def run_tasks(model, tokenizer, tasks: list[LineTask], protocol: str | Protocol, *, engine: str = "fast",
              batch_tokens: int = 8192, max_rows: int = 64, share_prefix: bool = True, min_share: int = 32,
              early_stop: bool = True, decode_tokens: int | None = None,
              progress: bool = False) -> list[LineTask]:
    """Score every task in place (``task.result``) with the chosen engine; returns the tasks."""
    proto = get_protocol(protocol)
    voc = _vocab(tokenizer, model)
    if any(len(t.prompt) == 0 or len(t.cont) == 0 for t in tasks):
        raise EvalError("every line needs a non-empty prompt and target (empty tokenization)")
    if engine == "reference":
        _run_reference(model, tokenizer, tasks, proto, voc, progress)
        return tasks
    if engine != "fast":
        raise EvalError(f"unknown engine {engine!r}: give fast or reference")
    fast = _Fast(model, tokenizer, proto, voc, batch_tokens, max_rows, early_stop, decode_tokens)
    if proto.shared_context and not proto.generate and share_prefix:  # thesis-shared: one pass per group
        bar = None
        if progress:
            from tqdm.auto import tqdm
            bar = tqdm(total=len(tasks), desc="lines (shared)", unit="line")
        for group in nested_groups(tasks):
            fast.run_nested(tasks, group)
            if bar is not None:
                bar.update(len(group))
        if bar is not None:
            bar.close()
        return tasks
    clusters = plan_clusters([t.prompt for t in tasks], min_share=min_share) if share_prefix else []
    shared_groups = [(s, idx) for s, idx in clusters if s > 0]
    alone = sorted(set(range(len(tasks))) - {i for _, idx in shared_groups for i in idx})
    clusters = shared_groups + ([(0, alone)] if alone else [])  # lines without a shared prefix: one pool
    work = []
    for shared, idx in clusters:
        for rows in fast.batches(tasks, idx, shared):
            work.append((shared, idx[0], rows))
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=len(tasks), desc="lines", unit="line")
    prefix_key, prefix = None, None
    for shared, key, rows in work:
        if shared and prefix_key != (key, shared):
            prefix_key, prefix = (key, shared), fast.prefix_cache(tasks[key].prompt[:shared])
        fast.run_batch(tasks, rows, shared, prefix if shared else None)
        if bar is not None:
            bar.update(len(rows))
    fast.flush(tasks)
    if bar is not None:
        bar.close()
    return tasks


def tasks_frame(tasks: list[LineTask]) -> pd.DataFrame:
    """Per-line records of scored tasks (columns :data:`LINE_COLUMNS`)."""
    rows = []
    for t in tasks:
        r = t.result
        rows.append({"datapoint": t.datapoint, "repository": t.repository, "completion_path": t.completion_path,
                     "line": t.line, "category": t.category, "prompt_tokens": len(t.prompt),
                     "truncated": t.truncated, "prediction": r["prediction"], "target": t.target,
                     "match": bool(r["match"]), "line_loss": r["line_loss"], "token_acc": r["token_acc"],
                     "edit_sim": r["edit_sim"], "n_target_tokens": r["n_target_tokens"],
                     "n_generated": r["n_generated"], "stop": r["stop"]})
    df = pd.DataFrame(rows, columns=LINE_COLUMNS)
    return df.astype({"line": "int64", "prompt_tokens": "int64", "truncated": "bool", "match": "bool",
                      "n_target_tokens": "int64", "n_generated": "int64"})


def evaluate(model, tokenizer, datapoints: Iterable[Datapoint], *, composer: str, max_context: int,
             protocol: str | Protocol = "thesis", mode: str = "original", fmt: str = "opencoder",
             seed: int = 0, categories: tuple[str, ...] = CATEGORIES, engine: str = "fast",
             batch_tokens: int = 8192, max_rows: int = 64, share_prefix: bool = True,
             decode_tokens: int | None = None, compose_fn: Callable | None = None,
             render_fn: Callable | None = None, progress: bool = False) -> pd.DataFrame:
    """Evaluate a loaded model on datapoints: one record per target line (see :data:`LINE_COLUMNS`).

    ``model`` may also be a checkpoint folder or hub id (loaded with
    :func:`rlctx_utils.models.load_model`, tokenizer from the same place when not given).
    ``composer`` is a registry name (resolve ``own`` first: :func:`rlctx_utils.evaluation.api.own_composer`).
    """
    if isinstance(model, (str, bytes)) or hasattr(model, "__fspath__"):
        from ..models import load_model
        from ..tokenizer import load_tokenizer
        tokenizer = tokenizer or load_tokenizer(str(model))
        model = load_model(str(model))
    if composer == "own":
        raise EvalError("composer 'own' must be resolved to the checkpoint's training composer first")
    model.eval()
    tasks = None
    store = os.environ.get("RLCTX_EVAL_TASKS")  # prompts built once for every checkpoint (task_store.py)
    if store and compose_fn is None and render_fn is None and isinstance(protocol, str):
        from . import task_store

        datapoints = list(datapoints)
        tasks = task_store.load_tasks(store, task_store.task_key(
            datapoints, tokenizer, composer=composer, max_context=max_context, protocol=protocol, mode=mode,
            fmt=fmt, seed=seed, categories=categories))
        if tasks is None:
            import sys

            what = f"no stored prompts for {composer} ({mode}) @ {max_context} {protocol} in {store}"
            if os.environ.get(task_store.ONLY_ENV) == "1":  # the datapoints lack their snapshots
                raise EvalError(f"{what}: rebuild the bundle (rlctx gpu bundle) for this setting")
            print(f"{what}: building them", file=sys.stderr)
    if tasks is None:
        tasks = build_tasks(datapoints, tokenizer, composer=composer, max_context=max_context, protocol=protocol,
                            mode=mode, fmt=fmt, seed=seed, categories=categories, compose_fn=compose_fn,
                            render_fn=render_fn, progress=progress)
    run_tasks(model, tokenizer, tasks, protocol, engine=engine, batch_tokens=batch_tokens, max_rows=max_rows,
              share_prefix=share_prefix, decode_tokens=decode_tokens, progress=progress)
    return tasks_frame(tasks)
