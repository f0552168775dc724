"""The two published single-line completion protocols: prompts, stop rules and normalisation.

Every number of the study is the exact-match rate of completing one line of a file (SPEC section 6).
The prompt is the composed repository context followed by the completion file's lines above the
target line; the model must produce the target line. Two published protocols differ in the details:

``lca`` (the Long Code Arena baselines)
    The file prefix is the lines above the target joined by ``\\n`` *without* the newline that ends
    the last of them, so the model first has to produce that newline. Decoding is greedy, at most 100
    new tokens; a generated token whose text contains a newline stops generation once at least 6
    tokens were generated (the 6th token may stop it), and so does the end-of-sequence token. The
    decoded text is stripped of newlines at both ends, its first line is the prediction, and exact
    match compares prediction and target after stripping surrounding whitespace. EM is averaged per
    file, then over files.

``thesis`` (the companion thesis)
    The file prefix ends with a newline. Context and completion are tokenized separately; the
    prompt is cut from the left. The completion file up to and including the target line (and its
    newline) is tokenized as one text and the target is every token that overlaps the line, so
    the target keeps the tokenization the model was trained on: byte-level BPE merges a newline
    with the indentation that follows it (``"\\n    "`` is one token), so for an indented line the
    prompt ends before that token. ``thesis-separate`` is the literal reading (prefix ending in
    ``"\\n"`` and ``target + "\\n"`` tokenized on their own); it shows the model a token boundary
    it never saw in training after every indented line, and a model that has memorised a file
    scores 0 under it (``tests/test_evaluation.py``), so it is kept only for comparison. The model is run once with
    teacher forcing and the line counts as matched when the argmax at every target position is the
    target token. The last target token ends the line: any argmax token that contains a newline with
    the same text before it ends the line the same way (as greedy decoding with "stop at the first
    newline token" would), so a match here is exactly a greedy match without stripping. EM is averaged
    over lines.

``thesis-shared`` (the thesis protocol with one context per group of lines, for CPU budgets)
    As ``thesis`` (same target tokenization, teacher-forced argmax check, EM over lines), except
    that the lines of a file share one composed context instead of each getting its own: going
    from the file's last target line backwards, a line joins the group of a later line when the
    context room that later line leaves (the budget minus its completion prefix) is at least half
    the room it would get on its own; the composer sees the text above the group's *first* line
    (so no line's own text or what follows reaches it). All lines of a group then share their
    prompt up to the first line, so the fast engine computes that prefix once: about one window
    per file instead of one per line. A line never gets less than half of its ``thesis`` context,
    and gets the same when the file's lines fit (``tests/test_evaluation_shared.py``).

``perplexity`` (an in-context measure, not line completion)
    No target line: one forward pass per datapoint and setting scores the whole completion file
    (cut to the profile's completion budget) after the setting's composer context, and once more
    without context; the number is the file's mean token loss (``file_loss``) and its difference
    from the no-context loss (``file_loss_delta``, negative = the context helps). This is how the
    Long Code Arena baselines select composers (by perplexity); see
    :func:`rlctx_utils.evaluation.incontext.file_loss_records`.

Deviations from the original scripts, on purpose: our stop rule is a pure function of the tokens
generated for *this* line. The LCA script keeps its "tokens generated so far" counter in a stopping
criterion object shared by the lines of a file and resets it only when it stops on a newline, so a
line that ends by the token cap or by EOS lets the next line stop early (possibly with an empty
prediction). We do not reproduce that state carried across lines.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

NEWLINE = "\n"


class ProtocolError(ValueError):
    """An unknown protocol name or invalid protocol option."""


@dataclass(frozen=True)
class Protocol:
    """The knobs in which the two published protocols differ."""

    name: str
    #: the completion prefix ends with the newline that terminates the line above the target
    trailing_newline: bool
    #: greedy generation (True) or a teacher-forced argmax check (False)
    generate: bool
    #: compare prediction and target after stripping surrounding whitespace
    strip: bool
    #: EM averaged per file then over files (True) or over lines (False)
    file_average: bool
    #: a newline token stops generation only at this 1-based generated position or later
    min_tokens: int = 1
    #: the token cap of generation
    max_new_tokens: int = 100
    #: how the target line is tokenized (teacher-forced protocols): ``joint`` = the completion file up
    #: to and including the target line is tokenized as one text and the target is every token that
    #: overlaps the line; ``separate`` = prefix and ``target + "\n"`` are tokenized on their own
    target_tokenization: str = "joint"
    #: lines of a file share one composed context (``thesis-shared``); see the module docstring
    shared_context: bool = False

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if not d["shared_context"]:  # the older protocols' identity stays what it was
            del d["shared_context"]
        return d


PROTOCOLS: dict[str, Protocol] = {
    "lca": Protocol("lca", trailing_newline=False, generate=True, strip=True, file_average=True,
                    min_tokens=6, max_new_tokens=100),
    "thesis": Protocol("thesis", trailing_newline=True, generate=False, strip=False, file_average=False,
                       min_tokens=1, max_new_tokens=100, target_tokenization="joint"),
    "thesis-shared": Protocol("thesis-shared", trailing_newline=True, generate=False, strip=False,
                              file_average=False, min_tokens=1, max_new_tokens=100, target_tokenization="joint",
                              shared_context=True),
    "thesis-separate": Protocol("thesis-separate", trailing_newline=True, generate=False, strip=False,
                                file_average=False, min_tokens=1, max_new_tokens=100,
                                target_tokenization="separate"),
    # whole completion files, no target lines (rlctx_utils.evaluation.incontext)
    "perplexity": Protocol("perplexity", trailing_newline=True, generate=False, strip=False, file_average=True,
                           min_tokens=1, max_new_tokens=0, target_tokenization="file"),
}
#: Protocols that score whole completion files instead of target lines.
FILE_PROTOCOLS = ("perplexity",)


def get_protocol(protocol: str | Protocol) -> Protocol:
    """A protocol by name (``lca``, ``thesis``, ``thesis-shared``, ``thesis-separate``, ``perplexity``), or the given
    :class:`Protocol` itself."""
    if isinstance(protocol, Protocol):
        return protocol
    if protocol not in PROTOCOLS:
        raise ProtocolError(f"unknown protocol {protocol!r}: give one of {sorted(PROTOCOLS)}")
    return PROTOCOLS[protocol]


# ---------------------------------------------------------------------------------------------
# Prompt text

def file_lines(content: str) -> list[str]:
    """Lines of a completion file as LCA indexes them (``content.split("\\n")``)."""
    return content.split(NEWLINE)


def completion_prefix(content: str, line_index: int, protocol: str | Protocol) -> str:
    """The completion file text above the target line, as the protocol shows it to the model.

    Line ``line_index`` (0-based) and everything after it are never part of it. ``lca``: the lines
    above joined by newlines (no terminating newline); ``thesis``: the same plus that newline.
    """
    p = get_protocol(protocol)
    lines = file_lines(content)
    if not 0 <= line_index < len(lines):
        raise ProtocolError(f"line {line_index} is outside a file of {len(lines)} lines")
    prefix = NEWLINE.join(lines[:line_index])
    if p.trailing_newline and line_index > 0:
        prefix += NEWLINE
    return prefix


def target_line(content: str, line_index: int) -> str:
    return file_lines(content)[line_index]


def continuation_text(target: str, line_index: int, protocol: str | Protocol) -> str:
    """The text that completes the prompt with the target line and ends it.

    Used for teacher forcing (the graded measures of both protocols and the thesis' EM). Under
    ``lca`` the prompt lacks the newline that ends the line above, so it comes first.
    """
    p = get_protocol(protocol)
    lead = "" if (p.trailing_newline or line_index == 0) else NEWLINE
    return lead + target + NEWLINE


# ---------------------------------------------------------------------------------------------
# Token texts, stop rule, normalisation

_TEXT_CACHE: dict[int, tuple[Any, list[str]]] = {}


def token_texts(tokenizer) -> list[str]:
    """Decoded text of every id of ``tokenizer`` (cached per tokenizer object)."""
    key = id(tokenizer)
    hit = _TEXT_CACHE.get(key)
    if hit is not None and hit[0] is tokenizer:
        return hit[1]
    n = len(tokenizer)
    texts = tokenizer.batch_decode([[i] for i in range(n)], skip_special_tokens=False,
                                   clean_up_tokenization_spaces=False)
    _TEXT_CACHE[key] = (tokenizer, texts)
    return texts


def newline_ids(tokenizer) -> frozenset[int]:
    """Ids whose text contains a newline (LCA's stop tokens)."""
    return frozenset(i for i, t in enumerate(token_texts(tokenizer)) if NEWLINE in t)


def eos_ids(tokenizer, model=None) -> frozenset[int]:
    """End-of-sequence ids: the tokenizer's and the model's generation config's."""
    out: set[int] = set()
    if getattr(tokenizer, "eos_token_id", None) is not None:
        out.add(int(tokenizer.eos_token_id))
    gen = getattr(model, "generation_config", None)
    e = getattr(gen, "eos_token_id", None) if gen is not None else None
    if isinstance(e, int):
        out.add(e)
    elif isinstance(e, (list, tuple)):
        out.update(int(x) for x in e)
    return frozenset(out)


def stop_position(tokens: list[int], newline: frozenset[int], eos: frozenset[int],
                  protocol: str | Protocol) -> tuple[int | None, str]:
    """Where greedy generation stops: (index of the last generated token kept, reason).

    Reasons: ``eos``; ``newline`` (a newline token at 1-based position >= ``min_tokens``); ``cap``
    (``max_new_tokens`` reached); ``open`` (none of these within ``tokens``: keep generating).
    Pure function of this line's tokens: no state carried between lines.
    """
    p = get_protocol(protocol)
    for j, t in enumerate(tokens[: p.max_new_tokens]):
        if t in eos:
            return j, "eos"
        if j + 1 >= p.min_tokens and t in newline:
            return j, "newline"
    if len(tokens) >= p.max_new_tokens:
        return p.max_new_tokens - 1, "cap"
    return None, "open"


def lca_prediction(generated_text: str) -> str:
    """LCA's prediction line: newlines stripped at both ends, then the first line (not yet stripped
    of spaces: exact match strips, edit similarity does not)."""
    return generated_text.strip(NEWLINE).split(NEWLINE)[0]


def normalise(text: str, protocol: str | Protocol) -> str:
    """What exact match compares: stripped under ``lca``, verbatim under ``thesis``."""
    return text.strip() if get_protocol(protocol).strip else text


def exact_match(prediction: str, target: str, protocol: str | Protocol) -> bool:
    return normalise(prediction, protocol) == normalise(target, protocol)


def ends_line_like(pred_id: int, target_id: int, texts: list[str]) -> bool:
    """The argmax token ends the line as the target's last token does: it contains a newline and
    the text before its first newline equals the target token's text before its first newline."""
    if pred_id == target_id:
        return True
    pt, tt = texts[pred_id], texts[target_id]
    if NEWLINE not in pt or NEWLINE not in tt:
        return False
    return pt.split(NEWLINE, 1)[0] == tt.split(NEWLINE, 1)[0]


def teacher_forced_hits(pred_ids: list[int], target_ids: list[int], texts: list[str]) -> list[bool]:
    """Per target position: is the teacher-forced argmax the target token? The last position (the
    token that ends the line) accepts any token that ends the line the same way."""
    hits = [int(p) == int(t) for p, t in zip(pred_ids, target_ids)]
    if hits and NEWLINE in texts[target_ids[-1]]:
        hits[-1] = ends_line_like(int(pred_ids[-1]), int(target_ids[-1]), texts)
    return hits


def teacher_forced_text(pred_ids: list[int], texts: list[str], lead: str = "") -> str:
    """The argmax tokens' text up to the first newline (the thesis' stand-in for a prediction);
    ``lead`` is the end of the line above carried by the first target token (joint tokenization)."""
    text = "".join(texts[i] for i in pred_ids)
    if lead and text.startswith(lead):
        text = text[len(lead):]
    return text.split(NEWLINE, 1)[0]
