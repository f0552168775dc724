"""At toy scale: the paper's six findings (SPEC section 1) tested on our own runs.

For each finding this module puts the paper's numbers (``results/paper/results.csv``) beside ours
(``results/<profile>/evals/``: one record per target line) and states a verdict by a rule written
down here, in :func:`findings`, not chosen after looking:

* every quantity of ours is a mean over target lines with a 95% confidence interval from a
  bootstrap that resamples *repositories* (lines of one repository are not independent;
  :func:`rlctx_utils.stats.cluster_bootstrap_ci`); a difference is a paired difference over the
  same lines; "within noise" means its interval contains 0;
* the verdicts are judged on the graded measure :data:`PRIMARY` (target-line token accuracy; exact
  match is near 0 at this scale), on inproject lines (the paper's main column); target-line loss and
  exact match are reported beside it, and the reason says when the loss disagrees;
* verdicts are ``reproduced``, ``partly`` or ``not reproduced``; ``not tested`` when a run or an
  evaluation the finding needs is missing.

:func:`write_toy_scale` writes ``paper/toy_scale.md`` (appended to ``paper/REPORT.md`` as the
section "At toy scale") and ``results/<profile>/findings.json``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import stats
from .io import read_json, write_json, write_text
from .names import COMPOSER_LABELS, UNREALISTIC
from .paths import PAPER, results_dir

PRIMARY = "token_acc"
LINE_TYPE = "inproject"
#: measure -> (per-line column, scale, label, +1 when higher is better)
MEASURES: dict[str, tuple[str, float, str, int]] = {
    "token_acc": ("token_acc", 100.0, "token acc. (%)", +1),
    "line_loss": ("line_loss", 1.0, "line loss (nats)", -1),
    "em": ("match", 100.0, "EM (%)", +1),
}
BOOTSTRAP = 2000
THETA_NEW = 500000


# ---------------------------------------------------------------------------------------------
# Estimates

@dataclass
class Estimate:
    """A mean (or mean paired difference) over lines, with its repository-bootstrap interval."""

    value: float
    low: float
    high: float
    n_lines: int
    n_repos: int

    @property
    def within_noise(self) -> bool:
        return self.low <= 0 <= self.high

    def text(self, digits: int = 1, signed: bool = False) -> str:
        if math.isnan(self.value):
            return "–"
        f = f"{{:{'+' if signed else ''}.{digits}f}}"
        return f"{f.format(self.value)} [{f.format(self.low)}, {f.format(self.high)}]"


NAN = Estimate(float("nan"), float("nan"), float("nan"), 0, 0)


def _values(lines: pd.DataFrame, measure: str) -> np.ndarray:
    col, scale, _, _ = MEASURES[measure]
    return lines[col].astype(float).to_numpy() * scale


def level(lines: pd.DataFrame | None, measure: str, seed: int = 0) -> Estimate:
    """Mean of a measure over lines, bootstrap by repository."""
    if lines is None or lines.empty:
        return NAN
    v = _values(lines, measure)
    ci = stats.cluster_bootstrap_ci(v, lines["repository"].to_numpy(), n_resamples=BOOTSTRAP, seed=seed)
    return Estimate(ci.estimate, ci.low, ci.high, len(v), int(lines["repository"].nunique()))


def _aligned(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    key = ["datapoint", "line"]
    return a.merge(b, on=key, suffixes=("_a", "_b"), validate="one_to_one")


def paired(a: pd.DataFrame | None, b: pd.DataFrame | None, measure: str, seed: int = 0) -> Estimate:
    """Mean of ``a - b`` over the lines both evaluated, bootstrap by repository."""
    if a is None or b is None or a.empty or b.empty:
        return NAN
    m = _aligned(a, b)
    if m.empty:
        return NAN
    col, scale, _, _ = MEASURES[measure]
    d = (m[f"{col}_a"].astype(float) - m[f"{col}_b"].astype(float)).to_numpy() * scale
    ci = stats.cluster_bootstrap_ci(d, m["repository_a"].to_numpy(), n_resamples=BOOTSTRAP, seed=seed)
    return Estimate(ci.estimate, ci.low, ci.high, len(d), int(m["repository_a"].nunique()))


def mcnemar(a: pd.DataFrame | None, b: pd.DataFrame | None) -> stats.TestResult | None:
    """Exact McNemar test of the exact-match outcomes of two evaluations on the same lines."""
    if a is None or b is None or a.empty or b.empty:
        return None
    m = _aligned(a, b)
    return stats.mcnemar_exact(m["match_a"].to_numpy(), m["match_b"].to_numpy())


# ---------------------------------------------------------------------------------------------
# Our stored evaluations, addressed by run and setting

def run_id(composer: str, mode: str = "original", loss: str = "masked", theta: float = THETA_NEW) -> str:
    from .training.runs import default_run_id

    return default_run_id("repo", {"composer": composer, "mode": mode, "loss": loss, "rope_theta": theta})


BASE = "base"
UNTRAINED = "base-theta500000-untrained"
FL10K = run_id("file_level", loss="full", theta=10000)
FL500K = run_id("file_level", loss="full")
PD = run_id("path_distance_py")
PD_FULL = run_id("path_distance_py", loss="full")
DUP = run_id("duplication")
DUP_FULL = run_id("duplication", loss="full")


class Evals:
    """The per-line records of one profile's evaluations under one protocol."""

    def __init__(self, profile: str, protocol: str = "thesis", out_dir: str | Path | None = None):
        from .evaluation.api import evals_dir

        self.profile, self.protocol = profile, protocol
        d = evals_dir(profile, out_dir)
        rows = []
        for side in sorted(d.glob("*.json")) if d.is_dir() else []:
            cfg = read_json(side).get("config") or {}
            ident, rec = cfg.get("identity") or {}, cfg.get("checkpoint_record") or {}
            if ident.get("protocol") != protocol or not side.with_suffix(".parquet").exists():
                continue
            rows.append({"run_id": rec.get("run_id"), "composer": ident.get("composer"),
                         "mode": ident.get("mode", "original"), "max_context": int(ident.get("max_context", 0)),
                         "path": side.with_suffix(".parquet"), "record": rec})
        self.index = pd.DataFrame(rows, columns=["run_id", "composer", "mode", "max_context", "path", "record"])
        self._cache: dict[Path, pd.DataFrame] = {}

    def records(self) -> dict[str, dict[str, Any]]:
        return {r["run_id"]: r["record"] for _, r in self.index.iterrows() if r["run_id"]}

    def lines(self, run: str, composer: str, max_context: int, *, mode: str = "original",
              line_type: str | None = LINE_TYPE) -> pd.DataFrame | None:
        if composer == "own":
            rec = self.records().get(run) or {}
            composer = rec.get("composer") or "file_level"  # base models (and the untrained copy): single files
            mode = rec.get("mode") or "original"
        hit = self.index[(self.index["run_id"] == run) & (self.index["composer"] == composer)
                         & (self.index["mode"] == mode) & (self.index["max_context"] == int(max_context))]
        if hit.empty:
            return None
        path = hit.iloc[0]["path"]
        if path not in self._cache:
            self._cache[path] = pd.read_parquet(path)
        df = self._cache[path]
        return df[df["category"] == line_type] if line_type else df

    def runs(self) -> list[str]:
        return sorted(r for r in self.index["run_id"].dropna().unique())


