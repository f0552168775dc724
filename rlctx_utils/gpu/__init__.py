"""One prepared GPU run: bundle here, run there (no network), import the results here.

* :mod:`.bundle` (``rlctx gpu bundle``): wheels the GPU machine lacks, the tokenizer, every training
  sequence of the profile's base run and grid pre-tokenized once, the benchmark and its evaluation
  prompts, a manifest with sha256 fingerprints and a FLOP-based time estimate;
* :mod:`.run` (``python3 -m rlctx_utils.gpu run``, standard library only until the wheels are
  installed): trains, evaluates, measures the paper-shape training speed and packs an archive
  after every stage;
* :mod:`.archive` (``rlctx gpu import``): unpacks that archive into ``results/`` safely.

Nothing here imports torch at module level: the run must start on a bare Python.
"""
