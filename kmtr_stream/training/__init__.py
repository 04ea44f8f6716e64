"""Training of k-MTR and its image-domain baselines on the simulated cohort.

``training.config`` (TOML configs), ``training.loop`` (``Trainer``, ``train``),
``training.step`` (losses of one batch), ``training.data`` (cached cohort,
batches), ``training.predict`` (batched inference, also used by evaluation),
``training.checkpoint`` (resumable, pickle-free checkpoints).
"""