# ---------------------------------------------------------------------------------------------
# The paper's numbers

def _paper_em(paper: pd.DataFrame, checkpoint: str, setting: str, line_type: str = LINE_TYPE,
              table: str = "table3") -> float:
    d = paper[(paper["table"] == table) & (paper["checkpoint"] == checkpoint)
              & (paper["eval_setting"] == setting) & (paper["line_type"] == line_type)]
    return float(d["em"].iloc[0]) if len(d) else float("nan")


def _paper_realistic(paper: pd.DataFrame, setting: str = "PD-16K") -> pd.Series:
    d = paper[(paper["table"] == "table3") & paper["composer"].notna()
              & ~paper["composer"].isin(["file_level", "mixed", *UNREALISTIC])
              & (paper["eval_setting"] == setting) & (paper["line_type"] == LINE_TYPE)]
    return d.set_index("checkpoint")["em"].astype(float)


# ---------------------------------------------------------------------------------------------
# Findings

@dataclass
class Row:
    quantity: str
    paper: str
    ours: dict[str, Estimate] = field(default_factory=dict)
    extra: str = ""


@dataclass
class Finding:
    number: int
    title: str
    claim: str
    rows: list[Row]
    verdict: str
    reason: str
    rule: str

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["rows"] = [{"quantity": r.quantity, "paper": r.paper, "extra": r.extra,
                        **{m: asdict(e) for m, e in r.ours.items()}} for r in self.rows]
        return out


def _f(x: float, digits: int = 1, signed: bool = False) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{x:{'+' if signed else ''}.{digits}f}"


def _label(rid: str, records: dict[str, dict[str, Any]]) -> str:
    if rid == BASE:
        return "base model (θ 10k)"
    if rid == UNTRAINED:
        return "base model, θ raised to 500k, no training"
    rec = records.get(rid) or {}
    name = COMPOSER_LABELS.get(rec.get("composer"), rec.get("composer") or rid)
    if rec.get("mode") not in (None, "original"):
        name += f" ({rec['mode']})"
    if rec.get("composer") == "file_level":
        name += f" θ {float(rec.get('rope_theta') or 0) / 1000:g}k"
    elif rec.get("loss") == "full":
        name += ", full loss"
    from .evaluation.api import beyond_paper

    extra = beyond_paper(rec)
    return name + (f" ({extra})" if extra else "")


class Study:
    """Our evaluations and the paper's numbers, with the helpers the findings share."""

    def __init__(self, profile: str, paper: pd.DataFrame, cfg: dict[str, Any], protocol: str = "thesis",
                 evals_out: str | Path | None = None):
        self.profile, self.paper, self.cfg = profile, paper, cfg
        self.base_len, self.ext_len = int(cfg["base_length"]), int(cfg["extended_length"])
        self.ev = Evals(profile, protocol, evals_out)
        self.records = self.ev.records()
        self.seed = int(cfg.get("seed", 0))

    def setting(self, role: str) -> tuple[str, int]:
        return {"FL-base": ("file_level", self.base_len), "PD-base": ("path_distance_py", self.base_len),
                "PD-ext": ("path_distance_py", self.ext_len), "Or-ext": ("own", self.ext_len)}[role]

    def lines(self, rid: str, role_or_size: str | int) -> pd.DataFrame | None:
        if isinstance(role_or_size, int):
            return self.ev.lines(rid, "path_distance_py", role_or_size)
        return self.ev.lines(rid, *self.setting(role_or_size))

    def lvl(self, rid: str, where: str | int) -> dict[str, Estimate]:
        la = self.lines(rid, where)
        return {m: level(la, m, self.seed) for m in MEASURES}

    def diff(self, a: tuple[str, str | int], b: tuple[str, str | int]) -> dict[str, Estimate]:
        la, lb = self.lines(*a), self.lines(*b)
        return {m: paired(la, lb, m, self.seed) for m in MEASURES}

    def has(self, *specs: tuple[str, str | int]) -> bool:
        return all(self.lines(*s) is not None for s in specs)

    def label(self, rid: str) -> str:
        return _label(rid, self.records)

    def loss_token_ratio(self, a: str, b: str) -> float | None:
        """Mean loss tokens per step of run ``a`` over run ``b`` (from their committed metrics.csv)."""
        means = []
        for rid in (a, b):
            f = results_dir(self.profile) / "runs" / rid / "metrics.csv"
            if not f.exists():
                return None
            m = pd.read_csv(f)
            if m.empty or "loss_tokens" not in m:
                return None
            means.append(float(m["loss_tokens"].mean()))
        return means[0] / means[1] if means[1] else None

    def realistic_runs(self) -> list[str]:
        """The paper's grid runs of realistic composers (masked loss, θ 500k, full fine-tuning); a run
        beyond the paper (a LoRA adapter, YaRN) trains the same composer another way and is no
        composer of its own."""
        from .evaluation.api import beyond_paper

        out = []
        for rid, rec in self.records.items():
            if (rec.get("loss") == "masked" and rec.get("composer") not in (None, "file_level", "mixed", *UNREALISTIC)
                    and float(rec.get("rope_theta") or 0) == THETA_NEW and rec.get("stop_step") != 0
                    and not beyond_paper(rec)):
                out.append(rid)
        return sorted(out)


def _verdict(reproduced: bool, partly: bool) -> str:
    return "reproduced" if reproduced else ("partly" if partly else "not reproduced")


def _missing(number: int, title: str, claim: str, rule: str, what: str) -> Finding:
    return Finding(number, title, claim, [], "not tested", f"missing: {what}", rule)


def _graded_agree(d: dict[str, Estimate]) -> str:
    """Whether the target-line loss points the same way as token accuracy (lower loss = better)."""
    ta, ll = d["token_acc"], d["line_loss"]
    if math.isnan(ta.value) or math.isnan(ll.value):
        return ""
    same = (ta.value > 0) == (ll.value < 0)
    return "the target-line loss agrees" if same else "the target-line loss points the other way"


