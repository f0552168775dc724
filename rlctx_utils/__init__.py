"""rlctx: repository-level pretraining of code LLMs, reproduced.

The package holds all logic of the artifact; notebooks under ``notebooks/`` only call it.
Modules are named after the paper's concepts:

- :mod:`rlctx_utils.composers` -- context composers (SPEC section 4)
- :mod:`rlctx_utils.data` -- mining repositories, LCA format, line categories (SPEC sections 2, 6)
- :mod:`rlctx_utils.models`, :mod:`rlctx_utils.tokenizer`, :mod:`rlctx_utils.rope` -- models and RoPE
- :mod:`rlctx_utils.training` -- base and repository-level pretraining (SPEC section 5)
- :mod:`rlctx_utils.evaluation` -- line-completion exact match (SPEC section 6)
- :mod:`rlctx_utils.schema`, :mod:`rlctx_utils.published`, :mod:`rlctx_utils.tables`,
  :mod:`rlctx_utils.plots`, :mod:`rlctx_utils.stats`, :mod:`rlctx_utils.report` -- results
"""

__version__ = "0.1.0"
