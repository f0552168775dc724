"""Evaluation: single-line completion exact match under the two published protocols (SPEC section 6).

Modules: :mod:`.protocols` (prompts, stop rules, normalisation), :mod:`.runner` (the fast and the
reference engine), :mod:`.metrics` (EM and graded measures, averages), :mod:`.presets` (the paper's
settings scaled to a profile), :mod:`.api` (checkpoints, benchmarks, stored results) and :mod:`.cli`
(``rlctx eval``).
"""