def _paper_name(rec: dict[str, Any]) -> str:
    """The paper's Table 3 name of a run like ours: 'Path Distance .py (reversed)'."""
    name = COMPOSER_LABELS.get(rec.get("composer"), str(rec.get("composer")))
    return name + ("" if rec.get("mode") in (None, "original") else f" ({rec['mode']})")


def finding1(s: Study) -> Finding:
    title = "The composer has only a marginal effect"
    claim = "All realistic composers land within about 2 EM points of each other at 16K."
    rule = ("reproduced if the best and worst realistic composer (masked, θ 500k) differ within noise at PD-ext, "
            "or by less than a quarter of the gain from RoPE adaptation (finding 2: File-level θ 500k − θ 10k at "
            "PD-ext); partly if less than half of it; not reproduced otherwise")
    runs = [r for r in s.realistic_runs() if s.has((r, "PD-ext"))]
    if len(runs) < 2 or not s.has((FL500K, "PD-ext"), (FL10K, "PD-ext")):
        return _missing(1, title, claim, rule, "two realistic composer runs and both File-level runs at PD-ext")
    levels = {r: s.lvl(r, "PD-ext") for r in runs}
    order = sorted(runs, key=lambda r: levels[r][PRIMARY].value, reverse=True)
    best, worst = order[0], order[-1]
    spread = s.diff((best, "PD-ext"), (worst, "PD-ext"))
    gain = s.diff((FL500K, "PD-ext"), (FL10K, "PD-ext"))
    pr = _paper_realistic(s.paper)
    p_gain = _paper_em(s.paper, "File-level 4K, θ=500,000", "PD-16K") - _paper_em(s.paper, "File-level 4K, θ=10,000", "PD-16K")
    rows = [Row(s.label(r), _f(pr.get(_paper_name(s.records[r]), float("nan"))), levels[r]) for r in order]
    rows.append(Row(f"spread: {s.label(best)} − {s.label(worst)}", f"{pr.max() - pr.min():.1f} "
                    f"(range {pr.min():.1f}–{pr.max():.1f}, {len(pr)} runs)", spread))
    rows.append(Row("RoPE adaptation gain for scale: File-level θ 500k − θ 10k", _f(p_gain, signed=True), gain))
    sp, g = spread[PRIMARY], gain[PRIMARY]
    ratio = sp.value / g.value if g.value > 0 else float("inf")
    rcb = s.diff((best, "PD-ext"), (best, "FL-base")) if s.has((best, "FL-base")) else None
    if rcb is not None:
        paper_name = _paper_name(s.records.get(best) or {})
        rows.append(Row(f"repository-context boost of {s.label(best)}: PD-ext − FL-base",
                        _f(_paper_em(s.paper, paper_name, "PD-16K") - _paper_em(s.paper, paper_name, "FL-4K"),
                           signed=True), rcb))
    verdict = _verdict(sp.within_noise or ratio < 0.25, ratio < 0.5)
    noise = "within noise" if sp.within_noise else "outside noise"
    reason = (f"the {len(runs)} realistic composers span {sp.value:.1f} token-accuracy points at PD-ext "
              f"({s.label(best)} best, {s.label(worst)} worst; {noise}, CI {sp.text()}), "
              f"{ratio:.2f}× the RoPE adaptation gain of {g.value:.1f} points (paper: {pr.max() - pr.min():.1f} EM "
              f"against {p_gain:.1f}, {(pr.max() - pr.min()) / p_gain:.2f}×)")
    if rcb is not None:
        r = rcb[PRIMARY]
        reason += (f". The best composer's own repository-context boost is {r.text(signed=True)} "
                   + ("(within noise): at this scale the models hardly use the repository context, so a marginal "
                      "composer effect is expected and says little about the paper's claim"
                      if r.within_noise or r.value <= 0 else "(outside noise): the context is used"))
    return Finding(1, title, claim, rows, verdict, reason, rule)


def finding2(s: Study) -> Finding:
    title = "Most of the long-context gain comes from adapting to the new RoPE base"
    claim = ("The base model with θ raised but no training nearly collapses; the base model with θ = 10,000 scores "
             "0.0 at 16K, even after training at 4K.")
    rule = ("reproduced if (a) File-level θ 500k beats File-level θ 10k at PD-ext and (b) the untrained θ 500k base "
            "model is below the trained File-level θ 500k at PD-ext, both outside noise; partly if one of them holds; "
            "not reproduced otherwise")
    need = [(BASE, "PD-base"), (BASE, "PD-ext"), (UNTRAINED, "PD-ext"), (FL10K, "PD-ext"), (FL500K, "PD-ext")]
    if not s.has(*need):
        return _missing(2, title, claim, rule, "base, untrained θ 500k and both File-level runs at PD-base/PD-ext")
    P = s.paper
    b10 = "Base model, θ=10,000 (no training)"
    rows = [
        Row(f"{s.label(BASE)} at PD-base (its own length)", _f(_paper_em(P, b10, "PD-4K")), s.lvl(BASE, "PD-base")),
        Row(f"{s.label(BASE)} at PD-ext", _f(_paper_em(P, b10, "PD-16K")), s.lvl(BASE, "PD-ext")),
        Row(f"{s.label(UNTRAINED)} at PD-ext", _f(_paper_em(P, "Base model, θ=500,000 (no training)", "PD-16K")),
            s.lvl(UNTRAINED, "PD-ext")),
        Row(f"{s.label(FL10K)} (trained at base length) at PD-ext", _f(_paper_em(P, "File-level 4K, θ=10,000", "PD-16K")),
            s.lvl(FL10K, "PD-ext")),
        Row(f"{s.label(FL500K)} at PD-ext", _f(_paper_em(P, "File-level 4K, θ=500,000", "PD-16K")), s.lvl(FL500K, "PD-ext")),
    ]
    a = s.diff((FL500K, "PD-ext"), (FL10K, "PD-ext"))
    b = s.diff((FL500K, "PD-ext"), (UNTRAINED, "PD-ext"))
    c = s.diff((BASE, "PD-ext"), (BASE, "PD-base"))
    rows += [Row("(a) File-level θ 500k − θ 10k at PD-ext",
                 _f(_paper_em(P, "File-level 4K, θ=500,000", "PD-16K") - _paper_em(P, "File-level 4K, θ=10,000", "PD-16K"),
                    signed=True), a),
             Row("(b) File-level θ 500k − untrained θ 500k at PD-ext",
                 _f(_paper_em(P, "File-level 4K, θ=500,000", "PD-16K")
                    - _paper_em(P, "Base model, θ=500,000 (no training)", "PD-16K"), signed=True), b),
             Row("base model: PD-ext − PD-base (longer context, θ 10k)",
                 _f(_paper_em(P, b10, "PD-16K") - _paper_em(P, b10, "PD-4K"), signed=True), c)]
    ok_a = a[PRIMARY].value > 0 and not a[PRIMARY].within_noise
    ok_b = b[PRIMARY].value > 0 and not b[PRIMARY].within_noise
    verdict = _verdict(ok_a and ok_b, ok_a or ok_b)
    keep = s.lvl(BASE, "PD-ext")[PRIMARY].value / max(s.lvl(BASE, "PD-base")[PRIMARY].value, 1e-9)
    keep_fl = s.lvl(FL10K, "PD-ext")[PRIMARY].value / max(s.lvl(BASE, "PD-base")[PRIMARY].value, 1e-9)
    keep_un = s.lvl(UNTRAINED, "PD-ext")[PRIMARY].value / max(s.lvl(BASE, "PD-base")[PRIMARY].value, 1e-9)
    reason = (f"(a) θ 500k over θ 10k after the same File-level training: {a[PRIMARY].text(signed=True)} token-accuracy "
              f"points ({'outside' if ok_a else 'within'} noise); (b) training after raising θ: "
              f"{b[PRIMARY].text(signed=True)} ({'outside' if ok_b else 'within'} noise). Relative to the base model "
              f"at its own length (PD-base), at the extended length the θ 10k base model keeps {keep:.0%} of its token "
              f"accuracy, the File-level θ 10k run {keep_fl:.0%} and the untrained θ 500k model {keep_un:.0%} "
              f"(paper, in EM: 0%, 0% and {_paper_em(P, 'Base model, θ=500,000 (no training)', 'PD-16K') / _paper_em(P, b10, 'PD-4K'):.0%}); "
              + ("a collapse as in the paper" if max(keep, keep_fl) < 0.5 else
                 "token accuracy degrades more gently than EM, which needs every token of the line right"))
    return Finding(2, title, claim, rows, verdict, reason, rule)


