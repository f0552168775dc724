"""Training: stage A (base pretraining) and stage B (repository-level pretraining), SPEC section 5.

* :mod:`.sequences` -- token sequences and loss masks of both stages;
* :mod:`.source` -- the seeded data order shared by every run of a grid;
* :mod:`.packing` -- micro batches without padding waste or cross-sequence attention;
* :mod:`.loop` -- the accelerate loop with step-global loss normalisation;
* :mod:`.runs` -- run folders, records, checkpoints, resume and refuse-to-clobber;
* :mod:`.plots` -- loss curves; :mod:`.cli` -- ``rlctx train``.
"""
