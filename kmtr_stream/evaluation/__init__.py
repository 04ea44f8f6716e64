"""Evaluation of k-MTR and baselines: cohort runs and plots (metrics: ``kmtr_stream.metrics``)."""