def finding3(s: Study) -> Finding:
    title = "File-level training is already highly competitive"
    claim = "File-level training (original length, θ 500k, about 72M tokens) reaches 45.2 vs 48.8 inproject at 16K."
    rule = ("share = (File-level θ 500k − untrained θ 500k) / (best realistic composer − untrained θ 500k) at PD-ext; "
            "reproduced if the best composer's lead over File-level is within noise or the share is at least 0.8; "
            "partly if at least 0.5; not reproduced otherwise")
    runs = [r for r in s.realistic_runs() if s.has((r, "PD-ext"))]
    if not runs or not s.has((FL500K, "PD-ext"), (UNTRAINED, "PD-ext")):
        return _missing(3, title, claim, rule, "File-level θ 500k, untrained θ 500k and a composer run at PD-ext")
    best = max(runs, key=lambda r: s.lvl(r, "PD-ext")[PRIMARY].value)
    P = s.paper
    pr = _paper_realistic(P)
    p_fl = _paper_em(P, "File-level 4K, θ=500,000", "PD-16K")
    p_un = _paper_em(P, "Base model, θ=500,000 (no training)", "PD-16K")
    lead = s.diff((best, "PD-ext"), (FL500K, "PD-ext"))
    fl, bst, un = (s.lvl(r, "PD-ext")[PRIMARY].value for r in (FL500K, best, UNTRAINED))
    share = (fl - un) / (bst - un) if bst != un else float("nan")
    p_share = (p_fl - p_un) / (pr.max() - p_un)
    fl_tok = (s.records.get(FL500K) or {}).get("train_tokens")
    best_tok = (s.records.get(best) or {}).get("train_tokens")
    rows = [Row(f"{s.label(FL500K)} at PD-ext", _f(p_fl), s.lvl(FL500K, "PD-ext"),
                extra=f"{_tok(fl_tok)} training tokens"),
            Row(f"best realistic composer ({s.label(best)}) at PD-ext", f"{pr.max():.1f} ({pr.idxmax()})",
                s.lvl(best, "PD-ext"), extra=f"{_tok(best_tok)} training tokens"),
            Row("lead of the best composer over File-level", _f(pr.max() - p_fl, signed=True), lead),
            Row("File-level's share of the gain over the untrained θ 500k model", f"{p_share:.2f}", {},
                extra=f"ours {share:.2f} (token accuracy)")]
    ld = lead[PRIMARY]
    verdict = _verdict(ld.within_noise or share >= 0.8, share >= 0.5)
    reason = (f"File-level θ 500k reaches {fl:.1f} token-accuracy points at PD-ext against {bst:.1f} for the best "
              f"composer ({s.label(best)}; lead {ld.text(signed=True)}, {'within' if ld.within_noise else 'outside'} "
              f"noise), a share of {share:.2f} of the gain over the untrained model (paper: {p_share:.2f}; the whole "
              f"gain is {bst - un:.1f} points here, so the share is a ratio of small numbers), with "
              f"{_tok(fl_tok)} against {_tok(best_tok)} training tokens")
    return Finding(3, title, claim, rows, verdict, reason, rule)


def _tok(n: Any) -> str:
    try:
        n = float(n)
    except (TypeError, ValueError):
        return "?"
    return f"{n / 1e6:.2f}M" if n >= 1e5 else f"{n:,.0f}"


