"""Zero-shot accuracy of the model in memory through EleutherAI's lm-evaluation-harness.

The ``zeroshot`` config group: ``none`` (off), ``local`` (task folders of your own, offline) and
``paper7`` (the seven tasks of the Wanda and SparseGPT papers, data from the Hub). See
docs/evaluation.md.
"""