def finding4(s: Study) -> Finding:
    title = "Masking the loss costs a little; for Duplication a lot"
    claim = ("Masking the loss to completion-file tokens costs a small but significant amount (about −0.17 EM over 80 "
             "paired numbers), except for Duplication, where masking hurts a lot.")
    rule = ("reproduced if Path Distance .py masked is below full at PD-ext outside noise and the Duplication "
            "masked − full difference is more negative than Path Distance's; partly if one of the two holds; "
            "not reproduced otherwise")
    if not s.has((PD, "PD-ext"), (PD_FULL, "PD-ext")):
        return _missing(4, title, claim, rule, "Path Distance .py masked and full at PD-ext")
    P = s.paper
    pairs = stats.masked_vs_full_pairs(P[P["table"] == "table4"])
    kept = pairs[pairs["composer"] != "duplication"]
    dup_p = pairs[pairs["composer"] == "duplication"]["diff"].mean()
    pd_p = pairs[(pairs["composer"] == "path_distance_py") & (pairs["mode"] == "original")]
    pd_p_ext = pd_p[(pd_p["eval_setting"] == "PD-16K") & (pd_p["line_type"] == LINE_TYPE)]["diff"]
    rows = []
    for role in ("FL-base", "PD-base", "PD-ext", "Or-ext"):
        rows.append(Row(f"Path Distance .py masked − full at {role}",
                        _f(float(pd_p[(pd_p['eval_setting'] == _paper_setting(role)) &
                                      (pd_p['line_type'] == LINE_TYPE)]['diff'].mean()), 2, True),
                        s.diff((PD, role), (PD_FULL, role))))
    dup = s.diff((DUP, "PD-ext"), (DUP_FULL, "PD-ext")) if s.has((DUP, "PD-ext"), (DUP_FULL, "PD-ext")) else None
    dup_or = s.diff((DUP, "Or-ext"), (DUP_FULL, "Or-ext")) if s.has((DUP, "Or-ext"), (DUP_FULL, "Or-ext")) else None
    if dup is not None:
        rows.append(Row("Duplication masked − full at PD-ext",
                        _f(float(pairs[(pairs['composer'] == 'duplication') & (pairs['eval_setting'] == 'PD-16K') &
                                       (pairs['line_type'] == LINE_TYPE)]['diff'].mean()), 2, True), dup))
    if dup_or is not None:
        rows.append(Row("Duplication masked − full at Or-ext (its own composer)",
                        _f(float(pairs[(pairs['composer'] == 'duplication') & (pairs['eval_setting'] == 'Or-16K') &
                                       (pairs['line_type'] == LINE_TYPE)]['diff'].mean()), 2, True), dup_or))
    mc = mcnemar(s.lines(PD, "PD-ext"), s.lines(PD_FULL, "PD-ext"))
    summary = stats.summarize_pairs(kept)
    rows.append(Row("mean over the paper's 80 pairs (Duplication apart)",
                    f"{summary['mean_diff']:+.3f} (t-test p = {summary['p_ttest']:.1e})", {},
                    extra=f"paper's Duplication pairs: mean {dup_p:+.2f}"))
    m = s.diff((PD, "PD-ext"), (PD_FULL, "PD-ext"))[PRIMARY]
    ok_pd = m.value < 0 and not m.within_noise
    ok_dup = dup is not None and dup[PRIMARY].value < m.value
    verdict = _verdict(ok_pd and ok_dup, ok_pd or ok_dup)
    dup_txt = (f"Duplication's is {dup[PRIMARY].text(signed=True)}" if dup is not None
               else "Duplication was not trained both ways")
    a_em, b_em = s.lines(PD, "PD-ext")["match"].sum(), s.lines(PD_FULL, "PD-ext")["match"].sum()
    if mc is None:
        mc_txt = ""
    elif a_em + b_em == 0:
        mc_txt = "; exact match is 0 for both runs, so the McNemar test has no discordant line"
    else:
        mc_txt = (f"; exact McNemar on PD-ext exact matches: {int(mc.statistic)} lines only masked right, p = "
                  f"{mc.pvalue:.2f}")
    ratio = s.loss_token_ratio(PD_FULL, PD)
    ratio_txt = (f". The full-loss run trained on {ratio:.1f}× as many loss tokens per step (the context tokens too)"
                 if ratio else "")
    reason = (f"Path Distance .py masked − full at PD-ext: {m.text(signed=True)} token-accuracy points "
              f"({'outside' if not m.within_noise else 'within'} noise; {_graded_agree(s.diff((PD, 'PD-ext'), (PD_FULL, 'PD-ext')))}); "
              f"{dup_txt}{mc_txt}{ratio_txt} (paper's PD-16K inproject pair: {float(pd_p_ext.mean()):+.1f} EM)")
    return Finding(4, title, claim, rows, verdict, reason, rule)


def _paper_setting(role: str) -> str:
    return {"FL-base": "FL-4K", "PD-base": "PD-4K", "PD-ext": "PD-16K", "Or-ext": "Or-16K"}[role]


def _sweep_sizes(s: Study) -> list[int]:
    from .evaluation.presets import sweep_sizes

    return sweep_sizes(s.cfg)


def finding5(s: Study) -> Finding:
    title = "Checkpoints extrapolate beyond their training length"
    claim = ("The file-level checkpoint (trained at 4K) peaks at 16K; the Path Distance checkpoint (trained at 16K) "
             "peaks at 32K and collapses at 128K.")
    rule = ("reproduced if File-level θ 500k at 4× its training length beats itself at its training length outside "
            "noise, and Path Distance .py at 2× its training length is not below itself at its training length "
            "outside noise; partly if one of the two holds; not reproduced otherwise")
    sizes = _sweep_sizes(s)
    fl_len = int((s.records.get(FL500K) or {}).get("train_length") or s.base_len)
    pd_len = int((s.records.get(PD) or {}).get("train_length") or s.ext_len)
    if not s.has((FL500K, fl_len), (FL500K, 4 * fl_len), (PD, pd_len), (PD, 2 * pd_len)):
        return _missing(5, title, claim, rule, "the sweep of File-level θ 500k and Path Distance .py")
    P = s.paper
    f2 = P[(P["table"] == "figure2") & (P["line_type"] == LINE_TYPE)]
    rows, best_sizes = [], []
    for rid, paper_ck, tl in ((FL500K, "File-level 4K, θ=500,000", fl_len), (PD, "Path Distance .py", pd_len)):
        curve = {n: s.lvl(rid, n) for n in sizes if s.lines(rid, n) is not None}
        best_n = max(curve, key=lambda n: curve[n][PRIMARY].value)
        best_sizes.append(best_n)
        pc = f2[f2["checkpoint"] == paper_ck].set_index("max_context")["em"]
        p_peak = int(pc.idxmax()) if len(pc) else 0
        p_len = 4096 if rid == FL500K else 16384
        rows.append(Row(f"{s.label(rid)}: peak of the sweep", f"{_size(p_peak)} ({p_peak // p_len}× training length)",
                        curve[best_n], extra=f"ours peaks at {_size(best_n)} ({best_n / tl:g}× training length {_size(tl)})"))
        for k in (2, 4):
            if s.lines(rid, k * tl) is not None:
                p_k = float(pc.get(k * p_len, float("nan")) - pc.get(p_len, float("nan")))
                rows.append(Row(f"{s.label(rid)}: {k}× − 1× training length", _f(p_k, signed=True),
                                s.diff((rid, k * tl), (rid, tl))))
    collapse = ""
    if s.lines(PD, 8 * pd_len) is not None:
        d8 = s.diff((PD, 8 * pd_len), (PD, pd_len))
        rows.append(Row(f"{s.label(PD)}: 8× − 1× training length",
                        _f(float(f2[(f2["checkpoint"] == "Path Distance .py") & (f2["max_context"] == 131072)]["em"].mean()
                                 - f2[(f2["checkpoint"] == "Path Distance .py") & (f2["max_context"] == 16384)]["em"].mean()),
                           signed=True), d8))
        collapse = f"; at 8× ({_size(8 * pd_len)}) it changes by {d8[PRIMARY].text(signed=True)}"
    elif s.lines(PD, 4 * pd_len) is not None:
        d4 = s.diff((PD, 4 * pd_len), (PD, pd_len))[PRIMARY]
        collapse = f", and by {d4.text(signed=True)} at 4× ({_size(4 * pd_len)})"
    fl4 = s.diff((FL500K, 4 * fl_len), (FL500K, fl_len))[PRIMARY]
    pd2 = s.diff((PD, 2 * pd_len), (PD, pd_len))[PRIMARY]
    ok_fl = fl4.value > 0 and not fl4.within_noise
    ok_pd = not (pd2.value < 0 and not pd2.within_noise)
    verdict = _verdict(ok_fl and ok_pd, ok_fl or ok_pd)
    top = max(sizes)
    reason = (f"File-level θ 500k gains {fl4.text(signed=True)} token-accuracy points from its training length "
              f"{_size(fl_len)} to {_size(4 * fl_len)} ({'outside' if not fl4.within_noise else 'within'} noise); Path "
              f"Distance .py changes by {pd2.text(signed=True)} from {_size(pd_len)} to {_size(2 * pd_len)}{collapse}"
              + ("" if s.lines(PD, 8 * pd_len) is not None else f". The sweep stops at {_size(top)} = {top // pd_len}× "
                 "the extended length, so the paper's collapse at 8× is not tested")
              + (f". No checkpoint gains from a longer context here: token accuracy is highest at "
                 f"{_size(min(best_sizes))}–{_size(max(best_sizes))} tokens" if best_sizes and max(best_sizes) < s.base_len else ""))
    return Finding(5, title, claim, rows, verdict, reason, rule)


def _size(n: int) -> str:
    from .schema import size_label

    return size_label(int(n)) if n else "?"


def finding6(s: Study) -> Finding:
    title = "In-context learning at the original length is kept after extension"
    claim = "PD-4K > FL-4K before and after repository-level pretraining."
    rule = ("reproduced if PD-base − FL-base is positive outside noise both for the base model and for the Path "
            "Distance .py checkpoint; partly if for one of them; not reproduced otherwise")
    if not s.has((BASE, "PD-base"), (BASE, "FL-base"), (PD, "PD-base"), (PD, "FL-base")):
        return _missing(6, title, claim, rule, "PD-base and FL-base of the base model and the Path Distance run")
    P = s.paper
    t3 = P[(P["table"] == "table3") & (P["line_type"] == LINE_TYPE)]
    w = t3.pivot_table(index="checkpoint", columns="eval_setting", values="em")
    p_all = (w["PD-4K"] - w["FL-4K"]).dropna()
    rows, ok = [], []
    for rid, paper_ck in ((BASE, "Base model, θ=10,000 (no training)"), (PD, "Path Distance .py"),
                          (FL500K, "File-level 4K, θ=500,000")):
        if not s.has((rid, "PD-base"), (rid, "FL-base")):
            continue
        d = s.diff((rid, "PD-base"), (rid, "FL-base"))
        rows.append(Row(f"{s.label(rid)}: PD-base − FL-base", _f(float(p_all.get(paper_ck, float("nan"))), signed=True), d))
        if rid in (BASE, PD):
            ok.append(d[PRIMARY].value > 0 and not d[PRIMARY].within_noise)
    others = [r for r in s.ev.runs() if r not in (BASE, PD, FL500K) and s.has((r, "PD-base"), (r, "FL-base"))]
    diffs = [s.diff((r, "PD-base"), (r, "FL-base"))[PRIMARY].value for r in others]
    rows.append(Row("every other checkpoint: PD-base − FL-base (mean, range)",
                    f"{p_all.mean():+.1f} ({p_all.min():+.1f} to {p_all.max():+.1f}, {len(p_all)} checkpoints)", {},
                    extra=(f"ours {np.mean(diffs):+.1f} ({min(diffs):+.1f} to {max(diffs):+.1f}, {len(diffs)} "
                           f"run{'s' if len(diffs) != 1 else ''})"
                           if diffs else "")))
    verdict = _verdict(all(ok), any(ok))
    db, dp = s.diff((BASE, "PD-base"), (BASE, "FL-base"))[PRIMARY], s.diff((PD, "PD-base"), (PD, "FL-base"))[PRIMARY]
    share = context_share(s.lines(BASE, "PD-base"), s.lines(BASE, "FL-base"))
    reason = (f"the repository context at the base length adds {db.text(signed=True)} token-accuracy points to the base "
              f"model and {dp.text(signed=True)} to the Path Distance .py checkpoint. At {s.base_len} tokens the "
              f"completion file's prefix leaves room for any context in only {share:.0%} of the lines (in the paper, "
              "4K tokens hold most completion files with room to spare)")
    return Finding(6, title, claim, rows, verdict, reason, rule)


def context_share(with_context: pd.DataFrame | None, file_level: pd.DataFrame | None) -> float:
    """Share of lines whose prompt holds any repository context (longer than the File-level prompt)."""
    if with_context is None or file_level is None:
        return float("nan")
    m = _aligned(with_context, file_level)
    return float((m["prompt_tokens_a"] > m["prompt_tokens_b"]).mean()) if len(m) else float("nan")


FINDINGS = (finding1, finding2, finding3, finding4, finding5, finding6)


def findings(profile: str, paper: pd.DataFrame, cfg: dict[str, Any], *, protocol: str = "thesis",
             evals_out: str | Path | None = None) -> list[Finding]:
    s = Study(profile, paper, cfg, protocol, evals_out)
    return [f(s) for f in FINDINGS]


# ---------------------------------------------------------------------------------------------
# Rendering

def _ours_cells(r: Row) -> list[str]:
    out = []
    for m, digits in (("token_acc", 1), ("line_loss", 3), ("em", 1)):
        e = r.ours.get(m)
        signed = r.quantity.count("−") > 0 or "lead" in r.quantity or "spread" in r.quantity
        out.append(e.text(digits, signed=signed) if e is not None else "")
    return out


def render_markdown(fs: list[Finding], *, profile: str, context: str = "") -> str:
    lines = ["# At toy scale", ""]
    if context:
        lines += [context, ""]
    lines += ["| # | finding | verdict |", "|---|---|---|"]
    lines += [f"| {f.number} | {f.title} | **{f.verdict}** |" for f in fs]
    lines.append("")
    for f in fs:
        lines += [f"## Finding {f.number}: {f.title}", "", f"*Paper:* {f.claim}", ""]
        if f.rows:
            lines += ["| quantity | paper (EM %, LCA large_context) | ours: token acc. (%) [95% CI] | "
                      "ours: line loss (nats) | ours: EM (%) | note |", "|---|---|---|---|---|---|"]
            for r in f.rows:
                lines.append("| " + " | ".join([r.quantity, r.paper, *_ours_cells(r), r.extra]) + " |")
            lines.append("")
        lines += [f"**Verdict: {f.verdict}.** {f.reason[0].upper() + f.reason[1:]}.", "",
                  f"*Rule:* {f.rule}.", ""]
    return "\n".join(lines)


def study_context(profile: str, protocol: str = "thesis") -> str:
    """The paragraph that says what was trained and measured (from the committed records)."""
    from .evaluation.api import evals_dir

    runs = results_dir(profile) / "runs"
    recs = {p.parent.name: read_json(p) for p in sorted(runs.glob("*/run.json"))} if runs.is_dir() else {}
    base = recs.get(BASE, {})
    grid = [r for k, r in recs.items() if k != BASE and r.get("stop_step")]
    d = evals_dir(profile)
    sides = [read_json(p) for p in sorted(d.glob("*.json"))] if d.is_dir() else []
    benches = {}
    for sd in sides:
        ident = (sd.get("config") or {}).get("identity") or {}
        benches[ident.get("benchmark")] = max(benches.get(ident.get("benchmark"), 0),
                                              int((sd.get("config") or {}).get("n_lines") or 0))
    lines_, repos = _benchmark_size(profile, protocol)
    from .config import load_profile

    try:
        model = load_profile(profile).get("model") or {}
    except Exception:  # noqa: BLE001 - a profile name without a config file
        model = {}
    wall_train = sum(float(r.get("wall_time_s") or 0) for r in recs.values())
    wall_eval = sum(float(sd.get("wall_time_s") or 0) for sd in sides)
    steps = sorted({int(r.get("stop_step") or 0) for r in grid})
    return (f"Profile `{profile}`: a from-scratch Llama (`{model.get('preset', '?')}` preset) trained for "
            f"{base.get('step', '?')} steps ({_tok(base.get('train_tokens'))} tokens) on single files at "
            f"{base.get('train_length', '?')} tokens with θ 10,000, then {len(grid)} repository-level runs of "
            f"{'/'.join(map(str, steps)) or '?'} steps each at θ 500,000 (File-level θ 10k apart), plus the base model "
            f"with θ raised and no training. Evaluated on the held-out benchmark "
            f"({', '.join(f'`{b}`' for b in benches) or '?'}: {lines_} inproject lines from {repos} repositories), "
            f"{protocol} protocol, {len(sides)} stored evaluations. Compute on this 2-core CPU: training "
            f"{wall_train / 60:.0f} min, evaluation {wall_eval / 60:.0f} min. Intervals are 95% bootstraps over "
            "repositories; with this few repositories they are wide, and a difference whose interval contains 0 is "
            "called within noise. Paper numbers are EM on LCA large_context at 4K/16K; ours are at the profile's "
            "base/extended lengths (FL-base, PD-base, PD-ext, Or-ext).")


def _benchmark_size(profile: str, protocol: str = "thesis") -> tuple[int, int]:
    """Inproject lines and repositories of the profile's stored evaluations (the largest one)."""
    ev = Evals(profile, protocol)
    best = (0, 0)
    for _, r in ev.index.iterrows():  # the largest line evaluation (perplexity records have no lines)
        df = pd.read_parquet(r["path"])
        if "category" not in df.columns:
            continue
        d = df[df["category"] == LINE_TYPE]
        best = max(best, (len(d), int(d["repository"].nunique())))
    return best


def write_toy_scale(profile: str, *, paper_csv: Path | None = None, out: Path | None = None,
                    protocol: str = "thesis", findings_dir: Path | None = None) -> tuple[Path, list[Finding]]:
    """Compute the findings and write ``paper/toy_scale.md`` and ``results/<profile>/findings.json``."""
    from . import published
    from .config import load_profile

    paper = published.load(Path(paper_csv) if paper_csv else results_dir("paper") / "results.csv")
    cfg = load_profile(profile)
    fs = findings(profile, paper, cfg, protocol=protocol)
    out = Path(out) if out else PAPER / "toy_scale.md"
    context = study_context(profile, protocol) + (f"\n\n![The differences behind the verdicts](figures/toy_scale_{profile}_effects.png)"
                                        if out.parent.resolve() == PAPER.resolve() else "")
    write_text(out, render_markdown(fs, profile=profile, context=context) + "\n")
    write_json(Path(findings_dir or results_dir(profile)) / "findings.json", {"profile": profile, "protocol": protocol,
                                                        "primary_measure": PRIMARY, "line_type": LINE_TYPE,
                                                        "findings": [f.to_json() for f in fs]})
    return out, fs


# ---------------------------------------------------------------------------------------------
# Our Tables 2 and 4, the per-line masked-vs-full table, the effects figure

TABLE_METRICS = ("token_acc", "line_loss", "em")


def write_our_tables(ours: pd.DataFrame, profile: str, *, protocol: str = "thesis",
                     out_dir: Path | None = None) -> list[str]:
    """Tables 2 and 4 of the paper in our numbers, one per measure; returns the names written."""
    from . import tables
    from .evaluation.report import METRIC_NAMES
    from .paths import TABLES

    out_dir = Path(out_dir) if out_dir else TABLES
    from .evaluation.report import sort_runs

    from .names import is_beyond_paper

    d = ours[(ours["table"] == "eval") & (ours["protocol"] == protocol)]
    d = sort_runs(d[~is_beyond_paper(d)])  # the paper's grid only
    if d.empty:
        return []
    both = d.groupby(["composer", "mode"])["loss"].nunique()
    pairs = {k for k, n in both.items() if n > 1}
    d4 = d[[(c, m) in pairs for c, m in zip(d["composer"], d["mode"])]]
    names = []
    src = f"results/{profile}/evals ({protocol} protocol)"
    regen = "notebooks/09_toy_scale.py (make figures)"
    for metric in TABLE_METRICS:
        what = METRIC_NAMES.get(metric, metric)
        t2 = tables.table2(d, metric=metric, caption=f"Table 2 at toy scale ({profile} profile): {what} of the base "
                           "models, File-level, Path Distance .py, and the range of the other realistic composers.")
        tables.write_table(t2, f"table2_{profile}_{metric}", out_dir, source=src, regenerate=regen)
        names.append(f"table2_{profile}_{metric}")
        if len(d4):
            t4 = tables.table4(d4, metric=metric, caption=f"Table 4 at toy scale ({profile} profile): {what} of the "
                               "runs trained with masked and with full loss, and their difference.")
            tables.write_table(t4, f"table4_{profile}_{metric}", out_dir, source=src, regenerate=regen)
            names.append(f"table4_{profile}_{metric}")
    return names


def masked_vs_full_lines(s: Study) -> pd.DataFrame:
    """Per-line comparison of every masked/full pair in every setting (one row each)."""
    rows = []
    for masked, full in ((PD, PD_FULL), (DUP, DUP_FULL)):
        for role in ("FL-base", "PD-base", "PD-ext", "Or-ext"):
            a, b = s.lines(masked, role), s.lines(full, role)
            if a is None or b is None:
                continue
            ta, ll = paired(a, b, "token_acc", s.seed), paired(a, b, "line_loss", s.seed)
            m = _aligned(a, b)
            mc = stats.mcnemar_exact(m["match_a"].to_numpy(), m["match_b"].to_numpy())
            rows.append({"pair": s.label(masked).replace(", full loss", ""), "setting": role,
                         "lines": ta.n_lines, "repositories": ta.n_repos,
                         "token_acc_diff": ta.value, "token_acc_low": ta.low, "token_acc_high": ta.high,
                         "line_loss_diff": ll.value, "line_loss_low": ll.low, "line_loss_high": ll.high,
                         "em_masked": 100 * a["match"].mean(), "em_full": 100 * b["match"].mean(),
                         "only_masked_right": int(mc.statistic),
                         "only_full_right": int((~m["match_a"] & m["match_b"]).sum()),
                         "mcnemar_p": mc.pvalue})
    return pd.DataFrame(rows)


def write_masked_vs_full_lines(s: Study, out_dir: Path | None = None, json_dir: Path | None = None) -> str | None:
    from . import tables
    from .paths import TABLES

    df = masked_vs_full_lines(s)
    if df.empty:
        return None
    idx = [f"{r.pair}, {r.setting}" for r in df.itertuples()]
    values = pd.DataFrame({"lines": df["lines"].to_numpy(), "Δ token acc.": df["token_acc_diff"].to_numpy(),
                           "Δ line loss": df["line_loss_diff"].to_numpy(), "EM masked": df["em_masked"].to_numpy(),
                           "EM full": df["em_full"].to_numpy(), "McNemar p": df["mcnemar_p"].to_numpy()},
                          index=idx).astype(float)
    text = values.astype(object).copy()
    for i, r in zip(idx, df.itertuples()):
        text.at[i, "lines"] = f"{r.lines} ({r.repositories} repos)"
        text.at[i, "Δ token acc."] = f"{r.token_acc_diff:+.1f} [{r.token_acc_low:+.1f}, {r.token_acc_high:+.1f}]"
        text.at[i, "Δ line loss"] = f"{r.line_loss_diff:+.3f} [{r.line_loss_low:+.3f}, {r.line_loss_high:+.3f}]"
        text.at[i, "EM masked"] = f"{r.em_masked:.1f}"
        text.at[i, "EM full"] = f"{r.em_full:.1f}"
        text.at[i, "McNemar p"] = f"{r.mcnemar_p:.2f} ({r.only_masked_right}/{r.only_full_right})"
    name = f"masked_vs_full_{s.profile}_lines"
    t = tables.Table(values, f"Masked − full, line by line ({s.profile} profile, inproject lines): paired "
                     "differences with 95% intervals from a bootstrap over repositories, and the exact McNemar test "
                     "on exact match.", text=text, row_header="Pair, setting",
                     notes=["McNemar p (b/c): b lines right only with the masked run, c only with the full run; "
                            "two-sided exact binomial test (rlctx_utils.stats.mcnemar_exact)."])
    tables.write_table(t, name, Path(out_dir) if out_dir else TABLES, source=f"results/{s.profile}/evals",
                       regenerate="notebooks/09_toy_scale.py (make figures)")
    write_json(Path(json_dir or results_dir(s.profile)) / "masked_vs_full_lines.json", df.to_dict(orient="records"))
    return name


VERDICT_COLORS = {"reproduced": "#009E73", "partly": "#E69F00", "not reproduced": "#CC3311", "not tested": "#999999"}


def write_effects_figure(fs: list[Finding], profile: str, out_dir: Path | None = None) -> Path | None:
    """Forest plot of every difference behind the verdicts (token accuracy, 95% CI by repository)."""
    import matplotlib.pyplot as plt

    from .paths import FIGURES
    from .plots import save_figure

    items = [(f, r) for f in fs for r in f.rows
             if PRIMARY in r.ours and ("−" in r.quantity or "lead" in r.quantity)
             and not math.isnan(r.ours[PRIMARY].value)]
    if not items:
        return None
    fig, ax = plt.subplots(figsize=(9, 0.42 * len(items) + 1.4))
    for i, (f, r) in enumerate(reversed(items)):
        e = r.ours[PRIMARY]
        c = VERDICT_COLORS[f.verdict]
        ax.plot([e.low, e.high], [i, i], color=c, lw=2.2, solid_capstyle="butt")
        ax.plot([e.value], [i], "o", color=c, ms=5)
    ax.set_yticks(range(len(items)))
    ax.set_yticklabels([f"F{f.number}: {r.quantity}" for f, r in reversed(items)], fontsize=8)
    ax.axvline(0, color="0.3", lw=1)
    ax.set_xlabel("difference in target-line token accuracy (points, inproject lines)")
    handles = [plt.Line2D([], [], color=c, lw=2.2, label=v) for v, c in VERDICT_COLORS.items()
               if any(f.verdict == v for f, _ in items)]
    ax.legend(handles=handles, title="verdict of the finding", fontsize=8, title_fontsize=8, loc="lower right")
    ax.set_title(f"The differences behind the verdicts ({profile} profile)\ndot = mean over target lines, bar = 95% "
                 "bootstrap interval over repositories", fontsize=9.5)
    ax.grid(axis="y", alpha=0)
    fig.tight_layout()
    return save_figure(fig, f"toy_scale_{profile}_effects", out_dir=Path(out_dir) if out_dir else FIGURES,
                       caption=f"Every paired difference behind the six verdicts at toy scale ({profile} profile), in "
                               "target-line token accuracy with 95% intervals from a bootstrap over repositories; "
                               "colour = the finding's verdict.",
                       source=f"results/{profile}/evals, results/{profile}/findings.json",
                       regenerate="notebooks/09_toy_scale.py (make figures)")
